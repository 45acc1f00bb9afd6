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

mod fast;
pub mod records;
mod split;
mod text;
mod unique;

use crate::clock::Stopwatch;
use crate::dialect::Dialect;
use crate::report::{truncate_cell, ErrorCode, ErrorCounts, Limits, Report, ValidationError};
use crate::schema::types::{FieldType, StringFormat, Value};
use crate::schema::{ConstraintFailure, Field, FieldsMatch, Schema};
use fast::{FastCheck, Verdict};
use records::{Record, RecordEvent, RecordReader};
use unique::{Key, UniqueSets};

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

/// Everything that looks at records: header, rows, cells and keys.
struct Checker {
    schema: Schema,
    dialect: Dialect,
    limits: Limits,
    last_header_row: u64,
    /// Header labels, built up over `headerRows`.
    labels: Vec<String>,
    /// For each schema field, the column it is read from (if the data has it). Taken out of
    /// `self` (so empty) while `data_record` checks a row's cells.
    columns: Vec<Option<usize>>,
    /// How many cells every row should have; known after the header (or first row).
    width: Option<usize>,
    errors: Errors,
    unique: UniqueSets,
    /// Set index for each field with `unique: true`.
    unique_field_sets: Vec<Option<usize>>,
    /// (set index, field indexes, is the primary key) for each multi-field or key check.
    key_sets: Vec<(usize, Vec<usize>, bool)>,
    unique_stopped: bool,
    /// Each key field's value in the current row (`None`: null).
    key_values: Vec<Option<KeyPart>>,
    in_key: Vec<bool>,
    plans: Vec<CellPlan>,
    /// Each field's fast check, tried before the general path (`check_value`). Taken out of
    /// `self` (so empty) while `data_record` checks a row's cells.
    fast_checks: Vec<FastCheck>,
    encoding_reported: bool,
    /// The file's first bytes, to name a binary format in an encoding error.
    file_start: Vec<u8>,
    scratch: Vec<u8>,
    /// Where a cell that cannot be borrowed from its record is built.
    cell_scratch: String,
    /// The same for the fast path, which reads cells as bytes.
    cell_byte_scratch: Vec<u8>,
    failures: Vec<ConstraintFailure>,
}

