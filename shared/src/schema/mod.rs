//! The Frictionless Table Schema model, loaded from JSON and checked once at load time.
//!
//! Anything a schema asks for that we cannot check (an unknown type, format or constraint,
//! foreign keys) is a [`SchemaError`] naming the field and the property: a schema is never
//! half-applied.

mod compiled;
mod constraints;
pub mod limits;
mod pattern;
pub mod types;

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value as Json};

pub(crate) use constraints::short_eq;
pub use constraints::{Bound, BoundKind, ConstraintFailure, Constraints};
use types::{check_pattern, FieldType, NumberFormat, StringFormat, TemporalFormat};

/// Why a schema (or dialect) cannot be used, in words a schema author can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SchemaError {
    pub message: String,
}

impl SchemaError {
    pub fn new(message: impl Into<String>) -> Self {
        SchemaError {
            message: message.into(),
        }
    }

    fn field(name: &str, message: impl fmt::Display) -> Self {
        SchemaError::new(format!("field '{name}': {message}"))
    }
}

/// How the header's labels must relate to the schema's fields (Table Schema `fieldsMatch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldsMatch {
    /// Same fields, same order.
    #[default]
    Exact,
    /// Same fields, any order.
    Equal,
    /// The data has every schema field, and may have more.
    Subset,
    /// Every data column is a schema field; schema fields may be absent.
    Superset,
    /// At least one data column is a schema field.
    Partial,
}

impl FieldsMatch {
    pub fn name(self) -> &'static str {
        match self {
            FieldsMatch::Exact => "exact",
            FieldsMatch::Equal => "equal",
            FieldsMatch::Subset => "subset",
            FieldsMatch::Superset => "superset",
            FieldsMatch::Partial => "partial",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub field_type: FieldType,
    /// Cells that mean "no value": the field's own list, else the schema's.
    pub missing_values: MissingValues,
    pub constraints: Constraints,
}

impl Field {
    pub fn is_missing(&self, cell: &str) -> bool {
        self.missing_values.contains(cell)
    }
}

/// A `missingValues` list. Fields without their own list share the schema's: a long list
/// copied into thousands of fields once cost gigabytes.
#[derive(Debug, Clone)]
pub struct MissingValues(Arc<MissingSet>);

#[derive(Debug)]
struct MissingSet {
    values: Vec<String>,
    /// For long lists: a cell is looked up, not compared with every entry.
    lookup: Option<HashSet<String>>,
}

impl MissingValues {
    /// Past this many entries a hash lookup beats comparing with each.
    const SCAN_UP_TO: usize = 8;

    pub fn new(values: Vec<String>) -> MissingValues {
        let lookup = (values.len() > Self::SCAN_UP_TO).then(|| values.iter().cloned().collect());
        MissingValues(Arc::new(MissingSet { values, lookup }))
    }

    pub fn contains(&self, cell: &str) -> bool {
        match &self.0.lookup {
            Some(lookup) => lookup.contains(cell),
            None => self.0.values.iter().any(|m| m == cell),
        }
    }

    pub fn values(&self) -> &[String] {
        &self.0.values
    }

    /// The standard's default: only the empty cell is missing.
    pub fn is_only_empty(&self) -> bool {
        self.0.values == [""]
    }

    /// Whether two fields share one list (not a copy of it).
    pub fn is_shared_with(&self, other: &MissingValues) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Default for MissingValues {
    fn default() -> Self {
        MissingValues::new(vec![String::new()])
    }
}

#[derive(Debug, Clone, Default)]
pub struct Schema {
    pub fields: Vec<Field>,
    pub missing_values: MissingValues,
    /// Field indexes of the primary key (empty: none).
    pub primary_key: Vec<usize>,
    /// Field indexes of each unique key.
    pub unique_keys: Vec<Vec<usize>>,
    pub fields_match: FieldsMatch,
    /// See [`Schema::compiled_bytes`].
    compiled_bytes: usize,
}

impl Schema {
    /// A schema with no fields: only structural checks run.
    pub fn structural_only() -> Schema {
        Schema::default()
    }

