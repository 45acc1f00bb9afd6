//! Validation jobs: each upload is written to storage while the shared validator follows it
//! on a blocking thread (pipelined: the verdict comes about when the last byte has arrived,
//! instead of after upload time plus validation time). A bounded pool caps how many run at
//! once; the rest wait as `queued`, reading from the stored file when their turn comes.
//!
//! Every change goes through [`Publisher`]: stored first (which assigns the owner's next
//! sequence number), then pushed. Progress is coalesced to at most ten updates a second.

use std::collections::HashMap;
use std::io::Read;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use datavista_shared::protocol::{Job, JobProgress, JobState, ServerMessage};
use datavista_shared::{Dialect, Limits, Report, Schema, Validator};
use tokio::sync::Semaphore;

use crate::hub::{EventBus, OwnerEvent};
use crate::identity::OwnerId;
use crate::metrics::Metrics;
use crate::storage::Storage;
use crate::store::{JobStore, StoreResult};

/// Progress is published at most this often per job.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);
/// Validation reads this much at a time.
const READ_CHUNK: usize = 1 << 20;
/// How long the validator waits for more uploaded bytes before checking for a cancel.
const WAIT_FOR_BYTES: Duration = Duration::from_millis(100);

/// Stores a job change, then pushes it, in one order for everyone: sequence numbers reach
/// clients in the order they were given out.
pub struct Publisher {
    store: Arc<dyn JobStore>,
    bus: Arc<dyn EventBus>,
    order: Mutex<()>,
}

impl Publisher {
    pub fn new(store: Arc<dyn JobStore>, bus: Arc<dyn EventBus>) -> Publisher {
        Publisher { store, bus, order: Mutex::new(()) }
    }

    /// Blocking: call from a blocking thread.
    pub fn job_changed(&self, owner: &OwnerId, job: &Job) -> StoreResult<u64> {
        let _in_order = self.order.lock().unwrap_or_else(|p| p.into_inner());
        let seq = self.store.save_job(owner, job)?;
        let message = ServerMessage::JobUpdate { seq, job: job.clone().clamped() };
        self.bus.publish(OwnerEvent { owner: owner.clone(), message });
        Ok(seq)
    }

