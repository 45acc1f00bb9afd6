//! The store's queries on PostgreSQL: jobs with their owners' sequence numbers, tokens,
//! schemas.

use std::time::Duration;

use datavista_shared::protocol::{Job, JobProgress, JobState};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};

use super::PgStore;
use crate::owner::OwnerId;
use crate::store::rows::{self, JOB_COLUMNS, TOKEN_COLUMNS, UNFINISHED};
use crate::store::{JobStore, SchemaListing, StoreResult, StoredSchema, StoredToken};

/// Rows of `RETURNING {JOB_COLUMNS}, owner_id`, oldest job first.
fn claimed_jobs(rows: &[PgRow]) -> Result<Vec<(OwnerId, Job)>, sqlx::Error> {
    let mut jobs = rows
        .iter()
        .map(|row| Ok((OwnerId::from_stored(row.try_get(12)?), job_from_row(row)?)))
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    jobs.sort_by_key(|(_, job)| job.created_at_ms);
    Ok(jobs)
}

fn job_from_row(row: &PgRow) -> Result<Job, sqlx::Error> {
    let state: String = row.try_get(3)?;
    let counts: String = row.try_get(8)?;
    Ok(Job {
        id: row.try_get(0)?,
        file_name: row.try_get(1)?,
        schema_id: row.try_get(2)?,
        state: rows::state(state).unwrap_or(JobState::Failed),
        progress: JobProgress {
            bytes_done: row.try_get::<i64, _>(4)? as u64,
            bytes_total: row.try_get::<Option<i64>, _>(5)?.map(|v| v as u64),
            rows: row.try_get::<i64, _>(6)? as u64,
            errors: row.try_get::<i64, _>(7)? as u64,
        },
        error_counts: serde_json::from_str(&counts).unwrap_or_default(),
        reason: row.try_get(9)?,
        created_at_ms: row.try_get::<i64, _>(10)? as u64,
        updated_at_ms: row.try_get::<i64, _>(11)? as u64,
    })
}

fn token_from_row(row: &PgRow) -> Result<StoredToken, sqlx::Error> {
    Ok(StoredToken {
        id: row.try_get(0)?,
        owner: OwnerId::from_stored(row.try_get(1)?),
        hint: row.try_get(2)?,
        created_at_ms: row.try_get::<i64, _>(3)? as u64,
        expires_at_ms: row.try_get::<Option<i64>, _>(4)?.map(|v| v as u64),
    })
}

/// The owner's next sequence number; the row stays locked until the transaction ends, so
/// concurrent writers for one owner (on any node) commit in sequence order.
async fn next_seq(tx: &mut Transaction<'_, Postgres>, owner: &str) -> Result<u64, sqlx::Error> {
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO owners (id, last_seq) VALUES ($1, 1)
         ON CONFLICT (id) DO UPDATE SET last_seq = owners.last_seq + 1
         RETURNING last_seq",
    )
    .bind(owner)
    .fetch_one(&mut **tx)
    .await?;
    Ok(seq as u64)
}

/// How a job row is written.
#[derive(Clone, Copy, PartialEq)]
enum Write {
    /// A new job: nothing happens if the id exists.
    Create,
    /// A change: only to a row of this owner that this node holds (or no node does).
    Update,
}

