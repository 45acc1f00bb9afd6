//! Idle connections: open many dashboard WebSockets, hold them, and see what each costs the
//! server in resident memory.

use std::sync::Arc;
use std::time::Duration;

use datavista_shared::protocol::ServerMessage;
use futures_util::StreamExt;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::server::Server;

pub struct Outcome {
    pub connections: usize,
    pub accepted: usize,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
}

impl Outcome {
    pub fn kib_per_connection(&self) -> f64 {
        (self.rss_after_kib as f64 - self.rss_before_kib as f64) / self.accepted.max(1) as f64
    }
}

/// `connections` sockets over `connections / tabs` owners; each is held open (and answers the
/// server's pings) until the measurement is taken, after `settle`.
pub async fn run(
    server: &Server,
    connections: usize,
    tabs: usize,
    settle: Duration,
) -> Result<Outcome, String> {
    let http = reqwest::Client::new();
    let owners = connections.div_ceil(tabs);
    let mut cookies = Vec::with_capacity(owners);
    for _ in 0..owners {
        cookies.push(server.session(&http).await?);
    }
    // Let the allocator settle after the session requests before the baseline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before_kib = server.rss_kib();

    let connecting = Arc::new(Semaphore::new(100));
    let mut greeted = Vec::with_capacity(connections);
    let mut holders = Vec::with_capacity(connections);
    for index in 0..connections {
        let permit = connecting.clone().acquire_owned().await.unwrap();
        let mut request = server
            .ws_url("")
            .into_client_request()
            .map_err(|e| e.to_string())?;
        let cookie = cookies[index / tabs].parse().map_err(|_| "bad cookie")?;
        request.headers_mut().insert("cookie", cookie);
        let (hello_tx, hello_rx) = tokio::sync::oneshot::channel();
        greeted.push(hello_rx);
        holders.push(tokio::spawn(async move {
            let Ok((mut socket, _)) = tokio_tungstenite::connect_async(request).await else {
                return;
            };
            // Connects in flight are bounded until the greeting arrives.
            let mut permit = Some(permit);
            let mut hello = Some(hello_tx);
            // Reading keeps the connection alive: tungstenite answers pings as it reads.
            while let Some(Ok(frame)) = socket.next().await {
                if let Message::Text(text) = frame {
                    if matches!(
                        ServerMessage::from_json(&text),
                        Ok(ServerMessage::Hello { .. })
                    ) {
                        if let Some(tx) = hello.take() {
                            let _ = tx.send(());
                        }
                        permit.take();
                    }
                }
            }
        }));
    }
    let mut accepted = 0;
    for hello in greeted {
        if tokio::time::timeout(Duration::from_secs(60), hello)
            .await
            .is_ok_and(|r| r.is_ok())
        {
            accepted += 1;
        }
    }
    tokio::time::sleep(settle).await;
    let rss_after_kib = server.rss_kib();
    for holder in holders {
        holder.abort();
    }
    Ok(Outcome {
        connections,
        accepted,
        rss_before_kib,
        rss_after_kib,
    })
}
