//! Field types and how a cell's text becomes a typed value (Table Schema "logical" values).
//!
//! This module holds the [`FieldType`] dispatch and the [`Value`] it yields; each family of
//! types parses in its own module: `numbers.rs` (integer, number), `temporal.rs` (date, time,
//! datetime, year, yearmonth, duration, strftime patterns) and `text.rs` (string formats).
//! Booleans and `any` need no parser of their own and are read here.

use std::cmp::Ordering;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

mod numbers;
mod temporal;
mod text;

pub use numbers::NumberFormat;
pub(crate) use numbers::{parse_plain_int_bytes, short_decimal};
pub(crate) use temporal::iso_date_parts;
pub use temporal::{check_pattern, IsoDuration, TemporalFormat};
pub use text::StringFormat;

use numbers::{parse_integer, parse_number, parse_plain_int};
use temporal::{parse_date, parse_datetime, parse_duration, parse_time, parse_year_month};
use text::check_string_format;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldType {
    String(StringFormat),
    Integer(NumberFormat),
    Number(NumberFormat),
    Boolean {
        true_values: Vec<String>,
        false_values: Vec<String>,
    },
    Date(TemporalFormat),
    Time(TemporalFormat),
    DateTime(TemporalFormat),
    Year,
    YearMonth,
    Duration,
    Any,
}

impl FieldType {
    /// The type's name as schemas spell it.
    pub fn name(&self) -> &'static str {
        match self {
            FieldType::String(_) => "string",
            FieldType::Integer(_) => "integer",
            FieldType::Number(_) => "number",
            FieldType::Boolean { .. } => "boolean",
            FieldType::Date(_) => "date",
            FieldType::Time(_) => "time",
            FieldType::DateTime(_) => "datetime",
            FieldType::Year => "year",
            FieldType::YearMonth => "yearmonth",
            FieldType::Duration => "duration",
            FieldType::Any => "any",
        }
    }

    /// "an integer", "a date" — for messages a person reads.
    pub fn with_article(&self) -> String {
        match self {
            FieldType::String(StringFormat::Email) => "an email address".into(),
            FieldType::String(StringFormat::Uri) => "a URI".into(),
            FieldType::String(StringFormat::Uuid) => "a UUID".into(),
            FieldType::Integer(_) => "an integer".into(),
            FieldType::Any => "any value".into(),
            FieldType::Date(TemporalFormat::Pattern(p))
            | FieldType::Time(TemporalFormat::Pattern(p))
            | FieldType::DateTime(TemporalFormat::Pattern(p)) => {
                format!("a {} in the format '{p}'", self.name())
            }
            other => format!("a {}", other.name()),
        }
    }

    /// Parse one non-missing cell. `None` means it is not a value of this type.
    // Inlined so the value stays in registers: returning it through memory cost more than
    // most parses themselves.
    #[inline]
    pub fn parse<'a>(&self, cell: &'a str) -> Option<Value<'a>> {
        match self {
            FieldType::String(StringFormat::Default) => Some(Value::Text(cell)),
            FieldType::String(format) => {
                check_string_format(*format, cell).then_some(Value::Text(cell))
            }
            FieldType::Any => Some(Value::Text(cell)),
            FieldType::Integer(format) => parse_integer(cell, format).map(Value::Integer),
            FieldType::Number(format) => parse_number(cell, format).map(Value::Number),
            FieldType::Boolean {
                true_values,
                false_values,
            } => {
                if true_values.iter().any(|v| v == cell) {
                    Some(Value::Boolean(true))
                } else if false_values.iter().any(|v| v == cell) {
                    Some(Value::Boolean(false))
                } else {
                    None
                }
            }
            FieldType::Date(format) => parse_date(cell, format).map(Value::Date),
            FieldType::Time(format) => parse_time(cell, format).map(Value::Time),
            FieldType::DateTime(format) => parse_datetime(cell, format).map(Value::DateTime),
            FieldType::Year => parse_plain_int(cell)
                .and_then(|y| i32::try_from(y).ok())
                .map(Value::Year),
            FieldType::YearMonth => parse_year_month(cell).map(|(y, m)| Value::YearMonth(y, m)),
            FieldType::Duration => parse_duration(cell).map(|d| Value::Duration(Box::new(d))),
        }
    }

    /// Whether values of this type have an order (for minimum/maximum).
    pub fn is_ordered(&self) -> bool {
        matches!(
            self,
            FieldType::Integer(_)
                | FieldType::Number(_)
                | FieldType::Date(_)
                | FieldType::Time(_)
                | FieldType::DateTime(_)
                | FieldType::Year
                | FieldType::YearMonth
        )
    }

    /// Whether length constraints apply.
    pub fn has_length(&self) -> bool {
        matches!(self, FieldType::String(_))
    }
}

