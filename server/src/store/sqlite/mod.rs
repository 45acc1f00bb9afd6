//! The embedded job store: one SQLite file in the data dir, WAL mode, versioned migrations.

//!
//! This file opens the file and holds its connections; [`migrations`] brings its tables up to
//! date, [`queries`] implements the store on them.

mod migrations;
mod queries;

use std::path::Path;
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

use self::migrations::migrate;
use super::{Lease, StoreError, StoreResult};

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
                other => break other?,
            }
        }
        // Commits no longer checkpoint: the checkpointer does, on its own connection.
        connection.pragma_update(None, "wal_autocheckpoint", 0)?;
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
    // A panic while holding the lock cannot leave SQLite half-written: a transaction rolls
    // back when it drops.
    let mut connection = crate::sync::lock(connection);
    Ok(f(&mut connection)?)
}

/// A connection that waits up to 5 s for a lock another connection or process holds.
fn open_waiting(path: &Path) -> StoreResult<Connection> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(Duration::from_secs(5))?;
    Ok(connection)
}

/// A connection that can only read (opened after the migrations, so the tables are there).
fn open_reader(path: &Path) -> StoreResult<Connection> {
    let reader = open_waiting(path)?;
    reader.pragma_update(None, "query_only", true)?;
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
            .map_err(|source| StoreError::Start {
                what: "the WAL checkpoint thread",
                source,
            })?;
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

#[cfg(test)]
mod tests;
