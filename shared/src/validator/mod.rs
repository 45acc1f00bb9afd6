//! The streaming validator: feed it bytes in chunks of any size, then finish for the report.
//!
//! ```
//! use datavista_shared::{Dialect, Limits, Schema, Validator};
//!
//! let schema = Schema::from_json(r#"{"fields": [{"name": "age", "type": "integer"}]}"#).unwrap();
//! let mut validator = Validator::new(schema, Dialect::default(), Limits::default());
//! validator.feed(b"age\n4");
//! validator.feed(b"2\n1x3\n");
//! let report = validator.finish();
//! assert!(!report.valid);
//! assert_eq!(report.errors[0].message, "row 3, field 'age': '1x3' is not an integer");
//! ```
//!
//! Memory stays bounded whatever the input: one record at a time (capped by
//! [`Limits::max_row_bytes`]), a capped error sample, and hashes for uniqueness checks under
//! [`Limits::unique_memory_bytes`].
//!
//! The [`Validator`] reads records ([`records`]) and hands each to its checker, whose parts
//! have a file each: `header.rs` (labels and the column of each field), `cells.rs` (the
//! per-cell path: `fast.rs`'s check first, then the general one) and `keys.rs` (primary key,
//! unique keys and unique fields, over the sets in `unique.rs`); `place.rs` says where a cell
//! is for the errors of both.

mod cells;
mod fast;
mod header;
mod keys;
mod place;
pub mod records;
mod split;
mod text;
mod unique;

use crate::clock::Stopwatch;
use crate::dialect::Dialect;
use crate::report::{ErrorCode, ErrorCounts, Limits, Report, ValidationError};
use crate::schema::Schema;
use cells::Cells;
use fast::FastCheck;
use header::Header;
use keys::Keys;
use records::{Record, RecordEvent, RecordReader};

/// How far a validation has come, for progress bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub bytes: u64,
    pub rows: u64,
    pub errors: u64,
}

pub struct Validator {
    reader: RecordReader,
    checker: Checker,
    stopwatch: Stopwatch,
}

impl Validator {
    pub fn new(schema: Schema, dialect: Dialect, limits: Limits) -> Validator {
        Validator {
            reader: RecordReader::new(&dialect, &limits),
            checker: Checker::new(schema, dialect, limits),
            stopwatch: Stopwatch::start(),
        }
    }

    /// The same validator with every cell on the general path: the reference the fast checks
    /// are tested against (they must never change a report). Slower; not for production use.
    #[doc(hidden)]
    pub fn without_fast_checks(mut self) -> Validator {
        self.checker
            .cells
            .fast_checks
            .iter_mut()
            .for_each(|check| *check = FastCheck::General);
        self
    }

    /// Validate the next piece of the file.
    pub fn feed(&mut self, chunk: &[u8]) {
        let checker = &mut self.checker;
        if checker.file_start.len() < text::SIGNATURE_LEN {
            let take = (text::SIGNATURE_LEN - checker.file_start.len()).min(chunk.len());
            checker.file_start.extend_from_slice(&chunk[..take]);
        }
        self.reader
            .feed(chunk, &mut |event| checker.on_event(event));
    }

    pub fn progress(&self) -> Progress {
        Progress {
            bytes: self.reader.bytes_consumed(),
            rows: self.reader.rows(),
            errors: self.checker.errors.counts.total(),
        }
    }

    /// Exact error counts so far.
    pub fn error_counts(&self) -> &ErrorCounts {
        &self.checker.errors.counts
    }

    /// The end of the file: finishes the last row and returns the report.
    pub fn finish(mut self) -> Report {
        let checker = &mut self.checker;
        self.reader.finish(&mut |event| checker.on_event(event));
        let rows = self.reader.rows();
        self.checker
            .finish(rows, self.reader.first_encoding_error());
        let checker = self.checker;
        Report {
            valid: checker.errors.counts.total() == 0,
            rows,
            bytes: self.reader.bytes_consumed(),
            bom: self.reader.bom(),
            error_counts: checker.errors.counts.to_map(),
            error_total: checker.errors.counts.total(),
            errors: checker.errors.sample,
            errors_capped: checker.errors.capped,
            elapsed_ms: self.stopwatch.elapsed_ms(),
        }
    }
}

/// Everything that looks at records: header, rows, cells and keys. Each part's state is its
/// own struct, next to the code that uses it.
struct Checker {
    schema: Schema,
    dialect: Dialect,
    limits: Limits,
    header: Header,
    cells: Cells,
    keys: Keys,
    errors: Errors,
    encoding_reported: bool,
    /// The file's first bytes, to name a binary format in an encoding error.
    file_start: Vec<u8>,
}

impl Checker {
    fn new(schema: Schema, dialect: Dialect, limits: Limits) -> Checker {
        let keys = Keys::new(&schema, limits.unique_memory_bytes);
        Checker {
            header: Header::new(&dialect, schema.fields.len()),
            cells: Cells::new(&schema, &keys),
            keys,
            errors: Errors {
                counts: ErrorCounts::default(),
                sample: Vec::new(),
                capped: false,
                max_sample: limits.max_error_sample,
            },
            schema,
            dialect,
            limits,
            encoding_reported: false,
            file_start: Vec::with_capacity(text::SIGNATURE_LEN),
        }
    }

