//! One job's control: its view (the job as last changed and published), the bytes that
//! arrived, how the upload ended, and the flags a cancel, a takeover or the end set.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use datavista_shared::protocol::{Job, JobState};
use tokio::sync::Notify;

use super::Publisher;
use crate::owner::OwnerId;

/// Progress is published at most this often per job.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// How an upload's bytes are arriving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum UploadEnd {
    Open,
    Complete,
    /// Ended early; the job ends in this state with this reason.
    Aborted(JobState, String),
}

#[derive(Debug)]
pub(super) struct Arrival {
    pub(super) written: u64,
    pub(super) end: UploadEnd,
}

/// Which kind of change is being published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Publish {
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
    pub(super) cancelled: AtomicBool,
    /// The job reached its final state (set once: whoever gets there first publishes it),
    /// or passed to another node.
    pub(super) finished: AtomicBool,
    /// Another node took the job over; this node no longer writes it.
    pub(super) passed: AtomicBool,
    /// A progress update is on its way to a normal-priority thread.
    pub(super) progress_queued: AtomicBool,
    arrival: Mutex<Arrival>,
    /// Wakes the job's task: bytes arrived, the upload ended, a cancel or shutdown.
    pub(super) wake: Notify,
    /// The job as last changed, when it was last published, and whether a worker has started
    /// validating (decided under this one lock, so the state shown is always the true one).
    view: Mutex<View>,
}

pub(super) struct View {
    pub(super) job: Job,
    published: Instant,
    pub(super) validation_started: bool,
}

impl JobControl {
    pub(super) fn new(owner: OwnerId, job: Job, arrival: Arrival) -> JobControl {
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
    pub(super) fn progress_due(&self) -> bool {
        !self.is_finished() && self.view().published.elapsed() >= PROGRESS_EVERY
    }

    pub(super) fn arrival(&self) -> std::sync::MutexGuard<'_, Arrival> {
        crate::sync::lock(&self.arrival)
    }

    pub(super) fn view(&self) -> std::sync::MutexGuard<'_, View> {
        crate::sync::lock(&self.view)
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    pub(super) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    pub fn written(&self) -> u64 {
        self.arrival().written
    }

    pub(super) fn end_upload(&self, end: UploadEnd) {
        let mut arrival = self.arrival();
        if arrival.end == UploadEnd::Open {
            arrival.end = end;
        }
        drop(arrival);
        self.wake.notify_waiters();
    }

    pub(super) fn update(&self, change: impl FnOnce(&mut View)) {
        let mut view = self.view();
        change(&mut view);
        view.job.updated_at_ms = crate::clock::now_ms();
    }

    /// Store and push the current view. The view stays locked while it is stored, so two
    /// threads of one job (upload writer and validator) can never store an older view over a
    /// newer one; and after the end only the final state goes out (a late progress update
    /// must not bring back a job the user just deleted).
    ///
    /// False when another node has taken the job over (an idle node took it from the queue,
    /// or this node's lease ran out): the job ends here, silently, and its file is left to
    /// the new holder.
    pub(super) fn publish(&self, publisher: &Publisher, kind: Publish) -> bool {
        let mut view = self.view();
        self.publish_view(&mut view, publisher, kind)
    }

    /// Change the view and publish it under one hold of its lock. Changed and published
    /// apart, another thread's change could land in between (a worker moving Queued on to
    /// Validating) and this publish would carry that one instead: a state the job passed
    /// through would never reach the tabs.
    pub(super) fn change_and_publish(
        &self,
        publisher: &Publisher,
        kind: Publish,
        change: impl FnOnce(&mut View) -> bool,
    ) -> bool {
        let mut view = self.view();
        let changed = change(&mut view);
        view.job.updated_at_ms = crate::clock::now_ms();
        !changed || self.publish_view(&mut view, publisher, kind)
    }

    pub(super) fn publish_view(
        &self,
        view: &mut View,
        publisher: &Publisher,
        kind: Publish,
    ) -> bool {
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
    pub(super) async fn wait_until(&self, mut done: impl FnMut() -> bool) {
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
    pub(super) async fn until_finished(&self) {
        self.wait_until(|| self.is_finished()).await
    }

    pub fn job(&self) -> Job {
        self.view().job.clone()
    }
}
