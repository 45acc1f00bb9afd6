//! The validator end to end: one test per rule and error code, on small CSVs.
#![cfg(not(target_arch = "wasm32"))]

use datavista_shared::{Dialect, ErrorCode, Limits, Report, Schema, ValidationError, Validator};

fn validate_with(schema: &str, dialect: Dialect, limits: Limits, csv: &[u8]) -> Report {
    let schema = Schema::from_json(schema).expect("test schema loads");
    let mut validator = Validator::new(schema, dialect, limits);
    validator.feed(csv);
    validator.finish()
}

fn validate(schema: &str, csv: &str) -> Report {
    validate_with(
        schema,
        Dialect::default(),
        Limits::default(),
        csv.as_bytes(),
    )
}

fn codes(report: &Report) -> Vec<ErrorCode> {
    report.errors.iter().map(|e| e.code).collect()
}

fn only_error(report: &Report) -> &ValidationError {
    assert_eq!(report.errors.len(), 1, "{:#?}", report.errors);
    &report.errors[0]
}

const PEOPLE: &str = r#"{"fields": [
    {"name": "id", "type": "integer"},
    {"name": "name", "type": "string", "constraints": {"required": true}},
    {"name": "age", "type": "integer", "constraints": {"minimum": 0, "maximum": 150}}
]}"#;

#[test]
fn a_valid_file_has_no_errors() {
    let report = validate(PEOPLE, "id,name,age\n1,Ada,36\n2,Alan,41\n");
    assert!(report.valid, "{:#?}", report.errors);
    assert_eq!((report.rows, report.bytes, report.error_total), (3, 31, 0));
}

#[test]
fn type_error_says_row_field_and_value() {
    let report = validate(PEOPLE, "id,name,age\n1,Ada,36\n2,Bob,1x3\n");
    let error = only_error(&report);
    assert_eq!(error.code, ErrorCode::TypeError);
    assert_eq!(error.message, "row 3, field 'age': '1x3' is not an integer");
    assert_eq!(
        (error.row, error.line, error.byte_offset),
        (Some(3), Some(3), Some(21))
    );
    assert_eq!(
        (
            error.field_name.as_deref(),
            error.field_number,
            error.cell.as_deref()
        ),
        (Some("age"), Some(3), Some("1x3"))
    );
}

#[test]
fn constraint_errors_name_the_constraint() {
    let report = validate(PEOPLE, "id,name,age\n1,,200\n");
    assert_eq!(
        codes(&report),
        [ErrorCode::ConstraintError, ErrorCode::ConstraintError]
    );
    assert_eq!(report.errors[0].constraint.as_deref(), Some("required"));
    assert_eq!(
        report.errors[0].message,
        "row 2, field 'name': a value is required"
    );
    assert_eq!(report.errors[1].constraint.as_deref(), Some("maximum"));
    assert_eq!(
        report.errors[1].message,
        "row 2, field 'age': '200' is above the maximum 150"
    );
}

#[test]
fn missing_values_are_null_and_skip_type_checks() {
    let schema = r#"{"fields": [{"name": "n", "type": "integer"}, {"name": "m", "type": "integer", "missingValues": ["-"]}],
                     "missingValues": ["", "NA"]}"#;
    assert!(validate(schema, "n,m\nNA,-\n,5\n").valid);
    let report = validate(schema, "n,m\n1,NA\n");
    assert_eq!(
        only_error(&report).field_name.as_deref(),
        Some("m"),
        "the field's own list replaces the schema's"
    );
}

#[test]
fn blank_row_extra_and_missing_cells() {
    let report = validate(PEOPLE, "id,name,age\n,,\n1,Ada,36,x,y\n2,Bob\n");
    assert_eq!(
        codes(&report),
        [
            ErrorCode::BlankRow,
            ErrorCode::ExtraCell,
            ErrorCode::ExtraCell,
            ErrorCode::MissingCell
        ]
    );
    assert_eq!(report.errors[0].message, "row 2 is blank");
    assert_eq!(
        report.errors[1].message,
        "row 3 has an extra cell in column 4: 'x'"
    );
    assert_eq!(
        report.errors[3].message,
        "row 4, field 'age': the cell is missing (the row has 2 of 3 cells)"
    );
    assert_eq!(report.count(ErrorCode::ExtraCell), 2);
}