    fn on_event(&mut self, event: RecordEvent<'_>) {
        match event {
            RecordEvent::Oversized {
                row,
                line,
                byte_offset,
            } => {
                let limit = self.limits.max_row_bytes;
                let cells = self.limits.max_cells_per_row;
                self.errors.add(ErrorCode::SourceError, || ValidationError {
                    message: format!(
                        "row {row} (line {line}) is larger than the row limit ({limit} bytes or {cells} cells) and was not checked"
                    ),
                    ..error(ErrorCode::SourceError, Some(row), Some(line), Some(byte_offset))
                });
                if row <= self.header.last_row {
                    self.finish_header_if_last(row);
                }
            }
            RecordEvent::Record(record) => {
                self.check_encoding(&record);
                if record.unclosed_quote {
                    let (row, line) = (record.row, record.line);
                    self.errors.add(ErrorCode::SourceError, || ValidationError {
                        message: format!(
                            "row {row} (line {line}): a quoted cell is still open at the end of the file — a closing quote is missing"
                        ),
                        ..error(ErrorCode::SourceError, Some(row), Some(line), Some(record.byte_offset))
                    });
                }
                if record.row <= self.header.last_row {
                    self.header_record(&record);
                } else {
                    self.data_record(&record);
                }
            }
        }
    }

    /// Report the first bad UTF-8 byte on the record it belongs to (or the first one after it,
    /// when it sits in a comment line).
    fn check_encoding(&mut self, record: &Record<'_>) {
        match record.encoding_error {
            Some(offset) if !self.encoding_reported && offset < record.end_offset => {
                self.report_encoding_error(offset, Some(record.row), Some(record.line))
            }
            _ => {}
        }
    }

    fn report_encoding_error(&mut self, offset: u64, row: Option<u64>, line: Option<u64>) {
        self.encoding_reported = true;
        let place = match (row, line) {
            (Some(row), Some(line)) => format!("row {row} (line {line}), "),
            _ => String::new(),
        };
        let advice = match text::known_binary_format(&self.file_start) {
            Some(format) => format!("the file is not valid UTF-8 here; it looks like {format}"),
            None => "the file is not valid UTF-8 here; save it as UTF-8 and upload it again".into(),
        };
        self.errors
            .add(ErrorCode::EncodingError, || ValidationError {
                message: format!("{place}byte {offset}: {advice}"),
                ..error(ErrorCode::EncodingError, row, line, Some(offset))
            });
    }

    /// A data row: its width, each of its cells, then its keys.
    fn data_record(&mut self, record: &Record<'_>) {
        let (row, line, offset) = (record.row, record.line, record.byte_offset);
        if record.is_blank() {
            self.errors.add(ErrorCode::BlankRow, || ValidationError {
                message: format!("row {row} is blank"),
                ..error(ErrorCode::BlankRow, Some(row), Some(line), Some(offset))
            });
            return;
        }
        let width = *self.header.width.get_or_insert(record.len());
        if record.len() != width {
            self.width_errors(record, width);
        }
        // Out of `self` for the loop, so that they stay in registers instead of being
        // reloaded through `self` around every cell (the general path takes `&mut self`).
        let checks = std::mem::take(&mut self.cells.fast_checks);
        let columns = std::mem::take(&mut self.header.columns);
        for (field_index, (check, column)) in checks.iter().zip(&columns).enumerate() {
            match column.filter(|c| *c < record.len()) {
                Some(column) => self.check_cell(record, field_index, column, check),
                None => self.keys.values[field_index] = None,
            }
        }
        self.cells.fast_checks = checks;
        self.header.columns = columns;
        if !self.keys.key_sets.is_empty() && !self.keys.stopped {
            self.check_keys(row, line, offset);
        }
    }

    fn finish(&mut self, rows: u64, encoding_error: Option<u64>) {
        if let Some(offset) = encoding_error.filter(|_| !self.encoding_reported) {
            self.report_encoding_error(offset, None, None);
        }
        if rows == 0 {
            self.errors.add(ErrorCode::SourceError, || ValidationError {
                message: "the file is empty: there is no header and no data".to_owned(),
                ..error(ErrorCode::SourceError, None, None, None)
            });
        } else if self.header.last_row > rows {
            let last = self.header.last_row;
            self.errors.add(ErrorCode::SourceError, || ValidationError {
                message: format!(
                    "the file has {rows} rows, but the header should end on row {last}"
                ),
                ..error(ErrorCode::SourceError, None, None, None)
            });
        }
    }
}

/// Exact counts, and the first errors in full.
struct Errors {
    counts: ErrorCounts,
    sample: Vec<ValidationError>,
    capped: bool,
    max_sample: usize,
}

impl Errors {
    /// Count an error, and keep it in the sample while there is room. The error is only
    /// built when it will be kept, so millions of errors cost counting, not formatting.
    fn add(&mut self, code: ErrorCode, build: impl FnOnce() -> ValidationError) {
        self.counts.add(code);
        if self.sample.len() < self.max_sample {
            let error = build();
            debug_assert_eq!(error.code, code);
            self.sample.push(error);
        } else {
            self.capped = true;
        }
    }
}

/// An error with its code and position; the caller fills in the rest.
fn error(
    code: ErrorCode,
    row: Option<u64>,
    line: Option<u64>,
    byte_offset: Option<u64>,
) -> ValidationError {
    ValidationError {
        code,
        message: String::new(),
        row,
        line,
        byte_offset,
        field_name: None,
        field_number: None,
        cell: None,
        constraint: None,
    }
}
