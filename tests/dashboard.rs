//! The dashboard end to end: the real server serving the release build of the dashboard,
//! driven in headless Chromium through WebDriver (chromedriver + fantoccini).
//!
//! Run by `cargo xtask test`, which builds `dist/` and the server first.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use datavista_testkit::{people_csv, TestServer};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const PATIENCE: Duration = Duration::from_secs(120);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// A child process killed when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The server serving the release dashboard from `dist/`, started by the test kit.
fn start_server(data_dir: &Path) -> (TestServer, String) {
    let binary = datavista_testkit::spawn::binary();
    assert!(
        binary.exists(),
        "{} is missing: run `cargo xtask test`",
        binary.display()
    );
    let dist = workspace().join("dist");
    assert!(
        dist.join("index.html").exists(),
        "dist/ is missing: run `cargo xtask test` (it runs `trunk build --release`)"
    );
    let server = TestServer::launch(TestServer::launcher(data_dir, &[]).dist_dir(&dist));
    let url = server.url("");
    (server, url)
}

async fn start_browser() -> (Running, Client) {
    let port = free_port();
    let driver = Command::new("/usr/bin/chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver is installed");
    let driver = Running(driver);
    let args = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,900",
    ];
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": "/usr/bin/chromium", "args": args }),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match ClientBuilder::native()
            .capabilities(capabilities.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => return (driver, client),
            Err(e) => {
                assert!(Instant::now() < deadline, "chromedriver did not start: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// (file name, state, errors) for every job row on the page.
async fn rows(client: &Client) -> Vec<(String, String, String)> {
    let script = "return Array.from(document.querySelectorAll('[data-testid=job-row]')).map(r => [
        r.querySelector('[data-testid=file-name]').textContent, r.dataset.state,
        r.querySelector('[data-testid=errors]').textContent]);";
    let value = client.execute(script, vec![]).await.unwrap();
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row[0].as_str().unwrap().to_owned(),
                row[1].as_str().unwrap().to_owned(),
                row[2].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn wait_for(
    client: &Client,
    what: &str,
    mut done: impl FnMut(&[(String, String, String)]) -> bool,
) -> Vec<(String, String, String)> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let rows = rows(client).await;
        if done(&rows) {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; rows: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Open the dashboard and wait until it is live and offers the built-in `people` schema.
async fn open_dashboard(client: &Client, url: &str) {
    client.goto(url).await.unwrap();
    client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css("[data-testid=connection].live"))
        .await
        .expect("the dashboard goes live");
    client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css("#schema option[value=people]"))
        .await
        .unwrap();
}

async fn choose_schema(client: &Client, id: &str) {
    client
        .find(Locator::Css("#schema"))
        .await
        .unwrap()
        .select_by_value(id)
        .await
        .unwrap();
}

/// The page came with the server's Content-Security-Policy and still works under it: it went
/// live (its inline loader and the WebAssembly ran, the WebSocket opened) and the styles
/// written at load time applied (inline `style` attributes would have been refused).
async fn assert_runs_under_the_content_security_policy(client: &Client) {
    let policy = client
        .execute_async(
            "const done = arguments[0];
             fetch(location.href).then(r => done(r.headers.get('content-security-policy')));",
            vec![],
        )
        .await
        .unwrap();
    let policy = policy
        .as_str()
        .expect("the page has a Content-Security-Policy");
    assert!(
        policy.contains("script-src 'self' 'wasm-unsafe-eval' 'sha256-"),
        "{policy}"
    );
    let display = client
        .execute(
            "return getComputedStyle(document.querySelector('[data-testid=file-input]')).display;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(display, "none", "the file input stays hidden");
}

/// WebDriver cannot drag files from the OS: load them through a hidden input, then drop
/// them on the dropzone as a DataTransfer, as a real drag would.
async fn drop_files(client: &Client, paths: &[PathBuf]) {
    client
        .execute("let i = document.getElementById('e2e-files'); if (!i) { i = document.createElement('input'); i.type = 'file'; i.multiple = true; i.id = 'e2e-files'; document.body.appendChild(i); } i.value = '';", vec![])
        .await
        .unwrap();
    let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    client
        .find(Locator::Id("e2e-files"))
        .await
        .unwrap()
        .send_keys(&paths.join("\n"))
        .await
        .unwrap();
    client
        .execute(
            "const dt = new DataTransfer();
             for (const f of document.getElementById('e2e-files').files) dt.items.add(f);
             const zone = document.querySelector('[data-testid=dropzone]');
             for (const type of ['dragenter', 'dragover', 'drop']) {
                 zone.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: dt }));
             }
             return dt.files.length;",
            vec![],
        )
        .await
        .unwrap();
}

