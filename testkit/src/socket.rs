//! The live side: a [`Socket`] to `/ws` as a tab opens it (cookie or token, an Origin, a tiny
//! receive buffer), reading `datavista_shared::protocol` messages with their sequence numbers,
//! and a [`LiveView`], a tab's picture of its owner's jobs kept from those messages.

use std::collections::HashMap;
use std::time::Instant;

use datavista_shared::follow::{Change, Follower};
use datavista_shared::protocol::{ClientMessage, Job, JobState, ServerMessage};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{Auth, Client};
use crate::PATIENCE;

impl Client {
    pub async fn socket(&self, query: &str) -> Socket {
        self.socket_with_origin(query, None)
            .await
            .expect("the WebSocket opens")
    }

    /// A socket with a tiny receive buffer: a client that reads slowly really falls behind.
    pub async fn slow_socket(&self) -> Socket {
        let address: std::net::SocketAddr =
            self.base.strip_prefix("http://").unwrap().parse().unwrap();
        let tcp = tokio::net::TcpSocket::new_v4().unwrap();
        tcp.set_recv_buffer_size(2048).unwrap();
        let stream = tcp.connect(address).await.unwrap();
        let mut request = format!("ws://{address}/ws").into_client_request().unwrap();
        if let Auth::Cookie(cookie) = &self.auth {
            request
                .headers_mut()
                .insert("cookie", cookie.parse().unwrap());
        }
        let (stream, _) = tokio_tungstenite::client_async(
            request,
            tokio_tungstenite::MaybeTlsStream::Plain(stream),
        )
        .await
        .unwrap();
        Socket { stream }
    }

    pub async fn socket_with_origin(
        &self,
        query: &str,
        origin: Option<&str>,
    ) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
        let url = format!("{}/ws{query}", self.base.replacen("http://", "ws://", 1));
        let mut request = url.into_client_request().unwrap();
        match &self.auth {
            Auth::Cookie(cookie) => request
                .headers_mut()
                .insert("cookie", cookie.parse().unwrap()),
            Auth::Bearer(token) => request
                .headers_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap()),
        };
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
        }
        let (stream, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Socket { stream })
    }
}

pub struct Socket {
    pub stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Socket {
    /// The next protocol message (pings are answered by the library).
    pub async fn next(&mut self) -> ServerMessage {
        loop {
            match self.next_frame().await {
                Message::Text(text) => {
                    return ServerMessage::from_json(&text).expect("a protocol message")
                }
                Message::Close(frame) => panic!("the socket closed: {frame:?}"),
                _ => {}
            }
        }
    }

    pub async fn next_frame(&mut self) -> Message {
        tokio::time::timeout(PATIENCE, self.stream.next())
            .await
            .expect("a message within the patience limit")
            .expect("the socket is open")
            .expect("a valid frame")
    }

    pub async fn send(&mut self, message: &ClientMessage) {
        self.stream
            .send(Message::text(message.to_json()))
            .await
            .unwrap();
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.stream.send(message).await.unwrap();
    }

    /// hello and the snapshot parts: (seq, jobs).
    pub async fn greeting(&mut self) -> (u64, Vec<Job>) {
        let ServerMessage::Hello {
            seq,
            protocol_version,
        } = self.next().await
        else {
            panic!("hello first")
        };
        assert_eq!(
            protocol_version,
            datavista_shared::protocol::PROTOCOL_VERSION
        );
        let mut jobs = Vec::new();
        loop {
            match self.next().await {
                ServerMessage::Snapshot {
                    seq: snapshot_seq,
                    jobs: part,
                    last,
                    ..
                } => {
                    assert_eq!(snapshot_seq, seq);
                    jobs.extend(part);
                    if last {
                        return (seq, jobs);
                    }
                }
                other => panic!("expected the snapshot, got {other:?}"),
            }
        }
    }

    /// Collect job updates until `id` is final; returns the states seen, in order, checking
    /// that sequence numbers only grow.
    pub async fn states_until_final(
        &mut self,
        id: &str,
        mut last_seq: u64,
    ) -> (Vec<JobState>, Job, u64) {
        let mut states: Vec<JobState> = Vec::new();
        let deadline = Instant::now() + PATIENCE;
        loop {
            assert!(
                Instant::now() < deadline,
                "job {id} did not finish; states so far {states:?}"
            );
            let message = self.next().await;
            if let ServerMessage::Error { message, .. } = &message {
                panic!("the server answered with an error: {message}");
            }
            assert!(
                message.seq() > last_seq,
                "sequence numbers only grow: {} after {last_seq}",
                message.seq()
            );
            last_seq = message.seq();
            if let ServerMessage::JobUpdate { job, .. } = message {
                if job.id != id {
                    continue;
                }
                if states.last() != Some(&job.state) {
                    states.push(job.state);
                }
                if job.state.is_final() {
                    return (states, job, last_seq);
                }
            }
        }
    }
}

/// One tab's picture of its owner's jobs, kept as the server's messages arrive, by the same
/// bookkeeping as the dashboard's ([`Follower`]): the snapshot replaces it, updates and
/// removals change it in sequence order, and a gap asks the server for what was missed.
#[derive(Default)]
pub struct LiveView {
    pub jobs: HashMap<String, Job>,
    follower: Follower,
    /// Greeted (hello seen) since the last connect.
    pub connected: bool,
}

impl LiveView {
    /// Take one message; returns what to send the server when something was missed.
    pub fn apply(&mut self, message: ServerMessage) -> Option<ClientMessage> {
        if let ServerMessage::Hello { .. } = message {
            self.connected = true;
        }
        let step = self.follower.take(message);
        match step.change {
            Some(Change::ReplaceAll(jobs)) => {
                self.jobs = jobs.into_iter().map(|j| (j.id.clone(), j)).collect();
            }
            Some(Change::Upsert(job)) => {
                self.jobs.insert(job.id.clone(), job);
            }
            Some(Change::Remove(id)) => {
                self.jobs.remove(&id);
            }
            None => {}
        }
        step.resume
    }

    /// The highest sequence number applied (0 before the first snapshot or update).
    pub fn last_seq(&self) -> u64 {
        self.follower.last_seq()
    }

    /// The `/ws` query that resumes after what this view has seen.
    pub fn resume_query(&self) -> String {
        match self.follower.last_seq() {
            0 => String::new(),
            seq => format!("?last_seq={seq}"),
        }
    }
}
