//! The header: labels built up over `headerRows`, their checks (blank, duplicate, missing,
//! extra and incorrect labels under the schema's `fieldsMatch`), and the column each field is
//! read from.

use std::collections::HashMap;

use super::records::Record;
use super::{error, Checker};
use crate::dialect::Dialect;
use crate::report::{truncate_cell, ErrorCode, ValidationError};
use crate::schema::FieldsMatch;

/// What the header says, and what it decides for every data row.
pub(super) struct Header {
    /// The last row of the header (0: no header).
    pub(super) last_row: u64,
    /// Header labels, built up over `headerRows`.
    pub(super) labels: Vec<String>,
    /// For each schema field, the column it is read from (if the data has it). Taken out of
    /// the checker (so empty) while `data_record` checks a row's cells.
    pub(super) columns: Vec<Option<usize>>,
    /// How many cells every row should have; known after the header (or first row).
    pub(super) width: Option<usize>,
}

impl Header {
    pub(super) fn new(dialect: &Dialect, field_count: usize) -> Header {
        let last_row = dialect
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
        Header {
            last_row,
            labels: Vec::new(),
            columns,
            width,
        }
    }
}

impl Checker {
    pub(super) fn header_record(&mut self, record: &Record<'_>) {
        if self.dialect.header_rows.contains(&record.row) {
            for (i, cell) in record.cells().enumerate() {
                match self.header.labels.get_mut(i) {
                    Some(_) if cell.is_empty() => {}
                    Some(label) if label.is_empty() => *label = cell.into_owned(),
                    Some(label) => {
                        label.push(' ');
                        label.push_str(&cell);
                    }
                    None => self.header.labels.push(cell.into_owned()),
                }
            }
        }
        self.finish_header_if_last(record.row);
    }

    pub(super) fn finish_header_if_last(&mut self, row: u64) {
        if row == self.header.last_row {
            self.check_header(row);
        }
    }

    /// Label checks, and the mapping from fields to columns.
    fn check_header(&mut self, row: u64) {
        let labels = std::mem::take(&mut self.header.labels);
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
        let field_count = self.schema.fields.len();
        let exact = self.schema.fields_match == FieldsMatch::Exact && field_count > 0;
        // A label reported as blank or duplicate is not reported again as incorrect (as in
        // Frictionless: one error per label).
        let mut already_reported = vec![false; labels.len()];
        let mut first_seen: HashMap<&str, usize> = HashMap::new();
        for (i, label) in labels.iter().enumerate() {
            let column = i + 1;
            let first = *first_seen.entry(label.as_str()).or_insert(i);
            // Past the schema's fields a column is an extra label, blank or not.
            if label.is_empty() && !(exact && i >= field_count) {
                already_reported[i] = true;
                self.errors.add(ErrorCode::BlankLabel, || {
                    header_error(
                        ErrorCode::BlankLabel,
                        format!("column {column} has a blank header label"),
                        Some(i),
                        None,
                        Some(""),
                    )
                });
            } else if first < i && !label.is_empty() {
                already_reported[i] = true;
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
            self.header.width = Some(labels.len());
            return;
        }
        let missing_label = |column: Option<usize>, name: &str| {
            header_error(
                ErrorCode::MissingLabel,
                format!("the header has no column for field '{name}'"),
                column,
                Some(name),
                None,
            )
        };
        let extra_label = |i: usize, label: &str| {
            header_error(
                ErrorCode::ExtraLabel,
                format!(
                    "column {} header '{}' is not a schema field",
                    i + 1,
                    truncate_cell(label)
                ),
                Some(i),
                None,
                Some(label),
            )
        };
        match self.schema.fields_match {
            FieldsMatch::Exact => {
                for i in 0..labels.len().max(field_names.len()) {
                    match (labels.get(i), field_names.get(i)) {
                        (Some(label), Some(name))
                            if label != name && already_reported.get(i) != Some(&true) =>
                        {
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
                        (Some(label), None) => self
                            .errors
                            .add(ErrorCode::ExtraLabel, || extra_label(i, label)),
                        (None, Some(name)) => self
                            .errors
                            .add(ErrorCode::MissingLabel, || missing_label(Some(i), name)),
                        _ => {}
                    }
                }
                self.header.columns = (0..field_names.len())
                    .map(|i| (i < labels.len()).then_some(i))
                    .collect();
            }
            mode => {
                self.header.columns = field_names
                    .iter()
                    .map(|name| labels.iter().position(|l| l == name))
                    .collect();
                let report_missing = matches!(mode, FieldsMatch::Equal | FieldsMatch::Subset)
                    || (mode == FieldsMatch::Partial
                        && self.header.columns.iter().all(Option::is_none));
                let report_extra = matches!(mode, FieldsMatch::Equal | FieldsMatch::Superset);
                if report_missing {
                    for (i, name) in field_names.iter().enumerate() {
                        if self.header.columns[i].is_none() {
                            self.errors
                                .add(ErrorCode::MissingLabel, || missing_label(None, name));
                        }
                    }
                }
                if report_extra {
                    for (i, label) in labels.iter().enumerate() {
                        if !label.is_empty() && !field_names.contains(label) {
                            self.errors
                                .add(ErrorCode::ExtraLabel, || extra_label(i, label));
                        }
                    }
                }
            }
        }
        self.header.width = Some(labels.len());
    }
}
