//! The validator compiled to WebAssembly, running in headless Chromium: the same verdict as
//! on the server, whatever the chunking (the dashboard feeds `Blob.slice()` chunks).
#![cfg(target_arch = "wasm32")]

#[path = "../benches/support/data.rs"]
#[allow(dead_code)]
mod data;

use datavista_shared::{Dialect, ErrorCode, Limits, Report, Schema, Validator};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

const SCHEMA: &str = r#"{"fields": [
    {"name": "id", "type": "integer"},
    {"name": "email", "format": "email"},
    {"name": "joined", "type": "date"}
], "primaryKey": "id"}"#;

const CSV: &[u8] = b"id,email,joined\r\n1,ada@example.org,2024-01-31\r\n2,not-an-email,2024-02-30\r\n1,\"b@c.de\",2024-03-01\r\n";

fn validate(chunk: usize) -> Report {
    let mut validator = Validator::new(
        Schema::from_json(SCHEMA).unwrap(),
        Dialect::default(),
        Limits::default(),
    );
    for piece in CSV.chunks(chunk) {
        validator.feed(piece);
    }
    validator.finish()
}

#[wasm_bindgen_test]
fn validates_in_the_browser_like_on_the_server() {
    let report = validate(CSV.len());
    let messages: Vec<&str> = report.errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "row 3, field 'email': 'not-an-email' is not an email address",
            "row 3, field 'joined': '2024-02-30' is not a date",
            "row 4: the primary key (id) repeats the value of an earlier row",
        ]
    );
    assert_eq!(report.count(ErrorCode::TypeError), 2);
    assert_eq!((report.rows, report.bytes), (4, CSV.len() as u64));
    assert!(report.elapsed_ms >= 0.0, "the browser clock works");
}

#[wasm_bindgen_test]
fn chunking_does_not_change_the_verdict_in_the_browser() {
    let mut whole = validate(CSV.len());
    for chunk in [1, 3, 16] {
        let mut chunked = validate(chunk);
        chunked.elapsed_ms = 0.0;
        whole.elapsed_ms = 0.0;
        assert_eq!(chunked, whole, "chunks of {chunk}");
    }
}

/// The browser has no regex compiler: a pattern is checked once its compiled DFA (here the
/// server's bytes, checked in) is loaded, and until then the schema says it is not.
#[wasm_bindgen_test]
fn patterns_are_checked_with_the_servers_dfas() {
    let csv = b"id,email,status,joined,score,age,member,country,note,amount\n\
        1,ada@example.org,active,2024-01-31,5,30,true,DE,,1.5\n\
        2,ADA@example.org,active,2024-01-31,5,30,true,DE,,1.5\n";
    let check = |schema: &Schema| {
        let mut validator = Validator::new(schema.clone(), Dialect::default(), Limits::default());
        validator.feed(csv);
        validator.finish()
    };
    let schema = Schema::from_json(data::SCHEMA).unwrap();
    assert_eq!(schema.patterns_not_checked_here(), ["email"]);
    assert!(
        check(&schema).valid,
        "an unloaded pattern passes every cell"
    );

    let compiled = include_bytes!("fixtures/bench_patterns.bin");
    assert_eq!(schema.load_compiled_patterns(compiled), Ok(1));
    assert!(schema.patterns_not_checked_here().is_empty());
    let report = check(&schema);
    let messages: Vec<&str> = report.errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages,
        ["row 3, field 'email': 'ADA@example.org' does not match the pattern '[a-z0-9.]+@[a-z]+\\.(org|com|net)'"]
    );
    assert!(schema
        .load_compiled_patterns(&compiled[..compiled.len() - 1])
        .is_err());
}
