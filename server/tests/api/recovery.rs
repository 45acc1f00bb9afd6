//! Recovery: a job interrupted by SIGKILL finishes after the restart.

use datavista_shared::protocol::{JobState, ServerMessage};
use datavista_testkit::{created_id, people_csv, Client, TestServer, PATIENCE};

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
