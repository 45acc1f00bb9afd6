//! Who is asking: an anonymous browser session (signed cookie) or a script's bearer token.
//! Every upload, job, report and WebSocket belongs to one owner; another owner's ids answer
//! 404, so ids leak nothing.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{Cookie, CookieJar, Key, SameSite};
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::errors::ApiError;
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "dv_session";

/// An owner's id: a random UUID v4, never derived from anything a user sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnerId(String);

impl OwnerId {
    pub fn random() -> OwnerId {
        OwnerId(uuid::Uuid::new_v4().to_string())
    }

    /// An id read back from our own store.
    pub fn from_stored(id: String) -> OwnerId {
        OwnerId(id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

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
                Some(at) if token.expired(crate::now_ms()) => {
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
    let owner = session_owner(req, &state.session_key).ok_or_else(|| {
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

/// The owner named by a validly signed session cookie.
pub fn session_owner(req: &HttpRequest, key: &Key) -> Option<OwnerId> {
    let cookie = req.cookie(SESSION_COOKIE)?;
    let mut jar = CookieJar::new();
    jar.add_original(cookie);
    let verified = jar.signed(key).get(SESSION_COOKIE)?;
    uuid::Uuid::parse_str(verified.value())
        .ok()
        .map(|id| OwnerId(id.to_string()))
}

/// A signed, HttpOnly, SameSite=Lax cookie for a new anonymous session.
pub fn session_cookie(owner: &OwnerId, key: &Key, secure: bool) -> Cookie<'static> {
    let mut jar = CookieJar::new();
    let mut cookie = Cookie::new(SESSION_COOKIE, owner.as_str().to_owned());
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Lax);
    cookie.set_path("/");
    cookie.set_secure(secure);
    cookie.set_max_age(actix_web::cookie::time::Duration::days(365));
    jar.signed_mut(key).add(cookie);
    jar.get(SESSION_COOKIE).expect("just added").clone()
}

/// A new bearer token: 32 random bytes, URL-safe base64, with a recognisable prefix.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    format!(
        "dv_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// How much of a token `token list` shows: the prefix and four characters of the secret.
pub const TOKEN_HINT_CHARS: usize = 7;

/// A time for people: `2026-12-07 19:04:18 UTC`.
pub fn utc(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64).map_or_else(
        || format!("{ms} ms after 1970"),
        |time| time.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// Tokens are stored only as SHA-256 hashes: a leaked database reveals no usable token.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The key that signs session cookies: kept in the data dir so sessions survive restarts.
pub fn load_or_create_key(path: &std::path::Path) -> std::io::Result<Key> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() >= 64 => Ok(Key::from(&bytes)),
        Ok(_) | Err(_) => {
            let mut bytes = [0u8; 64];
            getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
            write_private(path, &bytes)?;
            Ok(Key::from(&bytes))
        }
    }
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path)?.write_all(bytes)
}
