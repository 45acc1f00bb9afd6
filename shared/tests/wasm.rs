//! The validator compiled to WebAssembly, running in headless Chromium: the same verdict as
//! on the server, whatever the chunking (the dashboard feeds `Blob.slice()` chunks).
#![cfg(target_arch = "wasm32")]

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
