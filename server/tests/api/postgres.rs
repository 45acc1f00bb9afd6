//! The real server on a real PostgreSQL (`--database-url`): tokens from the command line,
//! uploads, live updates, reports, schemas and a restart all work as on SQLite, and no
//! SQLite file appears.

use datavista_shared::protocol::JobState;
use datavista_shared::ErrorCode;
use datavista_testkit::postgres::TestPostgres;
use datavista_testkit::{create_token_with, created_id, people_csv, Client, TestServer};

#[tokio::test]
async fn the_server_keeps_its_jobs_in_postgres() {
    let postgres = TestPostgres::start();
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let database = ["--database-url", postgres.url.as_str()];
    let token = create_token_with(&data_dir, &["--database-url", &postgres.url]);

    let mut server = TestServer::start_in(&data_dir, &database);
    let client = Client::with_token(&server, &token);
    let mut socket = client.socket("").await;
    let (seq, jobs) = socket.greeting().await;
    assert!(jobs.is_empty());
    let id = created_id(
        client
            .upload(Some("people"), &[("bad.csv", people_csv(200, 10))])
            .await,
    )
    .await;
    let (states, job, last_seq) = socket.states_until_final(&id, seq).await;
    assert_eq!(states.first(), Some(&JobState::Uploading), "{states:?}");
    assert_eq!(job.state, JobState::Invalid);
    assert_eq!(job.error_counts.values().sum::<u64>(), 20);
    let schema = client
        .request(reqwest::Method::POST, "/api/schemas?name=ids")
        .body(r#"{"fields": [{"name": "id", "type": "integer"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(schema.status(), 201, "{:?}", schema.text().await);
    assert!(
        !data_dir.join("datavista.sqlite3").exists(),
        "the jobs are in PostgreSQL, not in a SQLite file"
    );

    // A restart finds everything in the database.
    server.terminate();
    let server = TestServer::start_in(&data_dir, &database);
    let client = Client::with_token(&server, &token);
    let list = client.jobs().await;
    assert_eq!(list.total, 1);
    assert_eq!(list.uploads[0].state, JobState::Invalid);
    let report = client.report(&id).await;
    assert_eq!(report.count(ErrorCode::TypeError), 20);
    let schemas = client.schemas().await;
    assert!(
        schemas.schemas.iter().any(|s| s.name == "ids"),
        "the added schema is listed: {schemas:?}"
    );
    // A reconnecting tab resumes from the sequence number the database kept.
    let mut socket = client.socket("").await;
    let (seq, jobs) = socket.greeting().await;
    assert_eq!((seq, jobs.len()), (last_seq, 1));
    server.assert_healthy().await;
}
