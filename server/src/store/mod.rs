//! Persistence behind a trait: jobs, owners' sequence numbers, tokens and schemas.
//!
//! The embedded default is SQLite ([`sqlite::SqliteStore`]), one file in the data dir;
//! `--database-url postgres://…` selects PostgreSQL ([`postgres::PgStore`]), which several
//! server nodes can share. Calls are blocking: async code runs them on the blocking pool.
//!
//! # Layout
//! - this file — the [`JobStore`] trait, the types it speaks in, and [`open`].
//! - [`error`] — what can fail, with its cause.
//! - [`rows`] — what both backends write and read alike: the "unfinished" filter, the column
//!   lists, the stored form of states and field names.
//! - [`sqlite`], [`postgres`] — the backends, laid out alike: `mod.rs` opens the database,
//!   `migrations.rs` brings its tables up to date, `queries.rs` implements the trait,
//!   `tests.rs` tests what is the backend's own.
//! - `tests.rs` — one behaviour, two backends: the trait's tests, run on both.

mod error;
pub mod postgres;
mod rows;
pub mod sqlite;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use datavista_shared::protocol::{Job, JobState};

pub use self::error::{StoreError, StoreResult};
use crate::owner::OwnerId;

/// A Table Schema a user added.
#[derive(Debug, Clone)]
pub struct StoredSchema {
    pub id: String,
    pub name: String,
    pub body: String,
    /// The field names, kept beside the body so that listing schemas never parses one.
    pub fields: Vec<String>,
}

/// A schema in an owner's list: what the list shows, without the body.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaListing {
    pub id: String,
    pub name: String,
    pub fields: ListedFields,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ListedFields {
    Names(Vec<String>),
    /// A schema added before field names were kept: its body, to read them from.
    InBody(String),
}

/// A bearer token as the store keeps it: never the token itself, only its hash (by which
/// requests find it) and what `token list` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    /// Names the token in `token list` and `token revoke --id`: the first digits of its
    /// hash ([`token_id`]), so revoking by the token itself finds the same row.
    pub id: String,
    pub owner: OwnerId,
    /// The token's first characters, to recognise it in a list; `None` for tokens made
    /// before hints were kept.
    pub hint: Option<String>,
    pub created_at_ms: u64,
    /// `None`: never expires.
    pub expires_at_ms: Option<u64>,
}

impl StoredToken {
    /// A token made now, to be kept under `token_hash`.
    pub fn new(
        token_hash: &str,
        owner: OwnerId,
        hint: &str,
        expires_at_ms: Option<u64>,
    ) -> StoredToken {
        StoredToken {
            id: token_id(token_hash).to_owned(),
            owner,
            hint: Some(hint.to_owned()),
            created_at_ms: crate::clock::now_ms(),
            expires_at_ms,
        }
    }

    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|at| at <= now_ms)
    }
}

/// The id of the token with this hash. The migration that introduced ids derived the ids of
/// existing tokens the same way (`substr(hash, 1, 12)`).
pub fn token_id(token_hash: &str) -> &str {
    token_hash.get(..12).unwrap_or(token_hash)
}

/// Which server process holds the jobs it saves, and for how long without renewing.
/// Several nodes share one PostgreSQL database; a job whose node stopped renewing (it
/// crashed, or was stopped) is taken over by another node.
#[derive(Debug, Clone)]
pub struct Lease {
    /// This process: a fresh id each start.
    pub node: String,
    pub duration: Duration,
}

impl Lease {
    pub fn new(duration: Duration) -> Lease {
        Lease {
            node: uuid::Uuid::new_v4().to_string(),
            duration,
        }
    }

    /// The end of a lease taken or renewed now, in milliseconds since the epoch.
    fn until_ms(&self) -> i64 {
        (crate::clock::now_ms() + self.duration.as_millis() as u64) as i64
    }
}

/// The store the configuration names: PostgreSQL for a `postgres://` (or `postgresql://`)
/// URL, else the SQLite file in `data_dir`. Jobs this process saves are held under `lease`.
pub fn open(
    database_url: Option<&str>,
    data_dir: &Path,
    lease: Lease,
) -> StoreResult<Arc<dyn JobStore>> {
    match database_url {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(Arc::new(postgres::PgStore::connect(
                url,
                Duration::from_secs(10),
                lease,
            )?))
        }
        Some(other) => Err(StoreError::UnsupportedUrl {
            scheme: other.split(':').next().unwrap_or_default().to_owned(),
        }),
        None => {
            std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
                path: data_dir.to_owned(),
                source,
            })?;
            Ok(Arc::new(sqlite::SqliteStore::open(
                &data_dir.join("datavista.sqlite3"),
                lease,
            )?))
        }
    }
}

