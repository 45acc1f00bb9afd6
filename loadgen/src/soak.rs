//! Soak with faults: many dashboard tabs over many owners and a steady stream of uploads, for
//! minutes, while the server is killed with SIGKILL and restarted, tabs are dropped at random
//! and the data disk (a size-limited tmpfs) is filled until writes fail. Then everything is
//! checked against what was sent:
//!
//! - every upload the server accepted (201) ends valid or invalid with its file's exact error
//!   count, row count and size; every upload cut by a fault ends in a final state; nothing is
//!   stuck or listed twice;
//! - every tab, once it has caught up, shows exactly the owner's jobs and states;
//! - no file on disk without its job;
//! - the server never exited except when killed, and its memory is back near its baseline.
//!
//! Files have no schema: their only errors are rows with a missing cell, so each file's
//! verdict is known exactly before it is sent.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datavista_shared::http::{JobPage, UploadsCreated};
use datavista_shared::protocol::{Job, JobState, ServerMessage};
use datavista_shared::ErrorCode;
use datavista_testkit::{upload_form, LiveView};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::server::Server;
use crate::small_disk::SmallDisk;

/// The load and the faults (the `soak` subcommand's flags).
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Plan {
    #[arg(long, default_value_t = 300.0)]
    pub seconds: f64,
    #[arg(long, default_value_t = 200)]
    pub owners: usize,
    /// Tabs (WebSocket connections) per owner.
    #[arg(long, default_value_t = 5)]
    pub tabs: usize,
    /// Uploads in flight at once.
    #[arg(long, default_value_t = 20)]
    pub uploaders: usize,
    /// Seconds between SIGKILLs.
    #[arg(long, default_value_t = 60.0)]
    pub kill_every: f64,
    /// Size of the data disk, in MB.
    #[arg(long, default_value_t = 2048)]
    pub disk_mb: u64,
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub tabs: usize,
    pub uploads_sent: u64,
    pub accepted: u64,
    /// Answered with an error status (disk full, too many at once, …).
    pub refused: BTreeMap<u16, u64>,
    /// The connection broke (the server was killed mid-upload).
    pub broken: u64,
    pub kills: u64,
    pub tab_drops: u64,
    pub disk_fills: u64,
    pub jobs_checked: u64,
    /// Problems found by the final checks; empty means the soak passed.
    pub problems: Vec<String>,
    pub rss_baseline_kib: u64,
    pub rss_end_kib: u64,
}

/// One of the files the uploaders send, and what its report must say.
struct Shape {
    bytes: Arc<Vec<u8>>,
    rows: u64,
    missing_cells: u64,
}

/// What one upload was, and what became of it.
struct Sent {
    owner: usize,
    name: String,
    missing_cells: u64,
    /// Records in the file, the header included (the report's row count).
    rows: u64,
    bytes: u64,
    result: SendResult,
}

enum SendResult {
    Accepted(String),
    Refused(u16),
    Broken,
}

/// A CSV of `rows` rows, `missing_cells` of them one cell short; roughly `rows * 12` bytes.
fn file(rows: usize, missing_cells: usize) -> Vec<u8> {
    let mut csv = b"id,value\n".to_vec();
    let every = rows.checked_div(missing_cells).unwrap_or(0);
    let mut short = 0;
    for i in 0..rows {
        if every > 0 && i % every == 0 && short < missing_cells {
            csv.extend_from_slice(format!("{i}\n").as_bytes());
            short += 1;
        } else {
            csv.extend_from_slice(format!("{i},v{}\n", i % 97).as_bytes());
        }
    }
    csv
}

