//! Byte-level bookkeeping that must not depend on chunk boundaries: line counting and
//! UTF-8 checking of the raw input.

/// How many leading bytes [`known_binary_format`] looks at.
pub const SIGNATURE_LEN: usize = 8;

/// What a file that is not UTF-8 text most likely is, from its first bytes, and what to do:
/// people upload a `.csv.gz`, an Excel workbook or a UTF-16 export by mistake, and "not valid
/// UTF-8 at byte 1" does not tell them why.
pub fn known_binary_format(first_bytes: &[u8]) -> Option<&'static str> {
    const FORMATS: &[(&[u8], &str)] = &[
        (b"\x1F\x8B", "a gzip-compressed file: unpack it and upload the CSV inside"),
        (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx workbook is one): unpack it, or save the sheet as CSV (UTF-8)"),
        (b"\xD0\xCF\x11\xE0", "an old Office document such as an Excel .xls workbook: save the sheet as CSV (UTF-8)"),
        (b"\xFF\xFE", "UTF-16 text: save it as UTF-8"),
        (b"\xFE\xFF", "UTF-16 text: save it as UTF-8"),
        (b"BZh", "a bzip2-compressed file: unpack it and upload the CSV inside"),
        (b"\xFD7zXZ\x00", "an xz-compressed file: unpack it and upload the CSV inside"),
        (b"\x28\xB5\x2F\xFD", "a zstd-compressed file: unpack it and upload the CSV inside"),
        (b"\x89PNG", "a PNG image, not a CSV file"),
        (b"\xFF\xD8\xFF", "a JPEG image, not a CSV file"),
        (b"%PDF-", "a PDF document, not a CSV file"),
    ];
    FORMATS
        .iter()
        .find(|(magic, _)| first_bytes.starts_with(magic))
        .map(|(_, what)| *what)
}

/// Counts line ends — `\n`, `\r\n` and a lone `\r` each count once.
#[derive(Debug, Default)]
pub struct LineCounter {
    breaks: u64,
    /// The last byte seen was `\r`: one line end, unless a `\n` follows.
    pending_cr: bool,
}

impl LineCounter {
    pub fn feed(&mut self, bytes: &[u8]) {
        let Some(&first) = bytes.first() else { return };
        if self.pending_cr {
            self.pending_cr = false;
            if first != b'\n' {
                self.breaks += 1;
            }
        }
        // One pass over the line ends only: a record holds few of them.
        for i in memchr::memchr2_iter(b'\n', b'\r', bytes) {
            match bytes[i] {
                b'\n' => self.breaks += 1,
                _ => match bytes.get(i + 1) {
                    Some(b'\n') => {}
                    Some(_) => self.breaks += 1,
                    None => self.pending_cr = true,
                },
            }
        }
    }

    /// [`LineCounter::feed`] of one byte, without a search.
    #[inline]
    pub fn feed_byte(&mut self, byte: u8) {
        if std::mem::take(&mut self.pending_cr) && byte != b'\n' {
            self.breaks += 1;
        }
        match byte {
            b'\n' => self.breaks += 1,
            b'\r' => self.pending_cr = true,
            _ => {}
        }
    }

    /// What [`LineCounter::feed`] would count for a record the splitter took: one that starts
    /// with no line end, has `line_breaks_in_cells` inside its quoted cells and ends with the
    /// line end `end` (a `\r` may still pair with a `\n` in the next bytes).
    pub fn feed_record(&mut self, line_breaks_in_cells: u64, end: u8) {
        if std::mem::take(&mut self.pending_cr) {
            // The record's first byte is not the `\n` of a `\r\n`. (The reader has usually
            // settled a pending `\r` already, when it saw that byte between records.)
            self.breaks += 1;
        }
        self.breaks += line_breaks_in_cells;
        match end {
            b'\n' => self.breaks += 1,
            _ => self.pending_cr = true,
        }
    }

    /// The 1-based line the next byte is on.
    pub fn current_line(&self) -> u64 {
        self.breaks + self.pending_cr as u64 + 1
    }
}

