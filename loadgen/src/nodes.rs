//! Push across server nodes: the push load of [`crate::push`] (no background validations) on
//! three set-ups in the same run, so each is measured against the others on the same machine:
//! one node with the embedded defaults (SQLite, in-process events), one node on PostgreSQL and
//! Redis, and two nodes on them with every tab on the first and every upload through the
//! second (each event crosses Redis). PostgreSQL and Redis are Debian's packages, started on
//! loopback ports by the test kit, as for the server's tests.

use std::path::Path;

use datavista_testkit::{postgres, redis};

use crate::push::{self, Load, Outcome};
use crate::server::Server;

/// The three set-ups, in the order they are run and reported.
pub const SETUPS: [&str; 3] = [
    "one node, embedded",
    "one node, PostgreSQL + Redis",
    "two nodes, PostgreSQL + Redis",
];

/// One run of each set-up.
pub async fn run(binary: &Path, load: Load) -> Result<[Outcome; 3], String> {
    let embedded = Server::start(binary, &[])?;
    let alone = push::run_datavista(&embedded, load).await?;
    drop(embedded);

    let database = postgres::TestPostgres::start();
    let bus = redis::TestRedis::start();
    let key_dir = tempfile::tempdir().map_err(|e| format!("cannot make a temp dir: {e}"))?;
    let bus_key = key_dir.path().join("bus.key");
    std::fs::write(&bus_key, "the loadgen's bus key, for both nodes")
        .map_err(|e| format!("cannot write the bus key: {e}"))?;
    let shared = [
        "--database-url",
        database.url.as_str(),
        "--redis-url",
        bus.url.as_str(),
        "--bus-key-file",
        bus_key.to_str().ok_or("the temp dir's path is not UTF-8")?,
    ];
    let first = Server::start(binary, &shared)?;
    let one_node = push::run_datavista(&first, load).await?;
    let second = first.another_node()?;
    let two_nodes = push::run_across(&first, &second, load).await?;
    Ok([alone, one_node, two_nodes])
}
