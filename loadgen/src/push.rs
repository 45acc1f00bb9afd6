//! Push latency and fan-out: owners with open dashboards (WebSocket tabs, or pollers of
//! `GET /api/uploads` for the comparison), small jobs finishing at a steady rate, optional big
//! validations running in the background. Each watcher records, for every job of its owner,
//! the delay from the job's final state being stored (`updated_at_ms`, which the server sets
//! just before storing and publishing) to the watcher seeing it, and the test ends only when
//! every watcher has seen every job's final state (or reports how many it lost).
//!
//! The same owners, tabs and event rate also run against a bare tokio-tungstenite server that
//! pushes a timestamped message of the same size, under the same background load: the floor
//! that any WebSocket push has on this machine.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datavista_shared::http::{JobPage, UploadsCreated};
use datavista_shared::protocol::{Job, ServerMessage};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::server::Server;
use crate::stats::{now_ms, Summary};

/// Big validations kept running: each task uploads a pre-generated 200 MB file with the
/// `people` schema, waits for its verdict, and uploads it again, until stopped. So exactly
/// this many validations run at any time (with an upload burst before each), not a queue of
/// uploads that grows while the validations fall behind. The file is written before the
/// measurement, so making it costs the load generator nothing while the watchers measure.
/// The uploads run on a runtime of their own: a user's dashboard does not share a thread
/// with someone else's upload client, so the watchers' tasks must not queue behind the
/// upload's writes either (the kernel's scheduler still shares the cores between them).
pub struct Background {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// `None` only once stopped.
    runtime: Option<tokio::runtime::Runtime>,
    _dir: tempfile::TempDir,
}

impl Background {
    pub async fn start(server: &Server, validations: usize) -> Result<Background, String> {
        let dir = tempfile::tempdir_in(&server.data_dir).map_err(|e| e.to_string())?;
        let file = dir.path().join("background.csv");
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        if validations > 0 {
            crate::csv::write_file(&file, BACKGROUND_FILE_BYTES).map_err(|e| e.to_string())?;
        }
        let cookie = server.session(&reqwest::Client::new()).await?;
        // Only the background runtime uses this client, so its connections live there.
        let http = reqwest::Client::new();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("background-uploads")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        for _ in 0..validations {
            let (http, url, cookie, file, mut stop) = (
                http.clone(),
                server.url("/api/uploads?schema=people"),
                cookie.clone(),
                file.clone(),
                stop_rx.clone(),
            );
            let job_url = server.url("/api/uploads/");
            tasks.push(runtime.spawn(async move {
                while !*stop.borrow() {
                    let Ok(body) = crate::csv::body(&file).await else {
                        break;
                    };
                    let part = reqwest::multipart::Part::stream(body);
                    let validated = async {
                        let id = upload(&http, &url, &cookie, part).await?;
                        until_final(&http, &format!("{job_url}{id}"), &cookie).await
                    };
                    tokio::select! {
                        outcome = validated => {
                            if let Err(e) = outcome {
                                eprintln!("background validation: {e}");
                                tokio::time::sleep(BACKGROUND_RETRY).await;
                            }
                        }
                        _ = stop.changed() => {}
                    }
                }
            }));
        }
        Ok(Background {
            stop,
            tasks,
            runtime: Some(runtime),
            _dir: dir,
        })
    }

    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background(); // a plain drop on an async thread would panic
        }
    }
}

/// Poll a job until it has ended; bounded by [`BACKGROUND_VERDICT_LIMIT`].
async fn until_final(http: &reqwest::Client, url: &str, cookie: &str) -> Result<(), String> {
    let polls = BACKGROUND_VERDICT_LIMIT.as_millis() / BACKGROUND_POLL.as_millis();
    for _ in 0..polls {
        tokio::time::sleep(BACKGROUND_POLL).await;
        let response = http
            .get(url)
            .header("cookie", cookie)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let job: Job = response
            .json()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if job.state.is_final() {
            return Ok(());
        }
    }
    Err(format!("no verdict within {BACKGROUND_VERDICT_LIMIT:?}"))
}

#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub owners: usize,
    pub tabs: usize,
    pub jobs_per_sec: f64,
    pub seconds: f64,
    /// `None`: WebSocket tabs. `Some(s)`: dashboards polling every `s` seconds instead.
    pub poll_every: Option<f64>,
    /// More dashboards, beside the measured ones, polling `GET /api/uploads` every second:
    /// read load on the server. What they see is not counted.
    pub pollers: usize,
}

