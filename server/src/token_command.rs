//! `datavista token create|list|revoke`: the bearer tokens scripts use, kept in the server's
//! store (the same data dir or database URL as `serve`). A token is shown once, alone on
//! stdout, and never read from the command line, where every user of the machine sees it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::clock::now_ms;
use crate::owner::OwnerId;
use crate::{identity, store};

#[derive(Subcommand)]
pub enum TokenCommand {
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
pub struct RevokeArgs {
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
pub struct StoreLocation {
    #[arg(long, env = "DATAVISTA_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    #[arg(long, env = "DATAVISTA_DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(Args)]
pub struct TokenArgs {
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

pub fn run(command: TokenCommand) -> ExitCode {
    match command {
        TokenCommand::Create(args) => create_token(&args),
        TokenCommand::List(store) => list_tokens(&store),
        TokenCommand::Revoke(args) => revoke_token(&args),
    }
}

/// How `revoke` is told which token.
const HOW: &str = "--token-file PATH, --token-file - (standard input) or --id ID";

/// Why a token command could not do its work (exit code 2).
#[derive(Debug, thiserror::Error)]
enum TokenError {
    #[error("a token on the command line is visible to every user (ps): give it with {HOW}")]
    InArgv,
    #[error("which token? {HOW}")]
    Which,
    #[error("cannot read the token from {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} must hold one token, as `token create` printed it", path.display())]
    NotOneToken { path: PathBuf },
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// The server's store, for the token commands (which may run next to `serve`).
fn open_store(location: &StoreLocation) -> Result<std::sync::Arc<dyn store::JobStore>, TokenError> {
    // The token commands never save a job, so their lease is never used.
    let lease = store::Lease::new(std::time::Duration::ZERO);
    Ok(store::open(
        location.database_url.as_deref(),
        &location.data_dir,
        lease,
    )?)
}

/// The token in `path` (`-`: standard input), alone on its line.
fn read_token(path: &Path) -> Result<String, TokenError> {
    use std::io::Read;
    let mut text = String::new();
    let read = if path == Path::new("-") {
        std::io::stdin().take(4096).read_to_string(&mut text)
    } else {
        std::fs::File::open(path).and_then(|file| file.take(4096).read_to_string(&mut text))
    };
    read.map_err(|source| TokenError::Read {
        path: path.to_owned(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(TokenError::NotOneToken {
            path: path.to_owned(),
        });
    }
    Ok(token.to_owned())
}

fn revoke_token(args: &RevokeArgs) -> ExitCode {
    let id = match (&args.token_in_argv, &args.which.id, &args.which.token_file) {
        (Some(_), _, _) => Err(TokenError::InArgv),
        (None, Some(id), _) => Ok(id.trim().to_owned()),
        (None, None, Some(path)) => {
            read_token(path).map(|token| store::token_id(&identity::token_hash(&token)).to_owned())
        }
        (None, None, None) => Err(TokenError::Which),
    };
    let revoked = id.and_then(|id| {
        let store = open_store(&args.store)?;
        Ok(store.remove_token(&id)?)
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
    let tokens = match open_store(location).and_then(|s| Ok(s.tokens()?)) {
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
            Ok(id) => OwnerId::from_stored(id.to_string()),
            Err(_) => {
                eprintln!("datavista: --owner must be an owner id (a UUID)");
                return ExitCode::from(2);
            }
        },
        None => OwnerId::random(),
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
