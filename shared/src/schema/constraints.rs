//! Field constraints, compiled once when the schema loads.

use std::cmp::Ordering;

use serde_json::{Map, Value as Json};

use super::limits::Budget;
pub use super::pattern::Pattern;
use super::types::{FieldType, Value};
use super::SchemaError;
use crate::report::truncate_cell;

/// An order bound (minimum, maximum, …) with the text the schema gave, for messages.
#[derive(Debug, Clone)]
pub struct Bound {
    pub kind: BoundKind,
    pub value: Value<'static>,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BoundKind {
    Minimum,
    Maximum,
    ExclusiveMinimum,
    ExclusiveMaximum,
}

impl Bound {
    /// Whether `value` is on the wrong side. A value that does not compare (NaN) breaks every
    /// bound.
    #[inline]
    fn broken_by(&self, value: &Value<'_>) -> bool {
        let ordering = value.compare(&self.value);
        match self.kind {
            BoundKind::Minimum => !matches!(ordering, Some(Ordering::Greater | Ordering::Equal)),
            BoundKind::Maximum => !matches!(ordering, Some(Ordering::Less | Ordering::Equal)),
            BoundKind::ExclusiveMinimum => ordering != Some(Ordering::Greater),
            BoundKind::ExclusiveMaximum => ordering != Some(Ordering::Less),
        }
    }

    fn constraint(&self) -> &'static str {
        match self.kind {
            BoundKind::Minimum => "minimum",
            BoundKind::Maximum => "maximum",
            BoundKind::ExclusiveMinimum => "exclusiveMinimum",
            BoundKind::ExclusiveMaximum => "exclusiveMaximum",
        }
    }

    fn describe(&self) -> String {
        let text = truncate_cell(&self.text);
        match self.kind {
            BoundKind::Minimum => format!("is below the minimum {text}"),
            BoundKind::Maximum => format!("is above the maximum {text}"),
            BoundKind::ExclusiveMinimum => format!("is not above the exclusive minimum {text}"),
            BoundKind::ExclusiveMaximum => format!("is not below the exclusive maximum {text}"),
        }
    }
}

/// A compiled `enum`: the canonical bytes of each allowed value, sorted for binary search.
#[derive(Debug, Clone)]
pub struct EnumValues {
    pub canonical: Vec<Vec<u8>>,
    /// The allowed values as the schema lists them, for messages.
    pub listed: Vec<String>,
}

impl EnumValues {
    /// A short list is scanned, comparing lengths first; a long one is binary searched.
    #[inline]
    fn contains(&self, canonical: &[u8]) -> bool {
        if self.canonical.len() <= 8 {
            return self.canonical.iter().any(|c| short_eq(c, canonical));
        }
        self.canonical
            .binary_search_by(|c| c.as_slice().cmp(canonical))
            .is_ok()
    }

    fn contains_value(&self, value: &Value<'_>) -> bool {
        match value {
            // Text is its own canonical form: no copy on the hot path.
            Value::Text(text) => self.contains(text.as_bytes()),
            other => {
                let mut bytes = Vec::with_capacity(16);
                other.canonical_bytes(&mut bytes);
                self.contains(&bytes)
            }
        }
    }
}

/// Equality of short byte strings (enum values, cells) without a `memcmp` call, which costs
/// more than the comparison itself at these lengths.
#[inline]
pub(crate) fn short_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

#[derive(Debug, Clone, Default)]
pub struct Constraints {
    pub required: bool,
    pub unique: bool,
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
    /// In the order minimum, maximum, exclusiveMinimum, exclusiveMaximum.
    pub bounds: Vec<Bound>,
    pub pattern: Option<Pattern>,
    pub enum_values: Option<EnumValues>,
}

