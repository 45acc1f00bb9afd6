//! Hostile input that is cheap to send and was expensive to receive (issue #26): each attack
//! gets a fast refusal or a bounded cost, measured against the real server (its peak memory,
//! its time against a benign baseline in the same test, the size of what it stores), while a
//! bystander's `/healthz` keeps answering within a second.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datavista_shared::protocol::JobState;
use datavista_testkit::{begin_unfinished_upload, created_id, error_body, Client, TestServer};
use serde_json::{json, Value};

/// Someone else using the server during an attack: `/healthz` every 50 ms.
struct Bystander {
    stop: Arc<AtomicBool>,
    slowest_ms: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Bystander {
    fn watch(server: &TestServer) -> Bystander {
        let (stop, slowest_ms) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let url = server.url("/healthz");
        let (stopping, slowest) = (stop.clone(), slowest_ms.clone());
        let task = tokio::spawn(async move {
            let http = reqwest::Client::new();
            while !stopping.load(Ordering::Relaxed) {
                let asked = Instant::now();
                let answer = tokio::time::timeout(Duration::from_secs(5), http.get(&url).send());
                let ok = matches!(answer.await, Ok(Ok(r)) if r.status() == 200);
                let took = if ok {
                    asked.elapsed().as_millis() as u64
                } else {
                    u64::MAX
                };
                slowest.fetch_max(took, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Bystander {
            stop,
            slowest_ms,
            task,
        }
    }

    async fn assert_served_within_a_second(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        let slowest = self.slowest_ms.load(Ordering::Relaxed);
        assert!(
            slowest < 1_000,
            "the bystander waited {slowest} ms for /healthz"
        );
    }
}

async fn add_schema(client: &Client, schema: &Value) -> reqwest::Response {
    client
        .request(reqwest::Method::POST, "/api/schemas")
        .header("content-type", "application/json")
        .body(schema.to_string())
        .send()
        .await
        .unwrap()
}

async fn message(response: reqwest::Response) -> String {
    error_body(response).await.message
}

#[tokio::test]
async fn a_long_missing_values_list_costs_little_memory_and_past_its_limit_is_refused() {
    let server = TestServer::start(&[]);
    let client = server.session().await;
    let bystander = Bystander::watch(&server);
    let fields: Vec<_> = (0..3_000)
        .map(|i| json!({ "name": format!("f{i}") }))
        .collect();
    let missing = |n: usize| (0..n).map(|i| format!("n/a{i}")).collect::<Vec<_>>();
    let before = server.peak_rss_bytes();
    let allowed = json!({ "fields": fields, "missingValues": missing(1_000) });
    for _ in 0..3 {
        assert_eq!(add_schema(&client, &allowed).await.status(), 201);
    }
    let grown = server.peak_rss_bytes() - before;
    eprintln!(
        "figure: three 3,000-field schemas with 1,000 missing values grew peak RSS by {} KiB",
        grown >> 10
    );
    // Copied into every field, each of these schemas took over 100 MB (8,000 values: 2.1 GB).
    assert!(
        grown < 64 << 20,
        "three schemas grew the server by {grown} bytes"
    );
    let asked = Instant::now();
    let refused = add_schema(
        &client,
        &json!({ "fields": fields, "missingValues": missing(8_000) }),
    )
    .await;
    eprintln!(
        "figure: 8,000 missing values refused in {:?}",
        asked.elapsed()
    );
    assert_eq!(refused.status(), 400);
    assert_eq!(
        message(refused).await,
        "'missingValues' has 8000 entries; at most 1000 are allowed"
    );
    bystander.assert_served_within_a_second().await;
}

#[tokio::test]
async fn schema_limits_are_refused_by_name_and_oversized_bodies_with_413() {
    let server = TestServer::start(&[]);
    let client = server.session().await;
    let long_title = json!({ "fields": [{ "name": "a", "title": "t".repeat(10_001) }] });
    let refused = add_schema(&client, &long_title).await;
    assert_eq!(refused.status(), 400);
    assert_eq!(
        message(refused).await,
        "field 'a': 'title' is longer than 10000 characters, the most allowed"
    );
    let patterns: Vec<_> = (0..65)
        .map(|i| json!({ "name": format!("p{i}"), "constraints": {"pattern": "[a-z]+"} }))
        .collect();
    let refused = add_schema(&client, &json!({ "fields": patterns })).await;
    assert_eq!(refused.status(), 400);
    assert!(message(refused)
        .await
        .contains("more than 64 fields with a 'pattern'"));
    let huge = json!({ "fields": [{ "name": "a", "description": "x".repeat(2 << 20) }] });
    assert_eq!(add_schema(&client, &huge).await.status(), 413);
}

#[tokio::test]
async fn patterns_are_compiled_once_when_added_not_on_every_request() {
    let server = TestServer::start(&[]);
    let client = server.session().await;
    // Forty DFAs that are expensive to build (each `.*a.{14}` has thousands of states).
    let fields: Vec<_> = (0..40)
        .map(|i| json!({ "name": format!("p{i}"), "constraints": {"pattern": format!("x{i}|.*a.{{14}}")} }))
        .collect();
    let id = client
        .add_schema("patterns", &json!({ "fields": fields }).to_string())
        .await;
    let time = |path: String| {
        let client = client.clone();
        async move {
            let started = Instant::now();
            for _ in 0..10 {
                assert_eq!(client.get(&path).await.status(), 200);
            }
            started.elapsed()
        }
    };
    // The baseline: the same schema's JSON, which costs nothing to serve.
    let plain = time(format!("/api/schemas/{id}")).await;
    let patterns = time(format!("/api/schemas/{id}/patterns")).await;
    eprintln!("figure: 10 x /patterns {patterns:?}, 10 x the schema's JSON {plain:?}");
    // Rebuilt per request, the DFAs cost ~0.3 s each time, against milliseconds.
    assert!(
        patterns < 5 * plain + Duration::from_millis(100),
        "/patterns took {patterns:?} for 10 requests, the schema itself {plain:?}"
    );
}

#[tokio::test]
async fn concurrent_schema_adds_never_pass_the_cap() {
    let server = TestServer::start(&[]);
    let client = server.session().await;
    let adds: Vec<_> = (0..220)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let schema = json!({ "fields": [{ "name": format!("f{i}") }] });
                add_schema(&client, &schema).await.status().as_u16()
            })
        })
        .collect();
    let mut created = 0;
    for add in adds {
        match add.await.unwrap() {
            201 => created += 1,
            400 => {}
            other => panic!("an add answered {other}"),
        }
    }
    assert_eq!(created, 200);
    let listed = client.schemas().await;
    let own = listed.schemas.iter().filter(|s| !s.shared).count();
    assert_eq!(own, 200);
}

/// 200,000 rows, each failing the enum.
fn failing_rows() -> Vec<u8> {
    let mut csv = b"code\n".to_vec();
    for i in 0..200_000 {
        csv.extend_from_slice(format!("nope{i}\n").as_bytes());
    }
    csv
}

#[tokio::test]
async fn a_huge_enum_validates_about_as_fast_as_a_small_one_with_a_bounded_report() {
    let server = TestServer::start(&[]);
    let client = server.session().await;
    let csv = failing_rows();
    let mut took = Vec::new();
    for values in [3, 20_000] {
        let allowed: Vec<_> = (0..values).map(|i| format!("code-{i:05}")).collect();
        let schema = json!({ "fields": [{ "name": "code", "constraints": {"enum": allowed}}] });
        let id = client.add_schema("codes", &schema.to_string()).await;
        let started = Instant::now();
        let job_id = created_id(
            client
                .upload(Some(&id), &[("codes.csv", csv.clone())])
                .await,
        )
        .await;
        let job = client.wait_final(&job_id).await;
        took.push(started.elapsed());
        assert_eq!(job.state, JobState::Invalid);
        assert_eq!(job.progress.errors, 200_000);
        let report = client
            .get(&format!("/api/uploads/{job_id}/report.json"))
            .await;
        let report = report.bytes().await.unwrap();
        // 1,000 sampled errors, each message cut: it was 300 MB with the whole list in each.
        assert!(
            report.len() < 1 << 20,
            "the report is {} bytes",
            report.len()
        );
        eprintln!(
            "figure: enum of {values}: verdict in {:?}, report {} KiB",
            took.last().unwrap(),
            report.len() >> 10
        );
    }
    let (small, huge) = (took[0], took[1]);
    assert!(
        huge < 3 * small + Duration::from_millis(500),
        "20,000 values: {huge:?}; 3 values: {small:?}"
    );
}

#[tokio::test]
async fn a_megabyte_header_label_is_cut_in_every_message() {
    let server = TestServer::start(&[]);
    let client = server.session().await;
    let label = "L".repeat(1 << 20);
    let csv = format!("id,{label}\n1,2\n");
    let job_id = created_id(
        client
            .upload(Some("people"), &[("wide.csv", csv.into_bytes())])
            .await,
    )
    .await;
    let job = client.wait_final(&job_id).await;
    assert_eq!(job.state, JobState::Invalid);
    let report = client
        .get(&format!("/api/uploads/{job_id}/report.json"))
        .await
        .bytes()
        .await
        .unwrap();
    assert!(
        report.len() < 64 << 10,
        "the report is {} bytes",
        report.len()
    );
    eprintln!(
        "figure: a 1 MiB label gives a report of {} bytes",
        report.len()
    );
}

#[tokio::test]
async fn new_sessions_from_one_address_are_limited_per_minute() {
    let server = TestServer::start(&[
        "--new-sessions-per-minute",
        "5",
        "--trusted-proxies",
        "127.0.0.1",
    ]);
    let http = reqwest::Client::new();
    let session = |forwarded_for: Option<&'static str>| {
        let mut request = http.get(server.url("/api/session"));
        if let Some(address) = forwarded_for {
            request = request.header("x-forwarded-for", address);
        }
        async move { request.send().await.unwrap() }
    };
    for _ in 0..5 {
        assert_eq!(session(None).await.status(), 200);
    }
    let refused = session(None).await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=60).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    assert!(message(refused)
        .await
        .starts_with("too many new sessions from your address"));
    // Behind a trusted proxy, each client its own allowance.
    assert_eq!(session(Some("203.0.113.9")).await.status(), 200);
    // A session already made is not a new one; nor is a token holder.
    let token = datavista_testkit::create_token(&server.data_dir, None);
    let with_token = Client::with_token(&server, &token);
    assert_eq!(with_token.get("/api/uploads").await.status(), 200);
    server.assert_healthy().await;
}

