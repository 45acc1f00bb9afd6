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

use std::time::Duration;

use datavista_shared::protocol::ServerMessage;
use futures_util::StreamExt;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{CancelRequest, EventBus, HubHandle, OwnerEvent};
use crate::identity::OwnerId;

const CHANNEL: &str = "datavista:events";
/// Between attempts to reach Redis again.
const RECONNECT_EVERY: Duration = Duration::from_millis(500);

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

pub struct RedisBus {
    /// This process, to skip its own messages coming back.
    node: String,
    hub: HubHandle,
    outgoing: mpsc::UnboundedSender<String>,
}

impl RedisBus {
    /// Connect (both the publishing and the subscribing side, so a bad URL stops the start
    /// with a clear error) and start relaying. Cancels that other nodes ask for arrive on
    /// the returned receiver.
    pub async fn start(
        url: &str,
        hub: HubHandle,
    ) -> Result<(RedisBus, mpsc::UnboundedReceiver<CancelRequest>), String> {
        let client = client(url)?;
        let publisher = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| format!("cannot reach Redis: {e}"))?;
        let subscriber = subscribe(&client)
            .await
            .map_err(|e| format!("cannot subscribe on Redis: {e}"))?;
        let node = uuid::Uuid::new_v4().to_string();
        let (outgoing, queue) = mpsc::unbounded_channel();
        let (cancels, cancel_requests) = mpsc::unbounded_channel();
        tokio::spawn(publish(client.clone(), publisher, queue, node.clone()));
        let relay_to = Relay {
            hub: hub.clone(),
            cancels,
            node: node.clone(),
        };
        tokio::spawn(relay(client, subscriber, relay_to));
        let bus = RedisBus {
            node,
            hub,
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
        let payload = serde_json::to_string(&wire).expect("events serialize");
        self.hub.deliver(event);
        let _ = self.outgoing.send(payload);
    }

    fn request_cancel(&self, owner: &OwnerId, job_id: &str) {
        let wire = Wire::Cancel {
            node: self.node.clone(),
            owner: owner.as_str().to_owned(),
            job_id: job_id.to_owned(),
        };
        let _ = self
            .outgoing
            .send(serde_json::to_string(&wire).expect("cancels serialize"));
    }
}

/// Where the messages from other nodes go.
struct Relay {
    hub: HubHandle,
    cancels: mpsc::UnboundedSender<CancelRequest>,
    /// This process, to skip its own messages coming back.
    node: String,
}

impl Relay {
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
fn client(url: &str) -> Result<redis::Client, String> {
    redis::Client::open(url).map_err(|e| format!("bad Redis URL: {e}"))
}

async fn subscribe(client: &redis::Client) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(CHANNEL).await?;
    Ok(pubsub)
}

/// Publish in order; after a failure, reconnect and have every node resynchronise.
async fn publish(
    client: redis::Client,
    mut connection: redis::aio::MultiplexedConnection,
    mut queue: mpsc::UnboundedReceiver<String>,
    node: String,
) {
    while let Some(payload) = queue.recv().await {
        let sent: redis::RedisResult<()> = connection.publish(CHANNEL, &payload).await;
        let Err(error) = sent else { continue };
        tracing::warn!("an event did not reach Redis ({error}); reconnecting");
        loop {
            tokio::time::sleep(RECONNECT_EVERY).await;
            let Ok(mut fresh) = client.get_multiplexed_async_connection().await else {
                continue;
            };
            let resync = serde_json::to_string(&Wire::Resync { node: node.clone() })
                .expect("resync serializes");
            let asked: redis::RedisResult<()> = fresh.publish(CHANNEL, resync).await;
            if asked.is_ok() {
                tracing::info!("reconnected to Redis; the other nodes resynchronise");
                connection = fresh;
                break;
            }
        }
    }
}

/// Deliver other nodes' events here; after losing the subscription, resubscribe and
/// resynchronise every tab on this node.
async fn relay(client: redis::Client, mut subscriber: redis::aio::PubSub, to: Relay) {
    loop {
        let mut messages = subscriber.into_on_message();
        while let Some(message) = messages.next().await {
            let Ok(payload) = message.get_payload::<String>() else {
                continue;
            };
            match serde_json::from_str::<Wire>(&payload) {
                Ok(wire) => to.handle(wire),
                Err(error) => tracing::warn!("ignored a message on {CHANNEL}: {error}"),
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

#[cfg(test)]
mod tests {
    use super::*;

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
