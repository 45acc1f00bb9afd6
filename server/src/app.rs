//! `datavista serve`: wires the store, storage, hub and job runner together, recovers
//! interrupted jobs, serves HTTP and WebSocket, and shuts down gracefully.

use std::sync::Arc;
use std::time::Duration;

use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};

use crate::cluster::{self, TakeOverError};
use crate::config::Config;
use crate::hub::redis_bus::{BusError, BusKey, RedisBus};
use crate::hub::{EventBus, HubHandle, InProcessBus};
use crate::identity::{self, KeyError};
use crate::jobs::{JobRunner, Publisher};
use crate::metrics::Metrics;
use crate::routes::{self, system};
use crate::schemas::{SchemaCatalog, SchemaLoadError};
use crate::session_rate::NotAProxy;
use crate::state::AppState;
use crate::storage::StorageError;
use crate::store::{Lease, StoreError};

/// Why the server could not start, or stopped. The messages tell the operator what to do.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot create the data dir {}: {source}", path.display())]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the database: {0}")]
    Database(#[source] StoreError),
    #[error("cannot prepare storage: {0}")]
    Storage(#[source] StorageError),
    #[error(transparent)]
    SessionKey(#[from] KeyError),
    #[error(transparent)]
    Schemas(#[from] SchemaLoadError),
    /// `--trusted-proxies` does not parse.
    #[error(transparent)]
    Proxies(#[from] NotAProxy),
    #[error(
        "--redis-url needs --bus-key-file: a file of at least 32 random bytes, the same on \
         every node, that signs the messages between nodes (e.g. `openssl rand -hex 32 > \
         bus.key`)"
    )]
    NoBusKey,
    /// The bus key, or the Redis connection.
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("cannot start the validator threads: {0}")]
    ValidatorThreads(#[source] std::io::Error),
    #[error(transparent)]
    TakeOver(#[from] TakeOverError),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("the server failed: {0}")]
    Server(#[source] std::io::Error),
}

pub async fn serve(config: Config) -> Result<(), ServeError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServeError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let lease = Lease::new(crate::cluster::LEASE);
    let store = crate::store::open(config.database_url.as_deref(), &config.data_dir, lease)
        .map_err(ServeError::Database)?;
    let storage = crate::storage::open(config.storage.as_deref(), &config.data_dir)
        .map_err(ServeError::Storage)?;
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
            let key = config.bus_key_file.as_deref().ok_or(ServeError::NoBusKey)?;
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
        .map_err(ServeError::ValidatorThreads)?,
    );
    if let Some(requests) = cancel_requests {
        tokio::spawn(cluster::cancel_on_request(jobs.clone(), requests));
    }
    let (shutdown, _) = tokio::sync::watch::channel(false);
    let state = web::Data::new(AppState {
        config: config.clone(),
        store,
        jobs,
        hub,
        schemas: Arc::new(schemas),
        reports: Arc::new(crate::reports::ReportCache::new()),
        metrics,
        sessions: identity::SessionCookies::new(session_key, config.https),
        session_rate: crate::session_rate::SessionRate::new(config.new_sessions_per_minute),
        trusted_proxies,
        shutdown,
    });

    cluster::take_over_orphaned_jobs(&state).await?;
    tokio::spawn(cluster::keep_leases(state.clone()));
    tokio::spawn(cluster::take_queued_jobs(state.clone()));

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
        .map_err(|source| ServeError::Listen {
            address: config.bind,
            source,
        })?;
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
    server.await.map_err(ServeError::Server)
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
