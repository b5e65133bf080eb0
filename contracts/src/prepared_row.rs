//! `PreparedRow`: an event's segment row worked out ahead of the writer, owning nothing of
//! the event.
//!
//! [`SegmentRow::of`] checks the line's UTF-8, parses times, derives the URL host and
//! rebuilds the crawl.log line to see whether the columns alone can give it back. The
//! buck has one writer per segment, so that work is done on the connection's task
//! instead, and the writer only turns the plan back into a row (slices of the line) and
//! binds it. Every text the row borrows from the line is kept as a byte range of it, so
//! making the plan copies no field and the row it gives back is exactly
//! `SegmentRow::of(event, None)`.

use std::borrow::Cow;
use std::ops::Range;

use chrono::NaiveDate;

use crate::segment_row::{CrawlColumns, SegmentRow};
use crate::{CrawlId, Event, EventId};

/// A text column: a range of the event's line, or text made for the row.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Text {
    Line(Range<u32>),
    Made(String),
}

impl Text {
    /// `text` as a range of `line` when it is a slice of it, else a copy.
    fn of(text: Cow<'_, str>, line: Option<&str>) -> Text {
        if let (Cow::Borrowed(t), Some(l)) = (&text, line) {
            // Addresses compared, not dereferenced: whether `t` lies inside `l`.
            let start = (t.as_ptr() as usize).wrapping_sub(l.as_ptr() as usize);
            if start <= l.len()
                && t.len() <= l.len() - start
                && let (Ok(s), Ok(e)) = (u32::try_from(start), u32::try_from(start + t.len()))
            {
                return Text::Line(s..e);
            }
        }
        Text::Made(text.into_owned())
    }

    fn get<'a>(&'a self, line: Option<&'a str>) -> Cow<'a, str> {
        match self {
            Text::Made(s) => Cow::Borrowed(s),
            Text::Line(r) => Cow::Borrowed(
                line.and_then(|l| l.get(r.start as usize..r.end as usize))
                    .unwrap_or_default(),
            ),
        }
    }
}

fn opt_text(text: Option<Cow<'_, str>>, line: Option<&str>) -> Option<Text> {
    text.map(|t| Text::of(t, line))
}

fn opt_get<'a>(text: &'a Option<Text>, line: Option<&'a str>) -> Option<Cow<'a, str>> {
    text.as_ref().map(|t| t.get(line))
}

/// [`CrawlColumns`] with its texts as ranges of the line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CrawlPlan {
    log_time: Option<Text>,
    status: i64,
    size: Option<i64>,
    url: Text,
    hop_path: Option<Text>,
    via: Option<Text>,
    mimetype: Option<Text>,
    thread: Option<Text>,
    fetch_time: Option<Text>,
    fetch_parts: Option<(i64, i64)>,
    digest: Option<Text>,
    source_tag: Option<Text>,
    annotations: Option<Text>,
    extra: Option<Text>,
    url_host: Option<String>,
}

/// The row of one event, made without the writer; see the module doc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedRow {
    /// The line column: `None` when the columns rebuild it. A UTF-8 line is a range (the
    /// whole line); another is its lossy text.
    line: Option<Text>,
    /// The raw bytes are stored (the line is not UTF-8).
    raw: bool,
    fields: Option<String>,
    original_len: Option<i64>,
    crawl: Option<CrawlPlan>,
}

/// The event's line when it is UTF-8.
fn line_text(ev: &Event) -> Option<&str> {
    std::str::from_utf8(&ev.raw).ok()
}

impl PreparedRow {
    /// The plan of `SegmentRow::of(ev, None)`.
    pub fn of(ev: &Event) -> PreparedRow {
        let row = SegmentRow::of(ev, None);
        let line = line_text(ev);
        PreparedRow {
            line: opt_text(row.line, line),
            raw: row.raw.is_some(),
            fields: row.fields.map(Cow::into_owned),
            original_len: row.original_len,
            crawl: row.crawl.map(|c| CrawlPlan {
                log_time: opt_text(c.log_time, line),
                status: c.status,
                size: c.size,
                url: Text::of(c.url, line),
                hop_path: opt_text(c.hop_path, line),
                via: opt_text(c.via, line),
                mimetype: opt_text(c.mimetype, line),
                thread: opt_text(c.thread, line),
                fetch_time: opt_text(c.fetch_time, line),
                fetch_parts: c.fetch_parts,
                digest: opt_text(c.digest, line),
                source_tag: opt_text(c.source_tag, line),
                annotations: opt_text(c.annotations, line),
                extra: opt_text(c.extra, line),
                url_host: c.url_host,
            }),
        }
    }

    /// The row, slices of `ev` (the event this plan was made of), of `line` (its line,
    /// when UTF-8) and of the plan.
    pub fn row<'a>(&'a self, ev: &'a Event, line: Option<&'a str>) -> SegmentRow<'a> {
        let crawl = self.crawl.as_ref().map(|c| CrawlColumns {
            log_time: opt_get(&c.log_time, line),
            status: c.status,
            size: c.size,
            url: c.url.get(line),
            hop_path: opt_get(&c.hop_path, line),
            via: opt_get(&c.via, line),
            mimetype: opt_get(&c.mimetype, line),
            thread: opt_get(&c.thread, line),
            fetch_time: opt_get(&c.fetch_time, line),
            fetch_parts: c.fetch_parts,
            digest: opt_get(&c.digest, line),
            source_tag: opt_get(&c.source_tag, line),
            annotations: opt_get(&c.annotations, line),
            extra: opt_get(&c.extra, line),
            url_host: c.url_host.clone(),
        });
        SegmentRow::with_parts(
            ev,
            self.original_len,
            opt_get(&self.line, line),
            self.raw.then_some(ev.raw.as_slice()),
            self.fields.as_deref().map(Cow::Borrowed),
            crawl,
        )
    }
}

