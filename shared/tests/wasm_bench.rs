//! The pre-check's speed where it runs: the validator compiled to WebAssembly in headless
//! Chromium, on the native benchmark's file and schema. A measurement, not a test: it prints
//! figures and asserts only that the file is valid. Run it through `cargo xtask bench
//! precheck`, which builds it like the dashboard (`--profile wasm-release`) and measures the
//! native validator on the same bytes right after.
#![cfg(target_arch = "wasm32")]

#[path = "../benches/support/data.rs"]
mod data;

use datavista_shared::{Dialect, Limits, Schema, Validator};
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// The dashboard checks this much of a file before it uploads it.
const FIRST_MIB: usize = 1 << 20;
/// The "full local check" file: big enough for a stable rate, small enough for a browser tab.
const FULL_BYTES: usize = 20_000_000;
/// The dashboard feeds `Blob.slice()` chunks of this size.
const CHUNK: usize = 1 << 20;

fn validate(bytes: &[u8], schema: &Schema) -> f64 {
    let start = js_sys::Date::now();
    let mut validator = Validator::new(schema.clone(), Dialect::default(), Limits::default());
    for chunk in bytes.chunks(CHUNK) {
        validator.feed(chunk);
    }
    let report = validator.finish();
    assert!(
        report.valid,
        "the generated file is valid: {:?}",
        report.errors.first()
    );
    js_sys::Date::now() - start
}

fn median(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    (
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
    )
}

#[wasm_bindgen_test]
fn precheck_speed_in_the_browser() {
    let schema = Schema::from_json(data::SCHEMA).unwrap();
    // The email pattern's DFA, as the dashboard gets it from the server.
    let compiled = include_bytes!("fixtures/bench_patterns.bin");
    assert_eq!(schema.load_compiled_patterns(compiled), Ok(1));
    let full = data::generate(FULL_BYTES);
    // The first MiB, cut at a line end as the dashboard's pre-check does.
    let cut = full[..FIRST_MIB].iter().rposition(|b| *b == b'\n').unwrap() + 1;
    let first = &full[..cut];
    validate(first, &schema); // warm-up: grows the buffers
    let (ms, min, max) = median((0..7).map(|_| validate(first, &schema)).collect());
    console_log!("RESULT wasm precheck of the first MiB: median {ms:.1} ms (min {min:.1}, max {max:.1}, 7 runs)");
    let mb = full.len() as f64 / 1e6;
    let (ms, min, max) = median((0..3).map(|_| validate(&full, &schema)).collect());
    console_log!(
        "RESULT wasm full check MB/s: median {:.1} (min {:.1}, max {:.1}, 3 runs of {mb:.0} MB)",
        mb / (ms / 1000.0),
        mb / (max / 1000.0),
        mb / (min / 1000.0)
    );
}
