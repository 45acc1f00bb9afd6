//! Project tasks, run as `cargo xtask <task>` (the cargo-xtask convention: plain Rust, no
//! extra tools to install first).
//!
//! - `cargo xtask test` — install what the tests need when it is missing, then run every test:
//!   the workspace's unit, property and integration tests, the WebAssembly tests in headless
//!   Chromium, the differential test against frictionless-py (pinned, in a venv under target/),
//!   and the end-to-end test of the release dashboard against the real server.
//! - `cargo xtask run` — install what is missing, build the dashboard and the server in
//!   release mode, and start `datavista serve` on http://127.0.0.1:8080.
//! - `cargo xtask dist` — build the dashboard (`trunk build --release`) and print its size.
//! - `cargo xtask bench <validator|precheck|dashboard|push|nodes|idle|ingest|verdict> [flags]` — the
//!   benchmarks of BENCHMARKS.md; the server scenarios run `datavista-loadgen` against the
//!   release server (`cargo xtask bench push --help` lists the flags).
//! - `cargo xtask fuzz [--seconds N] [TARGET...]` — run the fuzz targets in `fuzz/` (default
//!   60 s each; `cargo xtask test` runs them too). Inputs that once crashed live in
//!   `fuzz/seeds/TARGET/`, so every run replays them first.
//! - `cargo xtask soak [flags]` — minutes of tabs and uploads against the release server while
//!   it is SIGKILLed and restarted, tabs drop and its data disk fills (a tmpfs: needs root);
//!   then every job and tab is checked (`cargo xtask soak --help` lists the flags).
//! - `cargo xtask setup` — only the installs.

mod tools;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let task = std::env::args().nth(1).unwrap_or_default();
    let result = match task.as_str() {
        "test" => tools::ensure_test_tools().and_then(|()| test()),
        "run" => tools::ensure_build_tools().and_then(|()| serve()),
        "dist" => tools::ensure_build_tools().and_then(|()| build_dashboard()),
        "setup" => tools::ensure_test_tools(),
        // The soak is the load generator's `soak` scenario, against the release server.
        "soak" => bench(
            std::iter::once("soak".to_owned())
                .chain(std::env::args().skip(2))
                .collect(),
        ),
        "fuzz" => {
            tools::ensure_cargo_fuzz().and_then(|()| fuzz(std::env::args().skip(2).collect()))
        }
        "bench" => bench(std::env::args().skip(2).collect()),
        _ => {
            eprintln!("usage: cargo xtask <test|run|dist|bench|fuzz|soak|setup>");
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
    step("native tests: unit, property, integration, command line, server");
    run(Command::new(cargo()).args(["test", "--workspace"]))?;
    step(&format!(
        "differential test against frictionless-py {} (target/frictionless-venv)",
        tools::FRICTIONLESS_VERSION
    ));
    run(Command::new(cargo())
        .args([
            "test",
            "-p",
            "datavista-shared",
            "--test",
            "frictionless_parity",
            "--",
            "--ignored",
        ])
        .env(
            "DATAVISTA_FRICTIONLESS",
            tools::frictionless_venv().join("bin/frictionless"),
        ))?;
    step("WebAssembly tests in headless Chromium");
    run(Command::new(cargo()).args([
        "test",
        "--target",
        "wasm32-unknown-unknown",
        "-p",
        "datavista-shared",
        "--test",
        "wasm",
    ]))?;
    run(Command::new(cargo()).args([
        "test",
        "--target",
        "wasm32-unknown-unknown",
        "-p",
        "datavista-frontend",
        "--lib",
        "--test",
        "browser",
    ]))?;
    build_dashboard()?;
    step("end-to-end: the real server and the release dashboard in headless Chromium");
    run(Command::new(cargo()).args(["build", "-p", "datavista"]))?;
    run(Command::new(cargo())
        .args([
            "test",
            "-p",
            "datavista-e2e",
            "--test",
            "dashboard",
            "--",
            "--ignored",
        ])
        .env("DATAVISTA_BIN", workspace().join("target/debug/datavista")))?;
    eprintln!("screenshot of the dashboard: target/e2e/dashboard.png");
    fuzz(Vec::new())
}

/// The pre-check's speed in headless Chromium (built like the dashboard), then the native
/// validator on the same 20 MB, and the ratio of the two.
fn precheck_bench() -> Result<(), String> {
    step("the validator as WebAssembly in headless Chromium (profile wasm-release, like the dashboard)");
    let wasm = run_captured(Command::new(cargo()).args([
        "test",
        "--profile",
        "wasm-release",
        "--target",
        "wasm32-unknown-unknown",
        "-p",
        "datavista-shared",
        "--test",
        "wasm_bench",
        "--",
        "--nocapture",
    ]))?;
    step("the native validator on the same bytes (release)");
    let native = run_captured(
        Command::new(cargo())
            .args([
                "bench",
                "-p",
                "datavista-shared",
                "--bench",
                "throughput",
                "--",
            ])
            // A filter no criterion benchmark matches: only the interleaved ratio runs.
            .arg("no-criterion-benchmark-matches-this")
            .env("DATAVISTA_BENCH_MB", "20"),
    )?;
    let wasm_rate = figure_after(&wasm, "RESULT wasm full check MB/s: median");
    let native_rate = figure_after(&native, "full typed validation:");
    match (wasm_rate, native_rate) {
        (Some(wasm), Some(native)) => {
            eprintln!(
                "RESULT full local check: wasm {wasm:.1} MB/s = {:.0} % of native {native:.1} MB/s (goal ≥ 30 %)",
                100.0 * wasm / native
            );
            Ok(())
        }
        _ => Err("a figure is missing from the output above".to_owned()),
    }
}

/// Run a command, show its output, and return it (stdout and stderr) for reading figures.
fn run_captured(command: &mut Command) -> Result<String, String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot start {command:?}: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprint!("{text}");
    if output.status.success() {
        Ok(text)
    } else {
        Err(format!("{command:?} failed ({})", output.status))
    }
}

