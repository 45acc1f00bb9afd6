//! The PostgreSQL database's tables, version by version; `datavista_migrations` says where a
//! database is.

use sqlx::postgres::PgPool;

/// Each entry moves the schema one version up. Statements are separated by `;`, which must
/// not appear inside one.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE owners (
        id TEXT PRIMARY KEY,
        last_seq BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE tokens (
        hash TEXT PRIMARY KEY,
        owner_id TEXT NOT NULL,
        created_at BIGINT NOT NULL
    );
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        owner_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        file_name TEXT NOT NULL,
        schema_id TEXT,
        state TEXT NOT NULL,
        bytes_done BIGINT NOT NULL,
        bytes_total BIGINT,
        rows BIGINT NOT NULL,
        errors BIGINT NOT NULL,
        error_counts TEXT NOT NULL,
        reason TEXT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    );
    CREATE INDEX jobs_by_owner ON jobs (owner_id, created_at DESC, id);
    CREATE INDEX jobs_by_state ON jobs (state);
    CREATE TABLE schemas (
        id TEXT PRIMARY KEY,
        owner_id TEXT NOT NULL,
        name TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at BIGINT NOT NULL
    );
"#,
    // The partial index's predicate must equal `store::rows::UNFINISHED` (the filter of the
    // queries it serves); a test checks it.
    r#"
    ALTER TABLE jobs ADD COLUMN node_id TEXT;
    ALTER TABLE jobs ADD COLUMN lease_until BIGINT NOT NULL DEFAULT 0;
    CREATE INDEX jobs_unfinished ON jobs (lease_until) WHERE state IN ('uploading', 'queued', 'validating');
"#,
    // Tokens get an id to list and revoke them by (see `store::token_id`), a hint and an
    // optional expiry.
    r#"
    ALTER TABLE tokens ADD COLUMN id TEXT;
    ALTER TABLE tokens ADD COLUMN hint TEXT;
    ALTER TABLE tokens ADD COLUMN expires_at BIGINT;
    UPDATE tokens SET id = substr(hash, 1, 12);
    CREATE UNIQUE INDEX tokens_by_id ON tokens (id);
"#,
    r#"
    ALTER TABLE schemas ADD COLUMN fields TEXT;
    CREATE INDEX schemas_by_owner ON schemas (owner_id, created_at);
"#,
];

/// Any constant, the same on every node: nodes starting together migrate one at a time.
const MIGRATION_LOCK: i64 = 0x6461_7461_7669_7374; // "datavist"

pub(super) async fn migrate(pool: &PgPool, migrations: &[&str]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS datavista_migrations (version INT PRIMARY KEY)")
        .execute(&mut *tx)
        .await?;
    let version: i32 =
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM datavista_migrations")
            .fetch_one(&mut *tx)
            .await?;
    for (i, migration) in migrations.iter().enumerate().skip(version as usize) {
        // One statement at a time (the migrations hold no `;` inside a statement).
        for statement in migration.split(';').filter(|s| !s.trim().is_empty()) {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        sqlx::query("INSERT INTO datavista_migrations (version) VALUES ($1)")
            .bind(i as i32 + 1)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::rows::UNFINISHED;

    #[test]
    fn the_unfinished_index_has_the_queries_filter() {
        let index = MIGRATIONS
            .iter()
            .flat_map(|m| m.split(';'))
            .find(|statement| statement.contains("CREATE INDEX jobs_unfinished"))
            .expect("the index is made in a migration");
        assert!(
            index.trim_end().ends_with(&format!("WHERE {UNFINISHED}")),
            "{index}"
        );
    }
}
