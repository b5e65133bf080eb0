//! Turns raw log lines into the parsed part of a [`contracts::Event`]: Heritrix crawl.log,
//! syslog (RFC 5424 and RFC 3164) and plain text with a sniffed timestamp. The tailer reads
//! lines, joins Java stack traces with a [`MultilineJoiner`], and hands each record to an
//! [`EventBuilder`], which parses it with [`parse_line`], applies DESIGN.md's time rules and
//! returns an event that fits one frame.
//!
//! Each step also has a borrowing form for the tailer's hot path, where a line costs no
//! allocation: [`RecordRef`] lines, [`MultilineJoiner::push_ref`], [`parse_line_into`] (spans
//! into a reused vector) and [`EventBuilder::build_ref`], which returns a
//! [`contracts::EventRef`] ready to encode. The owned forms are thin wrappers over them.
//!
//! Lines are bytes: they may be invalid UTF-8, hold NULs or be huge. Parsers work on the
//! bytes, record fields as spans of the line (no allocation per field, no regex), and never
//! panic; a line that does not match its source's format is kept as plain and flagged.
//! What each format extracts is described in `docs/parsers.md`.
//!
//! # Layout
//!
//! - [`source_format`]: [`SourceFormat`], the configured format of a source.
//! - [`parsed`]: [`Parsed`], the spans and time found in one line; [`LineParse`], the same
//!   without the spans.
//! - `crawl_log`, `syslog`, `plain`: one parser per format; `timestamp`: the byte-level
//!   time parsers they share.
//! - [`raw_record`]: [`RawRecord`], a line or joined lines as read, and [`RecordRef`], the
//!   same borrowed.
//! - [`multiline_joiner`]: [`MultilineJoiner`] and [`is_continuation`].
//! - [`event_builder`]: [`EventBuilder`], records to events with the time rules.
//! - `error`: [`UnknownFormat`].
//!
//! # Example
//!
//! ```
//! use contracts::{CrawlId, EventFlags, Field, Format};
//! use parsers::{EventBuilder, MultilineJoiner, RawRecord, SourceFormat};
//!
//! let read_time_us = 1_795_255_200_000_000; // 2026-11-21T10:00:00Z
//! let log = "2026-11-21T09:59:58.470Z   200   1234 http://example.com/ - - text/html #045 \
//!            20261121095958000+15 sha1:ABCD - content-size:1500\n\
//!            2026-11-21T09:59:59.000Z    -2      - http://example.com/x L http://example.com/ no-type #046 - - -\n \
//!            java.net.SocketTimeoutException: connect timed out\n\
//!            \tat org.archive.crawler.fetcher.FetchHTTP.innerProcess(FetchHTTP.java:373)";
//! let crawl = CrawlId::parse("crawl-1").unwrap();
//! let mut builder = EventBuilder::new(SourceFormat::CrawlLog, 1, 0, crawl, "crawler-07".into(), "heritrix".into(), 65_000);
//! let mut joiner = MultilineJoiner::new(65_000);
//! let mut events = Vec::new();
//! let mut offset = 0;
//! for line in log.split('\n') {
//!     if let Some(record) = joiner.push(RawRecord::line(offset, line.as_bytes().to_vec())) {
//!         events.push(builder.build(record, read_time_us));
//!     }
//!     offset += line.len() as u64 + 1;
//! }
//! events.extend(joiner.flush().map(|record| builder.build(record, read_time_us)));
//!
//! assert_eq!(events.len(), 2);
//! assert_eq!(events[0].format, Format::CrawlLog);
//! assert_eq!(events[0].field_str(Field::Url).as_deref(), Some("http://example.com/"));
//! assert_eq!(events[1].field_str(Field::Status).as_deref(), Some("-2"));
//! assert!(events[1].flags.has(EventFlags::MULTILINE));
//! assert_eq!(events[1].time_us, read_time_us - 1_000_000);
//! ```
#![deny(missing_docs)]

mod crawl_log;
mod error;
pub mod event_builder;
pub mod multiline_joiner;
pub mod parsed;
mod plain;
pub mod raw_record;
pub mod source_format;
pub mod stream_events;
mod syslog;
mod timestamp;
mod utf8_cut;

pub use error::UnknownFormat;
pub use event_builder::{EventBuilder, MAX_TIME_AHEAD_US, MAX_TIME_BEHIND_US, time_is_plausible};
pub use multiline_joiner::{MultilineJoiner, is_continuation};
pub use parsed::{LineParse, Parsed};
pub use plain::SNIFF_WINDOW;
pub use raw_record::{RawRecord, RecordRef};
pub use source_format::SourceFormat;

