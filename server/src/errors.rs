//! API errors: one enum, one place that decides status codes, and JSON bodies with a stable
//! `code` and a `message` a person can act on.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use datavista_shared::http::ErrorBody;

use crate::jobs::JobError;
use crate::reports::ReportError;
use crate::schemas::LookupError;
use crate::store::StoreError;
use crate::uploads::ReceiveError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    InvalidSchema(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    TooManyUploads(String),
    #[error("{0}")]
    TooManyConnections(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    InsufficientStorage(String),
    #[error("{0}")]
    NotFinished(String),
    #[error("{0}")]
    Forbidden(String),
    /// A client too slow to send what it started.
    #[error("{0}")]
    Timeout(String),
    /// Too many new sessions from one address; try again after this many seconds.
    #[error("{0}")]
    TooManySessions(String, u32),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated(_) => "unauthenticated",
            ApiError::NotFound(_) => "not_found",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::InvalidSchema(_) => "invalid_schema",
            ApiError::TooLarge(_) => "file_too_large",
            ApiError::TooManyUploads(_) => "too_many_uploads",
            ApiError::TooManyConnections(_) => "too_many_connections",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::InsufficientStorage(_) => "insufficient_storage",
            ApiError::NotFinished(_) => "not_finished",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::Timeout(_) => "timeout",
            ApiError::TooManySessions(..) => "too_many_sessions",
            ApiError::Internal(_) => "internal",
        }
    }

    /// How long a client should wait before trying again (the Retry-After header), for the
    /// limits that free up on their own.
    fn retry_after_seconds(&self) -> Option<u32> {
        match self {
            // An upload slot frees when one of the owner's files finishes sending.
            ApiError::TooManyUploads(_) => Some(5),
            // A connection frees when a tab closes; reconnect loops should back off longer.
            ApiError::TooManyConnections(_) => Some(30),
            ApiError::Unavailable(_) => Some(5),
            ApiError::TooManySessions(_, seconds) => Some(*seconds),
            _ => None,
        }
    }

    pub fn job_not_found() -> ApiError {
        ApiError::NotFound("no such upload".into())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) | ApiError::InvalidSchema(_) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyUploads(_)
            | ApiError::TooManyConnections(_)
            | ApiError::TooManySessions(..) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::NotFinished(_) => StatusCode::CONFLICT,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(detail) = self {
            tracing::error!(%detail, "request failed");
        }
        let message = match self {
            ApiError::Internal(_) => {
                "something went wrong on the server; it has been logged".to_owned()
            }
            other => other.to_string(),
        };
        let mut response = HttpResponse::build(self.status_code());
        if let Some(seconds) = self.retry_after_seconds() {
            response.insert_header((actix_web::http::header::RETRY_AFTER, seconds));
        }
        response.json(ErrorBody {
            code: self.code().to_owned(),
            message,
        })
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<JobError> for ApiError {
    fn from(e: JobError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<ReceiveError> for ApiError {
    fn from(e: ReceiveError) -> Self {
        let message = e.to_string();
        match e {
            ReceiveError::Busy(_) => ApiError::TooManyUploads(message),
            ReceiveError::Stopping(_) => ApiError::Unavailable(message),
            ReceiveError::Interrupted(_) => ApiError::BadRequest(message),
            ReceiveError::TookTooLong(_) => ApiError::Timeout(message),
            ReceiveError::TooLarge(_) => ApiError::TooLarge(message),
            ReceiveError::NoRoom(_) => ApiError::InsufficientStorage(message),
            ReceiveError::Storage(_) | ReceiveError::Job(_) => ApiError::Internal(message),
        }
    }
}

impl From<ReportError> for ApiError {
    fn from(e: ReportError) -> Self {
        let message = e.to_string();
        match e {
            ReportError::NoSuchJob => ApiError::job_not_found(),
            ReportError::NoReport(_) => ApiError::NotFound(message),
            ReportError::NotYet(_) => ApiError::NotFinished(message),
            ReportError::Job(_) | ReportError::Stored(_) => ApiError::Internal(message),
        }
    }
}

impl From<LookupError> for ApiError {
    fn from(e: LookupError) -> Self {
        ApiError::Internal(e.to_string())
    }
}