impl Checker {
    fn new(schema: Schema, dialect: Dialect, limits: Limits) -> Checker {
        let field_count = schema.fields.len();
        let mut sets = 0;
        let mut unique_field_sets = vec![None; field_count];
        let mut key_sets = Vec::new();
        let mut in_key = vec![false; field_count];
        if !schema.primary_key.is_empty() {
            key_sets.push((sets, schema.primary_key.clone(), true));
            sets += 1;
        }
        for key in &schema.unique_keys {
            key_sets.push((sets, key.clone(), false));
            sets += 1;
        }
        for (_, fields, _) in &key_sets {
            fields.iter().for_each(|f| in_key[*f] = true);
        }
        for (i, field) in schema.fields.iter().enumerate() {
            // A one-field primary key already checks this field's uniqueness.
            let is_primary_key = schema.primary_key == [i];
            if field.constraints.unique && !is_primary_key {
                unique_field_sets[i] = Some(sets);
                sets += 1;
            }
        }
        let last_header_row = dialect
            .header_rows
            .iter()
            .copied()
            .max()
            .filter(|_| dialect.header)
            .unwrap_or(0);
        let (columns, width) = if dialect.header {
            (vec![None; field_count], None)
        } else {
            // No header: fields are matched by position.
            (
                (0..field_count).map(Some).collect(),
                (field_count > 0).then_some(field_count),
            )
        };
        let plans = schema
            .fields
            .iter()
            .enumerate()
            .map(|(i, field)| CellPlan {
                only_empty_is_missing: field.missing_values.is_only_empty(),
                plain_text: matches!(
                    field.field_type,
                    FieldType::String(StringFormat::Default) | FieldType::Any
                ),
                value_checks: field.constraints.has_value_checks(),
                keyed: in_key[i] || unique_field_sets[i].is_some(),
            })
            .collect::<Vec<CellPlan>>();
        let fast_checks = schema
            .fields
            .iter()
            .enumerate()
            .map(|(i, field)| match unique_field_sets[i] {
                // Its own unique set takes the value's canonical bytes: the general path.
                Some(_) => FastCheck::General,
                None => FastCheck::for_field(field, in_key[i]),
            })
            .collect();
        Checker {
            plans,
            fast_checks,
            unique: UniqueSets::new(sets, limits.unique_memory_bytes),
            errors: Errors {
                counts: ErrorCounts::default(),
                sample: Vec::new(),
                capped: false,
                max_sample: limits.max_error_sample,
            },
            schema,
            dialect,
            limits,
            last_header_row,
            labels: Vec::new(),
            columns,
            width,
            unique_field_sets,
            key_sets,
            unique_stopped: false,
            key_values: vec![None; field_count],
            in_key,
            encoding_reported: false,
            file_start: Vec::with_capacity(text::SIGNATURE_LEN),
            scratch: Vec::new(),
            cell_scratch: String::new(),
            cell_byte_scratch: Vec::new(),
            failures: Vec::new(),
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
                if row <= self.last_header_row {
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
                if record.row <= self.last_header_row {
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

    fn header_record(&mut self, record: &Record<'_>) {
        if self.dialect.header_rows.contains(&record.row) {
            for (i, cell) in record.cells().enumerate() {
                match self.labels.get_mut(i) {
                    Some(_) if cell.is_empty() => {}
                    Some(label) if label.is_empty() => *label = cell.into_owned(),
                    Some(label) => {
                        label.push(' ');
                        label.push_str(&cell);
                    }
                    None => self.labels.push(cell.into_owned()),
                }
            }
        }
        self.finish_header_if_last(record.row);
    }

    fn finish_header_if_last(&mut self, row: u64) {
        if row == self.last_header_row {
            self.check_header(row);
        }
    }

    /// Label checks, and the mapping from fields to columns.
    fn check_header(&mut self, row: u64) {
        let labels = std::mem::take(&mut self.labels);
        let header_error = |code,
                            message: String,
                            column: Option<usize>,
                            field_name: Option<&str>,
                            cell: Option<&str>| ValidationError {
            message,
            field_number: column.map(|c| c + 1),
            field_name: field_name.map(str::to_owned),
            cell: cell.map(truncate_cell),
            ..error(code, Some(row), None, None)
        };
        let mut first_seen: std::collections::HashMap<&str, usize> =
            std::collections::HashMap::new();
        for (i, label) in labels.iter().enumerate() {
            let column = i + 1;
            let first = *first_seen.entry(label.as_str()).or_insert(i);
            if label.is_empty() {
                self.errors.add(ErrorCode::BlankLabel, || {
                    header_error(
                        ErrorCode::BlankLabel,
                        format!("column {column} has a blank header label"),
                        Some(i),
                        None,
                        Some(""),
                    )
                });
            } else if first < i {
                self.errors.add(ErrorCode::DuplicateLabel, || {
                    header_error(
                        ErrorCode::DuplicateLabel,
                        format!(
                            "column {column} header '{}' repeats column {}",
                            truncate_cell(label),
                            first + 1
                        ),
                        Some(i),
                        None,
                        Some(label),
                    )
                });
            }
        }
        let field_names: Vec<String> = self.schema.fields.iter().map(|f| f.name.clone()).collect();
        if field_names.is_empty() {
            self.width = Some(labels.len());
            return;
        }
        let missing = |name: &str| format!("the header has no column for field '{name}'");
        let extra = |column: usize, label: &str| {
            format!(
                "column {column} header '{}' is not a schema field",
                truncate_cell(label)
            )
        };
        match self.schema.fields_match {
            FieldsMatch::Exact => {
                for i in 0..labels.len().max(field_names.len()) {
                    match (labels.get(i), field_names.get(i)) {
                        (Some(label), Some(name)) if label != name => {
                            self.errors.add(ErrorCode::IncorrectLabel, || {
                                header_error(
                                    ErrorCode::IncorrectLabel,
                                    format!(
                                        "column {} header is '{}', the schema expects '{name}'",
                                        i + 1,
                                        truncate_cell(label)
                                    ),
                                    Some(i),
                                    Some(name),
                                    Some(label),
                                )
                            })
                        }
                        (Some(label), None) => self.errors.add(ErrorCode::ExtraLabel, || {
                            header_error(
                                ErrorCode::ExtraLabel,
                                extra(i + 1, label),
                                Some(i),
                                None,
                                Some(label),
                            )
                        }),
                        (None, Some(name)) => self.errors.add(ErrorCode::MissingLabel, || {
                            header_error(
                                ErrorCode::MissingLabel,
                                missing(name),
                                Some(i),
                                Some(name),
                                None,
                            )
                        }),
                        _ => {}
                    }
                }
                self.columns = (0..field_names.len())
                    .map(|i| (i < labels.len()).then_some(i))
                    .collect();
            }
            mode => {
                self.columns = field_names
                    .iter()
                    .map(|name| labels.iter().position(|l| l == name))
                    .collect();
                let report_missing = matches!(mode, FieldsMatch::Equal | FieldsMatch::Subset)
                    || (mode == FieldsMatch::Partial && self.columns.iter().all(Option::is_none));
                let report_extra = matches!(mode, FieldsMatch::Equal | FieldsMatch::Superset);
                if report_missing {
                    for (i, name) in field_names.iter().enumerate() {
                        if self.columns[i].is_none() {
                            self.errors.add(ErrorCode::MissingLabel, || {
                                header_error(
                                    ErrorCode::MissingLabel,
                                    missing(name),
                                    None,
                                    Some(name),
                                    None,
                                )
                            });
                        }
                    }
                }
                if report_extra {
                    for (i, label) in labels.iter().enumerate() {
                        if !label.is_empty() && !field_names.contains(label) {
                            self.errors.add(ErrorCode::ExtraLabel, || {
                                header_error(
                                    ErrorCode::ExtraLabel,
                                    extra(i + 1, label),
                                    Some(i),
                                    None,
                                    Some(label),
                                )
                            });
                        }
                    }
                }
            }
        }
        self.width = Some(labels.len());
    }

    fn data_record(&mut self, record: &Record<'_>) {
        let (row, line, offset) = (record.row, record.line, record.byte_offset);
        if record.is_blank() {
            self.errors.add(ErrorCode::BlankRow, || ValidationError {
                message: format!("row {row} is blank"),
                ..error(ErrorCode::BlankRow, Some(row), Some(line), Some(offset))
            });
            return;
        }
        let width = *self.width.get_or_insert(record.len());
        if record.len() != width {
            self.width_errors(record, width);
        }
        // Out of `self` for the loop, so that they stay in registers instead of being
        // reloaded through `self` around every cell (the general path takes `&mut self`).
        let checks = std::mem::take(&mut self.fast_checks);
        let columns = std::mem::take(&mut self.columns);
        for (field_index, (check, column)) in checks.iter().zip(&columns).enumerate() {
            match column.filter(|c| *c < record.len()) {
                Some(column) => self.check_cell(record, field_index, column, check),
                None => self.key_values[field_index] = None,
            }
        }
        self.fast_checks = checks;
        self.columns = columns;
        if !self.key_sets.is_empty() && !self.unique_stopped {
            self.check_keys(row, line, offset);
        }
    }

    /// Extra and missing cells of a row that is not `width` cells wide. Out of line: most rows
    /// are, and the hot per-cell loop keeps its registers.
    #[cold]
    #[inline(never)]
    fn width_errors(&mut self, record: &Record<'_>, width: usize) {
        let (row, line, offset) = (record.row, record.line, record.byte_offset);
        for column in width..record.len() {
            let cell = record.cell(column);
            self.errors.add(ErrorCode::ExtraCell, || ValidationError {
                message: format!(
                    "row {row} has an extra cell in column {}: '{}'",
                    column + 1,
                    truncate_cell(&cell)
                ),
                field_number: Some(column + 1),
                cell: Some(truncate_cell(&cell)),
                ..error(ErrorCode::ExtraCell, Some(row), Some(line), Some(offset))
            });
        }
        for column in record.len()..width {
            let field_name = self
                .columns
                .iter()
                .position(|c| *c == Some(column))
                .map(|f| self.schema.fields[f].name.clone());
            let have = record.len();
            self.errors.add(ErrorCode::MissingCell, || ValidationError {
                message: match &field_name {
                    Some(name) => format!("row {row}, field '{name}': the cell is missing (the row has {have} of {width} cells)"),
                    None => format!("row {row}: column {} is missing (the row has {have} of {width} cells)", column + 1),
                },
                field_number: Some(column + 1),
                field_name: field_name.clone(),
                ..error(ErrorCode::MissingCell, Some(row), Some(line), Some(offset))
            });
        }
    }

    /// The fast check first; the general path when it is not sure.
    #[inline]
    fn check_cell(
        &mut self,
        record: &Record<'_>,
        field_index: usize,
        column: usize,
        check: &FastCheck,
    ) {
        let verdict = match record.utf8_raw_cell(column) {
            Some(cell) if !cell.doubled_quotes => check.verdict(cell.bytes),
            Some(cell) => match check.verdict_with_doubled_quotes(cell.bytes) {
                Verdict::Unsure => {
                    check.verdict(record.undoubled(cell, &mut self.cell_byte_scratch))
                }
                verdict => verdict,
            },
            None => Verdict::Unsure,
        };
        match verdict {
            Verdict::Valid => {}
            // Kept for the row's key check (a field with its own unique set has no fast check).
            Verdict::ValidInteger(value) => {
                if !self.unique_stopped {
                    self.key_values[field_index] = Some(KeyPart::Integer(value));
                }
            }
            Verdict::Unsure => self.check_cell_in_general(record, field_index, column),
        }
    }

    /// The general path for one cell. Out of line: the per-cell loop keeps its registers
    /// (inlined, its size made the compiler keep the loop's pointers on the stack).
    #[inline(never)]
    fn check_cell_in_general(&mut self, record: &Record<'_>, field_index: usize, column: usize) {
        let mut scratch = std::mem::take(&mut self.cell_scratch);
        let cell = record.cell_in(column, &mut scratch);
        let plan = self.plans[field_index];
        self.check_value(record, field_index, column, plan, cell);
        self.cell_scratch = scratch;
    }

    #[inline]
    fn check_value(
        &mut self,
        record: &Record<'_>,
        field_index: usize,
        column: usize,
        plan: CellPlan,
        cell: &str,
    ) {
        let field = &self.schema.fields[field_index];
        let missing = if plan.only_empty_is_missing {
            cell.is_empty()
        } else {
            field.is_missing(cell)
        };
        if missing {
            self.key_values[field_index] = None;
            if field.constraints.required {
                let place = CellPlace::new(record, field_index, column);
                self.cell_error(
                    &place,
                    cell,
                    ErrorCode::ConstraintError,
                    Some("required"),
                    |_, _| "a value is required".to_owned(),
                );
            }
            return;
        }
        let parsed = if plan.plain_text {
            Some(Value::Text(cell))
        } else {
            field.field_type.parse(cell)
        };
        let Some(value) = parsed else {
            self.type_error(&CellPlace::new(record, field_index, column), cell);
            return;
        };
        if plan.value_checks && !field.constraints.passes(&value, cell) {
            let place = CellPlace::new(record, field_index, column);
            self.constraint_errors(&place, &value, cell);
        }
        if plan.keyed && !self.unique_stopped {
            let place = CellPlace::new(record, field_index, column);
            self.key_cell(&place, cell, value);
        }
    }

    #[cold]
    #[inline(never)]
    fn type_error(&mut self, place: &CellPlace, cell: &str) {
        if self.in_key[place.field_index] {
            // Compare the text as it is: a bad value can still duplicate another.
            self.key_values[place.field_index] = Some(KeyPart::Text(cell.as_bytes().to_vec()));
        }
        self.cell_error(place, cell, ErrorCode::TypeError, None, |field, shown| {
            format!("'{shown}' is not {}", field.field_type.with_article())
        });
    }

    /// A valid value of a field in a unique constraint or a key: into its set, or kept for
    /// the row's keys.
    fn key_cell(&mut self, place: &CellPlace, cell: &str, value: Value<'_>) {
        let field_index = place.field_index;
        let (mut stop_unique, mut duplicate) = (false, false);
        let mut canonical = std::mem::take(&mut self.scratch);
        canonical.clear();
        let key = match value {
            Value::Integer(i) => Key::Integer(i),
            _ => {
                value.canonical_bytes(&mut canonical);
                Key::Bytes(&canonical)
            }
        };
        if let Some(set) = self.unique_field_sets[field_index] {
            match self.unique.insert(set, key) {
                Ok(true) => {}
                Ok(false) => duplicate = true,
                Err(_) => stop_unique = true,
            }
        }
        if self.in_key[field_index] {
            self.key_values[field_index] = Some(match key {
                Key::Integer(i) => KeyPart::Integer(i),
                Key::Bytes(bytes) => match self.key_values[field_index].take() {
                    // Reuse the buffer from the last row.
                    Some(KeyPart::Value(mut buffer)) => {
                        buffer.clear();
                        buffer.extend_from_slice(bytes);
                        KeyPart::Value(buffer)
                    }
                    _ => KeyPart::Value(bytes.to_vec()),
                },
            });
        }
        self.scratch = canonical;
        if duplicate {
            self.cell_error(
                place,
                cell,
                ErrorCode::UniqueError,
                Some("unique"),
                |_, shown| format!("'{shown}' is not unique (an earlier row has the same value)"),
            );
        }
        if stop_unique {
            self.stop_unique_checks(place.row);
        }
    }

    /// Count (and sample) an error about one cell: "row 14, field 'age': '1x3' is not an
    /// integer". Out of line: the per-cell path stays small when cells are valid.
    #[cold]
    #[inline(never)]
    /// `describe` says what is wrong, given the field and the cell as shown; it only runs
    /// for errors that go into the sample, so millions of them cost counting, not formatting.
    fn cell_error(
        &mut self,
        place: &CellPlace,
        cell: &str,
        code: ErrorCode,
        constraint: Option<&str>,
        describe: impl FnOnce(&Field, &str) -> String,
    ) {
        let field = &self.schema.fields[place.field_index];
        self.errors.add(code, || {
            let shown = truncate_cell(cell);
            let detail = describe(field, &shown);
            ValidationError {
                message: format!("row {}, field '{}': {detail}", place.row, field.name),
                field_name: Some(field.name.clone()),
                field_number: Some(place.column + 1),
                cell: Some(shown),
                constraint: constraint.map(str::to_owned),
                ..error(code, Some(place.row), Some(place.line), Some(place.offset))
            }
        });
    }

    /// Report each constraint `value` breaks.
    #[cold]
    #[inline(never)]
    fn constraint_errors(&mut self, place: &CellPlace, value: &Value<'_>, cell: &str) {
        let mut failures = std::mem::take(&mut self.failures);
        let field = &self.schema.fields[place.field_index];
        field.constraints.check(value, cell, &mut failures);
        for failure in failures.drain(..) {
            let constraint = Some(failure.constraint);
            self.cell_error(
                place,
                cell,
                ErrorCode::ConstraintError,
                constraint,
                |field, shown| format!("'{shown}' {}", field.constraints.describe(&failure)),
            );
        }
        self.failures = failures;
    }

    /// Primary key and unique keys over the values `check_cell` collected for this row.
    fn check_keys(&mut self, row: u64, line: u64, offset: u64) {
        for k in 0..self.key_sets.len() {
            let (set, fields, is_primary) = &self.key_sets[k];
            let nulls = fields
                .iter()
                .filter(|f| self.key_values[**f].is_none())
                .count();
            // A null primary key part is already a required error; a unique key whose parts are
            // all null is not a duplicate of anything.
            if (*is_primary && nulls > 0) || nulls == fields.len() {
                continue;
            }
            let (set, is_primary) = (*set, *is_primary);
            let result = match fields[..] {
                [single] => match &self.key_values[single] {
                    Some(KeyPart::Integer(i)) => self.unique.insert(set, Key::Integer(*i)),
                    Some(KeyPart::Value(bytes)) => self.unique.insert(set, Key::Bytes(bytes)),
                    // Text that failed its type is kept apart from values by a marker.
                    Some(text @ KeyPart::Text(_)) => {
                        let mut key = std::mem::take(&mut self.scratch);
                        key.clear();
                        text.append_to(&mut key);
                        let result = self.unique.insert(set, Key::Bytes(&key));
                        self.scratch = key;
                        result
                    }
                    None => continue,
                },
                _ => {
                    let mut key = std::mem::take(&mut self.scratch);
                    key.clear();
                    for f in fields {
                        match &self.key_values[*f] {
                            Some(part) => part.append_to(&mut key),
                            None => key.push(0), // null
                        }
                    }
                    let result = self.unique.insert(set, Key::Bytes(&key));
                    self.scratch = key;
                    result
                }
            };
            match result {
                Ok(true) => {}
                Ok(false) => {
                    let fields = &self.key_sets[k].1;
                    let names: Vec<&str> = fields
                        .iter()
                        .map(|f| self.schema.fields[*f].name.as_str())
                        .collect();
                    let names = names.join(", ");
                    let code = if is_primary {
                        ErrorCode::PrimaryKey
                    } else {
                        ErrorCode::UniqueError
                    };
                    let what = if is_primary {
                        "primary key"
                    } else {
                        "unique key"
                    };
                    let field_name =
                        (fields.len() == 1).then(|| self.schema.fields[fields[0]].name.clone());
                    let field_number = (fields.len() == 1)
                        .then(|| self.columns[fields[0]].map(|c| c + 1))
                        .flatten();
                    self.errors.add(code, || ValidationError {
                        message: format!(
                            "row {row}: the {what} ({names}) repeats the value of an earlier row"
                        ),
                        field_name,
                        field_number,
                        ..error(code, Some(row), Some(line), Some(offset))
                    });
                }
                Err(_) => {
                    self.stop_unique_checks(row);
                    return;
                }
            }
        }
    }

    fn stop_unique_checks(&mut self, row: u64) {
        self.unique_stopped = true;
        let mib = self.limits.unique_memory_bytes / (1024 * 1024);
        self.errors.add(ErrorCode::TaskError, || ValidationError {
            message: format!(
                "uniqueness was checked only up to row {row}: the unique-value memory cap ({mib} MiB) was reached"
            ),
            ..error(ErrorCode::TaskError, Some(row), None, None)
        });
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
        } else if self.last_header_row > rows {
            let last = self.last_header_row;
            self.errors.add(ErrorCode::SourceError, || ValidationError {
                message: format!(
                    "the file has {rows} rows, but the header should end on row {last}"
                ),
                ..error(ErrorCode::SourceError, None, None, None)
            });
        }
    }
}

/// Where a cell is, for its error messages.
struct CellPlace {
    row: u64,
    line: u64,
    offset: u64,
    field_index: usize,
    column: usize,
}

impl CellPlace {
    fn new(record: &Record<'_>, field_index: usize, column: usize) -> CellPlace {
        CellPlace {
            row: record.row,
            line: record.line,
            offset: record.byte_offset,
            field_index,
            column,
        }
    }
}

/// What the per-cell path needs to know about a field, worked out once.
#[derive(Debug, Clone, Copy)]
struct CellPlan {
    /// The missing values are just `""` (the default): a length check instead of a search.
    only_empty_is_missing: bool,
    /// Any text is a value (a plain string or `any`): nothing to parse.
    plain_text: bool,
    /// The field has constraints on the value (not counting required and unique).
    value_checks: bool,
    /// The value goes into a unique set or a key.
    keyed: bool,
}

/// One field's part of a key in the current row.
#[derive(Debug, Clone)]
enum KeyPart {
    Integer(i128),
    /// Canonical bytes of a typed value.
    Value(Vec<u8>),
    /// The raw text of a cell that failed its type.
    Text(Vec<u8>),
}

impl KeyPart {
    /// Append this part to a composite key, tagged and length-prefixed so that no two
    /// different sequences of parts give the same bytes.
    fn append_to(&self, key: &mut Vec<u8>) {
        let (tag, bytes): (u8, &[u8]) = match self {
            KeyPart::Integer(i) => {
                key.push(1);
                key.extend_from_slice(&i.to_le_bytes());
                return;
            }
            KeyPart::Value(bytes) => (2, bytes),
            KeyPart::Text(bytes) => (3, bytes),
        };
        key.push(tag);
        key.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        key.extend_from_slice(bytes);
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
