//! The live connection ([`Live`]: one WebSocket, reconnected with backoff, catching up from
//! the last sequence number) and the jobs it keeps current ([`LiveJobs`]).

use std::collections::HashMap;
use std::time::Duration;

use datavista_shared::follow::{Change, Follower};
use datavista_shared::protocol::{ClientMessage, Job, ServerMessage};
use leptos::prelude::*;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{MessageEvent, WebSocket};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    Connecting,
    Live,
    /// Lost; trying again in this many seconds.
    Reconnecting(u32),
}

/// The owner's jobs as the server last described them, kept in sequence-number order.
/// Each job is its own signal, so an update re-renders only its row.
#[derive(Clone, Copy)]
pub struct LiveJobs {
    /// Job ids, newest first.
    pub order: RwSignal<Vec<String>>,
    /// What screen readers announce (an aria-live region shows it).
    pub announcement: RwSignal<String>,
    rows: StoredValue<HashMap<String, RwSignal<Job>>>,
    /// Sequence numbers and snapshot parts (the shared crate's, as the tests' tabs use).
    follower: StoredValue<Follower>,
}

impl Default for LiveJobs {
    fn default() -> Self {
        LiveJobs {
            order: RwSignal::new(Vec::new()),
            announcement: RwSignal::new(String::new()),
            rows: StoredValue::new(HashMap::new()),
            follower: StoredValue::new(Follower::default()),
        }
    }
}

impl LiveJobs {
    pub fn row(&self, id: &str) -> Option<RwSignal<Job>> {
        self.rows.with_value(|rows| rows.get(id).copied())
    }

    /// The highest sequence number applied.
    pub fn last_seq(&self) -> u64 {
        self.follower.with_value(Follower::last_seq)
    }

    /// Apply a server message; returns a message to send back when something was missed.
    pub fn apply(&self, message: ServerMessage) -> Option<ClientMessage> {
        let step = self
            .follower
            .try_update_value(|follower| follower.take(message))
            .unwrap_or_default();
        match step.change {
            Some(Change::ReplaceAll(jobs)) => self.replace_all(jobs),
            Some(Change::Upsert(job)) => self.upsert(job),
            Some(Change::Remove(id)) => {
                self.rows.update_value(|rows| {
                    rows.remove(&id);
                });
                self.order.update(|order| order.retain(|kept| kept != &id));
            }
            None => {}
        }
        step.resume
    }

    fn upsert(&self, job: Job) {
        if let Some(row) = self.row(&job.id) {
            let before = row.with_untracked(|j| j.state);
            if before != job.state && job.state.is_final() {
                self.announce(&job);
            }
            row.set(job);
            return;
        }
        let id = job.id.clone();
        self.rows.update_value(|rows| {
            rows.insert(id.clone(), RwSignal::new(job));
        });
        self.order.update(|order| order.insert(0, id));
    }

    fn replace_all(&self, jobs: Vec<Job>) {
        let ids: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
        self.rows.update_value(|rows| {
            rows.retain(|id, _| ids.contains(id));
            for job in jobs {
                match rows.get(&job.id) {
                    Some(row) => row.set(job),
                    None => {
                        rows.insert(job.id.clone(), RwSignal::new(job));
                    }
                }
            }
        });
        self.order.set(ids);
    }

    fn announce(&self, job: &Job) {
        let detail = match job.progress.errors {
            0 => String::new(),
            n => format!(" with {n} errors"),
        };
        self.announcement.set(format!(
            "{} is {}{detail}",
            job.file_name,
            job.state.as_str()
        ));
    }
}

/// The live connection: one WebSocket, reconnected with backoff, catching up from the last
/// sequence number applied to its [`LiveJobs`].
#[derive(Clone, Copy)]
pub struct Live {
    pub connection: RwSignal<Connection>,
    pub jobs: LiveJobs,
    failures: StoredValue<u32>,
    socket: StoredValue<Option<WebSocket>, LocalStorage>,
}

impl Live {
    pub fn start() -> Live {
        let live = Live {
            connection: RwSignal::new(Connection::Connecting),
            jobs: LiveJobs::default(),
            failures: StoredValue::new(0),
            socket: StoredValue::new_local(None),
        };
        live.connect();
        live
    }

    pub fn send(&self, message: &ClientMessage) {
        self.socket.with_value(|socket| {
            if let Some(socket) = socket {
                let _ = socket.send_with_str(&message.to_json());
            }
        });
    }

    fn connect(self) {
        let location = window().location();
        let scheme = if location.protocol().ok().as_deref() == Some("https:") {
            "wss"
        } else {
            "ws"
        };
        let host = location.host().unwrap_or_default();
        let last = self.jobs.last_seq();
        let url = if last > 0 {
            format!("{scheme}://{host}/ws?last_seq={last}")
        } else {
            format!("{scheme}://{host}/ws")
        };
        let Ok(socket) = WebSocket::new(&url) else {
            self.retry_later();
            return;
        };
        self.connection.set(Connection::Connecting);
        let on_open = Closure::<dyn Fn()>::new(move || {
            self.failures.set_value(0);
            self.connection.set(Connection::Live);
        });
        let on_message = Closure::<dyn Fn(MessageEvent)>::new(move |event: MessageEvent| {
            if let Some(text) = event.data().as_string() {
                if let Ok(message) = ServerMessage::from_json(&text) {
                    if let Some(reply) = self.jobs.apply(message) {
                        self.send(&reply);
                    }
                }
            }
        });
        let on_close = Closure::<dyn Fn()>::new(move || self.retry_later());
        socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        // The handlers live as long as the page; a reconnect makes a new socket with new ones.
        on_open.forget();
        on_message.forget();
        on_close.forget();
        self.socket.set_value(Some(socket));
    }

