//! The browser surface: what the server's responses let a browser, or a spreadsheet opening a
//! report, do with them.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use datavista_shared::http::Session;
use datavista_testkit::{created_id, Auth, TestServer, PATIENCE};
use sha2::Digest;

/// Cells and a field name built to run as formulas when the CSV report is opened in a
/// spreadsheet (OWASP, "CSV Injection"): the CSV report shows them as text, byte for byte
/// what it would be with a `'` before each; the JSON report keeps them as they are.
#[tokio::test]
async fn formulas_in_user_text_are_inert_in_the_csv_report() {
    let server = TestServer::start(&[]);
    let client = server.session().await;
    let schema = r#"{"fields": [{"name": "id", "type": "integer"},
        {"name": "@who", "type": "integer", "constraints": {"minimum": 0}}]}"#;
    let schema_id = client.add_schema("formulas", schema).await;
    let file = "id,@who\n\
        1,\"=HYPERLINK(\"\"https://evil.example\"\",\"\"x\"\")\"\n\
        2,+1+1\n3,-x\n4,@SUM(1)\n5,\"\tx\"\n6,\"\rx\"\n7,plain\n8,-5\n";
    let id = created_id(
        client
            .upload(Some(&schema_id), &[("formulas.csv", file.into())])
            .await,
    )
    .await;
    client.wait_final(&id).await;
    let report = client.report(&id).await;
    let errors = &report.errors;
    assert_eq!(errors.len(), 8, "one error per row: {report:#?}");
    assert_eq!(
        errors[0].cell.as_deref(),
        Some("=HYPERLINK(\"https://evil.example\",\"x\")"),
        "the JSON report keeps the cell as it was"
    );

    // The CSV the report would be without the fix, with a quote before each formula start.
    let inert = |text: Option<&str>| {
        let text = text.unwrap_or_default();
        if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{text}")
        } else {
            text.to_owned()
        }
    };
    let number = |n: Option<u64>| n.map(|n| n.to_string()).unwrap_or_default();
    let mut expected = csv::Writer::from_writer(Vec::new());
    let header = "row,line,byte_offset,field_number,field_name,code,constraint,cell,message";
    expected.write_record(header.split(',')).unwrap();
    for e in errors {
        expected
            .write_record([
                number(e.row),
                number(e.line),
                number(e.byte_offset),
                number(e.field_number.map(|n| n as u64)),
                inert(e.field_name.as_deref()),
                inert(Some(e.code.as_str())),
                inert(e.constraint.as_deref()),
                inert(e.cell.as_deref()),
                inert(Some(&e.message)),
            ])
            .unwrap();
    }
    let expected = String::from_utf8(expected.into_inner().unwrap()).unwrap();
    let csv = client
        .get(&format!("/api/uploads/{id}/report.csv"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(csv, expected);
    for cell in [
        "'=HYPERLINK(",
        "'+1+1",
        "'-x",
        "'@SUM(1)",
        "'\tx",
        "'\rx",
        "'-5",
        "'@who",
    ] {
        assert!(csv.contains(cell), "{cell:?} in {csv}");
    }
    assert!(csv.contains(",plain,"), "other text stays as it is: {csv}");
}

/// The headers every response must carry, with the policy's directives one by one.
fn assert_security_headers(response: &reqwest::Response, what: &str) {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .unwrap_or_else(|| panic!("{what}: no {name} header"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(header("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(header("referrer-policy"), "same-origin", "{what}");
    let policy = header("content-security-policy");
    for directive in [
        "default-src 'self'",
        "script-src 'self' 'wasm-unsafe-eval'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(
            policy.split(';').any(|d| d.trim().starts_with(directive)),
            "{what}: {directive} missing from {policy}"
        );
    }
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let dist = tempfile::tempdir().unwrap();
    let loader = "\nimport init from '/app.js';\nawait init();\n";
    std::fs::write(
        dist.path().join("index.html"),
        format!("<html><head><script type=\"module\">{loader}</script></head></html>"),
    )
    .unwrap();
    std::fs::write(dist.path().join("app.js"), "export default async () => {};").unwrap();
    let server = TestServer::start(&["--dist-dir", dist.path().to_str().unwrap()]);
    let ada = server.session().await;
    let anonymous = reqwest::Client::new();

    let api = ada.get("/api/uploads").await;
    assert_eq!(api.status(), 200);
    assert_security_headers(&api, "an API response");
    let file = anonymous.get(server.url("/app.js")).send().await.unwrap();
    assert_eq!(file.status(), 200);
    assert_security_headers(&file, "a static file");
    for (path, status) in [("/api/uploads", 401), ("/api/no-such-thing", 404)] {
        let response = anonymous.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), status, "{path}");
        assert_security_headers(&response, &format!("the {status} of {path}"));
    }
    let bad_query = ada.get("/api/uploads?limit=many").await;
    assert_eq!(bad_query.status(), 400);
    assert_security_headers(&bad_query, "a 400 for a bad query");
    let not_get = anonymous.put(server.url("/")).send().await.unwrap();
    assert_eq!(not_get.status(), 404);
    assert_security_headers(&not_get, "a 404 for an unknown method");

    // The page allows its own inline loader, by hash, and no other inline script.
    for path in ["/", "/index.html", "/uploads/some-page"] {
        let page = anonymous.get(server.url(path)).send().await.unwrap();
        assert_eq!(page.status(), 200, "{path}");
        assert_security_headers(&page, path);
        let policy = page.headers()["content-security-policy"].to_str().unwrap();
        let hash = base64::engine::general_purpose::STANDARD
            .encode(sha2::Sha256::digest(loader.as_bytes()));
        assert!(
            policy.contains(&format!(
                "script-src 'self' 'wasm-unsafe-eval' 'sha256-{hash}';"
            )),
            "{path}: {policy}"
        );
    }
}

/// The `Set-Cookie` of a new session, from `GET /api/session` without credentials.
async fn new_session_cookie(server: &TestServer) -> String {
    let response = reqwest::get(server.url("/api/session")).await.unwrap();
    assert_eq!(response.status(), 200);
    response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn over_https_the_session_cookie_is_a_host_cookie() {
    let server = TestServer::start(&["--https"]);
    let set_cookie = new_session_cookie(&server).await;
    assert!(set_cookie.starts_with("__Host-dv_session="), "{set_cookie}");
    let attributes: Vec<&str> = set_cookie.split(';').map(str::trim).collect();
    for required in ["Secure", "Path=/", "HttpOnly", "SameSite=Lax"] {
        assert!(attributes.contains(&required), "{required}: {set_cookie}");
    }
    assert!(
        !attributes.iter().any(|a| a.starts_with("Domain")),
        "{set_cookie}"
    );
    let cookie = attributes[0];
    let response = reqwest::Client::new()
        .get(server.url("/api/uploads"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the __Host- cookie is the session");

    let plain = TestServer::start(&[]);
    let set_cookie = new_session_cookie(&plain).await;
    assert!(set_cookie.starts_with("dv_session="), "{set_cookie}");
    assert!(!set_cookie.contains("Secure"), "plain HTTP: {set_cookie}");
}

#[tokio::test]
async fn any_correctly_signed_cookie_of_our_name_is_the_session() {
    let server = TestServer::start(&[]);
    let ada = server.session().await;
    let Auth::Cookie(ada_cookie) = &ada.auth else {
        unreachable!("a browser session")
    };
    // E.g. one planted for a parent domain, which the browser sends first.
    let planted = "dv_session=planted-by-a-sibling";
    for cookies in [
        format!("{planted}; {ada_cookie}"),
        format!("{ada_cookie}; {planted}"),
    ] {
        let response = reqwest::Client::new()
            .get(server.url("/api/session"))
            .header("cookie", &cookies)
            .send()
            .await
            .unwrap();
        assert!(
            response.headers().get("set-cookie").is_none(),
            "no new session for {cookies}"
        );
        let body: Session = response.json().await.unwrap();
        assert_eq!(body.owner, ada.owner, "{cookies}");
    }
}

/// Start `datavista serve` expecting it to refuse; its stderr.
fn serve_refuses(data_dir: &Path, extra: &[&str]) -> String {
    let mut process = Command::new(env!("CARGO_BIN_EXE_datavista"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while process.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = process.kill();
            panic!("the server started");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = process.wait_with_output().unwrap();
    assert!(!output.status.success());
    String::from_utf8(output.stderr).unwrap()
}

#[test]
fn a_short_or_unreadable_session_key_stops_the_server() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    std::fs::create_dir(&data_dir).unwrap();
    let key_file = data_dir.join("session.key");
    std::fs::write(&key_file, b"too short").unwrap();
    let stderr = serve_refuses(&data_dir, &[]);
    assert!(
        stderr.contains("holds 9 bytes, fewer than the 64 it needs"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(&key_file).unwrap(),
        b"too short",
        "the file is left as it was"
    );

    // Root reads any file, so a directory stands in for a file the server cannot read.
    let unreadable = temp.path().join("key-dir");
    std::fs::create_dir(&unreadable).unwrap();
    let stderr = serve_refuses(
        &data_dir,
        &["--session-key-file", unreadable.to_str().unwrap()],
    );
    assert!(stderr.contains("cannot read the session key"), "{stderr}");
}

#[tokio::test]
async fn allowed_origins_may_be_written_with_spaces_and_slashes() {
    let server = TestServer::start(&[
        "--allowed-origins",
        "https://a.example, https://b.example/ ,https://c.example",
    ]);
    let ada = server.session().await;
    for (origin, status) in [
        ("https://a.example", 201),
        ("https://b.example", 201),
        ("https://c.example", 201),
        ("https://d.example", 403),
    ] {
        let response = ada
            .request(reqwest::Method::POST, "/api/schemas")
            .header("origin", origin)
            .header("content-type", "application/json")
            .body(r#"{"fields": [{"name": "a"}]}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{origin}");
    }
    assert!(ada
        .socket_with_origin("", Some("https://b.example"))
        .await
        .is_ok());
}
