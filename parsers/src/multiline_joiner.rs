//! `MultilineJoiner`: Java stack traces joined into the line that logged them.
//!
//! Heritrix's local-errors.log (and any Java log) writes one line and then its stack trace:
//!
//! ```text
//! (stack frames are indented with a tab in the file)
//! 2005-05-06T11:48:07.959Z    -2          - http://test.kb.dk/robots.txt LLP ... #024 - - -
//!  java.net.SocketTimeoutException: connect timed out: timeout set at 20000ms.
//!     at org.archive.crawler.fetcher.HeritrixProtocolSocketFactory.createSocket(...)
//! Caused by: java.io.IOException: x
//!     ... 12 more
//! ```
//!
//! A line is a continuation when [`is_continuation`] says so; it is appended (after a
//! `\n`) to the pending record. The pending record is only complete when the next
//! non-continuation line arrives, or when the tailer gives up waiting and calls
//! [`MultilineJoiner::flush`]; until then its offset is the tailer's checkpoint limit.

use crate::utf8_cut::char_floor;
use crate::{RawRecord, RecordRef};

/// Whether `line` continues the record before it: it starts with a space or tab (a stack
/// frame, an indented cause), `Caused by:`, `Suppressed:`, or is `... N more`.
pub fn is_continuation(line: &[u8]) -> bool {
    match line.first() {
        Some(b' ' | b'\t') => true,
        Some(b'C') => line.starts_with(b"Caused by:"),
        Some(b'S') => line.starts_with(b"Suppressed:"),
        Some(b'.') => is_n_more(line),
        _ => false,
    }
}

/// `... 12 more` (a trailing `\r` or spaces allowed).
fn is_n_more(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(b"... ") else {
        return false;
    };
    let n = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    n > 0
        && rest[n..].starts_with(b" more")
        && rest[n + 5..].iter().all(|&c| c == b' ' || c == b'\r')
}

/// Largest record buffer kept for reuse: far above a typical log line or stack trace.
const RETAINED_BYTES: usize = 16 * 1024;

/// Joins continuation lines into the record before them.
///
/// The record still open is copied into a buffer of the joiner's own (the lines it came
/// from are gone by the time it completes); a second buffer holds the record handed out
/// last, so that handing one out and opening the next needs no allocation.
#[derive(Debug)]
pub struct MultilineJoiner {
    /// Cap on a joined record's bytes; the rest is counted in `original_len`.
    max_bytes: usize,
    /// The record still open to continuation lines: its bytes are in `open`.
    pending: Option<Pending>,
    /// Bytes of the pending record.
    open: Vec<u8>,
    /// Bytes of the record last returned.
    done: Vec<u8>,
}

/// A pending record, but for its bytes.
#[derive(Debug, Clone, Copy)]
struct Pending {
    offset: u64,
    original_len: u64,
    lines: u32,
}

impl Pending {
    fn record(self, bytes: &[u8]) -> RecordRef<'_> {
        RecordRef {
            offset: self.offset,
            bytes,
            original_len: self.original_len,
            lines: self.lines,
        }
    }
}

impl MultilineJoiner {
    /// A joiner whose records hold at most `max_bytes` bytes (the rest is counted in
    /// `original_len`, so the event is marked truncated).
    pub fn new(max_bytes: usize) -> Self {
        MultilineJoiner {
            max_bytes,
            pending: None,
            open: Vec::new(),
            done: Vec::new(),
        }
    }

    /// Takes the next physical line. Returns the previous record when `line` starts a new
    /// one; a continuation line is absorbed and `None` returned.
    pub fn push_ref(&mut self, line: RecordRef<'_>) -> Option<RecordRef<'_>> {
        let original_len = line.original_len.max(line.bytes.len() as u64);
        let lines = line.lines.max(1);
        match &mut self.pending {
            Some(record) if is_continuation(line.bytes) => {
                let room = self.max_bytes.saturating_sub(self.open.len());
                let cut = record.original_len > self.open.len() as u64;
                // Append only what fits whole with its separator: a lone `\n` would say
                // nothing.
                if room > 1 && !cut {
                    let take = char_floor(line.bytes, room - 1);
                    self.open.push(b'\n');
                    self.open.extend_from_slice(&line.bytes[..take]);
                }
                record.original_len += 1 + original_len;
                record.lines = record.lines.saturating_add(lines);
                None
            }
            _ => {
                self.rotate_buffers();
                let keep = char_floor(line.bytes, self.max_bytes);
                self.open.extend_from_slice(&line.bytes[..keep]);
                let previous = self.pending.replace(Pending {
                    offset: line.offset,
                    original_len,
                    lines,
                });
                previous.map(|p| p.record(&self.done))
            }
        }
    }

    /// The open record's buffer becomes the one handed out, and the other is emptied for
    /// the next record. A buffer grown by a long record is let go rather than kept: a
    /// thousand followed files each keeping `max_bytes` twice would add up.
    fn rotate_buffers(&mut self) {
        std::mem::swap(&mut self.open, &mut self.done);
        if self.open.capacity() > RETAINED_BYTES {
            self.open = Vec::new();
        } else {
            self.open.clear();
        }
    }

    /// [`MultilineJoiner::push_ref`] for owned records.
    pub fn push(&mut self, line: RawRecord) -> Option<RawRecord> {
        self.push_ref(line.as_record_ref()).map(|r| r.to_record())
    }

    /// Takes the pending record, complete or not: on an idle timeout, a file that stopped
    /// growing, or shutdown.
    pub fn flush_ref(&mut self) -> Option<RecordRef<'_>> {
        let p = self.pending.take()?;
        self.rotate_buffers();
        Some(p.record(&self.done))
    }

