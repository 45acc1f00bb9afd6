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

use std::collections::HashMap;
use std::io::Read;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datavista_shared::protocol::{Job, JobProgress, JobState, ServerMessage};
use datavista_shared::{Dialect, Limits, Report, Schema, Validator};
use tokio::sync::{Notify, Semaphore};

use crate::hub::{EventBus, OwnerEvent};
use crate::identity::OwnerId;
use crate::metrics::Metrics;
use crate::storage::{Storage, UploadWriter};
use crate::store::{JobStore, StoreResult};
use crate::validator_threads::{CpuShare, ValidatorThreads};

/// Progress is published at most this often per job.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);
/// Validation reads this much at a time.
const READ_CHUNK: usize = 1 << 20;
/// A validation gives its worker back after this many bytes, so queued jobs get turns.
const TURN_BYTES: u64 = 64 << 20;
/// A job's first bytes are validated at normal priority: a small file's whole validation is
/// a blip, and it should not wait behind big ones on the idle-priority threads.
const NORMAL_PRIORITY_HEAD: u64 = 4 << 20;
/// How often a report that met a full disk tries again.
const REPORT_RETRY: Duration = Duration::from_secs(2);

/// Stores a job change, then pushes it, in one order for everyone: sequence numbers reach
/// clients in the order they were given out.
pub struct Publisher {
    store: Arc<dyn JobStore>,
    bus: Arc<dyn EventBus>,
    order: Mutex<()>,
}

impl Publisher {
    pub fn new(store: Arc<dyn JobStore>, bus: Arc<dyn EventBus>) -> Publisher {
        Publisher {
            store,
            bus,
            order: Mutex::new(()),
        }
    }

    pub fn store(&self) -> &Arc<dyn JobStore> {
        &self.store
    }

    /// Store a new job, then push it. `None` when the id exists. Blocking.
    pub fn job_created(&self, owner: &OwnerId, job: &Job) -> StoreResult<Option<u64>> {
        self.store_and_push(owner, job, |store| store.create_job(owner, job))
    }

    /// Store a change, then push it. `None` when this node no longer holds the job (another
    /// node took it over, or it was deleted): nothing is stored or pushed. Blocking.
    pub fn job_changed(&self, owner: &OwnerId, job: &Job) -> StoreResult<Option<u64>> {
        self.store_and_push(owner, job, |store| store.save_job(owner, job))
    }

    fn store_and_push(
        &self,
        owner: &OwnerId,
        job: &Job,
        write: impl FnOnce(&dyn JobStore) -> StoreResult<Option<u64>>,
    ) -> StoreResult<Option<u64>> {
        let _in_order = self.order.lock().unwrap_or_else(|p| p.into_inner());
        let Some(seq) = write(self.store.as_ref())? else {
            return Ok(None);
        };
        let message = ServerMessage::JobUpdate {
            seq,
            job: job.clone().clamped(),
        };
        self.bus.publish(OwnerEvent {
            owner: owner.clone(),
            message,
        });
        Ok(Some(seq))
    }

    /// Ask the other nodes to cancel a job of `owner` that one of them runs.
    pub fn request_cancel(&self, owner: &OwnerId, job_id: &str) {
        self.bus.request_cancel(owner, job_id);
    }

    /// Blocking. False when the owner has no such job.
    pub fn job_removed(&self, owner: &OwnerId, id: &str) -> StoreResult<bool> {
        let _in_order = self.order.lock().unwrap_or_else(|p| p.into_inner());
        let Some(seq) = self.store.delete_job(owner, id)? else {
            return Ok(false);
        };
        self.bus.publish(OwnerEvent {
            owner: owner.clone(),
            message: ServerMessage::JobRemoved {
                seq,
                job_id: id.to_owned(),
            },
        });
        Ok(true)
    }
}

/// How an upload's bytes are arriving.
#[derive(Debug, Clone, PartialEq, Eq)]
enum UploadEnd {
    Open,
    Complete,
    /// Ended early; the job ends in this state with this reason.
    Aborted(JobState, String),
}

#[derive(Debug)]
struct Arrival {
    written: u64,
    end: UploadEnd,
}

