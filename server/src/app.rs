//! `datavista serve`: wires the store, storage, hub and job runner together, recovers
//! interrupted jobs, serves HTTP and WebSocket, and shuts down gracefully.

use std::sync::Arc;
use std::time::Duration;

use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use datavista_shared::protocol::Job;

use crate::config::Config;
use crate::hub::redis_bus::{BusKey, RedisBus};
use crate::hub::{CancelRequest, EventBus, HubHandle, InProcessBus};
use crate::identity;
use crate::jobs::{JobRunner, Publisher};
use crate::metrics::Metrics;
use crate::owner::OwnerId;
use crate::routes::{self, system};
use crate::schemas::SchemaCatalog;
use crate::state::AppState;
use crate::store::{JobStore, Lease, StoreResult};

/// How long a node holds its unfinished jobs without renewing: after it crashes, another
/// node sharing the database takes them over this long after its last renewal.
const LEASE: Duration = Duration::from_secs(10);
/// How often a node renews its leases and looks for jobs whose node stopped renewing.
const LEASE_CHECK_EVERY: Duration = Duration::from_secs(3);
/// How often a node with idle workers looks for queued jobs of busy nodes.
const QUEUED_CHECK_EVERY: Duration = Duration::from_secs(1);
/// A job queued this recently is left to its own node, which may be about to start it.
const QUEUED_LEFT_TO_ITS_NODE: Duration = Duration::from_secs(1);

