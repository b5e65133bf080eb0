//! `EventBuilder`: a record of one followed file made into a complete, frame-sized `Event`.
//!
//! It owns the per-file state the time rules need (the previous event's time) and applies
//! DESIGN.md's contract 1:
//!
//! - the event time is the line's own time;
//! - a line without one takes the previous line's time, else the read time, flagged
//!   `time_inherited` either way;
//! - a time outside `[read - 7 days, read + 1 hour]` is replaced by the read time and
//!   flagged `time_suspect`.
//!
//! It never drops a record: whatever the bytes, an event comes out, cut to fit one frame
//! (flagged `truncated`, with `original_len` kept) when it must be.

use contracts::frame::MAX_FRAME_PAYLOAD;
use contracts::{CrawlId, Event, EventFlags, EventId, EventRef, FieldSpan};

use crate::utf8_cut::{char_floor, valid_prefix_if_only_tail_cut};
use crate::{RawRecord, RecordRef, SourceFormat, parse_line_into};

/// How far before the read time a line's own time is still believed: 7 days, in µs.
pub const MAX_TIME_BEHIND_US: i64 = 7 * 86_400 * 1_000_000;
/// How far after the read time a line's own time is still believed: 1 hour, in µs.
pub const MAX_TIME_AHEAD_US: i64 = 3_600 * 1_000_000;

/// Whether `time_us` lies in `[read - 7 days, read + 1 hour]`.
pub fn time_is_plausible(time_us: i64, read_time_us: i64) -> bool {
    time_us >= read_time_us.saturating_sub(MAX_TIME_BEHIND_US)
        && time_us <= read_time_us.saturating_add(MAX_TIME_AHEAD_US)
}

/// Builds complete events for one followed file, applying DESIGN.md's time rules.
#[derive(Debug, Clone)]
pub struct EventBuilder {
    format: SourceFormat,
    tailer_id: u64,
    file_seq: u64,
    crawl: CrawlId,
    host: String,
    app: String,
    max_line_bytes: usize,
    /// The time given to the previous event of this file: what a line without a time takes.
    last_time_us: Option<i64>,
    /// The spans of the record being built, reused from record to record.
    spans: Vec<FieldSpan>,
}

/// `s` cut to at most `max` bytes on a character boundary: the event encoding limits host
/// and app names, and a longer one would make an event that does not decode.
fn cut_name(mut s: String, max: usize) -> String {
    if s.len() > max {
        let cut = (0..=max)
            .rev()
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(0);
        s.truncate(cut);
    }
    s
}

impl EventBuilder {
    /// A builder for the file with sequence `file_seq` of tailer `tailer_id`, whose lines are
    /// in `format`, belong to `crawl`, and were written by `app` on `host` (each name is cut
    /// to `contracts::event::MAX_NAME_BYTES`). Records longer than `max_line_bytes` are cut.
    pub fn new(
        format: SourceFormat,
        tailer_id: u64,
        file_seq: u64,
        crawl: CrawlId,
        host: String,
        app: String,
        max_line_bytes: usize,
    ) -> Self {
        let max_name = contracts::event::MAX_NAME_BYTES;
        EventBuilder {
            format,
            tailer_id,
            file_seq,
            crawl,
            host: cut_name(host, max_name),
            app: cut_name(app, max_name),
            max_line_bytes,
            last_time_us: None,
            spans: Vec::new(),
        }
    }

    /// The time the previous event got, if any.
    pub fn last_time_us(&self) -> Option<i64> {
        self.last_time_us
    }

    /// Sets the time a following line without its own time inherits (a tailer resuming a
    /// file may know the time of the last line it shipped).
    pub fn set_last_time_us(&mut self, time_us: Option<i64>) {
        self.last_time_us = time_us;
    }

    /// One record (a line, or joined lines) read at byte `record.offset`; `original_len` is
    /// its length in the file (it may exceed `bytes.len()` if the reader already cut it).
    /// Returns a complete event that fits one frame.
    pub fn build(&mut self, record: RawRecord, read_time_us: i64) -> Event {
        self.build_ref(record.as_record_ref(), read_time_us)
            .to_event()
    }

