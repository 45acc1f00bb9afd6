//! The server end to end: the real binary, real HTTP uploads, real WebSocket clients.

mod support;

use std::time::Duration;

use bytes::Bytes;
use datavista_shared::protocol::{ClientMessage, JobState, ProtocolErrorCode, ServerMessage};
use futures_util::StreamExt;
use serde_json::Value;
use support::{
    create_token, created_id, created_ids, people_csv, revoke_token, Client, Socket, TestServer,
    PATIENCE,
};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// States must appear in the life-cycle order (some may be skipped when work is fast).
fn assert_life_cycle(states: &[JobState], last: JobState) {
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

#[tokio::test]
async fn valid_and_invalid_files_report_every_state_live() {
    let server = TestServer::start(&[]);
    let ada = server.session().await;
    let mut socket = ada.socket("").await;
    let (seq, jobs) = socket.greeting().await;
    assert!(jobs.is_empty());

    let id = created_id(
        ada.upload(Some("people"), &[("good.csv", people_csv(500, 0))])
            .await,
    )
    .await;
    let (states, job, seq) = socket.states_until_final(&id, seq).await;
    assert_life_cycle(&states, JobState::Valid);
    assert_eq!((job.progress.rows, job.progress.errors), (501, 0));

    let id = created_id(
        ada.upload(Some("people"), &[("bad.csv", people_csv(500, 10))])
            .await,
    )
    .await;
    let (states, job, _) = socket.states_until_final(&id, seq).await;
    assert_life_cycle(&states, JobState::Invalid);
    assert_eq!(job.error_counts.values().sum::<u64>(), 50);

    let page: Value = ada
        .get(&format!("/api/uploads/{id}/errors?offset=0&limit=2"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["error_total"], 50);
    assert_eq!(page["errors"].as_array().unwrap().len(), 2);
    assert_eq!(
        page["errors"][0]["message"],
        "row 11, field 'age': 'x' is not an integer"
    );
    assert_eq!(page["errors"][1]["row"], 21);

    let csv = ada
        .get(&format!("/api/uploads/{id}/report.csv"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(csv.lines().count(), 51, "a header and one line per error");
    assert!(csv
        .starts_with("row,line,byte_offset,field_number,field_name,code,constraint,cell,message"));
    let report: Value = ada
        .get(&format!("/api/uploads/{id}/report.json"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["valid"], false);
    assert_eq!(report["error_counts"]["type-error"], 50);

    let list: Value = ada.get("/api/uploads").await.json().await.unwrap();
    assert_eq!(list["total"], 2);
    assert_eq!(list["uploads"][0]["file_name"], "bad.csv", "newest first");
    assert!(
        server.stored_uploads_settled().is_empty(),
        "the report holds the findings; uploaded files are not kept"
    );
}

#[tokio::test]
async fn several_files_in_one_request() {
    let server = TestServer::start(&[]);
    let ada = server.session().await;
    let response = ada
        .upload(
            Some("people"),
            &[("a.csv", people_csv(10, 0)), ("b.csv", people_csv(10, 2))],
        )
        .await;
    let ids = created_ids(response).await;
    assert_eq!(ids.len(), 2);
    assert_eq!(ada.wait_final(&ids[0]).await.state, JobState::Valid);
    assert_eq!(ada.wait_final(&ids[1]).await.state, JobState::Invalid);
}

#[tokio::test]
async fn every_tab_of_an_owner_sees_updates_and_other_owners_see_nothing() {
    let server = TestServer::start(&[]);
    let ada = server.session().await;
    let bob = server.session().await;
    let mut tab1 = ada.socket("").await;
    let mut tab2 = ada.socket("").await;
    let mut bobs = bob.socket("").await;
    let (seq1, _) = tab1.greeting().await;
    let (seq2, _) = tab2.greeting().await;
    bobs.greeting().await;

    let id = created_id(
        ada.upload(Some("people"), &[("mine.csv", people_csv(50, 0))])
            .await,
    )
    .await;
    assert_eq!(
        tab1.states_until_final(&id, seq1).await.1.state,
        JobState::Valid
    );
    assert_eq!(
        tab2.states_until_final(&id, seq2).await.1.state,
        JobState::Valid
    );

    // Bob's socket got nothing: the first thing it receives is the answer to its ping.
    bobs.send(&ClientMessage::Ping { nonce: 7 }).await;
    assert!(matches!(
        bobs.next().await,
        ServerMessage::Pong { nonce: 7, .. }
    ));
    for path in [
        format!("/api/uploads/{id}"),
        format!("/api/uploads/{id}/errors"),
        format!("/api/uploads/{id}/report.json"),
    ] {
        let response = bob.get(&path).await;
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(response.json::<Value>().await.unwrap()["code"], "not_found");
    }
    assert_eq!(
        bob.delete(&format!("/api/uploads/{id}")).await.status(),
        404
    );
    assert_eq!(
        bob.get("/api/uploads").await.json::<Value>().await.unwrap()["total"],
        0
    );
    bobs.send(&ClientMessage::Cancel { job_id: id.clone() })
        .await;
    assert!(matches!(
        bobs.next().await,
        ServerMessage::Error {
            code: ProtocolErrorCode::NotFound,
            ..
        }
    ));
    assert_eq!(
        ada.job(&id).await.state,
        JobState::Valid,
        "Bob's cancel changed nothing"
    );
}

#[tokio::test]
async fn tokens_authenticate_scripts_and_bad_ones_are_refused() {
    let server = TestServer::start(&[]);
    let ada = server.session().await;
    let id = created_id(ada.upload(None, &[("a.csv", b"a,b\n1,2\n".to_vec())]).await).await;

    let shared = Client::with_token(&server, &create_token(&server.data_dir, Some(&ada.owner)));
    assert_eq!(
        shared.wait_final(&id).await.state,
        JobState::Valid,
        "a token given to Ada's owner sees her uploads"
    );
    let own = Client::with_token(&server, &create_token(&server.data_dir, None));
    assert_eq!(own.get(&format!("/api/uploads/{id}")).await.status(), 404);
    let script_job = created_id(own.upload(None, &[("s.csv", b"x\n1\n".to_vec())]).await).await;
    assert_eq!(own.wait_final(&script_job).await.state, JobState::Valid);

    let forged = Client::with_token(&server, "dv_not-a-real-token");
    let response = forged.get("/api/uploads").await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "unauthenticated"
    );
    assert!(
        forged.socket_with_origin("", None).await.is_err(),
        "no WebSocket with a bad token"
    );
    let anonymous = reqwest::get(server.url("/api/uploads")).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let tampered = Client {
        auth: support::Auth::Cookie("dv_session=forged-value".into()),
        ..ada.clone()
    };
    assert_eq!(tampered.get("/api/uploads").await.status(), 401);

    let revoked_token = create_token(&server.data_dir, None);
    let revoked = Client::with_token(&server, &revoked_token);
    assert_eq!(revoked.get("/api/uploads").await.status(), 200);
    assert_eq!(revoke_token(&server.data_dir, &revoked_token), Some(0));
    let response = revoked.get("/api/uploads").await;
    assert_eq!(response.status(), 401, "a revoked token is refused at once");
    assert!(revoked.socket_with_origin("", None).await.is_err());
    assert_eq!(
        revoke_token(&server.data_dir, &revoked_token),
        Some(1),
        "revoking twice says there is no such token"
    );
}

/// An upload whose body the test feeds piece by piece, so the job stays `uploading`.
struct SlowUpload {
    pieces: mpsc::Sender<Bytes>,
    response: tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>,
}

impl SlowUpload {
    fn start(client: &Client, schema: Option<&str>, name: &str) -> SlowUpload {
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

    async fn send(&self, bytes: &[u8]) {
        self.pieces
            .send(Bytes::copy_from_slice(bytes))
            .await
            .unwrap();
    }

    async fn finish(self) -> reqwest::Result<reqwest::Response> {
        drop(self.pieces);
        self.response.await.unwrap()
    }
}

/// Wait on a socket for the first update of a job named `name`; returns its id and seq.
async fn first_update_named(socket: &mut Socket, name: &str) -> (String, u64) {
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

#[tokio::test]
async fn cancel_by_delete_or_by_socket_stops_the_job_and_removes_the_file() {
    let server = TestServer::start(&[]);
    let ada = server.session().await;
    let mut socket = ada.socket("").await;
    socket.greeting().await;

    let slow = SlowUpload::start(&ada, Some("people"), "slow.csv");
    slow.send(&people_csv(100, 0)).await;
    let (id, seq) = first_update_named(&mut socket, "slow.csv").await;
    let response = ada.delete(&format!("/api/uploads/{id}")).await;
    assert_eq!(response.status(), 200);
    let (states, job, seq) = socket.states_until_final(&id, seq).await;
    assert_eq!(states.last(), Some(&JobState::Cancelled));
    assert_eq!(job.reason.as_deref(), Some("cancelled"));
    let _ = slow.finish().await;
    assert!(
        !server
            .stored_uploads_settled()
            .iter()
            .any(|f| f.starts_with(&id)),
        "the partial file is gone"
    );

    let slow = SlowUpload::start(&ada, Some("people"), "slow2.csv");
    slow.send(&people_csv(100, 0)).await;
    let (id, _) = first_update_named(&mut socket, "slow2.csv").await;
    socket
        .send(&ClientMessage::Cancel { job_id: id.clone() })
        .await;
    let (states, _, _) = socket.states_until_final(&id, seq).await;
    assert_eq!(states.last(), Some(&JobState::Cancelled));
    let _ = slow.finish().await;
    assert!(!server
        .stored_uploads_settled()
        .iter()
        .any(|f| f.starts_with(&id)));

    // Deleting a finished job removes it, its file and its report, and tells the sockets.
    let done = created_id(
        ada.upload(Some("people"), &[("done.csv", people_csv(5, 0))])
            .await,
    )
    .await;
    ada.wait_final(&done).await;
    assert_eq!(
        ada.delete(&format!("/api/uploads/{done}")).await.status(),
        204
    );
    assert_eq!(ada.get(&format!("/api/uploads/{done}")).await.status(), 404);
    assert!(!server
        .data_dir
        .join(format!("reports/{done}.json"))
        .exists());
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        assert!(std::time::Instant::now() < deadline, "no job_removed");
        if let ServerMessage::JobRemoved { job_id, .. } = socket.next().await {
            assert_eq!(job_id, done);
            break;
        }
    }
}

#[tokio::test]
async fn a_reconnecting_tab_gets_what_it_missed() {
    let server = TestServer::start(&[]);
    let ada = server.session().await;
    let mut socket = ada.socket("").await;
    let (seq, _) = socket.greeting().await;
    drop(socket);

    let id = created_id(
        ada.upload(Some("people"), &[("while-away.csv", people_csv(20, 0))])
            .await,
    )
    .await;
    ada.wait_final(&id).await;

    let mut socket = ada.socket(&format!("?last_seq={seq}")).await;
    let ServerMessage::Hello { seq: now, .. } = socket.next().await else {
        panic!("hello first")
    };
    assert!(now > seq);
    let mut last = seq;
    let mut final_state = None;
    while last < now {
        let message = socket.next().await;
        assert!(
            matches!(message, ServerMessage::JobUpdate { .. }),
            "missed updates, not a snapshot: {message:?}"
        );
        assert_eq!(message.seq(), last + 1, "no gap");
        last = message.seq();
        if let ServerMessage::JobUpdate { job, .. } = message {
            final_state = Some(job.state);
        }
    }
    assert_eq!(final_state, Some(JobState::Valid));

    // Resume on an open socket: nothing new to send, then a request for everything.
    socket.send(&ClientMessage::Resume { last_seq: None }).await;
    let ServerMessage::Snapshot {
        jobs, last: true, ..
    } = socket.next().await
    else {
        panic!("a snapshot")
    };
    assert_eq!(jobs.len(), 1);
}

#[tokio::test]
async fn a_job_interrupted_by_sigkill_finishes_after_restart() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let mut server = TestServer::start_in(&data_dir, &["--workers", "1"]);
    let ada = server.session().await;
    let mut socket = ada.socket("").await;
    socket.greeting().await;

    let finished = created_id(
        ada.upload(Some("people"), &[("before.csv", people_csv(10, 0))])
            .await,
    )
    .await;
    ada.wait_final(&finished).await;
    // A file large enough that validation is still going when the upload is done.
    let uploader = ada.clone();
    let upload = tokio::spawn(async move {
        uploader
            .upload(Some("people"), &[("big.csv", people_csv(600_000, 0))])
            .await
    });
    let deadline = std::time::Instant::now() + PATIENCE;
    let queued = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the big file never validated after its upload"
        );
        if let ServerMessage::JobUpdate { job, .. } = socket.next().await {
            let behind = job
                .progress
                .bytes_total
                .is_some_and(|total| job.progress.bytes_done < total);
            if job.file_name == "big.csv" && job.state == JobState::Validating && behind {
                break job.id;
            }
            assert!(
                !(job.file_name == "big.csv" && job.state.is_final()),
                "validation finished before it could be interrupted"
            );
        }
    };
    server.kill(); // mid-validation: the last update said it was behind the upload
    let _ = upload.await; // the response may or may not have made it out

    let server = TestServer::start_in(&data_dir, &["--workers", "1"]);
    let ada = Client {
        base: server.url(""),
        ..ada
    };
    let job = ada.wait_final(&queued).await;
    assert_eq!(job.state, JobState::Valid, "{job:?}");
    assert_eq!(job.progress.rows, 600_001);
    assert_eq!(
        ada.job(&finished).await.state,
        JobState::Valid,
        "finished jobs are kept"
    );
}

#[tokio::test]
async fn an_oversized_upload_gets_413_and_leaves_nothing_on_disk() {
    let server = TestServer::start(&["--max-file-bytes", "1000"]);
    let ada = server.session().await;
    let response = ada
        .upload(Some("people"), &[("big.csv", people_csv(200, 0))])
        .await;
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "file_too_large");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("larger than the 1000 bytes limit"),
        "{body}"
    );
    assert!(
        server.stored_uploads_settled().is_empty(),
        "{:?}",
        server.stored_uploads_settled()
    );
    let list: Value = ada.get("/api/uploads").await.json().await.unwrap();
    assert_eq!(list["uploads"][0]["state"], "failed");
}

