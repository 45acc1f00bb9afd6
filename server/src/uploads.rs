//! Receiving a file: an upload streams to storage in batches, under the server's bounds (its
//! size, its time, the free disk), while the validator follows it. The route hands over the
//! multipart field's bytes; nothing here knows HTTP.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use datavista_shared::protocol::{Job, JobState};
use futures_util::{Stream, StreamExt};

use crate::config::Config;
use crate::jobs::{
    JobControl, JobError, JobRunner, Rules, SlotRefused, UploadSlot, STOPPED_MID_UPLOAD,
};
use crate::owner::OwnerId;
use crate::storage::UploadWriter;

/// Jobs of one owner not finished yet: a bound on what one client can make the server hold.
const MAX_UNFINISHED_PER_OWNER: usize = 200;
/// Uploads are written in batches of this size …
const WRITE_BATCH: usize = 1 << 20;
/// … or of whatever arrived in this time, so progress keeps moving for slow uploads.
const WRITE_EVERY: Duration = Duration::from_millis(100);
/// An upload that sends nothing for this long is given up; so is a form whose next part (or
/// a text field's next bytes) takes this long.
pub const UPLOAD_IDLE: Duration = Duration::from_secs(60);
/// Free disk space is checked again each time this many more bytes have arrived.
const DISK_CHECK_EVERY: u64 = 64 << 20;

/// Why a file was not received. The text is what the client reads.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The server, or the owner, has as many uploads or waiting files as it takes.
    #[error("{0}")]
    Busy(String),
    /// The server is stopping.
    #[error("{0}")]
    Stopping(String),
    /// The client broke off the upload, or went quiet.
    #[error("{0}")]
    Interrupted(String),
    /// The upload took longer than allowed.
    #[error("{0}")]
    TookTooLong(String),
    #[error("{0}")]
    TooLarge(String),
    /// The disk is (or ran) low.
    #[error("{0}")]
    NoRoom(String),
    /// The storage refused the bytes.
    #[error("cannot store an upload: {0}")]
    Storage(#[source] std::io::Error),
    #[error(transparent)]
    Job(#[from] JobError),
}

/// Where a file goes: who sends it, under which schema and rules, and its name as sent.
pub struct NewFile<'a> {
    pub owner: &'a OwnerId,
    pub schema_id: Option<String>,
    pub rules: Rules,
    pub raw_name: &'a str,
}