#[tokio::test]
async fn new_owners_cannot_pass_the_servers_upload_and_connection_limits() {
    let server = TestServer::start(&["--max-uploads", "2", "--max-connections", "2"]);
    let mut open = Vec::new();
    for _ in 0..2 {
        let owner = server.session().await;
        open.push(begin_unfinished_upload(&server, &owner, b"id,name\n1,a\n").await);
    }
    let third = server.session().await;
    server.wait_for_stored_uploads(2).await;
    let refused = third.upload(None, &[("a.csv", b"id\n1\n".to_vec())]).await;
    assert_eq!(refused.status(), 429);
    assert!(message(refused)
        .await
        .starts_with("the server is receiving as many files"));
    drop(open);
    let _first = server.session().await.socket("").await;
    let _second = server.session().await.socket("").await;
    let refused = server
        .session()
        .await
        .socket_with_origin("", None)
        .await
        .err()
        .expect("a third connection is refused")
        .to_string();
    assert!(refused.contains("429"), "{refused}");
    server.assert_healthy().await;
}

#[tokio::test]
async fn new_owners_cannot_pass_the_servers_limit_of_unfinished_jobs() {
    let server = TestServer::start(&["--max-unfinished-jobs", "1"]);
    let first = server.session().await;
    let _open = begin_unfinished_upload(&server, &first, b"id,name\n1,a\n").await;
    server.wait_for_stored_uploads(1).await;
    let second = server.session().await;
    let refused = second.upload(None, &[("a.csv", b"id\n1\n".to_vec())]).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(
        message(refused).await,
        "the server has as many files waiting as it takes; try again in a moment"
    );
}

