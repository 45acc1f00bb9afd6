//! The turn scheduler and the job's endings. A job's task waits for bytes holding nothing,
//! then takes a worker for a turn ([`Work`], [`Priority`], [`Turn`]), until the job ends
//! ([`Ending`]): its report stored and its verdict given, stopped in a state, or re-queued
//! for the next start when the server shuts down.

use std::io::Read;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datavista_shared::protocol::JobState;
use datavista_shared::{Limits, Report, Validator};

use super::control::{Arrival, Publish, UploadEnd};
use super::{JobControl, JobRunner, Rules};
use crate::owner::OwnerId;
use crate::validator_threads::CpuShare;

/// Validation reads this much at a time.
const READ_CHUNK: usize = 1 << 20;
/// A validation gives its worker back after this many bytes, so queued jobs get turns.
const TURN_BYTES: u64 = 64 << 20;
/// A job's first bytes are validated at normal priority: a small file's whole validation is
/// a blip, and it should not wait behind big ones on the idle-priority threads.
const NORMAL_PRIORITY_HEAD: u64 = 4 << 20;
/// How often a report that met a full disk tries again.
const REPORT_RETRY: Duration = Duration::from_secs(2);

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

/// Where a turn runs: tokio's blocking pool, or the idle-priority
/// [`crate::validator_threads::ValidatorThreads`].
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
    /// The job is over already (cancelled, taken by another node, or re-queued for
    /// shutdown): nothing is left to do.
    Over,
    /// The job must end this way. Left to a normal-priority thread, so its final push never
    /// waits behind validations on the idle-priority validator threads.
    EndWith(Ending),
}

/// How a job that reached its end is closed.
enum Ending {
    /// Validated to the end: store the report, then the verdict.
    Verdict(Report),
    /// Stopped early in this state, for this reason.
    Stopped(JobState, String),
}

impl JobRunner {
    pub(super) fn spawn_validation(self: &Arc<Self>, control: Arc<JobControl>, rules: Rules) {
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
                Ok(Ok(Turn::Over)) => return,
                Ok(Ok(Turn::EndWith(ending))) => return self.end(control, ending).await,
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
                return Turn::Over;
            }
            if self.shutting_down.load(Ordering::Acquire) {
                self.requeue_on_shutdown(control);
                return Turn::Over;
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
                            return Turn::EndWith(Ending::Stopped(JobState::Failed, reason));
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
                        return Turn::EndWith(Ending::Stopped(JobState::Failed, reason));
                    }
                }
                continue;
            }
            match end {
                UploadEnd::Open => return Turn::Continue(Box::new(work)),
                UploadEnd::Aborted(state, reason) => {
                    return Turn::EndWith(Ending::Stopped(state, reason));
                }
                UploadEnd::Complete => {
                    let report = work.validator.finish();
                    self.metrics
                        .validation_seconds
                        .observe(work.started.elapsed().as_secs_f64());
                    return Turn::EndWith(Ending::Verdict(report));
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
    pub(super) fn finish(
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
}