pub struct Outcome {
    pub delay: Summary,
    pub jobs: usize,
    pub jobs_per_sec: f64,
    /// WebSocket messages (or poll responses) received per second by all watchers together.
    pub messages_per_sec: f64,
    /// Final states some watcher never saw.
    pub lost: usize,
    pub snapshots: usize,
    pub server_cpu_per_sec: f64,
}

/// What one watcher saw; shared so the driver can tell when every watcher has seen everything.
type SharedSeen = Arc<std::sync::Mutex<Seen>>;

#[derive(Default)]
struct Seen {
    delays: Vec<f64>,
    finals: HashSet<String>,
    messages: usize,
    snapshots: usize,
}

const SMALL_FILE_BYTES: usize = 2_000;
const BACKGROUND_FILE_BYTES: u64 = 200 << 20;
/// How often a background task asks whether its validation has ended.
const BACKGROUND_POLL: Duration = Duration::from_millis(50);
const BACKGROUND_VERDICT_LIMIT: Duration = Duration::from_secs(600);
/// Pause after a failed background upload, so a refusing server is not hammered.
const BACKGROUND_RETRY: Duration = Duration::from_millis(500);
/// Wait this long at most, after the last upload, for every watcher to see every final state.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// How often the unmeasured polling dashboards of [`Load::pollers`] ask.
const POLLERS_EVERY: Duration = Duration::from_secs(1);

pub async fn run_datavista(server: &Server, load: Load) -> Result<Outcome, String> {
    run_across(server, server, load).await
}

/// The same, with the tabs on `watch_on` and the uploads through `upload_to` (two nodes of
/// one cluster, or one server twice). The CPU figure adds up both.
pub async fn run_across(
    watch_on: &Server,
    upload_to: &Server,
    load: Load,
) -> Result<Outcome, String> {
    let server = watch_on;
    let cpu_seconds = || {
        let other = if std::ptr::eq(watch_on, upload_to) {
            0.0
        } else {
            upload_to.cpu_seconds()
        };
        watch_on.cpu_seconds() + other
    };
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .map_err(|e| e.to_string())?;
    let mut cookies = Vec::with_capacity(load.owners);
    for _ in 0..load.owners {
        cookies.push(server.session(&http).await?);
    }
    let expected: Arc<std::sync::Mutex<HashMap<usize, HashSet<String>>>> = Default::default();
    let (stop_tx, stop_rx) = watch::channel(false);

    let connecting = Arc::new(Semaphore::new(64));
    let mut watchers = Vec::new();
    for (owner, cookie) in cookies.iter().enumerate() {
        for _ in 0..load.tabs {
            let cookie = cookie.clone();
            let stop = stop_rx.clone();
            let seen = SharedSeen::default();
            let task = match load.poll_every {
                None => {
                    let permit = connecting.clone().acquire_owned().await.unwrap();
                    let socket = connect(&server.ws_url(""), &cookie).await?;
                    drop(permit);
                    tokio::spawn(watch_socket(socket, seen.clone(), stop))
                }
                Some(every) => tokio::spawn(poll(
                    http.clone(),
                    server.url("/api/uploads"),
                    cookie,
                    Duration::from_secs_f64(every),
                    seen.clone(),
                    stop,
                )),
            };
            watchers.push(Watcher { owner, seen, task });
        }
    }

    let pollers: Vec<_> = (0..load.pollers)
        .map(|i| {
            tokio::spawn(poll(
                http.clone(),
                server.url("/api/uploads"),
                cookies[i % load.owners].clone(),
                POLLERS_EVERY,
                SharedSeen::default(),
                stop_rx.clone(),
            ))
        })
        .collect();

    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let in_flight = Arc::new(Semaphore::new(64));
    let mut uploads = Vec::new();
    let total_jobs = (load.jobs_per_sec * load.seconds).round() as usize;
    let file = crate::csv::small(SMALL_FILE_BYTES);
    for job in 0..total_jobs {
        let due = started + Duration::from_secs_f64(job as f64 / load.jobs_per_sec);
        tokio::time::sleep_until(due.into()).await;
        let owner = job % load.owners;
        let permit = in_flight.clone().acquire_owned().await.unwrap();
        let (http, url, cookie, file, expected) = (
            http.clone(),
            upload_to.url("/api/uploads?schema=people"),
            cookies[owner].clone(),
            file.clone(),
            expected.clone(),
        );
        uploads.push(tokio::spawn(async move {
            let part = reqwest::multipart::Part::bytes(file).file_name("small.csv");
            let id = upload(&http, &url, &cookie, part).await;
            drop(permit);
            let id = id?;
            expected
                .lock()
                .unwrap()
                .entry(owner)
                .or_default()
                .insert(id);
            Ok::<(), String>(())
        }));
    }
    for upload in uploads {
        upload.await.map_err(|e| e.to_string())??;
    }
    let generating = started.elapsed().as_secs_f64();

    // Every watcher must end up with every final state of its owner's jobs.
    let expected = expected.lock().unwrap().clone();
    let deadline = Instant::now() + DRAIN_LIMIT;
    while Instant::now() < deadline && !all_seen(&watchers, &expected) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let server_cpu_per_sec = (cpu_seconds() - cpu_before) / elapsed;
    let _ = stop_tx.send(true);
    for poller in pollers {
        poller.await.map_err(|e| e.to_string())?;
    }

    let (mut delays, mut messages, mut lost, mut snapshots) = (Vec::new(), 0, 0, 0);
    for watcher in watchers {
        watcher.task.await.map_err(|e| e.to_string())?;
        let seen = std::mem::take(&mut *watcher.seen.lock().unwrap());
        let jobs = expected.get(&watcher.owner).cloned().unwrap_or_default();
        lost += jobs.difference(&seen.finals).count();
        delays.extend(seen.delays);
        messages += seen.messages;
        snapshots += seen.snapshots;
    }
    Ok(Outcome {
        delay: Summary::of(delays),
        jobs: total_jobs,
        jobs_per_sec: total_jobs as f64 / generating,
        messages_per_sec: messages as f64 / elapsed,
        lost,
        snapshots,
        server_cpu_per_sec,
    })
}

