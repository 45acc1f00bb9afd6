//! `datavista`: the DataVista server and command line.
//!
//! # Layout
//! - [`app`] — `serve`: wiring, recovery of interrupted jobs, graceful shutdown.
//! - [`config`] — the typed configuration (flags and environment variables).
//! - [`routes`] — HTTP and WebSocket endpoints, one module per resource.
//! - [`jobs`] — uploads streaming to storage while the shared validator follows them, the
//!   bounded worker pool, cancel, recovery; [`jobs::Publisher`] stores then pushes changes.
//! - [`hub`] — the push hub: the registry of every WebSocket queue, behind an event-bus trait.
//! - [`store`] — the job store trait, on SQLite or PostgreSQL.
//! - [`storage`] — where files and reports live: a local directory, or an S3-compatible
//!   object store, behind a trait.
//! - [`side_runtime`] — a small runtime for blocking callers of async clients.
//! - [`identity`] — anonymous session cookies and bearer tokens: every request has an owner.
//! - [`schemas`] — built-in, `--schema-dir` and user-added Table Schemas.
//! - [`validate_command`] — `validate`: the engine from a terminal.

mod app;
mod config;
mod errors;
mod hub;
mod identity;
mod jobs;
mod metrics;
mod routes;
mod schemas;
mod side_runtime;
mod state;
mod storage;
mod store;
mod validate_command;
mod validator_threads;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "datavista",
    version,
    about = "Validate large CSV files against Frictionless Table Schemas"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: dashboard, HTTP API and live WebSocket updates.
    Serve(Box<config::Config>),
    /// Validate CSV files. Exit code: 0 all valid, 1 some invalid, 2 could not run.
    Validate(validate_command::ValidateArgs),
    /// Manage API tokens for scripts.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it, alone, on stdout (it is stored only as a hash: keep it).
    Create(TokenArgs),
    /// List the tokens: id, owner, created, expires and the token's first characters (never
    /// the token).
    List(StoreLocation),
    /// Revoke a token: requests with it get 401 from now on (open sockets stay until closed).
    /// Exit code: 0 revoked, 1 no such token, 2 could not run.
    Revoke(RevokeArgs),
}

#[derive(Args)]
struct RevokeArgs {
    #[command(flatten)]
    store: StoreLocation,
    #[command(flatten)]
    which: WhichToken,
    /// Refused: a token on the command line is visible to every user (`ps`).
    #[arg(hide = true)]
    token_in_argv: Option<String>,
}

/// The token to revoke: never from the command line, where other users see it.
#[derive(Args)]
#[group(multiple = false)]
struct WhichToken {
    /// The token's id, as `token list` shows it.
    #[arg(long)]
    id: Option<String>,
    /// A file holding the token, as `token create` printed it; `-` reads standard input.
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
}

