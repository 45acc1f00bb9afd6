//! Field types and how a cell's text becomes a typed value (Table Schema "logical" values).

use std::cmp::Ordering;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};

/// A string field's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringFormat {
    Default,
    Email,
    Uri,
    Uuid,
}

/// How date, time and datetime cells are written: ISO 8601, or a strftime pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemporalFormat {
    Iso,
    Pattern(String),
}

/// Options of number and integer fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberFormat {
    pub decimal_char: char,
    pub group_char: Option<char>,
    /// False allows leading and trailing non-numeric text such as "€" or "%".
    pub bare_number: bool,
}

impl Default for NumberFormat {
    fn default() -> Self {
        NumberFormat {
            decimal_char: '.',
            group_char: None,
            bare_number: true,
        }
    }
}

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

/// An ISO 8601 duration, kept by component (months and days have no fixed length).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct IsoDuration {
    pub years: f64,
    pub months: f64,
    pub weeks: f64,
    pub days: f64,
    pub hours: f64,
    pub minutes: f64,
    pub seconds: f64,
}

fn check_string_format(format: StringFormat, cell: &str) -> bool {
    match format {
        StringFormat::Default => true,
        StringFormat::Email => is_email(cell),
        StringFormat::Uri => is_uri(cell),
        StringFormat::Uuid => is_uuid(cell),
    }
}

/// `local@domain.tld`: one '@', no spaces, a dot in the domain, no empty labels.
fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && domain.contains('.')
        && domain.split('.').all(|label| !label.is_empty())
}

/// An absolute URI: a scheme (RFC 3986: letter, then letters, digits, + - .), a colon, no spaces.
fn is_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// 8-4-4-4-12 hexadecimal digits.
fn is_uuid(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Strip non-numeric text around a number when `bareNumber` is false.
#[inline]
fn strip_non_bare<'a>(cell: &'a str, format: &NumberFormat) -> &'a str {
    if format.bare_number {
        return cell;
    }
    let is_numeric =
        |c: char| c.is_ascii_digit() || c == '-' || c == '+' || c == format.decimal_char;
    let start = cell
        .find(|c: char| c.is_ascii_digit() || c == '-' || c == '+')
        .unwrap_or(cell.len());
    let end = cell
        .rfind(|c: char| c.is_ascii_digit())
        .map(|i| i + 1)
        .unwrap_or(start);
    let inner = &cell[start..end.max(start)];
    if inner.chars().next().is_some_and(is_numeric) {
        inner
    } else {
        cell
    }
}

/// Digits with an optional sign and group characters between digits.
#[inline]
fn parse_integer(cell: &str, format: &NumberFormat) -> Option<i128> {
    let text = strip_non_bare(cell, format);
    match format.group_char {
        Some(group) if text.contains(group) => {
            let plain: String = text.chars().filter(|c| *c != group).collect();
            parse_plain_int(&plain)
        }
        _ => parse_plain_int(text),
    }
}

#[inline]
fn parse_plain_int(text: &str) -> Option<i128> {
    parse_plain_int_bytes(text.as_bytes())
}

/// An optional sign and digits.
#[inline]
pub(crate) fn parse_plain_int_bytes(bytes: &[u8]) -> Option<i128> {
    let (negative, digits) = match bytes {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        all => (false, all),
    };
    if digits.is_empty() {
        return None;
    }
    if digits.len() > 18 {
        return parse_long_int(negative, digits);
    }
    // One pass for the usual case, in 64 bits while they surely hold the value.
    let mut value: u64 = 0;
    for &b in digits {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value * 10 + u64::from(digit);
    }
    let value = i128::from(value);
    Some(if negative { -value } else { value })
}

/// More than 18 digits: rare, so out of line.
#[cold]
#[inline(never)]
fn parse_long_int(negative: bool, digits: &[u8]) -> Option<i128> {
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // i128 holds 38 significant digits, and some of 39; past that the value does not fit
    // (leading zeros do not count).
    // Negative values build downwards: i128::MIN has no positive counterpart.
    let mut value: i128 = 0;
    for &b in digits {
        let digit = i128::from(b - b'0');
        value = value.checked_mul(10)?;
        value = if negative {
            value.checked_sub(digit)?
        } else {
            value.checked_add(digit)?
        };
    }
    Some(value)
}