/// Which kind of change is being published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Publish {
    /// Throttled to PROGRESS_EVERY.
    Progress,
    /// A state change: always, unless the job has ended.
    Change,
    /// The final state, once.
    Final,
}

/// Shared between an upload, its validation and anyone who cancels it.
pub struct JobControl {
    pub owner: OwnerId,
    pub id: String,
    cancelled: AtomicBool,
    /// The job reached its final state (set once: whoever gets there first publishes it),
    /// or passed to another node.
    finished: AtomicBool,
    /// Another node took the job over; this node no longer writes it.
    passed: AtomicBool,
    /// A progress update is on its way to a normal-priority thread.
    progress_queued: AtomicBool,
    arrival: Mutex<Arrival>,
    /// Wakes the job's task: bytes arrived, the upload ended, a cancel or shutdown.
    wake: Notify,
    /// The job as last changed, when it was last published, and whether a worker has started
    /// validating (decided under this one lock, so the state shown is always the true one).
    view: Mutex<View>,
}

struct View {
    job: Job,
    published: Instant,
    validation_started: bool,
}

impl JobControl {
    fn new(owner: OwnerId, job: Job, arrival: Arrival) -> JobControl {
        JobControl {
            owner,
            id: job.id.clone(),
            cancelled: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            passed: AtomicBool::new(false),
            progress_queued: AtomicBool::new(false),
            arrival: Mutex::new(arrival),
            wake: Notify::new(),
            view: Mutex::new(View {
                job,
                published: Instant::now(),
                validation_started: false,
            }),
        }
    }

    /// Whether a progress update would be published now (it is throttled).
    fn progress_due(&self) -> bool {
        !self.is_finished() && self.view().published.elapsed() >= PROGRESS_EVERY
    }

    fn arrival(&self) -> std::sync::MutexGuard<'_, Arrival> {
        self.arrival.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn view(&self) -> std::sync::MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    pub fn written(&self) -> u64 {
        self.arrival().written
    }

    fn end_upload(&self, end: UploadEnd) {
        let mut arrival = self.arrival();
        if arrival.end == UploadEnd::Open {
            arrival.end = end;
        }
        drop(arrival);
        self.wake.notify_waiters();
    }

    fn update(&self, change: impl FnOnce(&mut View)) {
        let mut view = self.view();
        change(&mut view);
        view.job.updated_at_ms = crate::now_ms();
    }

    /// Store and push the current view. The view stays locked while it is stored, so two
    /// threads of one job (upload writer and validator) can never store an older view over a
    /// newer one; and after the end only the final state goes out (a late progress update
    /// must not bring back a job the user just deleted).
    ///
    /// False when another node has taken the job over (an idle node took it from the queue,
    /// or this node's lease ran out): the job ends here, silently, and its file is left to
    /// the new holder.
    fn publish(&self, publisher: &Publisher, kind: Publish) -> bool {
        let mut view = self.view();
        self.publish_view(&mut view, publisher, kind)
    }

    /// Change the view and publish it under one hold of its lock. Changed and published
    /// apart, another thread's change could land in between (a worker moving Queued on to
    /// Validating) and this publish would carry that one instead: a state the job passed
    /// through would never reach the tabs.
    fn change_and_publish(
        &self,
        publisher: &Publisher,
        kind: Publish,
        change: impl FnOnce(&mut View) -> bool,
    ) -> bool {
        let mut view = self.view();
        let changed = change(&mut view);
        view.job.updated_at_ms = crate::now_ms();
        !changed || self.publish_view(&mut view, publisher, kind)
    }

    fn publish_view(&self, view: &mut View, publisher: &Publisher, kind: Publish) -> bool {
        let ended = self.is_finished();
        let skip = match kind {
            Publish::Progress => ended || view.published.elapsed() < PROGRESS_EVERY,
            Publish::Change => ended,
            Publish::Final => false,
        };
        if skip {
            return true;
        }
        view.published = Instant::now();
        match publisher.job_changed(&self.owner, &view.job) {
            Ok(Some(_)) => true,
            Ok(None) => {
                tracing::info!(job = %self.id, "another node took this job over");
                self.passed.store(true, Ordering::Release);
                self.finished.store(true, Ordering::Release);
                self.wake.notify_waiters();
                false
            }
            Err(e) => {
                tracing::error!(job = %self.id, error = %e, "could not store a job change");
                true
            }
        }
    }