/// One failed constraint. What is wrong is put in words only on demand
/// ([`Constraints::describe`]): most failures are only counted, and the words for an `enum` of
/// thousands of values cost more than the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConstraintFailure {
    pub constraint: &'static str,
    broken: Broken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Broken {
    Length(Length),
    Bound(BoundKind),
    Pattern,
    Enum,
}

/// How much of an `enum` list a message shows.
const LISTED_IN_MESSAGE: usize = 10;

impl Constraints {
    pub(super) fn parse(
        name: &str,
        field_type: &FieldType,
        raw: &Map<String, Json>,
        budget: &mut Budget,
    ) -> Result<Constraints, SchemaError> {
        let mut c = Constraints::default();
        for (key, value) in raw {
            let error =
                |what: String| SchemaError::field(name, format!("constraint '{key}' {what}"));
            let applies = match key.as_str() {
                "required" | "unique" | "enum" => true,
                "minLength" | "maxLength" | "pattern" => field_type.has_length(),
                "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" => {
                    field_type.is_ordered()
                }
                _ => return Err(error("is not supported".into())),
            };
            if !applies {
                return Err(error(format!(
                    "does not apply to type '{}'",
                    field_type.name()
                )));
            }
            match key.as_str() {
                "required" => {
                    c.required = value
                        .as_bool()
                        .ok_or_else(|| error("must be true or false".into()))?
                }
                "unique" => {
                    c.unique = value
                        .as_bool()
                        .ok_or_else(|| error("must be true or false".into()))?
                }
                "minLength" | "maxLength" => {
                    let n = value
                        .as_u64()
                        .ok_or_else(|| error("must be a whole number from 0".into()))?
                        as usize;
                    if key == "minLength" {
                        c.min_length = Some(n)
                    } else {
                        c.max_length = Some(n)
                    }
                }
                "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" => {
                    let kind = match key.as_str() {
                        "minimum" => BoundKind::Minimum,
                        "maximum" => BoundKind::Maximum,
                        "exclusiveMinimum" => BoundKind::ExclusiveMinimum,
                        _ => BoundKind::ExclusiveMaximum,
                    };
                    c.bounds
                        .push(parse_bound(kind, field_type, value).map_err(error)?);
                }
                "pattern" => {
                    let source = value
                        .as_str()
                        .ok_or_else(|| error("must be a string".into()))?;
                    budget
                        .add_pattern()
                        .map_err(|e| SchemaError::field(name, e))?;
                    let pattern = Pattern::new(source, budget).map_err(error)?;
                    c.pattern = Some(pattern);
                }
                "enum" => {
                    let items = value
                        .as_array()
                        .ok_or_else(|| error("must be an array".into()))?;
                    budget
                        .add_enum_values(items.len())
                        .map_err(|e| SchemaError::field(name, e))?;
                    let mut canonical = Vec::new();
                    let mut listed = Vec::new();
                    for item in items {
                        let text = json_as_cell(item).ok_or_else(|| {
                            let item = truncate_cell(&item.to_string());
                            error(format!("holds {item}, which is not a plain value"))
                        })?;
                        let parsed = field_type.parse(&text).ok_or_else(|| {
                            error(format!(
                                "holds '{}', which is not {}",
                                truncate_cell(&text),
                                field_type.with_article()
                            ))
                        })?;
                        let mut bytes = Vec::new();
                        parsed.canonical_bytes(&mut bytes);
                        canonical.push(bytes);
                        listed.push(text);
                    }
                    canonical.sort_unstable();
                    canonical.dedup();
                    c.enum_values = Some(EnumValues { canonical, listed });
                }
                _ => unreachable!("filtered above"),
            }
        }
        c.bounds.sort_by_key(|b| b.kind);
        if let (Some(min), Some(max)) = (c.min_length, c.max_length) {
            if min > max {
                return Err(SchemaError::field(
                    name,
                    "constraint 'minLength' is greater than 'maxLength'",
                ));
            }
        }
        Ok(c)
    }

