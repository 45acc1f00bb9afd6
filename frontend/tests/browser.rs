//! The pre-check in a real browser: a File made in the page, read through `Blob.slice()`,
//! checked by the shared validator compiled to WebAssembly.
#![cfg(target_arch = "wasm32")]

use datavista_frontend::precheck::{precheck, PRECHECK_BYTES};
use datavista_shared::Schema;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

fn file(name: &str, text: &str) -> web_sys::File {
    let parts = js_sys::Array::of1(&JsValue::from_str(text));
    web_sys::File::new_with_str_sequence(&parts, name).unwrap()
}

fn schema() -> Schema {
    Schema::from_json(
        r#"{"fields": [{"name": "id", "type": "integer"}, {"name": "email", "format": "email"}]}"#,
    )
    .unwrap()
}

#[wasm_bindgen_test]
async fn a_large_file_is_checked_from_its_first_mib_only() {
    let mut text = String::from("id,email\n");
    let mut i = 0;
    while text.len() < 3 * PRECHECK_BYTES {
        i += 1;
        text.push_str(&format!("{i},p{i}@example.org\n"));
    }
    let file = file("big.csv", &text);
    let head = datavista_frontend::files::read_head(&file).await.unwrap();
    assert_eq!(head.len(), PRECHECK_BYTES, "only the first MiB is read");
    let check = precheck(&head, &schema(), false);
    assert!(!check.header_mismatch);
    assert!(
        check
            .verdict
            .starts_with("header OK, no errors in the first "),
        "{}",
        check.verdict
    );
}

#[wasm_bindgen_test]
async fn a_header_that_cannot_match_is_caught_in_the_browser() {
    let file = file("wrong.csv", "id,mail\n1,a@b.org\n");
    let head = datavista_frontend::files::read_head(&file).await.unwrap();
    let check = precheck(&head, &schema(), true);
    assert!(check.header_mismatch);
    assert!(
        check.verdict.contains("the schema expects 'email'"),
        "{}",
        check.verdict
    );
}

#[wasm_bindgen_test]
async fn the_full_check_streams_the_whole_file_in_chunks() {
    let mut text = String::from("id,email\n");
    let mut i = 0;
    while text.len() < 3 * PRECHECK_BYTES {
        i += 1;
        let email = if i == 70_000 {
            "broken".to_owned()
        } else {
            format!("p{i}@example.org")
        };
        text.push_str(&format!("{i},{email}\n"));
    }
    let file = file("big.csv", &text);
    let calls = std::cell::Cell::new(0);
    let report = datavista_frontend::files::check_in_browser(&file, schema(), |done, total| {
        calls.set(calls.get() + 1);
        assert!(done <= total);
    })
    .await
    .unwrap();
    assert!(
        calls.get() >= 3,
        "one progress step per 1 MiB chunk, got {}",
        calls.get()
    );
    assert_eq!(report.rows, i as u64 + 1);
    assert_eq!(report.error_total, 1);
    assert_eq!(
        report.errors[0].message,
        "row 70001, field 'email': 'broken' is not an email address"
    );
}
