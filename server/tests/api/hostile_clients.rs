//! Hostile clients: slow or lying HTTP, huge headers, schema bombs, patterns built to be slow,
//! WebSocket floods and broken frames, thousands of tiny uploads. Each gets a clear answer,
//! and the server keeps serving everyone else. (Aborted uploads with a lying Content-Length,
//! hostile file names, garbage and oversized frames and foreign origins are in the `uploads`
//! and `websocket` modules; other owners' ids in `access`.)

use std::time::{Duration, Instant};

use datavista_shared::http::{JobPage, SchemaInfo};
use datavista_testkit::{created_id, error_body, Auth, Client, TestServer, PATIENCE};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

fn cookie(client: &Client) -> &str {
    match &client.auth {
        Auth::Cookie(cookie) => cookie,
        Auth::Bearer(_) => unreachable!("sessions use cookies"),
    }
}

/// Read until the server closes the connection; what it said before closing.
async fn read_until_closed(tcp: &mut tokio::net::TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buffer = [0; 4096];
    loop {
        match tokio::time::timeout(PATIENCE, tcp.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return String::from_utf8_lossy(&answer).into_owned(),
            Ok(Ok(n)) => answer.extend_from_slice(&buffer[..n]),
            Err(_) => panic!("the server kept the connection open past {PATIENCE:?}"),
        }
    }
}