    /// Whether `value` (from the text `cell`) meets every constraint other than required and
    /// unique, which the validator owns. The per-cell path: no allocation, no message;
    /// [`Constraints::check`] says what failed, and they must agree.
    #[inline]
    pub fn passes(&self, value: &Value<'_>, cell: &str) -> bool {
        self.length_failure(cell.as_bytes()).is_none()
            && !self.bounds.iter().any(|bound| bound.broken_by(value))
            && self.pattern.as_ref().is_none_or(|p| p.is_match(cell))
            && self
                .enum_values
                .as_ref()
                .is_none_or(|e| e.contains_value(value))
    }

    /// [`Constraints::passes`] for text known to be UTF-8, in a field without bounds (text
    /// has no order): the validator's fast path for strings. Keep the two in step.
    #[inline]
    pub fn passes_text(&self, cell: &[u8]) -> bool {
        debug_assert!(self.bounds.is_empty());
        self.length_failure(cell).is_none()
            && self.pattern.as_ref().is_none_or(|p| p.is_match_utf8(cell))
            && self.enum_values.as_ref().is_none_or(|e| e.contains(cell))
    }

    /// Every constraint (other than required and unique) that `value` breaks; `cell` is the
    /// text it came from. [`Constraints::describe`] puts one in words.
    pub fn check(&self, value: &Value<'_>, cell: &str, failures: &mut Vec<ConstraintFailure>) {
        match self.length_failure(cell.as_bytes()) {
            Some(length @ Length::Short(..)) => {
                failures.push(fail("minLength", Broken::Length(length)))
            }
            Some(length @ Length::Long(..)) => {
                failures.push(fail("maxLength", Broken::Length(length)))
            }
            None => {}
        }
        for bound in &self.bounds {
            if bound.broken_by(value) {
                failures.push(fail(bound.constraint(), Broken::Bound(bound.kind)));
            }
        }
        if let Some(pattern) = &self.pattern {
            if !pattern.is_match(cell) {
                failures.push(fail("pattern", Broken::Pattern));
            }
        }
        if let Some(allowed) = &self.enum_values {
            if !allowed.contains_value(value) {
                failures.push(fail("enum", Broken::Enum));
            }
        }
    }

    /// What is wrong, in words, with every text from the schema cut to a few hundred
    /// characters: a message never grows with the schema.
    pub fn describe(&self, failure: &ConstraintFailure) -> String {
        match failure.broken {
            Broken::Length(Length::Short(length, min)) => {
                format!("is {length} characters long, shorter than the minimum length {min}")
            }
            Broken::Length(Length::Long(length, max)) => {
                format!("is {length} characters long, longer than the maximum length {max}")
            }
            Broken::Bound(kind) => self
                .bounds
                .iter()
                .find(|bound| bound.kind == kind)
                .map(Bound::describe)
                .unwrap_or_default(),
            Broken::Pattern => {
                let source = self.pattern.as_ref().map(|p| p.source.as_str());
                format!(
                    "does not match the pattern '{}'",
                    truncate_cell(source.unwrap_or_default())
                )
            }
            Broken::Enum => {
                let listed = self.enum_values.as_ref().map_or(&[][..], |e| &e.listed[..]);
                let shown: Vec<&str> = listed
                    .iter()
                    .take(LISTED_IN_MESSAGE)
                    .map(String::as_str)
                    .collect();
                let shown = truncate_cell(&shown.join(", "));
                if listed.len() > LISTED_IN_MESSAGE {
                    format!(
                        "is not one of the {} allowed values ({shown}, …)",
                        listed.len()
                    )
                } else {
                    format!("is not one of {shown}")
                }
            }
        }
    }

