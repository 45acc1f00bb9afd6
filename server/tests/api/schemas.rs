//! Schemas: listed, added and used per owner; `--schema-dir` files offered to everyone.

use datavista_shared::http::SchemaInfo;
use datavista_shared::protocol::JobState;
use datavista_shared::Schema;
use datavista_testkit::{created_id, error_body, TestServer};

#[tokio::test]
async fn schemas_can_be_listed_added_and_used() {
    let server = TestServer::start(&[]);
    let ada = server.session().await;
    let bob = server.session().await;
    let list = ada.schemas().await;
    let ids: Vec<&str> = list.schemas.iter().map(|s| s.id.as_str()).collect();
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
    let body = error_body(broken).await;
    assert_eq!(body.code, "invalid_schema");
    assert_eq!(body.message, "field 'a': type 'geojson' is not supported");

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
    let schema_id = added.json::<SchemaInfo>().await.unwrap().id;
    let body = ada
        .get(&format!("/api/schemas/{schema_id}"))
        .await
        .text()
        .await
        .unwrap();
    // Read as the dashboard reads it for its pre-check: the Table Schema, not a body of `http`.
    assert_eq!(
        Schema::from_json(&body).unwrap().fields[0].name,
        "score",
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
    let browser_copy = Schema::from_json(SCORES).unwrap();
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
async fn schema_dir_files_are_offered_to_everyone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cities.json"), r#"{"title": "Cities", "fields": [{"name": "city"}, {"name": "population", "type": "integer"}]}"#).unwrap();
    let server = TestServer::start(&["--schema-dir", dir.path().to_str().unwrap()]);
    let ada = server.session().await;
    let list = ada.schemas().await;
    let cities = list
        .schemas
        .iter()
        .find(|s| s.id == "cities")
        .expect("the dir's schema is listed");
    assert_eq!(cities.name, "Cities");
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
