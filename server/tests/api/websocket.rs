//! The WebSocket's edges: garbage and oversized frames, a foreign Origin, a silent client.

use std::time::Duration;

use datavista_shared::protocol::{ClientMessage, ProtocolErrorCode, ServerMessage};
use datavista_testkit::{error_body, TestServer, PATIENCE};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

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
    assert_eq!(error_body(forged).await.code, "forbidden");
    assert_eq!(ada.jobs().await.total, 0, "nothing was created");
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