#[tokio::test]
async fn too_many_concurrent_uploads_get_429() {
    let server = TestServer::start(&["--max-uploads-per-owner", "1"]);
    let ada = server.session().await;
    let mut socket = ada.socket("").await;
    socket.greeting().await;
    let slow = SlowUpload::start(&ada, None, "slow.csv");
    slow.send(b"a,b\n").await;
    first_update_named(&mut socket, "slow.csv").await;
    let response = ada
        .upload(None, &[("second.csv", b"a\n1\n".to_vec())])
        .await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "5");
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "too_many_uploads"
    );
    assert_eq!(slow.finish().await.unwrap().status(), 201);
}

#[tokio::test]
async fn an_owner_past_the_connection_limit_gets_429_with_retry_after() {
    use tokio_tungstenite::tungstenite::Error as WsError;
    let server = TestServer::start(&["--max-connections-per-owner", "2"]);
    let (ada, bob) = (server.session().await, server.session().await);
    let mut first = ada.socket("").await;
    first.greeting().await;
    let mut second = ada.socket("").await;
    second.greeting().await;
    match ada.socket_with_origin("", None).await {
        Err(WsError::Http(response)) => {
            assert_eq!(response.status(), 429);
            assert_eq!(response.headers()["retry-after"], "30");
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["code"], "too_many_connections");
        }
        Err(other) => panic!("expected a 429 refusal, got {other}"),
        Ok(_) => panic!("a third connection was accepted"),
    }
    bob.socket("").await.greeting().await; // the limit is per owner
    drop(first);
    // The hub forgets the closed connection once its session ends: bounded retries.
    let mut reconnected = None;
    for _ in 0..100 {
        if let Ok(socket) = ada.socket_with_origin("", None).await {
            reconnected = Some(socket);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    reconnected
        .expect("a slot frees when a tab closes")
        .greeting()
        .await;
}

#[tokio::test]
async fn hostile_file_names_are_only_labels() {
    let server = TestServer::start(&[]);
    let ada = server.session().await;
    let long = "n".repeat(10_000);
    for (name, shown) in [
        ("../../x.csv", "x.csv".to_owned()),
        ("..\\..\\evil.csv", "evil.csv".to_owned()),
        (long.as_str(), "n".repeat(255)),
    ] {
        let response = ada.upload(None, &[(name, b"a\n1\n".to_vec())]).await;
        assert_eq!(response.status(), 201, "{name}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["uploads"][0]["file_name"], shown.as_str());
    }
    for stored in server.stored_uploads() {
        let stem = stored.strip_suffix(".csv").unwrap();
        assert!(uuid_like(stem), "only server-made names on disk: {stored}");
    }
    assert!(!server.data_dir.parent().unwrap().join("x.csv").exists());
}

fn uuid_like(text: &str) -> bool {
    text.len() == 36 && text.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

#[tokio::test]
async fn an_upload_aborted_by_the_client_ends_cancelled_without_a_partial_file() {
    let server = TestServer::start(&[]);
    let ada = server.session().await;
    let tcp = support::begin_unfinished_upload(&server, &ada, &people_csv(1000, 0)).await;
    // Wait until the server has the job, then vanish.
    let deadline = std::time::Instant::now() + PATIENCE;
    let id = loop {
        let list: Value = ada.get("/api/uploads").await.json().await.unwrap();
        if let Some(id) = list["uploads"][0]["id"].as_str() {
            break id.to_owned();
        }
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    drop(tcp);
    let job = ada.wait_final(&id).await;
    assert_eq!(job.state, JobState::Cancelled, "{job:?}");
    assert!(job.reason.unwrap().contains("interrupted"));
    assert!(
        server.stored_uploads_settled().is_empty(),
        "{:?}",
        server.stored_uploads_settled()
    );
}

#[tokio::test]
async fn garbage_and_oversized_frames_are_answered_not_fatal() {
    let server = TestServer::start(&[]);
    let ada = server.session().await;
    let mut socket = ada.socket("").await;
    socket.greeting().await;
    socket.send_raw(Message::text("{not json")).await;
    assert!(matches!(
        socket.next().await,
        ServerMessage::Error {
            code: ProtocolErrorCode::BadMessage,
            ..
        }
    ));
    socket
        .send_raw(Message::binary(vec![0u8, 159, 146, 150]))
        .await;
    assert!(matches!(
        socket.next().await,
        ServerMessage::Error {
            code: ProtocolErrorCode::Unsupported,
            ..
        }
    ));
    socket.send(&ClientMessage::Ping { nonce: 1 }).await;
    assert!(
        matches!(socket.next().await, ServerMessage::Pong { nonce: 1, .. }),
        "still open after garbage"
    );

    socket.send_raw(Message::text("x".repeat(100_000))).await;
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        assert!(std::time::Instant::now() < deadline, "no close frame");
        match socket.next_frame().await {
            Message::Close(Some(frame)) => {
                assert_eq!(u16::from(frame.code), 1009, "message too big");
                break;
            }
            Message::Close(None) => panic!("a close reason"),
            _ => {}
        }
    }
    // The server is fine.
    assert_eq!(
        reqwest::get(server.url("/healthz")).await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn a_websocket_from_a_foreign_origin_is_refused() {
    let server = TestServer::start(&[]);
    let ada = server.session().await;
    let refused = ada
        .socket_with_origin("", Some("http://evil.example"))
        .await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("expected a 403, got {:?}", other.map(|_| "an open socket")),
    }
    let own = format!("http://{}", server.address);
    assert!(
        ada.socket_with_origin("", Some(&own)).await.is_ok(),
        "the server's own origin is fine"
    );

    // The same for changes made with the session cookie from another page of the same site.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"a\n1\n".to_vec()).file_name("x.csv"),
    );
    let forged = ada
        .request(reqwest::Method::POST, "/api/uploads")
        .header("origin", "http://localhost:9999")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(forged.json::<Value>().await.unwrap()["code"], "forbidden");
    assert_eq!(
        ada.get("/api/uploads").await.json::<Value>().await.unwrap()["total"],
        0,
        "nothing was created"
    );
}

#[tokio::test]
async fn schemas_can_be_listed_added_and_used() {
    let server = TestServer::start(&[]);
    let ada = server.session().await;
    let bob = server.session().await;
    let list: Value = ada.get("/api/schemas").await.json().await.unwrap();
    let ids: Vec<&str> = list["schemas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"people") && ids.contains(&"orders"),
        "{ids:?}"
    );

    let broken = ada
        .request(reqwest::Method::POST, "/api/schemas")
        .body(r#"{"fields": [{"name": "a", "type": "geojson"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 400);
    let body: Value = broken.json().await.unwrap();
    assert_eq!(body["code"], "invalid_schema");
    assert_eq!(
        body["message"],
        "field 'a': type 'geojson' is not supported"
    );

    const SCORES: &str = r#"{"fields": [
        {"name": "score", "type": "integer", "constraints": {"maximum": 10}},
        {"name": "player", "constraints": {"pattern": "P-[0-9]{3}"}}
    ]}"#;
    let added = ada
        .request(reqwest::Method::POST, "/api/schemas?name=Scores")
        .body(SCORES)
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
    let schema_id = added.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let body: Value = ada
        .get(&format!("/api/schemas/{schema_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["fields"][0]["name"], "score",
        "the schema JSON itself, for the dashboard's pre-check"
    );
    assert_eq!(
        bob.get(&format!("/api/schemas/{schema_id}")).await.status(),
        404
    );

    // The patterns, compiled for the dashboard: a schema parsed apart from the server's
    // matches with them.
    let patterns = ada.get(&format!("/api/schemas/{schema_id}/patterns")).await;
    assert_eq!(patterns.status(), 200);
    assert_eq!(
        patterns.headers()["content-type"],
        "application/octet-stream"
    );
    let patterns = patterns.bytes().await.unwrap();
    let browser_copy = datavista_shared::schema::Schema::from_json(SCORES).unwrap();
    assert_eq!(browser_copy.load_compiled_patterns(&patterns), Ok(1));
    let player = browser_copy.fields[1].constraints.pattern.as_ref().unwrap();
    assert!(player.is_match("P-123") && !player.is_match("P-12"));
    for stranger in [
        bob.get(&format!("/api/schemas/{schema_id}/patterns")).await,
        ada.get("/api/schemas/no-such-schema/patterns").await,
    ] {
        assert_eq!(stranger.status(), 404);
    }

    let id = created_id(
        ada.upload(
            Some(&schema_id),
            &[(
                "s.csv",
                b"score,player\n5,P-001\n11,P-002\n7,P-3\n".to_vec(),
            )],
        )
        .await,
    )
    .await;
    let job = ada.wait_final(&id).await;
    assert_eq!((job.state, job.progress.errors), (JobState::Invalid, 2));

    let response = bob
        .upload(
            Some(&schema_id),
            &[("s.csv", b"score,player\n5,P-001\n".to_vec())],
        )
        .await;
    assert_eq!(response.status(), 400, "Ada's schema is hers");
    assert!(!bob
        .get("/api/schemas")
        .await
        .text()
        .await
        .unwrap()
        .contains(&schema_id));
}

#[tokio::test]
async fn health_metrics_and_sigterm() {
    let mut server = TestServer::start(&[]);
    let ada = server.session().await;
    let id = created_id(ada.upload(None, &[("a.csv", b"a\n1\n".to_vec())]).await).await;
    ada.wait_final(&id).await;
    let _socket = ada.socket("").await;
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("datavista_websocket_connections 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("datavista_jobs{state=\"valid\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("datavista_validated_bytes_total 4"),
        "{metrics}"
    );
    assert!(server.terminate().success(), "a clean exit on SIGTERM");
}

#[tokio::test]
async fn serves_the_dashboard_with_a_page_fallback_and_json_errors_for_the_api() {
    let dist = tempfile::tempdir().unwrap();
    std::fs::write(
        dist.path().join("index.html"),
        "<html>DataVista dashboard</html>",
    )
    .unwrap();
    std::fs::write(dist.path().join("app.js"), "console.log('hi')").unwrap();
    let server = TestServer::start(&["--dist-dir", dist.path().to_str().unwrap()]);
    let page = reqwest::get(server.url("/")).await.unwrap();
    assert_eq!(page.status(), 200);
    let cookie = page
        .headers()
        .get("set-cookie")
        .expect("a first visit gets a session")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(page.text().await.unwrap().contains("DataVista dashboard"));
    let deep = reqwest::get(server.url("/uploads/some-id")).await.unwrap();
    assert!(
        deep.text().await.unwrap().contains("DataVista dashboard"),
        "page paths fall back to index.html"
    );
    assert_eq!(
        reqwest::get(server.url("/app.js"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "console.log('hi')"
    );

    let ada = server.session().await;
    for (method, path) in [
        (reqwest::Method::GET, "/api/nope"),
        (reqwest::Method::PUT, "/api/uploads"),
        (reqwest::Method::POST, "/elsewhere"),
    ] {
        let response = ada.request(method.clone(), path).send().await.unwrap();
        assert_eq!(response.status(), 404, "{method} {path}");
        assert_eq!(
            response.json::<Value>().await.unwrap()["code"],
            "not_found",
            "{method} {path}"
        );
    }
    let huge_schema = format!(
        r#"{{"fields": [], "description": "{}"}}"#,
        "x".repeat(2 << 20)
    );
    let response = ada
        .request(reqwest::Method::POST, "/api/schemas")
        .body(huge_schema)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "file_too_large"
    );
}

#[tokio::test]
async fn low_disk_space_refuses_uploads_with_507() {
    let server = TestServer::start(&["--min-free-bytes", "1000000000000000000"]);
    let ada = server.session().await;
    let response = ada.upload(None, &[("a.csv", b"a\n1\n".to_vec())]).await;
    assert_eq!(response.status(), 507);
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "insufficient_storage"
    );
    assert!(server.stored_uploads_settled().is_empty());
}

#[tokio::test]
async fn schema_dir_files_are_offered_to_everyone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cities.json"), r#"{"title": "Cities", "fields": [{"name": "city"}, {"name": "population", "type": "integer"}]}"#).unwrap();
    let server = TestServer::start(&["--schema-dir", dir.path().to_str().unwrap()]);
    let ada = server.session().await;
    let list: Value = ada.get("/api/schemas").await.json().await.unwrap();
    let cities = list["schemas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "cities")
        .expect("the dir's schema is listed");
    assert_eq!(cities["name"], "Cities");
    let id = created_id(
        ada.upload(
            Some("cities"),
            &[("c.csv", b"city,population\nBonn,many\n".to_vec())],
        )
        .await,
    )
    .await;
    assert_eq!(ada.wait_final(&id).await.state, JobState::Invalid);
}

#[tokio::test]
async fn reports_of_cancelled_jobs_and_foreign_sequence_numbers() {
    let server = TestServer::start(&[]);
    let ada = server.session().await;
    let mut socket = ada.socket("").await;
    let (seq, _) = socket.greeting().await;
    let slow = SlowUpload::start(&ada, None, "slow.csv");
    slow.send(b"a,b\n1,2\n").await;
    let (id, _) = first_update_named(&mut socket, "slow.csv").await;
    assert_eq!(
        ada.get(&format!("/api/uploads/{id}/report.json"))
            .await
            .status(),
        409,
        "not finished yet"
    );
    ada.delete(&format!("/api/uploads/{id}")).await;
    socket.states_until_final(&id, seq).await;
    let response = slow.finish().await.unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(
        response.json::<Value>().await.unwrap()["uploads"][0]["state"],
        "cancelled"
    );
    let response = ada.get(&format!("/api/uploads/{id}/report.json")).await;
    assert_eq!(
        response.status(),
        404,
        "a cancelled upload never has a report"
    );

    // A sequence number this server never gave out (say, from another data dir) gets a snapshot.
    let mut socket = ada.socket("?last_seq=999999").await;
    let (seq, jobs) = socket.greeting().await;
    assert!(seq < 999_999);
    assert_eq!(jobs.len(), 1);
}

#[tokio::test]
async fn token_create_and_serve_can_start_together_on_a_fresh_data_dir() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let token_dir = data_dir.clone();
    let tokens = std::thread::spawn(move || {
        (0..3)
            .map(|_| create_token(&token_dir, None))
            .collect::<Vec<_>>()
    });
    let server = TestServer::start_in(&data_dir, &[]);
    for token in tokens.join().unwrap() {
        assert_eq!(
            Client::with_token(&server, &token)
                .get("/api/uploads")
                .await
                .status(),
            200
        );
    }
}

#[tokio::test]
async fn a_silent_client_is_closed_after_the_heartbeat_limit() {
    let server = TestServer::start(&[]);
    let ada = server.session().await;
    let mut socket = ada.socket("").await;
    socket.greeting().await;
    // Not reading means not answering the server's pings (the library answers when polled).
    tokio::time::sleep(Duration::from_secs(12)).await;
    // The server has given up on us: reading now ends in its close frame (1001, going away),
    // or in a broken pipe when the library first tries to answer the old pings.
    let ended = tokio::time::timeout(PATIENCE, async {
        loop {
            match socket.stream.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
    .expect("the connection ends");
    assert!(matches!(ended, Some(1001) | None), "{ended:?}");
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("datavista_websocket_connections 0"),
        "the server dropped the silent client"
    );
}

#[tokio::test]
async fn a_client_that_falls_behind_gets_a_snapshot_and_loses_nothing() {
    let server = TestServer::start(&["--ws-queue-len", "4"]);
    let ada = server.session().await;
    let mut slow = ada.slow_socket().await;
    let (mut seq, _) = slow.greeting().await;
    // A burst of updates (long names make each one ~500 bytes) while this client reads nothing.
    let files: Vec<(String, Vec<u8>)> = (0..100)
        .map(|i| (format!("{i:03}-{}.csv", "x".repeat(240)), people_csv(3, 0)))
        .collect();
    let named: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let response = ada.upload(Some("people"), &named).await;
    let ids = created_ids(response).await;
    for id in &ids {
        ada.wait_final(id).await;
    }
    // Now read: the state rebuilt from what arrives must be complete, via a fresh snapshot.
    let mut jobs = std::collections::HashMap::new();
    let mut snapshots = 0;
    let deadline = std::time::Instant::now() + PATIENCE;
    while !(jobs.len() == ids.len() && jobs.values().all(|s: &JobState| *s == JobState::Valid)) {
        assert!(
            std::time::Instant::now() < deadline,
            "incomplete state: {} jobs, {snapshots} snapshots",
            jobs.len()
        );
        match slow.next().await {
            ServerMessage::Snapshot {
                seq: at,
                part,
                jobs: part_jobs,
                ..
            } => {
                if part == 0 {
                    snapshots += 1;
                    jobs.clear();
                }
                jobs.extend(part_jobs.into_iter().map(|j| (j.id, j.state)));
                seq = at;
            }
            ServerMessage::JobUpdate { seq: at, job } if at > seq => {
                jobs.insert(job.id, job.state);
                seq = at;
            }
            _ => {}
        }
    }
    assert!(
        snapshots >= 1,
        "the lagging client was resynchronised with a snapshot"
    );
}
