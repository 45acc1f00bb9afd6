//! Cancelling a job, by DELETE or over the socket, and the reports of cancelled jobs.

use datavista_shared::http::UploadsCreated;
use datavista_shared::protocol::{ClientMessage, JobState, ServerMessage};
use datavista_testkit::{created_id, people_csv, TestServer, PATIENCE};

use crate::helpers::{first_update_named, SlowUpload};

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
        response.json::<UploadsCreated>().await.unwrap().uploads[0].state,
        JobState::Cancelled
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
