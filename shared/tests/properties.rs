//! Property tests: the validator never panics, and its report does not depend on how the
//! input is cut into chunks.
#![cfg(not(target_arch = "wasm32"))]

use datavista_shared::{Dialect, Limits, Report, Schema, Validator};
use proptest::prelude::*;

/// A schema that exercises every kind of check: types, constraints, unique and keys.
const SCHEMA: &str = r#"{
  "fields": [
    {"name": "id", "type": "integer", "constraints": {"minimum": 0}},
    {"name": "name", "constraints": {"pattern": "[a-z\"]*", "maxLength": 5}},
    {"name": "when", "type": "date"},
    {"name": "score", "type": "number", "constraints": {"unique": true}}
  ],
  "primaryKey": "id",
  "uniqueKeys": [["name", "when"]],
  "missingValues": ["", "-"]
}"#;

/// Fields of every shape that has a fast check (shared/src/validator/fast.rs), with the
/// default missing values so that the fast checks run.
const FAST_SCHEMA: &str = r#"{
  "fields": [
    {"name": "id", "type": "integer", "constraints": {"minimum": 0, "maximum": 120}},
    {"name": "score", "type": "number", "constraints": {"minimum": 0, "exclusiveMaximum": 100}},
    {"name": "ratio", "type": "number", "constraints": {"minimum": -1.5}},
    {"name": "when", "type": "date", "constraints": {"minimum": "2000-01-01"}},
    {"name": "ok", "type": "boolean"},
    {"name": "code", "constraints": {"pattern": "[a-z\"é]*", "maxLength": 3, "required": true}},
    {"name": "kind", "constraints": {"enum": ["a", "\"b\""]}},
    {"name": "n", "type": "integer", "constraints": {"unique": true}},
    {"name": "count", "type": "integer", "constraints": {"minimum": -1, "maximum": 120}}
  ],
  "primaryKey": "id"
}"#;