/// An event and its [`PreparedRow`], waiting for the writer. A UTF-8 line is moved (not
/// copied) out of the event into a `String` for that time, so that the writer slices it
/// without checking it again (that check was 4% of the writer under a steady load);
/// [`into_event`](PreparedEvent::into_event) gives the event back whole.
#[derive(Debug)]
pub struct PreparedEvent {
    /// The event; its `raw` is empty while `line` holds it.
    event: Event,
    line: Option<String>,
    row: PreparedRow,
}

impl PreparedEvent {
    /// Works out `event`'s row.
    pub fn new(mut event: Event) -> PreparedEvent {
        let row = PreparedRow::of(&event);
        let line = match String::from_utf8(std::mem::take(&mut event.raw)) {
            Ok(s) => Some(s),
            Err(e) => {
                event.raw = e.into_bytes();
                None
            }
        };
        PreparedEvent { event, line, row }
    }

    /// The event's id.
    pub fn id(&self) -> &EventId {
        &self.event.id
    }

    /// The event's crawl.
    pub fn crawl(&self) -> &CrawlId {
        &self.event.crawl
    }

    /// The event's UTC day.
    pub fn day(&self) -> NaiveDate {
        self.event.day()
    }

    /// The length of the event's line in bytes.
    pub fn raw_len(&self) -> usize {
        self.line.as_ref().map_or(self.event.raw.len(), String::len)
    }

    /// The event's segment row.
    pub fn row(&self) -> SegmentRow<'_> {
        let line = match &self.line {
            Some(l) => Some(l.as_str()),
            None => line_text(&self.event),
        };
        self.row.row(&self.event, line)
    }

    /// The whole event, for what takes one (a version-1 segment's insert).
    pub fn event(&mut self) -> &Event {
        if let Some(l) = self.line.take() {
            self.event.raw = l.into_bytes();
        }
        &self.event
    }

    /// The whole event.
    pub fn into_event(mut self) -> Event {
        self.event();
        self.event
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_events::crawl_event;
    use crate::{EventFlags, EventId, Format};

    fn plain(raw: &[u8]) -> Event {
        Event {
            id: EventId {
                tailer: 7,
                file_seq: 2,
                offset: 40,
            },
            time_us: 1_700_000_000_123_456,
            flags: EventFlags::default(),
            original_len: raw.len() as u64 + 5,
            format: Format::Plain,
            crawl: crate::CrawlId::parse("c").unwrap(),
            host: "h".into(),
            app: "a".into(),
            fields: vec![],
            raw: raw.to_vec(),
        }
    }

    /// Whatever the event, the prepared row is the row `SegmentRow::of` makes.
    #[test]
    fn gives_back_the_row_segment_row_makes() {
        let lines = [
            // Heritrix's layout: rebuilt from the columns, no line stored.
            "2026-12-04T10:00:00.123Z   200       1234 http://a.example/x L http://a.example/ text/html #012 20261204095959999+120 sha1:ABC - - {\"warcFilename\":\"w.warc.gz\"}",
            // Not Heritrix's columns: the line and its fields are stored.
            "2026-12-04T10:00:00.123Z 200 1234 http://User@A.example:8080/x L http://a.example/ text/html #012 20261204095959999+120 sha1:ABC - - -",
            // A fetch time that does not write back.
            "2026-12-04T10:00:00.123Z   404          - dns:Example.COM P - unknown #001 2026120409595+3 - - -",
        ];
        let t = chrono::DateTime::parse_from_rfc3339("2026-12-04T10:00:00.123Z")
            .unwrap()
            .timestamp_micros();
        let mut events: Vec<Event> = lines.iter().map(|l| crawl_event(l, t)).collect();
        events.push(plain(b"plain \"text\" line"));
        events.push(plain(b"not utf-8 \xff\xfe here"));
        let mut bad = crawl_event(lines[1], t);
        bad.raw.push(0xff);
        events.push(bad);
        for ev in &events {
            let plan = PreparedRow::of(ev);
            assert_eq!(
                plan.row(ev, line_text(ev)),
                SegmentRow::of(ev, None),
                "{ev:?}"
            );
            let mut prepared = PreparedEvent::new(ev.clone());
            assert_eq!(prepared.row(), SegmentRow::of(ev, None), "{ev:?}");
            assert_eq!(prepared.raw_len(), ev.raw.len());
            assert_eq!(prepared.event(), ev);
            assert_eq!(
                prepared.row(),
                SegmentRow::of(ev, None),
                "given back: {ev:?}"
            );
            assert_eq!(&PreparedEvent::new(ev.clone()).into_event(), ev);
        }
        assert!(PreparedRow::of(&events[0]).line.is_none(), "rebuilt line");
        assert!(matches!(
            PreparedRow::of(&events[1]).line,
            Some(Text::Line(_))
        ));
    }
}
