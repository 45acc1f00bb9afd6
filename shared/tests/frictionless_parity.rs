//! Differential test against frictionless-py (issue #28): every file of
//! `tests/corpus/parity/` goes through `frictionless validate --json` and through our
//! [`Validator`] with the same schema and dialect, and for each error code the two must agree
//! on the count and on the first places (row, and field where Frictionless gives one).
//!
//! Where they differ on purpose, or until #28 fixes it, the difference is listed in
//! [`EXPECTED_DIFFERENCES`]. The test fails on a difference not in that table, and on an entry
//! of the table that no longer differs: fixing one means deleting its line.
//!
//! The reference is the pinned frictionless-py in `target/frictionless-venv`, which
//! `cargo xtask test` installs and then runs this test with (it is `#[ignore]`d otherwise,
//! since it needs Python). `DATAVISTA_FRICTIONLESS` names another `frictionless` executable.
//!
//! Each case is `NAME.csv`, with `NAME.schema.json` and `NAME.dialect.json` when it has them.
//! The corpus's README says what each case covers.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use datavista_shared::{Dialect, Limits, Schema, Validator};
use serde_json::Value;

/// The version `cargo xtask test` installs; another one fails the test, since the expected
/// differences hold for this one.
const FRICTIONLESS_VERSION: &str = "5.21.0";

/// How many places per code are compared (sorted by row, then field).
const FIRST_PLACES: usize = 5;

/// Frictionless gives these without a field number (ours may carry one, for example the
/// primary key's first field): compared on rows only.
const ROW_ONLY_CODES: [&str; 5] = [
    "blank-row",
    "primary-key",
    "source-error",
    "encoding-error",
    "task-error",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    /// The difference #28 is to remove: parity is the goal.
    ToFix28,
    /// We keep it: the spec says so, or Frictionless's reading is not one to copy.
    Deliberate,
}

impl Why {
    fn label(self) -> &'static str {
        match self {
            Why::ToFix28 => "to fix (#28)",
            Why::Deliberate => "deliberate",
        }
    }
}

/// A known difference: in case `case`, code `code` differs in its count or its first places.
struct Expected {
    case: &'static str,
    code: &'static str,
    why: Why,
    reason: &'static str,
}

const fn to_fix(case: &'static str, code: &'static str, reason: &'static str) -> Expected {
    Expected {
        case,
        code,
        why: Why::ToFix28,
        reason,
    }
}

const fn deliberate(case: &'static str, code: &'static str, reason: &'static str) -> Expected {
    Expected {
        case,
        code,
        why: Why::Deliberate,
        reason,
    }
}

/// Every difference known today, one line each, sorted by case.
#[rustfmt::skip]
const EXPECTED_DIFFERENCES: &[Expected] = &[
    to_fix("blank-middle", "blank-row", "an empty line is a blank row to Frictionless; we skip it"),
    to_fix("blank-middle", "type-error", "rows after a skipped empty line are numbered one lower by us"),
    to_fix("comment-line-dialect", "type-error", "Frictionless counts commentChar lines in its row numbers; we do not"),
    deliberate("composite-primary-key", "constraint-error", "spec: key fields are required, so (y, null) is a required error; frictionless-py#1623"),
    deliberate("composite-primary-key", "primary-key", "Frictionless takes (y, null) as a key value and reports its repeat as a duplicate"),
    to_fix("latin1", "encoding-error", "encoding detection: Frictionless decodes it as Latin-1 (chardet); we report non-UTF-8 bytes"),
    to_fix("leading-blank-line", "type-error", "an empty first line counts in Frictionless's row numbers (its header moves to row 2)"),
    to_fix("missing-values-blank-row", "blank-row", "a row of missing values ('-,-') is a blank row to Frictionless"),
    to_fix("missing-values-blank-row", "constraint-error", "that blank row's required error is replaced by blank-row in Frictionless"),
    deliberate("orders-v2", "type-error", "spec: datetime is XML Schema dateTime; Frictionless (dateutil) takes a space for the T"),
    deliberate("people-primary-key", "constraint-error", "spec: key fields are required, so an empty id is a required error, not primary-key"),
    deliberate("people-primary-key", "primary-key", "Frictionless reports the two empty ids as primary-key (null key)"),
    deliberate("people-types", "primary-key", "a key cell with a type error is also a null primary-key to Frictionless"),
    deliberate("people-types", "type-error", "spec: date is yyyy-mm-dd; Frictionless (strptime) takes 2020-1-5"),
    to_fix("semicolon-no-dialect", "incorrect-label", "delimiter sniffing: Frictionless finds ';', we read one column"),
    to_fix("semicolon-no-dialect", "missing-label", "delimiter sniffing: Frictionless finds ';', we read one column"),
    to_fix("semicolon-no-dialect", "type-error", "delimiter sniffing: Frictionless finds ';', we read one column"),
    to_fix("title-line-wide", "blank-row", "an empty line is a blank row to Frictionless; we skip it"),
    to_fix("title-line-wide", "extra-cell", "header by width: Frictionless takes row 2, not the title line, as the header"),
    to_fix("title-line-wide", "incorrect-label", "header by width: Frictionless takes row 2, not the title line, as the header"),
    to_fix("title-line-wide", "missing-label", "header by width: Frictionless takes row 2, not the title line, as the header"),
    to_fix("title-line-wide", "type-error", "header by width: Frictionless takes row 2, not the title line, as the header"),
    to_fix("trailing-empty-line", "blank-row", "an empty line after the last record is a blank row to Frictionless"),
    deliberate("unclosed-quote", "source-error", "an unclosed quote is an error to us; Python's csv reads to the end as one cell"),
    deliberate("whitespace-cells", "type-error", "' 5' and '5 ' are not integers to us; Frictionless strips them first"),
];

