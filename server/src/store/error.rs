//! What can go wrong in the store, with its cause kept as the source.

use std::path::PathBuf;

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A statement on the SQLite file failed.
    #[error("storage error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A query on PostgreSQL failed.
    #[error("storage error: {0}")]
    Postgres(#[from] sqlx::Error),
    /// PostgreSQL could not be reached, or its tables brought up to date, when opening it.
    #[error("cannot use the PostgreSQL database: {0}")]
    Unusable(#[source] sqlx::Error),
    /// `--database-url` names a database this server does not speak.
    #[error(
        "--database-url must start with postgres:// (got '{scheme}'); leave it out for the \
         SQLite file in the data dir"
    )]
    UnsupportedUrl { scheme: String },
    /// The data dir, which holds the SQLite file, could not be made.
    #[error("cannot create {}: {source}", path.display())]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A thread or runtime the store works on could not start.
    #[error("storage error: cannot start {what}: {source}")]
    Start {
        what: &'static str,
        source: std::io::Error,
    },
    /// The database holds a value this version cannot read.
    #[error("storage error: the database holds {what} '{value}', which this version cannot read")]
    Corrupt {
        what: &'static str,
        value: String,
        source: serde_json::Error,
    },
}
