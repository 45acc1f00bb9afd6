//! csv-spectrum (the "acid test for CSV parsing libraries"): every file must read to exactly
//! its expected JSON through the validator's record reader, and validate clean.
#![cfg(not(target_arch = "wasm32"))]

use std::path::Path;

use datavista_shared::validator::records::{RecordEvent, RecordReader};
use datavista_shared::{Dialect, Limits, Schema, Validator};
use serde_json::{Map, Value};

fn read_records(bytes: &[u8], chunk: usize) -> Vec<Vec<String>> {
    let mut reader = RecordReader::new(&Dialect::default(), &Limits::default());
    let mut rows = Vec::new();
    let mut on_event = |event: RecordEvent<'_>| match event {
        RecordEvent::Record(record) => rows.push(record.cells().map(|c| c.into_owned()).collect()),
        RecordEvent::Oversized { row, .. } => panic!("row {row} is not oversized"),
    };
    for piece in bytes.chunks(chunk) {
        reader.feed(piece, &mut on_event);
    }
    reader.finish(&mut on_event);
    rows
}

/// Header row + data rows → the array of objects csv-spectrum expects.
fn as_objects(rows: &[Vec<String>]) -> Value {
    let (header, data) = rows
        .split_first()
        .expect("every spectrum file has a header");
    Value::Array(
        data.iter()
            .map(|row| {
                let object: Map<String, Value> = header
                    .iter()
                    .cloned()
                    .zip(row.iter().map(|cell| Value::String(cell.clone())))
                    .collect();
                Value::Object(object)
            })
            .collect(),
    )
}

/// Upstream erratum in csv-spectrum 2.0.0: location_coordinates.json is a bare object, not an
/// array of rows, and its phone number (1234567890) is not the one in the CSV (2095257564).
/// Apply exactly those two corrections, so any other difference still fails.
fn corrected_location_coordinates(expected: Value) -> Value {
    let Value::Object(mut row) = expected else {
        panic!("the erratum is gone: drop this correction")
    };
    assert_eq!(
        row["Contact Phone Number"], "1234567890",
        "the erratum changed: review this correction"
    );
    row.insert(
        "Contact Phone Number".into(),
        Value::String("2095257564".into()),
    );
    Value::Array(vec![Value::Object(row)])
}

#[test]
fn every_spectrum_file_reads_to_its_expected_json() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/csv-spectrum");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir.join("csvs")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let bytes = std::fs::read(&path).unwrap();
        let mut expected: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("json").join(format!("{name}.json"))).unwrap(),
        )
        .unwrap();
        if name == "location_coordinates" {
            expected = corrected_location_coordinates(expected);
        }
        for chunk in [1, 7, bytes.len().max(1)] {
            assert_eq!(
                as_objects(&read_records(&bytes, chunk)),
                expected,
                "{name}, chunks of {chunk}"
            );
        }
        let mut validator = Validator::new(
            Schema::structural_only(),
            Dialect::default(),
            Limits::default(),
        );
        validator.feed(&bytes);
        let report = validator.finish();
        assert!(report.valid, "{name}: {:#?}", report.errors);
        checked += 1;
    }
    assert_eq!(checked, 12, "the whole corpus was read");
}
