//! Events for the unit tests of more than one module.

use crate::{CrawlId, Event, EventFlags, EventId, Field, FieldSpan, Format};

/// A crawl.log event of `line` at `time_us`, with the field spans the crawl.log parser
/// would mark (this crate cannot call the parser, which depends on it).
pub(crate) fn crawl_event(line: &str, time_us: i64) -> Event {
    // Spans by splitting on runs of spaces, as the crawl.log parser does for the
    // leading eleven fields; the rest is annotations then an optional JSON object.
    let mut fields = Vec::new();
    let b = line.as_bytes();
    let mut pos = 0;
    let leading = [
        Field::LogTime,
        Field::Status,
        Field::Size,
        Field::Url,
        Field::HopPath,
        Field::Via,
        Field::MimeType,
        Field::Thread,
        Field::FetchTime,
        Field::Digest,
        Field::SourceTag,
        Field::Annotations,
    ];
    for f in leading {
        while pos < b.len() && b[pos] == b' ' {
            pos += 1;
        }
        let start = pos;
        while pos < b.len() && b[pos] != b' ' {
            pos += 1;
        }
        fields.push(FieldSpan {
            field: f,
            start: start as u32,
            len: (pos - start) as u32,
        });
    }
    if pos + 1 < b.len() {
        fields.push(FieldSpan {
            field: Field::Extra,
            start: pos as u32 + 1,
            len: (b.len() - pos - 1) as u32,
        });
    }
    Event {
        id: EventId {
            tailer: u64::MAX - 1,
            file_seq: 3,
            offset: 99,
        },
        time_us,
        flags: EventFlags::default(),
        original_len: b.len() as u64,
        format: Format::CrawlLog,
        crawl: CrawlId::parse("c").unwrap(),
        host: "h".into(),
        app: "a".into(),
        fields,
        raw: b.to_vec(),
    }
}
