//! The push hub: every WebSocket connection's queue, grouped by owner. Each owner's events fan
//! out to all of that owner's connections (every open tab), straight from the thread that
//! publishes them.
//!
//! Handlers and sessions talk to it through the cloneable [`HubHandle`]. Events reach it
//! through an [`EventBus`]: in-process by default, or Redis pub/sub between server nodes
//! ([`redis_bus`]), which feeds what it receives into the same handle.
//!
//! Each owner's events must reach tabs in sequence order. One node publishes in order; events
//! of one owner from two nodes can cross, so the hub watches the numbers: one that goes back
//! sends that owner's tabs a fresh snapshot from the store, and a gap keeps the history from
//! replaying across it.
//!
//! Each event is wrapped in one `Arc` when it arrives: every tab's queue and the history
//! share it instead of holding copies (a queue's first block of slots is allocated with it,
//! so the slot size is also memory per idle connection).
//!
//! A connection that falls behind never slows the others: its queue is bounded, and when it
//! overflows the hub flags the connection as lagged and skips it; the session then sends a
//! fresh snapshot instead of the messages it missed.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use datavista_shared::protocol::ServerMessage;
use tokio::sync::{mpsc, Notify};

use crate::owner::OwnerId;

pub mod redis_bus;

/// Messages a connection's queue holds by default before it counts as lagging.
#[cfg(test)] // the hub is told its queue length; its tests use the default
pub use crate::config::CONNECTION_QUEUE;
/// Recent messages kept per owner, so a reconnecting tab can catch up without a snapshot.
const HISTORY: usize = 256;
/// An owner with no open connection keeps its history this long (a tab reconnecting after a
/// network blip catches up from it); then it is dropped, and a later tab gets a snapshot.
const IDLE_HISTORY: Duration = Duration::from_secs(300);
/// Finding the idle owners looks at every owner, so it runs at most this often, not on every
/// closed tab: a thousand tabs closing at once would each scan the map under the lock.
const IDLE_SWEEP_EVERY: Duration = Duration::from_secs(10);

/// A message as queued for connections: shared, never copied per tab.
pub type SharedMessage = Arc<ServerMessage>;

/// An event for every connection of one owner.
#[derive(Debug, Clone)]
pub struct OwnerEvent {
    pub owner: OwnerId,
    pub message: ServerMessage,
}

/// Carries events from wherever jobs run to the hub(s) holding the connections.
pub trait EventBus: Send + Sync + 'static {
    fn publish(&self, event: OwnerEvent);

    /// Ask the other nodes to cancel one of `owner`'s jobs, which one of them runs. The
    /// node running it answers by ending the job, which reaches everyone as an update.
    fn request_cancel(&self, _owner: &OwnerId, _job_id: &str) {
        // One node: a job that does not run here runs nowhere.
    }
}

/// A cancel that another node asked for (see [`EventBus::request_cancel`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelRequest {
    pub owner: OwnerId,
    pub job_id: String,
}

/// The embedded bus: straight into this process's hub.
pub struct InProcessBus(pub HubHandle);

impl EventBus for InProcessBus {
    fn publish(&self, event: OwnerEvent) {
        self.0.deliver(event);
    }
}

/// What a session holds for its connection.
pub struct Subscription {
    pub id: u64,
    pub messages: mpsc::Receiver<SharedMessage>,
    /// Set by the hub when the queue overflowed; `notify` wakes the session.
    pub lagged: Arc<AtomicBool>,
    pub notify: Arc<Notify>,
}

/// The hub's state behind a lock: a publisher hands each message straight to the queues of the
/// owner's tabs, on its own thread. No hub task sits in between: under load every hop from
/// one thread to another waits for a core, and that wait was most of a push's delay.
#[derive(Clone)]
pub struct HubHandle {
    hub: Arc<Mutex<Hub>>,
}

impl HubHandle {
    /// Each connection's queue holds `queue_len` messages, an owner may hold
    /// `max_per_owner` connections at once, and everyone together `max_total`.
    pub fn new(queue_len: usize, max_per_owner: usize, max_total: usize) -> HubHandle {
        let hub = Hub {
            owners: HashMap::new(),
            next_id: 0,
            queue_len: queue_len.max(1),
            max_per_owner: max_per_owner.max(1),
            max_total: max_total.max(1),
            open: 0,
            next_idle_sweep: Instant::now() + IDLE_SWEEP_EVERY,
        };
        HubHandle {
            hub: Arc::new(Mutex::new(hub)),
        }
    }

