//! Small inputs that once cost far more than their size: a schema that copied a long
//! `missingValues` into every field, error messages that echoed whole `enum` lists, header
//! labels and pattern sources. Costs are counted in bytes allocated (a counting allocator),
//! which is exact and the same on every machine, unlike time.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use datavista_shared::schema::limits;
use datavista_shared::{Dialect, Limits, Report, Schema, Validator};
use serde_json::json;

/// Counts every byte allocated, on every thread.
struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's promises about `layout` are passed on to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Tests run on several threads, and the count is global: each test holds this throughout,
/// so no other test's bytes count in its measurements.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// What `work` returns, and the bytes it allocated.
fn allocated_by<T>(work: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCATED.load(Ordering::Relaxed);
    let result = work();
    (result, ALLOCATED.load(Ordering::Relaxed) - before)
}

fn validate(schema: &Schema, csv: &[u8]) -> Report {
    let mut validator = Validator::new(schema.clone(), Dialect::default(), Limits::default());
    validator.feed(csv);
    validator.finish()
}

fn refusal(schema: serde_json::Value) -> String {
    Schema::from_json(&schema.to_string()).unwrap_err().message
}

#[test]
fn a_long_schema_wide_missing_values_list_is_shared_not_copied_per_field() {
    let _alone = alone();
    let missing: Vec<String> = (0..limits::MAX_LIST_VALUES)
        .map(|i| format!("n/a{i}"))
        .collect();
    let fields: Vec<_> = (0..3_000)
        .map(|i| json!({ "name": format!("f{i}") }))
        .collect();
    let text = json!({ "fields": fields, "missingValues": missing, "fieldsMatch": "superset" })
        .to_string();
    let (schema, bytes) = allocated_by(|| Schema::from_json(&text).unwrap());
    // Copied into each field, the list alone would be 3,000 x 1,000 strings (over 90 MB).
    assert!(
        bytes < 100 * text.len(),
        "loading {} bytes of schema allocated {bytes} bytes",
        text.len()
    );
    assert!(schema.fields[2_999]
        .missing_values
        .is_shared_with(&schema.missing_values));
    let report = validate(&schema, b"f0\nn/a999\nn/a1000\n");
    assert_eq!(
        report.error_total, 0,
        "missing values still apply: {:?}",
        report.error_counts
    );
}

#[test]
fn each_limit_is_refused_by_name() {
    let _alone = alone();
    let over = limits::MAX_LIST_VALUES + 1;
    assert_eq!(
        refusal(json!({"fields": [], "missingValues": vec![""; over]})),
        format!("'missingValues' has {over} entries; at most 1000 are allowed")
    );
    assert_eq!(
        refusal(
            json!({"fields": [{"name": "b", "type": "boolean", "trueValues": vec!["y"; over]}]})
        ),
        format!("field 'b': 'trueValues' has {over} entries; at most 1000 are allowed")
    );
    let fields: Vec<_> = (0..=limits::MAX_FIELDS)
        .map(|i| json!({ "name": format!("f{i}") }))
        .collect();
    assert_eq!(
        refusal(json!({ "fields": fields })),
        "the schema has 100001 fields; at most 100000 are allowed"
    );
    assert_eq!(
        refusal(json!({"fields": [{"name": "n".repeat(201)}]})),
        "field 1: 'name' is longer than 200 characters, the most allowed"
    );
    assert_eq!(
        refusal(
            json!({"fields": [{"name": "d", "type": "date", "format": format!("%Y{}", "-".repeat(200))}]})
        ),
        "field 'd': 'format' is longer than 200 characters, the most allowed"
    );
    let values: Vec<_> = (0..=limits::MAX_ENUM_VALUES)
        .map(|i| i.to_string())
        .collect();
    assert_eq!(
        refusal(json!({"fields": [{"name": "e", "constraints": {"enum": values}}]})),
        "field 'e': the schema has more than 100000 'enum' values in all, the most one schema may have"
    );
    let patterned: Vec<_> = (0..=limits::MAX_PATTERNS)
        .map(|i| json!({"name": format!("p{i}"), "constraints": {"pattern": "[a-z]+"}}))
        .collect();
    assert_eq!(
        refusal(json!({ "fields": patterned })),
        "field 'p64': the schema has more than 64 fields with a 'pattern', the most one schema may have"
    );
}

