//! The request's owner: the extractor that answers 401 without a valid session cookie or
//! bearer token, and the Origin check on changes made with a cookie. Every upload, job,
//! report and WebSocket belongs to one owner; another owner's ids answer 404, so ids leak
//! nothing.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};

use crate::errors::ApiError;
use crate::identity::{token_hash, utc};
use crate::owner::OwnerId;
use crate::state::AppState;

/// The owner of the current request. As an extractor it answers 401 when the request has
/// neither a valid session cookie nor a valid bearer token.
#[derive(Debug, Clone)]
pub struct Owner(pub OwnerId);

impl FromRequest for Owner {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Owner, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate(&req).await })
    }
}

async fn authenticate(req: &HttpRequest) -> Result<Owner, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .expect("AppState is registered on the app")
        .clone();
    if let Some(header) = req.headers().get(actix_web::http::header::AUTHORIZATION) {
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::Unauthenticated(
                    "the Authorization header must be 'Bearer <token>'".into(),
                )
            })?
            .trim()
            .to_owned();
        let hash = token_hash(&token);
        let store = state.store.clone();
        return match web::block(move || store.token(&hash)).await?? {
            None => Err(ApiError::Unauthenticated("unknown or revoked token".into())),
            Some(token) => match token.expires_at_ms {
                Some(at) if token.expired(crate::clock::now_ms()) => {
                    Err(ApiError::Unauthenticated(format!(
                        "token {} expired at {}: ask for a new one",
                        token.id,
                        utc(at)
                    )))
                }
                _ => Ok(Owner(token.owner)),
            },
        };
    }
    if let Some(owner) = req.extensions().get::<OwnerId>() {
        return Ok(Owner(owner.clone())); // a session minted for this very request
    }
    let owner = state.sessions.owner(req).ok_or_else(|| {
        ApiError::Unauthenticated(
            "no session: open the dashboard first, or send a bearer token".into(),
        )
    })?;
    // A cookie goes along with requests from any page of the same *site* (another port,
    // a sibling subdomain): changes made with it must come from our own origin.
    if !matches!(
        *req.method(),
        actix_web::http::Method::GET | actix_web::http::Method::HEAD
    ) {
        check_origin(req, &state.config.allowed_origins)?;
    }
    Ok(Owner(owner))
}

/// A browser sends its page's Origin; only our own (or a configured one) may act with the
/// session. Requests without an Origin do not come from another page.
pub fn check_origin(req: &HttpRequest, allowed: &[String]) -> Result<(), ApiError> {
    let Some(origin) = req.headers().get(actix_web::http::header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or_default();
    let info = req.connection_info();
    let own = format!("{}://{}", info.scheme(), info.host());
    if origin == own || allowed.iter().any(|a| a == origin) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "requests from origin '{origin}' are not allowed"
        )))
    }
}
