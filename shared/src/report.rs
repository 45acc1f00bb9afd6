//! What a validation run produces: error codes, single errors and the final report.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Offending cells are cut to this many characters in errors, so one huge cell cannot bloat a report.
pub const MAX_CELL_CHARS: usize = 200;

/// Error codes, spelled as Frictionless spells them so existing tooling understands them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// Bytes that are not UTF-8.
    EncodingError,
    /// The CSV itself cannot be read on: an unclosed quote at the end, a row over the size limit.
    SourceError,
    /// The validator could not finish a check (e.g. the unique-value memory cap was reached).
    TaskError,
    BlankLabel,
    DuplicateLabel,
    MissingLabel,
    ExtraLabel,
    IncorrectLabel,
    BlankRow,
    ExtraCell,
    MissingCell,
    TypeError,
    ConstraintError,
    UniqueError,
    PrimaryKey,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 15] = [
        ErrorCode::EncodingError,
        ErrorCode::SourceError,
        ErrorCode::TaskError,
        ErrorCode::BlankLabel,
        ErrorCode::DuplicateLabel,
        ErrorCode::MissingLabel,
        ErrorCode::ExtraLabel,
        ErrorCode::IncorrectLabel,
        ErrorCode::BlankRow,
        ErrorCode::ExtraCell,
        ErrorCode::MissingCell,
        ErrorCode::TypeError,
        ErrorCode::ConstraintError,
        ErrorCode::UniqueError,
        ErrorCode::PrimaryKey,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::EncodingError => "encoding-error",
            ErrorCode::SourceError => "source-error",
            ErrorCode::TaskError => "task-error",
            ErrorCode::BlankLabel => "blank-label",
            ErrorCode::DuplicateLabel => "duplicate-label",
            ErrorCode::MissingLabel => "missing-label",
            ErrorCode::ExtraLabel => "extra-label",
            ErrorCode::IncorrectLabel => "incorrect-label",
            ErrorCode::BlankRow => "blank-row",
            ErrorCode::ExtraCell => "extra-cell",
            ErrorCode::MissingCell => "missing-cell",
            ErrorCode::TypeError => "type-error",
            ErrorCode::ConstraintError => "constraint-error",
            ErrorCode::UniqueError => "unique-error",
            ErrorCode::PrimaryKey => "primary-key",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem found in the data.
///
/// Rows are numbered as Frictionless numbers them: 1-based over the CSV records, the header
/// is row 1 and the first data row is row 2. Lines count physical lines (a quoted cell with a
/// newline spans several), also 1-based.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationError {
    pub code: ErrorCode,
    pub message: String,
    /// `None` only for errors about the file as a whole.
    pub row: Option<u64>,
    pub line: Option<u64>,
    /// Offset of the row's first byte (for an encoding error: of the bad byte) from the file start.
    pub byte_offset: Option<u64>,
    pub field_name: Option<String>,
    /// 1-based position of the cell in the row.
    pub field_number: Option<usize>,
    /// The offending cell, cut to [`MAX_CELL_CHARS`] characters.
    pub cell: Option<String>,
    /// For constraint errors: which constraint failed (`required`, `maximum`, …).
    pub constraint: Option<String>,
}

/// Exact counts per error code; never capped, whatever the sample holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorCounts([u64; ErrorCode::ALL.len()]);

impl ErrorCounts {
    pub fn add(&mut self, code: ErrorCode) {
        self.0[code.index()] += 1;
    }

    pub fn get(&self, code: ErrorCode) -> u64 {
        self.0[code.index()]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Only the codes that occurred, for compact JSON.
    pub fn to_map(&self) -> BTreeMap<ErrorCode, u64> {
        ErrorCode::ALL
            .iter()
            .filter(|code| self.get(**code) > 0)
            .map(|code| (*code, self.get(*code)))
            .collect()
    }
}

/// The outcome of validating one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub valid: bool,
    /// CSV records read, header rows included (the last row number).
    pub rows: u64,
    pub bytes: u64,
    /// The file started with a UTF-8 byte order mark (accepted, and skipped).
    pub bom: bool,
    /// Exact number of errors per code.
    pub error_counts: BTreeMap<ErrorCode, u64>,
    pub error_total: u64,
    /// The first errors found, at most `Limits::max_error_sample`.
    pub errors: Vec<ValidationError>,
    /// True when more errors were found than the sample holds.
    pub errors_capped: bool,
    pub elapsed_ms: f64,
}