/// Where one error is: its row (`None` for the file as a whole) and field number.
type Place = (Option<u64>, Option<u64>);

/// Per error code: how many, and the first places.
#[derive(Debug, Default, PartialEq, Eq)]
struct Found {
    count: u64,
    first: Vec<Place>,
}

type Findings = BTreeMap<String, Found>;

/// Counts per code and every place, into [`Findings`] (places sorted, cut to the first few).
fn findings(counts: BTreeMap<String, u64>, places: Vec<(String, Place)>) -> Findings {
    let mut found: Findings = counts
        .into_iter()
        .map(|(code, count)| {
            (
                code,
                Found {
                    count,
                    first: Vec::new(),
                },
            )
        })
        .collect();
    for (code, (row, field)) in places {
        let field = if ROW_ONLY_CODES.contains(&code.as_str()) {
            None
        } else {
            field
        };
        found.entry(code).or_default().first.push((row, field));
    }
    for entry in found.values_mut() {
        entry.first.sort();
        entry.first.truncate(FIRST_PLACES);
    }
    found
}

struct Case {
    name: String,
    dir: PathBuf,
    schema: Option<String>,
    dialect: Option<String>,
}

impl Case {
    fn file(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.name)
    }
}

fn corpus() -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/parity");
    let mut cases: Vec<Case> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let name = name.strip_suffix(".csv")?.to_owned();
            let optional = |suffix: &str| {
                let file = format!("{name}{suffix}");
                dir.join(&file).exists().then_some(file)
            };
            Some(Case {
                schema: optional(".schema.json"),
                dialect: optional(".dialect.json"),
                name,
                dir: dir.clone(),
            })
        })
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(cases.len() >= 20, "the parity corpus is missing files");
    cases
}

fn ours(case: &Case) -> Findings {
    let read = |file: &str| std::fs::read_to_string(case.dir.join(file)).unwrap();
    let schema = match &case.schema {
        Some(file) => Schema::from_json(&read(file)).unwrap(),
        None => Schema::structural_only(),
    };
    let dialect = match &case.dialect {
        Some(file) => Dialect::from_json(&read(file)).unwrap(),
        None => Dialect::default(),
    };
    let limits = Limits {
        max_error_sample: 1_000_000,
        ..Limits::default()
    };
    let mut validator = Validator::new(schema, dialect, limits);
    validator.feed(&std::fs::read(case.dir.join(case.file(".csv"))).unwrap());
    let report = validator.finish();
    assert!(
        !report.errors_capped,
        "{}: our error sample is cut",
        case.name
    );
    findings(
        report
            .error_counts
            .iter()
            .map(|(code, count)| (code.as_str().to_owned(), *count))
            .collect(),
        report
            .errors
            .iter()
            .map(|e| {
                (
                    e.code.as_str().to_owned(),
                    (e.row, e.field_number.map(|n| n as u64)),
                )
            })
            .collect(),
    )
}

fn frictionless_program() -> PathBuf {
    std::env::var_os("DATAVISTA_FRICTIONLESS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../target/frictionless-venv/bin/frictionless")
        })
}

