//! The key the nodes sign and check bus messages with, so strangers who reach Redis cannot
//! speak on the channel.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::BusError;

/// Shorter keys are refused: the key is all that keeps strangers off the channel.
pub(super) const MIN_KEY_BYTES: usize = 32;

/// The key every node signs and checks bus messages with: HMAC-SHA256.
#[derive(Clone)]
pub struct BusKey(Hmac<Sha256>);

impl BusKey {
    /// The key in `path`: at least 32 bytes (whitespace around them is ignored, so a key
    /// written by `openssl rand -hex 32` with its newline works).
    pub fn load(path: &Path) -> Result<BusKey, BusError> {
        let bytes = std::fs::read(path).map_err(|source| BusError::ReadKey {
            path: path.to_owned(),
            source,
        })?;
        BusKey::new(bytes.trim_ascii()).ok_or_else(|| BusError::ShortKey {
            path: path.to_owned(),
        })
    }

    pub(super) fn new(bytes: &[u8]) -> Option<BusKey> {
        // HMAC takes a key of any length: it cannot fail.
        (bytes.len() >= MIN_KEY_BYTES).then(|| BusKey(Hmac::new_from_slice(bytes).unwrap()))
    }

    fn tag(&self, body: &str) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        mac.update(body.as_bytes());
        mac
    }

    /// What goes on the channel: `TAG BODY`, the tag in URL-safe base64.
    pub(super) fn sign(&self, body: &str) -> String {
        let tag = URL_SAFE_NO_PAD.encode(self.tag(body).finalize().into_bytes());
        format!("{tag} {body}")
    }

    /// The body of a message this key signed; `None` when the tag is missing or wrong.
    pub(super) fn open<'a>(&self, payload: &'a str) -> Option<&'a str> {
        let (tag, body) = payload.split_once(' ')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        // Compared in constant time: timing tells a forger nothing.
        self.tag(body).verify_slice(&tag).ok()?;
        Some(body)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A key made of `byte`s, for the bus's tests too.
    pub(in crate::hub) fn key(byte: u8) -> BusKey {
        BusKey::new(&[byte; MIN_KEY_BYTES]).unwrap()
    }

    #[test]
    fn only_messages_signed_with_the_key_open() {
        let body = r#"{"kind":"resync","node":"n"}"#;
        let signed = key(7).sign(body);
        assert_eq!(key(7).open(&signed), Some(body));
        assert_eq!(key(8).open(&signed), None, "another key");
        let (tag, _) = signed.split_once(' ').unwrap();
        let altered = format!(r#"{tag} {{"kind":"resync","node":"m"}}"#);
        assert_eq!(key(7).open(&altered), None, "altered");
        assert_eq!(key(7).open(body), None, "unsigned");
        assert_eq!(key(7).open(&format!("AAAA {body}")), None, "a made-up tag");
        assert!(BusKey::new(&[7; MIN_KEY_BYTES - 1]).is_none(), "too short");
    }

    #[test]
    fn a_key_file_is_read_without_the_whitespace_around_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bus.key");
        std::fs::write(&path, format!("{}\n", "ab".repeat(32))).unwrap();
        let body = "{}";
        let signed = BusKey::load(&path).unwrap().sign(body);
        assert_eq!(
            BusKey::new("ab".repeat(32).as_bytes())
                .unwrap()
                .open(&signed),
            Some(body)
        );
        std::fs::write(&path, "too short\n").unwrap();
        assert!(BusKey::load(&path)
            .err()
            .unwrap()
            .to_string()
            .contains("at least 32 bytes"));
        assert!(BusKey::load(&dir.path().join("none")).is_err());
    }
}
