//! One typed configuration for `datavista serve`, from flags or environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

/// Messages a WebSocket connection's queue holds by default before it counts as lagging
/// (`--ws-queue-len`); the hub's tests use the same.
pub const CONNECTION_QUEUE: usize = 256;

#[derive(Args, Debug, Clone)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, env = "DATAVISTA_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Where the SQLite file, uploads and reports live.
    #[arg(long, env = "DATAVISTA_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// The built dashboard (`trunk build --release` output) served at `/`.
    #[arg(long, env = "DATAVISTA_DIST_DIR", default_value = "dist")]
    pub dist_dir: PathBuf,
    /// Extra Table Schema JSON files to offer (every *.json in the folder).
    #[arg(long, env = "DATAVISTA_SCHEMA_DIR")]
    pub schema_dir: Option<PathBuf>,
    /// Largest accepted file, in bytes (default 5 GiB); an upload gets 413 as soon as it passes it.
    #[arg(long, env = "DATAVISTA_MAX_FILE_BYTES", default_value_t = 5 << 30)]
    pub max_file_bytes: u64,
    /// Uploads one owner may run at the same time.
    #[arg(long, env = "DATAVISTA_MAX_UPLOADS_PER_OWNER", default_value_t = 8)]
    pub max_uploads_per_owner: usize,
    /// Uploads running at once on this server, all owners together (anyone can make new
    /// owners, so per-owner limits alone bound nothing); past it an upload gets 429.
    #[arg(long, env = "DATAVISTA_MAX_UPLOADS", default_value_t = 64)]
    pub max_uploads: usize,
    /// Jobs not finished yet (arriving, queued or validating) this server holds, all owners
    /// together; past it a new upload gets 429. Validations running at once are `--workers`.
    #[arg(long, env = "DATAVISTA_MAX_UNFINISHED_JOBS", default_value_t = 10_000)]
    pub max_unfinished_jobs: usize,
    /// Longest an upload may take, in seconds, however steadily it sends (default 6 h: 5 GiB
    /// at 250 KB/s); a client dribbling bytes cannot hold a slot forever.
    #[arg(long, env = "DATAVISTA_UPLOAD_DEADLINE_SECS", default_value_t = 6 * 3600)]
    pub upload_deadline_secs: u64,
    /// Live WebSocket connections (dashboard tabs) on this server, all owners together.
    #[arg(long, env = "DATAVISTA_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Memory for the uniqueness checks (`unique`, `primaryKey`, `uniqueKeys`) of all running
    /// validations together, shared equally by the workers; a check past its share stops
    /// with a `task-error` saying so.
    #[arg(long, env = "DATAVISTA_VALIDATION_MEMORY_BYTES", default_value_t = 1 << 30)]
    pub validation_memory_bytes: usize,
    /// New browser sessions (anonymous owners) one client address may start per minute
    /// (0: no limit); past it, 429 with Retry-After.
    #[arg(long, env = "DATAVISTA_NEW_SESSIONS_PER_MINUTE", default_value_t = 60)]
    pub new_sessions_per_minute: u32,
    /// Reverse proxies whose `X-Forwarded-For` names the client (comma-separated addresses
    /// or networks, e.g. `10.0.0.0/8`); without them, the client is the connection's peer.
    #[arg(long, env = "DATAVISTA_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
    /// Finished jobs one owner keeps, with their reports (each at most 8 MiB, so this also
    /// bounds an owner's bytes); when one more finishes, the oldest finished job is removed,
    /// and the dashboard's tabs see it go.
    #[arg(
        long,
        env = "DATAVISTA_FINISHED_JOBS_PER_OWNER",
        default_value_t = 10_000
    )]
    pub finished_jobs_per_owner: usize,
    /// Uploads are refused while less than this many bytes are free on the data disk.
    #[arg(long, env = "DATAVISTA_MIN_FREE_BYTES", default_value_t = 256 << 20)]
    pub min_free_bytes: u64,
    /// PostgreSQL for the job store, shared by several nodes (`postgres://user@host/db`;
    /// TLS as the URL's `sslmode` says); without it, a SQLite file in the data dir.
    #[arg(long, env = "DATAVISTA_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Redis for pushing events between server nodes (`redis://host:port`, or `rediss://`
    /// over TLS); without it, events stay in this process.
    #[arg(long, env = "DATAVISTA_REDIS_URL")]
    pub redis_url: Option<String>,
    /// The key that signs the messages between nodes, so that no one else who can reach
    /// Redis can forge them: a file of at least 32 random bytes, the same on every node.
    /// Required with `--redis-url`.
    #[arg(long, env = "DATAVISTA_BUS_KEY_FILE")]
    pub bus_key_file: Option<PathBuf>,
    /// Where uploads and reports live: a directory, or `s3://bucket/prefix` on any
    /// S3-compatible store (credentials, region and endpoint from the usual `AWS_*`
    /// variables), which several nodes can share. Default: the data dir.
    #[arg(long, env = "DATAVISTA_STORAGE")]
    pub storage: Option<String>,
    /// The key that signs session cookies (created when missing). Nodes behind one address
    /// need the same key. Default: `session.key` in the data dir.
    #[arg(long, env = "DATAVISTA_SESSION_KEY_FILE")]
    pub session_key_file: Option<PathBuf>,
    /// Validations running at once (default: the number of cores).
    #[arg(long, env = "DATAVISTA_WORKERS")]
    pub workers: Option<usize>,
    /// Origins allowed to open the WebSocket and to make changes with a session cookie
    /// (comma-separated, e.g. `https://a.example, https://b.example`), besides the server's own.
    #[arg(long, env = "DATAVISTA_ALLOWED_ORIGINS", value_delimiter = ',', value_parser = origin)]
    pub allowed_origins: Vec<String>,
    /// Browsers reach the server over HTTPS (e.g. through a proxy that ends TLS): the session
    /// cookie is then always `Secure` and named `__Host-dv_session`, which no other subdomain
    /// can set. Switching it on or off starts new anonymous sessions.
    #[arg(long, env = "DATAVISTA_HTTPS")]
    pub https: bool,
    /// Live WebSocket connections (dashboard tabs) one owner may hold; past it the upgrade
    /// gets 429 with a Retry-After.
    #[arg(
        long,
        env = "DATAVISTA_MAX_CONNECTIONS_PER_OWNER",
        default_value_t = 32
    )]
    pub max_connections_per_owner: usize,
    /// Messages queued per WebSocket connection; a client further behind gets a fresh snapshot.
    #[arg(long, env = "DATAVISTA_WS_QUEUE_LEN", default_value_t = CONNECTION_QUEUE)]
    pub ws_queue_len: usize,
    /// Log filter, e.g. `info` or `datavista=debug`.
    #[arg(long, env = "DATAVISTA_LOG", default_value = "info")]
    pub log: String,
}

impl Config {
    pub fn session_key_file(&self) -> PathBuf {
        self.session_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("session.key"))
    }

    pub fn workers(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
            .max(1)
    }
}

/// An origin as a browser sends it in `Origin`: no spaces around it (people write lists with
/// them), no trailing slash. An empty entry (an empty variable, a trailing comma) is kept: no
/// browser sends an empty `Origin`, so it allows nothing.
fn origin(value: &str) -> Result<String, String> {
    Ok(value.trim().trim_end_matches('/').to_owned())
}
