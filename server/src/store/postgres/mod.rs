//! The job store on PostgreSQL (`--database-url postgres://…`), for several server nodes
//! sharing one database.
//!
//! Same tables and guarantees as the SQLite store. Sequence numbers are allocated in the
//! database, in the transaction that changes the job (`UPDATE … RETURNING` on the owner's
//! row, which takes its lock), so they stay gap-free and ordered per owner whichever node
//! writes. The trait is blocking; the queries run on a small runtime of the store's own, so a
//! call works from any thread, async or not.
//!
//! This file connects and runs the queries on the store's runtime; [`migrations`] brings the
//! tables up to date, [`queries`] implements the store on them.

mod migrations;
mod queries;

use std::future::Future;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

use self::migrations::{migrate, MIGRATIONS};
use super::{Lease, StoreError, StoreResult};
use crate::side_runtime::SideRuntime;

pub struct PgStore {
    pool: PgPool,
    lease: Lease,
    /// Runs the queries.
    runtime: SideRuntime,
}

impl PgStore {
    /// Connect (waiting up to `connect_timeout` for the database to answer) and migrate.
    pub fn connect(url: &str, connect_timeout: Duration, lease: Lease) -> StoreResult<PgStore> {
        PgStore::connect_migrating(url, connect_timeout, lease, MIGRATIONS)
    }

    /// Connect and apply `migrations` (the tests stop at an older version).
    fn connect_migrating(
        url: &str,
        connect_timeout: Duration,
        lease: Lease,
        migrations: &'static [&'static str],
    ) -> StoreResult<PgStore> {
        let runtime =
            SideRuntime::new("datavista-postgres", 2).map_err(|source| StoreError::Start {
                what: "the PostgreSQL client's runtime",
                source,
            })?;
        let options = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(connect_timeout);
        let url = url.to_owned();
        let pool = runtime
            .wait_for(async move {
                let pool = options.connect(&url).await?;
                migrate(&pool, migrations).await?;
                Ok(pool)
            })
            .unwrap_or(Err(sqlx::Error::WorkerCrashed))
            .map_err(StoreError::Unusable)?;
        Ok(PgStore {
            pool,
            lease,
            runtime,
        })
    }

    /// Run one database task on the store's runtime and wait for its result here.
    fn run<T, F>(&self, task: impl FnOnce(PgPool) -> F) -> StoreResult<T>
    where
        F: Future<Output = Result<T, sqlx::Error>> + Send + 'static,
        T: Send + 'static,
    {
        self.runtime
            .wait_for(task(self.pool.clone()))
            .unwrap_or(Err(sqlx::Error::WorkerCrashed))
            .map_err(StoreError::from)
    }
}

#[cfg(test)]
mod tests;