    /// A length outside minLength..=maxLength, in characters, of UTF-8 text.
    #[inline]
    fn length_failure(&self, cell: &[u8]) -> Option<Length> {
        // A cell has between len/4 and len characters: count them only when that range
        // straddles a bound.
        let bytes = cell.len();
        let undecided = self.min_length.is_some_and(|min| bytes / 4 < min)
            || self.max_length.is_some_and(|max| bytes > max);
        if !undecided {
            return None;
        }
        // Each character has one byte that is not a continuation byte (10xxxxxx).
        let length = cell.iter().filter(|&&b| (b as i8) >= -0x40).count();
        match (self.min_length, self.max_length) {
            (Some(min), _) if length < min => Some(Length::Short(length, min)),
            (_, Some(max)) if length > max => Some(Length::Long(length, max)),
            _ => None,
        }
    }

    /// The maximum length, when it is the only check on the value (not counting required and
    /// unique).
    pub fn only_max_length(&self) -> Option<usize> {
        let only = self.min_length.is_none()
            && self.bounds.is_empty()
            && self.pattern.is_none()
            && self.enum_values.is_none();
        self.max_length.filter(|_| only)
    }

    pub fn has_value_checks(&self) -> bool {
        self.min_length.is_some()
            || self.max_length.is_some()
            || !self.bounds.is_empty()
            || self.pattern.is_some()
            || self.enum_values.is_some()
    }
}

/// A broken length constraint: the cell's length and the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Length {
    Short(usize, usize),
    Long(usize, usize),
}

fn fail(constraint: &'static str, broken: Broken) -> ConstraintFailure {
    ConstraintFailure { constraint, broken }
}

