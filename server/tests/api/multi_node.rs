//! Two real server nodes sharing a real PostgreSQL, a real Redis and a real S3-compatible
//! store (s3s-fs), each with a data dir of its own: a job uploaded through one node reaches
//! the owner's tabs on the other, in order; both come back from a Redis restart without a
//! tab missing a final state; and a node killed mid-job has its job finished by the other.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use datavista_shared::http::Session;
use datavista_shared::protocol::{ClientMessage, Job, JobState, ServerMessage};
use datavista_testkit::postgres::TestPostgres;
use datavista_testkit::redis::TestRedis;
use datavista_testkit::s3::TestS3;
use datavista_testkit::{
    create_token_with, created_id, created_ids, people_csv, Client, Socket, TestServer, PATIENCE,
};

/// Two nodes on one PostgreSQL, one Redis and one bucket, and an owner's token. The nodes
/// share nothing on disk but the session key, as nodes on two machines would.
struct Cluster {
    nodes: Vec<TestServer>,
    token: String,
    redis: TestRedis,
    s3: TestS3,
    _postgres: TestPostgres,
    _temp: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Cluster {
        Cluster::start_with([&[], &[]])
    }

    /// With extra flags for each node.
    fn start_with(node_args: [&[&str]; 2]) -> Cluster {
        let postgres = TestPostgres::start();
        let redis = TestRedis::start();
        let s3 = TestS3::start();
        let temp = tempfile::tempdir().unwrap();
        let database = ["--database-url", postgres.url.as_str()];
        let token = create_token_with(&temp.path().join("token"), &database);
        let key_file = temp.path().join("session.key");
        let bus_key = temp.path().join("bus.key");
        std::fs::write(&bus_key, "a test key, the same for both nodes\n").unwrap();
        let storage = s3.url("cluster");
        let args = [
            &database[..],
            &["--redis-url", redis.url.as_str()],
            &["--bus-key-file", bus_key.to_str().unwrap()],
            &["--storage", storage.as_str()],
            &["--session-key-file", key_file.to_str().unwrap()],
        ]
        .concat();
        let nodes = node_args
            .iter()
            .enumerate()
            .map(|(n, extra)| {
                let data_dir = temp.path().join(format!("node{n}"));
                TestServer::start_with_env(&data_dir, &[&args[..], extra].concat(), &s3.env())
            })
            .collect();
        Cluster {
            nodes,
            token,
            redis,
            s3,
            _postgres: postgres,
            _temp: temp,
        }
    }

    fn client(&self, node: usize) -> Client {
        Client::with_token(&self.nodes[node], &self.token)
    }
}

/// Read the tab until it knows job `id` is final, from an update or from a snapshot; says
/// which it was (true: a live update).
async fn until_final(tab: &mut Socket, id: &str) -> (Job, bool) {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        match tab.next().await {
            ServerMessage::JobUpdate { job, .. } if job.id == id && job.state.is_final() => {
                return (job, true)
            }
            ServerMessage::Snapshot { jobs, .. } => {
                if let Some(job) = jobs.into_iter().find(|j| j.id == id && j.state.is_final()) {
                    return (job, false);
                }
            }
            _ => {}
        }
    }
    panic!("job {id} never reached a final state on this tab");
}

/// Read the tab until every job in `ids` is final, from updates or snapshots, in any order.
async fn until_all_final(tab: &mut Socket, ids: &[String]) -> HashMap<String, Job> {
    let mut finals = HashMap::new();
    let deadline = Instant::now() + PATIENCE;
    while finals.len() < ids.len() {
        assert!(
            Instant::now() < deadline,
            "final so far: {:?}",
            finals.keys()
        );
        let jobs = match tab.next().await {
            ServerMessage::JobUpdate { job, .. } => vec![job],
            ServerMessage::Snapshot { jobs, .. } => jobs,
            _ => continue,
        };
        for job in jobs {
            if ids.contains(&job.id) && job.state.is_final() {
                finals.insert(job.id.clone(), job);
            }
        }
    }
    finals
}