pub async fn run(binary: &std::path::Path, plan: Plan) -> Result<Outcome, String> {
    let mut outcome = Outcome {
        tabs: plan.owners * plan.tabs,
        ..Outcome::default()
    };
    let disk = SmallDisk::mount(plan.disk_mb)?;
    let bind = free_loopback_address()?;
    // Uploads must reach the disk's real limit, not the free-space guard.
    let server = Server::start_in(binary, disk.dir()?, &bind, &["--min-free-bytes", "1048576"])?;
    let data_dir = server.data_dir.clone();
    let base = server.base.clone();
    let http = reqwest::Client::new();
    // Sessions first, while the server is still ours alone: no lock is held across an await.
    let mut cookies = Vec::new();
    for _ in 0..plan.owners {
        cookies.push(server.session(&http).await?);
    }
    let server = Arc::new(Mutex::new(server));

    let (stop_tx, stop) = watch::channel(false);
    let drops = Arc::new(AtomicU64::new(0));
    let mut views = Vec::new();
    let mut tab_tasks = Vec::new();
    for (owner, cookie) in cookies.iter().enumerate() {
        for tab in 0..plan.tabs {
            let view = Arc::new(Mutex::new(LiveView::default()));
            views.push((owner, view.clone()));
            let seed = (owner * 131 + tab * 7 + 1) as u64;
            tab_tasks.push(tokio::spawn(watch_tab(
                base.clone(),
                cookie.clone(),
                view,
                stop.clone(),
                drops.clone(),
                seed,
            )));
        }
    }
    wait_until(Duration::from_secs(60), || {
        views.iter().all(|(_, v)| v.lock().unwrap().connected)
    })
    .await
    .map_err(|_| "not every tab connected within a minute".to_owned())?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    outcome.rss_baseline_kib = server.lock().unwrap().rss_kib();
    println!(
        "soak: {} tabs over {} owners connected; server RSS {} KiB",
        outcome.tabs, plan.owners, outcome.rss_baseline_kib
    );

    // Uploads: a handful of file shapes, sent again and again under unique names.
    let shapes: Arc<Vec<Shape>> = Arc::new(
        [
            (1_000, 0),
            (1_000, 7),
            (40_000, 0),
            (40_000, 250),
            (150_000, 3),
        ]
        .iter()
        .map(|&(rows, missing)| Shape {
            bytes: Arc::new(file(rows, missing)),
            rows: rows as u64 + 1,
            missing_cells: missing as u64,
        })
        .collect(),
    );
    let sent = Arc::new(Mutex::new(Vec::<Sent>::new()));
    let counter = Arc::new(AtomicU64::new(0));
    let mut upload_tasks = Vec::new();
    for uploader in 0..plan.uploaders {
        let (http, base, cookies, shapes, sent, counter, stop) = (
            http.clone(),
            base.clone(),
            cookies.clone(),
            shapes.clone(),
            sent.clone(),
            counter.clone(),
            stop.clone(),
        );
        upload_tasks.push(tokio::spawn(async move {
            let mut seed = uploader as u64 * 7919 + 13;
            while !*stop.borrow() {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let owner = (next(&mut seed) as usize) % cookies.len();
                let shape = &shapes[(next(&mut seed) as usize) % shapes.len()];
                let name = format!("soak-{n}.csv");
                let result = upload(&http, &base, &cookies[owner], &name, &shape.bytes).await;
                sent.lock().unwrap().push(Sent {
                    owner,
                    name,
                    missing_cells: shape.missing_cells,
                    rows: shape.rows,
                    bytes: shape.bytes.len() as u64,
                    result,
                });
                let pause = 200 + next(&mut seed) % 1_300;
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        }));
    }

    // Faults: a SIGKILL every `kill_every` seconds, and the disk filled once, mid-run.
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(plan.seconds);
    let mut next_kill = started + Duration::from_secs_f64(plan.kill_every);
    let fill_at = started + Duration::from_secs_f64(plan.seconds * 0.4);
    let mut filled = false;
    // The server's memory once a minute, to tell a leak (a steady climb) from warm-up.
    let mut next_sample = started + Duration::from_secs(60);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if Instant::now() >= next_sample {
            next_sample += Duration::from_secs(60);
            println!(
                "soak: t={:.0}s server RSS {} KiB",
                started.elapsed().as_secs_f64(),
                server.lock().unwrap().rss_kib()
            );
        }
        if let Some(status) = server.lock().unwrap().exited() {
            outcome
                .problems
                .push(format!("the server exited on its own: {status}"));
            return Ok(outcome);
        }
        // No kill in the last fifth: the process checked at the end has carried load, so its
        // memory against the first one's baseline means something.
        let kills_allowed = started.elapsed().as_secs_f64() < plan.seconds * 0.8;
        if kills_allowed && Instant::now() >= next_kill {
            server.lock().unwrap().kill_and_restart()?;
            outcome.kills += 1;
            next_kill += Duration::from_secs_f64(plan.kill_every);
            println!(
                "soak: t={:.0}s server killed and restarted",
                started.elapsed().as_secs_f64()
            );
        }
        if !filled && Instant::now() >= fill_at {
            filled = true;
            let filler = data_dir.join("filler");
            let left = disk.fill(&filler, 2 << 20)?;
            outcome.disk_fills += 1;
            println!(
                "soak: t={:.0}s data disk filled ({left} bytes left) for 15 s",
                started.elapsed().as_secs_f64()
            );
            tokio::time::sleep(Duration::from_secs(15)).await;
            std::fs::remove_file(&filler).map_err(|e| format!("cannot remove the filler: {e}"))?;
        }
    }

    // Stop the load, let tabs catch up without drops, then check everything.
    stop_tx.send(true).map_err(|e| e.to_string())?;
    for task in upload_tasks {
        let _ = task.await;
    }
    outcome.tab_drops = drops.load(Ordering::Relaxed);
    let sent = std::mem::take(&mut *sent.lock().unwrap());
    outcome.uploads_sent = sent.len() as u64;
    for upload in &sent {
        match upload.result {
            SendResult::Accepted(_) => outcome.accepted += 1,
            SendResult::Refused(status) => *outcome.refused.entry(status).or_default() += 1,
            SendResult::Broken => outcome.broken += 1,
        }
    }
    let truth = final_jobs(&http, &base, &cookies).await?;
    check_jobs(&sent, &truth, &mut outcome);
    check_tabs(&views, &truth, &mut outcome).await;
    check_files(&data_dir, &truth, &mut outcome);
    if let Some(status) = server.lock().unwrap().exited() {
        outcome
            .problems
            .push(format!("the server exited on its own: {status}"));
    }
    outcome.rss_end_kib = server.lock().unwrap().rss_kib();
    // The last restart's process holds the same tabs as the baseline's did; allow for caches
    // warmed by the run (SQLite's page cache, allocator pools), not for leaks.
    if outcome.rss_end_kib > outcome.rss_baseline_kib * 2 + 64 * 1024 {
        outcome.problems.push(format!(
            "server RSS {} KiB at the end against {} KiB at the start",
            outcome.rss_end_kib, outcome.rss_baseline_kib
        ));
    }
    for task in tab_tasks {
        task.abort();
    }
    drop(server);
    Ok(outcome)
}