    pub fn from_json(text: &str) -> Result<Schema, SchemaError> {
        let value: Json = serde_json::from_str(text)
            .map_err(|e| SchemaError::new(format!("schema is not valid JSON: {e}")))?;
        match value {
            Json::Object(map) => Schema::from_map(&map),
            _ => Err(SchemaError::new("schema must be a JSON object")),
        }
    }

    pub fn from_map(map: &Map<String, Json>) -> Result<Schema, SchemaError> {
        Schema::from_map_within(map, limits::Budget::default())
    }

    /// As the browser loads a schema: its patterns get no DFA of their own, only those
    /// loaded with [`Schema::load_compiled_patterns`].
    #[cfg(all(test, not(target_arch = "wasm32")))]
    pub(crate) fn from_json_without_dfas(text: &str) -> Schema {
        let map: Map<String, Json> = serde_json::from_str(text).unwrap();
        Schema::from_map_within(&map, limits::Budget::without_dfas()).unwrap()
    }

    fn from_map_within(
        map: &Map<String, Json>,
        mut budget: limits::Budget,
    ) -> Result<Schema, SchemaError> {
        if map.contains_key("foreignKeys") {
            return Err(SchemaError::new("'foreignKeys' is not supported"));
        }
        let missing_values = match map.get("missingValues") {
            Some(value) => MissingValues::new(
                bounded_string_list(value, "missingValues").map_err(SchemaError::new)?,
            ),
            None => MissingValues::default(),
        };
        let fields_match = match map.get("fieldsMatch").map(|v| v.as_str()) {
            None => FieldsMatch::Exact,
            Some(Some("exact")) => FieldsMatch::Exact,
            Some(Some("equal")) => FieldsMatch::Equal,
            Some(Some("subset")) => FieldsMatch::Subset,
            Some(Some("superset")) => FieldsMatch::Superset,
            Some(Some("partial")) => FieldsMatch::Partial,
            Some(_) => {
                return Err(SchemaError::new(
                    "'fieldsMatch' must be one of exact, equal, subset, superset, partial",
                ))
            }
        };
        let raw_fields = match map.get("fields") {
            // Required by the standard. Accepting its absence would let any JSON object (an
            // error response, a data package) pass for a schema and check structure only.
            None => {
                return Err(SchemaError::new(
                    "'fields' is missing: a Table Schema lists its fields (\"fields\": [] checks the structure only)",
                ))
            }
            Some(Json::Array(fields)) => fields,
            Some(_) => return Err(SchemaError::new("'fields' must be an array")),
        };
        if raw_fields.len() > limits::MAX_FIELDS {
            return Err(SchemaError::new(format!(
                "the schema has {} fields; at most {} are allowed",
                raw_fields.len(),
                limits::MAX_FIELDS
            )));
        }
        let mut fields = Vec::with_capacity(raw_fields.len());
        let mut names = HashSet::new();
        for (i, raw) in raw_fields.iter().enumerate() {
            let field = parse_field(raw, i, &missing_values, &mut budget)?;
            if !names.insert(field.name.clone()) {
                return Err(SchemaError::field(&field.name, "is defined twice"));
            }
            fields.push(field);
        }
        let primary_key = match map.get("primaryKey") {
            None => Vec::new(),
            Some(value) => key_indexes(value, &fields, "primaryKey")?,
        };
        // A primary key implies its fields are required (uniqueness is the key's own check).
        for index in &primary_key {
            fields[*index].constraints.required = true;
        }
        let unique_keys = match map.get("uniqueKeys") {
            None => Vec::new(),
            Some(Json::Array(keys)) => keys
                .iter()
                .map(|key| key_indexes(key, &fields, "uniqueKeys"))
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(SchemaError::new(
                    "'uniqueKeys' must be an array of field lists",
                ))
            }
        };
        Ok(Schema {
            fields,
            missing_values,
            primary_key,
            unique_keys,
            fields_match,
            compiled_bytes: budget.compiled_bytes(),
        })
    }