/// Where `serve` keeps its tokens: give the token commands the same.
#[derive(Args)]
struct StoreLocation {
    #[arg(long, env = "DATAVISTA_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    #[arg(long, env = "DATAVISTA_DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(Args)]
struct TokenArgs {
    #[command(flatten)]
    store: StoreLocation,
    /// Give the token to an existing owner (e.g. your dashboard's, from GET /api/session),
    /// so script and dashboard share uploads; by default the token is a new owner.
    #[arg(long)]
    owner: Option<String>,
    /// Refuse the token after this long: a number and a unit, `s`, `m`, `h` or `d` (`30d`,
    /// `12h`). By default it never expires.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    expires_in: Option<std::time::Duration>,
}

/// `30d`, `12h`, `90m`, `45s`.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let unit_at = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(unit_at);
    let seconds: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err("a number and a unit: s, m, h or d (e.g. 30d)".to_owned()),
    };
    match number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(seconds))
    {
        Some(0) => Err("must be more than 0".to_owned()),
        Some(total) if total <= 100 * 365 * 86_400 => Ok(std::time::Duration::from_secs(total)),
        _ => Err("a whole number of at most 100 years (e.g. 30d)".to_owned()),
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate(args) => validate_command::run(&args),
        Command::Serve(config) => {
            // redis's TLS asks rustls for the process's provider; naming it here keeps
            // `rediss://` working even if another crate ever enables a second one. An error
            // only says one is installed already.
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            let filter = tracing_subscriber::EnvFilter::try_new(&config.log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .init();
            let result = actix_web::rt::System::new().block_on(app::serve(*config));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(message) => {
                    eprintln!("datavista: {message}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Token(TokenCommand::Create(args)) => create_token(&args),
        Command::Token(TokenCommand::List(store)) => list_tokens(&store),
        Command::Token(TokenCommand::Revoke(args)) => revoke_token(&args),
    }
}

/// The server's store, for the token commands (which may run next to `serve`).
fn open_store(location: &StoreLocation) -> Result<std::sync::Arc<dyn store::JobStore>, String> {
    // The token commands never save a job, so their lease is never used.
    let lease = store::Lease::new(std::time::Duration::ZERO);
    store::open(location.database_url.as_deref(), &location.data_dir, lease)
        .map_err(|e| e.to_string())
}

/// The token in `path` (`-`: standard input), alone on its line.
fn read_token(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let mut text = String::new();
    let read = if path == std::path::Path::new("-") {
        std::io::stdin().take(4096).read_to_string(&mut text)
    } else {
        std::fs::File::open(path).and_then(|file| file.take(4096).read_to_string(&mut text))
    };
    read.map_err(|e| format!("cannot read the token from {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(format!(
            "{} must hold one token, as `token create` printed it",
            path.display()
        ));
    }
    Ok(token.to_owned())
}

fn revoke_token(args: &RevokeArgs) -> ExitCode {
    const HOW: &str = "--token-file PATH, --token-file - (standard input) or --id ID";
    let id = match (&args.token_in_argv, &args.which.id, &args.which.token_file) {
        (Some(_), _, _) => Err(format!(
            "a token on the command line is visible to every user (ps): give it with {HOW}"
        )),
        (None, Some(id), _) => Ok(id.trim().to_owned()),
        (None, None, Some(path)) => {
            read_token(path).map(|token| store::token_id(&identity::token_hash(&token)).to_owned())
        }
        (None, None, None) => Err(format!("which token? {HOW}")),
    };
    let revoked = id.and_then(|id| {
        let store = open_store(&args.store)?;
        store.remove_token(&id).map_err(|e| e.to_string())
    });
    match revoked {
        Ok(true) => {
            eprintln!("revoked: requests with this token now get 401");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            eprintln!("datavista: no such token (already revoked, or from another data dir)");
            ExitCode::from(1)
        }
        Err(message) => {
            eprintln!("datavista: {message}");
            ExitCode::from(2)
        }
    }
}

fn list_tokens(location: &StoreLocation) -> ExitCode {
    let tokens = match open_store(location).and_then(|s| s.tokens().map_err(|e| e.to_string())) {
        Ok(tokens) => tokens,
        Err(message) => {
            eprintln!("datavista: {message}");
            return ExitCode::from(2);
        }
    };
    let now = now_ms();
    println!(
        "{:<12}  {:<36}  {:<23}  {:<33}  TOKEN",
        "ID", "OWNER", "CREATED", "EXPIRES"
    );
    for token in tokens {
        let expires = match token.expires_at_ms {
            None => "never".to_owned(),
            Some(at) if token.expired(now) => format!("{} (expired)", identity::utc(at)),
            Some(at) => identity::utc(at),
        };
        let hint = token.hint.as_deref().unwrap_or("dv_");
        println!(
            "{:<12}  {:<36}  {:<23}  {:<33}  {hint}…",
            token.id,
            token.owner,
            identity::utc(token.created_at_ms),
            expires
        );
    }
    ExitCode::SUCCESS
}

fn create_token(args: &TokenArgs) -> ExitCode {
    let owner = match &args.owner {
        Some(id) => match uuid::Uuid::parse_str(id) {
            Ok(id) => identity::OwnerId::from_stored(id.to_string()),
            Err(_) => {
                eprintln!("datavista: --owner must be an owner id (a UUID)");
                return ExitCode::from(2);
            }
        },
        None => identity::OwnerId::random(),
    };
    let store = match open_store(&args.store) {
        Ok(store) => store,
        Err(message) => {
            eprintln!("datavista: {message}");
            return ExitCode::from(2);
        }
    };
    let token = identity::new_token();
    let hint = &token[..identity::TOKEN_HINT_CHARS];
    let expires_at = args
        .expires_in
        .map(|after| now_ms() + after.as_millis() as u64);
    let hash = identity::token_hash(&token);
    let stored = store::StoredToken::new(&hash, owner.clone(), hint, expires_at);
    match store.add_token(&hash, &stored) {
        Ok(()) => {
            // The token alone on stdout, for `TOKEN=$(datavista token create)`; the rest,
            // without the secret, on stderr.
            println!("{token}");
            let expires = stored
                .expires_at_ms
                .map_or("never".to_owned(), identity::utc);
            eprintln!(
                "token {} for owner {owner}, expires: {expires}; send it as 'Authorization: Bearer <token>'",
                stored.id
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("datavista: {e}");
            ExitCode::from(2)
        }
    }
}
