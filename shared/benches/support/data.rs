//! The benchmark file: generated, deterministic, ~100 bytes a row, with its schema. Shared by
//! the native benchmark and the in-browser one (`tests/wasm_bench.rs`), so both read the
//! same bytes.

/// Ten typed columns: unique id, email pattern, enum, date, number ranges, quoted text.
pub const SCHEMA: &str = r#"{
  "fields": [
    {"name": "id", "type": "integer"},
    {"name": "email", "constraints": {"required": true, "pattern": "[a-z0-9.]+@[a-z]+\\.(org|com|net)"}},
    {"name": "status", "constraints": {"enum": ["active", "pending", "closed"]}},
    {"name": "joined", "type": "date", "constraints": {"minimum": "2000-01-01"}},
    {"name": "score", "type": "number", "constraints": {"minimum": 0, "maximum": 100}},
    {"name": "age", "type": "integer", "constraints": {"minimum": 0, "maximum": 120}},
    {"name": "member", "type": "boolean"},
    {"name": "country", "constraints": {"minLength": 2, "maxLength": 2}},
    {"name": "note", "constraints": {"maxLength": 500}},
    {"name": "amount", "type": "number", "constraints": {"exclusiveMinimum": 0}}
  ],
  "primaryKey": "id"
}"#;

/// A deterministic CSV of about `bytes` bytes matching `SCHEMA`.
pub fn generate(bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes + 1024);
    out.extend_from_slice(b"id,email,status,joined,score,age,member,country,note,amount\n");
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let statuses = ["active", "pending", "closed"];
    let countries = ["DE", "FR", "US", "JP", "BR"];
    let mut id = 0u64;
    while out.len() < bytes {
        id += 1;
        let r = next();
        let note = match r % 4 {
            0 => "\"plain note, with a comma\"".to_owned(),
            1 => "\"two lines\nof \"\"quoted\"\" text\"".to_owned(),
            2 => format!("\"ticket {}, priority {}\"", r % 9973, r % 5),
            _ => "short".to_owned(),
        };
        let line = format!(
            "{id},user{}.{}@example.{},{},20{:02}-{:02}-{:02},{}.{},{},{},{},{},{}.{:02}\n",
            r % 100_000,
            id,
            ["org", "com", "net"][(r % 3) as usize],
            statuses[(r >> 8) as usize % 3],
            (r >> 12) % 25,
            (r >> 16) % 12 + 1,
            (r >> 20) % 28 + 1,
            (r >> 24) % 100,
            (r >> 28) % 10,
            (r >> 32) % 100,
            if r & 1 == 0 { "true" } else { "false" },
            countries[(r >> 36) as usize % 5],
            note,
            (r >> 40) % 10_000 + 1,
            (r >> 44) % 100,
        );
        out.extend_from_slice(line.as_bytes());
    }
    out
}
