//! Access control over every endpoint and the socket: no credentials, a forged cookie, a bad
//! or revoked token, another owner's ids, a foreign Origin. Nothing answers with someone
//! else's data, and nothing another owner tries changes it.

use datavista_shared::http::SchemaInfo;
use datavista_shared::protocol::{ClientMessage, JobState, ServerMessage};
use datavista_testkit::{
    create_token, created_id, error_body, revoke_token, Auth, Client, TestServer,
};
use reqwest::Method;

/// Every API endpoint; `{job}` and `{schema}` are filled with the victim's ids.
const ENDPOINTS: [(&str, &str); 11] = [
    ("GET", "/api/uploads"),
    ("POST", "/api/uploads"),
    ("GET", "/api/uploads/{job}"),
    ("DELETE", "/api/uploads/{job}"),
    ("GET", "/api/uploads/{job}/errors"),
    ("GET", "/api/uploads/{job}/report.json"),
    ("GET", "/api/uploads/{job}/report.csv"),
    ("GET", "/api/schemas"),
    ("POST", "/api/schemas"),
    ("GET", "/api/schemas/{schema}"),
    ("GET", "/api/schemas/{schema}/patterns"),
];

const SCHEMA: &str = r#"{"fields": [{"name": "a", "type": "integer"}]}"#;

fn request(client: &Client, method: &str, path: &str) -> reqwest::RequestBuilder {
    let builder = client.request(Method::from_bytes(method.as_bytes()).unwrap(), path);
    with_body(builder, method, path)
}

fn with_body(
    builder: reqwest::RequestBuilder,
    method: &str,
    path: &str,
) -> reqwest::RequestBuilder {
    match (method, path) {
        ("POST", "/api/uploads") => builder.multipart(reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(b"a\n1\n".to_vec()).file_name("x.csv"),
        )),
        ("POST", _) => builder
            .header("content-type", "application/json")
            .body(SCHEMA),
        _ => builder,
    }
}

#[tokio::test]
async fn every_endpoint_refuses_strangers_and_hides_other_owners_data() {
    let server = TestServer::start(&[]);
    let ada = server.session().await;
    let response = ada
        .upload(None, &[("ada.csv", b"a\n1\nx\n".to_vec())])
        .await;
    let job = created_id(response).await;
    assert_eq!(ada.wait_final(&job).await.state, JobState::Valid);
    let response = request(&ada, "POST", "/api/schemas?name=ada-only")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let schema = response.json::<SchemaInfo>().await.unwrap().id;
    let fill = |path: &str| path.replace("{job}", &job).replace("{schema}", &schema);

    let revoked_token = create_token(&server.data_dir, Some(&ada.owner));
    assert_eq!(revoke_token(&server.data_dir, &revoked_token), Some(0));
    let strangers = [
        (
            "forged cookie",
            Auth::Cookie("dv_session=forged-value".into()),
        ),
        (
            "ada's cookie, tampered",
            match &ada.auth {
                Auth::Cookie(cookie) => Auth::Cookie(format!("{cookie}x")),
                Auth::Bearer(_) => unreachable!(),
            },
        ),
        ("made-up token", Auth::Bearer("dv_made-up".into())),
        ("revoked token", Auth::Bearer(revoked_token)),
    ];
    let anonymous = reqwest::Client::new();
    for (method, path) in ENDPOINTS {
        let path = fill(path);
        let plain = anonymous.request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            server.url(&path),
        );
        let response = with_body(plain, method, &path).send().await.unwrap();
        assert_eq!(
            response.status(),
            401,
            "{method} {path} without credentials"
        );
        for (who, auth) in &strangers {
            let stranger = Client {
                auth: auth.clone(),
                ..ada.clone()
            };
            let response = request(&stranger, method, &path).send().await.unwrap();
            assert_eq!(response.status(), 401, "{method} {path} with a {who}");
            assert_eq!(
                error_body(response).await.code,
                "unauthenticated",
                "{method} {path} with a {who}"
            );
        }
    }
    for (_, auth) in &strangers {
        let stranger = Client {
            auth: auth.clone(),
            ..ada.clone()
        };
        assert!(
            stranger.socket_with_origin("", None).await.is_err(),
            "no socket without a valid identity"
        );
    }

    // Another owner: ids of Ada's answer 404, lists leave her out, and nothing of hers changes.
    let bob = server.session().await;
    for (method, path) in ENDPOINTS {
        let path = fill(path);
        let response = request(&bob, method, &path).send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        if path.contains(&job) || path.contains(&schema) {
            assert_eq!(status, 404, "{method} {path} as another owner: {text}");
        } else {
            assert!(
                [200, 201].contains(&status),
                "{method} {path} as another owner: {status}"
            );
        }
        assert!(
            !text.contains(&job) && !text.contains("ada.csv") && !text.contains("ada-only"),
            "{method} {path} leaks: {text}"
        );
    }
    let mut socket = bob.socket("").await;
    let (_, jobs) = socket.greeting().await;
    assert!(
        jobs.iter().all(|j| j.id != job),
        "bob's snapshot holds only his jobs"
    );
    socket
        .send(&ClientMessage::Cancel {
            job_id: job.clone(),
        })
        .await;
    let answer = socket.next().await;
    assert!(matches!(answer, ServerMessage::Error { .. }), "{answer:?}");

    // A foreign page cannot act with Ada's cookie, nor open her socket.
    for (method, path) in ENDPOINTS.iter().filter(|(m, _)| *m != "GET") {
        let path = fill(path);
        let response = request(&ada, method, &path)
            .header("origin", "https://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            403,
            "{method} {path} from a foreign origin"
        );
    }
    assert!(ada
        .socket_with_origin("", Some("https://evil.example"))
        .await
        .is_err());

    assert_eq!(
        ada.job(&job).await.state,
        JobState::Valid,
        "Ada's job is untouched"
    );
    let response = ada.get(&format!("/api/schemas/{schema}")).await;
    assert_eq!(response.status(), 200, "Ada's schema is untouched");
}
