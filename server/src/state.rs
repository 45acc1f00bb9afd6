//! What every handler can reach.

use std::sync::Arc;

use crate::config::Config;
use crate::hub::HubHandle;
use crate::identity::SessionCookies;
use crate::jobs::JobRunner;
use crate::metrics::Metrics;
use crate::reports::ReportCache;
use crate::schemas::SchemaCatalog;
use crate::session_rate::SessionRate;
use crate::store::JobStore;

pub struct AppState {
    pub config: Config,
    pub store: Arc<dyn JobStore>,
    pub jobs: Arc<JobRunner>,
    pub hub: HubHandle,
    pub schemas: Arc<SchemaCatalog>,
    pub reports: Arc<ReportCache>,
    pub metrics: Arc<Metrics>,
    /// Signs, names and checks session cookies.
    pub sessions: SessionCookies,
    /// How fast one client address may start new sessions.
    pub session_rate: SessionRate,
    /// `--trusted-proxies`, parsed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Flips to true when the server shuts down: sessions close with "restarting".
    pub shutdown: tokio::sync::watch::Sender<bool>,
}
