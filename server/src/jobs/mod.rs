//! Validation jobs: each upload is written to storage while the shared validator follows it
//! (pipelined: the verdict comes about when the last byte has arrived, instead of after
//! upload time plus validation time).
//!
//! A job's task waits for bytes without holding anything; when there is something to read it
//! takes a permit from the bounded worker pool and runs the validator on a blocking thread
//! until it has caught up (or used its turn), then gives the permit back. So a slow upload
//! never ties up a worker or a thread while it trickles in, and jobs waiting for a worker
//! show as `queued`.
//!
//! Validation beyond a job's first few MiB runs at idle CPU priority ([`ValidatorThreads`]),
//! so pushes and requests never wait for a core behind it; the job's end (report, final
//! state, push) runs at normal priority.
//!
//! Every change goes through [`Publisher`]: stored first (which assigns the owner's next
//! sequence number), then pushed. Progress is coalesced to at most ten updates a second, and
//! once a job has ended only its final state is ever stored.
//!
//! The runner's parts, by noun:
//! - [`publisher`]: store a change, then push it;
//! - [`control`]: one job's shared state (its view, the bytes that arrived, how the upload
//!   ended);
//! - [`runner`]: the turn scheduler that follows an upload, and the job's endings (report,
//!   final state, re-queue);
//! - [`slots`]: the caps on uploads running at once;
//! - [`recovery`]: running again a job this node has claimed;
//! - [`cancel`]: stopping a job, here or on the node that runs it.

mod cancel;
mod control;
mod publisher;
mod recovery;
mod runner;
mod slots;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use datavista_shared::protocol::{Job, JobProgress, JobState};
use datavista_shared::{Dialect, Schema};
use tokio::sync::Semaphore;

pub use cancel::{Cancel, REMOTE_CANCEL_WAIT};
pub use control::JobControl;
use control::{Arrival, Publish, UploadEnd};
pub use publisher::Publisher;
use slots::UploadCounts;
pub use slots::{SlotRefused, UploadSlot};

use crate::metrics::Metrics;
use crate::owner::OwnerId;
use crate::storage::{Storage, UploadWriter};
use crate::store::StoreError;
use crate::validator_threads::ValidatorThreads;

/// Why the runner could not do what it was asked. Each keeps its cause.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("cannot create the upload file: {0}")]
    CreateFile(#[source] std::io::Error),
    /// A new UUID that is taken: never in practice.
    #[error("the job id is taken")]
    IdTaken,
    /// The storage cannot say whether a job's file is there.
    #[error("cannot reach the stored file: {0}")]
    StoredFile(#[source] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Storage(#[from] std::io::Error),
    #[error("a blocking task of the job runner stopped: {0}")]
    Blocking(#[from] tokio::task::JoinError),
}

/// Run blocking work (the store, the storage) off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, JobError> {
    Ok(tokio::task::spawn_blocking(work).await?)
}

/// What a validation needs besides the bytes.
#[derive(Clone)]
pub struct Rules {
    pub schema: Schema,
    pub dialect: Dialect,
}

/// Why a job ends when its file stopped arriving because the server stopped: said the same
/// whether the upload was ended by a graceful shutdown or found cut off after a crash.
pub const STOPPED_MID_UPLOAD: &str =
    "the server stopped while the file was uploading; upload it again";

pub struct JobRunner {
    storage: Arc<dyn Storage>,
    /// Finished jobs an owner keeps; the oldest beyond go, with their reports.
    finished_per_owner: usize,
    publisher: Arc<Publisher>,
    metrics: Arc<Metrics>,
    pool: Arc<Semaphore>,
    workers: usize,
    validator_threads: ValidatorThreads,
    /// The server's runtime, whose blocking threads run at normal priority.
    runtime: tokio::runtime::Handle,
    running: Mutex<HashMap<String, Arc<JobControl>>>,
    uploads: Mutex<UploadCounts>,
    upload_limits: UploadLimits,
    /// Memory for one validation's uniqueness checks: the server's budget for them shared by
    /// the workers, so all running validations together stay within it.
    unique_memory_bytes: usize,
    shutting_down: AtomicBool,
}

/// What the runner lets jobs take.
#[derive(Debug, Clone, Copy)]
pub struct Budgets {
    pub uploads: UploadLimits,
    /// Memory for one validation's uniqueness checks.
    pub unique_memory_bytes: usize,
    /// Finished jobs (with their reports) one owner keeps: the oldest go first.
    pub finished_per_owner: usize,
}

/// Uploads running at once.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    pub per_owner: usize,
    /// All owners together: anyone can make new owners.
    pub total: usize,
}