    /// [`EventBuilder::build`] without copying: the event borrows the record's bytes and
    /// the builder's names and spans (one vector, reused for every record), so building
    /// allocates nothing.
    pub fn build_ref<'a>(&'a mut self, record: RecordRef<'a>, read_time_us: i64) -> EventRef<'a> {
        let original_len = record.original_len.max(record.bytes.len() as u64);
        let mut bytes = record.bytes;
        let mut flags = EventFlags::default();

        // Cut first, so that the parse's spans all lie in what is kept.
        let limit = self.max_line_bytes.min(MAX_FRAME_PAYLOAD);
        if bytes.len() > limit {
            bytes = &bytes[..char_floor(bytes, limit)];
        }
        let cut = original_len > bytes.len() as u64;
        match valid_prefix_if_only_tail_cut(bytes) {
            Some(valid) if valid == bytes.len() => {}
            // The reader's cap split the last character: drop its first bytes rather than
            // call the line invalid.
            Some(valid) if cut => bytes = &bytes[..valid],
            _ => flags.set(EventFlags::INVALID_UTF8),
        }
        if cut {
            flags.set(EventFlags::TRUNCATED);
        }
        if record.lines > 1 {
            flags.set(EventFlags::MULTILINE);
        }

        let parsed = parse_line_into(self.format, bytes, read_time_us, &mut self.spans);
        if parsed.failed {
            flags.set(EventFlags::PARSE_FAILED);
        }
        let time_us = match parsed.time_us {
            Some(t) if time_is_plausible(t, read_time_us) => t,
            Some(_) => {
                flags.set(EventFlags::TIME_SUSPECT);
                read_time_us
            }
            None => {
                flags.set(EventFlags::TIME_INHERITED);
                // A previous time that is itself out of the window now (the file sat idle
                // for a week) would be flagged suspect if it were the line's own: use the
                // read time instead.
                match self.last_time_us {
                    Some(prev) if time_is_plausible(prev, read_time_us) => prev,
                    _ => read_time_us,
                }
            }
        };
        self.last_time_us = Some(time_us);

        let id = EventId {
            tailer: self.tailer_id,
            file_seq: self.file_seq,
            offset: record.offset,
        };
        let head = EventRef {
            id,
            time_us,
            flags,
            original_len,
            format: parsed.format,
            crawl: &self.crawl,
            host: &self.host,
            app: &self.app,
            fields: &[],
            raw: &[],
        };
        let whole = EventRef {
            fields: &self.spans,
            raw: bytes,
            ..head
        };
        if let Some(fit) = whole.fit(MAX_FRAME_PAYLOAD) {
            bytes = &bytes[..fit.apply(&mut self.spans, &mut flags)];
            // The fit cuts bytes, not characters: take back a split last character.
            if !flags.has(EventFlags::INVALID_UTF8)
                && let Some(valid) = valid_prefix_if_only_tail_cut(bytes)
            {
                bytes = &bytes[..valid];
                self.spans
                    .retain(|f| f.start as usize + f.len as usize <= valid);
            }
        }
        EventRef {
            flags,
            fields: &self.spans,
            raw: bytes,
            ..head
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::{Field, Format};

    const READ: i64 = 1_795_255_200_000_000; // 2026-11-21T10:00:00Z

    fn builder(format: SourceFormat, max_line_bytes: usize) -> EventBuilder {
        let crawl = CrawlId::parse("crawl-1").expect("valid crawl id");
        EventBuilder::new(
            format,
            7,
            3,
            crawl,
            "crawler-07".into(),
            "heritrix".into(),
            max_line_bytes,
        )
    }

    fn line(offset: u64, text: &[u8]) -> RawRecord {
        RawRecord::line(offset, text.to_vec())
    }

    #[test]
    fn read_constant_is_what_it_says() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z").expect("valid");
        assert_eq!(t.timestamp_micros(), READ);
    }

    #[test]
    fn own_inherited_and_read_times() {
        let mut b = builder(SourceFormat::Plain, 65_000);
        let e = b.build(line(0, b"no time yet"), READ);
        assert_eq!((e.time_us, e.flags.0), (READ, EventFlags::TIME_INHERITED));
        let e = b.build(line(12, b"2026-11-21T09:59:00Z own"), READ);
        assert_eq!((e.time_us, e.flags.0), (READ - 60_000_000, 0));
        let e = b.build(line(37, b"\tno time"), READ + 5);
        assert_eq!(
            (e.time_us, e.flags.0),
            (READ - 60_000_000, EventFlags::TIME_INHERITED)
        );
        assert_eq!(
            e.id,
            EventId {
                tailer: 7,
                file_seq: 3,
                offset: 37
            }
        );
    }

    #[test]
    fn times_outside_the_window_are_suspect() {
        let mut b = builder(SourceFormat::Plain, 65_000);
        let week_ago = b.build(line(0, b"2026-11-14T10:00:00Z edge"), READ);
        assert_eq!(
            (week_ago.time_us, week_ago.flags.0),
            (READ - MAX_TIME_BEHIND_US, 0)
        );
        let older = b.build(line(0, b"2026-11-14T09:59:59Z old"), READ);
        assert_eq!(
            (older.time_us, older.flags.0),
            (READ, EventFlags::TIME_SUSPECT)
        );
        let ahead = b.build(line(0, b"2026-11-21T11:00:00Z edge"), READ);
        assert_eq!(
            (ahead.time_us, ahead.flags.0),
            (READ + MAX_TIME_AHEAD_US, 0)
        );
        let future = b.build(line(0, b"2026-11-21T11:00:01Z future"), READ);
        assert_eq!(
            (future.time_us, future.flags.0),
            (READ, EventFlags::TIME_SUSPECT)
        );
    }

    #[test]
    fn an_inherited_time_gone_stale_becomes_the_read_time() {
        let mut b = builder(SourceFormat::Plain, 65_000);
        b.build(line(0, b"2026-11-21T10:00:00Z x"), READ);
        let later = READ + MAX_TIME_BEHIND_US + 1;
        let e = b.build(line(23, b"untimed"), later);
        assert_eq!((e.time_us, e.flags.0), (later, EventFlags::TIME_INHERITED));
    }

    #[test]
    fn flags_invalid_utf8_parse_failure_and_multiline() {
        let mut b = builder(SourceFormat::CrawlLog, 65_000);
        let e = b.build(
            line(0, b"2026-11-21T10:00:00Z not a crawl line \xFF\xFE"),
            READ,
        );
        assert!(e.flags.has(EventFlags::INVALID_UTF8));
        assert!(e.flags.has(EventFlags::PARSE_FAILED));
        assert_eq!(e.format, Format::Plain);
        assert_eq!(e.time_us, READ, "the sniffed time is still used");
        assert_eq!(
            e.field_str(Field::Timestamp).as_deref(),
            Some("2026-11-21T10:00:00Z")
        );
        let trace = RawRecord {
            offset: 0,
            bytes: b"x\n\tat y".to_vec(),
            original_len: 7,
            lines: 2,
        };
        let e = b.build(trace, READ);
        assert!(e.flags.has(EventFlags::MULTILINE));
        assert!(!e.flags.has(EventFlags::INVALID_UTF8));
    }

    #[test]
    fn cuts_at_max_line_bytes_without_splitting_characters() {
        let mut b = builder(SourceFormat::Plain, 10);
        let e = b.build(line(0, "abcdefghi€xyz".as_bytes()), READ);
        assert_eq!(e.raw, b"abcdefghi");
        assert_eq!(e.original_len, 15);
        assert!(e.flags.has(EventFlags::TRUNCATED));
        assert!(!e.flags.has(EventFlags::INVALID_UTF8));
    }

    #[test]
    fn a_reader_cut_is_truncated_and_a_split_last_character_is_not_invalid() {
        let mut b = builder(SourceFormat::Plain, 65_000);
        let bytes = "ab€".as_bytes()[..4].to_vec();
        let e = b.build(
            RawRecord {
                offset: 0,
                bytes,
                original_len: 1_000_000,
                lines: 1,
            },
            READ,
        );
        assert_eq!(
            (e.raw.as_slice(), e.original_len),
            (b"ab".as_slice(), 1_000_000)
        );
        assert_eq!(
            e.flags.0,
            EventFlags::TRUNCATED | EventFlags::TIME_INHERITED
        );
    }

    #[test]
    fn oversized_lines_fit_one_frame() {
        let mut b = builder(SourceFormat::Auto, usize::MAX);
        let big = "é".repeat(100_000);
        let e = b.build(line(0, big.as_bytes()), READ);
        assert!(e.encoded_len() <= MAX_FRAME_PAYLOAD);
        assert!(std::str::from_utf8(&e.raw).is_ok());
        assert_eq!(e.original_len, 200_000);
        assert!(e.flags.has(EventFlags::TRUNCATED));
    }

    #[test]
    fn long_names_are_cut_so_the_event_decodes() {
        let crawl = CrawlId::parse("c").expect("valid");
        let mut b = EventBuilder::new(
            SourceFormat::Plain,
            1,
            1,
            crawl,
            "h".repeat(300),
            "é".repeat(200),
            100,
        );
        let e = b.build(line(0, b"x"), READ);
        assert_eq!(e.host.len(), 255);
        assert_eq!(e.app.len(), 254);
        let mut out = Vec::new();
        e.encode(&mut out);
        assert_eq!(Event::decode(&out).expect("decodes"), e);
    }
}
