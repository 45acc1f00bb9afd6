//! The `token` commands as a script uses them: `create` prints the token alone on stdout,
//! `revoke` never takes it from the command line, `list` never shows it, and a token past its
//! expiry gets 401 with a message that says so.

mod support;

use support::{create_token_with, revoke_token, token_command, Client, TestServer};

/// `GET /api/session` with `token`: (status, body).
async fn session_with(server: &TestServer, token: &str) -> (u16, serde_json::Value) {
    let response = Client::with_token(server, token).get("/api/session").await;
    (response.status().as_u16(), response.json().await.unwrap())
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
        (status, body["message"].as_str()),
        (401, Some("unknown or revoked token"))
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
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    let message = body["message"].as_str().unwrap();
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