    /// Blocking. False when the owner has no such job.
    pub fn job_removed(&self, owner: &OwnerId, id: &str) -> StoreResult<bool> {
        let _in_order = self.order.lock().unwrap_or_else(|p| p.into_inner());
        let Some(seq) = self.store.delete_job(owner, id)? else { return Ok(false) };
        self.bus.publish(OwnerEvent { owner: owner.clone(), message: ServerMessage::JobRemoved { seq, job_id: id.to_owned() } });
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

/// Shared between an upload, its validation and anyone who cancels it.
pub struct JobControl {
    pub owner: OwnerId,
    pub id: String,
    cancelled: AtomicBool,
    /// The job reached its final state (set once: whoever gets there first publishes it).
    finished: AtomicBool,
    /// A worker has started validating (so a finished upload goes on as `validating`).
    validation_started: AtomicBool,
    arrival: Mutex<Arrival>,
    arrived: Condvar,
    /// The job as last changed, and when it was last published.
    view: Mutex<(Job, Instant)>,
}

impl JobControl {
    fn new(owner: OwnerId, job: Job, arrival: Arrival) -> JobControl {
        JobControl {
            owner,
            id: job.id.clone(),
            cancelled: AtomicBool::new(false),
            validation_started: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            arrival: Mutex::new(arrival),
            arrived: Condvar::new(),
            view: Mutex::new((job, Instant::now())),
        }
    }

    fn arrival(&self) -> std::sync::MutexGuard<'_, Arrival> {
        self.arrival.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// More bytes are in storage.
    pub fn add_written(&self, bytes: u64) {
        self.arrival().written += bytes;
        self.arrived.notify_all();
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
        self.arrived.notify_all();
    }

    /// Wait until more than `read` bytes are written or the upload ended, at most a moment.
    fn wait_for_bytes(&self, read: u64) -> (u64, UploadEnd) {
        let arrival = self.arrival();
        let (arrival, _) = self
            .arrived
            .wait_timeout_while(arrival, WAIT_FOR_BYTES, |a| a.written <= read && a.end == UploadEnd::Open)
            .unwrap_or_else(|p| p.into_inner());
        (arrival.written, arrival.end.clone())
    }

    fn update(&self, change: impl FnOnce(&mut Job)) {
        let mut view = self.view.lock().unwrap_or_else(|p| p.into_inner());
        change(&mut view.0);
        view.0.updated_at_ms = crate::now_ms();
    }

    /// Publish the current view if the last publish is old enough (or `force`). The view stays
    /// locked while it is stored, so two threads of one job (upload writer and validator)
    /// can never store an older view over a newer one.
    fn publish(&self, publisher: &Publisher, force: bool) {
        let mut view = self.view.lock().unwrap_or_else(|p| p.into_inner());
        let throttled = view.1.elapsed() < PROGRESS_EVERY || self.finished.load(Ordering::Acquire);
        if !force && throttled {
            return; // too soon, or the job already ended (only its final state goes out)
        }
        view.1 = Instant::now();
        if let Err(e) = publisher.job_changed(&self.owner, &view.0) {
            tracing::error!(job = %self.id, error = %e, "could not store a job change");
        }
    }

    pub fn job(&self) -> Job {
        self.view.lock().unwrap_or_else(|p| p.into_inner()).0.clone()
    }
}

/// What a validation needs besides the bytes.
#[derive(Clone)]
pub struct Rules {
    pub schema: Schema,
    pub dialect: Dialect,
}

pub struct JobRunner {
    storage: Arc<dyn Storage>,
    publisher: Arc<Publisher>,
    metrics: Arc<Metrics>,
    pool: Arc<Semaphore>,
    running: Mutex<HashMap<String, Arc<JobControl>>>,
    uploads_per_owner: Mutex<HashMap<OwnerId, usize>>,
    max_uploads_per_owner: usize,
    shutting_down: AtomicBool,
}

impl JobRunner {
    pub fn new(
        storage: Arc<dyn Storage>,
        publisher: Arc<Publisher>,
        metrics: Arc<Metrics>,
        workers: usize,
        max_uploads_per_owner: usize,
    ) -> JobRunner {
        JobRunner {
            storage,
            publisher,
            metrics,
            pool: Arc::new(Semaphore::new(workers)),
            running: Mutex::new(HashMap::new()),
            uploads_per_owner: Mutex::new(HashMap::new()),
            max_uploads_per_owner,
            shutting_down: AtomicBool::new(false),
        }
    }

    pub fn publisher(&self) -> &Arc<Publisher> {
        &self.publisher
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Count an upload against its owner's cap; `None` when the owner is at the cap.
    pub fn begin_upload_slot(self: &Arc<Self>, owner: &OwnerId) -> Option<UploadSlot> {
        let mut counts = self.uploads_per_owner.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(owner.clone()).or_default();
        if *count >= self.max_uploads_per_owner {
            return None;
        }
        *count += 1;
        Some(UploadSlot { runner: self.clone(), owner: owner.clone() })
    }

    /// Register a new upload: the job is stored as `uploading` and its validation scheduled.
    /// Blocking (it stores the job).
    pub fn start_upload(
        self: &Arc<Self>,
        owner: &OwnerId,
        file_name: String,
        schema_id: Option<String>,
        rules: Rules,
    ) -> Result<(Arc<JobControl>, Box<dyn std::io::Write + Send>), String> {
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
        // The file exists before the validator is scheduled to read it.
        let file = self.storage.create_upload(&job.id).map_err(|e| format!("cannot create the upload file: {e}"))?;
        let control = Arc::new(JobControl::new(owner.clone(), job, Arrival { written: 0, end: UploadEnd::Open }));
        // Registered before anyone hears of it, so a cancel right after the first update works.
        self.running.lock().unwrap_or_else(|p| p.into_inner()).insert(control.id.clone(), control.clone());
        self.publisher.job_changed(owner, &control.job()).map_err(|e| e.to_string())?;
        self.schedule(control.clone(), rules);
        Ok((control, file))
    }

    /// All bytes are in: validation can finish.
    pub fn complete_upload(&self, control: &JobControl) {
        control.end_upload(UploadEnd::Complete);
        let started = control.validation_started.load(Ordering::Acquire);
        control.update(|job| {
            if job.state == JobState::Uploading {
                job.state = if started { JobState::Validating } else { JobState::Queued };
            }
            job.progress.bytes_total = Some(control.written());
        });
        control.publish(&self.publisher, true);
    }

    /// `bytes` more of the upload are in storage. Blocking (it may publish progress).
    pub fn uploaded(&self, control: &JobControl, bytes: u64) {
        control.add_written(bytes);
        let written = control.written();
        control.update(|job| {
            if job.state == JobState::Uploading {
                job.progress.bytes_done = written;
            }
        });
        control.publish(&self.publisher, false);
    }

    /// The upload stopped half-way (`Cancelled`) or was refused (`Failed`): the job ends at
    /// once and its partial file goes. Blocking.
    pub fn abort_upload(&self, control: &JobControl, state: JobState, reason: &str) {
        control.end_upload(UploadEnd::Aborted(state, reason.to_owned()));
        self.finish(control, state, Some(reason.to_owned()), None);
    }

    /// Re-queue a job found unfinished at start-up. Blocking.
    pub fn recover(self: &Arc<Self>, owner: OwnerId, mut job: Job, rules: Option<Rules>) {
        let complete_file = job.state != JobState::Uploading && self.storage.upload_exists(&job.id);
        match (rules, complete_file) {
            (Some(rules), true) => {
                let size = job.progress.bytes_total.unwrap_or(0);
                job.state = JobState::Queued;
                job.progress = JobProgress { bytes_done: 0, bytes_total: Some(size), rows: 0, errors: 0 };
                let written = self.storage.upload_len(&job.id).unwrap_or(size);
                let control = Arc::new(JobControl::new(owner, job, Arrival { written, end: UploadEnd::Complete }));
                control.publish(&self.publisher, true);
                self.schedule(control, rules);
            }
            (rules, _) => {
                job.state = JobState::Failed;
                job.reason = Some(match rules {
                    None => "the job's schema is no longer available".to_owned(),
                    Some(_) => "the server stopped while the file was uploading; upload it again".to_owned(),
                });
                job.updated_at_ms = crate::now_ms();
                let _ = self.storage.remove_upload(&job.id);
                if let Err(e) = self.publisher.job_changed(&owner, &job) {
                    tracing::error!(job = %job.id, error = %e, "could not mark an interrupted job failed");
                }
            }
        }
    }

    fn schedule(self: &Arc<Self>, control: Arc<JobControl>, rules: Rules) {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).insert(control.id.clone(), control.clone());
        let runner = self.clone();
        tokio::spawn(async move {
            let Ok(permit) = runner.pool.clone().acquire_owned().await else { return };
            let worker = runner.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| worker.validate(&control, rules)));
                if outcome.is_err() {
                    worker.finish(&control, JobState::Failed, Some("internal error while validating".into()), None);
                }
                worker.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&control.id);
                drop(permit);
            })
            .await;
        });
    }

    /// Follow the upload with the validator until its end, a cancel or shutdown.
    fn validate(&self, control: &JobControl, rules: Rules) {
        if control.finished.load(Ordering::Acquire) {
            return; // cancelled or refused while it waited for a worker
        }
        let started = Instant::now();
        let mut reader = match self.storage.open_upload(&control.id) {
            Ok(reader) => reader,
            Err(e) => return self.finish(control, JobState::Failed, Some(format!("cannot read the upload: {e}")), None),
        };
        let mut validator = Validator::new(rules.schema, rules.dialect, Limits::default());
        let mut buffer = vec![0; READ_CHUNK];
        let mut read: u64 = 0;
        control.validation_started.store(true, Ordering::Release);
        control.update(|job| {
            if job.state == JobState::Queued {
                job.state = JobState::Validating;
            }
        });
        control.publish(&self.publisher, true);
        loop {
            if control.is_cancelled() {
                return self.finish(control, JobState::Cancelled, Some("cancelled".into()), None);
            }
            if self.shutting_down.load(Ordering::Acquire) {
                return self.requeue_on_shutdown(control);
            }
            let (written, end) = control.wait_for_bytes(read);
            if written > read {
                let want = ((written - read) as usize).min(buffer.len());
                match reader.read(&mut buffer[..want]) {
                    Ok(0) => continue, // written but not yet visible: try again
                    Ok(n) => {
                        validator.feed(&buffer[..n]);
                        read += n as u64;
                        self.metrics.bytes_validated.inc_by(n as u64);
                        let progress = validator.progress();
                        control.update(|job| {
                            job.progress.rows = progress.rows;
                            job.progress.errors = progress.errors;
                            if job.state == JobState::Validating {
                                job.progress.bytes_done = read;
                            }
                        });
                        control.publish(&self.publisher, false);
                    }
                    Err(e) => {
                        return self.finish(control, JobState::Failed, Some(format!("cannot read the upload: {e}")), None)
                    }
                }
                continue;
            }
            match end {
                UploadEnd::Open => {}
                UploadEnd::Complete => break,
                UploadEnd::Aborted(state, reason) => return self.finish(control, state, Some(reason), None),
            }
        }
        let report = validator.finish();
        self.metrics.validation_seconds.observe(started.elapsed().as_secs_f64());
        let state = if report.valid { JobState::Valid } else { JobState::Invalid };
        match serde_json::to_vec(&report).map_err(std::io::Error::other).and_then(|json| self.storage.write_report(&control.id, &json)) {
            Ok(()) => self.finish(control, state, None, Some(&report)),
            Err(e) => self.finish(control, JobState::Failed, Some(format!("cannot store the report: {e}")), None),
        }
    }

    fn finish(&self, control: &JobControl, state: JobState, reason: Option<String>, report: Option<&Report>) {
        if control.finished.swap(true, Ordering::AcqRel) {
            return; // already ended (a cancel and the end of the file can race)
        }
        if matches!(state, JobState::Cancelled | JobState::Failed) {
            let _ = self.storage.remove_upload(&control.id);
        }
        control.update(|job| {
            job.state = state;
            job.reason = reason;
            if let Some(report) = report {
                job.progress.rows = report.rows;
                job.progress.errors = report.error_total;
                job.progress.bytes_done = report.bytes;
                job.progress.bytes_total = Some(report.bytes);
                job.error_counts = report.error_counts.clone();
            }
        });
        control.publish(&self.publisher, true);
    }

    /// Shutting down mid-validation: leave the job queued, so the next start finishes it.
    fn requeue_on_shutdown(&self, control: &JobControl) {
        if control.finished.swap(true, Ordering::AcqRel) {
            return;
        }
        control.update(|job| {
            job.state = if job.state == JobState::Uploading { JobState::Uploading } else { JobState::Queued };
        });
        control.publish(&self.publisher, true);
    }

    /// Cancel a running job of this owner; it stops within a chunk (milliseconds). False when
    /// it is not running (or not theirs). Blocking.
    pub fn cancel(&self, owner: &OwnerId, id: &str) -> bool {
        let control = {
            let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            match running.get(id) {
                Some(control) if &control.owner == owner => control.clone(),
                _ => return false,
            }
        };
        control.cancelled.store(true, Ordering::Release);
        control.end_upload(UploadEnd::Aborted(JobState::Cancelled, "cancelled".into()));
        // Not waiting for a worker to notice: the job is cancelled now.
        self.finish(&control, JobState::Cancelled, Some("cancelled".into()), None);
        true
    }

    /// Stop validations at their next chunk; their jobs stay queued for the next start.
    pub fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
        for control in self.running.lock().unwrap_or_else(|p| p.into_inner()).values() {
            control.arrived.notify_all();
        }
    }

    /// Running validations, for a graceful shutdown to wait on.
    pub fn running_count(&self) -> usize {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// One of an owner's concurrent upload slots; given back on drop.
pub struct UploadSlot {
    runner: Arc<JobRunner>,
    owner: OwnerId,
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut counts = self.runner.uploads_per_owner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.owner) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.owner);
            }
        }
    }
}