impl JobRunner {
    pub fn new(
        storage: Arc<dyn Storage>,
        publisher: Arc<Publisher>,
        metrics: Arc<Metrics>,
        workers: usize,
        budgets: Budgets,
    ) -> std::io::Result<JobRunner> {
        let Budgets {
            uploads: upload_limits,
            unique_memory_bytes,
            finished_per_owner,
        } = budgets;
        Ok(JobRunner {
            storage,
            finished_per_owner,
            publisher,
            metrics,
            pool: Arc::new(Semaphore::new(workers)),
            workers,
            validator_threads: ValidatorThreads::new(workers)?,
            runtime: tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?,
            running: Mutex::new(HashMap::new()),
            uploads: Mutex::new(UploadCounts::default()),
            upload_limits,
            unique_memory_bytes,
            shutting_down: AtomicBool::new(false),
        })
    }

    pub fn publisher(&self) -> &Arc<Publisher> {
        &self.publisher
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<JobControl>>> {
        crate::sync::lock(&self.running)
    }

    /// Register a new upload: its file is created, the job stored as `uploading`, and its
    /// validation task started. Blocking (it stores the job).
    pub fn start_upload(
        self: &Arc<Self>,
        owner: &OwnerId,
        file_name: String,
        schema_id: Option<String>,
        rules: Rules,
    ) -> Result<(Arc<JobControl>, Box<dyn UploadWriter>), JobError> {
        let now = crate::clock::now_ms();
        let job = Job {
            id: uuid::Uuid::new_v4().to_string(),
            file_name,
            schema_id,
            state: JobState::Uploading,
            progress: JobProgress::default(),
            error_counts: Default::default(),
            reason: None,
            created_at_ms: now,
            updated_at_ms: now,
        };
        // The file exists before the validator is told to read it.
        let file = self
            .storage
            .create_upload(&job.id)
            .map_err(JobError::CreateFile)?;
        let control = Arc::new(JobControl::new(
            owner.clone(),
            job,
            Arrival {
                written: 0,
                end: UploadEnd::Open,
            },
        ));
        // Registered before anyone hears of it, so a cancel right after the first update works.
        self.running().insert(control.id.clone(), control.clone());
        let stored = match self.publisher.job_created(owner, &control.job()) {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(JobError::IdTaken),
            Err(e) => Err(JobError::Store(e)),
        };
        if let Err(e) = stored {
            self.running().remove(&control.id);
            let _ = self.storage.remove_upload(&control.id);
            return Err(e);
        }
        self.spawn_validation(control.clone(), rules);
        Ok((control, file))
    }

    /// `bytes` more of the upload are in storage. Blocking (it may publish progress).
    pub fn uploaded(&self, control: &JobControl, bytes: u64) {
        let written = {
            let mut arrival = control.arrival();
            arrival.written += bytes;
            arrival.written
        };
        control.wake.notify_waiters();
        control.update(|view| {
            if view.job.state == JobState::Uploading {
                view.job.progress.bytes_done = written;
            }
        });
        control.publish(&self.publisher, Publish::Progress);
    }

    /// All bytes are in: validation can finish. Blocking.
    pub fn complete_upload(&self, control: &JobControl) {
        let written = control.written();
        // Queued goes out before the end is known: the end wakes a worker, whose first turn
        // would otherwise overtake it and turn an upload straight into a validation.
        control.change_and_publish(&self.publisher, Publish::Change, |view| {
            if view.job.state == JobState::Uploading {
                view.job.state = if view.validation_started {
                    JobState::Validating
                } else {
                    JobState::Queued
                };
            }
            view.job.progress.bytes_total = Some(written);
            true
        });
        control.end_upload(UploadEnd::Complete);
    }

    /// The upload stopped half-way (`Cancelled`) or was refused (`Failed`): the job ends at
    /// once and its partial file goes. Blocking.
    pub fn abort_upload(&self, control: &JobControl, state: JobState, reason: &str) {
        control.end_upload(UploadEnd::Aborted(state, reason.to_owned()));
        self.finish(control, state, Some(reason.to_owned()), None);
    }

    /// Stop validations at their next read; their jobs stay queued for the next start.
    pub fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
        for control in self.running().values() {
            control.wake.notify_waiters();
        }
    }

