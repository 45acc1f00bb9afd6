//! The validator on arbitrary bytes, cut into arbitrary chunks, under every dialect option:
//! it must not panic, and the chunked report must equal the single-chunk one. On a schema
//! whose fields all have fast checks, the report must also equal the general path's.
#![no_main]

use datavista_shared::{Dialect, Limits, Report, Schema, Validator};
use libfuzzer_sys::fuzz_target;

/// Types, constraints, a pattern, missing values, a primary key and a unique key.
const SCHEMA: &str = r#"{
  "fields": [
    {"name": "id", "type": "integer", "constraints": {"minimum": 0}},
    {"name": "name", "constraints": {"pattern": "[a-z\"]*", "maxLength": 5}},
    {"name": "when", "type": "date"},
    {"name": "score", "type": "number", "constraints": {"unique": true, "enum": [1, 2.5]}}
  ],
  "primaryKey": "id",
  "uniqueKeys": [["name", "when"]],
  "missingValues": ["", "-"]
}"#;

/// Every shape of field with a fast check (the default missing values, so that they run).
const FAST_SCHEMA: &str = r#"{
  "fields": [
    {"name": "id", "type": "integer", "constraints": {"minimum": 0, "maximum": 120}},
    {"name": "score", "type": "number", "constraints": {"exclusiveMinimum": 0, "maximum": 100}},
    {"name": "when", "type": "date", "constraints": {"minimum": "2000-01-01"}},
    {"name": "ok", "type": "boolean"},
    {"name": "code", "constraints": {"pattern": "[a-z\"]*", "maxLength": 3, "enum": ["a", "\"b"]}}
  ],
  "primaryKey": "id"
}"#;

const DIALECTS: [&str; 5] = [
    "{}",
    r##"{"skipInitialSpace": true, "commentChar": "#"}"##,
    r#"{"escapeChar": "\\", "doubleQuote": false, "delimiter": ";"}"#,
    r#"{"header": false}"#,
    r#"{"headerRows": [1, 2]}"#,
];

fn run(bytes: &[u8], dialect: &Dialect, chunk: usize) -> Report {
    // Parsed once: clones share the compiled pattern, so runs go to the validator itself.
    static PARSED: std::sync::OnceLock<Schema> = std::sync::OnceLock::new();
    let schema = PARSED.get_or_init(|| Schema::from_json(SCHEMA).unwrap());
    feed(Validator::new(schema.clone(), dialect.clone(), limits()), bytes, chunk)
}

fn limits() -> Limits {
    // Small limits, so the oversized-row, sample-cap and memory-cap paths run too.
    Limits {
        max_error_sample: 5,
        max_row_bytes: 64,
        max_cells_per_row: 8,
        unique_memory_bytes: 4096,
    }
}

/// `FAST_SCHEMA`, with its fast checks or with every cell on the general path.
fn run_fast(bytes: &[u8], dialect: &Dialect, fast: bool) -> Report {
    static PARSED: std::sync::OnceLock<Schema> = std::sync::OnceLock::new();
    let schema = PARSED.get_or_init(|| Schema::from_json(FAST_SCHEMA).unwrap());
    let validator = Validator::new(schema.clone(), dialect.clone(), limits());
    let validator = if fast { validator } else { validator.without_fast_checks() };
    feed(validator, bytes, bytes.len())
}

fn feed(mut validator: Validator, bytes: &[u8], chunk: usize) -> Report {
    for piece in bytes.chunks(chunk.max(1)) {
        validator.feed(piece);
    }
    let mut report = validator.finish();
    report.elapsed_ms = 0.0;
    report
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, bytes)) = data.split_first() else {
        return;
    };
    let dialect = Dialect::from_json(DIALECTS[usize::from(control) % DIALECTS.len()]).unwrap();
    let chunk = usize::from(control >> 3) + 1;
    let whole = run(bytes, &dialect, bytes.len());
    let chunked = run(bytes, &dialect, chunk);
    assert_eq!(whole, chunked, "chunks of {chunk} bytes changed the report");
    assert_eq!(whole.bytes, bytes.len() as u64);
    assert_eq!(
        run_fast(bytes, &dialect, true),
        run_fast(bytes, &dialect, false),
        "the fast checks changed the report"
    );
});