#[tokio::test]
async fn jobs_reach_tabs_on_every_node() {
    let mut cluster = Cluster::start();
    let (node1, node2) = (&cluster.nodes[0], &cluster.nodes[1]);
    let (on1, on2) = (cluster.client(0), cluster.client(1));
    let mut tab1 = on1.socket("").await;
    let (seq1, _) = tab1.greeting().await;
    let mut tab2 = on2.socket("").await;
    let (seq2, _) = tab2.greeting().await;

    // Validated on node 2; the tab on node 1 sees every state, numbers only growing.
    let id = created_id(
        on2.upload(Some("people"), &[("two.csv", people_csv(300, 10))])
            .await,
    )
    .await;
    let (states, job, seq1) = tab1.states_until_final(&id, seq1).await;
    assert_eq!(states.first(), Some(&JobState::Uploading), "{states:?}");
    assert_eq!(
        (job.state, job.error_counts.values().sum::<u64>()),
        (JobState::Invalid, 30)
    );
    let (_, same, seq2) = tab2.states_until_final(&id, seq2).await;
    assert_eq!(same, job, "both nodes' tabs agree");

    // And the other way round.
    let id = created_id(
        on1.upload(Some("people"), &[("one.csv", people_csv(100, 0))])
            .await,
    )
    .await;
    let (_, job, _) = tab2.states_until_final(&id, seq2).await;
    assert_eq!(job.state, JobState::Valid);
    let (_, job, _) = tab1.states_until_final(&id, seq1).await;
    assert_eq!(job.state, JobState::Valid);
    // A report written on node 1 is read through node 2 (it is in the bucket).
    let report = on2.get(&format!("/api/uploads/{id}/report.json")).await;
    assert_eq!(report.status(), 200);

    // A browser session begun on one node is the same owner on the other (shared key).
    let browser = node1.session().await;
    let on_node2 = browser.on(node2).get("/api/session").await;
    let seen: Session = on_node2.json().await.unwrap();
    assert_eq!(seen.owner, browser.owner);

    // Redis restarts: messages in flight are lost. Each node resubscribes and resynchronises
    // its tabs from the database, so the next final state still arrives (live or in a
    // snapshot), and after that updates flow live again.
    cluster.redis.restart();
    let id = created_id(
        on2.upload(Some("people"), &[("during.csv", people_csv(100, 0))])
            .await,
    )
    .await;
    let (job, _) = until_final(&mut tab1, &id).await;
    assert_eq!(job.state, JobState::Valid);
    // Both nodes retry every 500 ms: give them time, and take the snapshots they resent.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for _ in 0..100 {
        if tokio::time::timeout(Duration::from_millis(300), tab1.next())
            .await
            .is_err()
        {
            break;
        }
    }
    let id = created_id(
        on2.upload(Some("people"), &[("after.csv", people_csv(100, 5))])
            .await,
    )
    .await;
    let (job, live) = until_final(&mut tab1, &id).await;
    assert_eq!(job.state, JobState::Invalid);
    assert!(live, "after the outage, updates are pushed again");
    node1.assert_healthy().await;
    node2.assert_healthy().await;
}

/// A node killed in the middle of a validation: once its lease runs out, the other node
/// takes the job over, validates the stored file again, and the owner's tab sees it end.
#[tokio::test]
async fn a_job_whose_node_dies_is_finished_by_another() {
    let mut cluster = Cluster::start();
    let mut tab = cluster.client(0).socket("").await;
    tab.greeting().await;

    // ~20 MB: stored in a blink, validated (in a test build) for a few seconds.
    let id = created_id(
        cluster
            .client(1)
            .upload(Some("people"), &[("big.csv", people_csv(400_000, 1_000))])
            .await,
    )
    .await;
    // Kill node 2 once it is validating (on a busy machine the job may wait queued first).
    let seq = until_validating(&mut tab, &id).await;
    cluster.nodes[1].kill();
    // A cancel through node 1 reaches no one now: after waiting, it says so and leaves the
    // job alone (node 2's lease outlasts the wait, so node 1 has not taken the job yet).
    let refused = cluster
        .client(0)
        .delete(&format!("/api/uploads/{id}"))
        .await;
    assert_eq!(refused.status(), 409);

    let (states, job, _) = tab.states_until_final(&id, seq).await;
    assert_eq!(
        (job.state, job.error_counts.values().sum::<u64>()),
        (JobState::Invalid, 400)
    );
    assert!(
        states.contains(&JobState::Queued),
        "node 1 re-queued the job it took over: {states:?}"
    );
    cluster.nodes[0].assert_healthy().await;
}

