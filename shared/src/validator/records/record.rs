//! The record the reader hands out: its position, and its cells read as text or as the raw
//! bytes the fast path checks.

use std::borrow::Cow;

use crate::validator::split::Span;

/// One CSV record, borrowed from the reader until the callback returns.
#[derive(Debug)]
pub struct Record<'a> {
    /// 1-based record number (Frictionless "row number").
    pub row: u64,
    /// 1-based physical line the record starts on.
    pub line: u64,
    /// Offset of the record's first byte from the start of the input.
    pub byte_offset: u64,
    /// Offset just past the record's last byte.
    pub end_offset: u64,
    /// The input ended inside a quoted cell: the record holds everything up to the end.
    pub unclosed_quote: bool,
    /// Offset of the first byte in the input so far that is not UTF-8, if any.
    pub encoding_error: Option<u64>,
    /// The record's bytes: as read (fast path) or unquoted by csv-core.
    pub(super) bytes: &'a [u8],
    /// No bad UTF-8 so far: the stream's check has covered every byte fed (all but an
    /// incomplete character at the end of the chunk, which no complete record reaches), so
    /// this record's cells need no check of their own on the fast path. After the first bad
    /// byte, every record takes the general path, which checks its cells one by one.
    pub(super) known_utf8: bool,
    /// Where each cell's text is in `bytes`.
    pub(super) spans: &'a [Span],
    /// The quote that `Span::doubled_quotes` doubles.
    pub(super) quote: u8,
}

impl<'a> Record<'a> {
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Cell `i` as text; bytes that are not UTF-8 become U+FFFD (the encoding error is
    /// reported once, separately).
    #[inline]
    pub fn cell(&self, i: usize) -> Cow<'a, str> {
        let span = self.spans[i];
        match std::str::from_utf8(&self.bytes[span.start..span.end]) {
            Ok(cell) if !span.doubled_quotes => Cow::Borrowed(cell),
            _ => self.cell_slow(span),
        }
    }

    /// Cell `i`'s bytes as they are in the input, known to be UTF-8 (`None`: not known), and
    /// whether they still hold doubled quotes: the validator's fast path, which reads them
    /// without another UTF-8 check and undoubles them only when it must.
    #[inline]
    pub fn utf8_raw_cell(&self, i: usize) -> Option<RawCell<'a>> {
        if !self.known_utf8 {
            return None;
        }
        let span = self.spans[i];
        Some(RawCell {
            bytes: &self.bytes[span.start..span.end],
            doubled_quotes: span.doubled_quotes,
        })
    }

    /// A cell's text with its doubled quotes made single, built in `scratch`.
    pub fn undoubled<'s>(&self, cell: RawCell<'_>, scratch: &'s mut Vec<u8>) -> &'s [u8] {
        self.undouble_quotes(cell.bytes, scratch);
        scratch
    }

    /// `bytes` into `out` with each doubled quote made single: in a quoted cell every quote
    /// is doubled.
    fn undouble_quotes(&self, bytes: &[u8], out: &mut Vec<u8>) {
        out.clear();
        let mut rest = bytes;
        while let Some(at) = memchr::memchr(self.quote, rest) {
            out.extend_from_slice(&rest[..=at]);
            rest = rest.get(at + 2..).unwrap_or_default();
        }
        out.extend_from_slice(rest);
    }

    /// Cell `i` as text, borrowed from the record where it can be, else built in `scratch`
    /// (a cell with doubled quotes, or bytes that are not UTF-8): the per-cell path, which
    /// reuses one buffer instead of allocating.
    #[inline]
    pub fn cell_in<'s>(&'s self, i: usize, scratch: &'s mut String) -> &'s str {
        let span = self.spans[i];
        match std::str::from_utf8(&self.bytes[span.start..span.end]) {
            Ok(cell) if !span.doubled_quotes => cell,
            _ => {
                self.write_cell(span, scratch);
                scratch
            }
        }
    }

    /// A cell that is not valid UTF-8, or holds doubled quotes.
    #[cold]
    fn cell_slow(&self, span: Span) -> Cow<'a, str> {
        let mut cell = String::new();
        self.write_cell(span, &mut cell);
        Cow::Owned(cell)
    }

    /// Quotes undone, then bytes that are not UTF-8 replaced (a quote is ASCII, so undoing
    /// first replaces the same bytes).
    #[cold]
    fn write_cell(&self, span: Span, out: &mut String) {
        let mut undoubled = Vec::new();
        let mut bytes = &self.bytes[span.start..span.end];
        if span.doubled_quotes {
            self.undouble_quotes(bytes, &mut undoubled);
            bytes = &undoubled;
        }
        out.clear();
        out.push_str(&String::from_utf8_lossy(bytes));
    }

    pub fn cells(&self) -> impl Iterator<Item = Cow<'a, str>> + '_ {
        (0..self.len()).map(|i| self.cell(i))
    }

    /// True when every cell is empty (a row like `,,,`).
    pub fn is_blank(&self) -> bool {
        self.spans.iter().all(|span| span.start == span.end)
    }
}

/// A cell's bytes as they are in the input: its text, except that in a quoted cell with
/// `doubled_quotes` each quote is still written twice. A cell's text is never longer, so a
/// check on the length alone can pass it without undoubling.
#[derive(Debug, Clone, Copy)]
pub struct RawCell<'a> {
    pub bytes: &'a [u8],
    pub doubled_quotes: bool,
}
