//! The reader's fast path: splitting one complete, well-formed record without csv-core.
//!
//! csv-core walks a state machine for every byte and copies it out. Most records need much
//! less: an unquoted cell ends at the next delimiter or line end, and a quoted cell at the
//! next quote that is not doubled. Both are found sixteen bytes at a time, every match in a
//! block at once (a block of unquoted cells ends several of them).
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
        let mut start = 0; // where the current cell starts
        let mut line_breaks_in_cells = 0;
        'cells: loop {
            if Some(*input.get(start)?) == self.quote {
                if self.escape {
                    return None;
                }
                let (span, line_breaks) = self.quoted_cell(input, start + 1)?;
                line_breaks_in_cells += line_breaks;
                let after = span.end + 1;
                self.push(spans, span)?;
                match *input.get(after)? {
                    byte if byte == self.delimiter => start = after + 1,
                    b'\n' | b'\r' => return self.finish(spans, after, line_breaks_in_cells),
                    _ => return None, // text after a closing quote
                }
                continue;
            }
            // Unquoted cells, a block at a time: each delimiter or line end in a block ends a
            // cell, until one starts with a quote.
            let mut at = start;
            while let Some(block) = input.get(at..at + BLOCK) {
                let mut stops = positions_of(block, [self.delimiter, b'\n', b'\r']);
                while stops != 0 {
                    let end = at + stops.trailing_zeros() as usize;
                    self.push(spans, Span::unquoted(start, end))?;
                    if input[end] != self.delimiter {
                        return self.finish(spans, end, line_breaks_in_cells);
                    }
                    start = end + 1;
                    if input.get(start).is_some_and(|&b| Some(b) == self.quote) {
                        continue 'cells;
                    }
                    stops &= stops - 1;
                }
                at += BLOCK;
            }
            // Less than a block left: one byte at a time.
            let end = at
                + input[at..]
                    .iter()
                    .position(|&b| b == self.delimiter || b == b'\n' || b == b'\r')?;
            self.push(spans, Span::unquoted(start, end))?;
            if input[end] != self.delimiter {
                return self.finish(spans, end, line_breaks_in_cells);
            }
            start = end + 1;
        }
    }

    /// Add a cell; `None` past the cell limit.
    #[inline]
    fn push(&self, spans: &mut Vec<Span>, span: Span) -> Option<()> {
        if spans.len() == self.max_cells {
            return None;
        }
        spans.push(span);
        Some(())
    }

    /// The record ends at the line end at `end`.
    #[inline]
    fn finish(&self, spans: &[Span], end: usize, line_breaks_in_cells: u64) -> Option<Split> {
        // The row limit counts cell text, which is never more than the bytes taken.
        if end > self.max_row_bytes {
            let text_bytes: usize = spans.iter().map(|s| s.end - s.start).sum();
            if text_bytes > self.max_row_bytes {
                return None;
            }
        }
        Some(Split {
            taken: end + 1,
            line_breaks_in_cells,
        })
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
            let at = find_quote_or_line_end(input, from, quote)?;
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

/// The first quote or line end at or after `from`, a block at a time: quoted cells are short,
/// and `memchr3`'s setup costs more than the scan on a few blocks.
#[inline]
fn find_quote_or_line_end(input: &[u8], from: usize, quote: u8) -> Option<usize> {
    let mut at = from;
    while let Some(block) = input.get(at..at + BLOCK) {
        let stops = positions_of(block, [quote, b'\n', b'\r']);
        if stops != 0 {
            return Some(at + stops.trailing_zeros() as usize);
        }
        at += BLOCK;
    }
    let rest = input.get(at..)?;
    let found = rest
        .iter()
        .position(|&b| b == quote || b == b'\n' || b == b'\r')?;
    Some(at + found)
}

impl Span {
    fn unquoted(start: usize, end: usize) -> Span {
        Span {
            start,
            end,
            doubled_quotes: false,
        }
    }
}

/// Bytes the splitter looks at in one step.
const BLOCK: usize = 16;

/// Bit `i` is set when `block[i]` (of [`BLOCK`] bytes) is one of `bytes`. On x86_64, SSE2
/// (always there) compares the whole block at once: about 7 instructions for 16 bytes, where
/// the portable form below takes about 40.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline]
fn positions_of(block: &[u8], bytes: [u8; 3]) -> u32 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    assert!(block.len() >= BLOCK); // a check the callers' slicing lets the compiler drop
                                   // SAFETY: the load reads 16 bytes from a slice that has them (checked above) and needs no
                                   // alignment; every intrinsic here needs SSE2 alone, which this item is compiled only with
                                   // (it is part of every x86_64 CPU).
    unsafe {
        let block = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
        let equal = |byte: u8| _mm_cmpeq_epi8(block, _mm_set1_epi8(byte as i8));
        let any = _mm_or_si128(
            _mm_or_si128(equal(bytes[0]), equal(bytes[1])),
            equal(bytes[2]),
        );
        _mm_movemask_epi8(any) as u32
    }
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline]
fn positions_of(block: &[u8], bytes: [u8; 3]) -> u32 {
    portable_positions_of(block, bytes)
}

