//! The live connection: one WebSocket, reconnected with backoff, catching up from the last
//! sequence number; and the job list it keeps current. Each job is its own signal, so an
//! update re-renders only its row.

use std::collections::HashMap;
use std::time::Duration;

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

#[derive(Clone, Copy)]
pub struct Live {
    pub connection: RwSignal<Connection>,
    /// Job ids, newest first.
    pub order: RwSignal<Vec<String>>,
    /// What screen readers announce (an aria-live region shows it).
    pub announcement: RwSignal<String>,
    rows: StoredValue<HashMap<String, RwSignal<Job>>>,
    last_seq: StoredValue<u64>,
    snapshot: StoredValue<Vec<Job>>,
    failures: StoredValue<u32>,
    socket: StoredValue<Option<WebSocket>, LocalStorage>,
}

impl Live {
    pub fn start() -> Live {
        let live = Live {
            connection: RwSignal::new(Connection::Connecting),
            order: RwSignal::new(Vec::new()),
            announcement: RwSignal::new(String::new()),
            rows: StoredValue::new(HashMap::new()),
            last_seq: StoredValue::new(0),
            snapshot: StoredValue::new(Vec::new()),
            failures: StoredValue::new(0),
            socket: StoredValue::new_local(None),
        };
        live.connect();
        live
    }

    pub fn row(&self, id: &str) -> Option<RwSignal<Job>> {
        self.rows.with_value(|rows| rows.get(id).copied())
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
        let scheme = if location.protocol().ok().as_deref() == Some("https:") { "wss" } else { "ws" };
        let host = location.host().unwrap_or_default();
        let last = self.last_seq.get_value();
        let url = if last > 0 { format!("{scheme}://{host}/ws?last_seq={last}") } else { format!("{scheme}://{host}/ws") };
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
                    self.apply(message);
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

    fn apply(&self, message: ServerMessage) {
        match message {
            ServerMessage::Hello { .. } | ServerMessage::Pong { .. } | ServerMessage::Error { .. } => {}
            ServerMessage::Snapshot { seq, part, last, jobs } => {
                if part == 0 {
                    self.snapshot.set_value(Vec::new());
                }
                self.snapshot.update_value(|all| all.extend(jobs));
                if last {
                    self.replace_all(std::mem::take(&mut self.snapshot.write_value()));
                    self.last_seq.set_value(seq);
                }
            }
            ServerMessage::JobUpdate { seq, job } => {
                if self.in_order(seq) {
                    self.upsert(job);
                }
            }
            ServerMessage::JobRemoved { seq, job_id } => {
                if self.in_order(seq) {
                    self.rows.update_value(|rows| {
                        rows.remove(&job_id);
                    });
                    self.order.update(|order| order.retain(|id| id != &job_id));
                }
            }
        }
    }

    /// True for the next message in sequence. A repeat is dropped; after a gap we ask for
    /// what we missed (the server resends from there, this message included).
    fn in_order(&self, seq: u64) -> bool {
        let last = self.last_seq.get_value();
        if seq <= last {
            return false;
        }
        if seq > last + 1 && last > 0 {
            self.send(&ClientMessage::Resume { last_seq: Some(last) });
            return false;
        }
        self.last_seq.set_value(seq);
        true
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
        self.announcement.set(format!("{} is {}{detail}", job.file_name, job.state.as_str()));
    }
}
