//! Following an owner's jobs from the server's numbered WebSocket messages: the bookkeeping
//! every client of the socket needs, written once for the dashboard, the load generator's
//! tabs and the tests.
//!
//! A [`Follower`] puts snapshot parts together, drops repeats, and notices a gap; it says
//! what to change ([`Change`]) and, after a gap, what to ask the server for. Where the jobs
//! live (signals in the dashboard, a map in a test) is the caller's.

use crate::protocol::{ClientMessage, Job, ServerMessage};

/// What a message changes in the owner's jobs.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A whole snapshot arrived: these are all the owner's jobs, newest first.
    ReplaceAll(Vec<Job>),
    /// A job is new or changed.
    Upsert(Job),
    /// A job is gone.
    Remove(String),
}

/// What to do after one message.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Step {
    pub change: Option<Change>,
    /// Something was missed: send this to the server (it resends from there).
    pub resume: Option<ClientMessage>,
}

/// The sequence number applied last, and the snapshot parts still arriving.
#[derive(Debug, Default, Clone)]
pub struct Follower {
    last_seq: u64,
    snapshot_parts: Vec<Job>,
}

impl Follower {
    /// The highest sequence number applied (0 before the first snapshot or update).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Take one message from the server.
    pub fn take(&mut self, message: ServerMessage) -> Step {
        match message {
            ServerMessage::Hello { .. }
            | ServerMessage::Pong { .. }
            | ServerMessage::Error { .. } => Step::default(),
            ServerMessage::Snapshot {
                seq,
                part,
                last,
                jobs,
            } => {
                if part == 0 {
                    self.snapshot_parts.clear();
                }
                self.snapshot_parts.extend(jobs);
                if !last {
                    return Step::default();
                }
                self.last_seq = seq;
                Step {
                    change: Some(Change::ReplaceAll(std::mem::take(&mut self.snapshot_parts))),
                    resume: None,
                }
            }
            ServerMessage::JobUpdate { seq, job } => self.in_order(seq, Change::Upsert(job)),
            ServerMessage::JobRemoved { seq, job_id } => self.in_order(seq, Change::Remove(job_id)),
        }
    }

    /// Apply `change` when its number is the next one. A repeat is dropped; after a gap
    /// nothing is applied and the server is asked for what was missed (it resends from
    /// there, this message included). Before any number is known, anything is next.
    fn in_order(&mut self, seq: u64, change: Change) -> Step {
        let last = self.last_seq;
        if seq <= last {
            return Step::default();
        }
        if seq > last + 1 && last > 0 {
            return Step {
                change: None,
                resume: Some(ClientMessage::Resume {
                    last_seq: Some(last),
                }),
            };
        }
        self.last_seq = seq;
        Step {
            change: Some(change),
            resume: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::JobState;

    fn job(id: &str) -> Job {
        Job {
            id: id.to_owned(),
            file_name: format!("{id}.csv"),
            schema_id: None,
            state: JobState::Queued,
            progress: Default::default(),
            error_counts: Default::default(),
            reason: None,
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    fn update(seq: u64, id: &str) -> ServerMessage {
        ServerMessage::JobUpdate { seq, job: job(id) }
    }

    #[test]
    fn snapshot_parts_make_one_replacement_then_updates_follow_in_order() {
        let mut follower = Follower::default();
        let part = |part, last, ids: &[&str]| ServerMessage::Snapshot {
            seq: 4,
            part,
            last,
            jobs: ids.iter().map(|id| job(id)).collect(),
        };
        assert_eq!(follower.take(part(0, false, &["b"])), Step::default());
        assert_eq!(
            follower.take(part(1, true, &["a"])).change,
            Some(Change::ReplaceAll(vec![job("b"), job("a")]))
        );
        assert_eq!(follower.last_seq(), 4);
        assert_eq!(follower.take(update(4, "a")), Step::default(), "a repeat");
        assert_eq!(
            follower.take(update(5, "c")).change,
            Some(Change::Upsert(job("c")))
        );
        let removed = ServerMessage::JobRemoved {
            seq: 6,
            job_id: "b".into(),
        };
        assert_eq!(
            follower.take(removed).change,
            Some(Change::Remove("b".into()))
        );
        assert_eq!(follower.last_seq(), 6);
    }

    #[test]
    fn a_gap_applies_nothing_and_asks_for_what_was_missed() {
        let mut follower = Follower::default();
        assert!(
            follower.take(update(3, "a")).change.is_some(),
            "first known"
        );
        let step = follower.take(update(5, "b"));
        assert_eq!(step.change, None);
        assert_eq!(
            step.resume,
            Some(ClientMessage::Resume { last_seq: Some(3) })
        );
        assert_eq!(follower.last_seq(), 3);
        assert!(follower.take(update(4, "c")).change.is_some());
    }
}