/// [`positions_of`] without SIMD (the browser's build): eight bytes a word, every match in a
/// word at once.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
#[inline]
fn portable_positions_of(block: &[u8], bytes: [u8; 3]) -> u32 {
    let (low, high) = block.split_at(8);
    let word_positions = |word: &[u8]| {
        let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        let highs = bytes
            .iter()
            .fold(0, |found, &byte| found | bytes_equal_to(word, byte));
        // The high bit of byte i to bit i: each lands on its own bit of the top byte.
        ((highs >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32
    };
    word_positions(low) | word_positions(high) << 8
}

/// The high bit of each byte of `word` that equals `byte` is set, and no other bit: every
/// match in the word counts, not only the first.
#[inline]
fn bytes_equal_to(word: u64, byte: u8) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let x = word ^ (ONES * u64::from(byte));
    // A byte of `x` is nonzero when its low seven bits carry into the eighth or the eighth
    // is set; no carry crosses into the next byte.
    let nonzero = ((x & LOW7) + LOW7) | x;
    !nonzero & HIGHS
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

    /// Both forms of the block search flag exactly the bytes a plain scan finds.
    #[test]
    fn block_positions_are_the_matching_bytes() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let block: [u8; BLOCK] = std::array::from_fn(|i| {
                let pick = (seed.rotate_left(i as u32 * 4) as usize) % 8;
                [b',', b'\n', b'\r', b'"', b'a', 0x80 | b',', 0, 0xFF][pick]
            });
            let wanted = [b',', b'\n', b'\r'];
            let expected = (0..BLOCK)
                .filter(|&i| wanted.contains(&block[i]))
                .fold(0u32, |mask, i| mask | 1 << i);
            assert_eq!(positions_of(&block, wanted), expected, "{block:?}");
            assert_eq!(portable_positions_of(&block, wanted), expected, "{block:?}");
        }
    }

    #[test]
    fn every_flagged_byte_is_a_match() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Bytes drawn from a few values around the delimiter, to have many matches.
            let bytes: [u8; 8] = std::array::from_fn(|i| {
                [b',', b'-', b'+', 0x80 | b',', 0, 0xFF][(seed >> (i * 5)) as usize % 6]
            });
            let flagged = bytes_equal_to(u64::from_le_bytes(bytes), b',');
            for (i, byte) in bytes.iter().enumerate() {
                assert_eq!(
                    (flagged >> (i * 8 + 7)) & 1 == 1,
                    *byte == b',',
                    "{bytes:?}"
                );
            }
            assert_eq!(flagged & !0x8080_8080_8080_8080, 0);
        }
    }
}