struct Watcher {
    owner: usize,
    seen: SharedSeen,
    task: tokio::task::JoinHandle<()>,
}

fn all_seen(watchers: &[Watcher], expected: &HashMap<usize, HashSet<String>>) -> bool {
    watchers.iter().all(|watcher| {
        let seen = watcher.seen.lock().unwrap();
        expected
            .get(&watcher.owner)
            .is_none_or(|jobs| jobs.is_subset(&seen.finals))
    })
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str, cookie: &str) -> Result<Socket, String> {
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    request
        .headers_mut()
        .insert("cookie", cookie.parse().map_err(|_| "bad cookie")?);
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|e| format!("WebSocket connect: {e}"))?;
    Ok(socket)
}

async fn upload(
    http: &reqwest::Client,
    url: &str,
    cookie: &str,
    part: reqwest::multipart::Part,
) -> Result<String, String> {
    let form = reqwest::multipart::Form::new().part("file", part.file_name("load.csv"));
    let response = http
        .post(url)
        .header("cookie", cookie)
        .multipart(form)
        .send()
        .await
        .map_err(|e| format!("upload: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("upload answered {}", response.status()));
    }
    let created: UploadsCreated = response.json().await.map_err(|e| e.to_string())?;
    created
        .uploads
        .into_iter()
        .next()
        .map(|job| job.id)
        .ok_or_else(|| "no upload in the answer".to_owned())
}

async fn watch_socket(mut socket: Socket, seen: SharedSeen, mut stop: watch::Receiver<bool>) {
    loop {
        let frame = tokio::select! {
            frame = socket.next() => frame,
            _ = stop.changed() => break,
        };
        let Some(Ok(Message::Text(text))) = frame else {
            if matches!(frame, None | Some(Err(_)) | Some(Ok(Message::Close(_)))) {
                break;
            }
            continue;
        };
        let received = now_ms();
        let mut seen = seen.lock().unwrap();
        seen.messages += 1;
        match ServerMessage::from_json(&text) {
            Ok(ServerMessage::JobUpdate { job, .. })
                if job.state.is_final() && !seen.finals.contains(&job.id) =>
            {
                seen.delays.push(received - job.updated_at_ms as f64);
                seen.finals.insert(job.id);
            }
            Ok(ServerMessage::Snapshot { jobs, .. }) => {
                seen.snapshots += 1;
                seen.finals.extend(
                    jobs.into_iter()
                        .filter(|j| j.state.is_final())
                        .map(|j| j.id),
                );
            }
            _ => {}
        }
    }
    let _ = socket.close(None).await;
}

async fn poll(
    http: reqwest::Client,
    url: String,
    cookie: String,
    every: Duration,
    seen: SharedSeen,
    mut stop: watch::Receiver<bool>,
) {
    // Dashboards open at random moments: spread the first polls over one interval.
    let offset = every.mul_f64(rand_fraction());
    tokio::time::sleep(offset).await;
    let mut ticks = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => break,
        }
        let Ok(response) = http.get(&url).header("cookie", &cookie).send().await else {
            continue;
        };
        let Ok(page) = response.json::<JobPage>().await else {
            continue;
        };
        let received = now_ms();
        let mut seen = seen.lock().unwrap();
        seen.messages += 1;
        for job in page.uploads {
            if job.state.is_final() && seen.finals.insert(job.id) {
                seen.delays.push(received - job.updated_at_ms as f64);
            }
        }
    }
}