#[tokio::test]
async fn a_request_whose_headers_never_end_is_cut_off() {
    let server = TestServer::start(&[]);
    let mut tcp = tokio::net::TcpStream::connect(&server.address)
        .await
        .unwrap();
    // Slowloris: a request line and one header, then nothing more, ever.
    tcp.write_all(b"GET /api/session HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut tcp).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    server.assert_healthy().await;
}

#[tokio::test]
async fn huge_headers_are_refused() {
    let server = TestServer::start(&[]);
    let response = reqwest::Client::new()
        .get(server.url("/api/session"))
        .header("x-padding", "a".repeat(200_000))
        .send()
        .await;
    match response {
        Ok(response) => assert!(
            [400, 431].contains(&response.status().as_u16()),
            "{}",
            response.status()
        ),
        Err(e) => assert!(e.is_request() || e.is_connect() || e.is_body(), "{e}"),
    }
    server.assert_healthy().await;
}

#[tokio::test]
async fn a_body_longer_than_its_content_length_leaves_no_file_and_no_stuck_job() {
    let server = TestServer::start(&[]);
    let ada = server.session().await;
    let boundary = "XyZboundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"short.csv\"\r\nContent-Type: text/csv\r\n\r\na,b\n1,2\n3,4\n5,6\n\r\n--{boundary}--\r\n"
    );
    let head = format!(
        "POST /api/uploads HTTP/1.1\r\nHost: {}\r\nCookie: {}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
        server.address,
        cookie(&ada),
        body.len() / 2
    );
    let mut tcp = tokio::net::TcpStream::connect(&server.address)
        .await
        .unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(body.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    for job in ada.jobs().await.uploads {
        let job = ada.wait_final(&job.id).await;
        assert_ne!(
            job.state,
            datavista_shared::protocol::JobState::Valid,
            "{job:?}"
        );
    }
    assert!(
        server.stored_uploads_settled().is_empty(),
        "{:?}",
        server.stored_uploads_settled()
    );
}

#[tokio::test]
async fn schema_bombs_get_clear_errors() {
    let server = TestServer::start(&[]);
    let ada = server.session().await;
    let post = |body: Vec<u8>| {
        ada.request(reqwest::Method::POST, "/api/schemas?name=bomb")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let response = post(deep.into_bytes()).await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(error_body(response).await.code, "invalid_schema");

    let response = post(vec![b' '; 2 << 20]).await.unwrap();
    assert_eq!(response.status(), 413);

    // A pattern whose compiled program would be enormous is refused, not compiled.
    let huge_pattern =
        r#"{"fields": [{"name": "a", "constraints": {"pattern": "(?:a{1000}){1000}"}}]}"#;
    let response = post(huge_pattern.into()).await.unwrap();
    assert_eq!(response.status(), 400);
    let message = error_body(response).await.message;
    assert!(message.contains("pattern"), "{message}");

    // A big but honest schema is fine: 20,000 fields, a 50,000-value enum.
    let fields: Vec<Value> = (0..20_000)
        .map(|i| serde_json::json!({"name": format!("f{i}")}))
        .collect();
    let values: Vec<String> = (0..50_000).map(|i| format!("v{i}")).collect();
    let mut wide = serde_json::json!({ "fields": fields });
    wide["fields"][0]["constraints"] = serde_json::json!({ "enum": values });
    let response = post(wide.to_string().into_bytes()).await.unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    server.assert_healthy().await;
}

#[tokio::test]
async fn patterns_built_to_backtrack_run_in_linear_time() {
    let server = TestServer::start(&[]);
    let ada = server.session().await;
    // Catastrophic for a backtracking engine: 2^n paths on a run of 'a' with no match.
    let schema = r#"{"fields": [{"name": "s", "constraints": {"pattern": "(a|aa)+b|(a+)+c"}}]}"#;
    let response = ada
        .request(reqwest::Method::POST, "/api/schemas?name=evil")
        .header("content-type", "application/json")
        .body(schema)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let schema_id = &response.json::<SchemaInfo>().await.unwrap().id;
    let mut csv = b"s\n".to_vec();
    for _ in 0..200 {
        csv.extend(std::iter::repeat_n(b'a', 5_000));
        csv.push(b'\n');
    }
    let response = ada.upload(Some(schema_id), &[("evil.csv", csv)]).await;
    let job = ada.wait_final(&created_id(response).await).await;
    assert_eq!(job.state, datavista_shared::protocol::JobState::Invalid);
    assert_eq!(job.progress.errors, 200, "{job:?}");
}

#[tokio::test]
async fn a_text_frame_that_is_not_utf8_closes_that_socket_only() {
    let server = TestServer::start(&[]);
    let ada = server.session().await;
    let mut other_tab = ada.socket("").await;
    other_tab.greeting().await;
    let mut socket = ada.socket("").await;
    socket.greeting().await;
    let frame = Frame::message(vec![0xC3, 0x28, 0xFF], OpCode::Data(Data::Text), true);
    socket.send_raw(Message::Frame(frame)).await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout(PATIENCE, socket.stream.next()).await {
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => break,
            Ok(Some(Ok(_))) => assert!(Instant::now() < deadline, "never closed"),
            Err(_) => panic!("a broken text frame was neither answered nor closed"),
        }
    }
    other_tab
        .send(&datavista_shared::protocol::ClientMessage::Ping { nonce: 9 })
        .await;
    let pong = other_tab.next().await;
    assert!(
        matches!(
            pong,
            datavista_shared::protocol::ServerMessage::Pong { nonce: 9, .. }
        ),
        "{pong:?}"
    );
}

#[tokio::test]
async fn a_client_that_floods_and_never_reads_cannot_grow_server_memory() {
    let server = TestServer::start(&[]);
    let ada = server.session().await;
    let before = server.peak_rss_bytes();
    let mut flooder = ada.socket("").await;
    flooder.greeting().await;
    let ping = datavista_shared::protocol::ClientMessage::Ping { nonce: 1 }.to_json();
    // Each ping asks for a pong the flooder never reads; once the server's send buffer is full
    // it stops reading, and the flooder's own writes stall: bounded on both sides.
    let flood = async {
        for _ in 0..200_000 {
            if flooder
                .stream
                .send(Message::text(ping.clone()))
                .await
                .is_err()
            {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), flood).await;
    let grown = server.peak_rss_bytes().saturating_sub(before);
    assert!(grown < 64 << 20, "server peak RSS grew {} MiB", grown >> 20);
    let bob = server.session().await;
    let mut tab = bob.socket("").await;
    tab.greeting().await;
    server.assert_healthy().await;
}

#[tokio::test]
async fn ten_thousand_tiny_uploads_are_each_accepted_or_told_to_wait() {
    let server = TestServer::start(&[]);
    let ada = server.session().await;
    let (mut accepted, mut told_to_wait) = (Vec::new(), 0);
    let uploads = futures_util::stream::iter(0..10_000)
        .map(|i| {
            let ada = ada.clone();
            async move {
                ada.upload(None, &[(&format!("tiny-{i}.csv"), b"a\n1\n".to_vec())])
                    .await
            }
        })
        .buffer_unordered(16);
    futures_util::pin_mut!(uploads);
    while let Some(response) = uploads.next().await {
        match response.status().as_u16() {
            201 => accepted.push(created_id(response).await),
            429 => {
                assert!(response.headers().contains_key("retry-after"));
                told_to_wait += 1;
            }
            other => panic!("unexpected {other}: {}", response.text().await.unwrap()),
        }
    }
    assert_eq!(accepted.len() + told_to_wait, 10_000);
    assert!(accepted.len() >= 1_000, "only {} accepted", accepted.len());
    for id in accepted.iter().rev().take(50) {
        assert!(ada.wait_final(id).await.state.is_final());
    }
    let list: JobPage = ada.get_typed("/api/uploads?limit=1").await;
    assert_eq!(
        list.total,
        accepted.len() as u64,
        "every accepted upload is listed once"
    );
    eprintln!(
        "10,000 tiny uploads: {} accepted, {told_to_wait} told to wait",
        accepted.len()
    );
}
