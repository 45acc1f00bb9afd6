//! The pre-check: the shared validator (the server's own rules) on the first MiB of a file,
//! right after it is dropped.

use datavista_shared::{Dialect, ErrorCode, Limits, Schema, Validator};

use crate::format::{group, plural};

/// How much of each file the pre-check reads.
pub const PRECHECK_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq)]
pub struct Precheck {
    /// The header cannot match the schema: ask before uploading.
    pub header_mismatch: bool,
    pub errors: u64,
    /// What the user reads on the file's row.
    pub verdict: String,
}

/// Check the start of a file. `complete` says whether `bytes` is the whole file; when it is
/// not, the last (probably cut) line is left out so it does not look broken.
pub fn precheck(bytes: &[u8], schema: &Schema, complete: bool) -> Precheck {
    let cut = if complete {
        bytes.len()
    } else {
        bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)
    };
    let limits = Limits {
        max_error_sample: 20,
        ..Limits::default()
    };
    let mut validator = Validator::new(schema.clone(), Dialect::default(), limits);
    validator.feed(&bytes[..cut]);
    let report = validator.finish();
    let header_codes = [
        ErrorCode::MissingLabel,
        ErrorCode::ExtraLabel,
        ErrorCode::IncorrectLabel,
        ErrorCode::BlankLabel,
        ErrorCode::DuplicateLabel,
    ];
    let header_error = report
        .errors
        .iter()
        .find(|e| header_codes.contains(&e.code));
    let data_rows = report.rows.saturating_sub(1);
    let scope = if complete {
        "in the file".to_owned()
    } else {
        format!("in the first {} rows", group(data_rows))
    };
    let verdict = match header_error {
        Some(error) => format!("header does not fit the schema: {}", error.message),
        None if report.error_total == 0 => format!("header OK, no errors {scope}"),
        None => format!(
            "header OK, {} {scope}; first: {}",
            plural(report.error_total, "error"),
            report
                .errors
                .first()
                .map(|e| e.message.as_str())
                .unwrap_or("")
        ),
    };
    Precheck {
        header_mismatch: header_error.is_some(),
        errors: report.error_total,
        verdict: verdict + &left_to_server(schema),
    }
}

/// What a check here did not cover, for the end of its verdict: the patterns whose compiled
/// form the browser does not have (too big for a DFA, or not loaded). Empty when none.
pub fn left_to_server(schema: &Schema) -> String {
    match schema.patterns_not_checked_here()[..] {
        [] => String::new(),
        [field] => format!(" (the pattern of '{field}' is checked by the server only)"),
        ref fields => format!(
            " (the patterns of '{}' are checked by the server only)",
            fields.join("', '")
        ),
    }
}

/// Files we accept: CSV by name or type (browsers often report "" or "application/vnd.ms-excel").
pub fn looks_like_csv(name: &str, mime: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".csv")
        || lower.ends_with(".tsv")
        || lower.ends_with(".txt")
        || mime == "text/csv"
}

#[cfg(test)]
mod tests {
    // Native `cargo test` and, in headless Chromium, `cargo test --target wasm32-unknown-unknown`.
    #[cfg(target_arch = "wasm32")]
    wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

    use super::*;

    fn people() -> Schema {
        Schema::from_json(r#"{"fields": [{"name": "id", "type": "integer"}, {"name": "email", "format": "email"}]}"#).unwrap()
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn a_clean_start_says_so() {
        let check = precheck(
            b"id,email\n1,a@b.org\n2,c@d.org\n3,cut-in-the-mid",
            &people(),
            false,
        );
        assert_eq!(check.verdict, "header OK, no errors in the first 2 rows");
        assert!(!check.header_mismatch);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn a_wrong_header_asks_before_upload() {
        let check = precheck(b"id,mail\n1,a@b.org\n", &people(), true);
        assert!(check.header_mismatch);
        assert_eq!(
            check.verdict,
            "header does not fit the schema: column 2 header is 'mail', the schema expects 'email'"
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn errors_in_the_first_rows_are_counted() {
        let check = precheck(b"id,email\nx,a@b.org\n2,nope\n", &people(), true);
        assert_eq!(check.errors, 2);
        assert!(
            check
                .verdict
                .starts_with("header OK, 2 errors in the file; first: row 2, field 'id'"),
            "{}",
            check.verdict
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn csv_by_name_or_type() {
        assert!(looks_like_csv("Data.CSV", ""));
        assert!(!looks_like_csv("photo.png", "image/png"));
    }
}