/// `frictionless validate --json`, run from the file's folder: it refuses absolute paths.
fn theirs(program: &Path, case: &Case) -> Findings {
    let mut command = Command::new(program);
    command
        .args(["validate", "--json", "--limit-errors", "1000000"])
        .arg(case.file(".csv"))
        .current_dir(&case.dir);
    if let Some(schema) = &case.schema {
        command.args(["--schema", schema]);
    }
    if let Some(dialect) = &case.dialect {
        command.args(["--dialect", dialect]);
    }
    let output = command.output().unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{}: frictionless gave no JSON report ({e}): {}{}",
            case.name,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let list = |value: &Value| value.as_array().cloned().unwrap_or_default();
    let tasks = list(&report["tasks"]);
    assert_eq!(
        tasks.len(),
        1,
        "{}: one file, one task: {report}",
        case.name
    );
    let errors: Vec<Value> = list(&report["errors"])
        .into_iter()
        .chain(list(&tasks[0]["errors"]))
        .collect();
    let mut counts = BTreeMap::new();
    let mut places = Vec::new();
    for error in errors {
        let code = error["type"].as_str().unwrap().to_owned();
        // Label errors name their header rows in `rowNumbers`; the first is the one we give.
        let row = error["rowNumber"]
            .as_u64()
            .or_else(|| error["rowNumbers"][0].as_u64());
        *counts.entry(code.clone()).or_insert(0) += 1;
        places.push((code, (row, error["fieldNumber"].as_u64())));
    }
    findings(counts, places)
}

fn describe(found: Option<&Found>) -> String {
    let Some(found) = found else {
        return "none".to_owned();
    };
    let places: Vec<String> = found
        .first
        .iter()
        .map(|(row, field)| {
            let row = row.map_or("file".to_owned(), |r| r.to_string());
            match field {
                Some(field) => format!("{row}/f{field}"),
                None => row,
            }
        })
        .collect();
    format!("{} at {}", found.count, places.join(" "))
}

#[test]
#[ignore = "needs frictionless-py: run by `cargo xtask test`"]
fn our_errors_equal_frictionless_py_or_the_difference_is_known() {
    let program = frictionless_program();
    let version = Command::new(&program)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): `cargo xtask test` installs it, or set DATAVISTA_FRICTIONLESS",
                program.display()
            )
        });
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        FRICTIONLESS_VERSION,
        "{} is another frictionless version",
        program.display()
    );

    let cases = corpus();
    // Frictionless starts a Python process per file (about a second): two at a time.
    let theirs_by_case: Mutex<BTreeMap<String, Findings>> = Mutex::default();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                while let Some(case) = cases.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let found = theirs(&program, case);
                    theirs_by_case
                        .lock()
                        .unwrap()
                        .insert(case.name.clone(), found);
                }
            });
        }
    });
    let mut theirs_by_case = theirs_by_case.into_inner().unwrap();

    let known: BTreeMap<(&str, &str), &Expected> = EXPECTED_DIFFERENCES
        .iter()
        .map(|e| ((e.case, e.code), e))
        .collect();
    assert_eq!(
        known.len(),
        EXPECTED_DIFFERENCES.len(),
        "a (case, code) is listed twice in EXPECTED_DIFFERENCES"
    );
    let mut seen = BTreeSet::new();
    let mut unexpected = Vec::new();
    let mut agreeing = 0;
    for case in &cases {
        let ours = ours(case);
        let theirs = theirs_by_case.remove(&case.name).unwrap();
        let codes: BTreeSet<&String> = ours.keys().chain(theirs.keys()).collect();
        let mut same = true;
        for code in codes {
            let (o, t) = (ours.get(code), theirs.get(code));
            if o == t {
                continue;
            }
            same = false;
            let line = format!(
                "{} {code}: frictionless {} | ours {}",
                case.name,
                describe(t),
                describe(o)
            );
            match known.get(&(case.name.as_str(), code.as_str())) {
                Some(expected) => {
                    seen.insert((expected.case, expected.code));
                    eprintln!(
                        "  known, {}: {line} — {}",
                        expected.why.label(),
                        expected.reason
                    );
                }
                None => {
                    eprintln!("  NEW: {line}");
                    unexpected.push(line);
                }
            }
        }
        if same {
            agreeing += 1;
        }
    }
    let stale: Vec<String> = EXPECTED_DIFFERENCES
        .iter()
        .filter(|e| !seen.contains(&(e.case, e.code)))
        .map(|e| {
            format!(
                "{} {} ({}: {}) no longer differs: delete its line",
                e.case,
                e.code,
                e.why.label(),
                e.reason
            )
        })
        .collect();
    eprintln!(
        "{agreeing} of {} files agree with frictionless {FRICTIONLESS_VERSION}; {} known differences ({} to fix in #28)",
        cases.len(),
        EXPECTED_DIFFERENCES.len(),
        EXPECTED_DIFFERENCES
            .iter()
            .filter(|e| e.why == Why::ToFix28)
            .count()
    );
    assert!(
        unexpected.is_empty() && stale.is_empty(),
        "differences from frictionless-py not in EXPECTED_DIFFERENCES:\n{}\nEXPECTED_DIFFERENCES entries that no longer hold:\n{}",
        unexpected.join("\n"),
        stale.join("\n")
    );
}
