//! The event bus between server nodes: Redis pub/sub (`--redis-url redis://…`).
//!
//! Every node publishes its owners' events on one channel, delivers them to its own tabs at
//! once, and delivers what other nodes publish to the tabs connected to it. Redis pub/sub
//! delivers at most once, so every way a message can go missing ends in a resynchronisation
//! from the store, which has every change:
//! - this node's subscription drops: once it is back, every tab here gets a fresh snapshot;
//! - a publish fails: once the connection is back, every node is asked to resynchronise;
//! - one owner's events from two nodes cross: the hub sees the number go back (see [`super`]).
//!
//! Cancels travel the same channel: a node asked to cancel a job it does not run passes the
//! request on, and the node running the job ends it.
//!
//! Anyone who can reach Redis can publish on the channel, so every message is signed with a
//! key the nodes share ([`BusKey`], `--bus-key-file`): a message without a valid signature is
//! counted, logged (at most once a minute) and dropped unread. A signed message can still be
//! replayed by someone who recorded it; at worst that resends an old state, which the hub
//! treats like any event that arrives late.
//!
//! Publishing never waits for Redis: messages wait in a bounded queue ([`OUTGOING_QUEUE`]).
//! While Redis is slow or away the queue fills, and what does not fit is dropped (counted and
//! logged); once the queue moves again, the other nodes are asked to resynchronise, as after a
//! failed publish.

mod key;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datavista_shared::protocol::ServerMessage;
use futures_util::StreamExt;
use prometheus_client::metrics::counter::Counter;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

pub use self::key::BusKey;
use self::key::MIN_KEY_BYTES;
use super::{CancelRequest, EventBus, HubHandle, OwnerEvent};
use crate::metrics::Metrics;
use crate::owner::OwnerId;

