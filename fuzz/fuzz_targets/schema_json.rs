//! The Table Schema and Dialect parsers on arbitrary text: a clear error or a schema, never a
//! panic; a schema that loads stays within its compile budget, and must then validate a few
//! rows without panicking.
#![no_main]

use datavista_shared::schema::limits::{MAX_COMPILED_BYTES, MAX_DFA_BYTES};
use datavista_shared::{Dialect, Limits, Schema, Validator};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Dialect::from_json(text);
    if let Ok(schema) = Schema::from_json(text) {
        assert!(
            schema.compiled_bytes() <= MAX_COMPILED_BYTES + MAX_DFA_BYTES,
            "compiled past the budget: {} bytes",
            schema.compiled_bytes()
        );
        let mut validator = Validator::new(schema, Dialect::default(), Limits::default());
        validator.feed(b"id,name,value\n1,a,2.5\n,-,x\n2,b,2024-01-01\n");
        let _ = validator.finish();
    }
});
