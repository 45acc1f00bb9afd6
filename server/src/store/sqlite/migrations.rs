//! The SQLite file's tables, version by version; `PRAGMA user_version` says where a file is.

use rusqlite::Connection;

use super::write_transaction;

/// Each entry moves the schema one version up.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE owners (
        id TEXT PRIMARY KEY,
        last_seq INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE tokens (
        hash TEXT PRIMARY KEY,
        owner_id TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        owner_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        file_name TEXT NOT NULL,
        schema_id TEXT,
        state TEXT NOT NULL,
        bytes_done INTEGER NOT NULL,
        bytes_total INTEGER,
        rows INTEGER NOT NULL,
        errors INTEGER NOT NULL,
        error_counts TEXT NOT NULL,
        reason TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX jobs_by_owner ON jobs (owner_id, created_at DESC, id);
    CREATE INDEX jobs_by_state ON jobs (state);
    CREATE TABLE schemas (
        id TEXT PRIMARY KEY,
        owner_id TEXT NOT NULL,
        name TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
"#,
    r#"
    ALTER TABLE jobs ADD COLUMN node_id TEXT;
    ALTER TABLE jobs ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;
"#,
    // Tokens get an id to list and revoke them by (see `store::token_id`), a hint and an
    // optional expiry.
    r#"
    ALTER TABLE tokens ADD COLUMN id TEXT;
    ALTER TABLE tokens ADD COLUMN hint TEXT;
    ALTER TABLE tokens ADD COLUMN expires_at INTEGER;
    UPDATE tokens SET id = substr(hash, 1, 12);
    CREATE UNIQUE INDEX tokens_by_id ON tokens (id);
"#,
    r#"
    ALTER TABLE schemas ADD COLUMN fields TEXT;
    CREATE INDEX schemas_by_owner ON schemas (owner_id, created_at);
"#,
];

/// Bring the file up to the latest schema. The version is read inside an IMMEDIATE
/// transaction, so two processes opening a fresh file (`serve` and `token create`) take turns
/// instead of both creating the tables.
pub(super) fn migrate(connection: &mut Connection) -> rusqlite::Result<()> {
    let tx = write_transaction(connection)?;
    let version: usize = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    for (i, migration) in MIGRATIONS.iter().enumerate().skip(version) {
        tx.execute_batch(migration)?;
        tx.pragma_update(None, "user_version", i + 1)?;
    }
    tx.commit()
}