    /// An owner's jobs that have not ended yet.
    pub fn unfinished_count(&self, owner: &OwnerId) -> usize {
        self.running()
            .values()
            .filter(|c| &c.owner == owner)
            .count()
    }

    /// Workers this node could give to more jobs: the pool less every job it holds
    /// (uploading ones too, which may start validating any moment).
    pub fn idle_workers(&self) -> usize {
        self.workers.saturating_sub(self.running().len())
    }

    /// Jobs still running, for a graceful shutdown to wait on.
    pub fn running_count(&self) -> usize {
        self.running().len()
    }
}

/// The async surface the routes call: each does its own blocking.
impl JobRunner {
    /// The owner's job with this id; `None` when they have none.
    pub async fn find(
        self: &Arc<Self>,
        owner: &OwnerId,
        id: &str,
    ) -> Result<Option<Job>, JobError> {
        let (store, owner, id) = (self.publisher.store().clone(), owner.clone(), id.to_owned());
        Ok(blocking(move || store.job(&owner, &id)).await??)
    }

    /// A page of the owner's jobs, newest first, and how many they have.
    pub async fn page(
        self: &Arc<Self>,
        owner: &OwnerId,
        offset: u64,
        limit: u64,
    ) -> Result<(Vec<Job>, u64), JobError> {
        let (store, owner) = (self.publisher.store().clone(), owner.clone());
        let page = blocking(move || {
            Ok::<_, StoreError>((store.jobs(&owner, offset, limit)?, store.job_count(&owner)?))
        });
        Ok(page.await??)
    }

    /// Delete a finished job with its file and report. False when the owner has no such job.
    pub async fn delete_finished(
        self: &Arc<Self>,
        owner: &OwnerId,
        id: &str,
    ) -> Result<bool, JobError> {
        let (runner, owner, id) = (self.clone(), owner.clone(), id.to_owned());
        blocking(move || {
            let storage = runner.storage();
            storage.remove_upload(&id)?;
            storage.remove_report(&id)?;
            Ok(runner.publisher().job_removed(&owner, &id)?)
        })
        .await?
    }

