//! The per-cell fast path: each field's checks specialised once, from its type and constraints.
//!
//! The general path (`Checker::check_value`) parses a cell into a [`Value`] and holds it against
//! the field's constraints: one interpreter for every type, which costs hundreds of instructions
//! a cell in dispatch and moving values around. Most cells of most files are valid, and for the
//! common shapes of field (a plain integer with bounds, a date with a minimum, a text with a
//! pattern) a check made for that shape says so in far fewer.
//!
//! A fast check only ever answers "valid" (with the value, for a key's integer) or "not sure". A
//! cell it is not sure about (empty, unusual notation, or invalid) goes to the general path,
//! which alone reports errors, so the two cannot disagree on a message. The tests at the end
//! hold each check to the general path: it never passes a cell that the general path would
//! reject; `tests/properties.rs` and the fuzz target compare whole reports with and without
//! the fast checks.

use chrono::Datelike;

use crate::schema::short_eq;
use crate::schema::types::{
    iso_date_parts, parse_plain_int_bytes, short_decimal, FieldType, NumberFormat, StringFormat,
    TemporalFormat, Value,
};
use crate::schema::{BoundKind, Constraints, Field};

/// One field's fast check.
#[derive(Debug, Clone)]
pub(super) enum FastCheck {
    /// A plain string or `any`: every value is text, so only the constraints are left (a
    /// copy of the field's: the check needs nothing else from the field).
    Text { checks: Option<Box<Constraints>> },
    /// A plain integer (no group character, bare) within `min..=max`; `key`: the field is
    /// part of a key, and the value is kept.
    Integer { min: i128, max: i128, key: bool },
    /// A plain decimal number within its bounds. When every bound is a small whole number,
    /// they are also kept as integers scaled by each power of ten a cell's fraction can have,
    /// to compare with the cell's digits exactly, without the division that makes its `f64`
    /// (the slowest step of a number cell).
    Number {
        bounds: Box<[(BoundKind, f64)]>,
        whole_bounds: Option<Box<[(BoundKind, ScaledBound)]>>,
    },
    /// An ISO date within its bounds, dates packed as `year << 9 | month << 5 | day` (which
    /// orders them as dates).
    Date { bounds: Box<[(BoundKind, u32)]> },
    /// A boolean without constraints on its value: one of these words.
    Boolean { values: Box<[String]> },
    /// No fast check: every cell takes the general path.
    General,
}

/// A fast check's answer for one cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Verdict {
    Valid,
    /// Valid, and this is its value (for a key).
    ValidInteger(i128),
    /// Ask the general path.
    Unsure,
}

impl FastCheck {
    /// The fast check for `field`. `in_key`: the field is part of the primary key or a unique
    /// key, and the row's key check needs its value, which only the integer check gives.
    pub(super) fn for_field(field: &Field, in_key: bool) -> FastCheck {
        let constraints = &field.constraints;
        // The fast checks take an empty cell as the only missing value.
        if !field.missing_values.is_only_empty() {
            return FastCheck::General;
        }
        let only_bounds = constraints.min_length.is_none()
            && constraints.max_length.is_none()
            && constraints.pattern.is_none()
            && constraints.enum_values.is_none();
        let check = match &field.field_type {
            FieldType::String(StringFormat::Default) | FieldType::Any
                if constraints.bounds.is_empty() =>
            {
                FastCheck::Text {
                    checks: constraints
                        .has_value_checks()
                        .then(|| Box::new(constraints.clone())),
                }
            }
            FieldType::Integer(format) if only_bounds && is_plain(format) => {
                let (mut min, mut max) = (i128::MIN, i128::MAX);
                for bound in &constraints.bounds {
                    let Value::Integer(limit) = bound.value else {
                        return FastCheck::General;
                    };
                    match bound.kind {
                        BoundKind::Minimum => min = min.max(limit),
                        // At the ends of i128 there is no next integer: no fast check.
                        BoundKind::ExclusiveMinimum => match limit.checked_add(1) {
                            Some(next) => min = min.max(next),
                            None => return FastCheck::General,
                        },
                        BoundKind::Maximum => max = max.min(limit),
                        BoundKind::ExclusiveMaximum => match limit.checked_sub(1) {
                            Some(previous) => max = max.min(previous),
                            None => return FastCheck::General,
                        },
                    }
                }
                FastCheck::Integer {
                    min,
                    max,
                    key: in_key,
                }
            }
            FieldType::Number(format) if only_bounds && is_plain(format) => {
                let bounds = constraints.bounds.iter().map(|bound| match bound.value {
                    Value::Number(limit) if !limit.is_nan() => Some((bound.kind, limit)),
                    _ => None,
                });
                match bounds.collect::<Option<Box<[_]>>>() {
                    Some(bounds) => FastCheck::Number {
                        whole_bounds: bounds
                            .iter()
                            .map(|&(kind, limit)| scaled(limit).map(|w| (kind, w)))
                            .collect(),
                        bounds,
                    },
                    None => FastCheck::General,
                }
            }
            FieldType::Date(TemporalFormat::Iso) if only_bounds => {
                let bounds = constraints.bounds.iter().map(|bound| match bound.value {
                    Value::Date(limit) => {
                        let year = u32::try_from(limit.year()).ok()?;
                        Some((bound.kind, pack_date(year, limit.month(), limit.day())))
                    }
                    _ => None,
                });
                match bounds.collect() {
                    Some(bounds) => FastCheck::Date { bounds },
                    None => FastCheck::General,
                }
            }
            FieldType::Boolean {
                true_values,
                false_values,
            } if !constraints.has_value_checks() => FastCheck::Boolean {
                values: true_values.iter().chain(false_values).cloned().collect(),
            },
            _ => FastCheck::General,
        };
        // A key needs the value itself: only the integer check has it at hand.
        match check {
            FastCheck::Integer { .. } => check,
            _ if in_key => FastCheck::General,
            _ => check,
        }
    }

