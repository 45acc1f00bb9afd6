//! Date, time, datetime, year, yearmonth and duration cells, and the strftime patterns a
//! schema may give for the first three.

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};

use super::numbers::{is_decimal_notation, parse_plain_int};

/// How date, time and datetime cells are written: ISO 8601, or a strftime pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemporalFormat {
    Iso,
    Pattern(String),
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

#[inline]
pub(super) fn parse_date(cell: &str, format: &TemporalFormat) -> Option<NaiveDate> {
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

pub(super) fn parse_time(cell: &str, format: &TemporalFormat) -> Option<NaiveTime> {
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

pub(super) fn parse_datetime(cell: &str, format: &TemporalFormat) -> Option<NaiveDateTime> {
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
pub(super) fn parse_year_month(cell: &str) -> Option<(i32, u32)> {
    let (year, month) = cell.split_once('-')?;
    let year = parse_plain_int(year).and_then(|y| i32::try_from(y).ok())?;
    let month = (month.len() == 2)
        .then(|| digits(month.as_bytes()))
        .flatten()?;
    (1..=12).contains(&month).then_some((year, month))
}

/// `PnYnMnWnDTnHnMnS`: at least one component, and a `T` only when time components follow.
pub(super) fn parse_duration(cell: &str) -> Option<IsoDuration> {
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
    use std::cmp::Ordering;

    use super::super::{FieldType, Value};
    use super::*;

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
    fn patterns_are_checked() {
        assert!(check_pattern("%d/%m/%Y").is_ok());
        assert!(check_pattern("dd/mm/yyyy").is_err());
        assert!(check_pattern("%Q").is_err());
    }
}