    /// Held only for a few map and queue operations, never across an await or I/O.
    fn hub(&self) -> MutexGuard<'_, Hub> {
        crate::sync::lock(&self.hub)
    }

    /// `Refused` when the owner, or the server, already has as many connections as allowed.
    pub fn subscribe(&self, owner: OwnerId) -> Result<Subscription, Refused> {
        self.hub().subscribe(owner)
    }

    pub fn unsubscribe(&self, owner: OwnerId, id: u64) {
        self.hub().unsubscribe(owner, id);
    }

    pub fn deliver(&self, event: OwnerEvent) {
        self.hub().deliver(event);
    }

    /// Messages after `after`, if the hub still has all of them; `None` means "send a snapshot".
    pub fn history(&self, owner: &OwnerId, after: u64) -> Option<Vec<SharedMessage>> {
        self.hub()
            .owners
            .get(owner)
            .and_then(|channel| history_after(&channel.history, after))
    }

    /// Every tab starts again from a snapshot: events may have been lost on the way here.
    pub fn resync_all(&self) {
        self.hub()
            .owners
            .values_mut()
            .for_each(OwnerChannel::resync);
    }

    pub fn connections(&self) -> usize {
        self.hub()
            .owners
            .values()
            .map(|c| c.connections.len())
            .sum()
    }
}

struct Connection {
    id: u64,
    queue: mpsc::Sender<SharedMessage>,
    lagged: Arc<AtomicBool>,
    notify: Arc<Notify>,
}

struct OwnerChannel {
    connections: Vec<Connection>,
    history: VecDeque<SharedMessage>,
    /// The newest sequence number delivered (0: none yet).
    last_seq: u64,
    /// When the last connection went away (None while any is open).
    idle_since: Option<Instant>,
}

impl Default for OwnerChannel {
    fn default() -> Self {
        OwnerChannel {
            connections: Vec::new(),
            history: VecDeque::new(),
            last_seq: 0,
            idle_since: Some(Instant::now()),
        }
    }
}

/// Why the hub did not register a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The owner already holds the most connections allowed (a tab loop, or a script).
    Owner,
    /// The server holds the most connections it takes from everyone (anyone can make new
    /// owners, so the per-owner limit alone bounds nothing).
    Server,
}

struct Hub {
    owners: HashMap<OwnerId, OwnerChannel>,
    next_id: u64,
    queue_len: usize,
    max_per_owner: usize,
    max_total: usize,
    /// Connections open, all owners together.
    open: usize,
    next_idle_sweep: Instant,
}

impl Hub {
    fn subscribe(&mut self, owner: OwnerId) -> Result<Subscription, Refused> {
        if self.open >= self.max_total {
            return Err(Refused::Server);
        }
        let open = self.owners.get(&owner).map_or(0, |c| c.connections.len());
        if open >= self.max_per_owner {
            return Err(Refused::Owner);
        }
        self.open += 1;
        self.next_id += 1;
        let (queue, messages) = mpsc::channel(self.queue_len);
        let lagged = Arc::new(AtomicBool::new(false));
        let notify = Arc::new(Notify::new());
        let connection = Connection {
            id: self.next_id,
            queue,
            lagged: lagged.clone(),
            notify: notify.clone(),
        };
        let channel = self.owners.entry(owner).or_default();
        channel.connections.push(connection);
        channel.idle_since = None;
        Ok(Subscription {
            id: self.next_id,
            messages,
            lagged,
            notify,
        })
    }

    fn unsubscribe(&mut self, owner: OwnerId, id: u64) {
        if let Some(channel) = self.owners.get_mut(&owner) {
            let before = channel.connections.len();
            channel.connections.retain(|c| c.id != id);
            self.open -= before - channel.connections.len();
            if channel.connections.is_empty() {
                channel.idle_since = Some(Instant::now());
            }
        }
        self.forget_idle_owners_when_due();
    }

    /// Memory stays proportional to owners with open tabs, not to every owner ever seen.
    fn forget_idle_owners_when_due(&mut self) {
        let now = Instant::now();
        if now < self.next_idle_sweep {
            return;
        }
        self.next_idle_sweep = now + IDLE_SWEEP_EVERY;
        self.owners.retain(|_, channel| {
            channel
                .idle_since
                .is_none_or(|since| now.duration_since(since) < IDLE_HISTORY)
        });
    }