pub async fn serve(config: Config) -> Result<(), String> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        format!(
            "cannot create the data dir {}: {e}",
            config.data_dir.display()
        )
    })?;
    let lease = Lease::new(LEASE);
    let store = crate::store::open(config.database_url.as_deref(), &config.data_dir, lease)
        .map_err(|e| format!("cannot open the database: {e}"))?;
    let storage = crate::storage::open(config.storage.as_deref(), &config.data_dir)
        .map_err(|e| format!("cannot prepare storage: {e}"))?;
    let session_key = identity::load_or_create_key(&config.session_key_file())?;
    let schemas = SchemaCatalog::load(config.schema_dir.as_deref())?;
    let metrics = Arc::new(Metrics::new());
    let hub = HubHandle::new(
        config.ws_queue_len,
        config.max_connections_per_owner,
        config.max_connections,
    );
    let trusted_proxies = crate::session_rate::parse_proxies(&config.trusted_proxies)?;
    let (bus, cancel_requests): (Arc<dyn EventBus>, _) = match &config.redis_url {
        Some(url) => {
            let key = config.bus_key_file.as_deref().ok_or(
                "--redis-url needs --bus-key-file: a file of at least 32 random bytes, the same \
                 on every node, that signs the messages between nodes (e.g. `openssl rand -hex \
                 32 > bus.key`)",
            )?;
            let key = BusKey::load(key)?;
            let (bus, cancel_requests) = RedisBus::start(url, hub.clone(), key, &metrics).await?;
            (Arc::new(bus), Some(cancel_requests))
        }
        None => (Arc::new(InProcessBus(hub.clone())), None),
    };
    let publisher = Arc::new(Publisher::new(store.clone(), bus));
    let jobs = Arc::new(
        JobRunner::new(
            storage,
            publisher,
            metrics.clone(),
            config.workers(),
            crate::jobs::Budgets {
                uploads: crate::jobs::UploadLimits {
                    per_owner: config.max_uploads_per_owner,
                    total: config.max_uploads,
                },
                unique_memory_bytes: config.validation_memory_bytes / config.workers(),
                finished_per_owner: config.finished_jobs_per_owner,
            },
        )
        .map_err(|e| format!("cannot start the validator threads: {e}"))?,
    );
    if let Some(requests) = cancel_requests {
        tokio::spawn(cancel_on_request(jobs.clone(), requests));
    }
    let (shutdown, _) = tokio::sync::watch::channel(false);
    let state = web::Data::new(AppState {
        config: config.clone(),
        store,
        jobs,
        hub,
        schemas,
        reports: Arc::new(crate::reports::ReportCache::new()),
        metrics,
        sessions: identity::SessionCookies::new(session_key, config.https),
        session_rate: crate::session_rate::SessionRate::new(config.new_sessions_per_minute),
        trusted_proxies,
        shutdown,
    });

    take_over_orphaned_jobs(&state).await?;
    tokio::spawn(keep_leases(state.clone()));
    tokio::spawn(take_queued_jobs(state.clone()));

    let app_state = state.clone();
    let server =
        HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .app_data(web::QueryConfig::default().error_handler(|e, _| {
                    crate::errors::ApiError::BadRequest(e.to_string()).into()
                }))
                .wrap(from_fn(system::ensure_session))
                // Outermost, so it sees every response the app makes, errors and 404s too.
                .wrap(crate::security_headers::on_every_response())
                .configure(routes::uploads::routes)
                .configure(routes::schemas::routes)
                .configure(system::routes)
                .route("/ws", web::get().to(routes::ws::connect))
                .route("/{path:.*}", web::get().to(system::dashboard))
                .default_service(web::to(system::not_found))
        })
        .on_connect(routes::ws::remember_socket)
        // Pushes are small writes one after another: Nagle's algorithm would hold each behind
        // the client's delayed ACK of the previous one (up to 40 ms on Linux).
        .tcp_nodelay(true)
        .disable_signals()
        .shutdown_timeout(10)
        .bind(config.bind)
        .map_err(|e| format!("cannot listen on {}: {e}", config.bind))?;
    for address in server.addrs() {
        // Tests and scripts read this line to find the port.
        println!("DataVista listening on http://{address}");
    }
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: closing connections, re-queueing running jobs");
        let _ = state.shutdown.send(true);
        state.jobs.shutdown();
        for _ in 0..50 {
            if state.jobs.running_count() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The re-queued jobs go to another node sharing the database now, not in a lease.
        let store = state.store.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || store.release_leases()).await {
            tracing::warn!(error = %e, "could not release this node's jobs");
        }
        handle.stop(true).await;
    });
    server.await.map_err(|e| format!("the server failed: {e}"))
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("signal handlers can be installed");
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Cancel the jobs other nodes ask to, when they run here (the others ignore the request).
async fn cancel_on_request(
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
async fn keep_leases(state: web::Data<AppState>) {
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
async fn take_over_orphaned_jobs(state: &web::Data<AppState>) -> Result<(), String> {
    take_over(state, "taking over an interrupted job", |store| {
        store.claim_orphaned_jobs()
    })
    .await
}

/// With workers to spare, take queued jobs from busy nodes sharing the database (the file
/// storage is shared too); their nodes notice when they come to start them.
async fn take_queued_jobs(state: web::Data<AppState>) {
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

/// Run the jobs that `claim` makes this node's.
async fn take_over(
    state: &web::Data<AppState>,
    why: &'static str,
    claim: impl FnOnce(&dyn JobStore) -> StoreResult<Vec<(OwnerId, Job)>> + Send + 'static,
) -> Result<(), String> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let claimed = claim(state.store.as_ref()).map_err(|e| e.to_string())?;
        for (owner, job) in claimed {
            let id = job.id.clone();
            tracing::info!(job = %id, state = job.state.as_str(), "{why}");
            let run = state
                .schemas
                .rules(state.store.as_ref(), &owner, job.schema_id.as_deref())
                .map_err(|e| e.to_string())
                .and_then(|rules| {
                    state
                        .jobs
                        .recover(owner, job, rules)
                        .map_err(|e| e.to_string())
                });
            if let Err(e) = run {
                // Claimed but not runnable now: let go, so it is taken again shortly.
                tracing::warn!(job = %id, error = %e, "could not take a job over; letting it go");
                if let Err(e) = state.store.release_job(&id) {
                    tracing::warn!(job = %id, error = %e, "could not let go of a job");
                }
            }
        }
        Ok::<_, String>(())
    })
    .await
    .map_err(|e| e.to_string())?
}
