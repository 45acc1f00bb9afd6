//! Nodes sharing one database: each holds its unfinished jobs under a lease it renews, takes
//! over the jobs of a node that stopped renewing, gives idle workers to the queued jobs of
//! busy nodes, and cancels the jobs other nodes ask it to.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use datavista_shared::protocol::Job;

use crate::hub::CancelRequest;
use crate::jobs::{JobError, JobRunner};
use crate::owner::OwnerId;
use crate::state::AppState;
use crate::store::{JobStore, StoreError, StoreResult};

/// How long a node holds its unfinished jobs without renewing: after it crashes, another
/// node sharing the database takes them over this long after its last renewal.
pub const LEASE: Duration = Duration::from_secs(10);
/// How often a node renews its leases and looks for jobs whose node stopped renewing.
const LEASE_CHECK_EVERY: Duration = Duration::from_secs(3);
/// How often a node with idle workers looks for queued jobs of busy nodes.
const QUEUED_CHECK_EVERY: Duration = Duration::from_secs(1);
/// A job queued this recently is left to its own node, which may be about to start it.
const QUEUED_LEFT_TO_ITS_NODE: Duration = Duration::from_secs(1);

/// Cancel the jobs other nodes ask to, when they run here (the others ignore the request).
pub async fn cancel_on_request(
    jobs: Arc<JobRunner>,
    mut requests: tokio::sync::mpsc::UnboundedReceiver<CancelRequest>,
) {
    while let Some(CancelRequest { owner, job_id }) = requests.recv().await {
        let jobs = jobs.clone();
        let _ = tokio::task::spawn_blocking(move || jobs.cancel(&owner, &job_id)).await;
    }
}

/// Renew this node's leases, and take over the jobs of nodes that stopped renewing theirs,
/// until the server stops.
pub async fn keep_leases(state: web::Data<AppState>) {
    let mut shutdown = state.shutdown.subscribe();
    let mut every = tokio::time::interval(LEASE_CHECK_EVERY);
    every.tick().await; // the first tick is immediate: start-up already looked
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.changed() => return,
        }
        let store = state.store.clone();
        match tokio::task::spawn_blocking(move || store.renew_leases()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not renew this node's job leases"),
            Err(e) => tracing::warn!(error = %e, "the lease renewal stopped"),
        }
        if let Err(e) = take_over_orphaned_jobs(&state).await {
            tracing::warn!(error = %e, "could not look for orphaned jobs");
        }
    }
}

/// Jobs whose node stopped (this process's own predecessor after a crash or restart, or
/// another node sharing the database): validations start again from the stored file; an
/// upload cut off half-way cannot be finished and is marked failed.
pub async fn take_over_orphaned_jobs(state: &web::Data<AppState>) -> Result<(), TakeOverError> {
    take_over(state, "taking over an interrupted job", |store| {
        store.claim_orphaned_jobs()
    })
    .await
}

/// With workers to spare, take queued jobs from busy nodes sharing the database (the file
/// storage is shared too); their nodes notice when they come to start them.
pub async fn take_queued_jobs(state: web::Data<AppState>) {
    let mut shutdown = state.shutdown.subscribe();
    let mut every = tokio::time::interval(QUEUED_CHECK_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.changed() => return,
        }
        let idle = state.jobs.idle_workers();
        if idle == 0 {
            continue;
        }
        let taken = take_over(
            &state,
            "taking a queued job from a busy node",
            move |store| store.claim_queued_jobs(idle, QUEUED_LEFT_TO_ITS_NODE),
        );
        if let Err(e) = taken.await {
            tracing::warn!(error = %e, "could not look for queued jobs");
        }
    }
}

/// Why jobs could not be claimed. A claimed job that cannot run is let go, not an error.
#[derive(Debug, thiserror::Error)]
pub enum TakeOverError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the takeover stopped: {0}")]
    Stopped(#[from] tokio::task::JoinError),
}

/// Run the jobs that `claim` makes this node's.
async fn take_over(
    state: &web::Data<AppState>,
    why: &'static str,
    claim: impl FnOnce(&dyn JobStore) -> StoreResult<Vec<(OwnerId, Job)>> + Send + 'static,
) -> Result<(), TakeOverError> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let claimed = claim(state.store.as_ref())?;
        for (owner, job) in claimed {
            let id = job.id.clone();
            tracing::info!(job = %id, state = job.state.as_str(), "{why}");
            let run = state
                .schemas
                .rules(state.store.as_ref(), &owner, job.schema_id.as_deref())
                .map_err(JobError::from)
                .and_then(|rules| state.jobs.recover(owner, job, rules));
            if let Err(e) = run {
                // Claimed but not runnable now: let go, so it is taken again shortly.
                tracing::warn!(job = %id, error = %e, "could not take a job over; letting it go");
                if let Err(e) = state.store.release_job(&id) {
                    tracing::warn!(job = %id, error = %e, "could not let go of a job");
                }
            }
        }
        Ok::<_, TakeOverError>(())
    })
    .await?
}
