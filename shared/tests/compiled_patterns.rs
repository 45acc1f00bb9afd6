//! The benchmark schema's patterns, compiled, as the browser tests and benchmark load them:
//! they have no server to ask, so the bytes are checked in, and held here to what the server
//! sends today. After a change to the DFA builder (or a regex-automata upgrade) rewrite them
//! with `DATAVISTA_BLESS=1 cargo test -p datavista-shared --test compiled_patterns`.
#![cfg(not(target_arch = "wasm32"))]

#[path = "../benches/support/data.rs"]
#[allow(dead_code)]
mod data;

use datavista_shared::Schema;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/bench_patterns.bin"
);

#[test]
fn the_browser_fixture_is_what_the_server_sends() {
    let compiled = Schema::from_json(data::SCHEMA).unwrap().compiled_patterns();
    if std::env::var_os("DATAVISTA_BLESS").is_some() {
        std::fs::write(FIXTURE, &compiled).unwrap();
    }
    let fixture = std::fs::read(FIXTURE).expect("the fixture exists");
    assert!(
        fixture == compiled,
        "{FIXTURE} is stale: rewrite it with DATAVISTA_BLESS=1"
    );
    let browser = Schema::from_json(data::SCHEMA).unwrap();
    assert_eq!(browser.load_compiled_patterns(&fixture), Ok(1));
}