const CHANNEL: &str = "datavista:events";
/// Between attempts to reach Redis again.
const RECONNECT_EVERY: Duration = Duration::from_millis(500);
/// Messages waiting for Redis, at most: a few seconds of a busy node's events (a few hundred
/// bytes each, so about 2 MB), enough to ride out a slow moment without dropping any.
pub const OUTGOING_QUEUE: usize = 4096;
/// A warning that could repeat for every message is logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Why the bus cannot start.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot read the bus key {}: {source}", path.display())]
    ReadKey {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the bus key {} is too short: it needs at least {MIN_KEY_BYTES} bytes \
         (e.g. `openssl rand -hex 32 > bus.key`, the same file on every node)",
        path.display()
    )]
    ShortKey { path: PathBuf },
    #[error("bad Redis URL: {0}")]
    Url(#[source] redis::RedisError),
    #[error("cannot reach Redis: {0}")]
    Unreachable(#[source] redis::RedisError),
    #[error("cannot subscribe on Redis: {0}")]
    Subscribe(#[source] redis::RedisError),
}

/// Counts something that may happen for every message, and says when to warn about it: the
/// first time, then at most once per [`WARN_EVERY`], with how many happened since.
struct Throttled {
    next_warning: Option<Instant>,
    since_warning: u64,
}

impl Throttled {
    fn new() -> Throttled {
        Throttled {
            next_warning: None,
            since_warning: 0,
        }
    }

    /// Count one at `now`; `Some(n)` when it is time to warn about the `n` since the last.
    fn count(&mut self, now: Instant) -> Option<u64> {
        self.since_warning += 1;
        if self.next_warning.is_some_and(|next| now < next) {
            return None;
        }
        self.next_warning = Some(now + WARN_EVERY);
        Some(std::mem::take(&mut self.since_warning))
    }
}

/// What travels on the channel.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Wire {
    Event {
        node: String,
        owner: String,
        message: Box<ServerMessage>,
    },
    /// Events from `node` may have been lost: resynchronise every tab.
    Resync { node: String },
    /// The node running this job should cancel it.
    Cancel {
        node: String,
        owner: String,
        job_id: String,
    },
}

impl Wire {
    fn signed(&self, key: &BusKey) -> String {
        key.sign(&serde_json::to_string(self).expect("bus messages serialize"))
    }
}

pub struct RedisBus {
    /// This process, to skip its own messages coming back.
    node: String,
    hub: HubHandle,
    key: BusKey,
    outgoing: Outgoing,
}

/// The bounded queue to the publishing task.
struct Outgoing {
    queue: mpsc::Sender<String>,
    /// Set when a message did not fit; the publishing task then has every node resynchronise.
    dropped: Arc<AtomicBool>,
    drops: Counter,
    warning: Mutex<Throttled>,
}

impl Outgoing {
    /// Never waits: this runs where jobs store their changes.
    fn send(&self, payload: String) {
        let Err(mpsc::error::TrySendError::Full(_)) = self.queue.try_send(payload) else {
            return; // queued, or the publishing task is gone because the runtime is stopping
        };
        self.dropped.store(true, Ordering::Release);
        self.drops.inc();
        let mut warning = crate::sync::lock(&self.warning);
        if let Some(dropped) = warning.count(Instant::now()) {
            tracing::warn!(
                dropped,
                "Redis is not keeping up: events for the other nodes were dropped; they will \
                 resynchronise their tabs from the database"
            );
        }
    }
}

impl RedisBus {
    /// Connect (both the publishing and the subscribing side, so a bad URL stops the start
    /// with a clear error) and start relaying, signing and checking messages with `key`.
    /// Cancels that other nodes ask for arrive on the returned receiver.
    pub async fn start(
        url: &str,
        hub: HubHandle,
        key: BusKey,
        metrics: &Metrics,
    ) -> Result<(RedisBus, mpsc::UnboundedReceiver<CancelRequest>), BusError> {
        RedisBus::start_queueing(url, hub, key, metrics, OUTGOING_QUEUE).await
    }

    async fn start_queueing(
        url: &str,
        hub: HubHandle,
        key: BusKey,
        metrics: &Metrics,
        queue_len: usize,
    ) -> Result<(RedisBus, mpsc::UnboundedReceiver<CancelRequest>), BusError> {
        let client = client(url)?;
        let publisher = client
            .get_multiplexed_async_connection()
            .await
            .map_err(BusError::Unreachable)?;
        let subscriber = subscribe(&client).await.map_err(BusError::Subscribe)?;
        let node = uuid::Uuid::new_v4().to_string();
        let (queue, queued) = mpsc::channel(queue_len);
        let outgoing = Outgoing {
            queue,
            dropped: Arc::new(AtomicBool::new(false)),
            drops: metrics.bus_dropped.clone(),
            warning: Mutex::new(Throttled::new()),
        };
        let resync = Wire::Resync { node: node.clone() }.signed(&key);
        let publishing = Publishing {
            client: client.clone(),
            queued,
            dropped: outgoing.dropped.clone(),
            resync,
        };
        tokio::spawn(publishing.run(publisher));
        let (cancels, cancel_requests) = mpsc::unbounded_channel();
        let relay_to = Relay {
            hub: hub.clone(),
            cancels,
            node: node.clone(),
            key: key.clone(),
            rejected: metrics.bus_rejected.clone(),
            warning: Throttled::new(),
        };
        tokio::spawn(relay(client, subscriber, relay_to));
        let bus = RedisBus {
            node,
            hub,
            key,
            outgoing,
        };
        Ok((bus, cancel_requests))
    }
}

impl EventBus for RedisBus {
    fn publish(&self, event: OwnerEvent) {
        let wire = Wire::Event {
            node: self.node.clone(),
            owner: event.owner.as_str().to_owned(),
            message: Box::new(event.message.clone()),
        };
        let payload = wire.signed(&self.key);
        self.hub.deliver(event);
        self.outgoing.send(payload);
    }

    fn request_cancel(&self, owner: &OwnerId, job_id: &str) {
        let wire = Wire::Cancel {
            node: self.node.clone(),
            owner: owner.as_str().to_owned(),
            job_id: job_id.to_owned(),
        };
        self.outgoing.send(wire.signed(&self.key));
    }
}

/// Where the messages from other nodes go.
struct Relay {
    hub: HubHandle,
    cancels: mpsc::UnboundedSender<CancelRequest>,
    /// This process, to skip its own messages coming back.
    node: String,
    key: BusKey,
    /// Messages dropped for a missing or bad signature.
    rejected: Counter,
    warning: Throttled,
}

impl Relay {
    /// Act on one message from the channel, if one of the nodes signed it.
    fn receive(&mut self, payload: &str) {
        let Some(body) = self.key.open(payload) else {
            self.rejected.inc();
            if let Some(rejected) = self.warning.count(Instant::now()) {
                tracing::warn!(
                    rejected,
                    "dropped messages on {CHANNEL} without a valid signature: someone else \
                     publishes there, or a node has another --bus-key-file"
                );
            }
            return;
        };
        match serde_json::from_str::<Wire>(body) {
            Ok(wire) => self.handle(wire),
            // Signed, so from a node: one of another version.
            Err(error) => tracing::warn!("ignored a message on {CHANNEL}: {error}"),
        }
    }

    fn handle(&self, wire: Wire) {
        match wire {
            Wire::Event {
                node,
                owner,
                message,
            } if node != self.node => self.hub.deliver(OwnerEvent {
                owner: OwnerId::from_stored(owner),
                message: *message,
            }),
            Wire::Resync { node } if node != self.node => self.hub.resync_all(),
            Wire::Cancel {
                node,
                owner,
                job_id,
            } if node != self.node => {
                let _ = self.cancels.send(CancelRequest {
                    owner: OwnerId::from_stored(owner),
                    job_id,
                });
            }
            _ => {} // our own, already handled here
        }
    }
}

/// A client for `redis://` or, over TLS, `rediss://` (the server's certificate is checked
/// against the system's trusted ones; `SSL_CERT_FILE` names another bundle).
fn client(url: &str) -> Result<redis::Client, BusError> {
    redis::Client::open(url).map_err(BusError::Url)
}

async fn subscribe(client: &redis::Client) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(CHANNEL).await?;
    Ok(pubsub)
}

