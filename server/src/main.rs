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
//! - [`reports`] — reports kept in memory once read, for paging and downloads.
//! - [`security_headers`] — the Content-Security-Policy and other headers on every response.
//! - [`schemas`] — built-in, `--schema-dir` and user-added Table Schemas.
//! - [`session_rate`] — new sessions per client address per minute.
//! - [`validate_command`] — `validate`: the engine from a terminal.

mod app;
mod config;
mod errors;
mod hub;
mod identity;
mod jobs;
mod metrics;
mod reports;
mod routes;
mod schemas;
mod security_headers;
mod session_rate;
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
    /// Create a token and print it (it is stored only as a hash: keep it).
    Create(TokenArgs),
    /// Revoke a token: requests with it get 401 from now on (open sockets stay until closed).
    /// Exit code: 0 revoked, 1 no such token, 2 could not run.
    Revoke(RevokeArgs),
}

#[derive(Args)]
struct RevokeArgs {
    #[command(flatten)]
    store: StoreLocation,
    /// The token, as `token create` printed it.
    token: String,
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

fn revoke_token(args: &RevokeArgs) -> ExitCode {
    let revoked = open_store(&args.store).and_then(|store| {
        store
            .remove_token(&identity::token_hash(args.token.trim()))
            .map_err(|e| e.to_string())
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
    match store.add_token(&identity::token_hash(&token), &owner) {
        Ok(()) => {
            println!("{token}");
            eprintln!("owner {owner}: send it as 'Authorization: Bearer {token}'");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("datavista: {e}");
            ExitCode::from(2)
        }
    }
}