impl PgStore {
    /// Write a job row in one transaction with the owner's next sequence number; `None`,
    /// and the number goes back unused, when no row was written.
    fn write_job(&self, owner: &OwnerId, job: &Job, write: Write) -> StoreResult<Option<u64>> {
        let (owner, job) = (owner.as_str().to_owned(), job.clone());
        let (node, lease_until) = (self.lease.node.clone(), self.lease.until_ms());
        let counts = serde_json::to_string(&job.error_counts).expect("error counts serialize");
        self.run(|pool| async move {
            let mut tx = pool.begin().await?;
            let seq = next_seq(&mut tx, &owner).await?;
            // The first 13 parameters are the same for both; a new row also takes 14–16.
            let query = sqlx::query(match write {
                Write::Create => {
                    "INSERT INTO jobs (id, owner_id, seq, state, bytes_done, bytes_total, rows, errors,
                                       error_counts, reason, updated_at, node_id, lease_until,
                                       file_name, schema_id, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
                     ON CONFLICT (id) DO NOTHING"
                }
                Write::Update => {
                    "UPDATE jobs SET seq = $3, state = $4, bytes_done = $5, bytes_total = $6, rows = $7,
                         errors = $8, error_counts = $9, reason = $10, updated_at = $11, node_id = $12,
                         lease_until = $13
                     WHERE id = $1 AND owner_id = $2 AND (node_id = $12 OR node_id IS NULL)"
                }
            })
            .bind(&job.id)
            .bind(&owner)
            .bind(seq as i64)
            .bind(job.state.as_str())
            .bind(job.progress.bytes_done as i64)
            .bind(job.progress.bytes_total.map(|v| v as i64))
            .bind(job.progress.rows as i64)
            .bind(job.progress.errors as i64)
            .bind(counts)
            .bind(&job.reason)
            .bind(job.updated_at_ms as i64)
            .bind(node)
            .bind(lease_until);
            let query = match write {
                Write::Create => query
                    .bind(&job.file_name)
                    .bind(&job.schema_id)
                    .bind(job.created_at_ms as i64),
                Write::Update => query,
            };
            if query.execute(&mut *tx).await?.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok(None);
            }
            tx.commit().await?;
            Ok(Some(seq))
        })
    }
}

impl JobStore for PgStore {
    fn create_job(&self, owner: &OwnerId, job: &Job) -> StoreResult<Option<u64>> {
        self.write_job(owner, job, Write::Create)
    }

    fn save_job(&self, owner: &OwnerId, job: &Job) -> StoreResult<Option<u64>> {
        self.write_job(owner, job, Write::Update)
    }

    fn release_job(&self, id: &str) -> StoreResult<()> {
        let (id, node) = (id.to_owned(), self.lease.node.clone());
        self.run(|pool| async move {
            sqlx::query(
                "UPDATE jobs SET node_id = NULL, lease_until = 0 WHERE id = $1 AND node_id = $2",
            )
            .bind(id)
            .bind(node)
            .execute(&pool)
            .await?;
            Ok(())
        })
    }

    fn delete_job(&self, owner: &OwnerId, id: &str) -> StoreResult<Option<u64>> {
        let (owner, id) = (owner.as_str().to_owned(), id.to_owned());
        self.run(|pool| async move {
            let mut tx = pool.begin().await?;
            let removed = sqlx::query("DELETE FROM jobs WHERE id = $1 AND owner_id = $2")
                .bind(&id)
                .bind(&owner)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if removed == 0 {
                return Ok(None);
            }
            let seq = next_seq(&mut tx, &owner).await?;
            tx.commit().await?;
            Ok(Some(seq))
        })
    }