/// Wait on the tab until node 2 validates job `id`; its sequence number then.
async fn until_validating(tab: &mut Socket, id: &str) -> u64 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        assert!(
            Instant::now() < deadline,
            "job {id} never started validating"
        );
        if let ServerMessage::JobUpdate { seq, job } = tab.next().await {
            if job.id == id {
                assert!(!job.state.is_final(), "the file outlasts the cancel");
                if job.state == JobState::Validating {
                    return seq;
                }
            }
        }
    }
}

/// A job runs on node 2; its owner cancels it through node 1, with `DELETE` and from a tab
/// on node 1. Node 2 stops it, and its file leaves the bucket.
#[tokio::test]
async fn a_job_is_cancelled_through_any_node() {
    let cluster = Cluster::start();
    let on1 = cluster.client(0);
    let mut tab = on1.socket("").await;
    tab.greeting().await;
    let big = || vec![("big.csv", people_csv(400_000, 1_000))];

    let id = created_id(cluster.client(1).upload(Some("people"), &big()).await).await;
    let seq = until_validating(&mut tab, &id).await;
    let deleted = on1.delete(&format!("/api/uploads/{id}")).await;
    assert_eq!(deleted.status(), 200);
    let job: Job = deleted.json().await.unwrap();
    assert_eq!(job.state, JobState::Cancelled);
    let (_, job, _) = tab.states_until_final(&id, seq).await;
    assert_eq!(job.state, JobState::Cancelled);

    let id = created_id(cluster.client(1).upload(Some("people"), &big()).await).await;
    let seq = until_validating(&mut tab, &id).await;
    tab.send(&ClientMessage::Cancel { job_id: id.clone() })
        .await;
    let (_, job, _) = tab.states_until_final(&id, seq).await;
    assert_eq!(job.state, JobState::Cancelled);
    assert_eq!(job.reason.as_deref(), Some("cancelled"));
    assert!(cluster.s3.objects_settled("cluster/uploads").is_empty());
}

/// A counter of this node's `/metrics`, e.g. `datavista_validated_bytes_total`.
async fn counter(node: &TestServer, name: &str) -> u64 {
    let metrics = node.metrics().await;
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {metrics}"))
}

/// Bytes this node has run through the validator (from `/metrics`).
async fn validated_bytes(node: &TestServer) -> u64 {
    counter(node, "datavista_validated_bytes_total").await
}