/// A typed cell value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Text(&'a str),
    Integer(i128),
    Number(f64),
    Boolean(bool),
    Date(NaiveDate),
    Time(NaiveTime),
    /// Datetimes with an offset are kept in UTC.
    DateTime(NaiveDateTime),
    Year(i32),
    YearMonth(i32, u32),
    /// Boxed: durations are rare, and this keeps every other value small to move around.
    Duration(Box<IsoDuration>),
}

impl Value<'_> {
    /// Order between two values of the same field; `None` across kinds or with NaN.
    #[inline]
    pub fn compare(&self, other: &Value<'_>) -> Option<Ordering> {
        use Value::*;
        match (self, other) {
            (Integer(a), Integer(b)) => Some(a.cmp(b)),
            (Number(a), Number(b)) => a.partial_cmp(b),
            (Integer(a), Number(b)) => integer_against_number(*a, *b),
            (Number(a), Integer(b)) => integer_against_number(*b, *a).map(Ordering::reverse),
            (Date(a), Date(b)) => Some(a.cmp(b)),
            (Time(a), Time(b)) => Some(a.cmp(b)),
            (DateTime(a), DateTime(b)) => Some(a.cmp(b)),
            (Year(a), Year(b)) => Some(a.cmp(b)),
            (YearMonth(ay, am), YearMonth(by, bm)) => Some((ay, am).cmp(&(by, bm))),
            _ => None,
        }
    }

    /// Bytes that are equal exactly when the values are equal, for unique and enum checks:
    /// "01" and "1" are the same integer, "1.0" and "1" the same number.
    pub fn canonical_bytes(&self, out: &mut Vec<u8>) {
        match self {
            Value::Text(s) => out.extend_from_slice(s.as_bytes()),
            Value::Integer(i) => out.extend_from_slice(&i.to_le_bytes()),
            Value::Number(n) => {
                let n = if *n == 0.0 { 0.0 } else { *n }; // -0 equals 0
                out.extend_from_slice(&n.to_bits().to_le_bytes())
            }
            Value::Boolean(b) => out.push(*b as u8),
            Value::Date(d) => out.extend_from_slice(d.to_string().as_bytes()),
            Value::Time(t) => out.extend_from_slice(t.to_string().as_bytes()),
            Value::DateTime(t) => out.extend_from_slice(t.to_string().as_bytes()),
            Value::Year(y) => out.extend_from_slice(&y.to_le_bytes()),
            Value::YearMonth(y, m) => {
                out.extend_from_slice(&y.to_le_bytes());
                out.extend_from_slice(&m.to_le_bytes())
            }
            Value::Duration(d) => out.extend_from_slice(format!("{d:?}").as_bytes()),
        }
    }

    /// The value as a person reads it in a message.
    pub fn display(&self) -> String {
        match self {
            Value::Text(s) => format!("'{s}'"),
            Value::Integer(i) => i.to_string(),
            Value::Number(n) => n.to_string(),
            Value::Boolean(b) => b.to_string(),
            Value::Date(d) => d.to_string(),
            Value::Time(t) => t.to_string(),
            Value::DateTime(t) => t.format("%Y-%m-%dT%H:%M:%S%.f").to_string(),
            Value::Year(y) => y.to_string(),
            Value::YearMonth(y, m) => format!("{y:04}-{m:02}"),
            Value::Duration(d) => format!("{d:?}"),
        }
    }
}

/// Out of line: the compiler otherwise converts every integer to a float before it knows
/// whether the other side is a float, a library call on each integer comparison.
#[cold]
#[inline(never)]
fn integer_against_number(integer: i128, number: f64) -> Option<Ordering> {
    (integer as f64).partial_cmp(&number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans() {
        let t = FieldType::Boolean {
            true_values: vec!["yes".into()],
            false_values: vec!["no".into()],
        };
        assert_eq!(t.parse("yes"), Some(Value::Boolean(true)));
        assert_eq!(t.parse("no"), Some(Value::Boolean(false)));
        assert_eq!(t.parse("true"), None);
    }

    #[test]
    fn canonical_values_make_equal_numbers_equal() {
        let t = FieldType::Integer(NumberFormat::default());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        t.parse("01").unwrap().canonical_bytes(&mut a);
        t.parse("1").unwrap().canonical_bytes(&mut b);
        assert_eq!(a, b);
    }
}
