//! Primary key, unique keys and `unique` fields: which set each check writes to, each key
//! field's value in the current row, and the duplicates they find. The sets themselves are in
//! `unique.rs`.

use super::place::CellPlace;
use super::unique::{Key, UniqueSets};
use super::{error, Checker};
use crate::report::{ErrorCode, ValidationError};
use crate::schema::types::Value;
use crate::schema::Schema;

/// The key checks' bookkeeping.
pub(super) struct Keys {
    pub(super) unique: UniqueSets,
    /// Set index for each field with `unique: true`.
    pub(super) field_sets: Vec<Option<usize>>,
    /// (set index, field indexes, is the primary key) for each multi-field or key check.
    pub(super) key_sets: Vec<(usize, Vec<usize>, bool)>,
    /// The memory cap was reached: no more uniqueness checks.
    pub(super) stopped: bool,
    /// Each key field's value in the current row (`None`: null).
    pub(super) values: Vec<Option<KeyPart>>,
    /// Whether each field is part of the primary key or a unique key.
    pub(super) in_key: Vec<bool>,
    /// Where a canonical value or a composite key is built.
    scratch: Vec<u8>,
}

impl Keys {
    pub(super) fn new(schema: &Schema, memory_cap: usize) -> Keys {
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
        Keys {
            unique: UniqueSets::new(sets, memory_cap),
            field_sets: unique_field_sets,
            key_sets,
            stopped: false,
            values: vec![None; field_count],
            in_key,
            scratch: Vec::new(),
        }
    }
}

impl Checker {
    /// A valid value of a field in a unique constraint or a key: into its set, or kept for
    /// the row's keys.
    pub(super) fn key_cell(&mut self, place: &CellPlace, cell: &str, value: Value<'_>) {
        let field_index = place.field_index;
        let (mut stop_unique, mut duplicate) = (false, false);
        let mut canonical = std::mem::take(&mut self.keys.scratch);
        canonical.clear();
        let key = match value {
            Value::Integer(i) => Key::Integer(i),
            _ => {
                value.canonical_bytes(&mut canonical);
                Key::Bytes(&canonical)
            }
        };
        if let Some(set) = self.keys.field_sets[field_index] {
            match self.keys.unique.insert(set, key) {
                Ok(true) => {}
                Ok(false) => duplicate = true,
                Err(_) => stop_unique = true,
            }
        }
        if self.keys.in_key[field_index] {
            self.keys.values[field_index] = Some(match key {
                Key::Integer(i) => KeyPart::Integer(i),
                Key::Bytes(bytes) => match self.keys.values[field_index].take() {
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
        self.keys.scratch = canonical;
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

    /// Primary key and unique keys over the values `check_cell` collected for this row.
    pub(super) fn check_keys(&mut self, row: u64, line: u64, offset: u64) {
        for k in 0..self.keys.key_sets.len() {
            let (set, fields, is_primary) = &self.keys.key_sets[k];
            let nulls = fields
                .iter()
                .filter(|f| self.keys.values[**f].is_none())
                .count();
            // A null primary key part is already a required error; a unique key whose parts are
            // all null is not a duplicate of anything.
            if (*is_primary && nulls > 0) || nulls == fields.len() {
                continue;
            }
            let (set, is_primary) = (*set, *is_primary);
            let result = match fields[..] {
                [single] => match &self.keys.values[single] {
                    Some(KeyPart::Integer(i)) => self.keys.unique.insert(set, Key::Integer(*i)),
                    Some(KeyPart::Value(bytes)) => self.keys.unique.insert(set, Key::Bytes(bytes)),
                    // Text that failed its type is kept apart from values by a marker.
                    Some(text @ KeyPart::Text(_)) => {
                        let mut key = std::mem::take(&mut self.keys.scratch);
                        key.clear();
                        text.append_to(&mut key);
                        let result = self.keys.unique.insert(set, Key::Bytes(&key));
                        self.keys.scratch = key;
                        result
                    }
                    None => continue,
                },
                _ => {
                    let mut key = std::mem::take(&mut self.keys.scratch);
                    key.clear();
                    for f in fields {
                        match &self.keys.values[*f] {
                            Some(part) => part.append_to(&mut key),
                            None => key.push(0), // null
                        }
                    }
                    let result = self.keys.unique.insert(set, Key::Bytes(&key));
                    self.keys.scratch = key;
                    result
                }
            };
            match result {
                Ok(true) => {}
                Ok(false) => {
                    let fields = &self.keys.key_sets[k].1;
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
                        .then(|| self.header.columns[fields[0]].map(|c| c + 1))
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

    pub(super) fn stop_unique_checks(&mut self, row: u64) {
        self.keys.stopped = true;
        let mib = self.limits.unique_memory_bytes / (1024 * 1024);
        self.errors.add(ErrorCode::TaskError, || ValidationError {
            message: format!(
                "uniqueness was checked only up to row {row}: the unique-value memory cap ({mib} MiB) was reached"
            ),
            ..error(ErrorCode::TaskError, Some(row), None, None)
        });
    }
}

/// One field's part of a key in the current row.
#[derive(Debug, Clone)]
pub(super) enum KeyPart {
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
