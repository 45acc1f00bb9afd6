//! The bodies of the HTTP API, one type each, compiled by the server that writes them and by
//! the dashboard, the load generator and the tests that read them (as [`protocol`] does for
//! the WebSocket). docs/API.md describes each route.
//!
//! [`protocol`]: crate::protocol

use serde::{Deserialize, Serialize};

use crate::protocol::Job;
use crate::report::ValidationError;

/// A schema as listed (`GET /api/schemas`) and as answered when one is added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaInfo {
    pub id: String,
    pub name: String,
    /// Shipped with the server or loaded from `--schema-dir` (shared by every user).
    pub shared: bool,
    pub fields: Vec<String>,
}

/// `GET /api/schemas`: the shared schemas, then the caller's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaList {
    pub schemas: Vec<SchemaInfo>,
}

/// `POST /api/uploads`: one job per file part, in the order they were sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadsCreated {
    pub uploads: Vec<Job>,
}

/// `GET /api/uploads?offset=&limit=`: one page of the caller's jobs, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobPage {
    pub uploads: Vec<Job>,
    /// All the caller's jobs, past this page too.
    pub total: u64,
    pub offset: u64,
    pub limit: u64,
}

/// `GET /api/uploads/{id}/errors?offset=&limit=`: a page of a report's error sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorPage {
    pub errors: Vec<ValidationError>,
    pub offset: u64,
    pub limit: u64,
    /// Errors in the stored sample (at most 1,000).
    pub sample_size: u64,
    /// All errors found, past the sample too.
    pub error_total: u64,
    pub sample_capped: bool,
}

/// `GET /api/session`: who the caller is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub owner: String,
}

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
}

/// Every refusal: a stable `code` to branch on and a `message` a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}
