//! The store's queries on SQLite: jobs with their owners' sequence numbers, tokens, schemas.

use datavista_shared::protocol::{Job, JobProgress, JobState};
use rusqlite::{params, OptionalExtension, Row};

use super::{write_transaction, SqliteStore};
use crate::owner::OwnerId;
use crate::store::rows::{self, JOB_COLUMNS, TOKEN_COLUMNS, UNFINISHED};
use crate::store::{JobStore, SchemaListing, StoreResult, StoredSchema, StoredToken};

fn job_from_row(row: &Row<'_>) -> rusqlite::Result<Job> {
    let state: String = row.get(3)?;
    let counts: String = row.get(8)?;
    Ok(Job {
        id: row.get(0)?,
        file_name: row.get(1)?,
        schema_id: row.get(2)?,
        state: rows::state(state).unwrap_or(JobState::Failed),
        progress: JobProgress {
            bytes_done: row.get::<_, i64>(4)? as u64,
            bytes_total: row.get::<_, Option<i64>>(5)?.map(|v| v as u64),
            rows: row.get::<_, i64>(6)? as u64,
            errors: row.get::<_, i64>(7)? as u64,
        },
        error_counts: serde_json::from_str(&counts).unwrap_or_default(),
        reason: row.get(9)?,
        created_at_ms: row.get::<_, i64>(10)? as u64,
        updated_at_ms: row.get::<_, i64>(11)? as u64,
    })
}

fn token_from_row(row: &Row<'_>) -> rusqlite::Result<StoredToken> {
    Ok(StoredToken {
        id: row.get(0)?,
        owner: OwnerId::from_stored(row.get(1)?),
        hint: row.get(2)?,
        created_at_ms: row.get::<_, i64>(3)? as u64,
        expires_at_ms: row.get::<_, Option<i64>>(4)?.map(|v| v as u64),
    })
}

fn next_seq(tx: &rusqlite::Transaction<'_>, owner: &OwnerId) -> rusqlite::Result<u64> {
    tx.execute(
        "INSERT INTO owners (id, last_seq) VALUES (?1, 1) ON CONFLICT (id) DO UPDATE SET last_seq = last_seq + 1",
        params![owner.as_str()],
    )?;
    tx.query_row(
        "SELECT last_seq FROM owners WHERE id = ?1",
        params![owner.as_str()],
        |row| row.get::<_, i64>(0),
    )
    .map(|seq| seq as u64)
}

impl SqliteStore {
    /// Write a job row (a new one when `create`, else a change to a row of this owner that
    /// this process holds) in one transaction with the owner's next sequence number; `None`,
    /// and the number goes back unused, when no row was written.
    fn write_job(&self, owner: &OwnerId, job: &Job, create: bool) -> StoreResult<Option<u64>> {
        self.with(|connection| {
            let tx = write_transaction(connection)?;
            let seq = next_seq(&tx, owner)?;
            let counts = serde_json::to_string(&job.error_counts).expect("error counts serialize");
            let (seq, bytes_done) = (seq as i64, job.progress.bytes_done as i64);
            let (rows, errors) = (job.progress.rows as i64, job.progress.errors as i64);
            let bytes_total = job.progress.bytes_total.map(|v| v as i64);
            let (updated_at, created_at) = (job.updated_at_ms as i64, job.created_at_ms as i64);
            let (owner_id, state) = (owner.as_str(), job.state.as_str());
            let lease_until = self.lease.until_ms();
            // The first 13 parameters are the same for both; a new row also takes 14–16.
            let mut values: Vec<&dyn rusqlite::ToSql> = vec![
                &job.id,
                &owner_id,
                &seq,
                &state,
                &bytes_done,
                &bytes_total,
                &rows,
                &errors,
                &counts,
                &job.reason,
                &updated_at,
                &self.lease.node,
                &lease_until,
            ];
            let sql = if create {
                values.extend([
                    &job.file_name as &dyn rusqlite::ToSql,
                    &job.schema_id,
                    &created_at,
                ]);
                "INSERT INTO jobs (id, owner_id, seq, state, bytes_done, bytes_total, rows, errors,
                                   error_counts, reason, updated_at, node_id, lease_until,
                                   file_name, schema_id, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
                 ON CONFLICT (id) DO NOTHING"
            } else {
                "UPDATE jobs SET seq = ?3, state = ?4, bytes_done = ?5, bytes_total = ?6, rows = ?7,
                     errors = ?8, error_counts = ?9, reason = ?10, updated_at = ?11, node_id = ?12,
                     lease_until = ?13
                 WHERE id = ?1 AND owner_id = ?2 AND (node_id = ?12 OR node_id IS NULL)"
            };
            if tx.execute(sql, values.as_slice())? == 0 {
                return Ok(None); // dropping the transaction rolls the sequence number back
            }
            tx.commit()?;
            Ok(Some(seq as u64))
        })
    }
}

