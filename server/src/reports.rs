//! Reports served from memory once read: every page of a report's errors, and each download,
//! used to read and parse the whole stored report again. Reports never change once stored,
//! so a report read once is kept, within a memory bound, until its job is deleted. Also the
//! report as CSV, safe to open in a spreadsheet.

use std::sync::Arc;

use datavista_shared::protocol::{Job, JobState};
use datavista_shared::Report;

use crate::jobs::{JobError, JobRunner};
use crate::owner::OwnerId;

/// Memory for reports read recently. A report is at most
/// [`datavista_shared::report::MAX_REPORT_JSON_BYTES`] as JSON, and a few MB in practice.
const CACHE_BYTES: u64 = 128 << 20;

pub struct ReportCache {
    reports: quick_cache::sync::Cache<String, Arc<CachedReport>, ByJsonSize>,
}

pub struct CachedReport {
    pub report: Report,
    /// Its size as stored: about what it holds in memory.
    json_bytes: usize,
}

#[derive(Clone)]
struct ByJsonSize;

impl quick_cache::Weighter<String, Arc<CachedReport>> for ByJsonSize {
    fn weight(&self, _id: &String, cached: &Arc<CachedReport>) -> u64 {
        cached.json_bytes.max(1) as u64
    }
}

impl ReportCache {
    pub fn new() -> ReportCache {
        ReportCache {
            // The cache's estimate of how many entries it holds, for its tables.
            reports: quick_cache::sync::Cache::with_weighter(1_024, CACHE_BYTES, ByJsonSize),
        }
    }

    /// The job's report: from memory, or from `read` (the stored JSON) once. Requests for a
    /// report being read wait for that read instead of reading it too. Blocking.
    pub fn get_or_read(
        &self,
        id: &str,
        read: impl FnOnce() -> std::io::Result<Vec<u8>>,
    ) -> Result<Arc<CachedReport>, ReadError> {
        self.reports.get_or_insert_with(id, || {
            let json = read().map_err(ReadError::Read)?;
            let report = serde_json::from_slice(&json).map_err(ReadError::Unreadable)?;
            Ok(Arc::new(CachedReport {
                report,
                json_bytes: json.len(),
            }))
        })
    }

    /// The job and its report are gone.
    pub fn forget(&self, id: &str) {
        self.reports.remove(id);
    }
}

/// Why a stored report could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read the stored report: {0}")]
    Read(#[source] std::io::Error),
    #[error("stored report unreadable: {0}")]
    Unreadable(#[source] serde_json::Error),
}

/// Why a job's report cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("no such upload")]
    NoSuchJob,
    /// The job ended without a verdict.
    #[error("the upload was {} and has no report", .0.as_str())]
    NoReport(JobState),
    #[error("the upload is {}; its report is ready once it is valid or invalid", .0.as_str())]
    NotYet(JobState),
    #[error(transparent)]
    Job(#[from] JobError),
    #[error(transparent)]
    Stored(#[from] ReadError),
}

impl ReportCache {
    /// The owner's job and its report, once the job has a verdict.
    pub async fn load(
        self: &Arc<Self>,
        runner: &Arc<JobRunner>,
        owner: &OwnerId,
        id: &str,
    ) -> Result<(Job, Arc<CachedReport>), ReportError> {
        let job = runner
            .find(owner, id)
            .await?
            .ok_or(ReportError::NoSuchJob)?;
        match job.state {
            JobState::Valid | JobState::Invalid => {}
            JobState::Failed | JobState::Cancelled => return Err(ReportError::NoReport(job.state)),
            other => return Err(ReportError::NotYet(other)),
        }
        let (cache, storage, id) = (self.clone(), runner.storage().clone(), id.to_owned());
        let report = tokio::task::spawn_blocking(move || {
            cache.get_or_read(&id, || storage.read_report(&id))
        })
        .await
        .map_err(JobError::from)??;
        Ok((job, report))
    }
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

/// The error sample as CSV, one error per row. Text that could run as a formula when the
/// file opens in a spreadsheet is neutralised.
pub fn report_csv(report: &Report) -> Result<Vec<u8>, csv::Error> {
    let mut out = csv::Writer::from_writer(Vec::new());
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
    out.into_inner().map_err(|e| e.into_error().into())
}

impl Default for ReportCache {
    fn default() -> Self {
        ReportCache::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_read_once_then_served_from_memory_until_forgotten() {
        let cache = ReportCache::new();
        let json = serde_json::to_vec(
            &datavista_shared::Validator::new(
                datavista_shared::Schema::structural_only(),
                Default::default(),
                Default::default(),
            )
            .finish(),
        )
        .unwrap();
        let reads = std::cell::Cell::new(0);
        let read = || {
            reads.set(reads.get() + 1);
            Ok(json.clone())
        };
        for _ in 0..5 {
            assert_eq!(cache.get_or_read("j1", read).unwrap().report.rows, 0);
        }
        assert_eq!(reads.get(), 1);
        cache.forget("j1");
        cache.get_or_read("j1", read).unwrap();
        assert_eq!(reads.get(), 2);
        let broken = cache.get_or_read("j2", || Ok(b"{".to_vec()));
        assert!(broken
            .err()
            .unwrap()
            .to_string()
            .starts_with("stored report unreadable"));
    }
}
