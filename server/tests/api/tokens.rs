//! The `token` commands as a script uses them: `create` prints the token alone on stdout,
//! `revoke` never takes it from the command line, `list` never shows it, and a token past its
//! expiry gets 401 with a message that says so. A token authenticates a script (or shares an
//! owner's uploads), bad and revoked ones are refused, and `token create` can run while the
//! server starts on a fresh data dir.

use datavista_shared::http::{ErrorBody, Session};
use datavista_shared::protocol::JobState;
use datavista_testkit::{
    create_token, create_token_with, created_id, error_body, revoke_token, token_command, Auth,
    Client, TestServer,
};

/// `GET /api/session` with `token`: (status, the session, or the refusal's body).
async fn session_with(server: &TestServer, token: &str) -> (u16, Result<Session, ErrorBody>) {
    let response = Client::with_token(server, token).get("/api/session").await;
    let status = response.status().as_u16();
    let body = if response.status().is_success() {
        Ok(response.json().await.unwrap())
    } else {
        Err(error_body(response).await)
    };
    (status, body)
}

#[tokio::test]
async fn create_prints_the_token_alone_on_stdout_and_nowhere_else() {
    let server = TestServer::start(&[]);
    let output = token_command(&server.data_dir, &["create"], "");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let token = stdout.strip_suffix('\n').expect("one line");
    assert!(
        token.starts_with("dv_") && token.len() == 46 && !token.contains(char::is_whitespace),
        "stdout holds the token and nothing else: {stdout:?}"
    );
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        !stderr.contains(&token[3..]),
        "the secret is not repeated on stderr: {stderr}"
    );
    assert_eq!(session_with(&server, token).await.0, 200);
}

#[tokio::test]
async fn revoke_reads_the_token_from_stdin_or_a_file_never_from_argv() {
    let server = TestServer::start(&[]);
    let dir = &server.data_dir;
    let (on_stdin, in_file) = (create_token_with(dir, &[]), create_token_with(dir, &[]));

    let in_argv = token_command(dir, &["revoke", &on_stdin], "");
    assert_eq!(in_argv.status.code(), Some(2));
    let said = String::from_utf8_lossy(&in_argv.stderr);
    assert!(said.contains("--token-file"), "{said}");
    assert_eq!(session_with(&server, &on_stdin).await.0, 200, "not revoked");

    assert_eq!(revoke_token(dir, &format!("{on_stdin}\n")), Some(0));
    let (status, body) = session_with(&server, &on_stdin).await;
    assert_eq!(
        (status, body.err().map(|refusal| refusal.message)),
        (401, Some("unknown or revoked token".to_owned()))
    );

    let file = dir.join("token.txt");
    std::fs::write(&file, &in_file).unwrap();
    let by_file = ["revoke", "--token-file", file.to_str().unwrap()];
    assert_eq!(token_command(dir, &by_file, "").status.code(), Some(0));
    assert_eq!(session_with(&server, &in_file).await.0, 401);
    assert_eq!(
        token_command(dir, &by_file, "").status.code(),
        Some(1),
        "already revoked"
    );

    let nothing = token_command(dir, &["revoke"], "");
    assert_eq!(nothing.status.code(), Some(2), "which token must be said");
    let two = token_command(dir, &["revoke", "--token-file", "-"], "dv_a dv_b");
    assert_eq!(two.status.code(), Some(2), "one token at a time");
}

