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
            created_at_ms: crate::now_ms(),
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
        (crate::now_ms() + self.duration.as_millis() as u64) as i64
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
        Some(other) => Err(StoreError(format!(
            "--database-url must start with postgres:// (got '{}'); leave it out for the SQLite file in the data dir",
            other.split(':').next().unwrap_or_default()
        ))),
        None => {
            std::fs::create_dir_all(data_dir)
                .map_err(|e| StoreError(format!("cannot create {}: {e}", data_dir.display())))?;
            Ok(Arc::new(sqlite::SqliteStore::open(
                &data_dir.join("datavista.sqlite3"),
                lease,
            )?))
        }
    }
}

pub trait JobStore: Send + Sync + 'static {
    /// Insert or update a job and give it the owner's next sequence number, in one
    /// transaction; returns that number. The job is this node's, under a fresh lease.
    /// Store a new job under this node's lease; the owner's next sequence number. `None`,
    /// and nothing changes, when the id exists.
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
    /// Jobs per state, for metrics.
    fn count_by_state(&self) -> StoreResult<Vec<(String, u64)>>;

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

/// Field names as the store keeps them: a JSON array of strings.
fn field_names_json(fields: &[String]) -> String {
    // A list of strings always serializes.
    serde_json::to_string(fields).expect("strings serialize")
}

/// A listing from its stored columns: the names when they were kept, else the body.
fn listing(
    id: String,
    name: String,
    fields: Option<String>,
    body: Option<String>,
) -> SchemaListing {
    let fields = match fields.and_then(|f| serde_json::from_str(&f).ok()) {
        Some(names) => ListedFields::Names(names),
        None => ListedFields::InBody(body.unwrap_or_default()),
    };
    SchemaListing { id, name, fields }
}