    /// Wait for wake-ups until `done` says so.
    async fn wait_until(&self, mut done: impl FnMut() -> bool) {
        loop {
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable(); // registered before checking, so no wake-up is lost
            if done() {
                return;
            }
            woken.await;
        }
    }

    /// Until the job has ended (here, or by passing to another node).
    async fn until_finished(&self) {
        self.wait_until(|| self.is_finished()).await
    }

    pub fn job(&self) -> Job {
        self.view().job.clone()
    }
}

/// What a validation needs besides the bytes.
#[derive(Clone)]
pub struct Rules {
    pub schema: Schema,
    pub dialect: Dialect,
}

/// A validation between two turns on a worker.
struct Work {
    validator: Validator,
    /// Opened at the first bytes there are to read.
    reader: Option<Box<dyn Read + Send>>,
    read: u64,
    buffer: Vec<u8>,
    started: Instant,
    /// Bytes validated since the job last took a worker.
    turn_bytes: u64,
    /// A turn at idle priority got too little CPU: the rest of this worker's turn runs at
    /// normal priority.
    starved: bool,
}

impl Work {
    fn priority(&self) -> Priority {
        if self.read < NORMAL_PRIORITY_HEAD || self.starved {
            Priority::Normal
        } else {
            Priority::Idle
        }
    }
}

/// Where a turn runs: tokio's blocking pool, or the [`ValidatorThreads`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Priority {
    Normal,
    Idle,
}

/// How a turn on a worker ended.
enum Turn {
    /// Caught up with the upload (or used the turn): wait, then go on.
    Continue(Box<Work>),
    /// Go on at once at the other priority, keeping the worker.
    Switch(Box<Work>),
    /// The job ended (cancelled, taken by another node, or re-queued for shutdown).
    Ended,
    /// The job ends this way. Left to a normal-priority thread, so its final push never
    /// waits behind validations on the idle-priority validator threads.
    End(Ending),
}

enum Ending {
    /// Validated to the end: store the report, then the verdict.
    Verdict(Report),
    /// Stopped early in this state, for this reason.
    Stopped(JobState, String),
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

#[derive(Default)]
struct UploadCounts {
    per_owner: HashMap<OwnerId, usize>,
    total: usize,
}

/// Why an upload slot was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum SlotRefused {
    /// The owner runs as many uploads as one owner may.
    Owner,
    /// The server runs as many uploads as it takes from everyone.
    Server,
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
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Count an upload against its owner's cap and the server's.
    pub fn begin_upload_slot(self: &Arc<Self>, owner: &OwnerId) -> Result<UploadSlot, SlotRefused> {
        let mut counts = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
        if counts.total >= self.upload_limits.total {
            return Err(SlotRefused::Server);
        }
        let count = counts.per_owner.entry(owner.clone()).or_default();
        if *count >= self.upload_limits.per_owner {
            return Err(SlotRefused::Owner);
        }
        *count += 1;
        counts.total += 1;
        Ok(UploadSlot {
            runner: self.clone(),
            owner: owner.clone(),
        })
    }