/// The first number after `label` in `text`.
fn figure_after(text: &str, label: &str) -> Option<f64> {
    let rest = &text[text.find(label)? + label.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// The targets in fuzz/fuzz_targets/.
const FUZZ_TARGETS: [&str; 3] = ["validator_chunks", "schema_json", "client_message"];

/// `cargo fuzz run` for each target, for a bounded time, seeded from fuzz/seeds/TARGET/ (the
/// committed corpus and every input that once crashed); new finds go to fuzz/corpus/TARGET/.
fn fuzz(args: Vec<String>) -> Result<(), String> {
    let mut seconds = 60;
    let mut targets = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--seconds takes a number")?
            }
            target if FUZZ_TARGETS.contains(&target) => targets.push(target.to_owned()),
            other => return Err(format!("unknown fuzz target or flag '{other}'")),
        }
    }
    if targets.is_empty() {
        targets = FUZZ_TARGETS.map(str::to_owned).to_vec();
    }
    let fuzz_dir = workspace().join("fuzz");
    for target in targets {
        step(&format!("fuzzing {target} for {seconds} s"));
        let corpus = fuzz_dir.join("corpus").join(&target);
        std::fs::create_dir_all(&corpus).map_err(|e| e.to_string())?;
        run(Command::new(cargo())
            .args(["fuzz", "run", "--sanitizer", "none", "-O", &target])
            .arg(&corpus)
            .arg(fuzz_dir.join("seeds").join(&target))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .args(["-max_len=4096", "-print_final_stats=1"])
            .current_dir(&fuzz_dir))
        .map_err(|e| format!("{e}; the input that failed is in fuzz/artifacts/{target}/"))?;
    }
    Ok(())
}

/// `trunk build --release` into dist/, with our wasm-opt first on PATH; prints the size.
fn build_dashboard() -> Result<(), String> {
    step("building the dashboard (trunk build --release)");
    let path = format!(
        "{}:{}",
        tools::tools_bin().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    run(Command::new("trunk")
        .args(["build", "--release"])
        .current_dir(workspace())
        .env("PATH", path)
        .env("TRUNK_SKIP_VERSION_CHECK", "true"))?;
    print_dashboard_size(&workspace().join("dist"))
}

/// The gzipped size of the wasm and JS the browser downloads, to keep an eye on it.
fn print_dashboard_size(dist: &Path) -> Result<(), String> {
    let mut total = 0;
    for entry in std::fs::read_dir(dist).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if !matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("wasm" | "js")
        ) {
            continue;
        }
        let raw = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
        let gzipped = Command::new("sh")
            .arg("-c")
            .arg(format!("gzip -9 -c '{}' | wc -c", path.display()))
            .output()
            .map_err(|e| e.to_string())?;
        let gzipped: u64 = String::from_utf8_lossy(&gzipped.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        total += gzipped;
        eprintln!(
            "  {}: {} KB, {} KB gzipped",
            path.file_name().unwrap_or_default().to_string_lossy(),
            raw / 1024,
            gzipped / 1024
        );
    }
    eprintln!(
        "  dashboard download: {} KB gzipped (wasm + JS)",
        total / 1024
    );
    Ok(())
}

fn bench(args: Vec<String>) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("validator") => run(Command::new(cargo()).args([
            "bench",
            "-p",
            "datavista-shared",
            "--bench",
            "throughput",
        ])),
        Some("dashboard") => tools::ensure_build_tools().and_then(|()| build_dashboard()),
        Some("precheck") => tools::ensure_test_tools().and_then(|()| precheck_bench()),
        Some(_) => {
            step("building the server and the load generator (release)");
            run(Command::new(cargo()).args([
                "build",
                "--release",
                "-p",
                "datavista",
                "-p",
                "datavista-loadgen",
            ]))?;
            run(
                Command::new(workspace().join("target/release/datavista-loadgen"))
                    .args(&args)
                    .current_dir(workspace())
                    .env(
                        "DATAVISTA_BIN",
                        workspace().join("target/release/datavista"),
                    ),
            )
        }
        None => Err(
            "usage: cargo xtask bench <validator|precheck|dashboard|push|nodes|idle|ingest|verdict> [flags]"
                .to_owned(),
        ),
    }
}

fn serve() -> Result<(), String> {
    build_dashboard()?;
    step("building the server (release)");
    run(Command::new(cargo()).args(["build", "--release", "-p", "datavista"]))?;
    step("starting DataVista: open http://127.0.0.1:8080 (Ctrl-C stops it)");
    run(Command::new(workspace().join("target/release/datavista"))
        .arg("serve")
        .current_dir(workspace()))
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

pub fn step(what: &str) {
    eprintln!("\n==> {what}");
}

/// Run a command to the end; its output goes straight to the terminal.
pub fn run(command: &mut Command) -> Result<(), String> {
    let status = command
        .status()
        .map_err(|e| format!("cannot start {command:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed ({status})"))
    }
}