    /// Back off 1, 2, 4 … 15 seconds between attempts.
    fn retry_later(self) {
        let failures = self.failures.get_value();
        self.failures.set_value(failures + 1);
        let seconds = 2u32.saturating_pow(failures).min(15);
        self.connection.set(Connection::Reconnecting(seconds));
        set_timeout(move || self.connect(), Duration::from_secs(seconds as u64));
    }
}

#[cfg(test)]
mod tests {
    // Native `cargo test` and, in headless Chromium, `cargo test --target wasm32-unknown-unknown`.
    #[cfg(target_arch = "wasm32")]
    wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

    use datavista_shared::protocol::{JobProgress, JobState};

    use super::*;

    fn job(id: &str, state: JobState) -> Job {
        Job {
            id: id.into(),
            file_name: format!("{id}.csv"),
            schema_id: None,
            state,
            progress: JobProgress::default(),
            error_counts: Default::default(),
            reason: None,
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    fn update(seq: u64, id: &str, state: JobState) -> ServerMessage {
        ServerMessage::JobUpdate {
            seq,
            job: job(id, state),
        }
    }

    fn states(list: &LiveJobs) -> Vec<(String, JobState)> {
        list.order
            .get_untracked()
            .iter()
            .map(|id| (id.clone(), list.row(id).unwrap().get_untracked().state))
            .collect()
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn a_snapshot_in_parts_replaces_everything() {
        let list = LiveJobs::default();
        list.apply(update(1, "old", JobState::Valid));
        list.apply(ServerMessage::Snapshot {
            seq: 9,
            part: 0,
            last: false,
            jobs: vec![job("b", JobState::Valid)],
        });
        assert_eq!(
            states(&list).len(),
            1,
            "nothing changes until the last part"
        );
        list.apply(ServerMessage::Snapshot {
            seq: 9,
            part: 1,
            last: true,
            jobs: vec![job("a", JobState::Invalid)],
        });
        assert_eq!(
            states(&list),
            [
                ("b".into(), JobState::Valid),
                ("a".into(), JobState::Invalid)
            ]
        );
        assert_eq!(list.last_seq(), 9);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn updates_apply_in_order_and_repeats_are_ignored() {
        let list = LiveJobs::default();
        list.apply(ServerMessage::Snapshot {
            seq: 4,
            part: 0,
            last: true,
            jobs: vec![],
        });
        assert_eq!(list.apply(update(5, "x", JobState::Uploading)), None);
        assert_eq!(list.apply(update(6, "x", JobState::Valid)), None);
        assert_eq!(
            list.apply(update(5, "x", JobState::Uploading)),
            None,
            "a replay of an old update"
        );
        assert_eq!(states(&list), [("x".into(), JobState::Valid)]);
        assert_eq!(list.announcement.get_untracked(), "x.csv is valid");
        list.apply(ServerMessage::JobRemoved {
            seq: 7,
            job_id: "x".into(),
        });
        assert!(states(&list).is_empty());
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn a_gap_asks_for_what_was_missed_and_applies_nothing() {
        let list = LiveJobs::default();
        list.apply(ServerMessage::Snapshot {
            seq: 4,
            part: 0,
            last: true,
            jobs: vec![job("x", JobState::Uploading)],
        });
        let reply = list.apply(update(7, "x", JobState::Valid));
        assert_eq!(reply, Some(ClientMessage::Resume { last_seq: Some(4) }));
        assert_eq!(states(&list), [("x".into(), JobState::Uploading)]);
        for (seq, state) in [
            (5, JobState::Validating),
            (6, JobState::Validating),
            (7, JobState::Valid),
        ] {
            assert_eq!(list.apply(update(seq, "x", state)), None);
        }
        assert_eq!(states(&list), [("x".into(), JobState::Valid)]);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn an_update_changes_only_its_own_row_signal() {
        let list = LiveJobs::default();
        list.apply(ServerMessage::Snapshot {
            seq: 1,
            part: 0,
            last: true,
            jobs: (0..200)
                .map(|i| job(&format!("j{i}"), JobState::Validating))
                .collect(),
        });
        let untouched = list.row("j0").unwrap();
        let before = untouched.get_untracked();
        let order_before = list.order.get_untracked();
        list.apply(update(2, "j150", JobState::Valid));
        assert_eq!(untouched.get_untracked(), before);
        assert_eq!(
            list.order.get_untracked(),
            order_before,
            "the list itself is untouched: no row but j150 re-renders"
        );
        assert_eq!(
            list.row("j150").unwrap().get_untracked().state,
            JobState::Valid
        );
    }
}
