//! `/api/uploads`: streaming multi-file upload, job state, error pages, reports, cancel/delete.
//! The handlers read the request and answer it; receiving a file is [`crate::uploads`], the
//! jobs are [`crate::jobs`], and reports are [`crate::reports`].

use std::time::{Duration, Instant};

use actix_multipart::Multipart;
use actix_web::{web, HttpResponse};
use datavista_shared::http::{ErrorPage, JobPage, UploadsCreated};
use datavista_shared::protocol::{Job, JobState};
use futures_util::StreamExt;
use serde::Deserialize;

use crate::errors::ApiError;
use crate::jobs::{Cancel, Rules, REMOTE_CANCEL_WAIT};
use crate::owner::OwnerId;
use crate::routes::auth::Owner;
use crate::state::AppState;
use crate::uploads::{receive_file, NewFile, UPLOAD_IDLE};

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

/// Files in one request: a bound on what one client can make the server hold.
const MAX_FILES_PER_REQUEST: usize = 100;
/// A form's text fields together, and the headers of all its parts, must arrive within this.
const FORM_FIELDS_DEADLINE: Duration = Duration::from_secs(60);
const MAX_SCHEMA_FIELD_BYTES: usize = 256;

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
                let new = NewFile {
                    owner: &owner,
                    schema_id: schema_id.clone(),
                    rules,
                    raw_name: &file_name,
                };
                let job = receive_file(
                    &state.jobs,
                    &state.config,
                    state.shutdown.subscribe(),
                    new,
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

/// The rules of the schema a request names.
async fn resolve_rules(
    state: &web::Data<AppState>,
    owner: &OwnerId,
    schema_id: Option<String>,
) -> Result<Rules, ApiError> {
    let rules = state
        .schemas
        .rules_async(&state.store, owner, schema_id.as_deref())
        .await?;
    rules.ok_or_else(|| {
        let id = schema_id.unwrap_or_default();
        ApiError::BadRequest(format!("unknown schema '{id}': see GET /api/schemas"))
    })
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
    let (uploads, total) = state.jobs.page(&owner.0, offset, limit).await?;
    Ok(HttpResponse::Ok().json(JobPage {
        uploads,
        total,
        offset,
        limit,
    }))
}

async fn find_job(state: &AppState, owner: &OwnerId, id: &str) -> Result<Job, ApiError> {
    state
        .jobs
        .find(owner, id)
        .await?
        .ok_or_else(ApiError::job_not_found)
}

/// `GET /api/uploads/{id}`: state and counts.
async fn get(
    state: web::Data<AppState>,
    owner: Owner,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(find_job(&state, &owner.0, &id).await?))
}

/// `DELETE /api/uploads/{id}`: a running job is cancelled (it stops within a second and its
/// file is removed), by the node running it; a finished one is deleted with its file and
/// report.
async fn delete(
    state: web::Data<AppState>,
    owner: Owner,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (owner, id) = (owner.0, id.into_inner());
    let job = find_job(&state, &owner, &id).await?;
    if !job.state.is_final() {
        if state.jobs.cancel_job(&owner, &id).await? == Cancel::Done {
            return Ok(HttpResponse::Ok().json(find_job(&state, &owner, &id).await?));
        }
        // Not running here: it ended meanwhile, or another node sharing the database runs it.
        let job = state
            .jobs
            .cancel_elsewhere(&owner, &id)
            .await?
            .ok_or_else(ApiError::job_not_found)?;
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
    state.reports.forget(&id);
    if state.jobs.delete_finished(&owner, &id).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::job_not_found())
    }
}

/// `GET /api/uploads/{id}/errors?offset=&limit=`: a page of the error sample.
async fn errors(
    state: web::Data<AppState>,
    owner: Owner,
    id: web::Path<String>,
    page: web::Query<Page>,
) -> Result<HttpResponse, ApiError> {
    let (_, cached) = state.reports.load(&state.jobs, &owner.0, &id).await?;
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

/// `GET /api/uploads/{id}/report.json`: the whole report.
async fn report_json(
    state: web::Data<AppState>,
    owner: Owner,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (job, cached) = state.reports.load(&state.jobs, &owner.0, &id).await?;
    Ok(HttpResponse::Ok()
        .insert_header(attachment(&job.file_name, "json"))
        .json(&cached.report))
}

/// `GET /api/uploads/{id}/report.csv`: the error sample, one error per row, safe to open in
/// a spreadsheet.
async fn report_csv(
    state: web::Data<AppState>,
    owner: Owner,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (job, cached) = state.reports.load(&state.jobs, &owner.0, &id).await?;
    let body = crate::reports::report_csv(&cached.report)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(attachment(&job.file_name, "csv"))
        .body(body))
}