    /// Whether `cell` (of the field this check was made for) is surely valid. The cell's
    /// bytes are known to be UTF-8: they are read without another check.
    #[inline]
    pub(super) fn verdict(&self, cell: &[u8]) -> Verdict {
        if cell.is_empty() {
            return Verdict::Unsure; // missing: required or not is the general path's call
        }
        let valid = match self {
            FastCheck::Text { checks } => checks.as_ref().is_none_or(|c| c.passes_text(cell)),
            FastCheck::Integer { min, max, key } => {
                return match parse_plain_int_bytes(cell) {
                    Some(value) if !(*min..=*max).contains(&value) => Verdict::Unsure,
                    Some(value) if *key => Verdict::ValidInteger(value),
                    Some(_) => Verdict::Valid,
                    None => Verdict::Unsure,
                };
            }
            FastCheck::Number {
                bounds,
                whole_bounds,
            } => match (short_decimal(cell), whole_bounds) {
                (None, _) => false,
                // The exact value passing a whole bound means its nearest f64 does too: the
                // rounding keeps order, the bound is exact, and 15 digits cannot round onto it.
                (Some(decimal), Some(whole_bounds)) => {
                    // At most 15 digits: the mantissa fits an i64.
                    let digits = decimal.mantissa as i64;
                    let exact = if decimal.negative { -digits } else { digits };
                    whole_bounds.iter().all(|(kind, limit)| {
                        within_one(exact, *kind, limit[decimal.fraction_digits])
                    })
                }
                (Some(decimal), None) => within(decimal.to_f64(), bounds),
            },
            FastCheck::Date { bounds } => iso_date(cell).is_some_and(|value| within(value, bounds)),
            FastCheck::Boolean { values } => {
                values.iter().any(|value| short_eq(value.as_bytes(), cell))
            }
            FastCheck::General => false,
        };
        if valid {
            Verdict::Valid
        } else {
            Verdict::Unsure
        }
    }

    /// [`FastCheck::verdict`] of a cell given as it is in the input, each quote still written
    /// twice, when that settles it without undoubling them: a plain text, or one with only a
    /// maximum length (a notes column, say). The text is never longer than these bytes, and
    /// is empty only when they are.
    #[inline]
    pub(super) fn verdict_with_doubled_quotes(&self, doubled: &[u8]) -> Verdict {
        match self {
            FastCheck::Text { checks } if !doubled.is_empty() => match checks.as_deref() {
                None => Verdict::Valid,
                Some(checks) => match checks.only_max_length() {
                    Some(max) if doubled.len() <= max => Verdict::Valid,
                    _ => Verdict::Unsure,
                },
            },
            _ => Verdict::Unsure,
        }
    }
}

/// A valid `YYYY-MM-DD` date, packed; the general path's `NaiveDate` takes the same dates
/// (proleptic Gregorian, years 0 to 9999 in this form).
#[inline]
fn iso_date(b: &[u8]) -> Option<u32> {
    let (year, month, day) = iso_date_parts(b)?;
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    (1..=days)
        .contains(&day)
        .then(|| pack_date(year, month, day))
}

