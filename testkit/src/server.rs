//! [`TestServer`]: zero2prod's `spawn_app()` for DataVista. The real binary on 127.0.0.1:0
//! with a temp data dir, killed on drop; what a test reads from outside it (the uploads folder,
//! `/metrics`, its peak memory); and the ways it stops.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use datavista_shared::http::Session;

use crate::client::{Auth, Client};
use crate::spawn::{binary, proc_status_kib, Launch};
use crate::PATIENCE;

pub struct TestServer {
    process: Child,
    /// `HOST:PORT`, as the server printed it.
    pub address: String,
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl TestServer {
    /// A server on a fresh temp data dir, with more `serve` flags.
    pub fn start(extra: &[&str]) -> TestServer {
        let temp = tempfile::tempdir().unwrap();
        let data_dir = temp.path().join("data");
        let mut server = TestServer::start_in(&data_dir, extra);
        server._temp = Some(temp);
        server
    }

    /// Start on an existing data dir (to test restarts); the caller keeps the dir alive.
    pub fn start_in(data_dir: &Path, extra: &[&str]) -> TestServer {
        TestServer::launch(TestServer::launcher(data_dir, extra))
    }

    /// As [`TestServer::start_in`], with environment variables (e.g. `AWS_*` for S3).
    pub fn start_with_env(
        data_dir: &Path,
        extra: &[&str],
        env: &[(&'static str, String)],
    ) -> TestServer {
        let launch = env
            .iter()
            .fold(TestServer::launcher(data_dir, extra), |launch, (k, v)| {
                launch.env(k, v)
            });
        TestServer::launch(launch)
    }

    /// As [`TestServer::start_in`], with what the server writes to stderr (its log, a panic)
    /// going to the file `log`, for the test to read.
    pub fn start_logging_to(data_dir: &Path, extra: &[&str], log: &Path) -> TestServer {
        let file = std::fs::File::create(log).expect("the log file can be made");
        TestServer::launch(TestServer::launcher(data_dir, extra).log_to(file))
    }

    /// The test binary's server on `data_dir` with `extra` flags, to adjust before
    /// [`TestServer::launch`].
    pub fn launcher(data_dir: &Path, extra: &[&str]) -> Launch {
        Launch::new(binary(), data_dir).args(extra)
    }

    /// Start what `launch` describes; the caller keeps its data dir alive.
    pub fn launch(launch: Launch) -> TestServer {
        let (process, base) = launch.spawn().expect("the server binary starts");
        TestServer {
            process,
            address: base
                .strip_prefix("http://")
                .unwrap_or_else(|| panic!("unexpected address {base:?}"))
                .to_owned(),
            data_dir: launch.data_dir,
            _temp: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// A new anonymous browser session.
    pub async fn session(&self) -> Client {
        let http = reqwest::Client::new();
        let response = http.get(self.url("/api/session")).send().await.unwrap();
        let cookie = response
            .headers()
            .get("set-cookie")
            .expect("a session cookie")
            .to_str()
            .unwrap();
        let cookie = cookie.split(';').next().unwrap().to_owned();
        let session: Session = response.json().await.unwrap();
        Client {
            http,
            base: self.url(""),
            auth: Auth::Cookie(cookie),
            owner: session.owner,
        }
    }

    /// Files in the uploads folder (only server-made names may ever appear there).
    pub fn stored_uploads(&self) -> Vec<String> {
        match std::fs::read_dir(self.data_dir.join("uploads")) {
            Ok(entries) => entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Wait (up to [`PATIENCE`]) until `count` files are arriving in the uploads folder: the
    /// uploads are under way.
    pub async fn wait_for_stored_uploads(&self, count: usize) {
        let deadline = Instant::now() + PATIENCE;
        while self.stored_uploads().len() < count {
            assert!(Instant::now() < deadline, "the uploads never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The uploads folder once the server has cleaned up: a job's file goes just after its
    /// final state is stored, so this waits (up to 2 s) for the folder to empty.
    pub fn stored_uploads_settled(&self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let left = self.stored_uploads();
            if left.is_empty() || Instant::now() >= deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server still answers its health check.
    pub async fn assert_healthy(&self) {
        let response = reqwest::get(self.url("/healthz")).await.unwrap();
        assert_eq!(response.status(), 200, "the server is unhealthy");
    }

    /// The server's peak resident memory so far (VmHWM), in bytes.
    pub fn peak_rss_bytes(&self) -> u64 {
        proc_status_kib(self.process.id(), "VmHWM:").expect("/proc/PID/status has VmHWM") * 1024
    }

    pub fn kill(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.process.id().to_string()])
            .status();
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.process.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Clients of a running server: here, beside the server they talk to, so the client knows
/// nothing of how servers are started.
impl Client {
    pub fn with_token(server: &TestServer, token: &str) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: server.url(""),
            auth: Auth::Bearer(token.to_owned()),
            owner: String::new(),
        }
    }

    /// The same owner and credentials, talking to another server (a restart, another node).
    pub fn on(&self, server: &TestServer) -> Client {
        Client {
            http: self.http.clone(),
            base: server.url(""),
            auth: self.auth.clone(),
            owner: self.owner.clone(),
        }
    }
}

/// Start a multipart upload of `cut.csv` by a cookie-session client over a raw connection,
/// announcing more bytes than `bytes` and sending only those: the request stays open until
/// the returned connection is dropped (an upload the client abandons).
pub async fn begin_unfinished_upload(
    server: &TestServer,
    client: &Client,
    bytes: &[u8],
) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let Auth::Cookie(cookie) = &client.auth else {
        panic!("a browser session's client")
    };
    let mut tcp = tokio::net::TcpStream::connect(&server.address)
        .await
        .unwrap();
    let boundary = "XyZboundary";
    let announced = bytes.len() * 2 + 1000;
    let head = format!(
        "POST /api/uploads HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {announced}\r\n\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cut.csv\"\r\nContent-Type: text/csv\r\n\r\n",
        server.address
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    tcp.flush().await.unwrap();
    tcp
}
