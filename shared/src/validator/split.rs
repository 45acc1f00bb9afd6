//! The reader's fast path: splitting one complete, well-formed record without csv-core.
//!
//! csv-core walks a state machine for every byte and copies it out. Most records need much
//! less: an unquoted cell ends at the next delimiter or line end, found eight bytes at a time,
//! and a quoted cell ends at the next quote (SIMD `memchr`) unless that quote is doubled.
//! Cells are not copied: each is a [`Span`] of the input. Anything unusual (the record runs
//! past the input, text after a closing quote, an escape character, a limit reached) gives
//! `None`, and the record goes to csv-core, which knows every case. The property tests feed
//! inputs byte by byte, which always takes csv-core's path, and compare the cells.

use crate::dialect::Dialect;

/// A record the splitter took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// Bytes taken, including the line end that closes the record.
    pub taken: usize,
    /// Line breaks inside its quoted cells (a `\r\n` is one), counted on the way, so the
    /// reader need not look for them again.
    pub line_breaks_in_cells: u64,
}

/// Where one cell's text is in its record's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    /// The text still holds doubled quotes (`""` for `"`), to undouble when it is read.
    pub doubled_quotes: bool,
}

#[derive(Debug)]
pub struct Splitter {
    delimiter: u8,
    quote: Option<u8>,
    /// With an escape character, quoted cells are left to csv-core.
    escape: bool,
    double_quote: bool,
    max_row_bytes: usize,
    max_cells: usize,
}

impl Splitter {
    pub fn new(dialect: &Dialect, max_row_bytes: usize, max_cells: usize) -> Splitter {
        Splitter {
            delimiter: dialect.delimiter,
            quote: dialect.quote_char,
            escape: dialect.escape_char.is_some(),
            double_quote: dialect.double_quote,
            max_row_bytes,
            max_cells,
        }
    }

    /// Split the record that starts at `input[0]` (not a line end) into `spans`. It takes
    /// the bytes up to the line end that closes the record (one byte: a `\n` after a `\r` is
    /// left for the caller to skip, as csv-core leaves it); `None` leaves the record to
    /// csv-core.
    #[inline]
    pub fn split(&self, input: &[u8], spans: &mut Vec<Span>) -> Option<Split> {
        spans.clear();
        let mut i = 0;
        let mut line_breaks_in_cells = 0;
        loop {
            if spans.len() == self.max_cells {
                return None;
            }
            let span = if Some(*input.get(i)?) == self.quote {
                if self.escape {
                    return None;
                }
                let (span, line_breaks) = self.quoted_cell(input, i + 1)?;
                line_breaks_in_cells += line_breaks;
                i = span.end + 1;
                span
            } else {
                let start = i;
                i = self.unquoted_end(input, i)?;
                Span {
                    start,
                    end: i,
                    doubled_quotes: false,
                }
            };
            spans.push(span);
            match *input.get(i)? {
                byte if byte == self.delimiter => i += 1,
                b'\n' | b'\r' => {
                    // The row limit counts cell text, which is never more than the bytes taken.
                    if i > self.max_row_bytes {
                        let text_bytes: usize = spans.iter().map(|s| s.end - s.start).sum();
                        if text_bytes > self.max_row_bytes {
                            return None;
                        }
                    }
                    return Some(Split {
                        taken: i + 1,
                        line_breaks_in_cells,
                    });
                }
                _ => return None, // text after a closing quote
            }
        }
    }

    /// The position of the delimiter or line end that ends the unquoted cell starting at
    /// `start`. Quotes inside an unquoted cell are text, as csv-core reads them.
    #[inline]
    fn unquoted_end(&self, input: &[u8], start: usize) -> Option<usize> {
        let mut i = start;
        // Eight bytes at a time: the lowest flagged byte is always a real match.
        while let Some(word) = input.get(i..i + 8) {
            let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
            let stops = bytes_equal_to(word, self.delimiter)
                | bytes_equal_to(word, b'\n')
                | bytes_equal_to(word, b'\r');
            if stops != 0 {
                return Some(i + (stops.trailing_zeros() / 8) as usize);
            }
            i += 8;
        }
        let rest = &input[i..];
        rest.iter()
            .position(|&b| b == self.delimiter || b == b'\n' || b == b'\r')
            .map(|p| i + p)
    }

    /// The quoted cell whose text starts at `input[start]`: its span, ending at the closing
    /// quote, and the line breaks in it.
    #[inline]
    fn quoted_cell(&self, input: &[u8], start: usize) -> Option<(Span, u64)> {
        let quote = self.quote?;
        let mut from = start;
        let mut doubled_quotes = false;
        let mut line_breaks = 0;
        loop {
            let at = from + memchr::memchr3(quote, b'\n', b'\r', input.get(from..)?)?;
            let next = *input.get(at + 1)?;
            match input[at] {
                b'\n' => line_breaks += 1,
                // A `\r\n` counts once, at its `\n`.
                b'\r' if next != b'\n' => line_breaks += 1,
                b'\r' => {}
                _ if next == quote && self.double_quote => {
                    doubled_quotes = true;
                    from = at + 2;
                    continue;
                }
                _ => {
                    let span = Span {
                        start,
                        end: at,
                        doubled_quotes,
                    };
                    return Some((span, line_breaks));
                }
            }
            from = at + 1;
        }
    }
}

/// The high bit of each byte of `word` that equals `byte` is set (bits above the lowest
/// match may be set spuriously, so only the lowest one is meaningful).
#[inline]
fn bytes_equal_to(word: u64, byte: u8) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let x = word ^ (ONES * u64::from(byte));
    x.wrapping_sub(ONES) & !x & HIGHS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validator::text::LineCounter;

    /// Counting line breaks while splitting gives the lines a full scan of the bytes gives.
    #[test]
    fn line_breaks_counted_while_splitting_match_a_scan() {
        let splitter = Splitter::new(&Dialect::default(), 1 << 20, 1 << 10);
        let records: [&[u8]; 7] = [
            b"a,b\n",
            b"a,\"b\nc\",d\r\n",
            b"\"x\r\ny\"\r",
            b"\"\r\",\"\n\n\"\n",
            b"\"a\"\"\rb\"\r\n",
            b"x\r",
            b"\"\r\r\n\r\"\n",
        ];
        for before in [&b""[..], b"z\n", b"z\r"] {
            for record in records {
                let split = splitter.split(record, &mut Vec::new()).expect("splits");
                let (mut scanned, mut counted) = (LineCounter::default(), LineCounter::default());
                scanned.feed(before);
                counted.feed(before);
                scanned.feed(&record[..split.taken]);
                counted.feed_record(split.line_breaks_in_cells, record[split.taken - 1]);
                assert_eq!(scanned.current_line(), counted.current_line(), "{record:?}");
                scanned.feed(&record[split.taken..]);
                counted.feed(&record[split.taken..]);
                assert_eq!(scanned.current_line(), counted.current_line(), "{record:?}");
            }
        }
    }

    #[test]
    fn the_lowest_flagged_byte_is_the_first_match() {
        for (text, first) in [
            (&b"abcdefgh"[..], None),
            (b"ab,defgh", Some(2)),
            (b",bcdefgh", Some(0)),
            (b"abcdefg,", Some(7)),
            (b"\x01,\x01,\x00,,,", Some(1)),
        ] {
            let word = u64::from_le_bytes(text.try_into().unwrap());
            let found = bytes_equal_to(word, b',');
            assert_eq!(
                (found != 0).then(|| found.trailing_zeros() / 8),
                first,
                "{text:?}"
            );
        }
    }
}
