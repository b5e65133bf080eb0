//! `LineReader`: splits a byte stream into lines with memory bounded by the longest line
//! kept, whatever the input.
//!
//! A line ends at `\n`. The record holds the line's bytes without the `\n`; a `\r` before
//! it is kept (the raw line is shipped as written, and parsers ignore trailing
//! whitespace). Invalid UTF-8 and NUL bytes pass through untouched. A line longer than
//! `max_line_bytes` keeps its first `max_line_bytes` bytes; the rest is counted into
//! `original_len` and discarded as it streams by, so a 10 MiB line costs `max_line_bytes`
//! of memory and the next line's offset is still exact. A last line without its `\n` is
//! held back ([`LineReader::take_partial`] releases it once the file is known to be
//! finished: rotated away or deleted).
//!
//! Lines are handed to a callback as borrowed [`RecordRef`]s, most of them straight from the
//! read buffer: splitting a line costs no copy and no allocation.

use std::io::Read;

use parsers::RecordRef;

/// Largest line buffer kept for reuse: far above a typical log line.
const RETAINED_LINE_BYTES: usize = 16 * 1024;

/// Line splitting state of one file. The read buffer is not part of it: callers pass one
/// shared scratch buffer, so a thousand followed files do not each hold one.
#[derive(Debug)]
pub struct LineReader {
    max_line_bytes: usize,
    /// Kept bytes of the line in progress (at most `max_line_bytes`).
    line: Vec<u8>,
    /// Full length of the line in progress so far.
    line_len: u64,
    /// Offset where the line in progress starts: everything before it has been emitted.
    line_start: u64,
    /// Offset of the next byte the source will give.
    pos: u64,
}

impl LineReader {
    /// A reader whose source is positioned at byte `start`.
    pub fn new(start: u64, max_line_bytes: usize) -> LineReader {
        LineReader {
            max_line_bytes,
            line: Vec::new(),
            line_len: 0,
            line_start: start,
            pos: start,
        }
    }

    /// Offset of the first byte not yet emitted as part of a record.
    pub fn line_start(&self) -> u64 {
        self.line_start
    }

    /// Offset of the next byte to read from the source.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Whether a line without its `\n` is held.
    pub fn has_partial(&self) -> bool {
        self.line_len > 0
    }