#[test]
fn patterns_compile_within_the_schema_budget() {
    let _alone = alone();
    // One Unicode-class pattern that compiles far past one pattern's allowance.
    let huge = refusal(json!({"fields": [{"name": "p", "constraints": {"pattern": "\\w{2000}"}}]}));
    assert!(
        huge.starts_with("field 'p': constraint 'pattern' is too big once compiled"),
        "{huge}"
    );
    // Many patterns, each within its own allowance, past the schema's in all.
    let each_under_the_limit = "\\w{20}";
    let many: Vec<_> = (0..limits::MAX_PATTERNS)
        .map(|i| json!({"name": format!("p{i}"), "constraints": {"pattern": each_under_the_limit}}))
        .collect();
    let one = Schema::from_json(
        &json!({"fields": [{"name": "p", "constraints": {"pattern": each_under_the_limit}}]})
            .to_string(),
    )
    .unwrap();
    assert!(one.compiled_bytes() * limits::MAX_PATTERNS > limits::MAX_COMPILED_BYTES);
    let all = refusal(json!({ "fields": many }));
    assert!(all.contains("is too big once compiled"), "{all}");
    // What loads stays inside the budget, DFAs included.
    let fitting: Vec<_> = (0..limits::MAX_PATTERNS)
        .map(|i| json!({"name": format!("p{i}"), "constraints": {"pattern": format!("[a-z]{{{i}}}x|.*a.{{14}}")}}))
        .collect();
    let schema =
        Schema::from_json(&json!({ "fields": fitting, "fieldsMatch": "superset" }).to_string())
            .unwrap();
    assert!(schema.compiled_bytes() <= limits::MAX_COMPILED_BYTES + limits::MAX_DFA_BYTES);
    let report = validate(&schema, b"p0,p1\nx,b\n");
    assert_eq!(report.error_total, 1, "{:?}", report.error_counts);
}

#[test]
fn messages_never_echo_a_whole_enum_pattern_or_label() {
    let _alone = alone();
    let values: Vec<String> = (0..20_000).map(|i| format!("value-{i}")).collect();
    let schema = Schema::from_json(
        &json!({"fields": [
            {"name": "e", "constraints": {"enum": values}},
            {"name": "p", "constraints": {"pattern": format!("x{}", "y".repeat(5_000))}}
        ]})
        .to_string(),
    )
    .unwrap();
    let long_label = "L".repeat(100_000);
    let csv = format!("e,{long_label}\nnope,nope\n");
    let report = validate(&schema, csv.as_bytes());
    let codes: Vec<_> = report.errors.iter().map(|e| e.code.as_str()).collect();
    assert_eq!(
        codes,
        ["incorrect-label", "constraint-error", "constraint-error"]
    );
    for error in &report.errors {
        assert!(
            error.message.len() < 1_000,
            "{} bytes: {}",
            error.message.len(),
            error.message
        );
    }
    assert!(report.errors[1]
        .message
        .ends_with("'nope' is not one of the 20000 allowed values (value-0, value-1, value-2, value-3, value-4, value-5, value-6, value-7, value-8, value-9, …)"));
}

#[test]
fn a_huge_enum_costs_about_what_a_small_one_does_when_most_errors_are_only_counted() {
    let _alone = alone();
    let csv = |rows: usize| -> String {
        std::iter::once("e\n".to_owned())
            .chain((0..rows).map(|i| format!("bad{i}\n")))
            .collect()
    };
    let (short, long) = (csv(1), csv(20_000));
    // Bytes allocated per failing row, past the setup (a copy of the schema) and the sample.
    let per_row = |values: usize| {
        let values: Vec<String> = (0..values).map(|i| format!("value-{i}")).collect();
        let schema = Schema::from_json(
            &json!({"fields": [{"name": "e", "constraints": {"enum": values}}]}).to_string(),
        )
        .unwrap();
        let (report, long_bytes) = allocated_by(|| validate(&schema, long.as_bytes()));
        assert_eq!(report.error_total, 20_000);
        let (_, short_bytes) = allocated_by(|| validate(&schema, short.as_bytes()));
        long_bytes.saturating_sub(short_bytes) / 20_000
    };
    let (small, huge) = (per_row(3), per_row(20_000));
    // The message of every failing row, built from the whole list, took ~200 KB a row.
    assert!(
        huge <= 2 * small,
        "20,000 values: {huge} bytes a row, 3 values: {small} bytes a row"
    );
}