    /// Memory the schema's compiled patterns (regexes and DFAs) took, within
    /// [`limits::MAX_COMPILED_BYTES`] + [`limits::MAX_DFA_BYTES`]. Zero in the browser.
    pub fn compiled_bytes(&self) -> usize {
        self.compiled_bytes
    }

    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }
}

/// `"id"` or `["a", "b"]` → field indexes.
fn key_indexes(value: &Json, fields: &[Field], property: &str) -> Result<Vec<usize>, SchemaError> {
    let names = match value {
        Json::String(name) => vec![name.clone()],
        other => string_list(other)
            .ok_or_else(|| SchemaError::new(format!("'{property}' must name fields")))?,
    };
    if names.is_empty() {
        return Err(SchemaError::new(format!(
            "'{property}' must name at least one field"
        )));
    }
    names
        .iter()
        .map(|name| {
            fields.iter().position(|f| &f.name == name).ok_or_else(|| {
                SchemaError::new(format!("'{property}' names '{name}', which is not a field"))
            })
        })
        .collect()
}

fn string_list(value: &Json) -> Option<Vec<String>> {
    value
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// An array of strings within [`limits::MAX_LIST_VALUES`], or why not.
fn bounded_string_list(value: &Json, property: &str) -> Result<Vec<String>, String> {
    let list =
        string_list(value).ok_or_else(|| format!("'{property}' must be an array of strings"))?;
    limits::check_list(list.len(), property)?;
    Ok(list)
}

fn parse_field(
    raw: &Json,
    position: usize,
    schema_missing: &MissingValues,
    budget: &mut limits::Budget,
) -> Result<Field, SchemaError> {
    let map = raw
        .as_object()
        .ok_or_else(|| SchemaError::new(format!("field {} must be a JSON object", position + 1)))?;
    let name = match map.get("name") {
        Some(Json::String(name)) if !name.is_empty() => name.clone(),
        _ => {
            return Err(SchemaError::new(format!(
                "field {} needs a non-empty 'name'",
                position + 1
            )))
        }
    };
    limits::check_chars(&name, limits::MAX_NAME_CHARS, "name")
        .map_err(|e| SchemaError::new(format!("field {}: {e}", position + 1)))?;
    let text = |key: &str| -> Result<Option<String>, SchemaError> {
        let limit = match key {
            "title" | "description" => limits::MAX_TEXT_CHARS,
            _ => limits::MAX_NAME_CHARS,
        };
        match map.get(key) {
            None => Ok(None),
            Some(Json::String(s)) => {
                limits::check_chars(s, limit, key).map_err(|e| SchemaError::field(&name, e))?;
                Ok(Some(s.clone()))
            }
            Some(_) => Err(SchemaError::field(
                &name,
                format!("'{key}' must be a string"),
            )),
        }
    };
    let title = text("title")?;
    let description = text("description")?;
    let type_name = text("type")?.unwrap_or_else(|| "string".to_owned());
    let format = text("format")?.unwrap_or_else(|| "default".to_owned());
    let field_type = parse_type(&name, &type_name, &format, map)?;
    let missing_values = match map.get("missingValues") {
        Some(value) => MissingValues::new(
            bounded_string_list(value, "missingValues")
                .map_err(|e| SchemaError::field(&name, e))?,
        ),
        None => schema_missing.clone(),
    };
    let constraints = match map.get("constraints") {
        None => Constraints::default(),
        Some(Json::Object(raw)) => Constraints::parse(&name, &field_type, raw, budget)?,
        Some(_) => return Err(SchemaError::field(&name, "'constraints' must be an object")),
    };
    Ok(Field {
        name,
        title,
        description,
        field_type,
        missing_values,
        constraints,
    })
}

fn parse_type(
    name: &str,
    type_name: &str,
    format: &str,
    map: &Map<String, Json>,
) -> Result<FieldType, SchemaError> {
    let unsupported_format = || {
        SchemaError::field(
            name,
            format!("format '{format}' is not supported for type '{type_name}'"),
        )
    };
    let only_default = |t: FieldType| {
        if format == "default" {
            Ok(t)
        } else {
            Err(unsupported_format())
        }
    };
    let temporal = || -> Result<TemporalFormat, SchemaError> {
        match format {
            "default" => Ok(TemporalFormat::Iso),
            "any" => Err(SchemaError::field(
                name,
                "format 'any' (guessing the date layout) is not supported: give a pattern such as '%d/%m/%Y'",
            )),
            pattern => {
                // Frictionless v0 wrote patterns as "fmt:%d/%m/%Y".
                let pattern = pattern.strip_prefix("fmt:").unwrap_or(pattern);
                check_pattern(pattern).map_err(|e| SchemaError::field(name, format!("format {e}")))?;
                Ok(TemporalFormat::Pattern(pattern.to_owned()))
            }
        }
    };
    match type_name {
        "string" => Ok(FieldType::String(match format {
            "default" => StringFormat::Default,
            "email" => StringFormat::Email,
            "uri" => StringFormat::Uri,
            "uuid" => StringFormat::Uuid,
            _ => return Err(unsupported_format()),
        })),
        "integer" => only_default(FieldType::Integer(number_format(name, map, false)?)),
        "number" => only_default(FieldType::Number(number_format(name, map, true)?)),
        "boolean" => {
            let values = |key: &str, defaults: &[&str]| match map.get(key) {
                None => Ok(defaults.iter().map(|s| s.to_string()).collect()),
                Some(v) => bounded_string_list(v, key).map_err(|e| SchemaError::field(name, e)),
            };
            only_default(FieldType::Boolean {
                true_values: values("trueValues", &["true", "True", "TRUE", "1"])?,
                false_values: values("falseValues", &["false", "False", "FALSE", "0"])?,
            })
        }
        "date" => Ok(FieldType::Date(temporal()?)),
        "time" => Ok(FieldType::Time(temporal()?)),
        "datetime" => Ok(FieldType::DateTime(temporal()?)),
        "year" => only_default(FieldType::Year),
        "yearmonth" => only_default(FieldType::YearMonth),
        "duration" => only_default(FieldType::Duration),
        "any" => Ok(FieldType::Any),
        "object" | "array" | "list" | "geopoint" | "geojson" => Err(SchemaError::field(
            name,
            format!("type '{type_name}' is not supported"),
        )),
        other => Err(SchemaError::field(
            name,
            format!("'{other}' is not a Table Schema type"),
        )),
    }
}

fn number_format(
    name: &str,
    map: &Map<String, Json>,
    allow_decimal: bool,
) -> Result<NumberFormat, SchemaError> {
    let mut format = NumberFormat::default();
    let single_char = |key: &str| -> Result<Option<char>, SchemaError> {
        match map.get(key) {
            None => Ok(None),
            Some(Json::String(s)) if s.chars().count() == 1 => Ok(s.chars().next()),
            Some(Json::String(s)) if s.is_empty() && key == "groupChar" => Ok(None),
            Some(_) => Err(SchemaError::field(
                name,
                format!("'{key}' must be a single character"),
            )),
        }
    };
    if let Some(c) = single_char("decimalChar")? {
        if !allow_decimal {
            return Err(SchemaError::field(
                name,
                "'decimalChar' does not apply to integers",
            ));
        }
        format.decimal_char = c;
    }
    format.group_char = single_char("groupChar")?;
    if let Some(value) = map.get("bareNumber") {
        format.bare_number = value
            .as_bool()
            .ok_or_else(|| SchemaError::field(name, "'bareNumber' must be true or false"))?;
    }
    if format.group_char == Some(format.decimal_char) {
        return Err(SchemaError::field(
            name,
            "'groupChar' and 'decimalChar' must differ",
        ));
    }
    Ok(format)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(json: &str) -> String {
        Schema::from_json(json).unwrap_err().message
    }

    #[test]
    fn loads_a_full_schema() {
        let schema = Schema::from_json(
            r#"{
              "fields": [
                {"name": "id", "type": "integer"},
                {"name": "email", "type": "string", "format": "email", "constraints": {"required": true}},
                {"name": "born", "type": "date", "format": "%d/%m/%Y", "missingValues": ["n/a"]}
              ],
              "missingValues": ["", "NA"],
              "primaryKey": "id",
              "uniqueKeys": [["email", "born"]],
              "fieldsMatch": "subset"
            }"#,
        )
        .unwrap();
        assert_eq!(schema.fields.len(), 3);
        assert_eq!(schema.primary_key, vec![0]);
        assert!(
            schema.fields[0].constraints.required,
            "a primary key implies required"
        );
        assert_eq!(schema.unique_keys, vec![vec![1, 2]]);
        assert_eq!(schema.fields_match, FieldsMatch::Subset);
        assert_eq!(schema.fields[1].missing_values.values(), ["", "NA"]);
        assert_eq!(schema.fields[2].missing_values.values(), ["n/a"]);
    }

    #[test]
    fn field_type_defaults_to_string() {
        let schema = Schema::from_json(r#"{"fields": [{"name": "x"}]}"#).unwrap();
        assert_eq!(
            schema.fields[0].field_type,
            FieldType::String(StringFormat::Default)
        );
        assert_eq!(schema.missing_values.values(), [""]);
    }

    #[test]
    fn unsupported_things_are_errors_naming_field_and_property() {
        assert_eq!(
            error_of(r#"{"fields": [{"name": "a", "type": "geojson"}]}"#),
            "field 'a': type 'geojson' is not supported"
        );
        assert_eq!(
            error_of(r#"{"fields": [{"name": "a", "type": "strin"}]}"#),
            "field 'a': 'strin' is not a Table Schema type"
        );
        assert_eq!(
            error_of(r#"{"fields": [{"name": "a", "format": "binary"}]}"#),
            "field 'a': format 'binary' is not supported for type 'string'"
        );
        assert!(
            error_of(r#"{"fields": [{"name": "d", "type": "date", "format": "any"}]}"#)
                .starts_with("field 'd': format 'any'")
        );
        assert!(
            error_of(r#"{"fields": [{"name": "d", "type": "date", "format": "dd/mm"}]}"#)
                .starts_with("field 'd': format")
        );
        assert_eq!(
            error_of(r#"{"fields": [{"name": "a", "constraints": {"maxLenght": 3}}]}"#),
            "field 'a': constraint 'maxLenght' is not supported"
        );
        assert_eq!(
            error_of(
                r#"{"fields": [{"name": "a", "type": "integer", "constraints": {"pattern": "1+"}}]}"#
            ),
            "field 'a': constraint 'pattern' does not apply to type 'integer'"
        );
        assert_eq!(
            error_of(r#"{"fields": [], "foreignKeys": []}"#),
            "'foreignKeys' is not supported"
        );
        assert_eq!(
            error_of(r#"{"fields": [{"name": "a"}], "primaryKey": "b"}"#),
            "'primaryKey' names 'b', which is not a field"
        );
        assert_eq!(
            error_of(r#"{"fields": [{"name": "a"}, {"name": "a"}]}"#),
            "field 'a': is defined twice"
        );
        assert_eq!(
            error_of(r#"{"fields": [{"type": "string"}]}"#),
            "field 1 needs a non-empty 'name'"
        );
        assert!(error_of("[1]").contains("JSON object"));
        assert!(error_of("{").contains("not valid JSON"));
    }

    #[test]
    fn empty_fields_mean_structural_checks_only_and_missing_fields_are_refused() {
        let schema = Schema::from_json(r#"{"fields": []}"#).unwrap();
        assert!(schema.fields.is_empty());
        assert!(error_of("{}").contains("'fields' is missing"));
        assert!(
            error_of(r#"{"code": "unauthenticated", "message": "no session"}"#)
                .contains("'fields' is missing")
        );
    }
}