/// The task that publishes the queued messages, in order.
struct Publishing {
    client: redis::Client,
    queued: mpsc::Receiver<String>,
    /// Set by [`Outgoing::send`] when a message did not fit in the queue.
    dropped: Arc<AtomicBool>,
    /// This node's signed request that every node resynchronise.
    resync: String,
}

impl Publishing {
    /// Publish in order; after a message was dropped, or after a failure (once reconnected),
    /// have every node resynchronise. The snapshots they take then hold what was lost: a
    /// change is stored before it is published.
    async fn run(mut self, mut connection: redis::aio::MultiplexedConnection) {
        while let Some(payload) = self.queued.recv().await {
            let mut sent: redis::RedisResult<()> = Ok(());
            if self.dropped.swap(false, Ordering::AcqRel) {
                sent = connection.publish(CHANNEL, &self.resync).await;
            }
            if sent.is_ok() {
                sent = connection.publish(CHANNEL, &payload).await;
            }
            let Err(error) = sent else { continue };
            tracing::warn!("an event did not reach Redis ({error}); reconnecting");
            connection = self.reconnect().await;
        }
    }

    /// A fresh connection, once it has carried the request to resynchronise.
    async fn reconnect(&self) -> redis::aio::MultiplexedConnection {
        loop {
            tokio::time::sleep(RECONNECT_EVERY).await;
            let Ok(mut fresh) = self.client.get_multiplexed_async_connection().await else {
                continue;
            };
            self.dropped.store(false, Ordering::Release); // this resync covers those too
            let asked: redis::RedisResult<()> = fresh.publish(CHANNEL, &self.resync).await;
            if asked.is_ok() {
                tracing::info!("reconnected to Redis; the other nodes resynchronise");
                return fresh;
            }
        }
    }
}

