//! Uploads: several files in one request, hostile file names, an upload the client aborts.

use std::time::Duration;

use datavista_shared::http::UploadsCreated;
use datavista_shared::protocol::JobState;
use datavista_testkit::{created_ids, people_csv, TestServer, PATIENCE};

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
        let body: UploadsCreated = response.json().await.unwrap();
        assert_eq!(body.uploads[0].file_name, shown);
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
    let tcp = datavista_testkit::begin_unfinished_upload(&server, &ada, &people_csv(1000, 0)).await;
    // Wait until the server has the job, then vanish.
    let deadline = std::time::Instant::now() + PATIENCE;
    let id = loop {
        if let Some(job) = ada.jobs().await.uploads.into_iter().next() {
            break job.id;
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