#[tokio::test]
async fn tokens_are_listed_without_their_secret_and_revoked_by_id() {
    let server = TestServer::start(&[]);
    let dir = &server.data_dir;
    let lasting = create_token_with(dir, &[]);
    let expiring = create_token_with(dir, &["--expires-in", "30d"]);

    let list = || {
        let output = token_command(dir, &["list"], "");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let listed = list();
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two tokens: {listed}");
    assert!(lines[0].starts_with("ID "), "{listed}");
    for token in [&lasting, &expiring] {
        assert!(!listed.contains(&token[3..10]), "a secret shows: {listed}");
        assert!(listed.contains(&format!("{}…", &token[..7])), "{listed}");
    }
    let row = |token: &str| {
        *lines
            .iter()
            .find(|line| line.contains(&token[..7]))
            .unwrap()
    };
    assert!(row(&lasting).contains("never"), "{listed}");
    assert!(row(&expiring).contains(" UTC"), "{listed}");

    let id = row(&expiring).split_whitespace().next().unwrap().to_owned();
    let revoked = token_command(dir, &["revoke", "--id", &id], "");
    assert_eq!(revoked.status.code(), Some(0), "{revoked:?}");
    assert_eq!(session_with(&server, &expiring).await.0, 401);
    assert_eq!(session_with(&server, &lasting).await.0, 200);
    assert!(!list().contains(&id));
    let again = token_command(dir, &["revoke", "--id", &id], "");
    assert_eq!(again.status.code(), Some(1));
}

#[tokio::test]
async fn an_expired_token_gets_401_and_says_so() {
    let server = TestServer::start(&[]);
    let dir = &server.data_dir;
    let expired = create_token_with(dir, &["--expires-in", "1s"]);
    let valid = create_token_with(dir, &["--expires-in", "1d"]);
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;

    let (status, body) = session_with(&server, &expired).await;
    let refusal = body.err();
    assert_eq!(
        (
            status,
            refusal.as_ref().map(|refusal| refusal.code.as_str())
        ),
        (401, Some("unauthenticated"))
    );
    let message = refusal.unwrap().message;
    assert!(message.contains("expired at"), "{message}");
    assert_eq!(session_with(&server, &valid).await.0, 200);
    let socket = Client::with_token(&server, &expired)
        .socket_with_origin("", None)
        .await;
    assert!(socket.is_err(), "no socket with an expired token");

    for bad in ["30", "30x", "0d", "-1d", "99999999999d"] {
        let refused = token_command(dir, &["create", "--expires-in", bad], "");
        assert_eq!(refused.status.code(), Some(2), "--expires-in {bad}");
        assert!(refused.stdout.is_empty(), "no token for --expires-in {bad}");
    }
}

#[tokio::test]
async fn tokens_authenticate_scripts_and_bad_ones_are_refused() {
    let server = TestServer::start(&[]);
    let ada = server.session().await;
    let id = created_id(ada.upload(None, &[("a.csv", b"a,b\n1,2\n".to_vec())]).await).await;

    let shared = Client::with_token(&server, &create_token(&server.data_dir, Some(&ada.owner)));
    assert_eq!(
        shared.wait_final(&id).await.state,
        JobState::Valid,
        "a token given to Ada's owner sees her uploads"
    );
    let own = Client::with_token(&server, &create_token(&server.data_dir, None));
    assert_eq!(own.get(&format!("/api/uploads/{id}")).await.status(), 404);
    let script_job = created_id(own.upload(None, &[("s.csv", b"x\n1\n".to_vec())]).await).await;
    assert_eq!(own.wait_final(&script_job).await.state, JobState::Valid);

    let forged = Client::with_token(&server, "dv_not-a-real-token");
    let response = forged.get("/api/uploads").await;
    assert_eq!(response.status(), 401);
    assert_eq!(error_body(response).await.code, "unauthenticated");
    assert!(
        forged.socket_with_origin("", None).await.is_err(),
        "no WebSocket with a bad token"
    );
    let anonymous = reqwest::get(server.url("/api/uploads")).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let tampered = Client {
        auth: Auth::Cookie("dv_session=forged-value".into()),
        ..ada.clone()
    };
    assert_eq!(tampered.get("/api/uploads").await.status(), 401);

    let revoked_token = create_token(&server.data_dir, None);
    let revoked = Client::with_token(&server, &revoked_token);
    assert_eq!(revoked.get("/api/uploads").await.status(), 200);
    assert_eq!(revoke_token(&server.data_dir, &revoked_token), Some(0));
    let response = revoked.get("/api/uploads").await;
    assert_eq!(response.status(), 401, "a revoked token is refused at once");
    assert!(revoked.socket_with_origin("", None).await.is_err());
    assert_eq!(
        revoke_token(&server.data_dir, &revoked_token),
        Some(1),
        "revoking twice says there is no such token"
    );
}

#[tokio::test]
async fn token_create_and_serve_can_start_together_on_a_fresh_data_dir() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let token_dir = data_dir.clone();
    let tokens = std::thread::spawn(move || {
        (0..3)
            .map(|_| create_token(&token_dir, None))
            .collect::<Vec<_>>()
    });
    let server = TestServer::start_in(&data_dir, &[]);
    for token in tokens.join().unwrap() {
        assert_eq!(
            Client::with_token(&server, &token)
                .get("/api/uploads")
                .await
                .status(),
            200
        );
    }
}
