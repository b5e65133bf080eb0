//! Synthetic crawl-log events, the same for a given offset in every process: the demo
//! server, the tests and the benchmark publish them, and two demo bucks publishing the
//! same offsets publish the same ids, as two home bucks of one crawl do.

use chrono::{DateTime, SecondsFormat, Utc};
use contracts::event::{EventFlags, FieldSpan};
use contracts::{CrawlId, Event, EventId, Field, Format};

/// The tailer id of every synthetic event.
pub const TAILER: u64 = 0x51_u64 << 56 | 0xce;

/// Crawls, by `offset % 3`: `crawl-a` for 0, `crawl-b` otherwise.
pub fn crawl_of(offset: u64) -> &'static str {
    if offset.is_multiple_of(3) {
        "crawl-a"
    } else {
        "crawl-b"
    }
}

/// Status codes, cycling by `offset % 6`.
pub fn status_of(offset: u64) -> i64 {
    [200, 404, 503, -5002, 301, 410][(offset % 6) as usize]
}

/// Host, by `offset % 4`.
pub fn host_of(offset: u64) -> String {
    format!("crawler-{:02}", offset % 4)
}

/// The synthetic event at `offset`, stamped `time_us`, its line padded to about
/// `line_bytes` (never shorter than its fields).
pub fn event(offset: u64, time_us: i64, line_bytes: usize) -> Event {
    let time = DateTime::<Utc>::from_timestamp_micros(time_us).unwrap_or(DateTime::UNIX_EPOCH);
    let ts = time.to_rfc3339_opts(SecondsFormat::Millis, true);
    let status = status_of(offset).to_string();
    let mut line = format!("{ts} {status:>5} {:>10} ", 1000 + offset % 9000);
    let status_start = ts.len() + 1 + (5 - status.len().min(5));
    line.push_str(&format!(
        "http://www.example-{}.com/page/{offset} LL http://www.example-{}.com/ text/html #{:03} line-{offset}",
        offset % 97,
        offset % 97,
        offset % 50
    ));
    while line.len() < line_bytes {
        line.push_str(" lorem-ipsum");
    }
    let raw = line.into_bytes();
    Event {
        id: EventId {
            tailer: TAILER,
            file_seq: 1,
            offset,
        },
        time_us,
        flags: EventFlags::default(),
        original_len: raw.len() as u64,
        format: Format::CrawlLog,
        // Literals from crawl_of, all valid (tested below).
        crawl: CrawlId::parse(crawl_of(offset)).expect("synthetic crawl ids are valid"),
        host: host_of(offset),
        app: "heritrix".into(),
        fields: vec![FieldSpan {
            field: Field::Status,
            start: status_start as u32,
            len: status.len() as u32,
        }],
        raw,
    }
}

/// The id string of the synthetic event at `offset`, as `Event::to_json` writes it.
pub fn id_of(offset: u64) -> String {
    EventId {
        tailer: TAILER,
        file_seq: 1,
        offset,
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_point_at_the_status() {
        for off in 0..12 {
            let e = event(off, 1_795_254_400_000_000, 200);
            assert_eq!(
                e.field_str(Field::Status).unwrap(),
                status_of(off).to_string()
            );
            assert!(e.raw.len() >= 200);
            assert_eq!(e.id.to_string(), id_of(off));
        }
    }
}