/// Receive one file from `part` into a new job, validated while it arrives. The job as it is
/// when the last byte is in (or when a cancel ended it).
pub async fn receive_file<E: std::fmt::Display>(
    runner: &Arc<JobRunner>,
    config: &Config,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    new: NewFile<'_>,
    part: &mut (impl Stream<Item = Result<Bytes, E>> + Unpin),
) -> Result<Job, ReceiveError> {
    let NewFile {
        owner,
        schema_id,
        rules,
        raw_name,
    } = new;
    if runner.running_count() >= config.max_unfinished_jobs {
        return Err(ReceiveError::Busy(
            "the server has as many files waiting as it takes; try again in a moment".into(),
        ));
    }
    if runner.unfinished_count(owner) >= MAX_UNFINISHED_PER_OWNER {
        return Err(ReceiveError::Busy(format!(
            "{MAX_UNFINISHED_PER_OWNER} of your files are still waiting; let some finish first"
        )));
    }
    let slot = runner.begin_upload_slot(owner).map_err(|refused| {
        ReceiveError::Busy(match refused {
            SlotRefused::Owner => format!(
                "at most {} uploads at once; wait for one to finish",
                config.max_uploads_per_owner
            ),
            SlotRefused::Server => {
                "the server is receiving as many files as it can; try again in a moment".into()
            }
        })
    })?;
    if runner.free_bytes().await? < config.min_free_bytes {
        return Err(ReceiveError::NoRoom(
            "the server is low on disk space; try again later".into(),
        ));
    }
    let (mut upload, file) = begin_upload(
        runner.clone(),
        owner.clone(),
        display_name(raw_name),
        schema_id,
        rules,
        slot,
    )
    .await?;
    let control = upload.control.clone();
    let mut writer = Writer {
        runner: runner.clone(),
        control: control.clone(),
        file: Some(file),
        pending: Vec::new(),
        flushed: Instant::now(),
    };
    let limit = config.max_file_bytes;
    let deadline = Instant::now() + Duration::from_secs(config.upload_deadline_secs);
    let mut received: u64 = 0;
    loop {
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .min(UPLOAD_IDLE);
        let next = tokio::select! {
            // A shutdown ends the upload now, in words, rather than leaving it to be cut off
            // when the server stops (its job would stay `uploading` until the next start).
            _ = shutdown.wait_for(|stopping| *stopping) => {
                upload.end(JobState::Failed, STOPPED_MID_UPLOAD).await;
                return Err(ReceiveError::Stopping(format!(
                    "'{}': {STOPPED_MID_UPLOAD}",
                    control.job().file_name
                )));
            }
            next = tokio::time::timeout(wait, part.next()) => next,
        };
        let chunk = match next {
            Ok(Some(Ok(chunk))) => chunk,
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                upload
                    .end(
                        JobState::Cancelled,
                        &format!("the upload was interrupted: {e}"),
                    )
                    .await;
                return Err(ReceiveError::Interrupted(format!(
                    "the upload of '{}' was interrupted: {e}",
                    control.job().file_name
                )));
            }
            Err(_) if Instant::now() >= deadline => {
                let reason = format!(
                    "the upload took longer than the {} minutes allowed",
                    config.upload_deadline_secs / 60
                );
                upload.end(JobState::Failed, &reason).await;
                return Err(ReceiveError::TookTooLong(format!(
                    "'{}': {reason}",
                    control.job().file_name
                )));
            }
            Err(_) => {
                let reason = format!("no data arrived for {} seconds", UPLOAD_IDLE.as_secs());
                upload.end(JobState::Failed, &reason).await;
                return Err(ReceiveError::Interrupted(format!(
                    "'{}': {reason}",
                    control.job().file_name
                )));
            }
        };
        received += chunk.len() as u64;
        if received > limit {
            let reason = format!("the file is larger than the {} limit", exact_size(limit));
            upload.end(JobState::Failed, &reason).await;
            return Err(ReceiveError::TooLarge(format!(
                "'{}': {reason}",
                control.job().file_name
            )));
        }
        let disk_check_due =
            received / DISK_CHECK_EVERY != (received - chunk.len() as u64) / DISK_CHECK_EVERY;
        if disk_check_due && runner.free_bytes().await? < config.min_free_bytes {
            let reason = "the server ran low on disk space during the upload".to_owned();
            upload.end(JobState::Failed, &reason).await;
            return Err(ReceiveError::NoRoom(format!(
                "'{}': {reason}; try again later",
                control.job().file_name
            )));
        }
        if control.is_cancelled() {
            upload.ended = true; // the cancel already ended the job
            return Ok(control.job());
        }
        if let Err(e) = writer.push(&chunk).await {
            return Err(upload.storage_failed(e).await);
        }
    }
    if let Err(e) = writer.flush().await {
        return Err(upload.storage_failed(e).await);
    }
    upload.ended = true;
    let (runner, done) = (runner.clone(), control.clone());
    tokio::task::spawn_blocking(move || runner.complete_upload(&done))
        .await
        .map_err(JobError::from)?;
    Ok(control.job())
}

/// Create the upload's job and file, holding `slot`. The guard is made on the blocking thread,
/// not after the await: a request dropped while the job is being made still ends it, when
/// the guard is dropped there, instead of leaving it `uploading`.
async fn begin_upload(
    runner: Arc<JobRunner>,
    owner: OwnerId,
    file_name: String,
    schema_id: Option<String>,
    rules: Rules,
    slot: UploadSlot,
) -> Result<(InProgress, Box<dyn UploadWriter>), ReceiveError> {
    let made = tokio::task::spawn_blocking(move || {
        let (control, file) = runner.start_upload(&owner, file_name, schema_id, rules)?;
        let upload = InProgress {
            runner,
            control,
            ended: false,
            _slot: slot,
        };
        Ok::<_, JobError>((upload, file))
    });
    Ok(made.await.map_err(JobError::from)??)
}

/// Writes an upload to storage in batches on the blocking pool, so no thread waits on a slow
/// client: bytes are gathered until a batch is large (or old) enough, then written at once.
struct Writer {
    runner: Arc<JobRunner>,
    control: Arc<JobControl>,
    file: Option<Box<dyn UploadWriter>>,
    pending: Vec<u8>,
    flushed: Instant,
}

impl Writer {
    async fn push(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.pending.extend_from_slice(chunk);
        if self.pending.len() >= WRITE_BATCH || self.flushed.elapsed() >= WRITE_EVERY {
            self.write_pending().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        self.write_pending().await?;
        let file = self
            .file
            .take()
            .ok_or_else(|| std::io::Error::other("the upload file is gone"))?;
        tokio::task::spawn_blocking(move || file.finish())
            .await
            .map_err(std::io::Error::other)?
    }

    async fn write_pending(&mut self) -> std::io::Result<()> {
        self.flushed = Instant::now();
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut file = self
            .file
            .take()
            .ok_or_else(|| std::io::Error::other("the upload file is gone"))?;
        let batch = std::mem::take(&mut self.pending);
        let (runner, control) = (self.runner.clone(), self.control.clone());
        let (file, result) = tokio::task::spawn_blocking(move || {
            let result = file.write_all(&batch);
            if result.is_ok() {
                runner.uploaded(&control, batch.len() as u64);
            }
            (file, result)
        })
        .await
        .map_err(std::io::Error::other)?;
        self.file = Some(file);
        result
    }
}

/// An upload in progress: if the request goes away before the end (the client aborted, the
/// connection broke), dropping this ends the job as cancelled and removes the partial file.
struct InProgress {
    runner: Arc<JobRunner>,
    control: Arc<JobControl>,
    ended: bool,
    _slot: UploadSlot,
}

impl InProgress {
    async fn end(&mut self, state: JobState, reason: &str) {
        self.ended = true;
        let (runner, control, reason) =
            (self.runner.clone(), self.control.clone(), reason.to_owned());
        let _ = tokio::task::spawn_blocking(move || runner.abort_upload(&control, state, &reason))
            .await;
    }

