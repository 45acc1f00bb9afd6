//! Persistence behind a trait: jobs, owners' sequence numbers, tokens and schemas.
//!
//! The embedded default is SQLite ([`sqlite::SqliteStore`]); the trait is what a Postgres
//! store would implement. Calls are blocking: async code runs them on the blocking pool.

pub mod sqlite;

use datavista_shared::protocol::Job;

use crate::identity::OwnerId;

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, thiserror::Error)]
#[error("storage error: {0}")]
pub struct StoreError(pub String);

/// A Table Schema a user added.
#[derive(Debug, Clone)]
pub struct StoredSchema {
    pub id: String,
    pub name: String,
    pub body: String,
}

pub trait JobStore: Send + Sync + 'static {
    /// Insert or update a job and give it the owner's next sequence number, in one
    /// transaction; returns that number.
    fn save_job(&self, owner: &OwnerId, job: &Job) -> StoreResult<u64>;
    /// Remove a job; returns the sequence number of the removal, `None` if it was not there.
    fn delete_job(&self, owner: &OwnerId, id: &str) -> StoreResult<Option<u64>>;
    fn job(&self, owner: &OwnerId, id: &str) -> StoreResult<Option<Job>>;
    /// Newest first.
    fn jobs(&self, owner: &OwnerId, offset: u64, limit: u64) -> StoreResult<Vec<Job>>;
    fn job_count(&self, owner: &OwnerId) -> StoreResult<u64>;
    /// All of an owner's jobs (newest first) and the sequence number they are current at.
    fn snapshot(&self, owner: &OwnerId) -> StoreResult<(u64, Vec<Job>)>;
    /// Jobs of every owner that had not reached a final state (for recovery at start).
    fn unfinished_jobs(&self) -> StoreResult<Vec<(OwnerId, Job)>>;
    /// Jobs per state, for metrics.
    fn count_by_state(&self) -> StoreResult<Vec<(String, u64)>>;

    fn add_token(&self, token_hash: &str, owner: &OwnerId) -> StoreResult<()>;
    fn token_owner(&self, token_hash: &str) -> StoreResult<Option<OwnerId>>;
    /// Forget a token; false when there was no such token.
    fn remove_token(&self, token_hash: &str) -> StoreResult<bool>;

    fn add_schema(&self, owner: &OwnerId, schema: &StoredSchema) -> StoreResult<()>;
    fn schemas(&self, owner: &OwnerId) -> StoreResult<Vec<StoredSchema>>;
}
