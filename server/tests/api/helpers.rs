//! What several modules' tests share: the job life-cycle's order, an upload fed piece by
//! piece, and waiting for a job's first update.

use bytes::Bytes;
use datavista_shared::protocol::{JobState, ServerMessage};
use datavista_testkit::{Client, Socket, PATIENCE};
use tokio::sync::mpsc;

/// States must appear in the life-cycle order (some may be skipped when work is fast).
pub fn assert_life_cycle(states: &[JobState], last: JobState) {
    let order = [
        JobState::Uploading,
        JobState::Queued,
        JobState::Validating,
        last,
    ];
    let mut position = 0;
    for state in states {
        let found = order[position..]
            .iter()
            .position(|s| s == state)
            .unwrap_or_else(|| panic!("{state:?} out of order in {states:?}"));
        position += found;
    }
    assert_eq!(states.first(), Some(&JobState::Uploading), "{states:?}");
    assert_eq!(states.last(), Some(&last), "{states:?}");
}

/// An upload whose body the test feeds piece by piece, so the job stays `uploading`.
pub struct SlowUpload {
    pieces: mpsc::Sender<Bytes>,
    response: tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>,
}

impl SlowUpload {
    pub fn start(client: &Client, schema: Option<&str>, name: &str) -> SlowUpload {
        let (pieces, receiver) = mpsc::channel::<Bytes>(4);
        let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
            receiver
                .recv()
                .await
                .map(|piece| (Ok::<_, std::io::Error>(piece), receiver))
        });
        let part = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(stream))
            .file_name(name.to_owned());
        let form = reqwest::multipart::Form::new().part("file", part);
        let path = schema.map_or("/api/uploads".to_owned(), |s| {
            format!("/api/uploads?schema={s}")
        });
        let request = client.request(reqwest::Method::POST, &path).multipart(form);
        SlowUpload {
            pieces,
            response: tokio::spawn(request.send()),
        }
    }

    pub async fn send(&self, bytes: &[u8]) {
        self.pieces
            .send(Bytes::copy_from_slice(bytes))
            .await
            .unwrap();
    }

    pub async fn finish(self) -> reqwest::Result<reqwest::Response> {
        drop(self.pieces);
        self.response.await.unwrap()
    }
}

/// Wait on a socket for the first update of a job named `name`; returns its id and seq.
pub async fn first_update_named(socket: &mut Socket, name: &str) -> (String, u64) {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        assert!(std::time::Instant::now() < deadline, "no update for {name}");
        if let ServerMessage::JobUpdate { seq, job } = socket.next().await {
            if job.file_name == name {
                return (job.id, seq);
            }
        }
    }
}