    fn job(&self, owner: &OwnerId, id: &str) -> StoreResult<Option<Job>> {
        let (owner, id) = (owner.as_str().to_owned(), id.to_owned());
        self.run(|pool| async move {
            let row = sqlx::query(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 AND owner_id = $2"
            ))
            .bind(id)
            .bind(owner)
            .fetch_optional(&pool)
            .await?;
            row.as_ref().map(job_from_row).transpose()
        })
    }

    fn jobs(&self, owner: &OwnerId, offset: u64, limit: u64) -> StoreResult<Vec<Job>> {
        let owner = owner.as_str().to_owned();
        self.run(|pool| async move {
            let rows = sqlx::query(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE owner_id = $1
                 ORDER BY created_at DESC, id LIMIT $2 OFFSET $3"
            ))
            .bind(owner)
            .bind(limit.min(i64::MAX as u64) as i64)
            .bind(offset.min(i64::MAX as u64) as i64)
            .fetch_all(&pool)
            .await?;
            rows.iter().map(job_from_row).collect()
        })
    }

    fn job_count(&self, owner: &OwnerId) -> StoreResult<u64> {
        let owner = owner.as_str().to_owned();
        self.run(|pool| async move {
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE owner_id = $1")
                .bind(owner)
                .fetch_one(&pool)
                .await?;
            Ok(count as u64)
        })
    }

    fn finished_jobs_past(&self, owner: &OwnerId, keep: usize) -> StoreResult<Vec<String>> {
        let owner = owner.as_str().to_owned();
        self.run(|pool| async move {
            let mut ids: Vec<String> = sqlx::query_scalar(&format!(
                "SELECT id FROM jobs WHERE owner_id = $1 AND NOT {UNFINISHED}
                 ORDER BY updated_at DESC, id DESC OFFSET $2"
            ))
            .bind(owner)
            .bind(keep as i64)
            .fetch_all(&pool)
            .await?;
            ids.reverse();
            Ok(ids)
        })
    }

    fn snapshot(&self, owner: &OwnerId) -> StoreResult<(u64, Vec<Job>)> {
        let owner = owner.as_str().to_owned();
        self.run(|pool| async move {
            let mut tx = pool.begin().await?;
            // Both reads from one snapshot: the jobs are exactly those current at `seq`.
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .execute(&mut *tx)
                .await?;
            let seq: Option<i64> = sqlx::query_scalar("SELECT last_seq FROM owners WHERE id = $1")
                .bind(&owner)
                .fetch_optional(&mut *tx)
                .await?;
            let rows = sqlx::query(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE owner_id = $1 ORDER BY created_at DESC, id"
            ))
            .bind(&owner)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            let jobs = rows.iter().map(job_from_row).collect::<Result<_, _>>()?;
            Ok((seq.unwrap_or(0) as u64, jobs))
        })
    }

    fn renew_leases(&self) -> StoreResult<()> {
        let (node, until) = (self.lease.node.clone(), self.lease.until_ms());
        self.run(|pool| async move {
            sqlx::query(&format!(
                "UPDATE jobs SET lease_until = $1 WHERE node_id = $2 AND {UNFINISHED}"
            ))
            .bind(until)
            .bind(node)
            .execute(&pool)
            .await?;
            Ok(())
        })
    }

    fn claim_orphaned_jobs(&self) -> StoreResult<Vec<(OwnerId, Job)>> {
        let (node, until) = (self.lease.node.clone(), self.lease.until_ms());
        let now = crate::clock::now_ms() as i64;
        self.run(|pool| async move {
            // SKIP LOCKED: nodes sweeping at the same moment split the orphans between them
            // instead of waiting on each other, and each job goes to exactly one.
            let rows = sqlx::query(&format!(
                "UPDATE jobs SET node_id = $1, lease_until = $2
                 WHERE id IN (SELECT id FROM jobs WHERE {UNFINISHED} AND lease_until < $3
                              AND node_id IS DISTINCT FROM $1
                              FOR UPDATE SKIP LOCKED)
                 RETURNING {JOB_COLUMNS}, owner_id"
            ))
            .bind(node)
            .bind(until)
            .bind(now)
            .fetch_all(&pool)
            .await?;
            claimed_jobs(&rows)
        })
    }

    fn release_leases(&self) -> StoreResult<()> {
        let node = self.lease.node.clone();
        self.run(|pool| async move {
            sqlx::query(&format!(
                "UPDATE jobs SET lease_until = 0 WHERE node_id = $1 AND {UNFINISHED}"
            ))
            .bind(node)
            .execute(&pool)
            .await?;
            Ok(())
        })
    }

    fn claim_queued_jobs(
        &self,
        limit: usize,
        waiting: Duration,
    ) -> StoreResult<Vec<(OwnerId, Job)>> {
        let (node, until) = (self.lease.node.clone(), self.lease.until_ms());
        let now = crate::clock::now_ms();
        let queued_before = now.saturating_sub(waiting.as_millis() as u64) as i64;
        self.run(|pool| async move {
            // SKIP LOCKED, as for orphans; and a node that starts validating one of these
            // jobs at the same moment locks its row too, so exactly one of them gets it.
            // Taking a job touches it, so no third node takes it again before it starts.
            let rows = sqlx::query(&format!(
                "UPDATE jobs SET node_id = $1, lease_until = $2, updated_at = $5
                 WHERE id IN (SELECT id FROM jobs
                              WHERE state = 'queued' AND node_id IS DISTINCT FROM $1 AND updated_at < $3
                              ORDER BY created_at LIMIT $4 FOR UPDATE SKIP LOCKED)
                 RETURNING {JOB_COLUMNS}, owner_id"
            ))
            .bind(node)
            .bind(until)
            .bind(queued_before)
            .bind(limit as i64)
            .bind(now as i64)
            .fetch_all(&pool)
            .await?;
            claimed_jobs(&rows)
        })
    }

    fn count_by_state(&self) -> StoreResult<Vec<(JobState, u64)>> {
        let counts = self.run(|pool| async move {
            let rows: Vec<(String, i64)> =
                sqlx::query_as("SELECT state, COUNT(*) FROM jobs GROUP BY state")
                    .fetch_all(&pool)
                    .await?;
            Ok(rows
                .into_iter()
                .map(|(state, n)| (state, n as u64))
                .collect())
        })?;
        rows::counts_by_state(counts)
    }

    fn add_token(&self, token_hash: &str, token: &StoredToken) -> StoreResult<()> {
        let (hash, token) = (token_hash.to_owned(), token.clone());
        self.run(|pool| async move {
            sqlx::query(
                "INSERT INTO tokens (hash, id, owner_id, hint, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(hash)
            .bind(token.id)
            .bind(token.owner.as_str())
            .bind(token.hint)
            .bind(token.created_at_ms as i64)
            .bind(token.expires_at_ms.map(|v| v as i64))
            .execute(&pool)
            .await?;
            Ok(())
        })
    }

    fn token(&self, token_hash: &str) -> StoreResult<Option<StoredToken>> {
        let hash = token_hash.to_owned();
        self.run(|pool| async move {
            let row = sqlx::query(&format!(
                "SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = $1"
            ))
            .bind(hash)
            .fetch_optional(&pool)
            .await?;
            row.as_ref().map(token_from_row).transpose()
        })
    }

    fn tokens(&self) -> StoreResult<Vec<StoredToken>> {
        self.run(|pool| async move {
            let rows = sqlx::query(&format!(
                "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at"
            ))
            .fetch_all(&pool)
            .await?;
            rows.iter().map(token_from_row).collect()
        })
    }

    fn remove_token(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        self.run(|pool| async move {
            let removed = sqlx::query("DELETE FROM tokens WHERE id = $1")
                .bind(id)
                .execute(&pool)
                .await?
                .rows_affected();
            Ok(removed > 0)
        })
    }

    fn add_schema(
        &self,
        owner: &OwnerId,
        schema: &StoredSchema,
        max_per_owner: usize,
    ) -> StoreResult<bool> {
        let (owner, schema) = (owner.as_str().to_owned(), schema.clone());
        self.run(|pool| async move {
            let mut tx = pool.begin().await?;
            // Adds of one owner take turns (the lock ends with the transaction), so the
            // count below cannot change before the insert.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('schemas:' || $1, 0))")
                .bind(&owner)
                .execute(&mut *tx)
                .await?;
            let (count,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM schemas WHERE owner_id = $1")
                    .bind(&owner)
                    .fetch_one(&mut *tx)
                    .await?;
            if count as usize >= max_per_owner {
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO schemas (id, owner_id, name, body, fields, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(schema.id)
            .bind(owner)
            .bind(schema.name)
            .bind(schema.body)
            .bind(rows::field_names_json(&schema.fields))
            .bind(crate::clock::now_ms() as i64)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    fn schemas(&self, owner: &OwnerId) -> StoreResult<Vec<SchemaListing>> {
        let owner = owner.as_str().to_owned();
        self.run(|pool| async move {
            let rows: Vec<(String, String, Option<String>, Option<String>)> = sqlx::query_as(
                "SELECT id, name, fields, CASE WHEN fields IS NULL THEN body END
                 FROM schemas WHERE owner_id = $1 ORDER BY created_at, id",
            )
            .bind(owner)
            .fetch_all(&pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(|(id, name, fields, body)| rows::listing(id, name, fields, body))
                .collect())
        })
    }

    fn schema(&self, owner: &OwnerId, id: &str) -> StoreResult<Option<StoredSchema>> {
        let (owner, id) = (owner.as_str().to_owned(), id.to_owned());
        self.run(|pool| async move {
            let row: Option<(String, String, Option<String>)> = sqlx::query_as(
                "SELECT name, body, fields FROM schemas WHERE owner_id = $1 AND id = $2",
            )
            .bind(owner)
            .bind(&id)
            .fetch_optional(&pool)
            .await?;
            Ok(row.map(|(name, body, fields)| StoredSchema {
                id,
                name,
                body,
                fields: rows::field_names(fields),
            }))
        })
    }
}