impl JobStore for SqliteStore {
    fn create_job(&self, owner: &OwnerId, job: &Job) -> StoreResult<Option<u64>> {
        self.write_job(owner, job, true)
    }

    fn save_job(&self, owner: &OwnerId, job: &Job) -> StoreResult<Option<u64>> {
        self.write_job(owner, job, false)
    }

    fn release_job(&self, id: &str) -> StoreResult<()> {
        self.with(|connection| {
            connection.execute(
                "UPDATE jobs SET node_id = NULL, lease_until = 0 WHERE id = ?1 AND node_id = ?2",
                params![id, self.lease.node],
            )?;
            Ok(())
        })
    }

    fn delete_job(&self, owner: &OwnerId, id: &str) -> StoreResult<Option<u64>> {
        self.with(|connection| {
            let tx = write_transaction(connection)?;
            let removed = tx.execute(
                "DELETE FROM jobs WHERE id = ?1 AND owner_id = ?2",
                params![id, owner.as_str()],
            )?;
            if removed == 0 {
                return Ok(None);
            }
            let seq = next_seq(&tx, owner)?;
            tx.commit()?;
            Ok(Some(seq))
        })
    }

    fn job(&self, owner: &OwnerId, id: &str) -> StoreResult<Option<Job>> {
        self.read(|connection| {
            connection
                .query_row(
                    &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1 AND owner_id = ?2"),
                    params![id, owner.as_str()],
                    job_from_row,
                )
                .optional()
        })
    }