fn pack_date(year: u32, month: u32, day: u32) -> u32 {
    year << 9 | month << 5 | day
}

/// Integers and numbers written as the general parser's fast path reads them.
fn is_plain(format: &NumberFormat) -> bool {
    *format == NumberFormat::default()
}

#[inline]
fn within<T: PartialOrd + Copy>(value: T, bounds: &[(BoundKind, T)]) -> bool {
    bounds
        .iter()
        .all(|&(kind, limit)| within_one(value, kind, limit))
}

#[inline]
fn within_one<T: PartialOrd>(value: T, kind: BoundKind, limit: T) -> bool {
    match kind {
        BoundKind::Minimum => value >= limit,
        BoundKind::Maximum => value <= limit,
        BoundKind::ExclusiveMinimum => value > limit,
        BoundKind::ExclusiveMaximum => value < limit,
    }
}

/// A whole bound times 10^0 … 10^15.
type ScaledBound = [i64; 16];

/// `limit` scaled by each power of ten, when it is a whole number small enough for all of
/// them to stay exact in an i64.
fn scaled(limit: f64) -> Option<ScaledBound> {
    if limit.fract() != 0.0 || limit.abs() > 9_000.0 {
        return None;
    }
    let limit = limit as i64;
    Some(std::array::from_fn(|power| limit * 10i64.pow(power as u32)))
}