/// One behaviour, two backends: every test here runs on SQLite and on a real PostgreSQL.
/// The test kit's PostgreSQL, for the store tests below.
#[cfg(test)]
use datavista_testkit::postgres as test_postgres;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use datavista_shared::protocol::{Job, JobProgress, JobState};
    use datavista_shared::report::ErrorCode;

    use super::test_postgres::TestPostgres;
    use super::*;
    use crate::identity::token_hash;

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
                .create_job(&alice, &job("a1", JobState::Queued, 1))
                .unwrap(),
            Some(1)
        );
        let mut finished = job("a1", JobState::Invalid, 1);
        finished.progress.errors = 7;
        finished.error_counts.insert(ErrorCode::TypeError, 7);
        finished.updated_at_ms = 5;
        assert_eq!(store.save_job(&alice, &finished).unwrap(), Some(2));
        assert_eq!(store.job(&alice, "a1").unwrap(), Some(finished.clone()));
        assert_eq!(
            store
                .create_job(&alice, &job("a2", JobState::Validating, 2))
                .unwrap(),
            Some(3)
        );
        assert_eq!(
            store
                .create_job(&bob, &job("b1", JobState::Uploading, 3))
                .unwrap(),
            Some(1)
        );

        // Owners see only their own jobs, and cannot overwrite another's.
        assert_eq!(store.job(&bob, "a1").unwrap(), None);
        assert_eq!(
            store
                .save_job(&bob, &job("a1", JobState::Cancelled, 9))
                .unwrap(),
            None
        );
        assert_eq!(store.job(&alice, "a1").unwrap(), Some(finished.clone()));
        // An id is created once, and a change never creates (nor brings back) a job.
        let again = job("a1", JobState::Queued, 1);
        assert_eq!(store.create_job(&alice, &again).unwrap(), None);
        let unknown = job("nope", JobState::Validating, 1);
        assert_eq!(store.save_job(&alice, &unknown).unwrap(), None);
        assert_eq!(store.job(&alice, "nope").unwrap(), None);
        assert_eq!(
            store.snapshot(&bob).unwrap().0,
            1,
            "a refused write takes no number"
        );
        assert_eq!(store.delete_job(&bob, "a1").unwrap(), None);

        // Newest first, pages, counts, one consistent snapshot.
        let ids = |jobs: Vec<Job>| jobs.into_iter().map(|j| j.id).collect::<Vec<_>>();
        assert_eq!(ids(store.jobs(&alice, 0, 10).unwrap()), ["a2", "a1"]);
        assert_eq!(ids(store.jobs(&alice, 1, 10).unwrap()), ["a1"]);
        assert_eq!(ids(store.jobs(&alice, 0, 1).unwrap()), ["a2"]);
        assert_eq!(store.job_count(&alice).unwrap(), 2);
        // Retention looks at finished jobs only (a2 is validating), oldest first.
        assert_eq!(store.finished_jobs_past(&alice, 0).unwrap(), ["a1"]);
        assert!(store.finished_jobs_past(&alice, 1).unwrap().is_empty());
        let carol = OwnerId::random();
        // By when they finished, not when they began: a long upload started first may end last.
        for (id, created, finished) in [("c1", 10, 40), ("c2", 20, 50), ("c3", 30, 35)] {
            let done = Job {
                updated_at_ms: finished,
                ..job(id, JobState::Valid, created)
            };
            store.create_job(&carol, &done).unwrap();
        }
        assert_eq!(store.finished_jobs_past(&carol, 1).unwrap(), ["c3", "c1"]);
        let (seq, jobs) = store.snapshot(&alice).unwrap();
        assert_eq!(
            (seq, ids(jobs)),
            (3, vec!["a2".to_owned(), "a1".to_owned()])
        );

        // This node's own unfinished jobs are in its lease: nothing to take over.
        assert!(store.claim_orphaned_jobs().unwrap().is_empty());
        store.renew_leases().unwrap();
        assert!(store.claim_orphaned_jobs().unwrap().is_empty());
        let states: BTreeMap<String, u64> = store.count_by_state().unwrap().into_iter().collect();
        assert!(states["invalid"] >= 1 && states["validating"] >= 1);

        // A removal is a change too.
        assert_eq!(store.delete_job(&alice, "a1").unwrap(), Some(4));
        assert_eq!(store.delete_job(&alice, "a1").unwrap(), None);
        assert_eq!(store.snapshot(&alice).unwrap().0, 4);

        // Tokens: found by hash, listed oldest first, removed by id.
        let (h1, h2) = (token_hash("dv_one"), token_hash("dv_two"));
        assert_eq!(store.token(&h1).unwrap(), None);
        let first = StoredToken::new(&h1, alice.clone(), "dv_o", None);
        let second = StoredToken::new(&h2, bob.clone(), "dv_t", Some(42));
        store.add_token(&h1, &first).unwrap();
        store.add_token(&h2, &second).unwrap();
        assert_eq!(
            (first.id.as_str(), &first.owner, first.hint.as_deref()),
            (token_id(&h1), &alice, Some("dv_o"))
        );
        assert_eq!(store.token(&h1).unwrap(), Some(first.clone()));
        assert_eq!(store.token(&h2).unwrap().unwrap().expires_at_ms, Some(42));
        assert!(second.expired(42) && !second.expired(41) && !first.expired(u64::MAX));
        let mut listed = store.tokens().unwrap();
        listed.sort_by_key(|t| t.owner == bob); // made in the same millisecond, maybe
        assert_eq!(listed, [first.clone(), second.clone()]);
        assert!(store.remove_token(&first.id).unwrap());
        assert!(!store.remove_token(&first.id).unwrap());
        assert_eq!(store.token(&h1).unwrap(), None);
        assert_eq!(store.tokens().unwrap(), std::slice::from_ref(&second));
        assert!(store.remove_token(&second.id).unwrap());

        // Schemas.
        let schema = |id: &str| StoredSchema {
            id: id.into(),
            name: "people".into(),
            body: r#"{"fields": [{"name": "a"}]}"#.into(),
            fields: vec!["a".into()],
        };
        assert!(store.add_schema(&alice, &schema("s1"), 2).unwrap());
        assert!(store.add_schema(&alice, &schema("s2"), 2).unwrap());
        assert!(
            !store.add_schema(&alice, &schema("s3"), 2).unwrap(),
            "past the cap"
        );
        let listed = store.schemas(&alice).unwrap();
        assert_eq!(
            listed,
            ["s1", "s2"].map(|id| SchemaListing {
                id: id.into(),
                name: "people".into(),
                fields: ListedFields::Names(vec!["a".into()]),
            })
        );
        assert_eq!(
            store.schema(&alice, "s2").unwrap().unwrap().body,
            schema("s2").body
        );
        assert!(
            store.schema(&bob, "s2").unwrap().is_none(),
            "another owner's"
        );
        assert!(store.schemas(&bob).unwrap().is_empty());
    }

    /// Concurrent adds of one owner, each checking the cap: exactly the cap's worth land.
    fn concurrent_adds_never_pass_the_schema_cap(store: std::sync::Arc<dyn JobStore>) {
        let owner = OwnerId::random();
        let adders: Vec<_> = (0..8)
            .map(|i| {
                let (store, owner) = (store.clone(), owner.clone());
                std::thread::spawn(move || {
                    (0..5)
                        .filter(|j| {
                            let schema = StoredSchema {
                                id: format!("c{i}-{j}"),
                                name: "n".into(),
                                body: "{}".into(),
                                fields: Vec::new(),
                            };
                            store.add_schema(&owner, &schema, 10).unwrap()
                        })
                        .count()
                })
            })
            .collect();
        let added: usize = adders.into_iter().map(|a| a.join().unwrap()).sum();
        assert_eq!(added, 10);
        assert_eq!(store.schemas(&owner).unwrap().len(), 10);
    }

    /// A token stored before tokens had ids (with `hash`, owner `o`, made at 7 ms) gets from
    /// the migration the id that `token revoke` derives from the token, and never expires.
    pub(super) fn a_token_from_before_ids_is_listed_and_revoked(store: &dyn JobStore, hash: &str) {
        let token = StoredToken {
            id: token_id(hash).to_owned(),
            owner: OwnerId::from_stored("o".to_owned()),
            hint: None,
            created_at_ms: 7,
            expires_at_ms: None,
        };
        assert_eq!(store.tokens().unwrap(), std::slice::from_ref(&token));
        assert_eq!(store.token(hash).unwrap(), Some(token));
        assert!(store.remove_token(token_id(hash)).unwrap());
        assert_eq!(store.token(hash).unwrap(), None);
    }

    fn lease(millis: u64) -> Lease {
        Lease::new(Duration::from_millis(millis))
    }

    /// One unfinished job named `running` and one finished job, of a new owner.
    fn save_running_and_done(store: &dyn JobStore, running: &str) {
        let owner = OwnerId::random();
        store
            .create_job(&owner, &job(running, JobState::Validating, 1))
            .unwrap();
        store
            .create_job(&owner, &job("done", JobState::Valid, 2))
            .unwrap();
    }

    /// The unfinished jobs `store` took over, by id.
    fn claimed(store: &dyn JobStore) -> Vec<String> {
        let jobs = store.claim_orphaned_jobs().unwrap();
        jobs.into_iter().map(|(_, job)| job.id).collect()
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
                                .create_job(&owner, &job(&format!("j{t}-{i}"), JobState::Queued, i))
                                .unwrap()
                                .expect("a new job is saved")
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

    /// A job this node claimed but let go of is up for taking again, by any node.
    fn released_jobs_are_taken_again(store: &dyn JobStore) {
        save_running_and_done(store, "held");
        assert!(claimed(store).is_empty(), "its own job is not orphaned");
        store.release_job("held").unwrap();
        assert_eq!(claimed(store), ["held"]);
    }

    #[test]
    fn sqlite_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(None, dir.path(), lease(10_000)).unwrap();
        behaves_like_a_job_store(store.as_ref());
        released_jobs_are_taken_again(store.as_ref());
        concurrent_adds_never_pass_the_schema_cap(store.clone());
        sequence_numbers_are_gap_free(&[store]);
    }

    /// One process serves a SQLite file: a later one takes every unfinished job at once,
    /// however long the earlier lease had to run.
    #[test]
    fn a_later_sqlite_process_takes_over_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let earlier = open(None, dir.path(), lease(600_000)).unwrap();
        save_running_and_done(earlier.as_ref(), "running");
        drop(earlier);
        let later = open(None, dir.path(), lease(600_000)).unwrap();
        assert_eq!(claimed(later.as_ref()), ["running"]);
        assert!(
            claimed(later.as_ref()).is_empty(),
            "now it is the later one's"
        );
    }

    /// Nodes on one PostgreSQL: a job passes to another node only when its lease runs out
    /// (the node stopped renewing) or is released, and then to exactly one node.
    #[test]
    fn postgres_jobs_pass_between_nodes_by_lease() {
        let postgres = TestPostgres::start();
        let unused = tempfile::tempdir().unwrap();
        let node = |millis| open(Some(&postgres.url), unused.path(), lease(millis)).unwrap();
        let (first, second, third) = (node(1_500), node(60_000), node(60_000));
        save_running_and_done(first.as_ref(), "j");
        assert!(claimed(second.as_ref()).is_empty(), "the lease is running");
        std::thread::sleep(Duration::from_millis(1_000));
        first.renew_leases().unwrap();
        std::thread::sleep(Duration::from_millis(1_000));
        assert!(
            claimed(second.as_ref()).is_empty(),
            "renewed, so still running"
        );
        std::thread::sleep(Duration::from_millis(1_000));
        // The first node stopped renewing: one of the others takes the job, not both.
        let taken = [claimed(second.as_ref()), claimed(third.as_ref())].concat();
        assert_eq!(taken, ["j"]);
        // A node that stops cleanly lets go at once.
        second.release_leases().unwrap();
        third.release_leases().unwrap();
        assert_eq!(claimed(first.as_ref()), ["j"]);
        assert!(claimed(second.as_ref()).is_empty());
    }

    /// Nodes on one PostgreSQL: a node with idle workers takes the jobs other nodes hold
    /// queued, and the node that lost one can no longer write it.
    #[test]
    fn postgres_idle_nodes_take_queued_jobs_from_busy_ones() {
        let postgres = TestPostgres::start();
        let unused = tempfile::tempdir().unwrap();
        let node = || open(Some(&postgres.url), unused.path(), lease(60_000)).unwrap();
        let (busy, idle, other) = (node(), node(), node());
        let owner = OwnerId::random();
        let now = crate::now_ms();
        let fresh = |id: &str, state, created| Job {
            updated_at_ms: now,
            ..job(id, state, created)
        };
        for (store, id, state, created) in [
            (&idle, "own", JobState::Queued, now), // the oldest
            (&busy, "q1", JobState::Queued, now + 1),
            (&busy, "q2", JobState::Queued, now + 2),
            (&busy, "v", JobState::Validating, now),
            (&busy, "u", JobState::Uploading, now),
        ] {
            store
                .create_job(&owner, &fresh(id, state, created))
                .unwrap()
                .unwrap();
        }
        let ids =
            |jobs: Vec<(OwnerId, Job)>| jobs.into_iter().map(|(_, j)| j.id).collect::<Vec<_>>();
        let waiting = Duration::from_millis(200);
        assert!(
            idle.claim_queued_jobs(10, waiting).unwrap().is_empty(),
            "just queued: left to their node a moment"
        );
        std::thread::sleep(waiting);
        // Only other nodes' queued jobs, oldest first, at most `limit`, each to one node.
        assert_eq!(ids(idle.claim_queued_jobs(1, waiting).unwrap()), ["q1"]);
        assert_eq!(
            ids(other.claim_queued_jobs(10, waiting).unwrap()),
            ["own", "q2"],
            "not q1: just taken"
        );
        assert!(idle.claim_queued_jobs(10, waiting).unwrap().is_empty());
        // The busy node lost q1: its late start is refused, the new holder's goes through.
        assert_eq!(
            busy.save_job(&owner, &fresh("q1", JobState::Validating, now + 1))
                .unwrap(),
            None
        );
        assert!(idle
            .save_job(&owner, &fresh("q1", JobState::Validating, now + 1))
            .unwrap()
            .is_some());
        assert_eq!(
            busy.job(&owner, "q1").unwrap().unwrap().state,
            JobState::Validating
        );
        // It still writes the jobs it holds.
        assert!(busy
            .save_job(&owner, &fresh("v", JobState::Valid, now))
            .unwrap()
            .is_some());
    }

    #[test]
    fn sqlite_has_no_other_nodes_to_take_queued_jobs_from() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(None, dir.path(), lease(10_000)).unwrap();
        store
            .create_job(&OwnerId::random(), &job("q", JobState::Queued, 1))
            .unwrap();
        assert!(store
            .claim_queued_jobs(10, Duration::ZERO)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn postgres_store() {
        let postgres = TestPostgres::start();
        let unused = tempfile::tempdir().unwrap();
        let store = open(Some(&postgres.url), unused.path(), lease(10_000)).unwrap();
        behaves_like_a_job_store(store.as_ref());
        released_jobs_are_taken_again(store.as_ref());
        concurrent_adds_never_pass_the_schema_cap(store.clone());
        // A second node on the same database: migrating again changes nothing, and both
        // nodes draw from one sequence per owner.
        let second = open(Some(&postgres.url), unused.path(), lease(10_000)).unwrap();
        sequence_numbers_are_gap_free(&[store, second]);
        assert!(
            std::fs::read_dir(unused.path()).unwrap().next().is_none(),
            "no SQLite file next to PostgreSQL"
        );
    }

    /// `sslmode` (and `sslrootcert`) in the URL reach the driver, and TLS is built in: a
    /// server that takes TLS connections only accepts `require` and `verify-full` with its CA,
    /// refuses `disable`, and `verify-full` without the CA fails on the certificate.
    #[test]
    fn postgres_sslmode_in_the_url_is_honoured() {
        let postgres = TestPostgres::start_tls_only();
        let unused = tempfile::tempdir().unwrap();
        let ca = postgres.ca_file.clone().unwrap();
        let with = |query: &str| {
            let url = format!("{}?{query}", postgres.url);
            open(Some(&url), unused.path(), lease(1_000))
        };
        let verified = format!("sslmode=verify-full&sslrootcert={}", ca.display());
        for query in ["sslmode=require", verified.as_str()] {
            let store = with(query).unwrap_or_else(|e| panic!("{query}: {e}"));
            assert_eq!(store.job_count(&OwnerId::random()).unwrap(), 0);
        }
        let refused = with("sslmode=disable").err().unwrap().0;
        assert!(refused.contains("no encryption"), "{refused}");
        let unknown_ca = with("sslmode=verify-full").err().unwrap().0;
        assert!(
            unknown_ca.to_lowercase().contains("certificate"),
            "{unknown_ca}"
        );
    }

    #[test]
    fn an_unreachable_database_is_a_clear_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port(); // free again once the listener drops: nothing answers there
        let url = format!("postgres://nobody@127.0.0.1:{port}/db");
        let refused = postgres::PgStore::connect(&url, Duration::from_secs(1), lease(1))
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
        let refused = open(Some("mysql://localhost/db"), dir.path(), lease(1))
            .err()
            .unwrap();
        assert!(
            refused.0.contains("must start with postgres://"),
            "{}",
            refused.0
        );
    }
}
