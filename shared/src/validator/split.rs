//! The reader's fast path: splitting one complete, well-formed record without csv-core.
//!
//! csv-core walks a state machine for every byte and copies it out. Most records need much
//! less: unquoted cells are runs of ordinary bytes, found with one table lookup a byte, and a
//! quoted cell ends at the next quote (SIMD `memchr`) unless that quote is doubled. Anything
//! unusual (the record runs past the input, text after a closing quote, an escape character,
//! a limit reached) gives `None`, and the record goes to csv-core, which knows every case.
//! The property tests feed inputs byte by byte, which always takes csv-core's path, and
//! compare the cells.

use crate::dialect::Dialect;

/// A byte that ends an unquoted cell.
const STOP: u8 = 1;

#[derive(Debug)]
pub struct Splitter {
    /// `STOP` for the delimiter, `\n` and `\r`; 0 for every other byte.
    class: [u8; 256],
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
        let mut class = [0; 256];
        for stop in [dialect.delimiter, b'\n', b'\r'] {
            class[stop as usize] = STOP;
        }
        Splitter {
            class,
            delimiter: dialect.delimiter,
            quote: dialect.quote_char,
            escape: dialect.escape_char.is_some(),
            double_quote: dialect.double_quote,
            max_row_bytes,
            max_cells,
        }
    }

    /// Split the record that starts at `input[0]` (not a line end) into `cells`, unquoted
    /// and back to back, with each cell's end in `ends`. Returns the bytes taken, including
    /// the line end that closes the record (one byte: a `\n` after a `\r` is left for the
    /// caller to skip, as csv-core leaves it), or `None` to leave the record to csv-core.
    #[inline]
    pub fn split(&self, input: &[u8], cells: &mut Vec<u8>, ends: &mut Vec<usize>) -> Option<usize> {
        cells.clear();
        ends.clear();
        let mut i = 0;
        loop {
            if ends.len() == self.max_cells {
                return None;
            }
            let first = *input.get(i)?;
            if Some(first) == self.quote {
                if self.escape {
                    return None;
                }
                i = self.quoted_cell(input, i + 1, cells)?;
            } else {
                let start = i;
                while i < input.len() && self.class[input[i] as usize] != STOP {
                    i += 1;
                }
                cells.extend_from_slice(&input[start..i]);
            }
            if cells.len() > self.max_row_bytes {
                return None;
            }
            ends.push(cells.len());
            match *input.get(i)? {
                byte if byte == self.delimiter => i += 1,
                b'\n' | b'\r' => return Some(i + 1),
                _ => return None, // text after a closing quote
            }
        }
    }

    /// A quoted cell whose text starts at `input[start]`: copies the text, undoubling quotes,
    /// and returns the position just past the closing quote.
    #[inline]
    fn quoted_cell(&self, input: &[u8], mut start: usize, cells: &mut Vec<u8>) -> Option<usize> {
        let quote = self.quote?;
        loop {
            let close = start + memchr::memchr(quote, input.get(start..)?)?;
            cells.extend_from_slice(&input[start..close]);
            match *input.get(close + 1)? {
                byte if byte == quote && self.double_quote => {
                    cells.push(quote);
                    start = close + 2;
                }
                _ => return Some(close + 1),
            }
        }
    }
}
