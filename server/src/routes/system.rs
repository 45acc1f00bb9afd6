//! Health, metrics, the session endpoint and the dashboard's static files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_files::NamedFile;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{ContentType, CONTENT_SECURITY_POLICY};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use datavista_shared::http::{Health, Session};

use crate::errors::ApiError;
use crate::metrics::StateLabel;
use crate::owner::OwnerId;
use crate::routes::auth::Owner;
use crate::security_headers;
use crate::state::AppState;

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/healthz", web::get().to(healthz))
        .route("/metrics", web::get().to(metrics))
        .route("/api/session", web::get().to(session));
}

/// Jobs per state, counted at most every couple of seconds however often this is asked.
async fn job_counts(state: &web::Data<AppState>) -> Result<Arc<Vec<(String, u64)>>, ApiError> {
    let store = state.store.clone();
    let count = move || {
        tokio::task::spawn_blocking(move || store.count_by_state().map_err(|e| e.to_string()))
    };
    state
        .metrics
        .job_counts(count)
        .await
        .map_err(ApiError::Internal)
}

async fn healthz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    job_counts(&state).await?; // the database answered, a moment ago at most
    Ok(HttpResponse::Ok().json(Health {
        status: "ok".to_owned(),
    }))
}

async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let counts = job_counts(&state).await?;
    state.metrics.jobs.clear(); // states that dropped to zero must not keep their old value
    for (state_name, count) in counts.iter() {
        state
            .metrics
            .jobs
            .get_or_create(&StateLabel {
                state: state_name.clone(),
            })
            .set(*count as i64);
    }
    state
        .metrics
        .connections
        .set(state.hub.connections() as i64);
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.render()))
}

/// Anything no route matched (a wrong method, an unknown path): a JSON 404.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::NotFound(format!(
        "no such endpoint: {} {}",
        req.method(),
        req.path()
    )))
}

/// `GET /api/session`: who you are (a new anonymous session is made when there is none).
async fn session(owner: Owner) -> HttpResponse {
    HttpResponse::Ok().json(Session {
        owner: owner.0.as_str().to_owned(),
    })
}

/// Give every browser an anonymous session on its first visit: requests for pages (and
/// `/api/session`) without a valid cookie get a new owner and a signed cookie.
pub async fn ensure_session(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .expect("AppState is registered")
        .clone();
    let path = req.path();
    let wants_session = path == "/api/session"
        || !(path.starts_with("/api/")
            || path == "/ws"
            || path == "/healthz"
            || path == "/metrics");
    let has_token = req
        .headers()
        .contains_key(actix_web::http::header::AUTHORIZATION);
    let minted = (wants_session && !has_token && state.sessions.owner(req.request()).is_none())
        .then(OwnerId::random);
    if minted.is_some() {
        if let Some(peer) = req.peer_addr() {
            let forwarded = req
                .headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok());
            let client =
                crate::session_rate::client_address(peer.ip(), forwarded, &state.trusted_proxies);
            if let Err(seconds) = state.session_rate.admit(client, std::time::Instant::now()) {
                return Err(ApiError::TooManySessions(
                    format!(
                        "too many new sessions from your address; try again in {seconds} s, or keep the session cookie"
                    ),
                    seconds,
                )
                .into());
            }
        }
    }
    if let Some(owner) = &minted {
        req.extensions_mut().insert(owner.clone());
    }
    let request_is_https = req.connection_info().scheme() == "https";
    let mut response = next.call(req).await?;
    if let Some(owner) = minted {
        response
            .response_mut()
            .add_cookie(&state.sessions.new_cookie(&owner, request_is_https))?;
    }
    Ok(response)
}

/// The dashboard: files from `dist/`, and `index.html` for any other page path (the
/// dashboard routes in the browser).
pub async fn dashboard(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let dist = &state.config.dist_dir;
    if req.path().starts_with("/api/") || req.path() == "/ws" {
        return Err(ApiError::NotFound(format!(
            "no such endpoint: {} {}",
            req.method(),
            req.path()
        )));
    }
    let relative: PathBuf = req.match_info().query("path").parse().unwrap_or_default();
    // Only plain components: no "..", no absolute paths.
    let safe = relative
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if safe && !relative.as_os_str().is_empty() && relative != Path::new("index.html") {
        let file = dist.join(&relative);
        if file.is_file() {
            return Ok(NamedFile::open(file)?.into_response(&req));
        }
    }
    let page = std::fs::read_to_string(dist.join("index.html")).map_err(|_| {
        ApiError::NotFound(format!(
            "the dashboard is not built: run `trunk build --release` (looked in {})",
            dist.display()
        ))
    })?;
    // The page is served from the bytes its policy hashed, so the two always match.
    Ok(HttpResponse::Ok()
        .content_type(ContentType::html())
        .insert_header((
            CONTENT_SECURITY_POLICY,
            security_headers::page_policy(&page),
        ))
        .body(page))
}