/// The most a stored report may take as JSON. Every echoed string is cut, so 1,000 errors
/// take a few MB at most; this bounds what a report can cost whatever a future message holds.
pub const MAX_REPORT_JSON_BYTES: usize = 8 << 20;

impl Report {
    pub fn count(&self, code: ErrorCode) -> u64 {
        self.error_counts.get(&code).copied().unwrap_or(0)
    }

    /// The report as JSON in at most `max_bytes`: past it, the sample keeps its first errors
    /// that fit (counts stay exact, and `errors_capped` says the sample is cut).
    pub fn to_json_within(&self, max_bytes: usize) -> Vec<u8> {
        // A report serializes: its maps have string keys and its numbers are finite or null.
        let json = serde_json::to_vec(self).expect("a report serializes");
        if json.len() <= max_bytes || self.errors.is_empty() {
            return json;
        }
        let mut cut = self.clone();
        cut.errors_capped = true;
        let mut keep = self.errors.len();
        loop {
            keep /= 2;
            cut.errors.truncate(keep);
            let json = serde_json::to_vec(&cut).expect("a report serializes");
            if json.len() <= max_bytes || keep == 0 {
                return json;
            }
        }
    }
}

/// Bounds that keep validation's memory use fixed whatever the input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// How many errors the report keeps in full; counts stay exact past it.
    pub max_error_sample: usize,
    /// A record (all its cells together) larger than this is reported and skipped.
    pub max_row_bytes: usize,
    /// A record with more cells than this is reported and skipped.
    pub max_cells_per_row: usize,
    /// Memory for the hashes behind `unique`, `primaryKey` and `uniqueKeys` checks together.
    pub unique_memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_error_sample: 1_000,
            max_row_bytes: 16 * 1024 * 1024,
            max_cells_per_row: 100_000,
            unique_memory_bytes: 512 * 1024 * 1024,
        }
    }
}

/// Cut a cell to [`MAX_CELL_CHARS`] characters for display.
pub fn truncate_cell(cell: &str) -> String {
    match cell.char_indices().nth(MAX_CELL_CHARS) {
        Some((cut, _)) => format!("{}…", &cell[..cut]),
        None => cell.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_past_its_size_bound_keeps_its_first_errors_and_exact_counts() {
        let error = |row: u64| ValidationError {
            code: ErrorCode::TypeError,
            message: "x".repeat(10_000),
            row: Some(row),
            line: Some(row),
            byte_offset: Some(row),
            field_name: None,
            field_number: None,
            cell: None,
            constraint: None,
        };
        let report = Report {
            valid: false,
            rows: 1_001,
            bytes: 1,
            bom: false,
            error_counts: BTreeMap::from([(ErrorCode::TypeError, 5_000)]),
            error_total: 5_000,
            errors: (2..1_002).map(error).collect(),
            errors_capped: true,
            elapsed_ms: 1.0,
        };
        let small = Report {
            errors: report.errors[..3].to_vec(),
            ..report.clone()
        };
        assert_eq!(
            small.to_json_within(1 << 20),
            serde_json::to_vec(&small).unwrap(),
            "a report within the bound is as it was"
        );
        let json = report.to_json_within(1 << 20);
        assert!(json.len() <= 1 << 20);
        let cut: Report = serde_json::from_slice(&json).unwrap();
        assert_eq!(cut.errors, report.errors[..cut.errors.len()]);
        assert!(cut.errors.len() > 50 && cut.errors_capped);
        assert_eq!(
            (cut.error_total, cut.error_counts),
            (5_000, report.error_counts)
        );
    }
}
