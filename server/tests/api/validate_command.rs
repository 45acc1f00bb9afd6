//! `datavista validate` as a user runs it: real files, the real binary, exit codes and output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SCHEMA: &str = r#"{"fields": [
    {"name": "id", "type": "integer"},
    {"name": "email", "format": "email", "constraints": {"required": true}}
], "primaryKey": "id"}"#;

struct Files(tempfile::TempDir);

impl Files {
    fn new() -> Files {
        let files = Files(tempfile::tempdir().unwrap());
        files.write("schema.json", SCHEMA);
        files
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

fn datavista(args: &[&Path], extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_datavista"))
        .arg("validate")
        .args(args)
        .args(extra)
        .output()
        .expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn valid_file_exits_zero_with_a_summary() {
    let files = Files::new();
    let csv = files.write("ok.csv", "id,email\n1,a@b.org\n2,c@d.org\n");
    let output = datavista(
        &[&csv, Path::new("--schema"), &files.path("schema.json")],
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(
        stdout(&output).contains("ok.csv: valid — 0 errors in 3 rows"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn invalid_file_exits_one_and_lists_errors() {
    let files = Files::new();
    let csv = files.write("bad.csv", "id,email\n1,a@b.org\nx,nope\n1,\n");
    let output = datavista(
        &[&csv, Path::new("--schema"), &files.path("schema.json")],
        &[],
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let text = stdout(&output);
    assert!(
        text.contains("bad.csv: INVALID — 4 errors in 4 rows"),
        "{text}"
    );
    assert!(text.contains("  type-error: 2"), "{text}");
    assert!(text.contains("  primary-key: 1"), "{text}");
    assert!(
        text.contains("  - row 3, field 'id': 'x' is not an integer"),
        "{text}"
    );
    assert!(
        text.contains("  - row 4: the primary key (id) repeats the value of an earlier row"),
        "{text}"
    );
}

#[test]
fn json_output_holds_one_report_per_file() {
    let files = Files::new();
    let good = files.write("good.csv", "id,email\n1,a@b.org\n");
    let bad = files.write("bad.csv", "id,email\n1,oops\n");
    let output = datavista(
        &[
            &good,
            &bad,
            Path::new("--schema"),
            &files.path("schema.json"),
        ],
        &["--json"],
    );
    assert_eq!(output.status.code(), Some(1));
    // The command's own output, not an HTTP body: read by key, as a script reads it.
    let reports: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(reports[0]["report"]["valid"], true);
    assert_eq!(reports[1]["report"]["error_counts"]["type-error"], 1);
    assert_eq!(reports[1]["report"]["errors"][0]["row"], 2);
}

#[test]
fn cannot_run_exits_two() {
    let files = Files::new();
    let csv = files.write("ok.csv", "id,email\n1,a@b.org\n");
    let missing = datavista(
        &[
            &files.path("missing.csv"),
            Path::new("--schema"),
            &files.path("schema.json"),
        ],
        &[],
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(stdout(&missing).contains("missing.csv: could not be validated"));

    let broken = files.write(
        "broken.json",
        r#"{"fields": [{"name": "a", "type": "geojson"}]}"#,
    );
    let output = datavista(&[&csv, Path::new("--schema"), &broken], &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("field 'a': type 'geojson' is not supported"),
        "{stderr}"
    );
}

#[test]
fn dialect_file_and_structural_mode() {
    let files = Files::new();
    let csv = files.write("semi.csv", "a;b\n1;2\n");
    let dialect = files.write("dialect.json", r#"{"delimiter": ";"}"#);
    assert_eq!(
        datavista(&[&csv, Path::new("--dialect"), &dialect], &[])
            .status
            .code(),
        Some(0)
    );
    let ragged = files.write("ragged.csv", "a,b\n1\n");
    assert_eq!(
        datavista(&[&ragged], &[]).status.code(),
        Some(1),
        "structure is checked without a schema"
    );
}