// proptest is not a dev-dependency on wasm32.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use proptest::prelude::*;

    use super::{FastCheck, Verdict};
    use crate::schema::types::FieldType;
    use crate::schema::{Field, Schema};

    /// Fields of every shape that has a fast check, and one that has none.
    const FIELDS: &str = r#"{"fields": [
        {"name": "int", "type": "integer"},
        {"name": "age", "type": "integer", "constraints": {"minimum": 0, "maximum": 120}},
        {"name": "positive", "type": "integer", "constraints": {"exclusiveMinimum": 0, "exclusiveMaximum": 10}},
        {"name": "score", "type": "number", "constraints": {"minimum": -1.5, "maximum": 100}},
        {"name": "amount", "type": "number", "constraints": {"exclusiveMinimum": 0, "exclusiveMaximum": 5}},
        {"name": "big", "type": "number", "constraints": {"maximum": 100000}},
        {"name": "joined", "type": "date", "constraints": {"minimum": "2000-01-01", "exclusiveMaximum": "2030-01-01"}},
        {"name": "member", "type": "boolean"},
        {"name": "yes", "type": "boolean", "trueValues": ["y"], "falseValues": ["n"]},
        {"name": "text"},
        {"name": "status", "constraints": {"enum": ["active", "closed"], "required": true}},
        {"name": "code", "constraints": {"pattern": "[A-Z]{2}[0-9]?", "minLength": 2, "maxLength": 3}},
        {"name": "anything", "type": "any"},
        {"name": "short", "constraints": {"minLength": 2, "maxLength": 3}},
        {"name": "grouped", "type": "integer", "groupChar": ","}
    ]}"#;

    fn fields() -> Vec<Field> {
        Schema::from_json(FIELDS).unwrap().fields
    }

    /// The general path's verdict, as `Checker::check_value` reaches it.
    fn general_passes(field: &Field, cell: &str) -> bool {
        !field.is_missing(cell)
            && field
                .field_type
                .parse(cell)
                .is_some_and(|value| field.constraints.passes(&value, cell))
    }

    #[test]
    fn usual_valid_cells_take_the_fast_path() {
        let fields = fields();
        let cells = [
            "42",
            "7",
            "3",
            "-1.5",
            "4.99",
            "99999.5",
            "2024-02-29",
            "false",
            "y",
            "anything",
            "active",
            "DE1",
            "ab",
            "é✓",
            "1,000",
        ];
        for (field, cell) in fields.iter().zip(cells) {
            let check = FastCheck::for_field(field, false);
            let expected = match field.name.as_str() {
                "grouped" => Verdict::Unsure, // no fast check for group characters
                "int" | "age" | "positive" => {
                    // The value itself only for a key field.
                    assert_eq!(
                        FastCheck::for_field(field, true).verdict(cell.as_bytes()),
                        Verdict::ValidInteger(cell.parse().unwrap())
                    );
                    Verdict::Valid
                }
                _ => Verdict::Valid,
            };
            assert_eq!(
                check.verdict(cell.as_bytes()),
                expected,
                "{} {cell:?}",
                field.name
            );
        }
    }

    /// The fast date reader takes exactly the dates the general parser takes.
    #[test]
    fn dates_agree_with_the_general_parser() {
        let date = FieldType::Date(crate::schema::types::TemporalFormat::Iso);
        for year in [0, 1, 4, 100, 400, 1900, 2000, 2023, 2024, 2100, 9999] {
            for month in 0..=13 {
                for day in 0..=32 {
                    let cell = format!("{year:04}-{month:02}-{day:02}");
                    assert_eq!(
                        super::iso_date(cell.as_bytes()).is_some(),
                        date.parse(&cell).is_some(),
                        "{cell}"
                    );
                }
            }
        }
    }

    /// An exclusive bound at an end of i128 has no next integer to become inclusive: the
    /// general path keeps such a field, and still rejects the bound itself.
    #[test]
    fn exclusive_bounds_at_the_ends_of_i128_have_no_fast_check() {
        let schema = Schema::from_json(
            r#"{"fields": [
                {"name": "a", "type": "integer", "constraints": {"exclusiveMinimum": "170141183460469231731687303715884105727"}},
                {"name": "b", "type": "integer", "constraints": {"exclusiveMaximum": "-170141183460469231731687303715884105728"}}
            ]}"#,
        )
        .unwrap();
        for (field, cell) in schema.fields.iter().zip([i128::MAX, i128::MIN]) {
            let check = FastCheck::for_field(field, false);
            assert!(matches!(check, FastCheck::General), "{}", field.name);
            assert!(!general_passes(field, &cell.to_string()), "{}", field.name);
        }
    }

    #[test]
    fn keyed_fields_get_a_fast_check_only_with_their_value() {
        let fields = fields();
        assert!(matches!(
            FastCheck::for_field(&fields[0], true),
            FastCheck::Integer { key: true, .. }
        ));
        assert!(matches!(
            FastCheck::for_field(&fields[0], false),
            FastCheck::Integer { key: false, .. }
        ));
        for field in &fields[3..] {
            assert!(matches!(
                FastCheck::for_field(field, true),
                FastCheck::General
            ));
        }
    }

    proptest! {
        /// A cell passed on its bytes with the quotes still doubled passes the general path
        /// with them made single.
        #[test]
        fn doubled_quotes_pass_only_what_the_general_path_passes(text in "[a\"é ]{0,6}") {
            let schema = Schema::from_json(r#"{"fields": [
                {"name": "plain"},
                {"name": "note", "constraints": {"maxLength": 3}},
                {"name": "short", "constraints": {"minLength": 2, "maxLength": 3}},
                {"name": "int", "type": "integer"}
            ]}"#).unwrap();
            let doubled = text.replace('"', "\"\"");
            for field in &schema.fields {
                let check = FastCheck::for_field(field, false);
                let verdict = check.verdict_with_doubled_quotes(doubled.as_bytes());
                if verdict != Verdict::Unsure {
                    prop_assert_eq!(verdict, Verdict::Valid);
                    prop_assert!(general_passes(field, &text), "{} {text:?}", field.name);
                }
                // Plain text always passes this way; a field with more than a maximum never does.
                match field.name.as_str() {
                    "plain" => prop_assert_eq!(verdict == Verdict::Valid, !text.is_empty()),
                    "short" | "int" => prop_assert_eq!(verdict, Verdict::Unsure),
                    _ => {}
                }
            }
        }

        /// The fast path never passes a cell the general path rejects, and its integers are
        /// the general parser's.
        #[test]
        fn fast_valid_implies_general_valid(
            cell in "[-+0-9.eEa-zA-Zé✓:T, ]{0,12}|[0-9]{1,40}|-?[0-9]{1,3}(\\.[0-9]{0,17})?|-?(0|4|5|10|99|100|99999|100000)\\.(0{1,14}1|9{1,14})|20[0-9]{2}-[0-3][0-9]-[0-3][0-9]|[0-9]{4}-(02-2[89]|0[0-9]-3[01]|1[0-3]-[0-3][0-9])|(true|false|y|n|active|closed)"
        ) {
            for field in &fields() {
                for keyed in [false, true] {
                    let check = FastCheck::for_field(field, keyed);
                    match check.verdict(cell.as_bytes()) {
                        Verdict::Unsure => {}
                        Verdict::Valid => prop_assert!(general_passes(field, &cell), "{} {cell:?}", field.name),
                        Verdict::ValidInteger(value) => {
                            prop_assert!(general_passes(field, &cell), "{} {cell:?}", field.name);
                            prop_assert_eq!(
                                field.field_type.parse(&cell),
                                Some(crate::schema::types::Value::Integer(value))
                            );
                        }
                    }
                }
            }
        }
    }
}