    fn jobs(&self, owner: &OwnerId, offset: u64, limit: u64) -> StoreResult<Vec<Job>> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE owner_id = ?1 ORDER BY created_at DESC, id LIMIT ?2 OFFSET ?3"
            ))?;
            let rows = statement.query_map(params![owner.as_str(), limit as i64, offset as i64], job_from_row)?;
            rows.collect()
        })
    }

    fn job_count(&self, owner: &OwnerId) -> StoreResult<u64> {
        self.read(|connection| {
            connection
                .query_row(
                    "SELECT COUNT(*) FROM jobs WHERE owner_id = ?1",
                    params![owner.as_str()],
                    |row| row.get::<_, i64>(0),
                )
                .map(|n| n as u64)
        })
    }

    fn finished_jobs_past(&self, owner: &OwnerId, keep: usize) -> StoreResult<Vec<String>> {
        self.read(|connection| {
            let mut statement = connection.prepare(&format!(
                "SELECT id FROM jobs WHERE owner_id = ?1 AND NOT {UNFINISHED}
                 ORDER BY updated_at DESC, id DESC LIMIT -1 OFFSET ?2"
            ))?;
            let ids =
                statement.query_map(params![owner.as_str(), keep as i64], |row| row.get(0))?;
            let mut ids: Vec<String> = ids.collect::<rusqlite::Result<_>>()?;
            ids.reverse();
            Ok(ids)
        })
    }

    fn snapshot(&self, owner: &OwnerId) -> StoreResult<(u64, Vec<Job>)> {
        self.read(|connection| {
            let tx = connection.transaction()?;
            let seq = tx
                .query_row("SELECT last_seq FROM owners WHERE id = ?1", params![owner.as_str()], |row| row.get::<_, i64>(0))
                .optional()?
                .unwrap_or(0) as u64;
            let jobs = {
                let mut statement = tx.prepare_cached(&format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE owner_id = ?1 ORDER BY created_at DESC, id"
                ))?;
                let rows = statement.query_map(params![owner.as_str()], job_from_row)?;
                rows.collect::<rusqlite::Result<Vec<Job>>>()?
            };
            tx.commit()?;
            Ok((seq, jobs))
        })
    }

    fn renew_leases(&self) -> StoreResult<()> {
        self.with(|connection| {
            connection.execute(
                &format!("UPDATE jobs SET lease_until = ?1 WHERE node_id = ?2 AND {UNFINISHED}"),
                params![self.lease.until_ms(), self.lease.node],
            )?;
            Ok(())
        })
    }

    fn claim_orphaned_jobs(&self) -> StoreResult<Vec<(OwnerId, Job)>> {
        self.with(|connection| {
            let tx = write_transaction(connection)?;
            // One process per file: every unfinished job another process held is orphaned.
            let orphaned = format!("{UNFINISHED} AND (node_id IS NULL OR node_id <> ?1)");
            let jobs = {
                let mut statement = tx.prepare(&format!(
                    "SELECT {JOB_COLUMNS}, owner_id FROM jobs WHERE {orphaned} ORDER BY created_at"
                ))?;
                let rows = statement.query_map(params![self.lease.node], |row| {
                    Ok((OwnerId::from_stored(row.get(12)?), job_from_row(row)?))
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            };
            tx.execute(
                &format!("UPDATE jobs SET node_id = ?1, lease_until = ?2 WHERE {orphaned}"),
                params![self.lease.node, self.lease.until_ms()],
            )?;
            tx.commit()?;
            Ok(jobs)
        })
    }

    fn claim_queued_jobs(
        &self,
        _limit: usize,
        _waiting: std::time::Duration,
    ) -> StoreResult<Vec<(OwnerId, Job)>> {
        Ok(Vec::new()) // one node: its queued jobs wait for its own workers
    }

    fn release_leases(&self) -> StoreResult<()> {
        self.with(|connection| {
            connection.execute(
                &format!("UPDATE jobs SET lease_until = 0 WHERE node_id = ?1 AND {UNFINISHED}"),
                params![self.lease.node],
            )?;
            Ok(())
        })
    }

    fn count_by_state(&self) -> StoreResult<Vec<(JobState, u64)>> {
        let counts = self.read(|connection| {
            let mut statement =
                connection.prepare("SELECT state, COUNT(*) FROM jobs GROUP BY state")?;
            let rows =
                statement.query_map([], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64)))?;
            rows.collect()
        })?;
        rows::counts_by_state(counts)
    }

    fn add_token(&self, token_hash: &str, token: &StoredToken) -> StoreResult<()> {
        self.with(|connection| {
            connection.execute(
                "INSERT INTO tokens (hash, id, owner_id, hint, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    token_hash,
                    token.id,
                    token.owner.as_str(),
                    token.hint,
                    token.created_at_ms as i64,
                    token.expires_at_ms.map(|v| v as i64)
                ],
            )?;
            Ok(())
        })
    }

    fn token(&self, token_hash: &str) -> StoreResult<Option<StoredToken>> {
        self.read(|connection| {
            connection
                .query_row(
                    &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = ?1"),
                    params![token_hash],
                    token_from_row,
                )
                .optional()
        })
    }

    fn tokens(&self) -> StoreResult<Vec<StoredToken>> {
        self.read(|connection| {
            let mut statement = connection.prepare(&format!(
                "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at"
            ))?;
            let rows = statement.query_map([], token_from_row)?;
            rows.collect()
        })
    }

    fn remove_token(&self, id: &str) -> StoreResult<bool> {
        self.with(|connection| {
            let removed = connection.execute("DELETE FROM tokens WHERE id = ?1", params![id])?;
            Ok(removed > 0)
        })
    }

    fn add_schema(
        &self,
        owner: &OwnerId,
        schema: &StoredSchema,
        max_per_owner: usize,
    ) -> StoreResult<bool> {
        self.with(|connection| {
            let tx = write_transaction(connection)?;
            let count: i64 = tx.query_row(
                "SELECT COUNT(*) FROM schemas WHERE owner_id = ?1",
                params![owner.as_str()],
                |row| row.get(0),
            )?;
            if count as usize >= max_per_owner {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO schemas (id, owner_id, name, body, fields, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    schema.id,
                    owner.as_str(),
                    schema.name,
                    schema.body,
                    rows::field_names_json(&schema.fields),
                    crate::clock::now_ms() as i64
                ],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn schemas(&self, owner: &OwnerId) -> StoreResult<Vec<SchemaListing>> {
        self.read(|connection| {
            let mut statement = connection.prepare(
                "SELECT id, name, fields, CASE WHEN fields IS NULL THEN body END
                 FROM schemas WHERE owner_id = ?1 ORDER BY created_at, rowid",
            )?;
            let rows = statement.query_map(params![owner.as_str()], |row| {
                Ok(rows::listing(
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                ))
            })?;
            rows.collect()
        })
    }

    fn schema(&self, owner: &OwnerId, id: &str) -> StoreResult<Option<StoredSchema>> {
        self.read(|connection| {
            connection
                .query_row(
                    "SELECT name, body, fields FROM schemas WHERE owner_id = ?1 AND id = ?2",
                    params![owner.as_str(), id],
                    |row| {
                        let fields: Option<String> = row.get(2)?;
                        Ok(StoredSchema {
                            id: id.to_owned(),
                            name: row.get(0)?,
                            body: row.get(1)?,
                            fields: rows::field_names(fields),
                        })
                    },
                )
                .optional()
        })
    }
}
