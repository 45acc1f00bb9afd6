//! The `datavista token` commands, as a test runs them to get a script's token.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::spawn::binary;

/// `datavista token ARGS… --data-dir DIR`, with `stdin` on its standard input.
pub fn token_command(data_dir: &Path, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut command = Command::new(binary())
        .arg("token")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = command.stdin.take().unwrap();
    let _ = input.write_all(stdin.as_bytes()); // a command that reads nothing may be gone
    drop(input);
    command.wait_with_output().unwrap()
}

/// `datavista token revoke --token-file -`, the token on standard input; its exit code.
pub fn revoke_token(data_dir: &Path, token: &str) -> Option<i32> {
    token_command(data_dir, &["revoke", "--token-file", "-"], token)
        .status
        .code()
}

pub fn create_token(data_dir: &Path, owner: Option<&str>) -> String {
    match owner {
        Some(owner) => create_token_with(data_dir, &["--owner", owner]),
        None => create_token_with(data_dir, &[]),
    }
}

/// `datavista token create --data-dir DIR EXTRA…` (e.g. `--database-url URL`).
pub fn create_token_with(data_dir: &Path, extra: &[&str]) -> String {
    let output = token_command(data_dir, &[&["create"], extra].concat(), "");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}
