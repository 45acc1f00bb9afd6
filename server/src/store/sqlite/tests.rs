//! The SQLite store's own behaviour: checkpoints, old files, reads beside writes.

use rusqlite::params;

use super::migrations::MIGRATIONS;
use super::*;
use crate::owner::OwnerId;
use crate::store::tests::a_token_from_before_ids_is_listed_and_revoked;
use crate::store::{JobStore, StoredSchema, StoredToken};

/// Commits leave the WAL alone, and the checkpointer still carries it into the database
/// file: without it the file would keep its size for ever, with it the WAL would be
/// checkpointed by whichever commit filled it.
#[test]
fn the_wal_is_checkpointed_beside_the_writers_not_by_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = SqliteStore::open_checkpointing_every(
        &path,
        Lease::new(Duration::from_secs(10)),
        Duration::from_millis(20),
    )
    .unwrap();
    let autocheckpoint: i64 = store
        .with(|c| c.query_row("PRAGMA wal_autocheckpoint", [], |row| row.get(0)))
        .unwrap();
    assert_eq!(autocheckpoint, 0, "commits must not checkpoint");

    let database_bytes = || std::fs::metadata(&path).unwrap().len();
    std::thread::sleep(Duration::from_millis(100)); // the migrations' pages are in
    let before = database_bytes();
    let owner = OwnerId::random();
    for i in 0..300 {
        let hash = format!("hash-{i:04}");
        let token = StoredToken::new(&hash, owner.clone(), "dv_", None);
        store.add_token(&hash, &token).unwrap();
    }
    let grew = (0..250).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        database_bytes() > before
    });
    assert!(grew, "the database file stayed at {before} bytes");
}

#[test]
fn tokens_from_before_ids_are_listed_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let old = Connection::open(&path).unwrap();
    old.execute_batch(&format!(
        "{}{}PRAGMA user_version = 2;",
        MIGRATIONS[0], MIGRATIONS[1]
    ))
    .unwrap();
    let hash = crate::identity::token_hash("dv_old");
    old.execute(
        "INSERT INTO tokens (hash, owner_id, created_at) VALUES (?1, 'o', 7)",
        params![hash],
    )
    .unwrap();
    drop(old);

    let store = SqliteStore::open(&path, Lease::new(Duration::from_secs(10))).unwrap();
    a_token_from_before_ids_is_listed_and_revoked(&store, &hash);
}

/// A read never queues behind a write: with the writer's connection taken and inside an
/// open write transaction, lookups and lists still answer, from what was committed.
#[test]
fn reads_are_answered_while_a_write_holds_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(
        SqliteStore::open(&dir.path().join("db"), Lease::new(Duration::from_secs(10))).unwrap(),
    );
    let owner = OwnerId::random();
    let token = StoredToken::new("committed", owner.clone(), "dv_", None);
    store.add_token("committed", &token).unwrap();
    let schema = StoredSchema {
        id: "s1".into(),
        name: "people".into(),
        body: "{}".into(),
        fields: Vec::new(),
    };
    store.add_schema(&owner, &schema, 1).unwrap();

    let writer = store.connection.lock().unwrap();
    writer
        .execute_batch(
            "BEGIN IMMEDIATE; INSERT INTO tokens (hash, owner_id, created_at) VALUES ('uncommitted', 'x', 0);",
        )
        .unwrap();
    let (answer, answered) = mpsc::channel();
    let reading = store.clone();
    let reader_owner = owner.clone();
    std::thread::spawn(move || {
        let _ = answer.send((
            reading.token("committed"),
            reading.token("uncommitted"),
            reading.schemas(&reader_owner),
            reading.snapshot(&reader_owner),
        ));
    });
    // A bound, not a timing: without a reader of its own this waits for ever.
    let answers = answered.recv_timeout(Duration::from_secs(60));
    writer.execute_batch("ROLLBACK").unwrap();
    drop(writer);
    let (committed, uncommitted, schemas, snapshot) =
        answers.expect("a read waited for the writer");
    assert_eq!(committed.unwrap().map(|t| t.owner), Some(owner));
    assert_eq!(
        uncommitted.unwrap(),
        None,
        "reads see committed writes only"
    );
    assert_eq!(schemas.unwrap().len(), 1);
    assert_eq!(snapshot.unwrap(), (0, Vec::new()));
    assert!(
        store.read(|c| c.execute("DELETE FROM tokens", [])).is_err(),
        "the reader cannot write"
    );
}
