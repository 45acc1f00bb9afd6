//! `datavista validate FILE... [--schema S] [--dialect D] [--json]`.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use datavista_shared::format::{human_size, plural};
use datavista_shared::{Dialect, Limits, Report, Schema, SchemaError, Validator};
use serde::Serialize;

/// Bytes read per chunk: large enough that syscalls do not matter, small enough to stay cached.
const CHUNK_BYTES: usize = 1 << 20;
/// Errors listed per file in the readable summary (the JSON report has the whole sample).
const ERRORS_SHOWN: usize = 20;

#[derive(Args)]
pub struct ValidateArgs {
    /// CSV files to validate.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Table Schema JSON file; without it only the structure is checked.
    #[arg(long)]
    schema: Option<PathBuf>,
    /// Table Dialect JSON file (delimiter, quoting, header rows …).
    #[arg(long)]
    dialect: Option<PathBuf>,
    /// Print the reports as JSON (an array with one entry per file) instead of a summary.
    #[arg(long)]
    json: bool,
    /// How many errors each report keeps in full (counts are always exact).
    #[arg(long, default_value_t = Limits::default().max_error_sample)]
    max_errors: usize,
}

/// What one file came to.
#[derive(Serialize)]
struct FileOutcome {
    file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<Report>,
    /// Why the file could not be validated at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<String>,
}

pub fn run(args: &ValidateArgs) -> ExitCode {
    let (schema, dialect) = match load_rules(args) {
        Ok(rules) => rules,
        Err(message) => {
            eprintln!("datavista: {message}");
            return ExitCode::from(2);
        }
    };
    let limits = Limits {
        max_error_sample: args.max_errors,
        ..Limits::default()
    };
    let outcomes: Vec<FileOutcome> = args
        .files
        .iter()
        .map(|path| {
            let file = path.display().to_string();
            match validate_file(path, &schema, &dialect, &limits) {
                Ok(report) => FileOutcome {
                    file,
                    report: Some(report),
                    failure: None,
                },
                Err(e) => FileOutcome {
                    file,
                    report: None,
                    failure: Some(e.to_string()),
                },
            }
        })
        .collect();
    let printed = if args.json {
        print_json(&outcomes)
    } else {
        print_summary(&outcomes)
    };
    if let Err(e) = printed {
        if e.kind() != io::ErrorKind::BrokenPipe {
            eprintln!("datavista: cannot write the output: {e}");
        }
        return ExitCode::from(2);
    }
    exit_code(&outcomes)
}

/// Why the schema or dialect given could not be used (exit code 2).
#[derive(Debug, thiserror::Error)]
enum RulesError {
    #[error("cannot read the {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("the {what} {} cannot be used: {source}", path.display())]
    Unusable {
        what: &'static str,
        path: PathBuf,
        source: SchemaError,
    },
}

fn load_rules(args: &ValidateArgs) -> Result<(Schema, Dialect), RulesError> {
    let read = |path: &Path, what: &'static str| {
        std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            what,
            path: path.to_owned(),
            source,
        })
    };
    let unusable = |path: &Path, what: &'static str| {
        let path = path.to_owned();
        move |source| RulesError::Unusable { what, path, source }
    };
    let schema = match &args.schema {
        Some(path) => {
            Schema::from_json(&read(path, "schema")?).map_err(unusable(path, "schema"))?
        }
        None => Schema::structural_only(),
    };
    let dialect = match &args.dialect {
        Some(path) => {
            Dialect::from_json(&read(path, "dialect")?).map_err(unusable(path, "dialect"))?
        }
        None => Dialect::default(),
    };
    Ok((schema, dialect))
}

fn validate_file(
    path: &Path,
    schema: &Schema,
    dialect: &Dialect,
    limits: &Limits,
) -> io::Result<Report> {
    let mut file = File::open(path)?;
    let mut validator = Validator::new(schema.clone(), dialect.clone(), limits.clone());
    let mut buffer = vec![0; CHUNK_BYTES];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => return Ok(validator.finish()),
            Ok(n) => validator.feed(&buffer[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// 2 when any file could not be validated, else 1 when any is invalid, else 0.
fn exit_code(outcomes: &[FileOutcome]) -> ExitCode {
    if outcomes.iter().any(|o| o.report.is_none()) {
        ExitCode::from(2)
    } else if outcomes
        .iter()
        .any(|o| o.report.as_ref().is_some_and(|r| !r.valid))
    {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn print_json(outcomes: &[FileOutcome]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, outcomes)?;
    writeln!(out)
}

fn print_summary(outcomes: &[FileOutcome]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    for outcome in outcomes {
        let Some(report) = &outcome.report else {
            writeln!(
                out,
                "{}: could not be validated: {}",
                outcome.file,
                outcome.failure.as_deref().unwrap_or("")
            )?;
            continue;
        };
        let verdict = if report.valid { "valid" } else { "INVALID" };
        writeln!(
            out,
            "{}: {verdict} — {} in {} rows ({}, {:.0} ms{})",
            outcome.file,
            plural(report.error_total, "error"),
            report.rows,
            human_size(report.bytes as f64),
            report.elapsed_ms,
            if report.bom { ", UTF-8 BOM" } else { "" },
        )?;
        for (code, count) in &report.error_counts {
            writeln!(out, "  {code}: {count}")?;
        }
        for error in report.errors.iter().take(ERRORS_SHOWN) {
            writeln!(out, "  - {}", error.message)?;
        }
        let more = report
            .error_total
            .saturating_sub(ERRORS_SHOWN.min(report.errors.len()) as u64);
        if more > 0 {
            writeln!(
                out,
                "  … and {} more (use --json for the report)",
                plural(more, "error")
            )?;
        }
    }
    Ok(())
}