    fn deliver(&mut self, event: OwnerEvent) {
        self.forget_idle_owners_when_due();
        let message = Arc::new(event.message);
        let seq = message.seq();
        let channel = self.owners.entry(event.owner).or_default();
        if channel.last_seq != 0 {
            if seq <= channel.last_seq {
                // Older than what the tabs have: it crossed a newer one from another node.
                // The store has both, so the tabs start again from there.
                channel.resync();
                return;
            }
            if seq > channel.last_seq + 1 {
                channel.history.clear(); // a gap: a replay must not skip it
            }
        }
        channel.last_seq = seq;
        if channel.history.len() == HISTORY {
            channel.history.pop_front();
        }
        channel.history.push_back(message.clone());
        let before = channel.connections.len();
        channel.connections.retain(|connection| {
            if connection.lagged.load(Ordering::Acquire) {
                return true; // waiting for its snapshot: nothing more to queue
            }
            match connection.queue.try_send(message.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    connection.lagged.store(true, Ordering::Release);
                    connection.notify.notify_one();
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        // A connection whose task ended without unsubscribing (a panic) frees its place in
        // the server's count here.
        self.open -= before - channel.connections.len();
    }
}

impl OwnerChannel {
    /// Send every tab a fresh snapshot, and forget what may no longer be true.
    fn resync(&mut self) {
        self.history.clear();
        self.last_seq = 0;
        for connection in &self.connections {
            connection.lagged.store(true, Ordering::Release);
            connection.notify.notify_one();
        }
    }
}

/// Everything after `after`, when the history reaches back that far without a gap.
/// An empty history (nothing since this process started) proves nothing: snapshot.
fn history_after(history: &VecDeque<SharedMessage>, after: u64) -> Option<Vec<SharedMessage>> {
    let newest = history.back()?.seq();
    if after == newest {
        return Some(Vec::new());
    }
    if after > newest {
        return None; // a number this server never gave out (another data dir): start afresh
    }
    let oldest = history.front()?.seq();
    if oldest > after + 1 {
        return None; // a gap: some messages after `after` are gone
    }
    Some(
        history
            .iter()
            .filter(|m| m.seq() > after)
            .cloned()
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use datavista_shared::protocol::ServerMessage;

    fn removed(seq: u64) -> ServerMessage {
        ServerMessage::JobRemoved {
            seq,
            job_id: format!("j{seq}"),
        }
    }

    fn shared(seq: u64) -> SharedMessage {
        Arc::new(removed(seq))
    }

    /// Clients read in docs/API.md how far back a reconnect catches up without a snapshot.
    #[test]
    fn the_api_docs_state_the_history_kept() {
        let docs = include_str!("../../docs/API.md");
        let said = format!("keeps the last {HISTORY} per owner");
        assert!(docs.contains(&said), "docs/API.md should say '{said}'");
    }

    #[test]
    fn history_replays_only_without_gaps() {
        let history: VecDeque<_> = (5..=9).map(shared).collect();
        assert_eq!(history_after(&history, 9), Some(vec![]));
        assert_eq!(
            history_after(&history, 999),
            None,
            "a number from elsewhere gets a snapshot"
        );
        assert_eq!(history_after(&history, 7).unwrap().len(), 2);
        assert_eq!(history_after(&history, 4).unwrap().len(), 5);
        assert_eq!(history_after(&history, 3), None);
        assert_eq!(
            history_after(&VecDeque::new(), 3),
            None,
            "after a restart the history is empty"
        );
    }

    #[tokio::test]
    async fn events_that_cross_send_a_snapshot_and_gaps_are_not_replayed() {
        let hub = HubHandle::new(CONNECTION_QUEUE, 8, 1_000);
        let ada = OwnerId::random();
        let mut tab = hub.subscribe(ada.clone()).unwrap();
        let event = |seq| OwnerEvent {
            owner: ada.clone(),
            message: removed(seq),
        };
        hub.deliver(event(1));
        hub.deliver(event(3)); // 2 is still on its way from another node
        assert_eq!(tab.messages.recv().await, Some(shared(1)));
        assert_eq!(tab.messages.recv().await, Some(shared(3)));
        assert_eq!(hub.history(&ada, 1), None, "no replay across the gap");
        assert!(!tab.lagged.load(Ordering::Acquire));
        hub.deliver(event(2)); // arrives after 3: the tab must start again from the store
        assert!(tab.lagged.load(Ordering::Acquire), "a snapshot is due");
        assert!(tab.messages.try_recv().is_err(), "2 is not sent after 3");
    }

    #[tokio::test]
    async fn resync_all_sends_every_tab_a_snapshot() {
        let hub = HubHandle::new(CONNECTION_QUEUE, 8, 1_000);
        let tabs = [
            hub.subscribe(OwnerId::random()).unwrap(),
            hub.subscribe(OwnerId::random()).unwrap(),
        ];
        hub.resync_all();
        assert_eq!(hub.connections(), 2);
        assert!(tabs.iter().all(|t| t.lagged.load(Ordering::Acquire)));
    }

    #[tokio::test]
    async fn every_connection_of_an_owner_gets_each_event_and_others_none() {
        let hub = HubHandle::new(CONNECTION_QUEUE, 8, 1_000);
        let (ada, bob) = (OwnerId::random(), OwnerId::random());
        let mut tab1 = hub.subscribe(ada.clone()).unwrap();
        let mut tab2 = hub.subscribe(ada.clone()).unwrap();
        let mut other = hub.subscribe(bob).unwrap();
        hub.deliver(OwnerEvent {
            owner: ada,
            message: removed(1),
        });
        assert_eq!(tab1.messages.recv().await, Some(shared(1)));
        assert_eq!(tab2.messages.recv().await, Some(shared(1)));
        assert!(other.messages.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_full_queue_marks_the_connection_lagged_without_blocking_others() {
        let hub = HubHandle::new(CONNECTION_QUEUE, 8, 1_000);
        let owner = OwnerId::random();
        let slow = hub.subscribe(owner.clone()).unwrap();
        let mut fast = hub.subscribe(owner.clone()).unwrap();
        for seq in 1..=(CONNECTION_QUEUE as u64 + 10) {
            hub.deliver(OwnerEvent {
                owner: owner.clone(),
                message: removed(seq),
            });
            assert_eq!(fast.messages.recv().await.map(|m| m.seq()), Some(seq));
        }
        assert!(slow.lagged.load(Ordering::Acquire));
        assert_eq!(hub.connections(), 2);
    }

    #[tokio::test]
    async fn an_owner_at_the_connection_limit_is_refused_until_one_closes() {
        let hub = HubHandle::new(CONNECTION_QUEUE, 2, 1_000);
        let (ada, bob) = (OwnerId::random(), OwnerId::random());
        let first = hub.subscribe(ada.clone()).unwrap();
        let _second = hub.subscribe(ada.clone()).unwrap();
        assert_eq!(hub.subscribe(ada.clone()).err(), Some(Refused::Owner));
        assert!(hub.subscribe(bob).is_ok(), "the limit is per owner");
        hub.unsubscribe(ada.clone(), first.id);
        assert!(hub.subscribe(ada).is_ok());
    }

    #[tokio::test]
    async fn new_owners_cannot_pass_the_servers_connection_limit() {
        let hub = HubHandle::new(CONNECTION_QUEUE, 8, 3);
        let tabs: Vec<_> = (0..3)
            .map(|_| {
                let owner = OwnerId::random();
                (owner.clone(), hub.subscribe(owner).unwrap())
            })
            .collect();
        assert_eq!(
            hub.subscribe(OwnerId::random()).err(),
            Some(Refused::Server)
        );
        let (owner, tab) = &tabs[0];
        hub.unsubscribe(owner.clone(), tab.id);
        hub.unsubscribe(owner.clone(), tab.id); // twice: counted once
        assert!(hub.subscribe(OwnerId::random()).is_ok());
        assert_eq!(
            hub.subscribe(OwnerId::random()).err(),
            Some(Refused::Server)
        );
        // A connection whose task ended without unsubscribing frees its place once an event
        // finds it gone.
        let (owner, gone) = tabs.into_iter().nth(1).unwrap();
        drop(gone);
        hub.deliver(OwnerEvent {
            owner,
            message: removed(1),
        });
        assert!(hub.subscribe(OwnerId::random()).is_ok());
    }

    #[test]
    fn idle_owners_are_forgotten_by_a_sweep_at_most_every_few_seconds() {
        let hub = HubHandle::new(CONNECTION_QUEUE, 8, 1_000);
        let (ada, bob) = (OwnerId::random(), OwnerId::random());
        let tab = hub.subscribe(ada.clone()).unwrap();
        hub.unsubscribe(ada.clone(), tab.id);
        let long_ago = Instant::now() - IDLE_HISTORY - Duration::from_secs(1);
        hub.hub().owners.get_mut(&ada).unwrap().idle_since = Some(long_ago);

        let tab = hub.subscribe(bob.clone()).unwrap();
        hub.unsubscribe(bob.clone(), tab.id);
        assert!(
            hub.hub().owners.contains_key(&ada),
            "a closed tab does not scan every owner before the sweep is due"
        );

        hub.hub().next_idle_sweep = Instant::now();
        let tab = hub.subscribe(bob.clone()).unwrap();
        hub.unsubscribe(bob.clone(), tab.id);
        let owners = &hub.hub().owners;
        assert!(
            !owners.contains_key(&ada),
            "idle past its history: forgotten"
        );
        assert!(owners.contains_key(&bob), "idle for a moment: kept");
    }
}