    /// [`MultilineJoiner::flush_ref`] for an owned record.
    pub fn flush(&mut self) -> Option<RawRecord> {
        self.flush_ref().map(|r| r.to_record())
    }

    /// Offset of the pending record: the tailer must not checkpoint past it, since its
    /// event has not been built yet.
    pub fn pending_offset(&self) -> Option<u64> {
        self.pending.as_ref().map(|r| r.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<RawRecord> {
        let mut offset = 0;
        text.split('\n')
            .map(|l| {
                let r = RawRecord::line(offset, l.as_bytes().to_vec());
                offset += l.len() as u64 + 1;
                r
            })
            .collect()
    }

    fn join_all(j: &mut MultilineJoiner, text: &str) -> Vec<RawRecord> {
        let mut out: Vec<RawRecord> = lines(text).into_iter().filter_map(|l| j.push(l)).collect();
        out.extend(j.flush());
        out
    }

    #[test]
    fn continuation_lines() {
        for yes in [
            "\tat a.b(C.java:1)",
            " java.net.X: y",
            "Caused by: x",
            "Suppressed: y",
            "... 12 more",
            "... 3 more \r",
        ] {
            assert!(is_continuation(yes.as_bytes()), "{yes:?}");
        }
        for no in [
            "",
            "java.lang.X",
            "Caused",
            "...",
            "... more",
            "... 12 less",
            "... 12 more!",
            "2026-11-21 x",
            "Suppressed",
        ] {
            assert!(!is_continuation(no.as_bytes()), "{no:?}");
        }
    }

    #[test]
    fn joins_a_trace_into_its_line_and_keeps_offsets() {
        let text = "first\nsecond\n\tat x\nCaused by: y\n\t... 2 more\nthird";
        let mut j = MultilineJoiner::new(1000);
        let got = join_all(&mut j, text);
        assert_eq!(got.len(), 3);
        assert_eq!(
            (got[0].offset, got[0].lines, got[0].bytes.as_slice()),
            (0, 1, b"first".as_slice())
        );
        let trace = "second\n\tat x\nCaused by: y\n\t... 2 more";
        assert_eq!((got[1].offset, got[1].lines), (6, 4));
        assert_eq!(got[1].bytes, trace.as_bytes());
        assert_eq!(got[1].original_len, trace.len() as u64);
        assert_eq!(&text[got[2].offset as usize..], "third");
    }

    #[test]
    fn pending_offset_tracks_the_open_record() {
        let mut j = MultilineJoiner::new(100);
        assert_eq!(j.pending_offset(), None);
        assert!(j.push(RawRecord::line(10, b"a".to_vec())).is_none());
        assert_eq!(j.pending_offset(), Some(10));
        assert!(j.push(RawRecord::line(12, b" b".to_vec())).is_none());
        assert_eq!(j.pending_offset(), Some(10));
        assert_eq!(
            j.push(RawRecord::line(15, b"c".to_vec())).map(|r| r.offset),
            Some(10)
        );
        assert_eq!(j.pending_offset(), Some(15));
        assert_eq!(j.flush().map(|r| r.offset), Some(15));
        assert_eq!(j.pending_offset(), None);
    }

    #[test]
    fn a_leading_continuation_line_is_a_record_of_its_own() {
        let got = join_all(&mut MultilineJoiner::new(100), "\tat orphan\nnext");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].bytes, b"\tat orphan");
    }

    #[test]
    fn caps_bytes_and_counts_the_rest() {
        let text = "head\n\tat 123456789\n\tat 987654321";
        let mut j = MultilineJoiner::new(12);
        let got = join_all(&mut j, text);
        assert_eq!(got.len(), 1);
        assert!(got[0].bytes.len() <= 12);
        assert_eq!(got[0].bytes, b"head\n\tat 123");
        assert_eq!(got[0].original_len, text.len() as u64);
        assert_eq!(got[0].lines, 3);
        assert!(got[0].is_cut());
    }

    #[test]
    fn cap_never_splits_a_character() {
        let mut j = MultilineJoiner::new(7);
        j.push(RawRecord::line(0, "ab".as_bytes().to_vec()));
        j.push(RawRecord::line(3, " €€".as_bytes().to_vec()));
        let r = j.flush().expect("pending");
        assert_eq!(r.bytes, "ab\n €".as_bytes());
        let mut j = MultilineJoiner::new(3);
        j.push(RawRecord::line(0, "a€".as_bytes().to_vec()));
        assert_eq!(j.flush().expect("pending").bytes, b"a");
    }
}
