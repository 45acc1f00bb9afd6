//! Persistence behind a trait: jobs, owners' sequence numbers, tokens and schemas.
//!
//! The embedded default is SQLite ([`sqlite::SqliteStore`]), one file in the data dir;
//! `--database-url postgres://…` selects PostgreSQL ([`postgres::PgStore`]), which several
//! server nodes can share. Calls are blocking: async code runs them on the blocking pool.

pub mod postgres;
pub mod sqlite;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

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

/// The store the configuration names: PostgreSQL for a `postgres://` (or `postgresql://`)
/// URL, else the SQLite file in `data_dir`.
pub fn open(database_url: Option<&str>, data_dir: &Path) -> StoreResult<Arc<dyn JobStore>> {
    match database_url {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(Arc::new(postgres::PgStore::connect(url, Duration::from_secs(10))?))
        }
        Some(other) => Err(StoreError(format!(
            "--database-url must start with postgres:// (got '{}'); leave it out for the SQLite file in the data dir",
            other.split(':').next().unwrap_or_default()
        ))),
        None => {
            std::fs::create_dir_all(data_dir)
                .map_err(|e| StoreError(format!("cannot create {}: {e}", data_dir.display())))?;
            Ok(Arc::new(sqlite::SqliteStore::open(
                &data_dir.join("datavista.sqlite3"),
            )?))
        }
    }
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

