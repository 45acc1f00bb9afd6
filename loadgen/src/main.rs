//! `datavista-loadgen`: the load generator behind BENCHMARKS.md. Every scenario starts the
//! release server on 127.0.0.1:0 with a fresh data dir, measures, and prints each run plus
//! the median and min–max over runs, next to a baseline measured in the same run.
//! Run it through `cargo xtask bench <scenario> [flags]`, which builds the server first.
//!
//! ## Layout
//! - `server`: the server under test, started through `datavista_testkit`'s `Launch`, and
//!   what is read from outside it (RSS, CPU time).
//! - `push`, `nodes`, `idle`, `ingest`, `soak`: one module per scenario (`small_disk`: the
//!   soak's tmpfs data disk).
//! - `csv`: the files uploaded; `stats`: summaries of the samples.

mod csv;
mod idle;
mod ingest;
mod nodes;
mod push;
mod server;
mod small_disk;
mod soak;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use server::Server;

#[derive(Parser)]
#[command(about = "Load generator for DataVista's benchmarks")]
struct Cli {
    /// The server binary (a release build).
    #[arg(
        long,
        global = true,
        env = "DATAVISTA_BIN",
        default_value = "target/release/datavista"
    )]
    server: PathBuf,
    /// Repeat the measurement this many times (each on a fresh server).
    #[arg(long, global = true, default_value_t = 3)]
    runs: usize,
    #[command(subcommand)]
    scenario: Scenario,
}

/// Owners, tabs and jobs of a push measurement.
#[derive(clap::Args, Clone, Copy)]
struct LoadArgs {
    #[arg(long, default_value_t = 1000)]
    owners: usize,
    /// Tabs (WebSocket connections) per owner.
    #[arg(long, default_value_t = 1)]
    tabs: usize,
    /// Small jobs finishing per second, spread over the owners.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
}

impl LoadArgs {
    fn load(self, poll_every: Option<f64>, pollers: usize) -> push::Load {
        push::Load {
            owners: self.owners,
            tabs: self.tabs,
            jobs_per_sec: self.rate,
            seconds: self.seconds,
            poll_every,
            pollers,
        }
    }
}

