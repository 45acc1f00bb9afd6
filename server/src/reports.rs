//! Reports served from memory once read: every page of a report's errors, and each download,
//! used to read and parse the whole stored report again. Reports never change once stored,
//! so a report read once is kept, within a memory bound, until its job is deleted.

use std::sync::Arc;

use datavista_shared::Report;

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
    ) -> Result<Arc<CachedReport>, String> {
        self.reports.get_or_insert_with(id, || {
            let json = read().map_err(|e| format!("cannot read the stored report: {e}"))?;
            let report = serde_json::from_slice(&json)
                .map_err(|e| format!("stored report unreadable: {e}"))?;
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
            .starts_with("stored report unreadable"));
    }
}