/// One behaviour, two backends: every test here runs on SQLite and on a real PostgreSQL.
/// The integration tests' PostgreSQL, for the store tests below.
#[cfg(test)]
#[path = "../../tests/support/postgres.rs"]
mod test_postgres;

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use datavista_shared::protocol::{Job, JobProgress, JobState};
    use datavista_shared::report::ErrorCode;

    use super::test_postgres::TestPostgres;
    use super::*;

    fn job(id: &str, state: JobState, created_at_ms: u64) -> Job {
        Job {
            id: id.to_owned(),
            file_name: format!("{id}.csv"),
            schema_id: Some("people".to_owned()),
            state,
            progress: JobProgress {
                bytes_done: 10,
                bytes_total: Some(100),
                rows: 3,
                errors: 0,
            },
            error_counts: Default::default(),
            reason: None,
            created_at_ms,
            updated_at_ms: created_at_ms,
        }
    }

    /// What every store must do, checked call by call.
    fn behaves_like_a_job_store(store: &dyn JobStore) {
        let (alice, bob) = (OwnerId::random(), OwnerId::random());
        assert_eq!(store.snapshot(&alice).unwrap(), (0, vec![]));

        // Each change takes the owner's next sequence number.
        assert_eq!(
            store
                .save_job(&alice, &job("a1", JobState::Queued, 1))
                .unwrap(),
            1
        );
        let mut finished = job("a1", JobState::Invalid, 1);
        finished.progress.errors = 7;
        finished.error_counts.insert(ErrorCode::TypeError, 7);
        finished.updated_at_ms = 5;
        assert_eq!(store.save_job(&alice, &finished).unwrap(), 2);
        assert_eq!(store.job(&alice, "a1").unwrap(), Some(finished.clone()));
        assert_eq!(
            store
                .save_job(&alice, &job("a2", JobState::Validating, 2))
                .unwrap(),
            3
        );
        assert_eq!(
            store
                .save_job(&bob, &job("b1", JobState::Uploading, 3))
                .unwrap(),
            1
        );

        // Owners see only their own jobs, and cannot overwrite another's.
        assert_eq!(store.job(&bob, "a1").unwrap(), None);
        assert_eq!(
            store
                .save_job(&bob, &job("a1", JobState::Cancelled, 9))
                .unwrap(),
            2
        );
        assert_eq!(store.job(&alice, "a1").unwrap(), Some(finished.clone()));
        assert_eq!(store.delete_job(&bob, "a1").unwrap(), None);

        // Newest first, pages, counts, one consistent snapshot.
        let ids = |jobs: Vec<Job>| jobs.into_iter().map(|j| j.id).collect::<Vec<_>>();
        assert_eq!(ids(store.jobs(&alice, 0, 10).unwrap()), ["a2", "a1"]);
        assert_eq!(ids(store.jobs(&alice, 1, 10).unwrap()), ["a1"]);
        assert_eq!(ids(store.jobs(&alice, 0, 1).unwrap()), ["a2"]);
        assert_eq!(store.job_count(&alice).unwrap(), 2);
        let (seq, jobs) = store.snapshot(&alice).unwrap();
        assert_eq!(
            (seq, ids(jobs)),
            (3, vec!["a2".to_owned(), "a1".to_owned()])
        );

        // Recovery finds every unfinished job, with its owner.
        let unfinished: BTreeSet<(String, String)> = store
            .unfinished_jobs()
            .unwrap()
            .into_iter()
            .map(|(owner, job)| (owner.as_str().to_owned(), job.id))
            .collect();
        assert!(unfinished.contains(&(alice.as_str().to_owned(), "a2".to_owned())));
        assert!(unfinished.contains(&(bob.as_str().to_owned(), "b1".to_owned())));
        assert!(!unfinished.iter().any(|(_, id)| id == "a1"));
        let states: BTreeMap<String, u64> = store.count_by_state().unwrap().into_iter().collect();
        assert!(states["invalid"] >= 1 && states["validating"] >= 1);

        // A removal is a change too.
        assert_eq!(store.delete_job(&alice, "a1").unwrap(), Some(4));
        assert_eq!(store.delete_job(&alice, "a1").unwrap(), None);
        assert_eq!(store.snapshot(&alice).unwrap().0, 4);

        // Tokens and schemas.
        assert_eq!(store.token_owner("h1").unwrap(), None);
        store.add_token("h1", &alice).unwrap();
        assert_eq!(store.token_owner("h1").unwrap(), Some(alice.clone()));
        assert!(store.remove_token("h1").unwrap());
        assert!(!store.remove_token("h1").unwrap());
        assert_eq!(store.token_owner("h1").unwrap(), None);
        let schema = StoredSchema {
            id: "s1".into(),
            name: "people".into(),
            body: r#"{"fields": []}"#.into(),
        };
        store.add_schema(&alice, &schema).unwrap();
        let listed = store.schemas(&alice).unwrap();
        assert_eq!(
            (listed[0].id.as_str(), listed[0].body.as_str()),
            ("s1", schema.body.as_str())
        );
        assert!(store.schemas(&bob).unwrap().is_empty());
    }

    /// Writers racing on one owner, through any of `stores` (one per server node), get every
    /// sequence number exactly once.
    fn sequence_numbers_are_gap_free(stores: &[Arc<dyn JobStore>]) {
        let owner = OwnerId::random();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (store, owner) = (stores[t % stores.len()].clone(), owner.clone());
                std::thread::spawn(move || {
                    (0..25)
                        .map(|i| {
                            store
                                .save_job(&owner, &job(&format!("j{t}-{i}"), JobState::Queued, i))
                                .unwrap()
                        })
                        .collect::<Vec<u64>>()
                })
            })
            .collect();
        let mut seen: Vec<u64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (1..=200).collect::<Vec<u64>>());
    }

    #[test]
    fn sqlite_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(None, dir.path()).unwrap();
        behaves_like_a_job_store(store.as_ref());
        sequence_numbers_are_gap_free(&[store]);
    }

    #[test]
    fn postgres_store() {
        let postgres = TestPostgres::start();
        let unused = tempfile::tempdir().unwrap();
        let store = open(Some(&postgres.url), unused.path()).unwrap();
        behaves_like_a_job_store(store.as_ref());
        // A second node on the same database: migrating again changes nothing, and both
        // nodes draw from one sequence per owner.
        let second = open(Some(&postgres.url), unused.path()).unwrap();
        sequence_numbers_are_gap_free(&[store, second]);
        assert!(
            std::fs::read_dir(unused.path()).unwrap().next().is_none(),
            "no SQLite file next to PostgreSQL"
        );
    }

    #[test]
    fn an_unreachable_database_is_a_clear_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port(); // free again once the listener drops: nothing answers there
        let url = format!("postgres://nobody@127.0.0.1:{port}/db");
        let refused = postgres::PgStore::connect(&url, Duration::from_secs(1))
            .err()
            .unwrap();
        assert!(
            refused.0.starts_with("cannot use the PostgreSQL database"),
            "{}",
            refused.0
        );
    }

    #[test]
    fn other_database_urls_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let refused = open(Some("mysql://localhost/db"), dir.path())
            .err()
            .unwrap();
        assert!(
            refused.0.contains("must start with postgres://"),
            "{}",
            refused.0
        );
    }
}
