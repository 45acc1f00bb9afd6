//! Push-based CSV record reading on top of `csv-core`: bytes in, records out, with the
//! row, line and byte offset of each record, whatever the chunk boundaries.
//!
//! `csv-core` does the quoting; around it this module adds what validation needs and
//! `csv-core` leaves out: exact positions, blank-line and comment skipping with line counts,
//! `\r`-only line ends, BOM handling, `skipInitialSpace`, a cap on row size, and the detection
//! of a quote still open at the end of the file. A complete, well-formed record skips
//! csv-core altogether: the splitter (`split.rs`) cuts it into cells in place, much faster.
//!
//! This module is the reader and its position bookkeeping; the [`Record`] it hands out (and
//! its cell access) is in `record.rs`, the `skipInitialSpace` filter in `space.rs`.

use csv_core::{ReadRecordResult, Reader, ReaderBuilder, Terminator};

mod record;
mod space;

pub use record::{RawCell, Record};
use space::SpaceFilter;

use super::split::{Span, Split, Splitter};
use super::text::{LineCounter, Utf8Checker};
use crate::dialect::Dialect;
use crate::report::Limits;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// What the reader hands to its caller.
#[derive(Debug)]
pub enum RecordEvent<'a> {
    Record(Record<'a>),
    /// A record over `Limits::max_row_bytes` or `max_cells_per_row`: skipped, not parsed.
    Oversized {
        row: u64,
        line: u64,
        byte_offset: u64,
    },
}

/// Where the reader is between and inside records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// Skipping line ends (blank lines) until a record starts.
    BetweenRecords,
    /// Skipping a comment line.
    InComment,
    /// Handing bytes to csv-core.
    InRecord,
}

pub struct RecordReader {
    csv: Reader,
    dialect: Dialect,
    max_row_bytes: usize,
    max_cells: usize,
    /// Bytes of the current record's cells, unquoted.
    out: Vec<u8>,
    out_len: usize,
    ends: Vec<usize>,
    ends_len: usize,
    /// The current record passed a limit: its bytes are being dropped.
    oversized: bool,
    /// csv-core has seen part of the current record (the fast path no longer applies).
    record_in_csv_core: bool,
    position: Position,
    rows: u64,
    lines: LineCounter,
    record_line: u64,
    record_offset: u64,
    /// Raw bytes taken in so far.
    offset: u64,
    /// The first bytes, held back until we know whether they are a BOM.
    head: Option<Vec<u8>>,
    bom: bool,
    utf8: Utf8Checker,
    splitter: Splitter,
    /// Where the cells of the record being handed over are.
    spans: Vec<Span>,
    /// Only for `skipInitialSpace`.
    space_filter: Option<SpaceFilter>,
    filtered: Vec<u8>,
}

impl RecordReader {
    pub fn new(dialect: &Dialect, limits: &Limits) -> RecordReader {
        let mut builder = ReaderBuilder::new();
        builder
            .delimiter(dialect.delimiter)
            .terminator(Terminator::CRLF) // any of \r, \n, \r\n
            .double_quote(dialect.double_quote)
            .escape(dialect.escape_char);
        match dialect.quote_char {
            Some(quote) => builder.quote(quote),
            None => builder.quoting(false),
        };
        let mut csv = builder.build();
        // csv-core strips a BOM from its very first input on its own, which would hide a BOM
        // that starts a record later on (we strip the file's BOM ourselves, with its offset).
        // A line end at the start of a record is skipped by csv-core and marks it as started.
        let (primed, _, _, _) = csv.read_record(b"\n", &mut [0; 1], &mut [0; 1]);
        debug_assert_eq!(primed, ReadRecordResult::InputEmpty);
        RecordReader {
            csv,
            dialect: dialect.clone(),
            max_row_bytes: limits.max_row_bytes.max(1),
            max_cells: limits.max_cells_per_row.max(1),
            out: vec![0; 4096.min(limits.max_row_bytes.max(1) + 1)],
            out_len: 0,
            ends: vec![0; 64.min(limits.max_cells_per_row.max(1) + 1)],
            ends_len: 0,
            oversized: false,
            record_in_csv_core: false,
            position: Position::BetweenRecords,
            rows: 0,
            lines: LineCounter::default(),
            record_line: 1,
            record_offset: 0,
            offset: 0,
            head: Some(Vec::with_capacity(3)),
            bom: false,
            utf8: Utf8Checker::default(),
            splitter: Splitter::new(
                dialect,
                limits.max_row_bytes.max(1),
                limits.max_cells_per_row.max(1),
            ),
            spans: Vec::new(),
            space_filter: dialect
                .skip_initial_space
                .then(|| SpaceFilter::new(dialect)),
            filtered: Vec::new(),
        }
    }

