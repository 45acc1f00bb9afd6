//! The owner of uploads, jobs, reports and WebSockets: a domain noun, apart from the HTTP
//! extractor (in `identity`) that finds it on a request, so the jobs, the hub and the
//! store need nothing of HTTP.

use std::fmt;

/// An owner's id: a random UUID v4, never derived from anything a user sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnerId(String);

impl OwnerId {
    pub fn random() -> OwnerId {
        OwnerId(uuid::Uuid::new_v4().to_string())
    }

    /// An id this server gave out, read back (from its store, or its signed session cookie).
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
