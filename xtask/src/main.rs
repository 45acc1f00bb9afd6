//! Project tasks, run as `cargo xtask <task>` (the cargo-xtask convention: plain Rust, no
//! extra tools to install first).
//!
//! - `cargo xtask test` — install what the tests need when it is missing, then run every test:
//!   the workspace's unit, property and integration tests, and the WebAssembly tests in
//!   headless Chromium.
//! - `cargo xtask setup` — only the installs.

mod tools;

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let task = std::env::args().nth(1).unwrap_or_default();
    let result = match task.as_str() {
        "test" => tools::ensure_test_tools().and_then(|()| test()),
        "setup" => tools::ensure_test_tools(),
        _ => {
            eprintln!("usage: cargo xtask <test|setup>");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask {task}: {message}");
            ExitCode::FAILURE
        }
    }
}

fn test() -> Result<(), String> {
    step("native tests: unit, property, integration, command line");
    run(Command::new(cargo()).args(["test", "--workspace", "--all-features"]))?;
    step("WebAssembly tests in headless Chromium");
    run(Command::new(cargo()).args(["test", "--target", "wasm32-unknown-unknown", "-p", "datavista-shared", "--test", "wasm"]))?;
    Ok(())
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

pub fn step(what: &str) {
    eprintln!("\n==> {what}");
}

/// Run a command to the end; its output goes straight to the terminal.
pub fn run(command: &mut Command) -> Result<(), String> {
    let status = command.status().map_err(|e| format!("cannot start {command:?}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{command:?} failed ({status})")) }
}
