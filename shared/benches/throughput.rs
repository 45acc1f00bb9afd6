//! Validator throughput against plain csv-core parsing of the same bytes, in the same run.
//!
//! `cargo bench -p datavista-shared --bench throughput` — set `DATAVISTA_BENCH_MB` to change
//! the generated file's size (default 100). After criterion's own figures it prints the ratio
//! of the medians; the goal is full typed validation at ≥ 50 % of plain parsing.
//!
//! With `DATAVISTA_BENCH_DUMP=DIR` it only writes the generated file and its schema there
//! (`bench.csv`, `bench-schema.json`), for comparisons with other validators on the same bytes.
//! With `DATAVISTA_BENCH_PROFILE=1` it runs one full validation and nothing else, for a
//! profiler: `valgrind --tool=callgrind --toggle-collect=throughput::validate`, on another
//! schema with `DATAVISTA_BENCH_SCHEMA=FILE`; `DATAVISTA_BENCH_PROFILE=parse` runs the csv-core
//! baseline instead (`--toggle-collect=throughput::parse_only`).

use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use csv_core::{ReadRecordResult, Reader};
use datavista_shared::{Dialect, Limits, Schema, Validator};

#[path = "support/data.rs"]
mod data;
use data::{generate, SCHEMA};

/// The baseline: csv-core reading every record, nothing else.
fn parse_only(data: &[u8]) -> u64 {
    let mut reader = Reader::new();
    let mut output = vec![0; 64 * 1024];
    let mut ends = vec![0; 1024];
    let mut records = 0;
    let mut input = data;
    loop {
        let (result, nin, _, _) = reader.read_record(input, &mut output, &mut ends);
        input = &input[nin..];
        match result {
            ReadRecordResult::Record => records += 1,
            ReadRecordResult::End => return records,
            ReadRecordResult::InputEmpty => {}
            ReadRecordResult::OutputFull | ReadRecordResult::OutputEndsFull => {
                panic!("buffers sized for the data")
            }
        }
    }
}

/// Full validation, fed in 1 MiB chunks as the server and the CLI feed it.
fn validate(data: &[u8], schema: &Schema) -> u64 {
    let mut validator = Validator::new(schema.clone(), Dialect::default(), Limits::default());
    for chunk in data.chunks(1 << 20) {
        validator.feed(chunk);
    }
    let report = validator.finish();
    assert!(
        report.valid || schema.fields.is_empty(),
        "the generated file is valid: {:?}",
        report.errors.first()
    );
    report.rows
}

fn size() -> usize {
    std::env::var("DATAVISTA_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
        * 1_000_000
}

fn throughput(c: &mut Criterion) {
    let data = generate(size());
    let schema = Schema::from_json(SCHEMA).unwrap();
    let mut group = c.benchmark_group("validator");
    group
        .throughput(Throughput::Bytes(data.len() as u64))
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("csv-core parse only (baseline)", |b| {
        b.iter(|| parse_only(&data))
    });
    group.bench_function("full typed validation", |b| {
        b.iter(|| validate(&data, &schema))
    });
    group.finish();
}

/// Medians of a few interleaved runs each, so both see the same machine conditions.
fn print_ratio() {
    let data = generate(size());
    let schema = Schema::from_json(SCHEMA).unwrap();
    let mb = data.len() as f64 / 1e6;
    let structural = Schema::structural_only();
    let (mut parse, mut full, mut structure) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        let start = Instant::now();
        std::hint::black_box(validate(&data, &structural));
        structure.push(mb / start.elapsed().as_secs_f64());
        let start = Instant::now();
        std::hint::black_box(parse_only(&data));
        parse.push(mb / start.elapsed().as_secs_f64());
        let start = Instant::now();
        std::hint::black_box(validate(&data, &schema));
        full.push(mb / start.elapsed().as_secs_f64());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[0], v[v.len() - 1])
    };
    let (p, p_min, p_max) = median(&mut parse);
    let (f, f_min, f_max) = median(&mut full);
    let (st, st_min, st_max) = median(&mut structure);
    println!("\n{mb:.0} MB, 10 typed columns, median of 5 interleaved runs:");
    println!("  csv-core parse only:    {p:7.1} MB/s (min {p_min:.1}, max {p_max:.1})");
    println!("  structure checks only:  {st:7.1} MB/s (min {st_min:.1}, max {st_max:.1})");
    println!("  full typed validation:  {f:7.1} MB/s (min {f_min:.1}, max {f_max:.1})");
    println!(
        "  ratio: validation runs at {:.0} % of plain parsing (goal ≥ 50 %)",
        f / p * 100.0
    );
}

criterion_group!(benches, throughput);

fn main() {
    if let Some(dir) = std::env::var_os("DATAVISTA_BENCH_DUMP") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::write(dir.join("bench.csv"), generate(size())).unwrap();
        std::fs::write(dir.join("bench-schema.json"), SCHEMA).unwrap();
        println!("wrote bench.csv and bench-schema.json to {}", dir.display());
        return;
    }
    if std::env::var_os("DATAVISTA_BENCH_PROFILE").is_some() {
        // One full validation and nothing else, for instruction counts under callgrind;
        // DATAVISTA_BENCH_SCHEMA names another schema file to try on the same data.
        let data = generate(size());
        if std::env::var_os("DATAVISTA_BENCH_PROFILE").is_some_and(|v| v == "parse") {
            // The baseline's instructions: `--toggle-collect=throughput::parse_only`.
            println!("{} records", std::hint::black_box(parse_only(&data)));
            return;
        }
        let schema = match std::env::var_os("DATAVISTA_BENCH_SCHEMA") {
            Some(path) => Schema::from_json(&std::fs::read_to_string(path).unwrap()).unwrap(),
            None => Schema::from_json(SCHEMA).unwrap(),
        };
        println!("{} rows", std::hint::black_box(validate(&data, &schema)));
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_ratio();
}