    /// Does one `read` into `scratch` and hands every line it completes to `each`.
    /// Returns the bytes read: 0 means the source is at its end for now.
    pub fn read_once(
        &mut self,
        src: &mut dyn Read,
        scratch: &mut [u8],
        each: impl FnMut(RecordRef<'_>),
    ) -> std::io::Result<usize> {
        let n = loop {
            match src.read(scratch) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        self.push_bytes(&scratch[..n], each);
        Ok(n)
    }

    /// Splits `bytes` (the next bytes of the source) into lines, handing each complete one
    /// to `each`. A line that lies whole in `bytes` is handed over where it lies; only one
    /// that spans two reads is gathered in the reader's own buffer.
    pub fn push_bytes(&mut self, mut bytes: &[u8], mut each: impl FnMut(RecordRef<'_>)) {
        self.pos += bytes.len() as u64;
        while !bytes.is_empty() {
            let Some(i) = memchr::memchr(b'\n', bytes) else {
                self.keep(bytes);
                break;
            };
            let offset = self.line_start;
            if self.line_len == 0 {
                each(RecordRef {
                    offset,
                    bytes: &bytes[..i.min(self.max_line_bytes)],
                    original_len: i as u64,
                    lines: 1,
                });
                self.line_start += i as u64 + 1;
            } else {
                self.keep(&bytes[..i]);
                self.line_start += self.line_len + 1;
                self.emit_held(offset, &mut each);
            }
            bytes = &bytes[i + 1..];
        }
    }

    /// Empties the line buffer for the next line. It is reused, but one grown by a long
    /// line is let go: a thousand open files each keeping `max_line_bytes` would add up.
    fn reset_line(&mut self) {
        if self.line.capacity() > RETAINED_LINE_BYTES {
            self.line = Vec::new();
        } else {
            self.line.clear();
        }
    }

    fn keep(&mut self, part: &[u8]) {
        let room = self.max_line_bytes.saturating_sub(self.line.len());
        self.line.extend_from_slice(&part[..part.len().min(room)]);
        self.line_len += part.len() as u64;
    }

    /// Hands the held last line (one without its `\n`) to `each`, once no more bytes can
    /// come. Returns whether there was one.
    pub fn take_partial(&mut self, each: impl FnOnce(RecordRef<'_>)) -> bool {
        if self.line_len == 0 {
            return false;
        }
        let offset = self.line_start;
        self.line_start += self.line_len;
        self.emit_held(offset, each);
        true
    }

    /// Hands the held line, which starts at `offset`, to `each` and empties the buffer.
    fn emit_held(&mut self, offset: u64, each: impl FnOnce(RecordRef<'_>)) {
        each(RecordRef {
            offset,
            bytes: &self.line,
            original_len: self.line_len,
            lines: 1,
        });
        self.reset_line();
        self.line_len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parsers::RawRecord;

    fn split(input: &[u8], max: usize, chunk: usize) -> (Vec<RawRecord>, LineReader) {
        let mut r = LineReader::new(0, max);
        let mut out = Vec::new();
        let mut src = input;
        let mut scratch = vec![0u8; chunk];
        while r
            .read_once(&mut src, &mut scratch, |l| out.push(l.to_record()))
            .unwrap()
            > 0
        {}
        (out, r)
    }

    #[test]
    fn lines_offsets_and_held_partial() {
        let (out, mut r) = split(b"a\r\nbb\n\nccc", 100, 2);
        let got: Vec<(u64, &[u8])> = out.iter().map(|r| (r.offset, r.bytes.as_slice())).collect();
        assert_eq!(got, vec![(0, &b"a\r"[..]), (3, b"bb"), (6, b"")]);
        assert_eq!(r.line_start(), 7);
        assert!(r.has_partial());
        let mut last = None;
        assert!(r.take_partial(|l| last = Some(l.to_record())));
        let last = last.unwrap();
        assert_eq!(
            (last.offset, last.bytes.as_slice(), last.original_len),
            (7, &b"ccc"[..], 3)
        );
        assert_eq!(r.line_start(), 10);
        assert!(!r.has_partial());
        assert!(!r.take_partial(|_| panic!("nothing is held")));
    }

    #[test]
    fn long_line_is_cut_with_exact_next_offset() {
        let mut input = vec![b'x'; 10_000];
        input.push(b'\n');
        input.extend_from_slice(b"next\n");
        // Read in pieces (the line spans reads) and whole (it lies in one read).
        for chunk in [333, 1 << 16] {
            let (out, _) = split(&input, 64, chunk);
            assert_eq!(out.len(), 2);
            assert_eq!(out[0].bytes.len(), 64);
            assert_eq!(out[0].original_len, 10_000);
            assert_eq!(out[1].offset, 10_001);
            assert_eq!(out[1].bytes, b"next");
        }
    }

    #[test]
    fn any_chunking_gives_the_same_lines() {
        let input = b"one\n\ntwo two\nthree three three\nfour\nnot yet";
        let (whole, _) = split(input, 8, input.len());
        for chunk in 1..input.len() {
            let (got, r) = split(input, 8, chunk);
            assert_eq!(got, whole, "chunks of {chunk}");
            assert_eq!(r.line_start(), 36);
        }
    }

    #[test]
    fn nul_and_invalid_utf8_pass_through() {
        let (out, _) = split(b"\0\xff\xfe x\n", 100, 4096);
        assert_eq!(out[0].bytes, b"\0\xff\xfe x");
    }
}
