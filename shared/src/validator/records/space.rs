//! `skipInitialSpace`: the spaces after a delimiter, dropped before csv-core sees the bytes.

use crate::dialect::Dialect;

/// Drops spaces right after a delimiter outside quotes (`skipInitialSpace`), following the
/// quoting rules closely enough to know where cells start.
#[derive(Debug)]
pub(super) struct SpaceFilter {
    state: FilterState,
    delimiter: u8,
    quote: Option<u8>,
    escape: Option<u8>,
    double_quote: bool,
    comment: Option<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FilterState {
    RecordStart,
    CellStart,
    Unquoted,
    Quoted,
    QuotedEscape,
    QuoteInQuoted,
    Comment,
}

impl SpaceFilter {
    pub(super) fn new(dialect: &Dialect) -> SpaceFilter {
        SpaceFilter {
            state: FilterState::RecordStart,
            delimiter: dialect.delimiter,
            quote: dialect.quote_char,
            escape: dialect.escape_char,
            double_quote: dialect.double_quote,
            comment: dialect.comment_char,
        }
    }

    /// Copy `raw` into `out` without the skipped spaces; returns, for each dropped byte, the
    /// position in `out` it was dropped in front of.
    pub(super) fn filter(&mut self, raw: &[u8], out: &mut Vec<u8>) -> Vec<usize> {
        use FilterState::*;
        out.clear();
        let mut dropped = Vec::new();
        for &byte in raw {
            let line_end = byte == b'\n' || byte == b'\r';
            let is_quote = Some(byte) == self.quote;
            self.state = match self.state {
                CellStart if byte == b' ' => {
                    dropped.push(out.len());
                    continue;
                }
                RecordStart if line_end => RecordStart,
                RecordStart if Some(byte) == self.comment => Comment,
                RecordStart | CellStart if is_quote => Quoted,
                RecordStart | CellStart | Unquoted | QuoteInQuoted if byte == self.delimiter => {
                    CellStart
                }
                RecordStart | CellStart | Unquoted | QuoteInQuoted if line_end => RecordStart,
                RecordStart | CellStart | Unquoted => Unquoted,
                Quoted if Some(byte) == self.escape => QuotedEscape,
                Quoted if is_quote => QuoteInQuoted,
                Quoted | QuotedEscape => Quoted,
                QuoteInQuoted if is_quote && self.double_quote => Quoted,
                QuoteInQuoted => Unquoted,
                Comment if line_end => RecordStart,
                Comment => Comment,
            };
            out.push(byte);
        }
        dropped
    }
}