    /// Free bytes in the storage.
    pub async fn free_bytes(self: &Arc<Self>) -> Result<u64, JobError> {
        let storage = self.storage.clone();
        Ok(blocking(move || storage.available_bytes()).await??)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::{Read, Write};
    use std::sync::atomic::AtomicUsize;

    use std::time::Duration;

    use super::*;
    use crate::hub::{HubHandle, InProcessBus};
    use crate::storage::LocalDisk;

    /// The local disk, full for the first `full_report_writes` report writes.
    struct FullThenFree {
        disk: LocalDisk,
        full_report_writes: AtomicUsize,
    }

    impl Storage for FullThenFree {
        fn follows_uploads(&self) -> bool {
            true
        }
        fn create_upload(&self, id: &str) -> std::io::Result<Box<dyn UploadWriter>> {
            self.disk.create_upload(id)
        }
        fn open_upload(&self, id: &str) -> std::io::Result<Box<dyn Read + Send>> {
            self.disk.open_upload(id)
        }
        fn upload_len(&self, id: &str) -> std::io::Result<u64> {
            self.disk.upload_len(id)
        }
        fn remove_upload(&self, id: &str) -> std::io::Result<()> {
            self.disk.remove_upload(id)
        }
        fn write_report(&self, id: &str, json: &[u8]) -> std::io::Result<()> {
            let full = self
                .full_report_writes
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok();
            if full {
                return Err(std::io::ErrorKind::StorageFull.into());
            }
            self.disk.write_report(id, json)
        }
        fn read_report(&self, id: &str) -> std::io::Result<Vec<u8>> {
            self.disk.read_report(id)
        }
        fn remove_report(&self, id: &str) -> std::io::Result<()> {
            self.disk.remove_report(id)
        }
        fn available_bytes(&self) -> std::io::Result<u64> {
            self.disk.available_bytes()
        }
    }

    pub(crate) fn runner_on(
        store: Arc<dyn crate::store::JobStore>,
        storage: Arc<dyn Storage>,
        limits: UploadLimits,
    ) -> Arc<JobRunner> {
        let bus = Arc::new(InProcessBus(HubHandle::new(16, 8, 64)));
        let publisher = Arc::new(Publisher::new(store, bus));
        let budgets = Budgets {
            uploads: limits,
            unique_memory_bytes: 1 << 20,
            finished_per_owner: 1_000,
        };
        let runner = JobRunner::new(storage, publisher, Arc::new(Metrics::new()), 1, budgets);
        Arc::new(runner.unwrap())
    }

    #[tokio::test]
    async fn upload_slots_are_bounded_per_owner_and_for_the_whole_server() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::sqlite::SqliteStore::open(
            &dir.path().join("db"),
            crate::store::Lease::new(Duration::from_secs(10)),
        )
        .unwrap();
        let limits = UploadLimits {
            per_owner: 2,
            total: 3,
        };
        let runner = runner_on(
            Arc::new(store),
            Arc::new(LocalDisk::new(dir.path()).unwrap()),
            limits,
        );
        let (ada, bob) = (OwnerId::random(), OwnerId::random());
        let first = runner.begin_upload_slot(&ada).unwrap();
        let _second = runner.begin_upload_slot(&ada).unwrap();
        assert_eq!(
            runner.begin_upload_slot(&ada).err(),
            Some(SlotRefused::Owner)
        );
        let _third = runner.begin_upload_slot(&bob).unwrap();
        // New owners cost nothing to make: the server's own cap still holds.
        assert_eq!(
            runner.begin_upload_slot(&OwnerId::random()).err(),
            Some(SlotRefused::Server)
        );
        drop(first);
        assert!(runner.begin_upload_slot(&OwnerId::random()).is_ok());
    }

    /// Found by the soak: an accepted file whose report met a full disk ended `failed`.
    #[tokio::test]
    async fn a_report_that_meets_a_full_disk_is_stored_once_there_is_room() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            crate::store::sqlite::SqliteStore::open(
                &dir.path().join("db"),
                crate::store::Lease::new(Duration::from_secs(10)),
            )
            .unwrap(),
        );
        let storage = Arc::new(FullThenFree {
            disk: LocalDisk::new(dir.path()).unwrap(),
            full_report_writes: AtomicUsize::new(2),
        });
        let runner = runner_on(
            store,
            storage.clone(),
            UploadLimits {
                per_owner: 8,
                total: 64,
            },
        );
        let rules = Rules {
            schema: Schema::structural_only(),
            dialect: Dialect::default(),
        };
        let starter = runner.clone();
        let (control, mut file) = tokio::task::spawn_blocking(move || {
            starter.start_upload(&OwnerId::random(), "a.csv".into(), None, rules)
        })
        .await
        .unwrap()
        .unwrap();
        let csv = b"a,b\n1,2\n3\n";
        file.write_all(csv).unwrap();
        file.finish().unwrap();
        runner.uploaded(&control, csv.len() as u64);
        runner.complete_upload(&control);
        // Two refused writes, 2 s apart, then room: bounded by the retries it takes.
        for _ in 0..100 {
            if control.job().state.is_final() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let job = control.job();
        assert_eq!(job.state, JobState::Invalid, "{job:?}");
        assert_eq!(job.progress.errors, 1);
        assert_eq!(storage.full_report_writes.load(Ordering::Acquire), 0);
        assert!(
            storage.read_report(&job.id).is_ok(),
            "the report was stored"
        );
    }
}