    /// The disk refused the bytes: the job fails, and the request answers 500.
    async fn storage_failed(&mut self, e: std::io::Error) -> ReceiveError {
        if e.kind() == std::io::ErrorKind::StorageFull {
            // The disk filled faster than the free-space check could see: the same answer.
            let reason = "the server ran out of disk space during the upload".to_owned();
            self.end(JobState::Failed, &reason).await;
            let name = self.control.job().file_name;
            return ReceiveError::NoRoom(format!("'{name}': {reason}; try again later"));
        }
        self.end(
            JobState::Failed,
            &format!("the file could not be stored: {e}"),
        )
        .await;
        ReceiveError::Storage(e)
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        if !self.ended {
            let (runner, control) = (self.runner.clone(), self.control.clone());
            let abort = move || {
                runner.abort_upload(&control, JobState::Cancelled, "the upload was interrupted")
            };
            // Off the async thread when there is a runtime. A request dropped while the
            // server stops has none left (spawning then panicked): end the job right here.
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn_blocking(abort)),
                Err(_) => abort(),
            }
        }
    }
}

/// A user's file name as a label only: no directories, no control characters, 255 characters
/// at most. Storage never sees it.
pub fn display_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let clean: String = base.chars().filter(|c| !c.is_control()).take(255).collect();
    let clean = clean.trim();
    if clean.is_empty() || clean == "." || clean == ".." {
        "upload.csv".to_owned()
    } else {
        clean.to_owned()
    }
}

/// A configured limit as it was most likely written (`2 GiB`), exact rather than rounded like
/// the sizes of files (`shared::format::human_size`).
fn exact_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b => format!("{b} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use datavista_shared::protocol::JobState;

    use super::{begin_upload, display_name, Rules};
    use crate::jobs::{tests::runner_on, UploadLimits};
    use crate::owner::OwnerId;

    /// A request dropped while its job is being made (the client left, the server stopped)
    /// leaves no job `uploading`.
    #[tokio::test]
    async fn a_request_dropped_while_its_job_is_made_ends_the_job() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(
            crate::store::sqlite::SqliteStore::open(
                &dir.path().join("db"),
                crate::store::Lease::new(Duration::from_secs(10)),
            )
            .unwrap(),
        );
        let storage = std::sync::Arc::new(crate::storage::LocalDisk::new(dir.path()).unwrap());
        let limits = UploadLimits {
            per_owner: 8,
            total: 8,
        };
        let runner = runner_on(store.clone(), storage, limits);
        let owner = OwnerId::random();
        let slot = runner.begin_upload_slot(&owner).unwrap();
        let rules = Rules {
            schema: datavista_shared::Schema::structural_only(),
            dialect: Default::default(),
        };
        let making = begin_upload(
            runner.clone(),
            owner.clone(),
            "a.csv".into(),
            None,
            rules,
            slot,
        );
        // Polled once, so the job is being made on a blocking thread, then dropped.
        let _ = tokio::time::timeout(Duration::ZERO, making).await;
        let mut state = None;
        for _ in 0..200 {
            let jobs = crate::store::JobStore::jobs(store.as_ref(), &owner, 0, 10).unwrap();
            state = jobs.first().map(|job| job.state);
            if state.is_some_and(|s| s.is_final()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(state, Some(JobState::Cancelled));
        assert!(
            runner.begin_upload_slot(&owner).is_ok(),
            "the slot is given back"
        );
    }

    #[test]
    fn hostile_names_become_harmless_labels() {
        assert_eq!(display_name("../../etc/passwd"), "passwd");
        assert_eq!(display_name("..\\..\\x.csv"), "x.csv");
        assert_eq!(display_name("a\u{0}b\nc.csv"), "abc.csv");
        assert_eq!(display_name(".."), "upload.csv");
        assert_eq!(display_name(""), "upload.csv");
        assert_eq!(display_name(&"x".repeat(10_000)).len(), 255);
    }
}
