//! `/api/uploads`: streaming multi-file upload, job state, error pages, reports, cancel/delete.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_multipart::Multipart;
use actix_web::{web, HttpResponse};
use datavista_shared::http::{ErrorPage, JobPage, UploadsCreated};
use datavista_shared::protocol::{Job, JobState};
use datavista_shared::{Dialect, Schema};
use futures_util::StreamExt;
use serde::Deserialize;

use crate::errors::ApiError;
use crate::identity::{Owner, OwnerId};
use crate::jobs::{JobControl, JobRunner, Rules, SlotRefused, UploadSlot, STOPPED_MID_UPLOAD};
use crate::reports::CachedReport;
use crate::state::AppState;
use crate::storage::UploadWriter;
use std::io::Write as _;

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/api/uploads", web::post().to(create))
        .route("/api/uploads", web::get().to(list))
        .route("/api/uploads/{id}", web::get().to(get))
        .route("/api/uploads/{id}", web::delete().to(delete))
        .route("/api/uploads/{id}/errors", web::get().to(errors))
        .route("/api/uploads/{id}/report.json", web::get().to(report_json))
        .route("/api/uploads/{id}/report.csv", web::get().to(report_csv));
}

/// Files in one request, and jobs of one owner not finished yet: bounds on what one client
/// can make the server hold.
const MAX_FILES_PER_REQUEST: usize = 100;
const MAX_UNFINISHED_PER_OWNER: usize = 200;
/// Uploads are written in batches of this size …
const WRITE_BATCH: usize = 1 << 20;
/// … or of whatever arrived in this time, so progress keeps moving for slow uploads.
const WRITE_EVERY: Duration = Duration::from_millis(100);
/// An upload that sends nothing for this long is given up; so is a form whose next part (or
/// a text field's next bytes) takes this long.
const UPLOAD_IDLE: Duration = Duration::from_secs(60);
/// A form's text fields together, and the headers of all its parts, must arrive within this.
const FORM_FIELDS_DEADLINE: Duration = Duration::from_secs(60);
const MAX_SCHEMA_FIELD_BYTES: usize = 256;
/// Free disk space is checked again each time this many more bytes have arrived.
const DISK_CHECK_EVERY: u64 = 64 << 20;

#[derive(Deserialize)]
struct UploadQuery {
    schema: Option<String>,
}

/// `POST /api/uploads[?schema=ID]`, multipart/form-data: any number of file parts, and
/// optionally a `schema` text part before them. Each file streams to storage and is
/// validated while it arrives; nothing is held in memory whole.
async fn create(
    state: web::Data<AppState>,
    owner: Owner,
    query: web::Query<UploadQuery>,
    mut form: Multipart,
) -> Result<HttpResponse, ApiError> {
    let owner = owner.0;
    let mut schema_id = query.into_inner().schema.filter(|s| !s.is_empty());
    let mut created = Vec::new();
    // The schema is parsed once per request, not once per file.
    let mut rules: Option<(Option<String>, Rules)> = None;
    // Time spent on everything but the files' own bytes, which have their own bounds.
    let mut fields_deadline = Instant::now() + FORM_FIELDS_DEADLINE;
    while let Some(part) = read_form(&mut form, fields_deadline, "the next part").await? {
        let mut part =
            part.map_err(|e| ApiError::BadRequest(format!("the form could not be read: {e}")))?;
        let (name, file_name) = match part.content_disposition() {
            Some(cd) => (
                cd.get_name().map(str::to_owned),
                cd.get_filename().map(str::to_owned),
            ),
            None => (None, None),
        };
        match file_name {
            None if name.as_deref() == Some("schema") => {
                let mut text = Vec::new();
                while let Some(chunk) =
                    read_form(&mut part, fields_deadline, "a text field").await?
                {
                    let chunk = chunk.map_err(|e| {
                        ApiError::BadRequest(format!("the form could not be read: {e}"))
                    })?;
                    text.extend_from_slice(&chunk);
                    if text.len() > MAX_SCHEMA_FIELD_BYTES {
                        return Err(ApiError::BadRequest("the schema field is too long".into()));
                    }
                }
                schema_id = Some(String::from_utf8_lossy(&text).trim().to_owned())
                    .filter(|s| !s.is_empty());
            }
            None => {
                // Unknown text fields are read and ignored.
                while let Some(chunk) =
                    read_form(&mut part, fields_deadline, "a text field").await?
                {
                    chunk.map_err(|e| {
                        ApiError::BadRequest(format!("the form could not be read: {e}"))
                    })?;
                }
            }
            Some(file_name) => {
                if created.len() == MAX_FILES_PER_REQUEST {
                    return Err(ApiError::BadRequest(format!(
                        "at most {MAX_FILES_PER_REQUEST} files per request"
                    )));
                }
                let rules = match &rules {
                    Some((id, rules)) if *id == schema_id => rules.clone(),
                    _ => {
                        let resolved = resolve_rules(&state, &owner, schema_id.clone()).await?;
                        rules = Some((schema_id.clone(), resolved.clone()));
                        resolved
                    }
                };
                let job = receive_file(
                    &state,
                    &owner,
                    schema_id.clone(),
                    rules,
                    &file_name,
                    &mut part,
                )
                .await?;
                let cancelled = job.state == JobState::Cancelled;
                created.push(job);
                if cancelled {
                    break; // stop reading: the rest of the body is not wanted
                }
                // A file may take long: the fields after it get their own time.
                fields_deadline = Instant::now() + FORM_FIELDS_DEADLINE;
            }
        }
    }
    if created.is_empty() {
        return Err(ApiError::BadRequest(
            "no file in the form: send multipart/form-data with one or more 'file' parts".into(),
        ));
    }
    Ok(HttpResponse::Created().json(UploadsCreated { uploads: created }))
}

