//! Cancel: a job running here stops at once; one that another node runs is asked for over
//! the bus until it ends.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datavista_shared::protocol::{Job, JobState};

use super::control::UploadEnd;
use super::{blocking, JobError, JobRunner};
use crate::owner::OwnerId;

/// How long a `DELETE` waits for another node to cancel the job it runs.
pub const REMOTE_CANCEL_WAIT: Duration = Duration::from_secs(5);

/// Between asks, while waiting for another node to cancel a job.
const REMOTE_CANCEL_ASK_EVERY: Duration = Duration::from_millis(500);

/// Where a cancel went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancel {
    /// The job ran here and ended.
    Done,
    /// Another node runs it: [`JobRunner::cancel_elsewhere`] asks that node.
    Elsewhere,
    /// No unfinished job of this owner has that id.
    NotRunning,
}

impl JobRunner {
    /// Cancel a job of `owner`, the one way the HTTP `DELETE` and the WebSocket's `cancel`
    /// both take: a job running here stops at once; one that is unfinished but not here runs
    /// on another node, which the caller asks with [`JobRunner::cancel_elsewhere`].
    pub async fn cancel_job(
        self: &Arc<Self>,
        owner: &OwnerId,
        id: &str,
    ) -> Result<Cancel, JobError> {
        let (runner, owner, id) = (self.clone(), owner.clone(), id.to_owned());
        blocking(move || {
            if runner.cancel(&owner, &id) {
                return Ok(Cancel::Done);
            }
            Ok(match runner.publisher.store().job(&owner, &id)? {
                Some(job) if !job.state.is_final() => Cancel::Elsewhere,
                _ => Cancel::NotRunning,
            })
        })
        .await?
    }

    /// Cancel a job that another node runs: ask over the bus, and again every half second (a
    /// node taking the job over meanwhile hears a later ask), until the job ends or
    /// REMOTE_CANCEL_WAIT passes. The job as it is then; `None` when the owner has no such
    /// job.
    pub async fn cancel_elsewhere(
        self: &Arc<Self>,
        owner: &OwnerId,
        id: &str,
    ) -> Result<Option<Job>, JobError> {
        let deadline = Instant::now() + REMOTE_CANCEL_WAIT;
        let mut next_ask = Instant::now();
        loop {
            let Some(job) = self.find(owner, id).await? else {
                return Ok(None);
            };
            if job.state.is_final() || Instant::now() >= deadline {
                return Ok(Some(job));
            }
            if Instant::now() >= next_ask {
                self.publisher.request_cancel(owner, id);
                next_ask += REMOTE_CANCEL_ASK_EVERY;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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
}
