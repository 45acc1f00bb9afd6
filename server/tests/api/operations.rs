//! Operating the server: health, metrics, SIGTERM, and serving the dashboard's files.

use datavista_testkit::{created_id, error_body, TestServer};

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
            error_body(response).await.code,
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
    assert_eq!(error_body(response).await.code, "file_too_large");
}