/// Someone who can reach Redis but has not got the nodes' key publishes a job update for a
/// made-up job and a cancel of a running one, unsigned and with a made-up signature. Both
/// nodes drop and count all four; no tab sees the update, the job is not cancelled, and the
/// nodes' own events still reach the tab.
#[tokio::test]
async fn forged_bus_messages_are_dropped() {
    let cluster = Cluster::start();
    let on1 = cluster.client(0);
    let owner = on1.get_typed::<Session>("/api/session").await.owner;
    let mut tab = on1.socket("").await;
    tab.greeting().await;
    let big = [("big.csv", people_csv(400_000, 1_000))];
    let id = created_id(cluster.client(1).upload(Some("people"), &big).await).await;
    let seq = until_validating(&mut tab, &id).await;

    let forged_job = Job {
        id: "forged".to_owned(),
        ..on1.job(&id).await
    };
    let update = ServerMessage::JobUpdate {
        seq: seq + 1,
        job: forged_job,
    };
    let event = format!(
        r#"{{"kind":"event","node":"intruder","owner":"{owner}","message":{}}}"#,
        update.to_json()
    );
    let cancel =
        format!(r#"{{"kind":"cancel","node":"intruder","owner":"{owner}","job_id":"{id}"}}"#);
    for body in [&event, &cancel] {
        for payload in [body.clone(), format!("AAAA {body}")] {
            let reached = cluster.redis.publish("datavista:events", &payload);
            assert_eq!(reached, 2, "both nodes listen");
        }
    }

    let deadline = Instant::now() + PATIENCE;
    let job = loop {
        assert!(Instant::now() < deadline, "job {id} never ended");
        match tab.next().await {
            ServerMessage::JobUpdate { job, .. } if job.id == "forged" => {
                panic!("a forged update reached the tab")
            }
            ServerMessage::JobUpdate { job, .. } if job.id == id && job.state.is_final() => {
                break job;
            }
            ServerMessage::Snapshot { jobs, .. } => {
                assert!(jobs.iter().all(|j| j.id != "forged"));
                if let Some(job) = jobs.into_iter().find(|j| j.id == id && j.state.is_final()) {
                    break job;
                }
            }
            _ => {}
        }
    };
    assert_eq!(
        (job.state, job.error_counts.values().sum::<u64>()),
        (JobState::Invalid, 400),
        "the forged cancel was not applied"
    );
    for node in &cluster.nodes {
        let rejected = counter(node, "datavista_bus_rejected_messages_total").await;
        assert_eq!(rejected, 4);
    }
}

/// `rediss://`: a node reaches Redis over TLS, checking its certificate against the CA that
/// `SSL_CERT_FILE` names, and its subscription gets what is published there (here a forged
/// message, which it counts). Without that CA it refuses to start: the certificate is checked.
#[tokio::test]
async fn a_node_reaches_redis_over_tls() {
    let temp = tempfile::tempdir().unwrap();
    let ca = datavista_testkit::postgres::make_certificates(temp.path());
    let redis = TestRedis::start_with_tls(temp.path());
    let bus_key = temp.path().join("bus.key");
    std::fs::write(&bus_key, "a test key, the same for every node").unwrap();
    let args = [
        "--redis-url",
        redis.tls_url.as_deref().unwrap(),
        "--bus-key-file",
        bus_key.to_str().unwrap(),
    ];
    let trusting = [("SSL_CERT_FILE", ca.display().to_string())];
    let node = TestServer::start_with_env(&temp.path().join("data"), &args, &trusting);
    assert_eq!(
        redis.publish("datavista:events", "forged"),
        1,
        "one subscriber, over TLS"
    );
    let deadline = Instant::now() + PATIENCE;
    while counter(&node, "datavista_bus_rejected_messages_total").await == 0 {
        assert!(Instant::now() < deadline, "the node never got the message");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let distrusting = std::process::Command::new(env!("CARGO_BIN_EXE_datavista"))
        .env_remove("SSL_CERT_FILE")
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(temp.path().join("other"))
        .args(args)
        .output()
        .unwrap();
    assert!(!distrusting.status.success());
    let said = String::from_utf8_lossy(&distrusting.stderr);
    assert!(
        said.contains("cannot reach Redis") && said.contains("certificate"),
        "{said}"
    );
}

/// A node on Redis without the key refuses to start, and says why.
#[test]
fn redis_without_a_bus_key_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let started = std::process::Command::new(env!("CARGO_BIN_EXE_datavista"))
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--redis-url",
            "redis://127.0.0.1:1",
        ])
        .arg("--data-dir")
        .arg(temp.path())
        .output()
        .unwrap();
    assert!(!started.status.success());
    let said = String::from_utf8_lossy(&started.stderr);
    assert!(said.contains("--redis-url needs --bus-key-file"), "{said}");
}

/// Node 2 has one worker and gets four files at once; node 1, idle, takes the queued ones
/// from it. Every file is validated exactly once, and the owner's tab sees every verdict.
#[tokio::test]
async fn idle_nodes_take_queued_jobs_from_busy_ones() {
    let cluster = Cluster::start_with([&[], &["--workers", "1"]]);
    let mut tab = cluster.client(0).socket("").await;
    tab.greeting().await;
    let file = people_csv(400_000, 1_000);
    let files: Vec<_> = ["a.csv", "b.csv", "c.csv", "d.csv"]
        .into_iter()
        .map(|name| (name, file.clone()))
        .collect();
    let ids = created_ids(cluster.client(1).upload(Some("people"), &files).await).await;
    // Both nodes validate at once, so verdicts come in any order (or in a snapshot).
    let finals = until_all_final(&mut tab, &ids).await;
    for job in finals.values() {
        assert_eq!(
            (job.state, job.error_counts.values().sum::<u64>()),
            (JobState::Invalid, 400),
            "{job:?}"
        );
    }
    let (on1, on2) = (
        validated_bytes(&cluster.nodes[0]).await,
        validated_bytes(&cluster.nodes[1]).await,
    );
    assert!(on1 > 0, "node 1 validated none of node 2's queue");
    assert_eq!(on1 + on2, 4 * file.len() as u64, "each file validated once");
}