use contracts::{FieldSpan, Format};

/// Longest prefix of a line that is parsed: spans are `u32`s. The tailer's lines are far
/// shorter (they must fit a 64 KiB frame), so this only keeps hostile input harmless.
const MAX_PARSED_BYTES: usize = u32::MAX as usize;

/// Parses one line (or joined record). `read_time_us` (µs since the epoch, UTC) chooses the
/// year of a time written without one (RFC 3164). `failed` is true when the configured
/// format (not `Auto`) did not match: the result is then `Format::Plain` with a sniffed
/// timestamp if any.
pub fn parse_line(format: SourceFormat, line: &[u8], read_time_us: i64) -> Parsed {
    let mut fields = Vec::new();
    let p = parse_line_into(format, line, read_time_us, &mut fields);
    Parsed {
        format: p.format,
        fields,
        time_us: p.time_us,
        failed: p.failed,
    }
}

/// [`parse_line`], writing the spans to `fields` (cleared first) instead of a new vector:
/// the tailer reuses one for every line.
pub fn parse_line_into(
    format: SourceFormat,
    line: &[u8],
    read_time_us: i64,
    fields: &mut Vec<FieldSpan>,
) -> LineParse {
    let line = &line[..line.len().min(MAX_PARSED_BYTES)];
    let matched = |format, time_us| LineParse {
        format,
        time_us,
        failed: false,
    };
    // Each attempt starts from an empty vector: one that fails may leave spans behind.
    let crawl_log = |fields: &mut Vec<FieldSpan>| {
        fields.clear();
        crawl_log::parse_into(line, fields).map(|t| matched(Format::CrawlLog, Some(t)))
    };
    let syslog = |fields: &mut Vec<FieldSpan>| {
        fields.clear();
        if let Some(t) = syslog::parse_5424_into(line, fields) {
            return Some(matched(Format::Syslog, t));
        }
        fields.clear();
        syslog::parse_3164_into(line, read_time_us, fields)
            .map(|t| matched(Format::Syslog, Some(t)))
    };
    let parsed = match format {
        SourceFormat::CrawlLog => crawl_log(fields),
        SourceFormat::Syslog => syslog(fields),
        SourceFormat::Plain => None,
        SourceFormat::Auto => crawl_log(fields).or_else(|| syslog(fields)),
    };
    parsed.unwrap_or_else(|| {
        fields.clear();
        let failed = matches!(format, SourceFormat::CrawlLog | SourceFormat::Syslog);
        plain(line, read_time_us, failed, fields)
    })
}

fn plain(line: &[u8], read_time_us: i64, failed: bool, fields: &mut Vec<FieldSpan>) -> LineParse {
    let time_us = plain::sniff(line, read_time_us).map(|(span, t)| {
        fields.push(span);
        t
    });
    LineParse {
        format: Format::Plain,
        time_us,
        failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::Field;

    const READ: i64 = 1_795_255_200_000_000; // 2026-11-21T10:00:00Z

    #[test]
    fn auto_picks_each_format_and_never_fails() {
        let cases: [(&[u8], Format); 6] = [
            (
                b"2026-11-21T10:00:00.000Z 200 1 http://x/ L - text/html #1 - - -",
                Format::CrawlLog,
            ),
            (b"<13>1 2026-11-21T10:00:00Z h app - - - hi", Format::Syslog),
            (b"Nov 21 10:00:00 h app[1]: hi", Format::Syslog),
            (
                b"2026-11-21T10:00:00Z CRAWL RUNNING - Running",
                Format::Plain,
            ),
            (b"\xFF\x00 garbage", Format::Plain),
            (b"", Format::Plain),
        ];
        for (line, want) in cases {
            let p = parse_line(SourceFormat::Auto, line, READ);
            assert_eq!(
                (p.format, p.failed),
                (want, false),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn a_configured_format_that_does_not_match_is_plain_and_failed() {
        let line = b"2026-11-21T10:00:00Z CRAWL RUNNING - Running";
        for format in [SourceFormat::CrawlLog, SourceFormat::Syslog] {
            let p = parse_line(format, line, READ);
            assert_eq!(
                (p.format, p.failed, p.time_us),
                (Format::Plain, true, Some(READ))
            );
            assert_eq!(p.field(line, Field::Timestamp), Some(&line[..20]));
        }
        let p = parse_line(SourceFormat::Plain, b"Nov 21 10:00:00 h app[1]: hi", READ);
        assert_eq!(
            (p.format, p.failed, p.time_us),
            (Format::Plain, false, Some(READ))
        );
    }
}
