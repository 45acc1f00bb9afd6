//! The WebSocket protocol between server and dashboard: JSON text frames, one message each,
//! tagged by `"type"`.
//!
//! Every server message carries the user's sequence number, which only grows: a client that
//! sees a gap, or reconnects, sends `resume` with the last number it saw and the server answers
//! with what changed (or a fresh snapshot). Messages stay well under [`MAX_MESSAGE_BYTES`]:
//! error samples travel over HTTP, and snapshots are split into parts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::report::ErrorCode;

/// Bumped on any incompatible change; sent in `hello`.
pub const PROTOCOL_VERSION: u32 = 1;
/// No message, either way, is larger than this.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// A snapshot part is cut before it passes this size.
pub const SNAPSHOT_PART_BYTES: usize = 32 * 1024;
/// File names and failure reasons are cut to these lengths (in characters) before sending.
pub const MAX_FILE_NAME_CHARS: usize = 255;
pub const MAX_REASON_CHARS: usize = 500;

/// A job's place in its life: uploading → queued → validating → one of the final states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Uploading,
    Queued,
    Validating,
    Valid,
    Invalid,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Valid | JobState::Invalid | JobState::Failed | JobState::Cancelled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Uploading => "uploading",
            JobState::Queued => "queued",
            JobState::Validating => "validating",
            JobState::Valid => "valid",
            JobState::Invalid => "invalid",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobProgress {
    /// Bytes received (while uploading) or validated.
    pub bytes_done: u64,
    /// The file's size, when known.
    pub bytes_total: Option<u64>,
    pub rows: u64,
    pub errors: u64,
}

impl JobProgress {
    /// 0–100, when the total is known.
    pub fn percent(&self) -> Option<f64> {
        self.bytes_total
            .filter(|t| *t > 0)
            .map(|total| (self.bytes_done as f64 / total as f64 * 100.0).min(100.0))
    }
}

/// What the dashboard shows for one uploaded file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub file_name: String,
    pub schema_id: Option<String>,
    pub state: JobState,
    pub progress: JobProgress,
    /// Exact errors per code (final once the job is).
    pub error_counts: BTreeMap<ErrorCode, u64>,
    /// Why a job failed or was cancelled.
    pub reason: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

impl Job {
    /// Cut the free-text parts so the message stays small, whatever a user named the file.
    pub fn clamped(mut self) -> Job {
        self.file_name = cut(&self.file_name, MAX_FILE_NAME_CHARS);
        self.reason = self.reason.map(|r| cut(&r, MAX_REASON_CHARS));
        self
    }
}

fn cut(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

/// Server → client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// First message on every connection.
    Hello {
        seq: u64,
        protocol_version: u32,
    },
    /// All of the user's jobs as of `seq`, newest first, in parts; `last` marks the final part.
    Snapshot {
        seq: u64,
        part: u32,
        last: bool,
        jobs: Vec<Job>,
    },
    JobUpdate {
        seq: u64,
        job: Job,
    },
    JobRemoved {
        seq: u64,
        job_id: String,
    },
    /// Something the client sent could not be done; the connection stays open.
    Error {
        seq: u64,
        code: ProtocolErrorCode,
        message: String,
    },
    Pong {
        seq: u64,
        nonce: u64,
    },
}

impl ServerMessage {
    pub fn seq(&self) -> u64 {
        match self {
            ServerMessage::Hello { seq, .. }
            | ServerMessage::Snapshot { seq, .. }
            | ServerMessage::JobUpdate { seq, .. }
            | ServerMessage::JobRemoved { seq, .. }
            | ServerMessage::Error { seq, .. }
            | ServerMessage::Pong { seq, .. } => *seq,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("protocol messages always serialize")
    }

    pub fn from_json(text: &str) -> Result<ServerMessage, ProtocolError> {
        parse(text)
    }

    /// A snapshot of `jobs`, split so that every part stays under [`SNAPSHOT_PART_BYTES`].
    pub fn snapshot_parts(seq: u64, jobs: Vec<Job>) -> Vec<ServerMessage> {
        let mut parts = Vec::new();
        let mut current = Vec::new();
        let mut size = 0;
        for job in jobs {
            let job = job.clamped();
            let job_size = serde_json::to_string(&job).map(|s| s.len()).unwrap_or(0) + 1;
            if !current.is_empty() && size + job_size > SNAPSHOT_PART_BYTES {
                parts.push(std::mem::take(&mut current));
                size = 0;
            }
            size += job_size;
            current.push(job);
        }
        parts.push(current);
        let count = parts.len();
        parts
            .into_iter()
            .enumerate()
            .map(|(i, jobs)| ServerMessage::Snapshot {
                seq,
                part: i as u32,
                last: i + 1 == count,
                jobs,
            })
            .collect()
    }
}

/// Client → server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Catch up: send what changed after `last_seq` (or a snapshot when `None` or too old).
    Resume {
        last_seq: Option<u64>,
    },
    Cancel {
        job_id: String,
    },
    Ping {
        nonce: u64,
    },
}