#[tokio::test]
async fn an_upload_that_dribbles_past_its_deadline_is_failed() {
    let server = TestServer::start(&["--upload-deadline-secs", "2"]);
    let client = server.session().await;
    let mut tcp = begin_unfinished_upload(&server, &client, b"id,name\n").await;
    // A byte every half second: never idle long enough for the idle guard.
    let started = Instant::now();
    let mut answer = Vec::new();
    loop {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        assert!(
            started.elapsed() < datavista_testkit::PATIENCE,
            "the upload was never cut off"
        );
        if tcp.write_all(b"1").await.is_err() {
            break;
        }
        let mut buffer = [0; 4096];
        match tokio::time::timeout(Duration::from_millis(500), tcp.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buffer[..n]),
            Err(_) => {}
        }
        if !answer.is_empty() {
            break;
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let jobs = client.jobs().await;
    let job = &jobs.uploads[0];
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(
        job.reason.as_deref(),
        Some("the upload took longer than the 0 minutes allowed")
    );
}

#[tokio::test]
async fn sigterm_while_a_file_arrives_ends_its_upload_cleanly() {
    let temp = tempfile::tempdir().unwrap();
    let (data_dir, log) = (temp.path().join("data"), temp.path().join("server.log"));
    let mut server = TestServer::start_logging_to(&data_dir, &[], &log);
    let client = server.session().await;
    let _tcp =
        begin_unfinished_upload(&server, &client, &datavista_testkit::people_csv(1_000, 0)).await;
    server.wait_for_stored_uploads(1).await;
    assert!(server.terminate().success());
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(!log.contains("panicked"), "{log}");
    // The job says what happened before anything restarts.
    let db = rusqlite::Connection::open(data_dir.join("datavista.sqlite3")).unwrap();
    let (state, reason): (String, String) = db
        .query_row("SELECT state, reason FROM jobs", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .unwrap();
    assert_eq!(state, "failed");
    assert_eq!(
        reason,
        "the server stopped while the file was uploading; upload it again"
    );
    assert!(
        server.stored_uploads().is_empty(),
        "the partial file is removed"
    );
}

#[tokio::test]
async fn an_owner_keeps_the_newest_finished_jobs_and_tabs_see_the_oldest_go() {
    let server = TestServer::start(&["--finished-jobs-per-owner", "3"]);
    let client = server.session().await;
    let mut socket = client.socket("").await;
    socket.greeting().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let file = (format!("f{i}.csv"), b"a\n1\n".to_vec());
        let id = created_id(client.upload(None, &[(&file.0, file.1)]).await).await;
        client.wait_final(&id).await;
        ids.push(id);
    }
    let listed = client.jobs().await;
    let kept: Vec<_> = listed.uploads.into_iter().map(|job| job.id).collect();
    assert_eq!(kept, [ids[4].clone(), ids[3].clone(), ids[2].clone()]);
    let mut removed = Vec::new();
    while removed.len() < 2 {
        if let datavista_shared::protocol::ServerMessage::JobRemoved { job_id, .. } =
            socket.next().await
        {
            removed.push(job_id);
        }
    }
    assert_eq!(removed, ids[..2]);
    let gone = client
        .get(&format!("/api/uploads/{}/report.json", ids[0]))
        .await;
    assert_eq!(gone.status(), 404);
}

#[tokio::test]
async fn a_client_asking_for_snapshots_in_a_loop_gets_one_a_second() {
    use datavista_shared::protocol::{ClientMessage, ServerMessage};
    let server = TestServer::start(&[]);
    let client = server.session().await;
    let mut socket = client.socket("").await;
    socket.greeting().await;
    let started = Instant::now();
    for _ in 0..4 {
        socket.send(&ClientMessage::Resume { last_seq: None }).await;
    }
    let mut snapshots = 0;
    while snapshots < 4 {
        if let ServerMessage::Snapshot { last: true, .. } = socket.next().await {
            snapshots += 1;
        }
    }
    // The first at once, then one a second: each reads every job of the owner.
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "four snapshots in {:?}",
        started.elapsed()
    );
}