/// A fraction in [0, 1) from the clock's nanoseconds: enough to spread start times.
fn rand_fraction() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos % 1_000_000) / 1_000_000.0
}

/// The floor: a bare tokio-tungstenite server pushing one timestamped message per event to
/// every tab of the event's owner, at the same rate and size as the job updates.
pub async fn run_bare(load: Load) -> Result<Outcome, String> {
    use tokio::sync::mpsc;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    type Tabs = Arc<std::sync::Mutex<HashMap<usize, Vec<mpsc::UnboundedSender<String>>>>>;
    let tabs: Tabs = Default::default();
    let registry = tabs.clone();
    let accept = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let registry = registry.clone();
            tokio::spawn(async move {
                let mut owner = None;
                // tungstenite's callback type has a whole HTTP response as its error.
                #[allow(clippy::result_large_err)]
                let callback =
                    |request: &tokio_tungstenite::tungstenite::handshake::server::Request,
                     response| {
                        owner = request
                            .uri()
                            .query()
                            .and_then(|q| q.strip_prefix("owner="))
                            .and_then(|o| o.parse::<usize>().ok());
                        Ok(response)
                    };
                let Ok(socket) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
                    return;
                };
                let (tx, mut rx) = mpsc::unbounded_channel();
                registry
                    .lock()
                    .unwrap()
                    .entry(owner.unwrap_or(0))
                    .or_default()
                    .push(tx);
                let (mut sink, mut incoming) = socket.split();
                loop {
                    tokio::select! {
                        message = rx.recv() => match message {
                            Some(text) => if sink.send(Message::text(text)).await.is_err() { break },
                            None => break,
                        },
                        frame = incoming.next() => if !matches!(frame, Some(Ok(_))) { break },
                    }
                }
            });
        }
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut watchers = Vec::new();
    for owner in 0..load.owners {
        for _ in 0..load.tabs {
            let url = format!("ws://{address}/?owner={owner}");
            let (socket, _) = tokio_tungstenite::connect_async(url)
                .await
                .map_err(|e| format!("bare connect: {e}"))?;
            watchers.push(tokio::spawn(watch_bare(socket, stop_rx.clone())));
        }
    }
    while tabs.lock().unwrap().values().map(Vec::len).sum::<usize>() < load.owners * load.tabs {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let started = Instant::now();
    let total = (load.jobs_per_sec * load.seconds).round() as usize;
    // Padding to the size of a DataVista job update.
    let padding = "x".repeat(300);
    for event in 0..total {
        let due = started + Duration::from_secs_f64(event as f64 / load.jobs_per_sec);
        tokio::time::sleep_until(due.into()).await;
        // Truncated to whole milliseconds like `updated_at_ms`, so both carry the same bias.
        let message = format!(
            "{{\"event\":{event},\"sent_ms\":{},\"padding\":\"{padding}\"}}",
            now_ms().floor()
        );
        if let Some(senders) = tabs.lock().unwrap().get(&(event % load.owners)) {
            for tx in senders {
                let _ = tx.send(message.clone());
            }
        }
    }
    let generating = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    let (mut delays, mut messages) = (Vec::new(), 0);
    let per_owner: Vec<usize> = (0..load.owners)
        .map(|owner| (owner..total).step_by(load.owners).count())
        .collect();
    let mut lost = 0;
    for (index, task) in watchers.into_iter().enumerate() {
        let seen = task.await.map_err(|e| e.to_string())?;
        lost += per_owner[index / load.tabs].saturating_sub(seen.delays.len());
        delays.extend(seen.delays);
        messages += seen.messages;
    }
    accept.abort();
    Ok(Outcome {
        delay: Summary::of(delays),
        jobs: total,
        jobs_per_sec: total as f64 / generating,
        messages_per_sec: messages as f64 / elapsed,
        lost,
        snapshots: 0,
        server_cpu_per_sec: f64::NAN,
    })
}

async fn watch_bare(mut socket: Socket, mut stop: watch::Receiver<bool>) -> Seen {
    let mut seen = Seen::default();
    loop {
        let frame = tokio::select! {
            frame = socket.next() => frame,
            _ = stop.changed() => break,
        };
        match frame {
            Some(Ok(Message::Text(text))) => {
                let received = now_ms();
                seen.messages += 1;
                // The floor's own frame (see `run_bare`), not DataVista's protocol.
                if let Some(sent) = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v["sent_ms"].as_f64())
                {
                    seen.delays.push(received - sent);
                }
            }
            Some(Ok(_)) => {}
            _ => break,
        }
    }
    seen
}