pub trait JobStore: Send + Sync + 'static {
    /// Store a new job, held by this node under a fresh lease, in one transaction with the
    /// owner's next sequence number; returns that number. `None`, and nothing changes, when
    /// the id exists.
    fn create_job(&self, owner: &OwnerId, job: &Job) -> StoreResult<Option<u64>>;
    /// Store a change to a job, keeping this node's lease on it; the owner's next sequence
    /// number. `None`, and nothing changes, when the job is gone, is another owner's, or
    /// another node has taken it over: a node writes a job only while it holds it, so one
    /// that lost a job (its lease ran out, or an idle node took it from the queue) can
    /// neither overwrite the new holder's work nor bring back a deleted job.
    fn save_job(&self, owner: &OwnerId, job: &Job) -> StoreResult<Option<u64>>;
    /// Let go of one job this node claimed but cannot run now, so any node (this one too)
    /// takes it at its next look for orphans.
    fn release_job(&self, id: &str) -> StoreResult<()>;
    /// Remove a job; returns the sequence number of the removal, `None` if it was not there.
    fn delete_job(&self, owner: &OwnerId, id: &str) -> StoreResult<Option<u64>>;
    fn job(&self, owner: &OwnerId, id: &str) -> StoreResult<Option<Job>>;
    /// Newest first.
    fn jobs(&self, owner: &OwnerId, offset: u64, limit: u64) -> StoreResult<Vec<Job>>;
    fn job_count(&self, owner: &OwnerId) -> StoreResult<u64>;
    /// The owner's finished jobs past the `keep` that finished last, the first to finish
    /// first: what the retention of finished jobs removes.
    fn finished_jobs_past(&self, owner: &OwnerId, keep: usize) -> StoreResult<Vec<String>>;
    /// All of an owner's jobs (newest first) and the sequence number they are current at.
    fn snapshot(&self, owner: &OwnerId) -> StoreResult<(u64, Vec<Job>)>;
    /// Extend the lease on every unfinished job this node holds.
    fn renew_leases(&self) -> StoreResult<()>;
    /// Take over every unfinished job whose node stopped renewing its lease (oldest first):
    /// they are this node's now. SQLite serves one node, so there every unfinished job of an
    /// earlier process is taken at once.
    fn claim_orphaned_jobs(&self) -> StoreResult<Vec<(OwnerId, Job)>>;
    /// Let go of this node's unfinished jobs (when stopping), so another node takes them now.
    fn release_leases(&self) -> StoreResult<()>;
    /// Take up to `limit` jobs that other nodes hold `queued` (uploaded, waiting for a
    /// worker) and have not touched for `waiting` (oldest first): this node has idle
    /// workers. SQLite serves one node: there are none.
    fn claim_queued_jobs(
        &self,
        limit: usize,
        waiting: std::time::Duration,
    ) -> StoreResult<Vec<(OwnerId, Job)>>;
    /// Jobs per state, for metrics. A state this version does not know is an error.
    fn count_by_state(&self) -> StoreResult<Vec<(JobState, u64)>>;

    /// Keep a new token, by its hash.
    fn add_token(&self, token_hash: &str, token: &StoredToken) -> StoreResult<()>;
    /// The token with this hash, expired or not.
    fn token(&self, token_hash: &str) -> StoreResult<Option<StoredToken>>;
    /// Every token, oldest first.
    fn tokens(&self) -> StoreResult<Vec<StoredToken>>;
    /// Forget a token by its id; false when there was no such token.
    fn remove_token(&self, id: &str) -> StoreResult<bool>;

    /// Keep a user's schema, unless they have `max_per_owner` already: false then. Counted
    /// in the insert's own transaction, so two adds at once cannot both pass the cap.
    fn add_schema(
        &self,
        owner: &OwnerId,
        schema: &StoredSchema,
        max_per_owner: usize,
    ) -> StoreResult<bool>;
    /// The owner's schemas, oldest first.
    fn schemas(&self, owner: &OwnerId) -> StoreResult<Vec<SchemaListing>>;
    /// One of the owner's schemas, with its body.
    fn schema(&self, owner: &OwnerId, id: &str) -> StoreResult<Option<StoredSchema>>;
}

/// The test kit's PostgreSQL, which the store tests (`store/tests.rs` and each backend's
/// `tests.rs`) start.
#[cfg(test)]
use datavista_testkit::postgres as test_postgres;

#[cfg(test)]
mod tests;