/// Deliver other nodes' events here; after losing the subscription, resubscribe and
/// resynchronise every tab on this node.
async fn relay(client: redis::Client, mut subscriber: redis::aio::PubSub, mut to: Relay) {
    loop {
        let mut messages = subscriber.into_on_message();
        while let Some(message) = messages.next().await {
            match message.get_payload::<String>() {
                Ok(payload) => to.receive(&payload),
                Err(_) => to.receive(""), // not text: it cannot carry a signature
            }
        }
        tracing::warn!("lost the Redis subscription; reconnecting");
        subscriber = loop {
            tokio::time::sleep(RECONNECT_EVERY).await;
            if let Ok(fresh) = subscribe(&client).await {
                break fresh;
            }
        };
        tracing::info!("resubscribed to Redis; every tab here gets a fresh snapshot");
        to.hub.resync_all();
    }
}

/// The test kit's Redis, for the queue test below.
#[cfg(test)]
use datavista_testkit::redis as test_redis;

#[cfg(test)]
mod tests {
    use super::key::tests::key;
    use super::test_redis::TestRedis;
    use super::*;
    use crate::hub::CONNECTION_QUEUE;

    #[test]
    fn a_warning_comes_at_most_once_a_minute_with_the_count() {
        let mut throttled = Throttled::new();
        let start = Instant::now();
        assert_eq!(throttled.count(start), Some(1), "the first at once");
        assert_eq!(throttled.count(start + Duration::from_secs(1)), None);
        assert_eq!(throttled.count(start + Duration::from_secs(59)), None);
        assert_eq!(throttled.count(start + WARN_EVERY), Some(3));
    }

    /// Redis stalls: publishing still returns at once, what does not fit in the queue is
    /// dropped and counted, and once Redis answers again the other node resynchronises its
    /// tabs (they missed events).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_drops_events_and_the_other_nodes_resynchronise() {
        let redis = TestRedis::start();
        let (here, there) = (
            HubHandle::new(CONNECTION_QUEUE, 8, 1_000),
            HubHandle::new(CONNECTION_QUEUE, 8, 1_000),
        );
        let metrics = Metrics::new();
        let (bus, _) = RedisBus::start_queueing(&redis.url, here, key(1), &metrics, 8)
            .await
            .unwrap();
        let (_other, _) = RedisBus::start(&redis.url, there.clone(), key(1), &Metrics::new())
            .await
            .unwrap();
        let owner = OwnerId::random();
        let mut tab = there.subscribe(owner.clone()).unwrap();
        let event = |seq| OwnerEvent {
            owner: owner.clone(),
            message: ServerMessage::JobRemoved {
                seq,
                job_id: format!("j{seq}"),
            },
        };
        bus.publish(event(1));
        let first = tokio::time::timeout(Duration::from_secs(10), tab.messages.recv()).await;
        assert_eq!(first.unwrap().map(|m| m.seq()), Some(1), "the bus works");

        redis.pause();
        let started = Instant::now();
        for seq in 2..=40 {
            bus.publish(event(seq));
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "publishing waited"
        );
        // One on its way to Redis, eight queued, the rest dropped.
        let dropped = metrics.bus_dropped.get();
        assert!((30..=31).contains(&dropped), "{dropped} dropped");
        assert!(!tab.lagged.load(Ordering::Acquire));

        redis.resume();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !tab.lagged.load(Ordering::Acquire) {
            assert!(
                Instant::now() < deadline,
                "the other node never resynchronised"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Parsing needs no server; without the TLS feature the client refuses `rediss://`.
    #[test]
    fn plain_and_tls_urls_are_accepted() {
        for url in [
            "redis://cache.internal:6379",
            "rediss://cache.internal:6380",
            "rediss://:secret@cache.internal/0",
        ] {
            assert!(client(url).is_ok(), "{url}: {:?}", client(url).err());
        }
        assert!(client("http://cache.internal").is_err());
    }
}
