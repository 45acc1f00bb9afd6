//! New sessions per client address per minute. Anyone can mint owners (a visit without a
//! cookie makes one), and each owner gets the per-owner limits afresh, so this bounds how
//! fast one client can multiply them.
//!
//! The client address is the connection's peer, unless that peer is one of
//! `--trusted-proxies`: then it is the rightmost address in `X-Forwarded-For` that is not a
//! trusted proxy (each proxy appends the address it saw, so the entries left of the last
//! untrusted one could be forged by the client). Behind a proxy that is not listed, every
//! client shares the proxy's address, and so its allowance: list the proxy.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ipnet::IpNet;

const WINDOW: Duration = Duration::from_secs(60);

/// Addresses tracked at once. Past it, windows that ended are dropped first; a map still full
/// then lets the new address through, uncounted: memory stays bounded whatever the number of
/// addresses (an IPv6 client has billions).
const MAX_ADDRESSES: usize = 100_000;

pub struct SessionRate {
    /// 0: no limit.
    per_minute: u32,
    windows: Mutex<HashMap<IpAddr, Window>>,
}

struct Window {
    started: Instant,
    sessions: u32,
}

impl SessionRate {
    pub fn new(per_minute: u32) -> SessionRate {
        SessionRate {
            per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Count a new session from `client`; `Err(seconds)` to wait when it has had its share.
    pub fn admit(&self, client: IpAddr, now: Instant) -> Result<(), u32> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let client = bucket(client);
        let mut windows = crate::sync::lock(&self.windows);
        if windows.len() >= MAX_ADDRESSES && !windows.contains_key(&client) {
            windows.retain(|_, window| now.duration_since(window.started) < WINDOW);
            if windows.len() >= MAX_ADDRESSES {
                return Ok(());
            }
        }
        let window = windows.entry(client).or_insert(Window {
            started: now,
            sessions: 0,
        });
        if now.duration_since(window.started) >= WINDOW {
            *window = Window {
                started: now,
                sessions: 0,
            };
        }
        if window.sessions >= self.per_minute {
            let left = WINDOW.saturating_sub(now.duration_since(window.started));
            return Err(left.as_secs().max(1) as u32);
        }
        window.sessions += 1;
        Ok(())
    }
}

/// One client, one allowance: an IPv6 client holds a whole /64, so that is what is counted.
fn bucket(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(segments.into())
        }
    }
}

/// A `--trusted-proxies` entry that is neither an address nor a network.
#[derive(Debug, thiserror::Error)]
#[error("--trusted-proxies: '{entry}' is not an address or a network")]
pub struct NotAProxy {
    entry: String,
    /// Why it is not an address.
    source: std::net::AddrParseError,
}

/// `--trusted-proxies` entries: addresses or networks (`10.0.0.0/8`), trimmed.
pub fn parse_proxies(entries: &[String]) -> Result<Vec<IpNet>, NotAProxy> {
    entries
        .iter()
        .map(|entry| entry.trim())
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|source| NotAProxy {
                    entry: entry.to_owned(),
                    source,
                })
        })
        .collect()
}

/// The client's address: see the module's doc.
pub fn client_address(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |address: &IpAddr| trusted.iter().any(|net| net.contains(address));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(forwarded_for) = forwarded_for else {
        return peer;
    };
    let mut client = peer;
    for hop in forwarded_for.rsplit(',') {
        // Some proxies add the port ("192.0.2.1:5123", "[2001:db8::1]:443").
        let hop = hop.trim();
        let address = hop
            .parse::<IpAddr>()
            .or_else(|_| hop.parse::<std::net::SocketAddr>().map(|a| a.ip()));
        match address {
            Ok(address) => {
                client = address;
                if !is_trusted(&address) {
                    break;
                }
            }
            // A hop that is not an address: nothing left of it can be believed.
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn each_address_gets_its_share_per_minute() {
        let rate = SessionRate::new(3);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(rate.admit(ip("192.0.2.1"), start), Ok(()));
        }
        assert_eq!(rate.admit(ip("192.0.2.1"), start), Err(60));
        assert_eq!(
            rate.admit(ip("192.0.2.1"), start + Duration::from_secs(45)),
            Err(15)
        );
        assert_eq!(
            rate.admit(ip("192.0.2.2"), start),
            Ok(()),
            "another address"
        );
        assert_eq!(
            rate.admit(ip("192.0.2.1"), start + WINDOW),
            Ok(()),
            "a new minute"
        );
        // An IPv6 client's whole /64 is one client.
        for i in 1..=3 {
            assert_eq!(rate.admit(ip(&format!("2001:db8::{i}")), start), Ok(()));
        }
        assert!(rate.admit(ip("2001:db8::ffff"), start).is_err());
        assert!(SessionRate::new(0).admit(ip("192.0.2.1"), start).is_ok());
    }

    #[test]
    fn forwarded_addresses_count_only_behind_trusted_proxies() {
        let proxies = parse_proxies(&[" 10.0.0.0/8".into(), "192.0.2.9 ".into()]).unwrap();
        let forwarded = Some("203.0.113.7, 198.51.100.3, 10.1.1.1");
        // A peer that is no proxy of ours: its header is the client's own words.
        assert_eq!(
            client_address(ip("198.51.100.50"), forwarded, &proxies),
            ip("198.51.100.50")
        );
        // Through our proxies: the rightmost address they did not add.
        assert_eq!(
            client_address(ip("192.0.2.9"), forwarded, &proxies),
            ip("198.51.100.3")
        );
        assert_eq!(
            client_address(ip("192.0.2.9"), None, &proxies),
            ip("192.0.2.9")
        );
        assert_eq!(
            client_address(ip("192.0.2.9"), Some("junk, 10.0.0.2"), &proxies),
            ip("10.0.0.2")
        );
        assert_eq!(
            client_address(ip("192.0.2.9"), Some("[2001:db8::5]:443"), &proxies),
            ip("2001:db8::5")
        );
        assert_eq!(
            client_address(ip("192.0.2.9"), Some("203.0.113.7:5123"), &proxies),
            ip("203.0.113.7")
        );
        assert!(parse_proxies(&["nope".into()]).is_err());
    }
}