#[test]
fn blank_and_duplicate_labels() {
    let report = validate(r#"{"fields": []}"#, "a,,a\n1,2,3\n");
    assert_eq!(
        codes(&report),
        [ErrorCode::BlankLabel, ErrorCode::DuplicateLabel]
    );
    assert_eq!(
        report.errors[1].message,
        "column 3 header 'a' repeats column 1"
    );
    assert_eq!(report.errors[0].row, Some(1));
}

/// Against a schema, a blank or repeated label is one error, not also `incorrect-label`; a
/// blank label past the schema's fields is an extra label (as frictionless-py reports them).
#[test]
fn a_bad_label_is_reported_once() {
    let schema = r#"{"fields": [{"name": "id"}, {"name": "name"}, {"name": "city"}]}"#;
    let blank = validate(schema, "id,,city\n1,a,p\n");
    assert_eq!(codes(&blank), [ErrorCode::BlankLabel]);
    let repeated = validate(schema, "id,name,name\n1,a,p\n");
    assert_eq!(codes(&repeated), [ErrorCode::DuplicateLabel]);
    let two_fields = r#"{"fields": [{"name": "id"}, {"name": "name"}]}"#;
    let blank_extra = validate(two_fields, "id,name,\n1,a,\n");
    assert_eq!(codes(&blank_extra), [ErrorCode::ExtraLabel]);
}

#[test]
fn exact_fields_match_reports_incorrect_missing_and_extra_labels() {
    let report = validate(PEOPLE, "id,full_name\n1,Ada\n");
    assert_eq!(
        codes(&report)[..2],
        [ErrorCode::IncorrectLabel, ErrorCode::MissingLabel]
    );
    assert_eq!(
        report.errors[0].message,
        "column 2 header is 'full_name', the schema expects 'name'"
    );
    let report = validate(PEOPLE, "id,name,age,notes\n1,Ada,3,x\n");
    assert_eq!(codes(&report), [ErrorCode::ExtraLabel]);
}

fn with_match(mode: &str) -> String {
    format!(
        r#"{{"fieldsMatch": "{mode}", "fields": [{{"name": "a", "type": "integer"}}, {{"name": "b"}}]}}"#
    )
}

#[test]
fn fields_match_modes() {
    // equal: any order, same set — cells are read by name.
    assert!(validate(&with_match("equal"), "b,a\nx,1\n").valid);
    assert_eq!(
        codes(&validate(&with_match("equal"), "b,a\n1,x\n")),
        [ErrorCode::TypeError]
    );
    assert_eq!(
        codes(&validate(&with_match("equal"), "a,c\n1,x\n")),
        [ErrorCode::MissingLabel, ErrorCode::ExtraLabel]
    );
    // subset: every field present, more columns allowed.
    assert!(validate(&with_match("subset"), "c,b,a\n0,x,1\n").valid);
    assert_eq!(
        codes(&validate(&with_match("subset"), "a\n1\n")),
        [ErrorCode::MissingLabel]
    );
    // superset: columns are all fields, some fields may be absent.
    assert!(validate(&with_match("superset"), "a\n1\n").valid);
    assert_eq!(
        codes(&validate(&with_match("superset"), "a,c\n1,0\n")),
        [ErrorCode::ExtraLabel]
    );
    // partial: at least one.
    assert!(validate(&with_match("partial"), "c,a\n0,1\n").valid);
    assert!(!validate(&with_match("partial"), "c,d\n0,1\n").valid);
}

#[test]
fn unique_constraint_compares_values() {
    let schema =
        r#"{"fields": [{"name": "n", "type": "integer", "constraints": {"unique": true}}]}"#;
    let report = validate(schema, "n\n1\n2\n01\n\n");
    let error = only_error(&report);
    assert_eq!(error.code, ErrorCode::UniqueError);
    assert_eq!(error.row, Some(4));
    let two = r#"{"fields": [{"name": "n", "type": "integer", "constraints": {"unique": true}}, {"name": "x"}]}"#;
    assert!(
        validate(two, "n,x\n1,a\n,b\n,c\n").valid,
        "nulls are never duplicates"
    );
}

#[test]
fn primary_key_single_and_composite() {
    let single =
        r#"{"fields": [{"name": "id", "type": "integer"}, {"name": "x"}], "primaryKey": "id"}"#;
    let report = validate(single, "id,x\n1,a\n2,b\n1,c\n,d\n");
    assert_eq!(
        codes(&report),
        [ErrorCode::PrimaryKey, ErrorCode::ConstraintError]
    );
    assert_eq!(
        report.errors[0].message,
        "row 4: the primary key (id) repeats the value of an earlier row"
    );
    assert_eq!(
        report.errors[1].constraint.as_deref(),
        Some("required"),
        "a primary key is required"
    );

    let composite = r#"{"fields": [{"name": "a"}, {"name": "b"}], "primaryKey": ["a", "b"]}"#;
    assert!(
        validate(composite, "a,b\nx,y\nxy,\"z\"\nx,yz\n").valid,
        "parts are kept apart"
    );
    assert_eq!(
        codes(&validate(composite, "a,b\nx,y\nx,y\n")),
        [ErrorCode::PrimaryKey]
    );
}

#[test]
fn unique_keys() {
    let schema = r#"{"fields": [{"name": "a"}, {"name": "b"}], "uniqueKeys": [["a", "b"]], "missingValues": ["-"]}"#;
    assert_eq!(
        codes(&validate(schema, "a,b\n1,2\n1,3\n1,2\n")),
        [ErrorCode::UniqueError]
    );
    assert!(
        validate(schema, "a,b\n-,-\n-,-\n").valid,
        "all-null keys are skipped"
    );
}

#[test]
fn unique_memory_cap_is_a_task_error_not_an_out_of_memory() {
    let schema =
        r#"{"fields": [{"name": "n", "type": "integer", "constraints": {"unique": true}}]}"#;
    // Every third number: ids that count up one by one cost no memory (a range).
    let csv: String = std::iter::once("n\n".to_owned())
        .chain((0..5000).map(|i| format!("{}\n", i * 3)))
        .collect();
    let limits = Limits {
        unique_memory_bytes: 8 * 1024,
        ..Limits::default()
    };
    let report = validate_with(schema, Dialect::default(), limits, csv.as_bytes());
    assert_eq!(codes(&report), [ErrorCode::TaskError]);
    assert!(
        report.errors[0].message.contains("memory cap"),
        "{}",
        report.errors[0].message
    );
}

#[test]
fn encoding_error_gives_row_line_and_byte() {
    let report = validate_with(
        r#"{"fields": []}"#,
        Dialect::default(),
        Limits::default(),
        b"a,b\n1,2\n3,\xff4\n",
    );
    let error = only_error(&report);
    assert_eq!(error.code, ErrorCode::EncodingError);
    assert_eq!(
        (error.row, error.line, error.byte_offset),
        (Some(3), Some(3), Some(10))
    );
    assert!(error
        .message
        .starts_with("row 3 (line 3), byte 10: the file is not valid UTF-8"));
}

/// Found by the fuzzer: with skipInitialSpace the fast path measured the record's end in
/// filtered bytes, so a bad byte near the end of a row with dropped spaces was reported
/// after the row instead of on it (and the error order depended on the chunking).
#[test]
fn encoding_error_lands_on_its_row_when_spaces_were_skipped() {
    let dialect = Dialect::from_json(r#"{"skipInitialSpace": true}"#).unwrap();
    let input = b"a,b\n1,  x\xE9\n2,y\n";
    let whole = validate_with(
        r#"{"fields": []}"#,
        dialect.clone(),
        Limits::default(),
        input,
    );
    let error = only_error(&whole);
    assert_eq!(error.code, ErrorCode::EncodingError);
    assert_eq!((error.row, error.byte_offset), (Some(2), Some(9)));
    let mut chunked = Validator::new(
        Schema::from_json(r#"{"fields": []}"#).unwrap(),
        dialect,
        Limits::default(),
    );
    input.chunks(3).for_each(|chunk| chunked.feed(chunk));
    assert_eq!(chunked.finish().errors, whole.errors);
}

#[test]
fn a_compressed_or_utf16_file_is_named_in_the_encoding_error() {
    let cases: [(&[u8], &str); 3] = [
        (
            b"\x1F\x8B\x08\x00\x00\x00\x00\x00\x00\x03",
            "gzip-compressed",
        ),
        (b"PK\x03\x04\x14\x00\x06\x00\x08\x00\xA8\xFF", "ZIP archive"),
        (b"\xFF\xFEa\x00,\x00b\x00\n\x00", "UTF-16 text"),
    ];
    for (bytes, named) in cases {
        let report = validate_with(
            r#"{"fields": []}"#,
            Dialect::default(),
            Limits::default(),
            bytes,
        );
        let error = report
            .errors
            .iter()
            .find(|e| e.code == ErrorCode::EncodingError)
            .unwrap_or_else(|| panic!("no encoding error for {named}: {:#?}", report.errors));
        assert!(error.message.contains(named), "{}", error.message);
    }
}

#[test]
fn bom_is_accepted_and_noted() {
    let report = validate_with(
        PEOPLE,
        Dialect::default(),
        Limits::default(),
        b"\xEF\xBB\xBFid,name,age\n1,Ada,3\n",
    );
    assert!(report.valid, "{:#?}", report.errors);
    assert!(report.bom);
}

#[test]
fn unclosed_quote_at_end_of_file() {
    let report = validate(r#"{"fields": []}"#, "a,b\n1,\"never closed\n2,3\n");
    let error = only_error(&report);
    assert_eq!(error.code, ErrorCode::SourceError);
    assert_eq!(error.row, Some(2));
    assert!(error.message.contains("closing quote is missing"));
}

#[test]
fn a_huge_line_is_reported_and_the_rest_still_checked() {
    let huge = format!("a\n{}\nnot-an-int\n", "9".repeat(10_000));
    let limits = Limits {
        max_row_bytes: 1024,
        ..Limits::default()
    };
    let report = validate_with(
        r#"{"fields": [{"name": "a", "type": "integer"}]}"#,
        Dialect::default(),
        limits,
        huge.as_bytes(),
    );
    assert_eq!(
        codes(&report),
        [ErrorCode::SourceError, ErrorCode::TypeError]
    );
    assert_eq!(report.errors[1].row, Some(3));
}

#[test]
fn error_sample_is_capped_but_counts_are_exact() {
    let csv: String = std::iter::once("n\n".to_owned())
        .chain((0..2500).map(|_| "x\n".to_owned()))
        .collect();
    let limits = Limits {
        max_error_sample: 100,
        ..Limits::default()
    };
    let report = validate_with(
        r#"{"fields": [{"name": "n", "type": "integer"}]}"#,
        Dialect::default(),
        limits,
        csv.as_bytes(),
    );
    assert_eq!((report.errors.len(), report.errors_capped), (100, true));
    assert_eq!(
        (report.count(ErrorCode::TypeError), report.error_total),
        (2500, 2500)
    );
}

#[test]
fn long_cells_are_cut_to_200_characters() {
    let long = "é".repeat(500);
    let report = validate(
        r#"{"fields": [{"name": "n", "type": "integer"}]}"#,
        &format!("n\n{long}\n"),
    );
    let cell = only_error(&report).cell.clone().unwrap();
    assert_eq!(cell.chars().count(), 201, "200 characters and an ellipsis");
}

#[test]
fn dialect_options() {
    let dialect = Dialect::from_json(
        r##"{"delimiter": ";", "quoteChar": "'", "commentChar": "#", "header": true}"##,
    )
    .unwrap();
    let report = validate_with(
        PEOPLE,
        dialect,
        Limits::default(),
        b"# exported\nid;name;age\n1;'Ada; Countess';36\n",
    );
    assert!(report.valid, "{:#?}", report.errors);

    let escaped = Dialect::from_json(r#"{"escapeChar": "\\", "doubleQuote": false}"#).unwrap();
    let report = validate_with(
        PEOPLE,
        escaped,
        Limits::default(),
        b"id,name,age\n1,\"A \\\"B\\\"\",2\n",
    );
    assert!(report.valid, "{:#?}", report.errors);

    let no_header = Dialect::from_json(r#"{"header": false}"#).unwrap();
    let report = validate_with(PEOPLE, no_header, Limits::default(), b"1,Ada,x\n");
    assert_eq!(
        only_error(&report).row,
        Some(1),
        "without a header the first row is data"
    );

    let two_rows = Dialect::from_json(r#"{"headerRows": [1, 2]}"#).unwrap();
    let schema = r#"{"fields": [{"name": "person id"}, {"name": "person name"}]}"#;
    assert!(
        validate_with(
            schema,
            two_rows,
            Limits::default(),
            b"person,person\nid,name\n1,Ada\n"
        )
        .valid
    );

    let spaces = Dialect::from_json(r#"{"skipInitialSpace": true}"#).unwrap();
    assert!(
        validate_with(
            PEOPLE,
            spaces,
            Limits::default(),
            b"id, name, age\n1, \"Ada, C\", 36\n"
        )
        .valid
    );
}

#[test]
fn every_line_end_style_is_accepted() {
    for csv in [
        "id,name,age\n1,Ada,3\n",
        "id,name,age\r\n1,Ada,3\r\n",
        "id,name,age\r1,Ada,3\r",
        "id,name,age\n1,Ada,3",
    ] {
        let report = validate(PEOPLE, csv);
        assert!(
            report.valid && report.rows == 2,
            "{csv:?}: {:#?}",
            report.errors
        );
    }
}

#[test]
fn empty_file_is_a_source_error() {
    assert_eq!(codes(&validate(PEOPLE, "")), [ErrorCode::SourceError]);
}

#[test]
fn structural_checks_only_without_fields() {
    let report = validate(r#"{"fields": []}"#, "a,b\n1,2\n3\n4,5,6\n");
    assert_eq!(
        codes(&report),
        [ErrorCode::MissingCell, ErrorCode::ExtraCell]
    );
}

#[test]
fn every_type_validates() {
    let schema = r#"{"fields": [
        {"name": "s", "type": "string", "format": "uuid"},
        {"name": "n", "type": "number", "decimalChar": ",", "groupChar": " "},
        {"name": "b", "type": "boolean", "trueValues": ["ja"], "falseValues": ["nein"]},
        {"name": "d", "type": "date", "format": "%d.%m.%Y"},
        {"name": "t", "type": "time"},
        {"name": "dt", "type": "datetime"},
        {"name": "y", "type": "year"},
        {"name": "ym", "type": "yearmonth"},
        {"name": "du", "type": "duration"},
        {"name": "x", "type": "any"}
    ]}"#;
    let header = "s,n,b,d,t,dt,y,ym,du,x\n";
    let good = "123e4567-e89b-12d3-a456-426614174000,1 234,5,ja,31.12.2024,10:00:00,2024-01-01T10:00:00Z,2024,2024-06,P1DT2H,?\n";
    let report = validate(
        schema,
        &format!("{header}{}", good.replacen("1 234,5", "\"1 234,5\"", 1)),
    );
    assert!(report.valid, "{:#?}", report.errors);
    let bad = "nope,1.234.5,yes,2024-12-31,25:00:00,yesterday,MMXXIV,2024-6,1 day,?\n";
    let report = validate(schema, &format!("{header}{bad}"));
    assert_eq!(
        report.count(ErrorCode::TypeError),
        9,
        "{:#?}",
        report.errors
    );
}

#[test]
fn progress_is_available_while_running() {
    let schema = Schema::from_json(PEOPLE).unwrap();
    let mut validator = Validator::new(schema, Dialect::default(), Limits::default());
    validator.feed(b"id,name,age\n1,Ada,x\n2,Bo");
    let progress = validator.progress();
    assert_eq!((progress.bytes, progress.rows, progress.errors), (24, 2, 1));
    assert_eq!(validator.error_counts().get(ErrorCode::TypeError), 1);
    validator.feed(b"b,3\n");
    assert_eq!(validator.finish().rows, 3);
}

#[test]
fn report_serializes_with_frictionless_codes() {
    let report = validate(PEOPLE, "id,name,age\nx,Ada,1\n");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["error_counts"]["type-error"], 1);
    assert_eq!(json["errors"][0]["code"], "type-error");
    let back: Report = serde_json::from_value(json).unwrap();
    assert_eq!(back, report);
}

/// Quoted cells with doubled quotes are checked on their text, quotes undone, whether the
/// record is read whole or byte by byte (which takes csv-core's path).
#[test]
fn doubled_quotes_are_undone_before_the_checks() {
    let schema = r#"{"fields": [
        {"name": "note", "constraints": {"maxLength": 5, "pattern": "[a-z\"]+"}},
        {"name": "mood", "constraints": {"enum": ["\"ok\""]}}
    ]}"#;
    let csv = "note,mood\n\"a\"\"b\",\"\"\"ok\"\"\"\n\"a\"\"bcde\",\"\"\"no\"\"\"\n";
    let whole = validate(schema, csv);
    let mut validator = Validator::new(
        Schema::from_json(schema).unwrap(),
        Dialect::default(),
        Limits::default(),
    );
    csv.as_bytes().chunks(1).for_each(|b| validator.feed(b));
    let bytewise = validator.finish();
    for report in [&whole, &bytewise] {
        let failed: Vec<_> = report
            .errors
            .iter()
            .map(|e| (e.row, e.constraint.as_deref(), e.cell.as_deref()))
            .collect();
        assert_eq!(
            failed,
            [
                (Some(3), Some("maxLength"), Some("a\"bcde")),
                (Some(3), Some("enum"), Some("\"no\"")),
            ]
        );
    }
}