/// The texts of the rows for files still in this tab (pre-checking, waiting, uploading).
async fn local_rows(client: &Client) -> Vec<String> {
    let value = client
        .execute(
            "return Array.from(document.querySelectorAll('[data-testid=local-row]')).map(r => r.textContent);",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(value).unwrap()
}

#[tokio::test]
#[ignore = "needs the release dashboard, the server binary and chromedriver: run `cargo xtask test`"]
async fn drop_three_files_and_watch_them_validate_live() {
    let temp = tempfile::tempdir().unwrap();
    let (_server, url) = start_server(&temp.path().join("data"));
    let (_driver, client) = start_browser().await;

    open_dashboard(&client, &url).await;
    assert_runs_under_the_content_security_policy(&client).await;
    choose_schema(&client, "people").await;
    client
        .execute("window.__sameDocument = true;", vec![])
        .await
        .unwrap();
    // Anything the page reports as an error from here on fails the test.
    client
        .execute(
            "window.__errors = [];
             window.addEventListener('error', e => window.__errors.push(String(e.message)));
             window.addEventListener('unhandledrejection', e => window.__errors.push(String(e.reason)));
             document.addEventListener('securitypolicyviolation',
                 e => window.__errors.push(`CSP refused ${e.blockedURI} (${e.violatedDirective})`));
             const original = console.error;
             console.error = (...args) => { window.__errors.push(args.join(' ')); original(...args); };",
            vec![],
        )
        .await
        .unwrap();

    let files = temp.path();
    std::fs::write(files.join("valid.csv"), people_csv(200, 0)).unwrap();
    std::fs::write(files.join("invalid.csv"), people_csv(200, 20)).unwrap();
    std::fs::write(files.join("big.csv"), people_csv(700_000, 0)).unwrap();
    let big_size = std::fs::metadata(files.join("big.csv")).unwrap().len();
    assert!(big_size > 30_000_000, "several tens of MB: {big_size}");

    let paths: Vec<PathBuf> = ["valid.csv", "invalid.csv", "big.csv"]
        .iter()
        .map(|n| files.join(n))
        .collect();
    drop_files(&client, &paths).await;

    // Watch every row until all three are final, remembering the states each went through.
    let mut seen: std::collections::HashMap<String, Vec<String>> = Default::default();
    let finals = wait_for(&client, "three final rows", |rows| {
        for (name, state, _) in rows {
            let states = seen.entry(name.clone()).or_default();
            if states.last() != Some(state) {
                states.push(state.clone());
            }
        }
        rows.len() == 3
            && rows
                .iter()
                .all(|(_, s, _)| ["valid", "invalid", "failed", "cancelled"].contains(&s.as_str()))
    })
    .await;
    let state_of = |rows: &[(String, String, String)], name: &str| {
        rows.iter()
            .find(|r| r.0 == name)
            .cloned()
            .unwrap_or_else(|| panic!("no row for {name}: {rows:?}"))
    };
    assert_eq!(state_of(&finals, "valid.csv").1, "valid");
    assert_eq!(state_of(&finals, "big.csv").1, "valid");
    let invalid = state_of(&finals, "invalid.csv");
    assert_eq!((invalid.1.as_str(), invalid.2.as_str()), ("invalid", "10"));
    let big_states = &seen["big.csv"];
    assert!(
        big_states
            .iter()
            .any(|s| s == "uploading" || s == "validating"),
        "the big file was seen in progress: {big_states:?}"
    );
    for states in seen.values() {
        let order = ["uploading", "queued", "validating", "valid", "invalid"];
        let positions: Vec<usize> = states
            .iter()
            .map(|s| order.iter().position(|o| o == s).unwrap())
            .collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "states only move forward: {states:?}"
        );
    }
    let same_document = client
        .execute("return window.__sameDocument === true;", vec![])
        .await
        .unwrap();
    assert_eq!(same_document, Value::Bool(true), "no reload happened");

    // The full check in the browser agrees with the server (the tab still has the file).
    for row in client
        .find_all(Locator::Css("[data-testid=job-row]"))
        .await
        .unwrap()
    {
        if row
            .find(Locator::Css("[data-testid=file-name]"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            == "invalid.csv"
        {
            row.find(Locator::XPath(".//button[contains(., 'Check in browser')]"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
        }
    }
    let verdict = client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css("[data-testid=browser-check]"))
        .await
        .unwrap();
    assert_eq!(
        verdict.text().await.unwrap().split(" (").next().unwrap(),
        "10 errors found in your browser too"
    );

    let errors = client
        .execute("return window.__errors;", vec![])
        .await
        .unwrap();
    assert_eq!(errors, json!([]), "no errors in the console");

    // A reload shows the same history.
    client.refresh().await.unwrap();
    client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css("[data-testid=connection].live"))
        .await
        .unwrap();
    let after_reload = wait_for(&client, "the history after a reload", |rows| {
        rows.len() == 3
    })
    .await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let chosen = client
            .execute("return document.getElementById('schema').value;", vec![])
            .await
            .unwrap();
        if chosen == json!("people") {
            break; // the schema choice survived the reload
        }
        assert!(
            Instant::now() < deadline,
            "the schema choice was forgotten: {chosen}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut before: Vec<_> = finals.clone();
    let mut after: Vec<_> = after_reload.clone();
    before.sort();
    after.sort();
    assert_eq!(before, after);

    // The invalid file's errors.
    let invalid_row = client
        .find_all(Locator::Css("[data-testid=job-row]"))
        .await
        .unwrap();
    for row in invalid_row {
        if row
            .find(Locator::Css("[data-testid=file-name]"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            == "invalid.csv"
        {
            row.click().await.unwrap();
        }
    }
    let table = client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css("[data-testid=error-table]"))
        .await
        .unwrap();
    let text = table.text().await.unwrap();
    assert!(
        text.contains("row 21, field 'age': 'x' is not an integer"),
        "{text}"
    );
    let panel = client
        .find(Locator::Css("[data-testid=errors-panel]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(panel.contains("type-error: 10"), "{panel}");

    let artifacts = workspace().join("target/e2e");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(
        artifacts.join("dashboard.png"),
        client.screenshot().await.unwrap(),
    )
    .unwrap();
    // And on a phone-sized window.
    client.set_window_size(390, 844).await.unwrap();
    std::fs::write(
        artifacts.join("dashboard-phone.png"),
        client.screenshot().await.unwrap(),
    )
    .unwrap();
    client.close().await.unwrap();
}

/// The browser fetches a chosen schema before it can pre-check against it. Its answer may
/// come late: after another schema was chosen, or after a file was dropped.
#[tokio::test]
#[ignore = "needs the release dashboard, the server binary and chromedriver: run `cargo xtask test`"]
async fn a_late_schema_answer_never_checks_a_file_against_the_wrong_schema() {
    let temp = tempfile::tempdir().unwrap();
    let (_server, url) = start_server(&temp.path().join("data"));
    let (_driver, client) = start_browser().await;
    open_dashboard(&client, &url).await;
    // Hold every answer for the `people` schema back 3 s (gloo-net fetches through
    // `window.fetch`), and count the ones that came back.
    client
        .execute(
            "window.__slowAnswers = 0;
             const original = window.fetch.bind(window);
             window.fetch = (input, init) => {
                 const url = typeof input === 'string' ? input : input.url;
                 if (!url.endsWith('/api/schemas/people')) return original(input, init);
                 return new Promise(r => setTimeout(r, 3000))
                     .then(() => original(input, init))
                     .finally(() => { window.__slowAnswers += 1; });
             };",
            vec![],
        )
        .await
        .unwrap();
    // Its header is not people's: checked against people it waits for "Upload anyway".
    let plain = temp.path().join("plain.csv");
    std::fs::write(&plain, "a,b\n1,2\n").unwrap();

    // 1. `people`, then at once "none": people's answer arrives last and must not count.
    choose_schema(&client, "people").await;
    choose_schema(&client, "").await;
    let deadline = Instant::now() + PATIENCE;
    while client
        .execute("return window.__slowAnswers;", vec![])
        .await
        .unwrap()
        != json!(1)
    {
        assert!(Instant::now() < deadline, "the held answer never came");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // the tab reads it
    drop_files(&client, std::slice::from_ref(&plain)).await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let blocked = local_rows(&client).await;
        assert!(
            !blocked.iter().any(|row| row.contains("check header")),
            "checked against a schema no longer chosen: {blocked:?}"
        );
        let done = rows(&client).await;
        if let Some((_, state, _)) = done.iter().find(|(name, _, _)| name == "plain.csv") {
            if state == "valid" {
                break;
            }
            assert!(
                ["uploading", "queued", "validating"].contains(&state.as_str()),
                "plain.csv without a schema: {done:?}"
            );
        }
        assert!(Instant::now() < deadline, "plain.csv never got a verdict");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // 2. `people`, and a file dropped while its answer is held back: checked against people.
    let other = temp.path().join("other.csv");
    std::fs::write(&other, "a,b\n3,4\n").unwrap();
    choose_schema(&client, "people").await;
    drop_files(&client, std::slice::from_ref(&other)).await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let waiting = local_rows(&client).await;
        if waiting
            .iter()
            .any(|row| row.contains("other.csv") && row.contains("check header"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "other.csv was not held for its header: {waiting:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !rows(&client)
            .await
            .iter()
            .any(|(name, _, _)| name == "other.csv"),
        "nothing was uploaded before the user confirms"
    );
    client.close().await.unwrap();
}