impl ClientMessage {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("protocol messages always serialize")
    }

    /// Parse a frame from a client, which may be anything at all.
    pub fn from_json(text: &str) -> Result<ClientMessage, ProtocolError> {
        parse(text)
    }
}

fn parse<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, ProtocolError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(ProtocolError {
            code: ProtocolErrorCode::TooLarge,
            message: format!("message is larger than {MAX_MESSAGE_BYTES} bytes"),
        });
    }
    serde_json::from_str(text).map_err(|e| ProtocolError {
        code: ProtocolErrorCode::BadMessage,
        message: format!("not a protocol message: {e}"),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProtocolErrorCode {
    BadMessage,
    TooLarge,
    NotFound,
    Unsupported,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProtocolError {
    pub code: ProtocolErrorCode,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str) -> Job {
        Job {
            id: "3f1c9a2e-7b4d-4e8a-9c1f-2d3e4f5a6b7c".into(),
            file_name: name.into(),
            schema_id: Some("people".into()),
            state: JobState::Validating,
            progress: JobProgress {
                bytes_done: 37,
                bytes_total: Some(100),
                rows: 12,
                errors: 3,
            },
            error_counts: ErrorCode::ALL.iter().map(|c| (*c, u64::MAX)).collect(),
            reason: Some("x".repeat(10_000)),
            created_at_ms: 1,
            updated_at_ms: 2,
        }
    }

    #[test]
    fn every_message_round_trips() {
        let server = [
            ServerMessage::Hello {
                seq: 0,
                protocol_version: PROTOCOL_VERSION,
            },
            ServerMessage::Snapshot {
                seq: 4,
                part: 0,
                last: true,
                jobs: vec![job("a.csv").clamped()],
            },
            ServerMessage::JobUpdate {
                seq: 5,
                job: job("b.csv").clamped(),
            },
            ServerMessage::JobRemoved {
                seq: 6,
                job_id: "x".into(),
            },
            ServerMessage::Error {
                seq: 7,
                code: ProtocolErrorCode::NotFound,
                message: "no such job".into(),
            },
            ServerMessage::Pong { seq: 8, nonce: 9 },
        ];
        for message in server {
            assert_eq!(
                ServerMessage::from_json(&message.to_json()).unwrap(),
                message
            );
        }
        let client = [
            ClientMessage::Resume { last_seq: Some(3) },
            ClientMessage::Resume { last_seq: None },
            ClientMessage::Cancel { job_id: "x".into() },
            ClientMessage::Ping { nonce: 1 },
        ];
        for message in client {
            assert_eq!(
                ClientMessage::from_json(&message.to_json()).unwrap(),
                message
            );
        }
    }

    #[test]
    fn wire_format_is_tagged_json() {
        let text = ServerMessage::JobRemoved {
            seq: 6,
            job_id: "j".into(),
        }
        .to_json();
        assert_eq!(text, r#"{"type":"job_removed","seq":6,"job_id":"j"}"#);
        assert_eq!(
            ClientMessage::from_json(r#"{"type":"resume","last_seq":12}"#).unwrap(),
            ClientMessage::Resume { last_seq: Some(12) }
        );
    }

    #[test]
    fn garbage_is_a_clear_error() {
        for bad in [
            "",
            "null",
            "{}",
            r#"{"type":"launch"}"#,
            r#"{"type":"cancel"}"#,
            "\u{0}\u{1}",
        ] {
            assert_eq!(
                ClientMessage::from_json(bad).unwrap_err().code,
                ProtocolErrorCode::BadMessage,
                "{bad:?}"
            );
        }
        let huge = format!(
            r#"{{"type":"cancel","job_id":"{}"}}"#,
            "x".repeat(MAX_MESSAGE_BYTES)
        );
        assert_eq!(
            ClientMessage::from_json(&huge).unwrap_err().code,
            ProtocolErrorCode::TooLarge
        );
    }

    #[test]
    fn the_largest_job_update_stays_small() {
        // Control characters escape to six bytes each: the worst case for a file name.
        let message = ServerMessage::JobUpdate {
            seq: u64::MAX,
            job: job(&"\u{1}".repeat(5_000)).clamped(),
        };
        assert!(
            message.to_json().len() < MAX_MESSAGE_BYTES / 4,
            "{}",
            message.to_json().len()
        );
    }

    #[test]
    fn snapshots_are_split_into_small_parts() {
        let jobs: Vec<Job> = (0..500).map(|i| job(&format!("file-{i}.csv"))).collect();
        let parts = ServerMessage::snapshot_parts(42, jobs);
        assert!(parts.len() > 1);
        let mut seen = 0;
        for (i, part) in parts.iter().enumerate() {
            assert!(part.to_json().len() <= SNAPSHOT_PART_BYTES + 1024);
            let ServerMessage::Snapshot {
                seq,
                part,
                last,
                jobs,
            } = part
            else {
                panic!()
            };
            assert_eq!((*seq, *part as usize, *last), (42, i, i + 1 == parts.len()));
            seen += jobs.len();
        }
        assert_eq!(seen, 500);
        assert!(matches!(
            &ServerMessage::snapshot_parts(1, vec![])[..],
            [ServerMessage::Snapshot { last: true, .. }]
        ));
    }
}