    /// Register a new upload: its file is created, the job stored as `uploading`, and its
    /// validation task started. Blocking (it stores the job).
    pub fn start_upload(
        self: &Arc<Self>,
        owner: &OwnerId,
        file_name: String,
        schema_id: Option<String>,
        rules: Rules,
    ) -> Result<(Arc<JobControl>, Box<dyn UploadWriter>), String> {
        let now = crate::now_ms();
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
            .map_err(|e| format!("cannot create the upload file: {e}"))?;
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
            Ok(None) => Err("the job id is taken".to_owned()), // a new UUID: never in practice
            Err(e) => Err(e.to_string()),
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

    /// Run a job this node has just claimed (found unfinished at start-up, orphaned by a
    /// node that stopped, or queued on a busy node): validate its stored file again, or mark
    /// it failed when there is none. Err, with nothing changed, when the storage cannot say
    /// whether the file is there (the caller lets go of the job, to be taken again later).
    /// Blocking.
    pub fn recover(
        self: &Arc<Self>,
        owner: OwnerId,
        mut job: Job,
        rules: Option<Rules>,
    ) -> Result<(), String> {
        let stored_size = match job.state {
            JobState::Uploading => None, // cut off half-way: never complete
            _ => match self.storage.upload_len(&job.id) {
                Ok(size) => Some(size),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(format!("cannot reach the stored file: {e}")),
            },
        };
        match (rules, stored_size) {
            (Some(rules), Some(size)) => {
                job.state = JobState::Queued;
                job.progress = JobProgress {
                    bytes_done: 0,
                    bytes_total: Some(size),
                    rows: 0,
                    errors: 0,
                };
                let control = Arc::new(JobControl::new(
                    owner,
                    job,
                    Arrival {
                        written: size,
                        end: UploadEnd::Complete,
                    },
                ));
                self.running().insert(control.id.clone(), control.clone());
                control.publish(&self.publisher, Publish::Change);
                self.spawn_validation(control, rules);
            }
            (rules, _) => {
                job.state = JobState::Failed;
                job.reason = Some(match rules {
                    None => "the job's schema is no longer available".to_owned(),
                    Some(_) => STOPPED_MID_UPLOAD.to_owned(),
                });
                job.updated_at_ms = crate::now_ms();
                match self.publisher.job_changed(&owner, &job) {
                    Ok(Some(_)) => {
                        let _ = self.storage.remove_upload(&job.id);
                    }
                    Ok(None) => {} // another node has it now
                    Err(e) => {
                        tracing::error!(job = %job.id, error = %e, "could not mark an interrupted job failed")
                    }
                }
            }
        }
        Ok(())
    }

    fn spawn_validation(self: &Arc<Self>, control: Arc<JobControl>, rules: Rules) {
        let runner = self.clone();
        tokio::spawn(async move {
            runner.clone().follow(control.clone(), rules).await;
            let mut running = runner.running();
            // Only this control: the job may have passed away and come back under a new one.
            if running
                .get(&control.id)
                .is_some_and(|held| Arc::ptr_eq(held, &control))
            {
                running.remove(&control.id);
            }
        });
    }

    /// The job's task: wait (holding nothing) until there is work, then take a worker for a
    /// turn, until the job ends.
    async fn follow(self: Arc<Self>, control: Arc<JobControl>, rules: Rules) {
        let mut work = Work {
            validator: Validator::new(
                rules.schema,
                rules.dialect,
                Limits {
                    unique_memory_bytes: self.unique_memory_bytes,
                    ..Limits::default()
                },
            ),
            reader: None,
            read: 0,
            buffer: vec![0; READ_CHUNK],
            started: Instant::now(),
            turn_bytes: 0,
            starved: false,
        };
        loop {
            if !self.wait_for_work(&control, work.read).await {
                return; // ended by someone else (cancel, abort)
            }
            let permit = tokio::select! {
                permit = self.pool.clone().acquire_owned() => permit,
                () = control.until_finished() => return, // cancelled, or taken by another node
            };
            let Ok(permit) = permit else {
                return;
            };
            work.turn_bytes = 0;
            let turn = loop {
                match self.take_turn_at_its_priority(&control, work).await {
                    Ok(Ok(Turn::Switch(next))) => work = *next,
                    other => break other,
                }
            };
            drop(permit);
            match turn {
                Ok(Ok(Turn::Continue(next))) => work = *next,
                Ok(Ok(Turn::Ended)) => return,
                Ok(Ok(Turn::End(ending))) => return self.end(control, ending).await,
                Ok(Ok(Turn::Switch(_))) | Ok(Err(_)) | Err(_) => {
                    let reason = "internal error while validating".to_owned();
                    return self
                        .end(control, Ending::Stopped(JobState::Failed, reason))
                        .await;
                }
            }
        }
    }

    /// Run a turn on the threads of the work's priority.
    async fn take_turn_at_its_priority(
        self: &Arc<Self>,
        control: &Arc<JobControl>,
        work: Work,
    ) -> Result<std::thread::Result<Turn>, tokio::task::JoinError> {
        let (runner, control, priority) = (self.clone(), control.clone(), work.priority());
        let turn = move || {
            std::panic::catch_unwind(AssertUnwindSafe(|| {
                runner.take_turn(&control, work, priority)
            }))
        };
        match priority {
            Priority::Normal => tokio::task::spawn_blocking(turn).await,
            Priority::Idle => self.validator_threads.run(turn).await,
        }
    }

    /// End the job on a normal-priority blocking thread.
    async fn end(self: Arc<Self>, control: Arc<JobControl>, ending: Ending) {
        match ending {
            Ending::Verdict(report) => self.store_report(control, report).await,
            Ending::Stopped(state, reason) => self.finish_blocking(control, state, reason).await,
        }
    }

    /// Bytes of the upload the validator may read: all that arrived, or, from storage that
    /// cannot be read while being written, none until the upload is complete.
    fn readable(&self, arrival: &Arrival) -> u64 {
        if self.storage.follows_uploads() || arrival.end == UploadEnd::Complete {
            arrival.written
        } else {
            0
        }
    }

    /// Wait until there are unread bytes, the upload ended, or a cancel or shutdown came.
    /// False when the job already ended.
    async fn wait_for_work(&self, control: &JobControl, read: u64) -> bool {
        control
            .wait_until(|| {
                let ready = {
                    let arrival = control.arrival();
                    self.readable(&arrival) > read || arrival.end != UploadEnd::Open
                };
                control.is_finished()
                    || ready
                    || control.is_cancelled()
                    || self.shutting_down.load(Ordering::Acquire)
            })
            .await;
        !control.is_finished()
    }

    /// One turn on a worker thread: validate what has arrived, up to TURN_BYTES since the job
    /// took the worker. At normal priority the job's head, or the rest of the worker's turn
    /// after a starved one; at idle priority until it is starved of CPU.
    fn take_turn(&self, control: &Arc<JobControl>, mut work: Work, priority: Priority) -> Turn {
        control.change_and_publish(&self.publisher, Publish::Change, |view| {
            let changed = !view.validation_started || view.job.state == JobState::Queued;
            view.validation_started = true;
            if view.job.state == JobState::Queued {
                view.job.state = JobState::Validating;
            }
            changed
        });
        let cpu_share = CpuShare::start();
        let rescuing = priority == Priority::Normal && std::mem::take(&mut work.starved);
        loop {
            if control.is_finished() {
                return Turn::Ended;
            }
            if self.shutting_down.load(Ordering::Acquire) {
                self.requeue_on_shutdown(control);
                return Turn::Ended;
            }
            let (readable, end) = {
                let arrival = control.arrival();
                (self.readable(&arrival), arrival.end.clone())
            };
            if readable > work.read {
                if work.turn_bytes >= TURN_BYTES {
                    return Turn::Continue(Box::new(work)); // let queued jobs have a worker too
                }
                match priority {
                    Priority::Normal if !rescuing && work.read >= NORMAL_PRIORITY_HEAD => {
                        return Turn::Switch(Box::new(work)); // the rest at idle priority
                    }
                    Priority::Idle if cpu_share.starved() => {
                        work.starved = true;
                        return Turn::Switch(Box::new(work));
                    }
                    _ => {}
                }
                let reader = match work.reader.as_mut() {
                    Some(reader) => reader,
                    None => match self.storage.open_upload(&control.id) {
                        Ok(reader) => work.reader.insert(reader),
                        Err(e) => {
                            let reason = format!("cannot read the upload: {e}");
                            return Turn::End(Ending::Stopped(JobState::Failed, reason));
                        }
                    },
                };
                let want = ((readable - work.read) as usize).min(work.buffer.len());
                match reader.read(&mut work.buffer[..want]) {
                    Ok(0) => return Turn::Continue(Box::new(work)),
                    Ok(n) => {
                        work.validator.feed(&work.buffer[..n]);
                        work.read += n as u64;
                        work.turn_bytes += n as u64;
                        self.metrics.bytes_validated.inc_by(n as u64);
                        let progress = work.validator.progress();
                        let read = work.read;
                        control.update(|view| {
                            view.job.progress.rows = progress.rows;
                            view.job.progress.errors = progress.errors;
                            if view.job.state == JobState::Validating {
                                view.job.progress.bytes_done = read;
                            }
                        });
                        match priority {
                            Priority::Normal => {
                                control.publish(&self.publisher, Publish::Progress);
                            }
                            Priority::Idle => self.publish_progress_at_normal_priority(control),
                        }
                    }
                    Err(e) => {
                        let reason = format!("cannot read the upload: {e}");
                        return Turn::End(Ending::Stopped(JobState::Failed, reason));
                    }
                }
                continue;
            }
            match end {
                UploadEnd::Open => return Turn::Continue(Box::new(work)),
                UploadEnd::Aborted(state, reason) => {
                    return Turn::End(Ending::Stopped(state, reason));
                }
                UploadEnd::Complete => {
                    let report = work.validator.finish();
                    self.metrics
                        .validation_seconds
                        .observe(work.started.elapsed().as_secs_f64());
                    return Turn::End(Ending::Verdict(report));
                }
            }
        }
    }

    /// Publish progress from a normal-priority thread. Storing and pushing hold the
    /// publisher's order lock, and an idle-priority thread holding it can be preempted for
    /// as long as the cores are busy, while another job's final state waits behind it.
    fn publish_progress_at_normal_priority(&self, control: &Arc<JobControl>) {
        if !control.progress_due() || control.progress_queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let (publisher, control) = (self.publisher.clone(), control.clone());
        self.runtime.spawn_blocking(move || {
            control.publish(&publisher, Publish::Progress);
            control.progress_queued.store(false, Ordering::Release);
        });
    }

    /// Store the report, then end the job with its verdict. Blocking.
    fn store_report_and_finish(
        &self,
        control: &JobControl,
        report: &Report,
    ) -> std::io::Result<()> {
        let json = report.to_json_within(datavista_shared::report::MAX_REPORT_JSON_BYTES);
        self.storage.write_report(&control.id, &json)?;
        let state = if report.valid {
            JobState::Valid
        } else {
            JobState::Invalid
        };
        self.finish(control, state, None, Some(report));
        Ok(())
    }

    /// Store the report and end the job with its verdict. When the disk is full the file was
    /// still accepted and the verdict is known, so the report is kept (holding no worker)
    /// and stored once space frees up, rather than failing the job. A shutdown meanwhile
    /// re-queues the job; the next start validates again.
    async fn store_report(self: Arc<Self>, control: Arc<JobControl>, report: Report) {
        let report = Arc::new(report);
        for attempt in 0u64.. {
            if attempt > 0 {
                if attempt == 1 {
                    tracing::warn!(job = %control.id, "the disk is full: the report waits for room");
                }
                tokio::time::sleep(REPORT_RETRY).await;
                if control.is_finished() {
                    return; // cancelled meanwhile
                }
            }
            let (runner, waiting, report) = (self.clone(), control.clone(), report.clone());
            let stored = tokio::task::spawn_blocking(move || {
                if attempt > 0 && runner.shutting_down.load(Ordering::Acquire) {
                    runner.requeue_on_shutdown(&waiting);
                    return None;
                }
                Some(runner.store_report_and_finish(&waiting, &report))
            })
            .await;
            match stored {
                Ok(None) | Ok(Some(Ok(()))) => return,
                Ok(Some(Err(e))) if e.kind() == std::io::ErrorKind::StorageFull => continue,
                Ok(Some(Err(e))) => {
                    let reason = format!("cannot store the report: {e}");
                    return self
                        .finish_blocking(control, JobState::Failed, reason)
                        .await;
                }
                Err(_) => {
                    let reason = "internal error while storing the report".to_owned();
                    return self
                        .finish_blocking(control, JobState::Failed, reason)
                        .await;
                }
            }
        }
    }

    async fn finish_blocking(
        self: &Arc<Self>,
        control: Arc<JobControl>,
        state: JobState,
        reason: String,
    ) {
        let runner = self.clone();
        let _ =
            tokio::task::spawn_blocking(move || runner.finish(&control, state, Some(reason), None))
                .await;
    }

    /// The job's final state, stored and pushed once. The uploaded file goes in every case:
    /// the report holds what the validation found, and nothing reads the file again.
    /// False when it did not end here: it had already ended, or another node has taken it.
    fn finish(
        &self,
        control: &JobControl,
        state: JobState,
        reason: Option<String>,
        report: Option<&Report>,
    ) -> bool {
        if control.finished.swap(true, Ordering::AcqRel) {
            return false; // already ended (a cancel and the end of the file can race)
        }
        control.wake.notify_waiters();
        control.update(|view| {
            view.job.state = state;
            view.job.reason = reason;
            if let Some(report) = report {
                view.job.progress.rows = report.rows;
                view.job.progress.errors = report.error_total;
                view.job.progress.bytes_done = report.bytes;
                view.job.progress.bytes_total = Some(report.bytes);
                view.job.error_counts = report.error_counts.clone();
            }
        });
        // Stored first: if the job has passed to another node, its file is that node's.
        if !control.publish(&self.publisher, Publish::Final) {
            return false;
        }
        let _ = self.storage.remove_upload(&control.id);
        if report.is_none() {
            let _ = self.storage.remove_report(&control.id); // a cancel that raced the report
        }
        let job = control.job();
        tracing::info!(job = %job.id, owner = %control.owner, state = state.as_str(), rows = job.progress.rows, errors = job.progress.errors, "job ended");
        self.keep_only_the_newest_finished(&control.owner, &control.id);
        true
    }

    /// Retention: past the owner's quota of finished jobs, those that finished first are
    /// removed with their reports (never `just_finished`, whose verdict the user is waiting
    /// for), and every tab hears of it as of any removal. Blocking.
    fn keep_only_the_newest_finished(&self, owner: &OwnerId, just_finished: &str) {
        let store = self.publisher.store();
        // The usual case costs one indexed count.
        if store
            .job_count(owner)
            .is_ok_and(|count| count as usize <= self.finished_per_owner)
        {
            return;
        }
        let past = match store.finished_jobs_past(owner, self.finished_per_owner) {
            Ok(past) => past,
            Err(e) => return tracing::warn!(%owner, error = %e, "cannot apply job retention"),
        };
        for id in past.iter().filter(|id| *id != just_finished) {
            // The row first: a report read meanwhile then answers 404, not a missing file.
            match self.publisher.job_removed(owner, id) {
                Ok(_) => {
                    let _ = self.storage.remove_report(id);
                    let _ = self.storage.remove_upload(id);
                }
                Err(e) => {
                    tracing::warn!(job = %id, error = %e, "cannot remove a job past retention")
                }
            }
        }
    }

    /// Shutting down mid-validation: leave the job queued, so the next start finishes it.
    fn requeue_on_shutdown(&self, control: &JobControl) {
        control.update(|view| {
            if view.job.state != JobState::Uploading {
                view.job.state = JobState::Queued;
            }
        });
        control.publish(&self.publisher, Publish::Change);
    }

    /// Cancel a running job of this owner; it stops at once (a worker notices within one read
    /// of at most 1 MiB). False when it is not running (or not theirs). Blocking.
    pub fn cancel(&self, owner: &OwnerId, id: &str) -> bool {
        let control = match self.running().get(id) {
            Some(control) if &control.owner == owner => control.clone(),
            _ => return false,
        };
        control.cancelled.store(true, Ordering::Release);
        control.end_upload(UploadEnd::Aborted(JobState::Cancelled, "cancelled".into()));
        self.finish(
            &control,
            JobState::Cancelled,
            Some("cancelled".into()),
            None,
        );
        !control.passed.load(Ordering::Acquire) // else the node that has it must cancel it
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

/// One of an owner's concurrent upload slots; given back on drop.
pub struct UploadSlot {
    runner: Arc<JobRunner>,
    owner: OwnerId,
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut counts = self
            .runner
            .uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        counts.total = counts.total.saturating_sub(1);
        if let Some(count) = counts.per_owner.get_mut(&self.owner) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.per_owner.remove(&self.owner);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::{Read, Write};
    use std::sync::atomic::AtomicUsize;

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