/// Every owner's jobs, once none is still moving (bounded wait).
async fn final_jobs(
    http: &reqwest::Client,
    base: &str,
    cookies: &[String],
) -> Result<Vec<Vec<Job>>, String> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let mut all = Vec::new();
        for cookie in cookies {
            all.push(list_jobs(http, base, cookie).await?);
        }
        let moving = all.iter().flatten().filter(|j| !j.state.is_final()).count();
        if moving == 0 {
            return Ok(all);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{moving} jobs still not final 3 minutes after the load stopped"
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn list_jobs(http: &reqwest::Client, base: &str, cookie: &str) -> Result<Vec<Job>, String> {
    let mut jobs = Vec::new();
    loop {
        let url = format!("{base}/api/uploads?offset={}&limit=500", jobs.len());
        let page: JobPage = http
            .get(url)
            .header("cookie", cookie)
            .send()
            .await
            .map_err(|e| format!("GET /api/uploads: {e}"))?
            .json()
            .await
            .map_err(|e| format!("GET /api/uploads: {e}"))?;
        let (uploads, total) = (page.uploads, page.total as usize);
        let empty = uploads.is_empty();
        jobs.extend(uploads);
        if jobs.len() >= total || empty {
            return Ok(jobs);
        }
    }
}

fn check_jobs(sent: &[Sent], truth: &[Vec<Job>], outcome: &mut Outcome) {
    let mut by_name: HashMap<(usize, &str), Vec<&Job>> = HashMap::new();
    for (owner, jobs) in truth.iter().enumerate() {
        for job in jobs {
            by_name
                .entry((owner, job.file_name.as_str()))
                .or_default()
                .push(job);
        }
    }
    for upload in sent {
        let found = by_name.get(&(upload.owner, upload.name.as_str()));
        let jobs = found.map_or(&[][..], |v| v.as_slice());
        if jobs.len() > 1 {
            outcome
                .problems
                .push(format!("{} is listed {} times", upload.name, jobs.len()));
            continue;
        }
        outcome.jobs_checked += jobs.len() as u64;
        match (&upload.result, jobs.first()) {
            (SendResult::Accepted(id), Some(job)) => {
                let expected = if upload.missing_cells == 0 {
                    JobState::Valid
                } else {
                    JobState::Invalid
                };
                let missing = job
                    .error_counts
                    .get(&ErrorCode::MissingCell)
                    .copied()
                    .unwrap_or(0);
                let total: u64 = job.error_counts.values().sum();
                // Every row and byte counted once: nothing lost or doubled by a restart.
                let whole = job.progress.rows == upload.rows
                    && job.progress.bytes_total == Some(upload.bytes);
                if &job.id != id
                    || job.state != expected
                    || missing != upload.missing_cells
                    || total != missing
                    || !whole
                {
                    outcome.problems.push(format!(
                        "{} (accepted as {id}) ended {:?} with {:?}, {} rows, {:?} bytes; expected {expected:?} with {} missing cells, {} rows, {} bytes",
                        upload.name,
                        job.state,
                        job.error_counts,
                        job.progress.rows,
                        job.progress.bytes_total,
                        upload.missing_cells,
                        upload.rows,
                        upload.bytes
                    ));
                }
            }
            (SendResult::Accepted(id), None) => outcome.problems.push(format!(
                "{} was accepted as {id} and then lost",
                upload.name
            )),
            // Refused or cut off: a job may exist, and then it must have ended; it may not
            // claim a verdict on a file it never fully had.
            (_, Some(job)) => {
                if matches!(job.state, JobState::Valid | JobState::Invalid)
                    && matches!(upload.result, SendResult::Refused(_))
                {
                    outcome.problems.push(format!(
                        "{} was refused but its job ended {:?}",
                        upload.name, job.state
                    ));
                }
            }
            (_, None) => {}
        }
    }
    let unfinished = truth
        .iter()
        .flatten()
        .filter(|j| !j.state.is_final())
        .count();
    if unfinished > 0 {
        outcome
            .problems
            .push(format!("{unfinished} jobs are not final"));
    }
}

/// Every tab must converge on its owner's list: same ids, same states, same counts.
async fn check_tabs(
    views: &[(usize, Arc<Mutex<LiveView>>)],
    truth: &[Vec<Job>],
    outcome: &mut Outcome,
) {
    let agrees = |owner: usize, view: &LiveView| {
        let jobs = &truth[owner];
        view.jobs.len() == jobs.len()
            && jobs.iter().all(|job| {
                view.jobs.get(&job.id).is_some_and(|seen| {
                    seen.state == job.state && seen.error_counts == job.error_counts
                })
            })
    };
    let converged = wait_until(Duration::from_secs(60), || {
        views
            .iter()
            .all(|(owner, view)| agrees(*owner, &view.lock().unwrap()))
    })
    .await;
    if converged.is_err() {
        let behind = views
            .iter()
            .filter(|(owner, view)| !agrees(*owner, &view.lock().unwrap()))
            .count();
        outcome.problems.push(format!(
            "{behind} of {} tabs do not show their owner's final jobs",
            views.len()
        ));
    }
}

/// Every upload file on disk belongs to a job that is listed.
fn check_files(data_dir: &std::path::Path, truth: &[Vec<Job>], outcome: &mut Outcome) {
    let ids: std::collections::HashSet<&str> =
        truth.iter().flatten().map(|j| j.id.as_str()).collect();
    let Ok(entries) = std::fs::read_dir(data_dir.join("uploads")) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let id = name.split('.').next().unwrap_or_default();
        if !ids.contains(id) {
            outcome
                .problems
                .push(format!("uploads/{name} belongs to no job"));
        }
    }
}