fn dialects() -> Vec<Dialect> {
    vec![
        Dialect::default(),
        Dialect::from_json(r##"{"skipInitialSpace": true, "commentChar": "#"}"##).unwrap(),
        Dialect::from_json(r#"{"escapeChar": "\\", "doubleQuote": false, "delimiter": ";"}"#)
            .unwrap(),
        Dialect::from_json(r#"{"header": false}"#).unwrap(),
        Dialect::from_json(r#"{"headerRows": [1, 2]}"#).unwrap(),
    ]
}

fn run(bytes: &[u8], cuts: &[usize], dialect: &Dialect, limits: &Limits) -> Report {
    let mut validator = Validator::new(
        Schema::from_json(SCHEMA).unwrap(),
        dialect.clone(),
        limits.clone(),
    );
    let mut start = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    for cut in cuts {
        validator.feed(&bytes[start..cut.max(start)]);
        start = cut.max(start);
    }
    validator.feed(&bytes[start..]);
    let mut report = validator.finish();
    report.elapsed_ms = 0.0;
    report
}

/// Bytes that look like CSV often enough to reach deep states: quotes, delimiters, every line
/// end, spaces, comment marks, escapes, digits, dates, multi-byte and invalid UTF-8, a BOM.
fn csv_like() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b",".to_vec()),
        Just(b";".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b" ".to_vec()),
        Just(b"#".to_vec()),
        Just(b"\\".to_vec()),
        Just(b"-".to_vec()),
        Just(b"2024-02-29".to_vec()),
        Just("é✓".as_bytes().to_vec()),
        Just(b"\xEF\xBB\xBF".to_vec()),
        Just(b"\xC3".to_vec()),
        Just(b"\xFF".to_vec()),
        "[0-9]{1,3}".prop_map(|s| s.into_bytes()),
        "[a-z]{1,6}".prop_map(|s| s.into_bytes()),
    ];
    prop::collection::vec(token, 0..80).prop_map(|tokens| tokens.concat())
}

/// Rows of typed-looking cells, valid and not, some quoted with doubled quotes, under the
/// header of `FAST_SCHEMA`: what the fast checks see.
fn typed_csv() -> impl Strategy<Value = Vec<u8>> {
    let cell = prop_oneof![
        prop::sample::select(vec![
            "",
            "0",
            "5",
            "120",
            "121",
            "-1",
            "+7",
            "007",
            "1x",
            "-0",
            "0.5",
            "99.9999",
            "100",
            "100.0000000000001",
            "-1.5",
            "-1.6",
            "1e5",
            "NaN",
            "2024-02-29",
            "2023-02-29",
            "1999-12-31",
            "2000-01-01",
            "20240101",
            "true",
            "False",
            "TRUE",
            "yes",
            "1",
            "a",
            "ab",
            "abcd",
            "é",
            "ééé",
            "éééé",
            "A",
            "\"\"\"b\"\"\"",
            "\"a\"\"\"",
            "\"x\ny\"",
            "99999999999999999999",
            "1,5",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        "[0-9]{1,4}".prop_map(|s| s.into_bytes()),
    ];
    let row = prop::collection::vec(cell, 6..11).prop_map(|cells| cells.join(&b","[..]));
    prop::collection::vec(row, 0..12).prop_map(|rows| {
        let mut csv = b"id,score,ratio,when,ok,code,kind,n,count\n".to_vec();
        for row in rows {
            csv.extend_from_slice(&row);
            csv.push(b'\n');
        }
        csv
    })
}

/// Well-formed CSV whose cells are often quoted, with delimiters, doubled quotes and line
/// ends inside: what the reader's quoted fast path takes when a record arrives whole.
fn quoted_csv() -> impl Strategy<Value = Vec<u8>> {
    let cell = prop_oneof![
        "[a-z0-9-]{0,6}".prop_map(|s| s.into_bytes()),
        "[a-z0-9 ,;\"\r\n#é-]{0,8}"
            .prop_map(|s| format!("\"{}\"", s.replace('"', "\"\"")).into_bytes()),
    ];
    let record = prop::collection::vec(cell, 1..6).prop_map(|cells| cells.join(&b","[..]));
    let line_end = prop_oneof![
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec())
    ];
    prop::collection::vec((record, line_end), 0..12).prop_map(|records| {
        records
            .into_iter()
            .flat_map(|(r, end)| [r, end])
            .flatten()
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn quoted_records_read_the_same_whole_and_byte_by_byte(bytes in quoted_csv()) {
        let limits = Limits { max_error_sample: 1000, max_row_bytes: 40, max_cells_per_row: 4, ..Limits::default() };
        for dialect in dialects() {
            let whole = run(&bytes, &[], &dialect, &limits);
            let byte_by_byte = run(&bytes, &(0..bytes.len()).collect::<Vec<_>>(), &dialect, &limits);
            prop_assert_eq!(&whole, &byte_by_byte);
        }
    }

    #[test]
    fn same_report_whatever_the_chunks(bytes in csv_like(), cuts in prop::collection::vec(any::<usize>(), 0..12)) {
        // Small limits so the oversized-row, sample-cap and memory-cap paths run too.
        let limits = Limits { max_error_sample: 5, max_row_bytes: 40, max_cells_per_row: 6, unique_memory_bytes: 2048 };
        for dialect in dialects() {
            let whole = run(&bytes, &[], &dialect, &limits);
            let chunked = run(&bytes, &cuts, &dialect, &limits);
            prop_assert_eq!(&whole, &chunked);
            let byte_by_byte = run(&bytes, &(0..bytes.len()).collect::<Vec<_>>(), &dialect, &limits);
            prop_assert_eq!(&whole, &byte_by_byte);
            prop_assert_eq!(whole.bytes, bytes.len() as u64);
            prop_assert_eq!(whole.error_total, whole.error_counts.values().sum::<u64>());
        }
    }

    /// The fast checks never change a report: the same errors, counts and places as with
    /// every cell on the general path, whole or byte by byte.
    #[test]
    fn fast_checks_change_no_report(bytes in prop_oneof![typed_csv(), csv_like()]) {
        let check = |fast: bool, cuts: &[usize]| {
            let validator = Validator::new(
                Schema::from_json(FAST_SCHEMA).unwrap(),
                Dialect::default(),
                Limits::default(),
            );
            let mut validator = if fast { validator } else { validator.without_fast_checks() };
            let mut start = 0;
            for &cut in cuts {
                validator.feed(&bytes[start..cut]);
                start = cut;
            }
            validator.feed(&bytes[start..]);
            let mut report = validator.finish();
            report.elapsed_ms = 0.0;
            report
        };
        let general = check(false, &[]);
        prop_assert_eq!(&check(true, &[]), &general);
        prop_assert_eq!(&check(true, &(0..bytes.len()).collect::<Vec<_>>()), &general);
    }

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2000), cuts in prop::collection::vec(any::<usize>(), 0..8)) {
        for dialect in dialects() {
            let report = run(&bytes, &cuts, &dialect, &Limits::default());
            prop_assert_eq!(report.bytes, bytes.len() as u64);
        }
    }
}
