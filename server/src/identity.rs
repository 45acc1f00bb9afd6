//! Who is asking: an anonymous browser session (signed cookie) or a script's bearer token,
//! and the session key. The extractor that finds a request's owner is
//! `routes::auth::Owner`.

use std::path::Path;

use actix_web::cookie::{Cookie, CookieJar, Key, SameSite};
use actix_web::HttpRequest;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::owner::OwnerId;

/// The session cookie's name when the server is reached over plain HTTP.
const SESSION_COOKIE: &str = "dv_session";
/// Its name over HTTPS. A browser keeps a `__Host-` cookie only when it came from a secure
/// origin with `Secure`, `Path=/` and no `Domain`, so no sibling subdomain and no plain-HTTP
/// page can plant one that shadows ours.
const HTTPS_SESSION_COOKIE: &str = "__Host-dv_session";
/// Bytes of a session key: [`Key`] signs with the first 32 and would encrypt with the rest.
const KEY_BYTES: usize = 64;

/// How browser sessions are signed and named.
pub struct SessionCookies {
    key: Key,
    /// [`SESSION_COOKIE`], or [`HTTPS_SESSION_COOKIE`] when the server is reached over HTTPS.
    name: &'static str,
    /// `--https`: every cookie is `Secure`, whatever the request says about its scheme.
    https: bool,
}

impl SessionCookies {
    pub fn new(key: Key, https: bool) -> SessionCookies {
        let name = if https {
            HTTPS_SESSION_COOKIE
        } else {
            SESSION_COOKIE
        };
        SessionCookies { key, name, https }
    }

    /// The owner named by a validly signed session cookie. A browser may send several of one
    /// name (e.g. one set for a parent domain besides ours), in any order: any that is ours
    /// counts, not only the first.
    pub fn owner(&self, req: &HttpRequest) -> Option<OwnerId> {
        let cookies = req.cookies().ok()?;
        cookies
            .iter()
            .filter(|cookie| cookie.name() == self.name)
            .find_map(|cookie| {
                let mut jar = CookieJar::new();
                jar.add_original(cookie.clone());
                let verified = jar.signed(&self.key).get(self.name)?;
                let id = uuid::Uuid::parse_str(verified.value()).ok()?;
                Some(OwnerId::from_stored(id.to_string()))
            })
    }

    /// A signed, HttpOnly, SameSite=Lax cookie for a new anonymous session; `Secure` with
    /// `--https` or when this request came over HTTPS.
    pub fn new_cookie(&self, owner: &OwnerId, request_is_https: bool) -> Cookie<'static> {
        let mut jar = CookieJar::new();
        let mut cookie = Cookie::new(self.name, owner.as_str().to_owned());
        cookie.set_http_only(true);
        cookie.set_same_site(SameSite::Lax);
        cookie.set_path("/");
        cookie.set_secure(self.https || request_is_https);
        cookie.set_max_age(actix_web::cookie::time::Duration::days(365));
        jar.signed_mut(&self.key).add(cookie);
        jar.get(self.name).expect("just added").clone()
    }
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

/// The key that signs session cookies, kept in a file so that sessions survive restarts and
/// nodes behind one address share it; made when the file is missing. A file that cannot be
/// read or is too short stops the server: replacing it would end every browser session.
/// Why the session key cannot be had. The messages tell the operator what to do.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the session key {}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the session key {} holds {len} bytes, fewer than the {KEY_BYTES} it needs: restore \
         it, or delete it to have a new one made (which ends every browser session)",
        path.display()
    )]
    TooShort {
        path: std::path::PathBuf,
        len: usize,
    },
    #[error("cannot create the session key {}: {source}", path.display())]
    Create {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

pub fn load_or_create_key(path: &Path) -> Result<Key, KeyError> {
    match read_key(path)? {
        Some(key) => Ok(key),
        None => create_key(path),
    }
}

/// The key in `path`; `None` when there is no such file.
fn read_key(path: &Path) -> Result<Option<Key>, KeyError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(KeyError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    if bytes.len() < KEY_BYTES {
        return Err(KeyError::TooShort {
            path: path.to_owned(),
            len: bytes.len(),
        });
    }
    Ok(Some(Key::from(&bytes)))
}

/// Write a new random key to `path`, unless another node starting at the same time gets
/// there first: then its key is the key. The file appears whole or not at all: the key is
/// written under a temporary name, then hard-linked to `path`, which fails if it exists.
fn create_key(path: &Path) -> Result<Key, KeyError> {
    let cannot_create = |source: std::io::Error| KeyError::Create {
        path: path.to_owned(),
        source,
    };
    let mut bytes = [0u8; KEY_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| cannot_create(std::io::Error::other(e.to_string())))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = path.with_file_name(format!(".{name}.{}.tmp", uuid::Uuid::new_v4()));
    let linked =
        write_private(&temporary, &bytes).and_then(|()| std::fs::hard_link(&temporary, path));
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => Ok(Key::from(&bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key(path)?
            .ok_or_else(|| cannot_create(std::io::Error::other("it vanished as it was made"))),
        Err(e) => Err(cannot_create(e)),
    }
}

/// A new file only its owner can read, flushed to disk before it is linked into place.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_starting_together_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        // Each round is a fresh start of eight nodes: one round alone seldom hits the race.
        for round in 0..50 {
            let path = dir.path().join(format!("{round}.key"));
            let nodes = 8;
            let start = std::sync::Barrier::new(nodes);
            let keys: Vec<Vec<u8>> = std::thread::scope(|scope| {
                let starting: Vec<_> = (0..nodes)
                    .map(|_| {
                        scope.spawn(|| {
                            start.wait();
                            load_or_create_key(&path).unwrap().master().to_vec()
                        })
                    })
                    .collect();
                starting.into_iter().map(|t| t.join().unwrap()).collect()
            });
            assert!(keys.iter().all(|k| k == &keys[0]), "round {round}: one key");
            assert_eq!(
                std::fs::read(&path).unwrap(),
                keys[0],
                "the one in the file"
            );
        }
        let left = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(left, 50, "no temporary file is left behind");
    }
}
