//! The bad-input corpus: files people really upload by mistake, and files built to hurt, each
//! through the real server with its expected outcome. None may crash the server, hang a job
//! or grow its memory past the validator's limits.

use std::collections::BTreeMap;
use std::io::Write;

use datavista_shared::ErrorCode;
use datavista_testkit::{created_id, TestServer};

/// What the report must say about one file.
struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    /// Exact error counts by code; empty means valid.
    counts: &'static [(ErrorCode, u64)],
    /// The first sampled error's code and row, when there is one.
    first: Option<(ErrorCode, Option<u64>)>,
    /// Words the first error's message must contain (a person reads it).
    message_has: &'static str,
    rows: Option<u64>,
}

fn case(name: &'static str, bytes: Vec<u8>, counts: &'static [(ErrorCode, u64)]) -> Case {
    Case {
        name,
        bytes,
        counts,
        first: None,
        message_has: "",
        rows: None,
    }
}

impl Case {
    fn first(mut self, code: ErrorCode, row: Option<u64>, message_has: &'static str) -> Case {
        self.first = Some((code, row));
        self.message_has = message_has;
        self
    }

    fn rows(mut self, rows: u64) -> Case {
        self.rows = Some(rows);
        self
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn utf16le_with_bom(text: &str) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    bytes
}

/// Bytes that look like nothing: a PNG signature, then noise.
fn png_like() -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut seed: u32 = 0x1234_5678;
    bytes.extend((0..4096).map(|_| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed as u8
    }));
    bytes
}

fn corpus() -> Vec<Case> {
    let mut huge_field = b"id,note\n1,".to_vec();
    huge_field.resize(huge_field.len() + 50_000_000, b'x');
    huge_field.extend_from_slice(b"\n2,ok\n");

    let columns = 100_000;
    let mut wide = (0..columns)
        .map(|c| format!("c{c}"))
        .collect::<Vec<_>>()
        .join(",");
    wide.push('\n');
    wide.push_str(&vec!["1"; columns].join(","));
    wide.push('\n');

    let mut tiny_rows = b"n\n".to_vec();
    for _ in 0..10_000_000 {
        tiny_rows.extend_from_slice(b"1\n");
    }

    vec![
        case("empty.csv", Vec::new(), &[(ErrorCode::SourceError, 1)]).first(
            ErrorCode::SourceError,
            None,
            "empty",
        ),
        case("header-only.csv", b"id,name\n".to_vec(), &[]).rows(1),
        case("bom.csv", b"\xEF\xBB\xBFid,name\n1,Ada\n".to_vec(), &[]).rows(2),
        // Every other byte is NUL and the BOM is not UTF-8: the encoding error comes first and
        // names UTF-16; the rows it garbles add structural errors after it.
        case("utf16.csv", utf16le_with_bom("id,name\n1,Ada\n"), &[]).first(
            ErrorCode::EncodingError,
            Some(1),
            "UTF-16",
        ),
        case(
            "latin1.csv",
            b"id,name\n1,caf\xE9\n".to_vec(),
            &[(ErrorCode::EncodingError, 1)],
        )
        .first(ErrorCode::EncodingError, Some(2), "not valid UTF-8"),
        // NUL is a valid UTF-8 character: the cell simply holds it.
        case("nul.csv", b"id,name\n1,a\x00b\n".to_vec(), &[]).rows(2),
        // Past the 16 MiB row limit the row is skipped, not buffered, and the next is checked.
        case("huge-field.csv", huge_field, &[(ErrorCode::SourceError, 1)])
            .first(ErrorCode::SourceError, Some(2), "larger than the row limit")
            .rows(3),
        case("wide.csv", wide.into_bytes(), &[]).rows(2),
        case("tiny-rows.csv", tiny_rows, &[]).rows(10_000_001),
        case(
            "unbalanced.csv",
            b"id,name\n1,\"unclosed\n2,Bob\n".to_vec(),
            &[(ErrorCode::SourceError, 1)],
        )
        .first(ErrorCode::SourceError, Some(2), "closing quote is missing"),
        case(
            "line-ends.csv",
            b"a,b\r\n1,2\n3,4\r5,6\r\n7,8,9\n".to_vec(),
            &[(ErrorCode::ExtraCell, 1)],
        )
        .first(ErrorCode::ExtraCell, Some(5), "extra cell")
        .rows(5),
        case(
            "ragged.csv",
            b"a,b,c\n1,2\n1,2,3,4\n".to_vec(),
            &[(ErrorCode::MissingCell, 1), (ErrorCode::ExtraCell, 1)],
        )
        .first(ErrorCode::MissingCell, Some(2), "missing"),
        case(
            "trailing-garbage.csv",
            b"a\n1\n\xFF\xFE\xFD".to_vec(),
            &[(ErrorCode::EncodingError, 1)],
        )
        .first(ErrorCode::EncodingError, Some(3), "not valid UTF-8"),
        case("picture.csv", png_like(), &[]).first(ErrorCode::EncodingError, Some(1), "PNG image"),
        case("archive.csv", gzip(b"id,name\n1,Ada\n"), &[]).first(
            ErrorCode::EncodingError,
            Some(1),
            "gzip",
        ),
    ]
}

#[tokio::test]
async fn every_bad_input_gets_its_expected_report_and_the_server_stays_up() {
    let server = TestServer::start(&[]);
    let client = server.session().await;
    for case in corpus() {
        let response = client
            .upload(None, &[(case.name, case.bytes.clone())])
            .await;
        assert_eq!(response.status(), 201, "{}", case.name);
        let id = created_id(response).await;
        let job = client.wait_final(&id).await;
        let report = client.report(&id).await;
        let name = case.name;
        if !case.counts.is_empty() || case.first.is_none() {
            let expected: BTreeMap<ErrorCode, u64> = case.counts.iter().copied().collect();
            assert_eq!(report.error_counts, expected, "{name}: {report:#?}");
        }
        assert_eq!(
            report.valid,
            case.counts.is_empty() && case.first.is_none(),
            "{name}"
        );
        assert_eq!(report.bytes, case.bytes.len() as u64, "{name}");
        if let Some(rows) = case.rows {
            assert_eq!(report.rows, rows, "{name}");
        }
        if let Some((code, row)) = case.first {
            let first = report
                .errors
                .first()
                .unwrap_or_else(|| panic!("{name}: no error in the sample"));
            assert_eq!(first.code, code, "{name}: {first:#?}");
            assert_eq!(first.row, row, "{name}: {first:#?}");
            let message = &first.message;
            assert!(message.contains(case.message_has), "{name}: {message}");
        }
        assert!(job.state.is_final(), "{name}");
    }
    if cfg!(target_os = "linux") {
        // The 50 MB field and the 20 MB of tiny rows streamed through; nothing held them whole
        // (the row buffer stops at the 16 MiB row limit).
        let peak = server.peak_rss_bytes();
        eprintln!("server peak RSS over the corpus: {} MiB", peak >> 20);
        assert!(peak < 128 << 20, "peak RSS {} MiB", peak >> 20);
    }
    let health = client.get("/healthz").await;
    assert_eq!(health.status(), 200);
}
