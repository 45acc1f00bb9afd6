//! CSV dialect, from Frictionless Table Dialect JSON.

use serde_json::{Map, Value};

use crate::schema::SchemaError;

/// How the CSV bytes are laid out. Line ends are not configurable: `\n`, `\r\n` and `\r` are
/// all accepted, as real-world files mix them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialect {
    /// False when the file has no header row: fields are then matched by position.
    pub header: bool,
    /// 1-based row numbers holding the header; several rows are joined with a space.
    pub header_rows: Vec<u64>,
    pub delimiter: u8,
    pub quote_char: Option<u8>,
    pub double_quote: bool,
    pub escape_char: Option<u8>,
    /// Spaces right after a delimiter are dropped (only in front of unquoted cells).
    pub skip_initial_space: bool,
    /// Lines starting with this byte are skipped and do not count as rows.
    pub comment_char: Option<u8>,
}

impl Default for Dialect {
    fn default() -> Self {
        Dialect {
            header: true,
            header_rows: vec![1],
            delimiter: b',',
            quote_char: Some(b'"'),
            double_quote: true,
            escape_char: None,
            skip_initial_space: false,
            comment_char: None,
        }
    }
}

impl Dialect {
    /// Parse Table Dialect JSON. Unknown properties that would change parsing are errors.
    pub fn from_json(text: &str) -> Result<Dialect, SchemaError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| SchemaError::new(format!("dialect is not valid JSON: {e}")))?;
        match value {
            Value::Object(map) => Dialect::from_map(&map),
            _ => Err(SchemaError::new("dialect must be a JSON object")),
        }
    }

    pub fn from_map(map: &Map<String, Value>) -> Result<Dialect, SchemaError> {
        let mut dialect = Dialect::default();
        for (key, value) in map {
            let bad = |what: &str| SchemaError::new(format!("dialect property '{key}' {what}"));
            match key.as_str() {
                "header" => {
                    dialect.header = value
                        .as_bool()
                        .ok_or_else(|| bad("must be true or false"))?
                }
                "headerRows" => {
                    let rows = value
                        .as_array()
                        .ok_or_else(|| bad("must be an array of row numbers"))?;
                    dialect.header_rows = rows
                        .iter()
                        .map(|row| {
                            row.as_u64()
                                .filter(|n| *n >= 1)
                                .ok_or_else(|| bad("must hold row numbers from 1"))
                        })
                        .collect::<Result<_, _>>()?;
                    dialect.header_rows.sort_unstable();
                    dialect.header_rows.dedup();
                    if dialect.header_rows.is_empty() {
                        return Err(bad("must not be empty (use \"header\": false)"));
                    }
                }
                "delimiter" => {
                    dialect.delimiter =
                        single_ascii(value).ok_or_else(|| bad("must be one ASCII character"))?
                }
                "quoteChar" => {
                    dialect.quote_char = Some(
                        single_ascii(value).ok_or_else(|| bad("must be one ASCII character"))?,
                    )
                }
                "doubleQuote" => {
                    dialect.double_quote = value
                        .as_bool()
                        .ok_or_else(|| bad("must be true or false"))?
                }
                "escapeChar" => {
                    dialect.escape_char = Some(
                        single_ascii(value).ok_or_else(|| bad("must be one ASCII character"))?,
                    )
                }
                "skipInitialSpace" => {
                    dialect.skip_initial_space = value
                        .as_bool()
                        .ok_or_else(|| bad("must be true or false"))?
                }
                "commentChar" => {
                    dialect.comment_char = Some(
                        single_ascii(value).ok_or_else(|| bad("must be one ASCII character"))?,
                    )
                }
                // Line ends are always auto-detected; accept the usual values, refuse others.
                "lineTerminator" => match value.as_str() {
                    Some("\n" | "\r\n" | "\r") => {}
                    _ => return Err(bad("must be \"\\n\", \"\\r\\n\" or \"\\r\"")),
                },
                "caseSensitiveHeader" if value != &Value::Bool(true) => {
                    return Err(bad("other than true is not supported"));
                }
                "caseSensitiveHeader" => {}
                "$schema" | "csvddfVersion" | "name" | "title" | "description" => {}
                "nullSequence" | "headerJoin" | "commentRows" | "itemType" | "itemKeys"
                | "sheetNumber" | "sheetName" | "table" | "property" => {
                    return Err(bad("is not supported"))
                }
                _ => {} // custom properties are allowed by the spec and change nothing
            }
        }
        if !dialect.header {
            dialect.header_rows.clear();
        }
        let special = [
            Some(dialect.delimiter),
            dialect.quote_char,
            dialect.escape_char,
            dialect.comment_char,
        ];
        for byte in special.iter().flatten() {
            if *byte == b'\n' || *byte == b'\r' {
                return Err(SchemaError::new("dialect characters cannot be line ends"));
            }
        }
        if dialect.quote_char == Some(dialect.delimiter) {
            return Err(SchemaError::new(
                "dialect delimiter and quoteChar must differ",
            ));
        }
        Ok(dialect)
    }
}

fn single_ascii(value: &Value) -> Option<u8> {
    match value.as_str()?.as_bytes() {
        [byte] if byte.is_ascii() => Some(*byte),
        _ => None,
    }
}
