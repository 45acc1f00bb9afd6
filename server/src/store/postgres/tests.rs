//! The PostgreSQL store's own behaviour: old databases.

use super::super::test_postgres::TestPostgres;
use super::super::tests::a_token_from_before_ids_is_listed_and_revoked;
use super::*;
use crate::identity::token_hash;

#[test]
fn tokens_from_before_ids_are_listed_and_revoked() {
    let postgres = TestPostgres::start();
    let lease = || Lease::new(Duration::from_secs(10));
    let hash = token_hash("dv_old");
    let old = PgStore::connect_migrating(
        &postgres.url,
        Duration::from_secs(10),
        lease(),
        &MIGRATIONS[..2],
    )
    .unwrap();
    let inserted = hash.clone();
    old.run(|pool| async move {
        sqlx::query("INSERT INTO tokens (hash, owner_id, created_at) VALUES ($1, 'o', 7)")
            .bind(inserted)
            .execute(&pool)
            .await
    })
    .unwrap();
    drop(old);

    let store = PgStore::connect(&postgres.url, Duration::from_secs(10), lease()).unwrap();
    a_token_from_before_ids_is_listed_and_revoked(&store, &hash);
}