/// Streams UTF-8 validation over raw chunks, remembering where the first bad byte is.
#[derive(Debug, Default)]
pub struct Utf8Checker {
    offset: u64,
    /// An incomplete (so far valid) sequence at the end of the last chunk.
    carry: Vec<u8>,
    first_error: Option<u64>,
}

impl Utf8Checker {
    pub fn first_error(&self) -> Option<u64> {
        self.first_error
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        let start = self.offset;
        self.offset += chunk.len() as u64;
        if self.first_error.is_some() {
            return; // only the first bad byte is reported
        }
        let mut rest = chunk;
        let mut rest_offset = start;
        if !self.carry.is_empty() {
            // Complete the carried sequence with at most 3 more bytes.
            let carry_offset = start - self.carry.len() as u64;
            let take = (4 - self.carry.len()).min(chunk.len());
            let mut joined = std::mem::take(&mut self.carry);
            let carried = joined.len();
            joined.extend_from_slice(&chunk[..take]);
            match simdutf8::compat::from_utf8(&joined) {
                Ok(_) => {
                    rest = &chunk[take..];
                    rest_offset = start + take as u64;
                }
                Err(e) if e.valid_up_to() >= carried => {
                    // The carried character is complete; go on from where it ended.
                    let used = e.valid_up_to() - carried;
                    rest = &chunk[used..];
                    rest_offset = start + used as u64;
                }
                Err(e) if e.error_len().is_none() => {
                    self.carry = joined; // still incomplete: the chunk was tiny
                    return;
                }
                Err(_) => {
                    self.first_error = Some(carry_offset);
                    return;
                }
            }
        }
        if let Err(e) = simdutf8::compat::from_utf8(rest) {
            let bad = e.valid_up_to();
            match e.error_len() {
                None => self.carry = rest[bad..].to_vec(),
                Some(_) => self.first_error = Some(rest_offset + bad as u64),
            }
        }
    }

    /// End of input: a sequence cut off at the end is an error too.
    pub fn finish(&mut self) {
        if self.first_error.is_none() && !self.carry.is_empty() {
            self.first_error = Some(self.offset - self.carry.len() as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_after(input: &[u8], chunk: usize) -> u64 {
        let mut counter = LineCounter::default();
        input.chunks(chunk).for_each(|c| counter.feed(c));
        counter.current_line()
    }

    #[test]
    fn feeding_byte_by_byte_counts_as_feeding_slices() {
        let input = b"a\nb\r\nc\rd\r\r\n\n\re";
        for end in 0..=input.len() {
            let (mut whole, mut bytes) = (LineCounter::default(), LineCounter::default());
            whole.feed(&input[..end]);
            input[..end].iter().for_each(|b| bytes.feed_byte(*b));
            assert_eq!(whole.current_line(), bytes.current_line(), "{end}");
        }
    }

    #[test]
    fn every_line_end_style_counts_once() {
        for chunk in [1, 2, 64] {
            assert_eq!(lines_after(b"a\nb\r\nc\rd", chunk), 4);
            assert_eq!(lines_after(b"a\r\r\n", chunk), 3);
        }
    }

    fn first_error(input: &[u8], chunk: usize) -> Option<u64> {
        let mut checker = Utf8Checker::default();
        input.chunks(chunk).for_each(|c| checker.feed(c));
        checker.finish();
        checker.first_error()
    }

    #[test]
    fn finds_the_first_bad_byte_across_chunks() {
        let text = "héllo wörld ✓ 𝄞".as_bytes();
        for chunk in 1..6 {
            assert_eq!(first_error(text, chunk), None, "chunk {chunk}");
            let mut bad = text.to_vec();
            bad.insert(7, 0xFF);
            assert_eq!(first_error(&bad, chunk), Some(7), "chunk {chunk}");
            assert_eq!(
                first_error(&text[..text.len() - 1], chunk),
                Some(text.len() as u64 - 4),
                "cut at the end"
            );
            assert_eq!(first_error(b"ab\xC3(", chunk), Some(2), "chunk {chunk}");
        }
    }
}
