//! The embedded job store: one SQLite file in the data dir, WAL mode, versioned migrations.

use std::path::Path;
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use datavista_shared::protocol::{Job, JobProgress, JobState};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{JobStore, Lease, SchemaListing, StoreError, StoreResult, StoredSchema, StoredToken};
use crate::owner::OwnerId;

/// Each entry moves the schema one version up; `PRAGMA user_version` says where a file is.
const MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE owners (
        id TEXT PRIMARY KEY,
        last_seq INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE tokens (
        hash TEXT PRIMARY KEY,
        owner_id TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        owner_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        file_name TEXT NOT NULL,
        schema_id TEXT,
        state TEXT NOT NULL,
        bytes_done INTEGER NOT NULL,
        bytes_total INTEGER,
        rows INTEGER NOT NULL,
        errors INTEGER NOT NULL,
        error_counts TEXT NOT NULL,
        reason TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX jobs_by_owner ON jobs (owner_id, created_at DESC, id);
    CREATE INDEX jobs_by_state ON jobs (state);
    CREATE TABLE schemas (
        id TEXT PRIMARY KEY,
        owner_id TEXT NOT NULL,
        name TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
"#,
    r#"
    ALTER TABLE jobs ADD COLUMN node_id TEXT;
    ALTER TABLE jobs ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;
"#,
    // Tokens get an id to list and revoke them by (see `store::token_id`), a hint and an
    // optional expiry.
    r#"
    ALTER TABLE tokens ADD COLUMN id TEXT;
    ALTER TABLE tokens ADD COLUMN hint TEXT;
    ALTER TABLE tokens ADD COLUMN expires_at INTEGER;
    UPDATE tokens SET id = substr(hash, 1, 12);
    CREATE UNIQUE INDEX tokens_by_id ON tokens (id);
"#,
    r#"
    ALTER TABLE schemas ADD COLUMN fields TEXT;
    CREATE INDEX schemas_by_owner ON schemas (owner_id, created_at);
"#,
];

/// How often the [`Checkpointer`] moves committed pages from the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

pub struct SqliteStore {
    /// Every write goes through this one connection (SQLite has one writer at a time anyway).
    connection: Mutex<Connection>,
    /// Reads (lists, snapshots, lookups) have their own: in WAL mode they run beside a
    /// write instead of queueing behind it, so a dashboard polling or a tab connecting never
    /// delays a job's update. Each read sees every write committed before it began.
    reader: Mutex<Connection>,
    lease: Lease,
    _checkpointer: Checkpointer,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

impl SqliteStore {
    pub fn open(path: &Path, lease: Lease) -> StoreResult<SqliteStore> {
        SqliteStore::open_checkpointing_every(path, lease, CHECKPOINT_EVERY)
    }

    fn open_checkpointing_every(
        path: &Path,
        lease: Lease,
        every: Duration,
    ) -> StoreResult<SqliteStore> {
        // The wait first: switching a fresh file to WAL needs a moment alone with it, and
        // another process (`token create` next to `serve`) may be opening it right now.
        let mut connection = open_waiting(path)?;
        // SQLite answers "locked" at once, without the busy wait, where waiting could
        // deadlock, e.g. while another process switches the fresh file to WAL. Set-up is
        // idempotent, so it is simply tried again, for a bounded time.
        let mut tries = 0;
        loop {
            let set_up = connection
                .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
                .and_then(|()| migrate(&mut connection));
            match set_up {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if matches!(
                        e.code,
                        rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                    ) && tries < 200 =>
                {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                other => break other.map_err(err)?,
            }
        }
        // Commits no longer checkpoint: the checkpointer does, on its own connection.
        connection
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(err)?;
        Ok(SqliteStore {
            connection: Mutex::new(connection),
            reader: Mutex::new(open_reader(path)?),
            lease,
            _checkpointer: Checkpointer::start(path, every)?,
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        locked(&self.connection, f)
    }

    fn read<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        locked(&self.reader, f)
    }
}

fn locked<T>(
    connection: &Mutex<Connection>,
    f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
) -> StoreResult<T> {
    // A panic while holding the lock cannot leave SQLite half-written (transactions roll
    // back), so a poisoned lock is still safe to use.
    let mut connection = connection
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    f(&mut connection).map_err(err)
}

/// A connection that waits up to 5 s for a lock another connection or process holds.
fn open_waiting(path: &Path) -> StoreResult<Connection> {
    let connection = Connection::open(path).map_err(err)?;
    connection
        .busy_timeout(Duration::from_secs(5))
        .map_err(err)?;
    Ok(connection)
}

/// A connection that can only read (opened after the migrations, so the tables are there).
fn open_reader(path: &Path) -> StoreResult<Connection> {
    let reader = open_waiting(path)?;
    reader
        .pragma_update(None, "query_only", true)
        .map_err(err)?;
    Ok(reader)
}

/// Checkpoints the WAL on a thread and connection of its own, until dropped.
///
/// SQLite's default checkpoints inside the commit that fills the WAL past 1,000 pages, and a
/// checkpoint waits for two fsyncs. Under upload traffic a disk flush takes milliseconds, all
/// of it spent holding the store's one connection, so every job update behind it (a final
/// state a dashboard is waiting for) waited too (BENCHMARKS.md, "Push latency"). A PASSIVE
/// checkpoint from another connection runs beside the writers instead of in their way.
struct Checkpointer {
    /// Dropping it tells the thread to stop.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    fn start(path: &Path, every: Duration) -> StoreResult<Checkpointer> {
        let connection = open_waiting(path)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".to_owned())
            .spawn(move || {
                // A disk that stays full fails every turn: warn when a run of failures starts,
                // then once a minute or so, not every second.
                let mut failures_in_a_row = 0u64;
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    let checkpoint =
                        connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    match checkpoint {
                        Err(e) => {
                            if failures_in_a_row.is_multiple_of(60) {
                                tracing::warn!(error = %e, failures_in_a_row, "WAL checkpoint failed; trying again later");
                            }
                            failures_in_a_row += 1;
                        }
                        Ok(()) if failures_in_a_row > 0 => {
                            tracing::info!(failures_in_a_row, "WAL checkpoint works again");
                            failures_in_a_row = 0;
                        }
                        Ok(()) => {}
                    }
                }
            })
            .map_err(err)?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A transaction that will write: it takes the write lock at BEGIN, waiting (busy timeout) for
/// another process such as `token create`. A deferred one that reads first and writes after
/// gets "database is locked" at once when another process wrote meanwhile, since SQLite
/// cannot wait there without risking a deadlock.
fn write_transaction(connection: &mut Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
}

/// Bring the file up to the latest schema. The version is read inside an IMMEDIATE
/// transaction, so two processes opening a fresh file (`serve` and `token create`) take turns
/// instead of both creating the tables.
fn migrate(connection: &mut Connection) -> rusqlite::Result<()> {
    let tx = write_transaction(connection)?;
    let version: usize = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    for (i, migration) in MIGRATIONS.iter().enumerate().skip(version) {
        tx.execute_batch(migration)?;
        tx.pragma_update(None, "user_version", i + 1)?;
    }
    tx.commit()
}

/// A job that has not reached a final state.
const UNFINISHED: &str = "state IN ('uploading', 'queued', 'validating')";

const JOB_COLUMNS: &str =
    "id, file_name, schema_id, state, bytes_done, bytes_total, rows, errors, error_counts, reason, created_at, updated_at";

fn job_from_row(row: &Row<'_>) -> rusqlite::Result<Job> {
    let state: String = row.get(3)?;
    let counts: String = row.get(8)?;
    Ok(Job {
        id: row.get(0)?,
        file_name: row.get(1)?,
        schema_id: row.get(2)?,
        state: serde_json::from_value(serde_json::Value::String(state)).unwrap_or(JobState::Failed),
        progress: JobProgress {
            bytes_done: row.get::<_, i64>(4)? as u64,
            bytes_total: row.get::<_, Option<i64>>(5)?.map(|v| v as u64),
            rows: row.get::<_, i64>(6)? as u64,
            errors: row.get::<_, i64>(7)? as u64,
        },
        error_counts: serde_json::from_str(&counts).unwrap_or_default(),
        reason: row.get(9)?,
        created_at_ms: row.get::<_, i64>(10)? as u64,
        updated_at_ms: row.get::<_, i64>(11)? as u64,
    })
}

const TOKEN_COLUMNS: &str = "id, owner_id, hint, created_at, expires_at";

fn token_from_row(row: &Row<'_>) -> rusqlite::Result<StoredToken> {
    Ok(StoredToken {
        id: row.get(0)?,
        owner: OwnerId::from_stored(row.get(1)?),
        hint: row.get(2)?,
        created_at_ms: row.get::<_, i64>(3)? as u64,
        expires_at_ms: row.get::<_, Option<i64>>(4)?.map(|v| v as u64),
    })
}

fn next_seq(tx: &rusqlite::Transaction<'_>, owner: &OwnerId) -> rusqlite::Result<u64> {
    tx.execute(
        "INSERT INTO owners (id, last_seq) VALUES (?1, 1) ON CONFLICT (id) DO UPDATE SET last_seq = last_seq + 1",
        params![owner.as_str()],
    )?;
    tx.query_row(
        "SELECT last_seq FROM owners WHERE id = ?1",
        params![owner.as_str()],
        |row| row.get::<_, i64>(0),
    )
    .map(|seq| seq as u64)
}

impl SqliteStore {
    /// Write a job row (a new one when `create`, else a change to a row of this owner that
    /// this process holds) in one transaction with the owner's next sequence number; `None`,
    /// and the number goes back unused, when no row was written.
    fn write_job(&self, owner: &OwnerId, job: &Job, create: bool) -> StoreResult<Option<u64>> {
        self.with(|connection| {
            let tx = write_transaction(connection)?;
            let seq = next_seq(&tx, owner)?;
            let counts = serde_json::to_string(&job.error_counts).expect("error counts serialize");
            let (seq, bytes_done) = (seq as i64, job.progress.bytes_done as i64);
            let (rows, errors) = (job.progress.rows as i64, job.progress.errors as i64);
            let bytes_total = job.progress.bytes_total.map(|v| v as i64);
            let (updated_at, created_at) = (job.updated_at_ms as i64, job.created_at_ms as i64);
            let (owner_id, state) = (owner.as_str(), job.state.as_str());
            let lease_until = self.lease.until_ms();
            // The first 13 parameters are the same for both; a new row also takes 14–16.
            let mut values: Vec<&dyn rusqlite::ToSql> = vec![
                &job.id,
                &owner_id,
                &seq,
                &state,
                &bytes_done,
                &bytes_total,
                &rows,
                &errors,
                &counts,
                &job.reason,
                &updated_at,
                &self.lease.node,
                &lease_until,
            ];
            let sql = if create {
                values.extend([
                    &job.file_name as &dyn rusqlite::ToSql,
                    &job.schema_id,
                    &created_at,
                ]);
                "INSERT INTO jobs (id, owner_id, seq, state, bytes_done, bytes_total, rows, errors,
                                   error_counts, reason, updated_at, node_id, lease_until,
                                   file_name, schema_id, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
                 ON CONFLICT (id) DO NOTHING"
            } else {
                "UPDATE jobs SET seq = ?3, state = ?4, bytes_done = ?5, bytes_total = ?6, rows = ?7,
                     errors = ?8, error_counts = ?9, reason = ?10, updated_at = ?11, node_id = ?12,
                     lease_until = ?13
                 WHERE id = ?1 AND owner_id = ?2 AND (node_id = ?12 OR node_id IS NULL)"
            };
            if tx.execute(sql, values.as_slice())? == 0 {
                return Ok(None); // dropping the transaction rolls the sequence number back
            }
            tx.commit()?;
            Ok(Some(seq as u64))
        })
    }
}

impl JobStore for SqliteStore {
    fn create_job(&self, owner: &OwnerId, job: &Job) -> StoreResult<Option<u64>> {
        self.write_job(owner, job, true)
    }

    fn save_job(&self, owner: &OwnerId, job: &Job) -> StoreResult<Option<u64>> {
        self.write_job(owner, job, false)
    }

    fn release_job(&self, id: &str) -> StoreResult<()> {
        self.with(|connection| {
            connection.execute(
                "UPDATE jobs SET node_id = NULL, lease_until = 0 WHERE id = ?1 AND node_id = ?2",
                params![id, self.lease.node],
            )?;
            Ok(())
        })
    }

    fn delete_job(&self, owner: &OwnerId, id: &str) -> StoreResult<Option<u64>> {
        self.with(|connection| {
            let tx = write_transaction(connection)?;
            let removed = tx.execute(
                "DELETE FROM jobs WHERE id = ?1 AND owner_id = ?2",
                params![id, owner.as_str()],
            )?;
            if removed == 0 {
                return Ok(None);
            }
            let seq = next_seq(&tx, owner)?;
            tx.commit()?;
            Ok(Some(seq))
        })
    }

    fn job(&self, owner: &OwnerId, id: &str) -> StoreResult<Option<Job>> {
        self.read(|connection| {
            connection
                .query_row(
                    &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1 AND owner_id = ?2"),
                    params![id, owner.as_str()],
                    job_from_row,
                )
                .optional()
        })
    }

    fn jobs(&self, owner: &OwnerId, offset: u64, limit: u64) -> StoreResult<Vec<Job>> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE owner_id = ?1 ORDER BY created_at DESC, id LIMIT ?2 OFFSET ?3"
            ))?;
            let rows = statement.query_map(params![owner.as_str(), limit as i64, offset as i64], job_from_row)?;
            rows.collect()
        })
    }

    fn job_count(&self, owner: &OwnerId) -> StoreResult<u64> {
        self.read(|connection| {
            connection
                .query_row(
                    "SELECT COUNT(*) FROM jobs WHERE owner_id = ?1",
                    params![owner.as_str()],
                    |row| row.get::<_, i64>(0),
                )
                .map(|n| n as u64)
        })
    }

    fn finished_jobs_past(&self, owner: &OwnerId, keep: usize) -> StoreResult<Vec<String>> {
        self.read(|connection| {
            let mut statement = connection.prepare(&format!(
                "SELECT id FROM jobs WHERE owner_id = ?1 AND NOT {UNFINISHED}
                 ORDER BY updated_at DESC, id DESC LIMIT -1 OFFSET ?2"
            ))?;
            let ids =
                statement.query_map(params![owner.as_str(), keep as i64], |row| row.get(0))?;
            let mut ids: Vec<String> = ids.collect::<rusqlite::Result<_>>()?;
            ids.reverse();
            Ok(ids)
        })
    }

    fn snapshot(&self, owner: &OwnerId) -> StoreResult<(u64, Vec<Job>)> {
        self.read(|connection| {
            let tx = connection.transaction()?;
            let seq = tx
                .query_row("SELECT last_seq FROM owners WHERE id = ?1", params![owner.as_str()], |row| row.get::<_, i64>(0))
                .optional()?
                .unwrap_or(0) as u64;
            let jobs = {
                let mut statement = tx.prepare_cached(&format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE owner_id = ?1 ORDER BY created_at DESC, id"
                ))?;
                let rows = statement.query_map(params![owner.as_str()], job_from_row)?;
                rows.collect::<rusqlite::Result<Vec<Job>>>()?
            };
            tx.commit()?;
            Ok((seq, jobs))
        })
    }

    fn renew_leases(&self) -> StoreResult<()> {
        self.with(|connection| {
            connection.execute(
                &format!("UPDATE jobs SET lease_until = ?1 WHERE node_id = ?2 AND {UNFINISHED}"),
                params![self.lease.until_ms(), self.lease.node],
            )?;
            Ok(())
        })
    }

    fn claim_orphaned_jobs(&self) -> StoreResult<Vec<(OwnerId, Job)>> {
        self.with(|connection| {
            let tx = write_transaction(connection)?;
            // One process per file: every unfinished job another process held is orphaned.
            let orphaned = format!("{UNFINISHED} AND (node_id IS NULL OR node_id <> ?1)");
            let jobs = {
                let mut statement = tx.prepare(&format!(
                    "SELECT {JOB_COLUMNS}, owner_id FROM jobs WHERE {orphaned} ORDER BY created_at"
                ))?;
                let rows = statement.query_map(params![self.lease.node], |row| {
                    Ok((OwnerId::from_stored(row.get(12)?), job_from_row(row)?))
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            };
            tx.execute(
                &format!("UPDATE jobs SET node_id = ?1, lease_until = ?2 WHERE {orphaned}"),
                params![self.lease.node, self.lease.until_ms()],
            )?;
            tx.commit()?;
            Ok(jobs)
        })
    }

    fn claim_queued_jobs(
        &self,
        _limit: usize,
        _waiting: std::time::Duration,
    ) -> StoreResult<Vec<(OwnerId, Job)>> {
        Ok(Vec::new()) // one node: its queued jobs wait for its own workers
    }

    fn release_leases(&self) -> StoreResult<()> {
        self.with(|connection| {
            connection.execute(
                &format!("UPDATE jobs SET lease_until = 0 WHERE node_id = ?1 AND {UNFINISHED}"),
                params![self.lease.node],
            )?;
            Ok(())
        })
    }

    fn count_by_state(&self) -> StoreResult<Vec<(String, u64)>> {
        self.read(|connection| {
            let mut statement =
                connection.prepare("SELECT state, COUNT(*) FROM jobs GROUP BY state")?;
            let rows =
                statement.query_map([], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64)))?;
            rows.collect()
        })
    }

    fn add_token(&self, token_hash: &str, token: &StoredToken) -> StoreResult<()> {
        self.with(|connection| {
            connection.execute(
                "INSERT INTO tokens (hash, id, owner_id, hint, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    token_hash,
                    token.id,
                    token.owner.as_str(),
                    token.hint,
                    token.created_at_ms as i64,
                    token.expires_at_ms.map(|v| v as i64)
                ],
            )?;
            Ok(())
        })
    }

    fn token(&self, token_hash: &str) -> StoreResult<Option<StoredToken>> {
        self.read(|connection| {
            connection
                .query_row(
                    &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = ?1"),
                    params![token_hash],
                    token_from_row,
                )
                .optional()
        })
    }

    fn tokens(&self) -> StoreResult<Vec<StoredToken>> {
        self.read(|connection| {
            let mut statement = connection.prepare(&format!(
                "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at"
            ))?;
            let rows = statement.query_map([], token_from_row)?;
            rows.collect()
        })
    }

    fn remove_token(&self, id: &str) -> StoreResult<bool> {
        self.with(|connection| {
            let removed = connection.execute("DELETE FROM tokens WHERE id = ?1", params![id])?;
            Ok(removed > 0)
        })
    }

    fn add_schema(
        &self,
        owner: &OwnerId,
        schema: &StoredSchema,
        max_per_owner: usize,
    ) -> StoreResult<bool> {
        self.with(|connection| {
            let tx = write_transaction(connection)?;
            let count: i64 = tx.query_row(
                "SELECT COUNT(*) FROM schemas WHERE owner_id = ?1",
                params![owner.as_str()],
                |row| row.get(0),
            )?;
            if count as usize >= max_per_owner {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO schemas (id, owner_id, name, body, fields, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    schema.id,
                    owner.as_str(),
                    schema.name,
                    schema.body,
                    super::field_names_json(&schema.fields),
                    crate::clock::now_ms() as i64
                ],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn schemas(&self, owner: &OwnerId) -> StoreResult<Vec<SchemaListing>> {
        self.read(|connection| {
            let mut statement = connection.prepare(
                "SELECT id, name, fields, CASE WHEN fields IS NULL THEN body END
                 FROM schemas WHERE owner_id = ?1 ORDER BY created_at, rowid",
            )?;
            let rows = statement.query_map(params![owner.as_str()], |row| {
                Ok(super::listing(
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                ))
            })?;
            rows.collect()
        })
    }

    fn schema(&self, owner: &OwnerId, id: &str) -> StoreResult<Option<StoredSchema>> {
        self.read(|connection| {
            connection
                .query_row(
                    "SELECT name, body, fields FROM schemas WHERE owner_id = ?1 AND id = ?2",
                    params![owner.as_str(), id],
                    |row| {
                        let fields: Option<String> = row.get(2)?;
                        Ok(StoredSchema {
                            id: id.to_owned(),
                            name: row.get(0)?,
                            body: row.get(1)?,
                            fields: fields
                                .and_then(|f| serde_json::from_str(&f).ok())
                                .unwrap_or_default(),
                        })
                    },
                )
                .optional()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::a_token_from_before_ids_is_listed_and_revoked;

    /// Commits leave the WAL alone, and the checkpointer still carries it into the database
    /// file: without it the file would keep its size for ever, with it the WAL would be
    /// checkpointed by whichever commit filled it.
    #[test]
    fn the_wal_is_checkpointed_beside_the_writers_not_by_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let store = SqliteStore::open_checkpointing_every(
            &path,
            Lease::new(Duration::from_secs(10)),
            Duration::from_millis(20),
        )
        .unwrap();
        let autocheckpoint: i64 = store
            .with(|c| c.query_row("PRAGMA wal_autocheckpoint", [], |row| row.get(0)))
            .unwrap();
        assert_eq!(autocheckpoint, 0, "commits must not checkpoint");

        let database_bytes = || std::fs::metadata(&path).unwrap().len();
        std::thread::sleep(Duration::from_millis(100)); // the migrations' pages are in
        let before = database_bytes();
        let owner = OwnerId::random();
        for i in 0..300 {
            let hash = format!("hash-{i:04}");
            let token = StoredToken::new(&hash, owner.clone(), "dv_", None);
            store.add_token(&hash, &token).unwrap();
        }
        let grew = (0..250).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            database_bytes() > before
        });
        assert!(grew, "the database file stayed at {before} bytes");
    }

    #[test]
    fn tokens_from_before_ids_are_listed_and_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(&format!(
            "{}{}PRAGMA user_version = 2;",
            MIGRATIONS[0], MIGRATIONS[1]
        ))
        .unwrap();
        let hash = crate::identity::token_hash("dv_old");
        old.execute(
            "INSERT INTO tokens (hash, owner_id, created_at) VALUES (?1, 'o', 7)",
            params![hash],
        )
        .unwrap();
        drop(old);

        let store = SqliteStore::open(&path, Lease::new(Duration::from_secs(10))).unwrap();
        a_token_from_before_ids_is_listed_and_revoked(&store, &hash);
    }

    /// A read never queues behind a write: with the writer's connection taken and inside an
    /// open write transaction, lookups and lists still answer, from what was committed.
    #[test]
    fn reads_are_answered_while_a_write_holds_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(
            SqliteStore::open(&dir.path().join("db"), Lease::new(Duration::from_secs(10))).unwrap(),
        );
        let owner = OwnerId::random();
        let token = StoredToken::new("committed", owner.clone(), "dv_", None);
        store.add_token("committed", &token).unwrap();
        let schema = StoredSchema {
            id: "s1".into(),
            name: "people".into(),
            body: "{}".into(),
            fields: Vec::new(),
        };
        store.add_schema(&owner, &schema, 1).unwrap();

        let writer = store.connection.lock().unwrap();
        writer
            .execute_batch(
                "BEGIN IMMEDIATE; INSERT INTO tokens (hash, owner_id, created_at) VALUES ('uncommitted', 'x', 0);",
            )
            .unwrap();
        let (answer, answered) = mpsc::channel();
        let reading = store.clone();
        let reader_owner = owner.clone();
        std::thread::spawn(move || {
            let _ = answer.send((
                reading.token("committed"),
                reading.token("uncommitted"),
                reading.schemas(&reader_owner),
                reading.snapshot(&reader_owner),
            ));
        });
        // A bound, not a timing: without a reader of its own this waits for ever.
        let answers = answered.recv_timeout(Duration::from_secs(60));
        writer.execute_batch("ROLLBACK").unwrap();
        drop(writer);
        let (committed, uncommitted, schemas, snapshot) =
            answers.expect("a read waited for the writer");
        assert_eq!(committed.unwrap().map(|t| t.owner), Some(owner));
        assert_eq!(
            uncommitted.unwrap(),
            None,
            "reads see committed writes only"
        );
        assert_eq!(schemas.unwrap().len(), 1);
        assert_eq!(snapshot.unwrap(), (0, Vec::new()));
        assert!(
            store.read(|c| c.execute("DELETE FROM tokens", [])).is_err(),
            "the reader cannot write"
        );
    }
}