/// Decimal notation with an optional exponent, or NaN / INF / -INF (the spec's spellings).
#[inline]
fn parse_number(cell: &str, format: &NumberFormat) -> Option<f64> {
    let text = strip_non_bare(cell, format);
    let plain_format = format.decimal_char == '.' && format.group_char.is_none();
    if plain_format {
        if let Some(value) = parse_short_decimal(text.as_bytes()) {
            return Some(value);
        }
    }
    match text {
        "NaN" => return Some(f64::NAN),
        "INF" | "+INF" => return Some(f64::INFINITY),
        "-INF" => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    if plain_format {
        return is_decimal_notation(text)
            .then(|| text.parse().ok())
            .flatten();
    }
    let plain: String = text
        .chars()
        .filter(|c| Some(*c) != format.group_char)
        .map(|c| if c == format.decimal_char { '.' } else { c })
        .collect();
    is_decimal_notation(&plain)
        .then(|| plain.parse().ok())
        .flatten()
}

/// The common case `[+-]digits[.digits]` with at most 15 digits, without the general float
/// parser: the digits and the power of ten are both exact in an `f64`, so one division gives
/// the correctly rounded value, the same one `str::parse` gives. `None`: use the general path.
#[inline]
fn parse_short_decimal(text: &[u8]) -> Option<f64> {
    short_decimal(text).map(ShortDecimal::to_f64)
}

/// [`parse_short_decimal`]'s digits, before the division.
#[inline]
pub(crate) fn short_decimal(text: &[u8]) -> Option<ShortDecimal> {
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        bytes => (false, bytes),
    };
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    let mut mantissa: u64 = 0;
    let mut count = 0;
    let mut point = None;
    for (i, &byte) in digits.iter().enumerate() {
        match byte {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(byte - b'0');
                count += 1;
            }
            b'.' if point.is_none() => point = Some(i),
            _ => return None,
        }
    }
    if count == 0 || count > 15 {
        return None;
    }
    let fraction_digits = point.map_or(0, |p| digits.len() - 1 - p);
    Some(ShortDecimal {
        negative,
        mantissa,
        fraction_digits,
    })
}

/// `[+-]digits[.digits]` with at most 15 digits: exactly `±mantissa / 10^fraction_digits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShortDecimal {
    pub negative: bool,
    pub mantissa: u64,
    pub fraction_digits: usize,
}

impl ShortDecimal {
    /// The nearest `f64`: the digits and the power of ten are both exact, so one division
    /// rounds correctly.
    #[inline]
    pub fn to_f64(self) -> f64 {
        const POWERS_OF_TEN: [f64; 16] = [
            1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
        ];
        let magnitude = self.mantissa as f64 / POWERS_OF_TEN[self.fraction_digits];
        if self.negative {
            -magnitude
        } else {
            magnitude
        }
    }
}

/// `[+-]digits[.digits][(e|E)[+-]digits]`, with digits on at least one side of the point.
/// Rust's float parser alone would also take "inf" and "infinity", which the spec does not.
fn is_decimal_notation(text: &str) -> bool {
    let bytes = text.strip_prefix(['+', '-']).unwrap_or(text).as_bytes();
    let mut i = 0;
    let int_digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    i += int_digits;
    let mut frac_digits = 0;
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        i += frac_digits;
    }
    if int_digits + frac_digits == 0 {
        return false;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_digits = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        if exp_digits == 0 {
            return false;
        }
        i += exp_digits;
    }
    i == bytes.len()
}

#[inline]
fn parse_date(cell: &str, format: &TemporalFormat) -> Option<NaiveDate> {
    match format {
        TemporalFormat::Iso => {
            let (year, month, day) = iso_date_parts(cell.as_bytes())?;
            NaiveDate::from_ymd_opt(year as i32, month, day)
        }
        TemporalFormat::Pattern(pattern) => NaiveDate::parse_from_str(cell, pattern).ok(),
    }
}

