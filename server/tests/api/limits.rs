//! Limits: an oversized file (413), too many uploads or connections (429), a full disk (507).

use std::time::Duration;

use datavista_shared::http::ErrorBody;
use datavista_shared::protocol::JobState;
use datavista_testkit::{error_body, people_csv, TestServer};

use crate::helpers::{first_update_named, SlowUpload};

#[tokio::test]
async fn an_oversized_upload_gets_413_and_leaves_nothing_on_disk() {
    let server = TestServer::start(&["--max-file-bytes", "1000"]);
    let ada = server.session().await;
    let response = ada
        .upload(Some("people"), &[("big.csv", people_csv(200, 0))])
        .await;
    assert_eq!(response.status(), 413);
    let body = error_body(response).await;
    assert_eq!(body.code, "file_too_large");
    assert!(
        body.message.contains("larger than the 1000 bytes limit"),
        "{body:?}"
    );
    assert!(
        server.stored_uploads_settled().is_empty(),
        "{:?}",
        server.stored_uploads_settled()
    );
    assert_eq!(ada.jobs().await.uploads[0].state, JobState::Failed);
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
    assert_eq!(error_body(response).await.code, "too_many_uploads");
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
            let body: ErrorBody =
                serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            assert_eq!(body.code, "too_many_connections");
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
async fn low_disk_space_refuses_uploads_with_507() {
    let server = TestServer::start(&["--min-free-bytes", "1000000000000000000"]);
    let ada = server.session().await;
    let response = ada.upload(None, &[("a.csv", b"a\n1\n".to_vec())]).await;
    assert_eq!(response.status(), 507);
    assert_eq!(error_body(response).await.code, "insufficient_storage");
    assert!(server.stored_uploads_settled().is_empty());
}
