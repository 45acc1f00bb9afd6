//! Live status: every state of a job reaches every tab of its owner, in order, and no one
//! else's; a tab that reconnects or falls behind gets what it missed.

use datavista_shared::http::ErrorPage;
use datavista_shared::protocol::{ClientMessage, JobState, ProtocolErrorCode, ServerMessage};
use datavista_shared::ErrorCode;
use datavista_testkit::{created_id, created_ids, error_body, people_csv, TestServer, PATIENCE};

use crate::helpers::assert_life_cycle;

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

    let page: ErrorPage = ada
        .get_typed(&format!("/api/uploads/{id}/errors?offset=0&limit=2"))
        .await;
    assert_eq!(page.error_total, 50);
    assert_eq!(page.errors.len(), 2);
    assert_eq!(
        page.errors[0].message,
        "row 11, field 'age': 'x' is not an integer"
    );
    assert_eq!(page.errors[1].row, Some(21));

    let csv = ada
        .get(&format!("/api/uploads/{id}/report.csv"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(csv.lines().count(), 51, "a header and one line per error");
    assert!(csv
        .starts_with("row,line,byte_offset,field_number,field_name,code,constraint,cell,message"));
    let report = ada.report(&id).await;
    assert!(!report.valid);
    assert_eq!(report.count(ErrorCode::TypeError), 50);

    let list = ada.jobs().await;
    assert_eq!(list.total, 2);
    assert_eq!(list.uploads[0].file_name, "bad.csv", "newest first");
    assert!(
        server.stored_uploads_settled().is_empty(),
        "the report holds the findings; uploaded files are not kept"
    );
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
        assert_eq!(error_body(response).await.code, "not_found");
    }
    assert_eq!(
        bob.delete(&format!("/api/uploads/{id}")).await.status(),
        404
    );
    assert_eq!(bob.jobs().await.total, 0);
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