/// The year, month and day of `YYYY-MM-DD` (the one ISO form a date cell takes), as written:
/// whether they make a date is the caller's question.
#[inline]
pub(crate) fn iso_date_parts(b: &[u8]) -> Option<(u32, u32, u32)> {
    let [y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1] = *b else {
        return None;
    };
    let digit = |b: u8| b.is_ascii_digit().then(|| u32::from(b - b'0'));
    let year = digit(y0)? * 1000 + digit(y1)? * 100 + digit(y2)? * 10 + digit(y3)?;
    let month = digit(m0)? * 10 + digit(m1)?;
    let day = digit(d0)? * 10 + digit(d1)?;
    Some((year, month, day))
}

#[inline]
fn digits(bytes: &[u8]) -> Option<u32> {
    bytes.iter().try_fold(0u32, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + (b - b'0') as u32)
    })
}

fn parse_time(cell: &str, format: &TemporalFormat) -> Option<NaiveTime> {
    match format {
        // HH:MM:SS with optional fraction and an optional Z or offset.
        TemporalFormat::Iso => {
            let (time, _offset) = split_offset(cell);
            NaiveTime::parse_from_str(time, "%H:%M:%S%.f").ok()
        }
        TemporalFormat::Pattern(pattern) => NaiveTime::parse_from_str(cell, pattern).ok(),
    }
}

/// Split a trailing `Z` or `±HH:MM` from a time.
fn split_offset(cell: &str) -> (&str, Option<&str>) {
    if let Some(time) = cell.strip_suffix('Z') {
        return (time, Some("Z"));
    }
    if cell.len() > 6 {
        let (time, offset) = cell.split_at(cell.len() - 6);
        let o = offset.as_bytes();
        if (o[0] == b'+' || o[0] == b'-') && o[3] == b':' {
            return (time, Some(offset));
        }
    }
    (cell, None)
}

fn parse_datetime(cell: &str, format: &TemporalFormat) -> Option<NaiveDateTime> {
    match format {
        TemporalFormat::Iso => {
            if let Ok(dt) = DateTime::parse_from_rfc3339(cell) {
                return Some(dt.naive_utc());
            }
            // No offset: a local datetime, as Frictionless accepts.
            NaiveDateTime::parse_from_str(cell, "%Y-%m-%dT%H:%M:%S%.f").ok()
        }
        TemporalFormat::Pattern(pattern) => NaiveDateTime::parse_from_str(cell, pattern)
            .ok()
            .or_else(|| {
                DateTime::parse_from_str(cell, pattern)
                    .ok()
                    .map(|dt| dt.naive_utc())
            }),
    }
}

/// `YYYY-MM`.
fn parse_year_month(cell: &str) -> Option<(i32, u32)> {
    let (year, month) = cell.split_once('-')?;
    let year = parse_plain_int(year).and_then(|y| i32::try_from(y).ok())?;
    let month = (month.len() == 2)
        .then(|| digits(month.as_bytes()))
        .flatten()?;
    (1..=12).contains(&month).then_some((year, month))
}

/// `PnYnMnWnDTnHnMnS`: at least one component, and a `T` only when time components follow.
fn parse_duration(cell: &str) -> Option<IsoDuration> {
    let rest = cell.strip_prefix('P')?;
    let (date_part, time_part) = match rest.split_once('T') {
        Some((date, time)) => (date, Some(time)),
        None => (rest, None),
    };
    let mut duration = IsoDuration::default();
    let mut components = 0;
    components += parse_duration_part(
        date_part,
        &mut [
            (b'Y', &mut duration.years),
            (b'M', &mut duration.months),
            (b'W', &mut duration.weeks),
            (b'D', &mut duration.days),
        ],
    )?;
    if let Some(time) = time_part {
        let in_time = parse_duration_part(
            time,
            &mut [
                (b'H', &mut duration.hours),
                (b'M', &mut duration.minutes),
                (b'S', &mut duration.seconds),
            ],
        )?;
        if in_time == 0 {
            return None;
        }
        components += in_time;
    }
    (components > 0).then_some(duration)
}