#[derive(Subcommand)]
enum Scenario {
    /// Jobs finishing while dashboards watch: delay from "final state stored" to "seen".
    Push {
        #[command(flatten)]
        load: LoadArgs,
        /// Big validations running the whole time.
        #[arg(long, default_value_t = 2)]
        background: usize,
        /// Poll `GET /api/uploads` every this many seconds instead of a WebSocket.
        #[arg(long)]
        poll_every: Option<f64>,
        /// This many more dashboards poll `GET /api/uploads` every second beside the measured
        /// ones (read load; spread over the owners; the bare floor has none).
        #[arg(long, default_value_t = 0)]
        pollers: usize,
    },
    /// The push load on one node (embedded defaults), one node on PostgreSQL + Redis, and two
    /// nodes (tabs on one, uploads through the other).
    Nodes {
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Hold many idle dashboard WebSockets; server RSS per connection.
    Idle {
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        #[arg(long, default_value_t = 3)]
        tabs: usize,
    },
    /// Minutes of tabs and uploads while the server is SIGKILLed and restarted, tabs drop and
    /// the data disk (a tmpfs; needs root) fills; then every job and tab is checked.
    Soak(soak::Plan),
    /// Upload one big file; ingest rate against `dd` of the same bytes, server RSS growth.
    Ingest {
        #[arg(long, default_value_t = 2048)]
        mb: u64,
    },
    /// Upload + validate one big file end to end, against upload alone and validation alone.
    Verdict {
        #[arg(long, default_value_t = 500)]
        mb: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("loadgen: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    if !cli.server.exists() {
        return Err(format!(
            "no server binary at {}: build it with `cargo build --release -p datavista`",
            cli.server.display()
        ));
    }
    println!(
        "machine: {} cores, {} GiB memory",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory_gib()
    );
    match cli.scenario {
        Scenario::Push {
            load,
            background,
            poll_every,
            pollers,
        } => {
            let load = load.load(poll_every, pollers);
            println!("push: {load:?}, {background} validations in the background");
            let (mut ours, mut floor) = (Vec::new(), Vec::new());
            for run in 1..=cli.runs {
                let server = Server::start(&cli.server, &[])?;
                let busy = push::Background::start(&server, background).await?;
                let outcome = push::run_datavista(&server, load).await?;
                print_push(&format!("run {run} datavista"), &outcome);
                ours.push(outcome);
                if poll_every.is_none() {
                    // Same machine, same background validations still running.
                    let bare = push::run_bare(load).await?;
                    print_push(&format!("run {run} bare floor"), &bare);
                    floor.push(bare);
                }
                busy.stop().await;
            }
            let p99 = |o: &push::Outcome| o.delay.p99;
            let mean = |o: &push::Outcome| o.delay.mean;
            report("datavista p99 ms", ours.iter().map(p99).collect());
            report("datavista mean ms", ours.iter().map(mean).collect());
            report(
                "datavista messages/s",
                ours.iter().map(|o| o.messages_per_sec).collect(),
            );
            report(
                "server CPU (cores busy)",
                ours.iter().map(|o| o.server_cpu_per_sec).collect(),
            );
            if !floor.is_empty() {
                report("bare floor p99 ms", floor.iter().map(p99).collect());
                report("bare floor mean ms", floor.iter().map(mean).collect());
            }
        }
        Scenario::Nodes { load } => {
            let load = load.load(None, 0);
            println!("nodes: {load:?}");
            let mut outcomes: [Vec<push::Outcome>; 3] = Default::default();
            for run in 1..=cli.runs {
                let results = nodes::run(&cli.server, load).await?;
                for (i, outcome) in results.into_iter().enumerate() {
                    print_push(&format!("run {run} {}", nodes::SETUPS[i]), &outcome);
                    outcomes[i].push(outcome);
                }
            }
            for (setup, runs) in nodes::SETUPS.iter().zip(&outcomes) {
                report(
                    &format!("{setup}: p99 ms"),
                    runs.iter().map(|o| o.delay.p99).collect(),
                );
                report(
                    &format!("{setup}: mean ms"),
                    runs.iter().map(|o| o.delay.mean).collect(),
                );
                report(
                    &format!("{setup}: messages/s"),
                    runs.iter().map(|o| o.messages_per_sec).collect(),
                );
                report(
                    &format!("{setup}: server CPU (cores busy)"),
                    runs.iter().map(|o| o.server_cpu_per_sec).collect(),
                );
            }
        }
        Scenario::Idle { connections, tabs } => {
            let mut per_connection = Vec::new();
            for run in 1..=cli.runs {
                let server = Server::start(&cli.server, &[])?;
                let outcome = idle::run(&server, connections, tabs, Duration::from_secs(3)).await?;
                println!(
                    "run {run}: {}/{} accepted; server RSS {} → {} KiB: {:.1} KiB per connection",
                    outcome.accepted,
                    outcome.connections,
                    outcome.rss_before_kib,
                    outcome.rss_after_kib,
                    outcome.kib_per_connection()
                );
                if outcome.accepted < outcome.connections {
                    return Err(format!(
                        "only {} of {} connections were accepted",
                        outcome.accepted, outcome.connections
                    ));
                }
                per_connection.push(outcome.kib_per_connection());
            }
            report("KiB per idle connection", per_connection);
        }
        Scenario::Ingest { mb } => {
            let dir = bench_dir()?;
            let file = dir.path().join("ingest.csv");
            let bytes = csv::write_file(&file, mb << 20).map_err(|e| e.to_string())?;
            println!("file: {bytes} bytes");
            let (mut ratios, mut growth, mut rates, mut dd_rates) =
                (vec![], vec![], vec![], vec![]);
            for run in 1..=cli.runs {
                let server = Server::start(&cli.server, &[])?;
                let dd = ingest::dd(&file, &server.data_dir)?;
                let upload = ingest::upload(&server, &file, None).await?;
                let (rate, dd_rate) = (mb_per_s(bytes, upload.seconds), mb_per_s(bytes, dd));
                println!(
                    "run {run}: upload {rate:.0} MB/s, dd {dd_rate:.0} MB/s ({:.0} %), server RSS +{} KiB",
                    100.0 * rate / dd_rate,
                    upload.rss_growth_kib
                );
                ratios.push(rate / dd_rate);
                growth.push(upload.rss_growth_kib as f64 / 1024.0);
                rates.push(rate);
                dd_rates.push(dd_rate);
            }
            report("upload MB/s", rates);
            report("dd MB/s", dd_rates);
            report("upload / dd", ratios);
            report("server RSS growth MiB", growth);
        }
        Scenario::Soak(plan) => {
            println!("soak: {plan:?}");
            let outcome = soak::run(&cli.server, plan).await?;
            println!(
                "RESULT soak: {} tabs, {} uploads sent: {} accepted, refused {:?}, {} cut off; {} SIGKILLs, {} tab drops, {} disk fills; {} jobs checked; server RSS {} KiB at the start, {} KiB at the end; problems: {}",
                outcome.tabs,
                outcome.uploads_sent,
                outcome.accepted,
                outcome.refused,
                outcome.broken,
                outcome.kills,
                outcome.tab_drops,
                outcome.disk_fills,
                outcome.jobs_checked,
                outcome.rss_baseline_kib,
                outcome.rss_end_kib,
                outcome.problems.len()
            );
            for problem in outcome.problems.iter().take(30) {
                println!("PROBLEM {problem}");
            }
            if !outcome.problems.is_empty() {
                return Err(format!(
                    "the soak found {} problems",
                    outcome.problems.len()
                ));
            }
        }
        Scenario::Verdict { mb } => {
            let dir = bench_dir()?;
            let file = dir.path().join("verdict.csv");
            let bytes = csv::write_file(&file, mb << 20).map_err(|e| e.to_string())?;
            println!("file: {bytes} bytes");
            let (mut ratios, mut verdicts) = (vec![], vec![]);
            for run in 1..=cli.runs {
                let server = Server::start(&cli.server, &[])?;
                let schema = dir.path().join("people.json");
                std::fs::write(&schema, server.schema_body("people").await?)
                    .map_err(|e| e.to_string())?;
                let alone = ingest::validate_alone(&cli.server, &file, &schema)?;
                let upload = ingest::upload(&server, &file, None).await?;
                let verdict = ingest::verdict(&server, &file).await?;
                let longer = alone.max(upload.seconds);
                println!(
                    "run {run}: validation alone {alone:.2} s, upload alone {:.2} s, \
                     upload + validation {:.2} s ({}; upload done at {:.2} s) = {:.2} × the longer",
                    upload.seconds,
                    verdict.verdict_seconds,
                    verdict.state,
                    verdict.upload_seconds,
                    verdict.verdict_seconds / longer
                );
                ratios.push(verdict.verdict_seconds / longer);
                verdicts.push(verdict.verdict_seconds);
            }
            report("time to verdict s", verdicts);
            report("verdict / longer of the two alone", ratios);
        }
    }
    Ok(())
}

fn print_push(label: &str, outcome: &push::Outcome) {
    println!(
        "{label}: {} jobs at {:.1}/s; delay {}; {:.0} messages/s; lost {}; snapshots {}; server CPU {:.2} cores",
        outcome.jobs,
        outcome.jobs_per_sec,
        outcome.delay,
        outcome.messages_per_sec,
        outcome.lost,
        outcome.snapshots,
        outcome.server_cpu_per_sec
    );
}

/// Median and min–max of one figure over the runs.
fn report(what: &str, mut values: Vec<f64>) {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        return;
    }
    println!(
        "RESULT {what}: median {:.3} (min {:.3}, max {:.3}, {} runs)",
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
        values.len()
    );
}

fn mb_per_s(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / 1e6 / seconds
}

/// Big generated files go next to the data dirs (same disk), under DATAVISTA_BENCH_DIR or ".".
fn bench_dir() -> Result<tempfile::TempDir, String> {
    tempfile::Builder::new()
        .prefix("datavista-bench-files")
        .tempdir_in(std::env::var_os("DATAVISTA_BENCH_DIR").unwrap_or_else(|| ".".into()))
        .map_err(|e| format!("cannot make a temp dir: {e}"))
}

fn memory_gib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib.div_ceil(1 << 20))
}