    /// Raw bytes taken in so far.
    pub fn bytes_consumed(&self) -> u64 {
        self.offset
    }

    /// Records completed so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn bom(&self) -> bool {
        self.bom
    }

    /// Offset of the first byte that is not valid UTF-8, if any was seen.
    pub fn first_encoding_error(&self) -> Option<u64> {
        self.utf8.first_error()
    }

    /// Take the next piece of input; `on_event` is called for every record it completes.
    pub fn feed(&mut self, chunk: &[u8], on_event: &mut dyn FnMut(RecordEvent<'_>)) {
        if let Some(head) = &mut self.head {
            // Hold the first bytes until a BOM is either complete or ruled out.
            let take = (UTF8_BOM.len() - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
            if head.len() < UTF8_BOM.len() && UTF8_BOM.starts_with(head) {
                return;
            }
            let head = self.head.take().expect("checked above");
            let start = if head == UTF8_BOM {
                self.bom = true;
                self.offset = UTF8_BOM.len() as u64;
                self.utf8.feed(UTF8_BOM);
                &head[3..]
            } else {
                &head[..]
            };
            self.take(start, on_event);
            self.take(&chunk[take..], on_event);
            return;
        }
        self.take(chunk, on_event);
    }

    /// End of input: completes the last record, noting a quote left open.
    pub fn finish(&mut self, on_event: &mut dyn FnMut(RecordEvent<'_>)) {
        if let Some(head) = self.head.take() {
            self.take(&head, on_event);
        }
        self.utf8.finish();
        if self.position != Position::InRecord {
            return;
        }
        // A line end completes the record unless csv-core is inside a quoted cell, where it
        // becomes cell text: that is how an unclosed quote shows.
        let (result, _) = self.parse_record_bytes(b"\n");
        let unclosed_quote = result != ReadRecordResult::Record;
        if unclosed_quote {
            let (result, _) = self.parse_record_bytes(&[]);
            debug_assert_eq!(result, ReadRecordResult::Record);
            // Drop the line end we added from the last cell.
            if !self.oversized && self.out_len > 0 && self.ends_len > 0 {
                self.out_len -= 1;
                self.ends[self.ends_len - 1] -= 1;
            }
        }
        self.emit(self.offset, unclosed_quote, on_event);
    }

    fn take(&mut self, raw: &[u8], on_event: &mut dyn FnMut(RecordEvent<'_>)) {
        if raw.is_empty() {
            return;
        }
        self.utf8.feed(raw);
        match self.space_filter.take() {
            None => {
                let base = self.offset;
                self.parse(raw, base, &[], on_event);
            }
            Some(mut filter) => {
                let mut filtered = std::mem::take(&mut self.filtered);
                let dropped = filter.filter(raw, &mut filtered);
                let base = self.offset;
                self.parse(&filtered, base, &dropped, on_event);
                self.filtered = filtered;
                self.space_filter = Some(filter);
            }
        }
    }

    /// Parse `input`, which starts at raw offset `base`; `dropped` lists the input positions
    /// before which the space filter removed a byte, to map positions back to the raw input.
    fn parse(
        &mut self,
        input: &[u8],
        base: u64,
        dropped: &[usize],
        on_event: &mut dyn FnMut(RecordEvent<'_>),
    ) {
        let raw_offset =
            |pos: usize| base + pos as u64 + dropped.partition_point(|d| *d <= pos) as u64;
        let mut pos = 0;
        while pos < input.len() {
            match self.position {
                Position::BetweenRecords => {
                    let byte = input[pos];
                    if byte == b'\n' || byte == b'\r' {
                        self.lines.feed_byte(byte);
                        pos += 1;
                    } else {
                        // Settles a pending \r (this byte is no line end, so it counts nothing).
                        self.lines.feed_byte(byte);
                        if Some(byte) == self.dialect.comment_char {
                            self.position = Position::InComment;
                        } else {
                            self.position = Position::InRecord;
                            self.record_line = self.lines.current_line();
                            self.record_offset = raw_offset(pos);
                        }
                    }
                }
                Position::InComment => {
                    let end = memchr::memchr2(b'\n', b'\r', &input[pos..])
                        .map_or(input.len(), |i| pos + i);
                    pos = end;
                    if end < input.len() {
                        self.position = Position::BetweenRecords;
                    }
                }
                Position::InRecord => {
                    if !self.record_in_csv_core {
                        if let Some(taken) =
                            self.fast_record(&input[pos..], &|p| raw_offset(pos + p), on_event)
                        {
                            pos += taken;
                            continue;
                        }
                        self.record_in_csv_core = true;
                    }
                    let (result, nin) = self.parse_record_bytes(&input[pos..]);
                    self.lines.feed(&input[pos..pos + nin]);
                    pos += nin;
                    if result == ReadRecordResult::Record {
                        self.emit(raw_offset(pos), false, on_event);
                    }
                }
            }
        }
        self.offset = base + input.len() as u64 + dropped.len() as u64;
    }

    /// Run csv-core over `input` until it needs more input or completes a record; grows the
    /// buffers up to the limits, then drops the record's bytes. Returns the result and the
    /// bytes taken.
    fn parse_record_bytes(&mut self, input: &[u8]) -> (ReadRecordResult, usize) {
        let mut taken = 0;
        loop {
            let (result, nin, nout, nend) = self.csv.read_record(
                &input[taken..],
                &mut self.out[self.out_len..],
                &mut self.ends[self.ends_len..],
            );
            taken += nin;
            self.out_len += nout;
            self.ends_len += nend;
            match result {
                // Buffers grow to one past the limits, so that a full buffer always means a
                // record over the limit (csv-core reports "full" even when the record would
                // have ended right there).
                ReadRecordResult::OutputFull => {
                    if self.out.len() <= self.max_row_bytes {
                        let grown = (self.out.len() * 2).min(self.max_row_bytes + 1);
                        self.out.resize(grown, 0);
                    } else {
                        self.oversized = true;
                        self.out_len = 0;
                    }
                }
                ReadRecordResult::OutputEndsFull => {
                    if self.ends.len() <= self.max_cells {
                        let grown = (self.ends.len() * 2).min(self.max_cells + 1);
                        self.ends.resize(grown, 0);
                    } else {
                        self.oversized = true;
                        self.ends_len = 0;
                    }
                }
                ReadRecordResult::InputEmpty | ReadRecordResult::End => return (result, taken),
                ReadRecordResult::Record => return (result, taken),
            }
        }
    }

    /// The fast path for the common record: complete in `input` and well-formed, split by
    /// [`Splitter`] instead of csv-core. `raw_offset` maps a position in `input` to the raw
    /// input. Returns the bytes taken, or `None` to leave the record to csv-core.
    fn fast_record(
        &mut self,
        input: &[u8],
        raw_offset: &dyn Fn(usize) -> u64,
        on_event: &mut dyn FnMut(RecordEvent<'_>),
    ) -> Option<usize> {
        let Split {
            taken,
            line_breaks_in_cells,
        } = self.splitter.split(input, &mut self.spans)?;
        self.lines
            .feed_record(line_breaks_in_cells, input[taken - 1]);
        self.rows += 1;
        self.position = Position::BetweenRecords;
        on_event(RecordEvent::Record(Record {
            row: self.rows,
            line: self.record_line,
            byte_offset: self.record_offset,
            // Mapped back to the raw input: skipInitialSpace may have dropped bytes.
            end_offset: raw_offset(taken),
            unclosed_quote: false,
            encoding_error: self.utf8.first_error(),
            bytes: input,
            known_utf8: self.utf8.first_error().is_none(),
            spans: &self.spans,
            quote: self.dialect.quote_char.unwrap_or(b'"'),
        }));
        Some(taken)
    }

    fn emit(
        &mut self,
        end_offset: u64,
        unclosed_quote: bool,
        on_event: &mut dyn FnMut(RecordEvent<'_>),
    ) {
        self.record_in_csv_core = false;
        self.rows += 1;
        self.position = Position::BetweenRecords;
        let over_limits = self.out_len > self.max_row_bytes || self.ends_len > self.max_cells;
        if std::mem::take(&mut self.oversized) || over_limits {
            on_event(RecordEvent::Oversized {
                row: self.rows,
                line: self.record_line,
                byte_offset: self.record_offset,
            });
        } else {
            let bytes = &self.out[..self.out_len];
            self.spans.clear();
            let mut start = 0;
            for &end in &self.ends[..self.ends_len] {
                self.spans.push(Span {
                    start,
                    end,
                    doubled_quotes: false,
                });
                start = end;
            }
            on_event(RecordEvent::Record(Record {
                row: self.rows,
                line: self.record_line,
                byte_offset: self.record_offset,
                end_offset,
                unclosed_quote,
                encoding_error: self.utf8.first_error(),
                bytes,
                known_utf8: self.utf8.first_error().is_none(),
                spans: &self.spans,
                quote: self.dialect.quote_char.unwrap_or(b'"'),
            }));
        }
        self.out_len = 0;
        self.ends_len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parse with the given dialect, feeding `chunk` bytes at a time.
    fn read(
        input: &[u8],
        dialect: &Dialect,
        chunk: usize,
    ) -> Vec<(u64, u64, u64, Vec<String>, bool)> {
        let mut reader = RecordReader::new(dialect, &Limits::default());
        let mut records = Vec::new();
        let mut on_event = |event: RecordEvent<'_>| {
            if let RecordEvent::Record(r) = event {
                records.push((
                    r.row,
                    r.line,
                    r.byte_offset,
                    r.cells().map(|c| c.into_owned()).collect(),
                    r.unclosed_quote,
                ));
            }
        };
        for piece in input.chunks(chunk.max(1)) {
            reader.feed(piece, &mut on_event);
        }
        reader.finish(&mut on_event);
        records
    }

    fn cells(records: &[(u64, u64, u64, Vec<String>, bool)]) -> Vec<Vec<String>> {
        records.iter().map(|r| r.3.clone()).collect()
    }

    #[test]
    fn positions_count_rows_lines_and_bytes() {
        let input = b"a,b\n\n1,\"x\ny\"\r\n2,3\r4,5";
        for chunk in [1, 2, 3, 100] {
            let records = read(input, &Dialect::default(), chunk);
            let positions: Vec<_> = records.iter().map(|r| (r.0, r.1, r.2)).collect();
            assert_eq!(
                positions,
                [(1, 1, 0), (2, 3, 5), (3, 5, 14), (4, 6, 18)],
                "chunk {chunk}"
            );
            assert_eq!(cells(&records)[1], ["1", "x\ny"]);
        }
    }

    #[test]
    fn bom_is_skipped_and_offsets_stay_raw() {
        for chunk in [1, 2, 4] {
            let records = read(b"\xEF\xBB\xBFid\n7\n", &Dialect::default(), chunk);
            assert_eq!(cells(&records), [vec!["id"], vec!["7"]]);
            assert_eq!(records[1].2, 6);
        }
    }

    #[test]
    fn unclosed_quote_is_flagged() {
        let records = read(b"a,b\n1,\"open\nmore", &Dialect::default(), 3);
        let last = records.last().unwrap();
        assert!(last.4);
        assert_eq!(last.3, ["1", "open\nmore"]);
        assert!(!read(b"a,\"b\"", &Dialect::default(), 1)[0].4);
    }

    #[test]
    fn comments_and_blank_lines_are_skipped_but_counted_as_lines() {
        let dialect = Dialect {
            comment_char: Some(b'#'),
            ..Dialect::default()
        };
        let records = read(b"# note, \"quoted\nid\n\n#x\n5\n", &dialect, 2);
        assert_eq!(cells(&records), [vec!["id"], vec!["5"]]);
        assert_eq!((records[1].0, records[1].1), (2, 5));
    }

    #[test]
    fn skip_initial_space_handles_quoted_cells() {
        let dialect = Dialect {
            skip_initial_space: true,
            ..Dialect::default()
        };
        for chunk in [1, 5, 100] {
            let records = read(b"a, b,  \"c, d\"\n  x, y,z\n", &dialect, chunk);
            assert_eq!(
                cells(&records),
                [vec!["a", "b", "c, d"], vec!["  x", "y", "z"]]
            );
            assert_eq!(records[1].2, 14, "offsets count the dropped spaces");
        }
    }

    #[test]
    fn oversized_rows_are_reported_and_skipped() {
        let limits = Limits {
            max_row_bytes: 8,
            ..Limits::default()
        };
        let mut reader = RecordReader::new(&Dialect::default(), &limits);
        let mut seen = Vec::new();
        let mut on_event = |event: RecordEvent<'_>| match event {
            RecordEvent::Record(r) => seen.push(format!("{}:{}", r.row, r.cell(0))),
            RecordEvent::Oversized { row, .. } => seen.push(format!("{row}:oversized")),
        };
        reader.feed(b"a\n0123456789abcdef\nb\n", &mut on_event);
        reader.finish(&mut on_event);
        assert_eq!(seen, ["1:a", "2:oversized", "3:b"]);
    }
}