/// Read `<number><unit>` pairs whose units come in the given order; returns how many were read.
fn parse_duration_part(part: &str, units: &mut [(u8, &mut f64)]) -> Option<usize> {
    let bytes = part.as_bytes();
    let mut pos = 0;
    let mut next_unit = 0;
    let mut count = 0;
    while pos < bytes.len() {
        let start = pos;
        while pos < bytes.len()
            && (bytes[pos].is_ascii_digit() || bytes[pos] == b'.' || bytes[pos] == b',')
        {
            pos += 1;
        }
        let number = part[start..pos].replace(',', ".");
        if number.is_empty() || !is_decimal_notation(&number) {
            return None;
        }
        let unit = *bytes.get(pos)?;
        pos += 1;
        let offset = units[next_unit..].iter().position(|(u, _)| *u == unit)?;
        next_unit += offset;
        *units[next_unit].1 = number.parse().ok()?;
        next_unit += 1;
        count += 1;
    }
    Some(count)
}

/// Check a strftime pattern when the schema loads, so a typo is a schema error, not a
/// type error on every row.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    if !pattern.contains('%') {
        return Err(format!(
            "'{pattern}' is not a strftime pattern such as '%d/%m/%Y'"
        ));
    }
    if StrftimeItems::new(pattern).any(|item| matches!(item, Item::Error)) {
        return Err(format!("'{pattern}' is not a valid strftime pattern"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_decimals_parse_exactly_as_the_general_parser_does() {
        let mut inputs: Vec<String> = [
            "0",
            "-0",
            "+0.0",
            ".5",
            "5.",
            "0.1",
            "0.3",
            "-2.675",
            "123456789012345",
            "99999999999999.9",
            "0.00000000000001",
            "4952.59",
            "1.79769313486231",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let digits = (seed % 10_u64.pow((seed >> 59) as u32 % 15 + 1)).to_string();
            let point = (seed >> 40) as usize % (digits.len() + 1);
            inputs.push(format!("{}.{}", &digits[..point], &digits[point..]));
        }
        for input in &inputs {
            let expected: f64 = input.parse().unwrap();
            let parsed = parse_short_decimal(input.as_bytes()).expect(input);
            assert_eq!(parsed.to_bits(), expected.to_bits(), "{input}");
        }
        for too_long_or_not_short in ["1234567890123456", "1e5", "1.2.3", "", "-", ".", "1_0"] {
            assert_eq!(
                parse_short_decimal(too_long_or_not_short.as_bytes()),
                None,
                "{too_long_or_not_short}"
            );
        }
    }

    fn number() -> FieldType {
        FieldType::Number(NumberFormat::default())
    }

    #[test]
    fn integers() {
        let t = FieldType::Integer(NumberFormat::default());
        assert_eq!(t.parse("42"), Some(Value::Integer(42)));
        assert_eq!(t.parse("-7"), Some(Value::Integer(-7)));
        assert_eq!(t.parse("+7"), Some(Value::Integer(7)));
        for bad in ["1x3", "1.0", "", "-", "1 000", " 1"] {
            assert_eq!(t.parse(bad), None, "{bad}");
        }
        // Past 18 digits, up to the ends of i128 and not beyond.
        for long in [
            i128::MAX.to_string(),
            i128::MIN.to_string(),
            format!("-{}", "9".repeat(38)),
            format!("{}{}", "0".repeat(40), "12"),
        ] {
            assert_eq!(
                t.parse(&long),
                Some(Value::Integer(long.parse().unwrap())),
                "{long}"
            );
        }
        for too_long in [
            "170141183460469231731687303715884105728",
            "-170141183460469231731687303715884105729",
            "1234567890123456789012345678901234567890",
            "12345678901234567890x",
        ] {
            assert_eq!(t.parse(too_long), None, "{too_long}");
        }
        let grouped = FieldType::Integer(NumberFormat {
            group_char: Some(','),
            ..Default::default()
        });
        assert_eq!(grouped.parse("1,000,000"), Some(Value::Integer(1_000_000)));
        let loose = FieldType::Integer(NumberFormat {
            bare_number: false,
            ..Default::default()
        });
        assert_eq!(loose.parse("€95"), Some(Value::Integer(95)));
        assert_eq!(loose.parse("95%"), Some(Value::Integer(95)));
    }

    #[test]
    fn numbers() {
        assert_eq!(number().parse("1.5"), Some(Value::Number(1.5)));
        assert_eq!(number().parse("-1e3"), Some(Value::Number(-1000.0)));
        assert_eq!(number().parse(".5"), Some(Value::Number(0.5)));
        assert_eq!(number().parse("INF"), Some(Value::Number(f64::INFINITY)));
        assert!(matches!(number().parse("NaN"), Some(Value::Number(n)) if n.is_nan()));
        for bad in ["inf", "infinity", "nan", "1e", "1,5", "abc", "", "."] {
            assert_eq!(number().parse(bad), None, "{bad}");
        }
        let european = FieldType::Number(NumberFormat {
            decimal_char: ',',
            group_char: Some('.'),
            bare_number: true,
        });
        assert_eq!(european.parse("1.234,5"), Some(Value::Number(1234.5)));
    }

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
    fn dates_and_times() {
        let iso = FieldType::Date(TemporalFormat::Iso);
        assert!(iso.parse("2024-02-29").is_some());
        assert_eq!(iso.parse("2023-02-29"), None);
        assert_eq!(iso.parse("2024/02/01"), None);
        let custom = FieldType::Date(TemporalFormat::Pattern("%d/%m/%Y".into()));
        assert!(custom.parse("31/12/2024").is_some());
        assert_eq!(custom.parse("2024-12-31"), None);
        let time = FieldType::Time(TemporalFormat::Iso);
        assert!(time.parse("23:59:59").is_some());
        assert!(time.parse("12:00:00.250Z").is_some());
        assert_eq!(time.parse("24:00:01"), None);
        let dt = FieldType::DateTime(TemporalFormat::Iso);
        assert!(dt.parse("2024-01-01T10:00:00Z").is_some());
        assert!(dt.parse("2024-01-01T10:00:00+02:00").is_some());
        assert!(dt.parse("2024-01-01T10:00:00").is_some());
        assert_eq!(dt.parse("2024-01-01 10:00"), None);
        assert_eq!(
            dt.parse("2024-01-01T12:00:00+02:00")
                .unwrap()
                .compare(&dt.parse("2024-01-01T10:00:00Z").unwrap()),
            Some(Ordering::Equal)
        );
    }

    #[test]
    fn years_months_durations() {
        assert_eq!(FieldType::Year.parse("2024"), Some(Value::Year(2024)));
        assert_eq!(FieldType::Year.parse("20x4"), None);
        assert_eq!(
            FieldType::YearMonth.parse("2024-02"),
            Some(Value::YearMonth(2024, 2))
        );
        assert_eq!(FieldType::YearMonth.parse("2024-13"), None);
        for good in ["P1Y2M3DT4H5M6S", "PT0.5S", "P3W", "P1D", "PT36H"] {
            assert!(FieldType::Duration.parse(good).is_some(), "{good}");
        }
        for bad in ["P", "PT", "1Y", "P1S", "P1M1Y", "PT1D", "P1YT"] {
            assert_eq!(FieldType::Duration.parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn string_formats() {
        let email = FieldType::String(StringFormat::Email);
        assert!(email.parse("ada@example.org").is_some());
        for bad in [
            "ada",
            "ada@",
            "@example.org",
            "ada@example",
            "a da@example.org",
            "a@b@c.org",
        ] {
            assert_eq!(email.parse(bad), None, "{bad}");
        }
        let uri = FieldType::String(StringFormat::Uri);
        assert!(uri.parse("https://example.org/x?y=1").is_some());
        assert!(uri.parse("mailto:ada@example.org").is_some());
        assert_eq!(uri.parse("example.org"), None);
        assert_eq!(uri.parse("http://exa mple.org"), None);
        let uuid = FieldType::String(StringFormat::Uuid);
        assert!(uuid.parse("123e4567-e89b-12d3-a456-426614174000").is_some());
        assert_eq!(uuid.parse("123e4567e89b12d3a456426614174000"), None);
    }

    #[test]
    fn canonical_values_make_equal_numbers_equal() {
        let t = FieldType::Integer(NumberFormat::default());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        t.parse("01").unwrap().canonical_bytes(&mut a);
        t.parse("1").unwrap().canonical_bytes(&mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn patterns_are_checked() {
        assert!(check_pattern("%d/%m/%Y").is_ok());
        assert!(check_pattern("dd/mm/yyyy").is_err());
        assert!(check_pattern("%Q").is_err());
    }
}