/// A JSON scalar as the cell text it stands for.
fn json_as_cell(value: &Json) -> Option<String> {
    match value {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn parse_bound(kind: BoundKind, field_type: &FieldType, value: &Json) -> Result<Bound, String> {
    let text = json_as_cell(value)
        .ok_or_else(|| format!("must be a value of type '{}'", field_type.name()))?;
    // Bounds in JSON are plain numbers, whatever decimalChar or groupChar the cells use.
    let parsed = match (field_type, value) {
        (FieldType::Integer(_), Json::Number(n)) => n
            .as_i64()
            .map(|i| Value::Integer(i as i128))
            .or_else(|| n.as_f64().map(Value::Number)),
        (FieldType::Number(_), Json::Number(n)) => n.as_f64().map(Value::Number),
        _ => field_type.parse(&text).map(into_static),
    };
    let value =
        parsed.ok_or_else(|| format!("is '{text}', which is not {}", field_type.with_article()))?;
    Ok(Bound { kind, value, text })
}

/// Ordered values never borrow text, so they can outlive the schema JSON.
fn into_static(value: Value<'_>) -> Value<'static> {
    match value {
        Value::Text(_) => unreachable!("bounds only exist for ordered types"),
        Value::Integer(v) => Value::Integer(v),
        Value::Number(v) => Value::Number(v),
        Value::Boolean(v) => Value::Boolean(v),
        Value::Date(v) => Value::Date(v),
        Value::Time(v) => Value::Time(v),
        Value::DateTime(v) => Value::DateTime(v),
        Value::Year(v) => Value::Year(v),
        Value::YearMonth(y, m) => Value::YearMonth(y, m),
        Value::Duration(v) => Value::Duration(v),
    }
}

#[cfg(test)]
mod tests {
    use crate::schema::Schema;

    fn failures(field_json: &str, cell: &str) -> Vec<&'static str> {
        let schema = Schema::from_json(&format!(r#"{{"fields": [{field_json}]}}"#)).unwrap();
        let field = &schema.fields[0];
        let value = field.field_type.parse(cell).expect("cell parses");
        let mut out = Vec::new();
        field.constraints.check(&value, cell, &mut out);
        assert_eq!(
            field.constraints.passes(&value, cell),
            out.is_empty(),
            "the fast path and the detailed check agree on {cell:?} for {field_json}"
        );
        out.into_iter().map(|f| f.constraint).collect()
    }

    #[test]
    fn each_constraint_fails_and_passes() {
        let int =
            r#"{"name": "n", "type": "integer", "constraints": {"minimum": 1, "maximum": 10}}"#;
        assert_eq!(failures(int, "0"), ["minimum"]);
        assert_eq!(failures(int, "11"), ["maximum"]);
        assert!(failures(int, "10").is_empty());
        let exclusive = r#"{"name": "n", "type": "number", "constraints": {"exclusiveMinimum": 0, "exclusiveMaximum": 1}}"#;
        assert_eq!(failures(exclusive, "0"), ["exclusiveMinimum"]);
        assert_eq!(failures(exclusive, "1"), ["exclusiveMaximum"]);
        assert!(failures(exclusive, "0.5").is_empty());
        let text = r#"{"name": "s", "constraints": {"minLength": 2, "maxLength": 3, "pattern": "[a-z]+"}}"#;
        assert_eq!(failures(text, "a"), ["minLength"]);
        assert_eq!(failures(text, "abcd"), ["maxLength"]);
        assert_eq!(failures(text, "ab1"), ["pattern"]);
        let short = r#"{"name": "s", "constraints": {"maxLength": 2}}"#;
        assert!(
            failures(short, "éé").is_empty(),
            "lengths count characters, not bytes"
        );
        let choice = r#"{"name": "c", "type": "integer", "constraints": {"enum": [1, 2, "3"]}}"#;
        assert!(
            failures(choice, "03").is_empty(),
            "enum compares values, not text"
        );
        assert_eq!(failures(choice, "4"), ["enum"]);
        let date = r#"{"name": "d", "type": "date", "constraints": {"minimum": "2020-01-01"}}"#;
        assert_eq!(failures(date, "2019-12-31"), ["minimum"]);
        assert!(failures(date, "2020-01-01").is_empty());
        let all_bounds = r#"{"name": "n", "type": "number", "constraints": {"exclusiveMaximum": 5, "maximum": 4, "exclusiveMinimum": 1, "minimum": 2}}"#;
        assert_eq!(failures(all_bounds, "1"), ["minimum", "exclusiveMinimum"]);
        assert_eq!(failures(all_bounds, "5"), ["maximum", "exclusiveMaximum"]);
        assert_eq!(
            failures(all_bounds, "NaN"),
            ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"]
        );
        assert!(failures(all_bounds, "3").is_empty());
        let many = r#"{"name": "c", "constraints": {"enum": ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]}}"#;
        assert!(failures(many, "j").is_empty(), "long lists are searched");
        assert_eq!(failures(many, "k"), ["enum"]);
    }

    #[test]
    fn pattern_matches_the_whole_value() {
        let field = r#"{"name": "s", "constraints": {"pattern": "a|b"}}"#;
        assert!(failures(field, "a").is_empty());
        assert_eq!(failures(field, "ab"), ["pattern"]);
    }

    #[test]
    fn bad_constraint_values_are_schema_errors() {
        let error = |c: &str| {
            Schema::from_json(&format!(
                r#"{{"fields": [{{"name": "f", "type": "integer", "constraints": {c}}}]}}"#
            ))
            .unwrap_err()
            .message
        };
        assert_eq!(
            error(r#"{"minimum": "x"}"#),
            "field 'f': constraint 'minimum' is 'x', which is not an integer"
        );
        assert_eq!(
            error(r#"{"enum": ["a"]}"#),
            "field 'f': constraint 'enum' holds 'a', which is not an integer"
        );
        assert_eq!(
            error(r#"{"minLength": 1}"#),
            "field 'f': constraint 'minLength' does not apply to type 'integer'"
        );
        let bad_regex =
            Schema::from_json(r#"{"fields": [{"name": "f", "constraints": {"pattern": "("}}]}"#)
                .unwrap_err();
        assert!(bad_regex
            .message
            .starts_with("field 'f': constraint 'pattern' is not a valid regular expression"));
    }
}