/// The form's next item, within `UPLOAD_IDLE` and the deadline: a client that holds a form
/// open without sending gets 408, and frees what it held.
async fn read_form<S: futures_util::Stream + Unpin>(
    stream: &mut S,
    deadline: Instant,
    what: &str,
) -> Result<Option<S::Item>, ApiError> {
    let wait = deadline
        .saturating_duration_since(Instant::now())
        .min(UPLOAD_IDLE);
    tokio::time::timeout(wait, stream.next())
        .await
        .map_err(|_| ApiError::Timeout(format!("{what} of the form did not arrive in time")))
}

async fn receive_file(
    state: &web::Data<AppState>,
    owner: &OwnerId,
    schema_id: Option<String>,
    rules: Rules,
    raw_name: &str,
    part: &mut actix_multipart::Field,
) -> Result<Job, ApiError> {
    if state.jobs.running_count() >= state.config.max_unfinished_jobs {
        return Err(ApiError::TooManyUploads(
            "the server has as many files waiting as it takes; try again in a moment".into(),
        ));
    }
    if state.jobs.unfinished_count(owner) >= MAX_UNFINISHED_PER_OWNER {
        return Err(ApiError::TooManyUploads(format!(
            "{MAX_UNFINISHED_PER_OWNER} of your files are still waiting; let some finish first"
        )));
    }
    let slot = state.jobs.begin_upload_slot(owner).map_err(|refused| {
        ApiError::TooManyUploads(match refused {
            SlotRefused::Owner => format!(
                "at most {} uploads at once; wait for one to finish",
                state.config.max_uploads_per_owner
            ),
            SlotRefused::Server => {
                "the server is receiving as many files as it can; try again in a moment".into()
            }
        })
    })?;
    let storage = state.jobs.storage().clone();
    let free = web::block(move || storage.available_bytes()).await??;
    if free < state.config.min_free_bytes {
        return Err(ApiError::InsufficientStorage(
            "the server is low on disk space; try again later".into(),
        ));
    }
    let (mut upload, file) = begin_upload(
        state.jobs.clone(),
        owner.clone(),
        display_name(raw_name),
        schema_id,
        rules,
        slot,
    )
    .await?;
    let control = upload.control.clone();
    let mut writer = Writer {
        runner: state.jobs.clone(),
        control: control.clone(),
        file: Some(file),
        pending: Vec::new(),
        flushed: Instant::now(),
    };
    let limit = state.config.max_file_bytes;
    let deadline = Instant::now() + Duration::from_secs(state.config.upload_deadline_secs);
    let mut shutdown = state.shutdown.subscribe();
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
                return Err(ApiError::Unavailable(format!(
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
                return Err(ApiError::BadRequest(format!(
                    "the upload of '{}' was interrupted: {e}",
                    control.job().file_name
                )));
            }
            Err(_) if Instant::now() >= deadline => {
                let reason = format!(
                    "the upload took longer than the {} minutes allowed",
                    state.config.upload_deadline_secs / 60
                );
                upload.end(JobState::Failed, &reason).await;
                return Err(ApiError::Timeout(format!(
                    "'{}': {reason}",
                    control.job().file_name
                )));
            }
            Err(_) => {
                let reason = format!("no data arrived for {} seconds", UPLOAD_IDLE.as_secs());
                upload.end(JobState::Failed, &reason).await;
                return Err(ApiError::BadRequest(format!(
                    "'{}': {reason}",
                    control.job().file_name
                )));
            }
        };
        received += chunk.len() as u64;
        if received > limit {
            let reason = format!("the file is larger than the {} limit", human_size(limit));
            upload.end(JobState::Failed, &reason).await;
            return Err(ApiError::TooLarge(format!(
                "'{}': {reason}",
                control.job().file_name
            )));
        }
        if received / DISK_CHECK_EVERY != (received - chunk.len() as u64) / DISK_CHECK_EVERY {
            let storage = state.jobs.storage().clone();
            let free = web::block(move || storage.available_bytes()).await??;
            if free < state.config.min_free_bytes {
                let reason = "the server ran low on disk space during the upload".to_owned();
                upload.end(JobState::Failed, &reason).await;
                return Err(ApiError::InsufficientStorage(format!(
                    "'{}': {reason}; try again later",
                    control.job().file_name
                )));
            }
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
    let runner = state.jobs.clone();
    let done = control.clone();
    web::block(move || runner.complete_upload(&done)).await?;
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
) -> Result<(InProgress, Box<dyn UploadWriter>), ApiError> {
    web::block(move || {
        let (control, file) = runner.start_upload(&owner, file_name, schema_id, rules)?;
        let upload = InProgress {
            runner,
            control,
            ended: false,
            _slot: slot,
        };
        Ok::<_, String>((upload, file))
    })
    .await?
    .map_err(ApiError::Internal)
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
        web::block(move || file.finish())
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
        let (file, result) = web::block(move || {
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
        let _ = web::block(move || runner.abort_upload(&control, state, &reason)).await;
    }

    /// The disk refused the bytes: the job fails, and the request answers 500.
    async fn storage_failed(&mut self, e: std::io::Error) -> ApiError {
        if e.kind() == std::io::ErrorKind::StorageFull {
            // The disk filled faster than the free-space check could see: the same answer.
            let reason = "the server ran out of disk space during the upload".to_owned();
            self.end(JobState::Failed, &reason).await;
            let name = self.control.job().file_name;
            return ApiError::InsufficientStorage(format!("'{name}': {reason}; try again later"));
        }
        self.end(
            JobState::Failed,
            &format!("the file could not be stored: {e}"),
        )
        .await;
        ApiError::Internal(format!("cannot store an upload: {e}"))
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

async fn resolve_rules(
    state: &web::Data<AppState>,
    owner: &OwnerId,
    schema_id: Option<String>,
) -> Result<Rules, ApiError> {
    let Some(id) = schema_id else {
        return Ok(Rules {
            schema: Schema::structural_only(),
            dialect: Dialect::default(),
        });
    };
    let (state2, owner2, id2) = (state.clone(), owner.clone(), id.clone());
    let schema =
        web::block(move || state2.schemas.find(state2.store.as_ref(), &owner2, &id2)).await??;
    let schema = schema.ok_or_else(|| {
        ApiError::BadRequest(format!("unknown schema '{id}': see GET /api/schemas"))
    })?;
    Ok(Rules {
        schema: schema.schema.clone(),
        dialect: Dialect::default(),
    })
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

fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b => format!("{b} bytes"),
    }
}

#[derive(Deserialize)]
struct Page {
    offset: Option<u64>,
    limit: Option<u64>,
}

/// `GET /api/uploads?offset=&limit=`: newest first.
async fn list(
    state: web::Data<AppState>,
    owner: Owner,
    page: web::Query<Page>,
) -> Result<HttpResponse, ApiError> {
    let offset = page.offset.unwrap_or(0);
    let limit = page.limit.unwrap_or(50).clamp(1, 500);
    let store = state.store.clone();
    let (uploads, total) = web::block(move || {
        Ok::<_, crate::store::StoreError>((
            store.jobs(&owner.0, offset, limit)?,
            store.job_count(&owner.0)?,
        ))
    })
    .await??;
    Ok(HttpResponse::Ok().json(JobPage {
        uploads,
        total,
        offset,
        limit,
    }))
}

async fn find_job(
    state: &web::Data<AppState>,
    owner: &OwnerId,
    id: String,
) -> Result<Job, ApiError> {
    let (store, owner) = (state.store.clone(), owner.clone());
    web::block(move || store.job(&owner, &id))
        .await??
        .ok_or_else(ApiError::job_not_found)
}

/// `GET /api/uploads/{id}`: state and counts.
async fn get(
    state: web::Data<AppState>,
    owner: Owner,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(find_job(&state, &owner.0, id.into_inner()).await?))
}

/// How long a `DELETE` waits for another node to cancel the job it runs.
const REMOTE_CANCEL_WAIT: Duration = Duration::from_secs(5);

/// Between asks, while waiting for another node to cancel a job.
const REMOTE_CANCEL_ASK_EVERY: Duration = Duration::from_millis(500);

/// Cancel a job that another node runs: ask over the bus, and again every half second (a
/// node taking the job over meanwhile hears a later ask), until the job ends or
/// REMOTE_CANCEL_WAIT passes. The job as it is then.
pub async fn cancel_elsewhere(
    state: &web::Data<AppState>,
    owner: &OwnerId,
    id: &str,
) -> Result<Job, ApiError> {
    let deadline = Instant::now() + REMOTE_CANCEL_WAIT;
    let mut next_ask = Instant::now();
    loop {
        let job = find_job(state, owner, id.to_owned()).await?;
        if job.state.is_final() || Instant::now() >= deadline {
            return Ok(job);
        }
        if Instant::now() >= next_ask {
            state.jobs.publisher().request_cancel(owner, id);
            next_ask += REMOTE_CANCEL_ASK_EVERY;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `DELETE /api/uploads/{id}`: a running job is cancelled (it stops within a second and its
/// file is removed), by the node running it; a finished one is deleted with its file and
/// report.
async fn delete(
    state: web::Data<AppState>,
    owner: Owner,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let job = find_job(&state, &owner.0, id.clone()).await?;
    let runner = state.jobs.clone();
    let owner = owner.0;
    if !job.state.is_final() {
        let (o, i) = (owner.clone(), id.clone());
        if web::block(move || runner.cancel(&o, &i)).await? {
            let job = find_job(&state, &owner, id).await?;
            return Ok(HttpResponse::Ok().json(job));
        }
        // Not running here: it ended meanwhile, or another node sharing the database runs it.
        let job = cancel_elsewhere(&state, &owner, &id).await?;
        match job.state {
            JobState::Cancelled => return Ok(HttpResponse::Ok().json(job)),
            state if state.is_final() => {} // it ended by itself: delete it, as asked
            _ => {
                return Err(ApiError::NotFinished(format!(
                    "the server node running this job did not cancel it within {} s; try again",
                    REMOTE_CANCEL_WAIT.as_secs()
                )))
            }
        }
    }
    let runner = state.jobs.clone();
    state.reports.forget(&id);
    let removed = web::block(move || {
        let storage = runner.storage();
        storage.remove_upload(&id)?;
        storage.remove_report(&id)?;
        runner
            .publisher()
            .job_removed(&owner, &id)
            .map_err(std::io::Error::other)
    })
    .await??;
    if removed {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::job_not_found())
    }
}

async fn load_report(
    state: &web::Data<AppState>,
    owner: &OwnerId,
    id: String,
) -> Result<Arc<CachedReport>, ApiError> {
    let job = find_job(state, owner, id.clone()).await?;
    match job.state {
        JobState::Valid | JobState::Invalid => {}
        JobState::Failed | JobState::Cancelled => {
            return Err(ApiError::NotFound(format!(
                "the upload was {} and has no report",
                job.state.as_str()
            )))
        }
        other => {
            return Err(ApiError::NotFinished(format!(
                "the upload is {}; its report is ready once it is valid or invalid",
                other.as_str()
            )))
        }
    }
    let state = state.clone();
    web::block(move || {
        let storage = state.jobs.storage();
        state.reports.get_or_read(&id, || storage.read_report(&id))
    })
    .await?
    .map_err(ApiError::Internal)
}

/// `GET /api/uploads/{id}/errors?offset=&limit=`: a page of the error sample.
async fn errors(
    state: web::Data<AppState>,
    owner: Owner,
    id: web::Path<String>,
    page: web::Query<Page>,
) -> Result<HttpResponse, ApiError> {
    let cached = load_report(&state, &owner.0, id.into_inner()).await?;
    let report = &cached.report;
    let offset = page.offset.unwrap_or(0);
    let limit = page.limit.unwrap_or(100).clamp(1, 1000);
    let errors = report
        .errors
        .iter()
        .skip(offset as usize)
        .take(limit as usize)
        .cloned()
        .collect();
    Ok(HttpResponse::Ok().json(ErrorPage {
        errors,
        offset,
        limit,
        sample_size: report.errors.len() as u64,
        error_total: report.error_total,
        sample_capped: report.errors_capped,
    }))
}

fn attachment(name: &str, extension: &str) -> (String, String) {
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    let safe: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    (
        "Content-Disposition".to_owned(),
        format!("attachment; filename=\"{safe}-report.{extension}\""),
    )
}

/// What a spreadsheet takes for the start of a formula (OWASP, "CSV Injection").
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Text for a CSV report cell that a spreadsheet shows as text: one starting like a formula
/// (e.g. a user's cell `=HYPERLINK(…)`) gets a leading `'`, as OWASP recommends; anything
/// else is left exactly as it is. Negative numbers in user text get the quote too.
fn inert_in_spreadsheets(text: &str) -> String {
    if text.starts_with(FORMULA_STARTS) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

/// `GET /api/uploads/{id}/report.json`: the whole report.
async fn report_json(
    state: web::Data<AppState>,
    owner: Owner,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let job = find_job(&state, &owner.0, id.clone()).await?;
    let cached = load_report(&state, &owner.0, id).await?;
    Ok(HttpResponse::Ok()
        .insert_header(attachment(&job.file_name, "json"))
        .json(&cached.report))
}

/// `GET /api/uploads/{id}/report.csv`: the error sample, one error per row. Text that
/// could run as a formula when the file opens in a spreadsheet is neutralised.
async fn report_csv(
    state: web::Data<AppState>,
    owner: Owner,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let job = find_job(&state, &owner.0, id.clone()).await?;
    let cached = load_report(&state, &owner.0, id).await?;
    let report = &cached.report;
    let mut out = csv::Writer::from_writer(Vec::new());
    let write = |out: &mut csv::Writer<Vec<u8>>| -> Result<(), csv::Error> {
        out.write_record([
            "row",
            "line",
            "byte_offset",
            "field_number",
            "field_name",
            "code",
            "constraint",
            "cell",
            "message",
        ])?;
        for e in &report.errors {
            let number = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
            let text = |v: &Option<String>| inert_in_spreadsheets(v.as_deref().unwrap_or_default());
            out.write_record([
                number(e.row),
                number(e.line),
                number(e.byte_offset),
                number(e.field_number.map(|n| n as u64)),
                text(&e.field_name),
                inert_in_spreadsheets(e.code.as_str()),
                text(&e.constraint),
                text(&e.cell),
                inert_in_spreadsheets(&e.message),
            ])?;
        }
        Ok(())
    };
    write(&mut out).map_err(|e| ApiError::Internal(e.to_string()))?;
    let body = out
        .into_inner()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(attachment(&job.file_name, "csv"))
        .body(body))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use datavista_shared::protocol::JobState;

    use super::{begin_upload, display_name, Rules};
    use crate::identity::OwnerId;
    use crate::jobs::{tests::runner_on, UploadLimits};

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