/// Send `head` and `body` on a raw connection as `client`, then nothing more; what the server
/// answers before it closes, within `wait`.
async fn stall_after(
    server: &TestServer,
    client: &Client,
    head: &str,
    body: &[u8],
    wait: Duration,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let datavista_testkit::Auth::Cookie(cookie) = &client.auth else {
        panic!("a browser session's client")
    };
    let mut tcp = tokio::net::TcpStream::connect(&server.address)
        .await
        .unwrap();
    let head = head
        .replace("{host}", &server.address)
        .replace("{cookie}", cookie);
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, tcp.read(&mut buffer)).await {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_schema_body_that_stalls_gets_408_after_30_seconds() {
    let server = TestServer::start(&[]);
    let client = server.session().await;
    let started = Instant::now();
    let answer = stall_after(
        &server,
        &client,
        "POST /api/schemas HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
        b"{\"fields\": [",
        Duration::from_secs(90),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("the schema did not arrive within 30 seconds"),
        "{answer}"
    );
    assert!(started.elapsed() >= Duration::from_secs(30));
    server.assert_healthy().await;
}

#[tokio::test]
async fn a_form_field_that_stalls_gets_408_and_holds_nothing() {
    let server = TestServer::start(&[]);
    let client = server.session().await;
    let body = b"--B\r\nContent-Disposition: form-data; name=\"schema\"\r\n\r\npeo";
    let answer = stall_after(
        &server,
        &client,
        "POST /api/uploads HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nContent-Type: multipart/form-data; boundary=B\r\nContent-Length: 100000\r\n\r\n",
        body,
        Duration::from_secs(120),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("a text field of the form did not arrive in time"),
        "{answer}"
    );
    assert_eq!(client.jobs().await.total, 0, "no job was made");
}
