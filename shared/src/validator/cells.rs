//! One cell at a time: the plan worked out once per field, the fast check first and the
//! general path (parse, then constraints) when it is not sure, and the errors about cells,
//! including a row's extra and missing ones.

use super::fast::{FastCheck, Verdict};
use super::keys::{KeyPart, Keys};
use super::place::CellPlace;
use super::records::Record;
use super::{error, Checker};
use crate::report::{truncate_cell, ErrorCode, ValidationError};
use crate::schema::types::{FieldType, StringFormat, Value};
use crate::schema::{ConstraintFailure, Field, Schema};

/// Each field's way through the per-cell path, and the buffers that path reuses.
pub(super) struct Cells {
    plans: Vec<CellPlan>,
    /// Each field's fast check, tried before the general path (`check_value`). Taken out of
    /// the checker (so empty) while `data_record` checks a row's cells.
    pub(super) fast_checks: Vec<FastCheck>,
    /// Where a cell that cannot be borrowed from its record is built.
    text_scratch: String,
    /// The same for the fast path, which reads cells as bytes.
    byte_scratch: Vec<u8>,
    failures: Vec<ConstraintFailure>,
}

impl Cells {
    pub(super) fn new(schema: &Schema, keys: &Keys) -> Cells {
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
                keyed: keys.in_key[i] || keys.field_sets[i].is_some(),
            })
            .collect::<Vec<CellPlan>>();
        let fast_checks = schema
            .fields
            .iter()
            .enumerate()
            .map(|(i, field)| match keys.field_sets[i] {
                // Its own unique set takes the value's canonical bytes: the general path.
                Some(_) => FastCheck::General,
                None => FastCheck::for_field(field, keys.in_key[i]),
            })
            .collect();
        Cells {
            plans,
            fast_checks,
            text_scratch: String::new(),
            byte_scratch: Vec::new(),
            failures: Vec::new(),
        }
    }
}

impl Checker {
    /// Extra and missing cells of a row that is not `width` cells wide. Out of line: most rows
    /// are, and the hot per-cell loop keeps its registers.
    #[cold]
    #[inline(never)]
    pub(super) fn width_errors(&mut self, record: &Record<'_>, width: usize) {
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
                .header
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
    pub(super) fn check_cell(
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
                    check.verdict(record.undoubled(cell, &mut self.cells.byte_scratch))
                }
                verdict => verdict,
            },
            None => Verdict::Unsure,
        };
        match verdict {
            Verdict::Valid => {}
            // Kept for the row's key check (a field with its own unique set has no fast check).
            Verdict::ValidInteger(value) => {
                if !self.keys.stopped {
                    self.keys.values[field_index] = Some(KeyPart::Integer(value));
                }
            }
            Verdict::Unsure => self.check_cell_in_general(record, field_index, column),
        }
    }

    /// The general path for one cell. Out of line: the per-cell loop keeps its registers
    /// (inlined, its size made the compiler keep the loop's pointers on the stack).
    #[inline(never)]
    fn check_cell_in_general(&mut self, record: &Record<'_>, field_index: usize, column: usize) {
        let mut scratch = std::mem::take(&mut self.cells.text_scratch);
        let cell = record.cell_in(column, &mut scratch);
        let plan = self.cells.plans[field_index];
        self.check_value(record, field_index, column, plan, cell);
        self.cells.text_scratch = scratch;
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
            self.keys.values[field_index] = None;
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
        if plan.keyed && !self.keys.stopped {
            let place = CellPlace::new(record, field_index, column);
            self.key_cell(&place, cell, value);
        }
    }

    /// A cell that is not a value of its field's type. Cold and out of line, as `cell_error`.
    #[cold]
    #[inline(never)]
    fn type_error(&mut self, place: &CellPlace, cell: &str) {
        if self.keys.in_key[place.field_index] {
            // Compare the text as it is: a bad value can still duplicate another.
            self.keys.values[place.field_index] = Some(KeyPart::Text(cell.as_bytes().to_vec()));
        }
        self.cell_error(place, cell, ErrorCode::TypeError, None, |field, shown| {
            format!("'{shown}' is not {}", field.field_type.with_article())
        });
    }

    /// Count (and sample) an error about one cell: "row 14, field 'age': '1x3' is not an
    /// integer". `describe` says what is wrong, given the field and the cell as shown; it runs
    /// only for errors that go into the sample (`Errors::add`), so millions of them cost
    /// counting, not formatting. Cold and out of line: valid cells never come here, and the
    /// per-cell path stays small.
    #[cold]
    #[inline(never)]
    pub(super) fn cell_error(
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
        let mut failures = std::mem::take(&mut self.cells.failures);
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
        self.cells.failures = failures;
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