async fn upload(
    http: &reqwest::Client,
    base: &str,
    cookie: &str,
    name: &str,
    bytes: &Arc<Vec<u8>>,
) -> SendResult {
    let response = http
        .post(format!("{base}/api/uploads"))
        .header("cookie", cookie)
        .multipart(upload_form(&[(name, bytes.as_ref().clone())]))
        .timeout(Duration::from_secs(60))
        .send()
        .await;
    match response {
        Ok(response) if response.status() == 201 => match response.json::<UploadsCreated>().await {
            Ok(created) => match created.uploads.into_iter().next() {
                Some(job) => SendResult::Accepted(job.id),
                None => SendResult::Broken,
            },
            Err(_) => SendResult::Broken,
        },
        Ok(response) => SendResult::Refused(response.status().as_u16()),
        Err(_) => SendResult::Broken,
    }
}

/// One dashboard tab: connect, follow the messages, resume after every drop; drop itself now
/// and then while the load runs.
async fn watch_tab(
    base: String,
    cookie: String,
    view: Arc<Mutex<LiveView>>,
    stop: watch::Receiver<bool>,
    drops: Arc<AtomicU64>,
    mut seed: u64,
) {
    loop {
        let query = view.lock().unwrap().resume_query();
        let url = format!("{}/ws{query}", base.replacen("http://", "ws://", 1));
        let mut request = url.into_client_request().expect("a valid URL");
        request
            .headers_mut()
            .insert("cookie", cookie.parse().expect("a valid cookie"));
        let Ok((mut socket, _)) = tokio_tungstenite::connect_async(request).await else {
            tokio::time::sleep(Duration::from_millis(100 + next(&mut seed) % 400)).await;
            continue;
        };
        // While the load runs, a tab drops its connection after 5–60 s.
        let drop_after = Duration::from_millis(5_000 + next(&mut seed) % 55_000);
        let dropping = !*stop.borrow();
        let drop_at = tokio::time::Instant::now() + drop_after;
        loop {
            let message = tokio::select! {
                message = socket.next() => message,
                _ = tokio::time::sleep_until(drop_at), if dropping && !*stop.borrow() => {
                    drops.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            };
            let Some(Ok(message)) = message else { break };
            let Ok(text) = message.to_text() else {
                continue;
            };
            let Ok(message) = ServerMessage::from_json(text) else {
                continue;
            };
            // After a gap the tab asks for what it missed, as the dashboard does.
            let resume = view.lock().unwrap().apply(message);
            if let Some(resume) = resume {
                if socket
                    .send(Message::Text(resume.to_json().into()))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
        view.lock().unwrap().connected = false;
        tokio::time::sleep(Duration::from_millis(50 + next(&mut seed) % 200)).await;
    }
}

/// xorshift: reproducible choices without a dependency.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> Result<(), ()> {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            return Err(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// A free port on 127.0.0.1, so that every restart binds the same address.
fn free_loopback_address() -> Result<String, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    Ok(address.to_string())
}
