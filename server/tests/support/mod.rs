//! Test support: the real `datavista serve` binary on 127.0.0.1:0 with a temp data dir, a
//! real HTTP client and real WebSocket clients.
#![allow(dead_code)]

pub mod postgres;
pub mod redis;
pub mod s3;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use datavista_shared::protocol::{ClientMessage, Job, JobState, ServerMessage};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// Every wait in these tests gives up after this long.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub struct TestServer {
    process: Child,
    pub address: String,
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl TestServer {
    pub fn start(extra: &[&str]) -> TestServer {
        let temp = tempfile::tempdir().unwrap();
        let data_dir = temp.path().join("data");
        let mut server = TestServer::start_in(&data_dir, extra);
        server._temp = Some(temp);
        server
    }

    /// Start on an existing data dir (to test restarts); the caller keeps the dir alive.
    pub fn start_in(data_dir: &Path, extra: &[&str]) -> TestServer {
        TestServer::start_with_env(data_dir, extra, &[])
    }

    /// As [`TestServer::start_in`], with environment variables (e.g. `AWS_*` for S3).
    pub fn start_with_env(
        data_dir: &Path,
        extra: &[&str],
        env: &[(&'static str, String)],
    ) -> TestServer {
        TestServer::spawn(data_dir, extra, env, Stdio::inherit())
    }

    /// As [`TestServer::start_in`], with what the server writes to stderr (its log, a panic)
    /// going to the file `log`, for the test to read.
    pub fn start_logging_to(data_dir: &Path, extra: &[&str], log: &Path) -> TestServer {
        let file = std::fs::File::create(log).expect("the log file can be made");
        TestServer::spawn(data_dir, extra, &[], Stdio::from(file))
    }

    fn spawn(
        data_dir: &Path,
        extra: &[&str],
        env: &[(&'static str, String)],
        stderr: Stdio,
    ) -> TestServer {
        let mut process = Command::new(env!("CARGO_BIN_EXE_datavista"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(["--log", "warn"])
            .args(if extra.contains(&"--dist-dir") {
                &[][..]
            } else {
                &["--dist-dir", "/nonexistent-dist"][..]
            })
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("the server binary starts");
        let stdout = process.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the server prints its address");
        let address = line
            .trim()
            .strip_prefix("DataVista listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        TestServer {
            process,
            address,
            data_dir: data_dir.to_owned(),
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
        let owner = response.json::<serde_json::Value>().await.unwrap()["owner"]
            .as_str()
            .unwrap()
            .to_owned();
        Client {
            http,
            base: self.url(""),
            auth: Auth::Cookie(cookie),
            owner,
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
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.process.id()))
            .expect("the server process is alive");
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("/proc/PID/status has VmHWM");
        kib * 1024
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

#[derive(Clone)]
pub enum Auth {
    Cookie(String),
    Bearer(String),
}

#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub auth: Auth,
    pub owner: String,
}

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

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base));
        match &self.auth {
            Auth::Cookie(cookie) => builder.header("cookie", cookie),
            Auth::Bearer(token) => builder.bearer_auth(token),
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
    }

    /// GET `path` and read its JSON body.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        self.get(path).await.json().await.unwrap()
    }

    /// Add a user schema (Table Schema JSON) by `name`; returns its id.
    pub async fn add_schema(&self, name: &str, schema: &str) -> String {
        let response = self
            .request(reqwest::Method::POST, &format!("/api/schemas?name={name}"))
            .header("content-type", "application/json")
            .body(schema.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "the schema {name} is added");
        let added: serde_json::Value = response.json().await.unwrap();
        added["id"].as_str().unwrap().to_owned()
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::DELETE, path)
            .send()
            .await
            .unwrap()
    }

    /// Upload files (name, bytes) with an optional schema id; returns the response.
    pub async fn upload(
        &self,
        schema: Option<&str>,
        files: &[(&str, Vec<u8>)],
    ) -> reqwest::Response {
        let mut form = reqwest::multipart::Form::new();
        for (name, bytes) in files {
            form = form.part(
                "file",
                reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.to_string()),
            );
        }
        let path = match schema {
            Some(id) => format!("/api/uploads?schema={id}"),
            None => "/api/uploads".to_owned(),
        };
        self.request(reqwest::Method::POST, &path)
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    pub async fn job(&self, id: &str) -> Job {
        let response = self.get(&format!("/api/uploads/{id}")).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Poll until the job is final (only used where no socket is open, e.g. across restarts).
    pub async fn wait_final(&self, id: &str) -> Job {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let job = self.job(id).await;
            if job.state.is_final() {
                return job;
            }
            assert!(Instant::now() < deadline, "job {id} stayed {:?}", job.state);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

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

pub fn people_csv(rows: usize, bad_every: usize) -> Vec<u8> {
    let mut csv = String::from("id,name,email,age,joined\n");
    for i in 1..=rows {
        let age = if bad_every > 0 && i % bad_every == 0 {
            "x".to_owned()
        } else {
            (i % 90).to_string()
        };
        csv.push_str(&format!(
            "{i},Person {i},p{i}@example.org,{age},2024-01-{:02}\n",
            i % 28 + 1
        ));
    }
    csv.into_bytes()
}

/// The id of the first file a 201 upload response accepted.
pub async fn created_id(response: reqwest::Response) -> String {
    created_ids(response).await.remove(0)
}

/// The ids of every file a 201 upload response accepted, in the order they were sent.
pub async fn created_ids(response: reqwest::Response) -> Vec<String> {
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    body["uploads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect()
}

/// `datavista token ARGS… --data-dir DIR`, with `stdin` on its standard input.
pub fn token_command(data_dir: &Path, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut command = Command::new(env!("CARGO_BIN_EXE_datavista"))
        .arg("token")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = command.stdin.take().unwrap();
    let _ = input.write_all(stdin.as_bytes()); // a command that reads nothing may be gone
    drop(input);
    command.wait_with_output().unwrap()
}

/// `datavista token revoke --token-file -`, the token on standard input; its exit code.
pub fn revoke_token(data_dir: &Path, token: &str) -> Option<i32> {
    token_command(data_dir, &["revoke", "--token-file", "-"], token)
        .status
        .code()
}

pub fn create_token(data_dir: &Path, owner: Option<&str>) -> String {
    match owner {
        Some(owner) => create_token_with(data_dir, &["--owner", owner]),
        None => create_token_with(data_dir, &[]),
    }
}

/// `datavista token create --data-dir DIR EXTRA…` (e.g. `--database-url URL`).
pub fn create_token_with(data_dir: &Path, extra: &[&str]) -> String {
    let output = token_command(data_dir, &[&["create"], extra].concat(), "");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
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
