//! Upload ingest and time to verdict, with big generated files read from disk.

use std::path::Path;
use std::time::{Duration, Instant};

use datavista_shared::protocol::ServerMessage;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::server::Server;

pub struct Ingest {
    pub seconds: f64,
    pub rss_growth_kib: u64,
}

/// Upload `file` (no schema: structure checks only, the cheapest validation) and time it to
/// the 201, sampling the server's RSS meanwhile.
pub async fn upload(server: &Server, file: &Path, schema: Option<&str>) -> Result<Ingest, String> {
    let http = reqwest::Client::new();
    let cookie = server.session(&http).await?;
    upload_as(server, &http, &cookie, file, schema).await
}

async fn upload_as(
    server: &Server,
    http: &reqwest::Client,
    cookie: &str,
    file: &Path,
    schema: Option<&str>,
) -> Result<Ingest, String> {
    let bytes = std::fs::metadata(file).map_err(|e| e.to_string())?.len();
    let rss_before = server.rss_kib();
    let (done_tx, mut done_rx) = tokio::sync::watch::channel(false);
    let pid_rss = {
        let mut peak = rss_before;
        let sampling = async {
            loop {
                peak = peak.max(server.rss_kib());
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    _ = done_rx.changed() => break,
                }
            }
        };
        let url = match schema {
            Some(id) => server.url(&format!("/api/uploads?schema={id}")),
            None => server.url("/api/uploads"),
        };
        let started = Instant::now();
        let sending = async {
            let body = crate::csv::body(file).await.map_err(|e| e.to_string())?;
            let part =
                reqwest::multipart::Part::stream_with_length(body, bytes).file_name("big.csv");
            let response = http
                .post(url)
                .header("cookie", cookie)
                .multipart(reqwest::multipart::Form::new().part("file", part))
                .send()
                .await
                .map_err(|e| format!("upload: {e}"))?;
            let seconds = started.elapsed().as_secs_f64();
            let _ = done_tx.send(true);
            if !response.status().is_success() {
                return Err(format!("upload answered {}", response.status()));
            }
            Ok(seconds)
        };
        let (seconds, ()) = tokio::join!(sending, sampling);
        (seconds?, peak)
    };
    let (seconds, peak) = pid_rss;
    Ok(Ingest {
        seconds,
        rss_growth_kib: peak.saturating_sub(rss_before),
    })
}

/// `dd` copying the same file into the server's data dir: the disk's own write rate for
/// these bytes. Returns seconds.
pub fn dd(file: &Path, data_dir: &Path) -> Result<f64, String> {
    let target = data_dir.join("dd-baseline.bin");
    let started = Instant::now();
    let status = std::process::Command::new("dd")
        .arg(format!("if={}", file.display()))
        .arg(format!("of={}", target.display()))
        .args(["bs=1M", "status=none"])
        .status()
        .map_err(|e| format!("cannot run dd: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&target);
    status
        .success()
        .then_some(seconds)
        .ok_or_else(|| "dd failed".to_owned())
}

pub struct Verdict {
    pub upload_seconds: f64,
    pub verdict_seconds: f64,
    pub state: String,
}

/// Upload with the `people` schema and time until the final state arrives on the owner's
/// WebSocket.
pub async fn verdict(server: &Server, file: &Path) -> Result<Verdict, String> {
    let http = reqwest::Client::new();
    let cookie = server.session(&http).await?;
    let mut request = server
        .ws_url("")
        .into_client_request()
        .map_err(|e| e.to_string())?;
    request
        .headers_mut()
        .insert("cookie", cookie.parse().map_err(|_| "bad cookie")?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|e| format!("WebSocket connect: {e}"))?;
    let started = Instant::now();
    let final_state = async {
        while let Some(Ok(frame)) = socket.next().await {
            if let Message::Text(text) = frame {
                if let Ok(ServerMessage::JobUpdate { job, .. }) = ServerMessage::from_json(&text) {
                    if job.state.is_final() {
                        return Ok((
                            started.elapsed().as_secs_f64(),
                            job.state.as_str().to_owned(),
                        ));
                    }
                }
            }
        }
        Err("the WebSocket closed before the verdict".to_owned())
    };
    let (uploaded, verdict) = tokio::join!(
        upload_as(server, &http, &cookie, file, Some("people")),
        tokio::time::timeout(Duration::from_secs(1800), final_state)
    );
    let (verdict_seconds, state) = verdict.map_err(|_| "no verdict within 30 minutes")??;
    Ok(Verdict {
        upload_seconds: uploaded?.seconds,
        verdict_seconds,
        state,
    })
}

/// `datavista validate` on the file: validation alone, same binary and schema.
pub fn validate_alone(binary: &Path, file: &Path, schema: &Path) -> Result<f64, String> {
    let started = Instant::now();
    let output = std::process::Command::new(binary)
        .arg("validate")
        .arg(file)
        .arg("--schema")
        .arg(schema)
        .output()
        .map_err(|e| format!("cannot run datavista validate: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    // Exit code 0 is valid, 1 invalid: both are verdicts.
    match output.status.code() {
        Some(0 | 1) => Ok(seconds),
        _ => Err(format!(
            "datavista validate failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )),
    }
}
