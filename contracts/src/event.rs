//! The event: one log line (or one multi-line record) with its identity and parsed fields.
//!
//! The binary encoding (version 1, see `docs/formats.md`) keeps the raw line once and
//! stores parsed fields as byte spans into it, so a parsed event costs only a few bytes
//! more than its line, on the wire, in the spool and through zlib.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde_json::{Map, Value};

use crate::varint::{self, Reader};
use crate::{CrawlId, DecodeError};

/// Version of the event encoding written by this build.
pub const EVENT_VERSION: u8 = 1;

/// Identity of an event: where its first byte was read. The same line read twice gets
/// the same id, so every store de-duplicates on it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct EventId {
    /// The tailer's random id, kept in its state directory.
    pub tailer: u64,
    /// The file sequence number the tailer assigned to the file.
    pub file_seq: u64,
    /// Byte offset (in the uncompressed file) where the event starts.
    pub offset: u64,
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}-{}-{}", self.tailer, self.file_seq, self.offset)
    }
}

impl FromStr for EventId {
    type Err = DecodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || DecodeError::invalid("event id", 0, format!("{s:?} is not TAILERHEX-SEQ-OFFSET"));
        let mut it = s.split('-');
        let (Some(t), Some(q), Some(o), None) = (it.next(), it.next(), it.next(), it.next()) else {
            return Err(bad());
        };
        Ok(EventId {
            tailer: u64::from_str_radix(t, 16).map_err(|_| bad())?,
            file_seq: q.parse().map_err(|_| bad())?,
            offset: o.parse().map_err(|_| bad())?,
        })
    }
}

/// The log format an event was parsed as.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u8)]
pub enum Format {
    /// A line that matched no parser, or a source configured as plain.
    Plain = 1,
    /// A Heritrix crawl.log line (Heritrix 1 or 3).
    CrawlLog = 2,
    /// A syslog line, RFC 3164 or RFC 5424.
    Syslog = 3,
}

impl Format {
    /// The name used in config, JSON and SQL.
    pub fn name(self) -> &'static str {
        match self {
            Format::Plain => "plain",
            Format::CrawlLog => "crawl_log",
            Format::Syslog => "syslog",
        }
    }

    pub(crate) fn from_code(c: u8) -> Option<Format> {
        Some(match c {
            1 => Format::Plain,
            2 => Format::CrawlLog,
            3 => Format::Syslog,
            _ => return None,
        })
    }

    /// Parses a format name.
    pub fn from_name(s: &str) -> Option<Format> {
        Some(match s {
            "plain" => Format::Plain,
            "crawl_log" => Format::CrawlLog,
            "syslog" => Format::Syslog,
            _ => return None,
        })
    }
}

/// Per-event flags, a bit set.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug, Hash)]
pub struct EventFlags(pub u8);

impl EventFlags {
    /// The time came from outside [read - 7 days, read + 1 hour] and was replaced by the read time.
    pub const TIME_SUSPECT: u8 = 1;
    /// The line was cut to fit one frame; `original_len` holds its length.
    pub const TRUNCATED: u8 = 2;
    /// The line failed its source's parser and is shipped as plain.
    pub const PARSE_FAILED: u8 = 4;
    /// The line had no time of its own; it took the previous line's (or the read time).
    pub const TIME_INHERITED: u8 = 8;
    /// Several physical lines (a stack trace) joined into one event.
    pub const MULTILINE: u8 = 16;
    /// The raw bytes are not valid UTF-8.
    pub const INVALID_UTF8: u8 = 32;
    pub(crate) const KNOWN: u8 = 63;

    /// Whether `bit` is set.
    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    /// Sets `bit`.
    pub fn set(&mut self, bit: u8) {
        self.0 |= bit;
    }

    /// Names of the set flags, for JSON.
    pub fn names(self) -> Vec<&'static str> {
        let all = [
            (Self::TIME_SUSPECT, "time_suspect"),
            (Self::TRUNCATED, "truncated"),
            (Self::PARSE_FAILED, "parse_failed"),
            (Self::TIME_INHERITED, "time_inherited"),
            (Self::MULTILINE, "multiline"),
            (Self::INVALID_UTF8, "invalid_utf8"),
        ];
        all.iter()
            .filter(|(b, _)| self.has(*b))
            .map(|(_, n)| *n)
            .collect()
    }
}

macro_rules! fields {
    ($($variant:ident = $code:literal, $name:literal;)*) => {
        /// A parsed field of a format, stored as a span of the raw line.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Field { $(#[doc = $name] $variant = $code,)* }

        impl Field {
            /// The field's name in JSON and SQL.
            pub fn name(self) -> &'static str {
                match self { $(Field::$variant => $name,)* }
            }
            fn from_code(c: u8) -> Option<Field> {
                match c { $($code => Some(Field::$variant),)* _ => None }
            }
            /// Every field, in code order.
            pub const ALL: &'static [Field] = &[$(Field::$variant,)*];
        }
    };
}

fields! {
    LogTime = 1, "log_time";
    Status = 2, "status";
    Size = 3, "size";
    Url = 4, "url";
    HopPath = 5, "hop_path";
    Via = 6, "via";
    MimeType = 7, "mimetype";
    Thread = 8, "thread";
    FetchTime = 9, "fetch_time";
    Digest = 10, "digest";
    SourceTag = 11, "source_tag";
    Annotations = 12, "annotations";
    Extra = 13, "extra";
    Priority = 20, "priority";
    SyslogTime = 21, "syslog_time";
    Hostname = 22, "hostname";
    AppName = 23, "app_name";
    ProcId = 24, "proc_id";
    MsgId = 25, "msg_id";
    StructuredData = 26, "structured_data";
    Message = 27, "message";
    Timestamp = 40, "timestamp";
}

/// A parsed field: which one, and where it is in the raw line.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct FieldSpan {
    /// Which field.
    pub field: Field,
    /// Byte offset in `Event::raw`.
    pub start: u32,
    /// Length in bytes.
    pub len: u32,
}

/// One log event.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Event {
    /// Identity.
    pub id: EventId,
    /// Event time, microseconds since the Unix epoch, UTC.
    pub time_us: i64,
    /// Flags.
    pub flags: EventFlags,
    /// Length of the line as read; larger than `raw.len()` only when truncated.
    pub original_len: u64,
    /// How the line was parsed.
    pub format: Format,
    /// The crawl (the shard key).
    pub crawl: CrawlId,
    /// The host the line was read on.
    pub host: String,
    /// The application that wrote it (e.g. `heritrix`).
    pub app: String,
    /// Parsed fields as spans of `raw`.
    pub fields: Vec<FieldSpan>,
    /// The line as read, without its line terminator.
    pub raw: Vec<u8>,
}

/// The UTC day of an event time in microseconds since the epoch: with the crawl, what
/// picks an event's segment and its home bucks.
pub fn utc_day(time_us: i64) -> NaiveDate {
    DateTime::from_timestamp_micros(time_us)
        .unwrap_or(DateTime::UNIX_EPOCH)
        .date_naive()
}

/// Largest host or app name encoded, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

impl Event {
    /// The raw bytes of `field`, if parsed.
    pub fn field(&self, field: Field) -> Option<&[u8]> {
        let s = self.fields.iter().find(|s| s.field == field)?;
        self.raw
            .get(s.start as usize..(s.start as usize + s.len as usize))
    }

    /// `field` as text (lossy if not UTF-8).
    pub fn field_str(&self, field: Field) -> Option<std::borrow::Cow<'_, str>> {
        self.field(field).map(String::from_utf8_lossy)
    }

    /// The line as text, invalid UTF-8 replaced by U+FFFD.
    pub fn line(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.raw)
    }

    /// The event time as a `DateTime`.
    pub fn time(&self) -> DateTime<Utc> {
        self.view().time()
    }

    /// The UTC day of the event time: with the crawl, the segment it belongs to.
    pub fn day(&self) -> NaiveDate {
        self.view().day()
    }

    /// The event's parts, borrowed: what encoding reads.
    pub fn view(&self) -> EventRef<'_> {
        EventRef {
            id: self.id,
            time_us: self.time_us,
            flags: self.flags,
            original_len: self.original_len,
            format: self.format,
            crawl: &self.crawl,
            host: &self.host,
            app: &self.app,
            fields: &self.fields,
            raw: &self.raw,
        }
    }

    /// Size of `encode`'s output.
    pub fn encoded_len(&self) -> usize {
        self.view().encoded_len()
    }

    /// Appends the version-1 encoding of the event to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.view().encode(out);
    }

    /// Decodes one event from exactly `buf` (a frame's payload).
    pub fn decode(buf: &[u8]) -> Result<Event, DecodeError> {
        let mut fields = Vec::new();
        let parts = EventParts::decode(buf, &mut fields)?;
        Ok(Event {
            id: parts.id,
            time_us: parts.time_us,
            flags: parts.flags,
            original_len: parts.original_len,
            format: parts.format,
            crawl: parts.crawl,
            host: parts.host.to_owned(),
            app: parts.app.to_owned(),
            fields,
            raw: parts.raw.to_vec(),
        })
    }

    /// Cuts the line so the encoded event fits in `max` bytes, marking it truncated and
    /// dropping spans that no longer fit (the rule is [`EventRef::fit`]). Returns whether
    /// anything was cut.
    pub fn truncate_to_fit(&mut self, max: usize) -> bool {
        let Some(fit) = self.view().fit(max) else {
            return false;
        };
        let keep = fit.apply(&mut self.fields, &mut self.flags);
        self.raw.truncate(keep);
        true
    }

    /// The event as a JSON object: what `tail --print`, the live stream and the APIs show.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), Value::String(self.id.to_string()));
        m.insert(
            "time".into(),
            Value::String(self.time().to_rfc3339_opts(SecondsFormat::Micros, true)),
        );
        m.insert("crawl".into(), Value::String(self.crawl.to_string()));
        m.insert("host".into(), Value::String(self.host.clone()));
        m.insert("app".into(), Value::String(self.app.clone()));
        m.insert("format".into(), Value::String(self.format.name().into()));
        m.insert("line".into(), Value::String(self.line().into_owned()));
        if self.flags.has(EventFlags::TRUNCATED) {
            m.insert("original_len".into(), Value::from(self.original_len));
        }
        let flags = self.flags.names();
        if !flags.is_empty() {
            m.insert("flags".into(), Value::from(flags));
        }
        let mut fields = Map::new();
        for s in &self.fields {
            if let Some(v) = self.field_str(s.field) {
                fields.insert(s.field.name().into(), Value::String(v.into_owned()));
            }
        }
        m.insert("fields".into(), Value::Object(fields));
        Value::Object(m)
    }
}

impl Event {
    /// Reads only the id and time at the front of an encoded event, without decoding (or
    /// allocating) the rest: what routing a frame by its day needs, at a fraction of the
    /// cost of [`Event::decode`]. The rest of the frame is not checked.
    pub fn peek_id_and_time(buf: &[u8]) -> Result<(EventId, i64), DecodeError> {
        read_front(&mut Reader::new(buf, "event"))
    }
}

/// Reads the front every encoded event starts with: the version, the id and the time.
fn read_front(r: &mut Reader<'_>) -> Result<(EventId, i64), DecodeError> {
    let v = r.u8()?;
    if v != EVENT_VERSION {
        return Err(DecodeError::Version {
            what: "event",
            found: v.into(),
            min: EVENT_VERSION.into(),
            max: EVENT_VERSION.into(),
        });
    }
    let tailer = r.u64_be()?;
    let file_seq = r.varint()?;
    let offset = r.varint()?;
    let time_us = r.varint_i64()?;
    Ok((
        EventId {
            tailer,
            file_seq,
            offset,
        },
        time_us,
    ))
}

/// A version-1 event decoded without copying its line or names: the frame stream reader
/// reads old frames through it, and [`Event::decode`] owns the result.
pub(crate) struct EventParts<'a> {
    pub(crate) id: EventId,
    pub(crate) time_us: i64,
    pub(crate) flags: EventFlags,
    pub(crate) original_len: u64,
    pub(crate) format: Format,
    pub(crate) crawl: CrawlId,
    pub(crate) host: &'a str,
    pub(crate) app: &'a str,
    pub(crate) raw: &'a [u8],
}

impl<'a> EventParts<'a> {
    /// Decodes `buf`, writing its spans to `spans` (cleared first).
    pub(crate) fn decode(
        buf: &'a [u8],
        spans: &mut Vec<FieldSpan>,
    ) -> Result<EventParts<'a>, DecodeError> {
        const WHAT: &str = "event";
        spans.clear();
        let mut r = Reader::new(buf, WHAT);
        let (id, time_us) = read_front(&mut r)?;
        let at = r.pos();
        let flags = EventFlags(r.u8()?);
        if flags.0 & !EventFlags::KNOWN != 0 {
            return Err(DecodeError::invalid(
                WHAT,
                at,
                format!("unknown flag bits {:#x}", flags.0),
            ));
        }
        let at = r.pos();
        let code = r.u8()?;
        let format = Format::from_code(code)
            .ok_or_else(|| DecodeError::invalid(WHAT, at, format!("unknown format code {code}")))?;
        let original_len = r.varint()?;
        let at = r.pos();
        let crawl = CrawlId::parse_bytes(r.blob(crate::crawl_id::MAX_CRAWL_ID_BYTES)?)
            .map_err(|e| DecodeError::invalid(WHAT, at, e.to_string()))?;
        let host = r.str(MAX_NAME_BYTES)?;
        let app = r.str(MAX_NAME_BYTES)?;
        let n = r.len(Field::ALL.len())?;
        let mut checks = [0usize; Field::ALL.len()];
        for check in checks.iter_mut().take(n) {
            *check = r.pos();
            spans.push(read_span(&mut r, WHAT)?);
        }
        let raw = r.remaining();
        check_spans(spans, &checks, raw.len(), WHAT)?;
        if original_len < raw.len() as u64 {
            return Err(DecodeError::invalid(
                WHAT,
                0,
                "original length is shorter than the line",
            ));
        }
        Ok(EventParts {
            id,
            time_us,
            flags,
            original_len,
            format,
            crawl,
            host,
            app,
            raw,
        })
    }
}

/// Reads one span: field code, start, length.
pub(crate) fn read_span(r: &mut Reader<'_>, what: &'static str) -> Result<FieldSpan, DecodeError> {
    let at = r.pos();
    let code = r.u8()?;
    let field = Field::from_code(code)
        .ok_or_else(|| DecodeError::invalid(what, at, format!("unknown field code {code}")))?;
    let start = r.len(u32::MAX as usize)? as u32;
    let len = r.len(u32::MAX as usize)? as u32;
    Ok(FieldSpan { field, start, len })
}

/// Fails unless every span lies inside a line of `raw_len` bytes; `at` holds where each
/// span was read, for the error.
pub(crate) fn check_spans(
    spans: &[FieldSpan],
    at: &[usize],
    raw_len: usize,
    what: &'static str,
) -> Result<(), DecodeError> {
    for (s, at) in spans.iter().zip(at) {
        if u64::from(s.start) + u64::from(s.len) > raw_len as u64 {
            return Err(DecodeError::invalid(
                what,
                *at,
                format!(
                    "field {} span {}+{} lies outside the {}-byte line",
                    s.field.name(),
                    s.start,
                    s.len,
                    raw_len
                ),
            ));
        }
    }
    Ok(())
}

/// Appends one span: field code, start, length.
pub(crate) fn put_span(out: &mut Vec<u8>, f: &FieldSpan) {
    out.push(f.field as u8);
    varint::put_u64(out, f.start.into());
    varint::put_u64(out, f.len.into());
}

/// An event whose parts are borrowed: the tailer encodes one per line straight from its
/// read buffer and reused scratch, with no allocation per line. [`Event`] encodes through
/// it too, so there is one encoder and both give the same bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct EventRef<'a> {
    /// Identity.
    pub id: EventId,
    /// Event time, microseconds since the Unix epoch, UTC.
    pub time_us: i64,
    /// Flags.
    pub flags: EventFlags,
    /// Length of the line as read; larger than `raw.len()` only when truncated.
    pub original_len: u64,
    /// How the line was parsed.
    pub format: Format,
    /// The crawl (the shard key).
    pub crawl: &'a CrawlId,
    /// The host the line was read on.
    pub host: &'a str,
    /// The application that wrote it.
    pub app: &'a str,
    /// Parsed fields as spans of `raw`.
    pub fields: &'a [FieldSpan],
    /// The line as read, without its line terminator.
    pub raw: &'a [u8],
}

impl<'a> From<&'a Event> for EventRef<'a> {
    fn from(event: &'a Event) -> Self {
        event.view()
    }
}

/// Where [`EventRef::fit`] cuts an event too large for its frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Fit {
    /// Bytes of the raw line kept.
    pub raw_len: usize,
    /// Spans kept: the first this many of those that lie inside the kept bytes.
    pub fields: usize,
}

impl Fit {
    /// Cuts `fields` (the spans the fit was computed from) as the fit says and marks
    /// `flags` truncated. Returns how many raw bytes to keep.
    pub fn apply(&self, fields: &mut Vec<FieldSpan>, flags: &mut EventFlags) -> usize {
        fields.retain(|f| span_end(f) <= self.raw_len);
        fields.truncate(self.fields);
        flags.set(EventFlags::TRUNCATED);
        self.raw_len
    }
}

fn span_end(f: &FieldSpan) -> usize {
    f.start as usize + f.len as usize
}

/// Encoded size of the span list: its count, then each span.
fn fields_len<'f>(fields: impl Iterator<Item = &'f FieldSpan>) -> usize {
    let (mut n, mut bytes) = (0u64, 0usize);
    for f in fields {
        n += 1;
        bytes += 1 + varint::len_u64(f.start.into()) + varint::len_u64(f.len.into());
    }
    varint::len_u64(n) + bytes
}

/// The most a varint takes.
const MAX_VARINT: usize = 10;

impl EventRef<'_> {
    /// The event time as a `DateTime` (the epoch if out of chrono's range).
    pub fn time(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.time_us).unwrap_or(DateTime::UNIX_EPOCH)
    }

    /// The UTC day of the event time: with the crawl, the segment it belongs to.
    pub fn day(&self) -> NaiveDate {
        utc_day(self.time_us)
    }

    /// Size of everything before the spans.
    fn head_len(&self) -> usize {
        let mut n = 1 + 8 + varint::len_u64(self.id.file_seq) + varint::len_u64(self.id.offset);
        n += varint::len_u64(((self.time_us << 1) ^ (self.time_us >> 63)) as u64);
        n += 2 + varint::len_u64(self.original_len);
        for s in [self.crawl.as_str(), self.host, self.app] {
            n += varint::len_u64(s.len() as u64) + s.len();
        }
        n
    }

    /// Size of `encode`'s output.
    pub fn encoded_len(&self) -> usize {
        self.head_len() + fields_len(self.fields.iter()) + self.raw.len()
    }

    /// Appends the version-1 encoding of the event to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        // One reservation for the whole event (a header is rarely over 128 bytes): the
        // buffer grows at most once per event, not field by field.
        out.reserve(self.raw.len() + 128);
        out.push(EVENT_VERSION);
        out.extend_from_slice(&self.id.tailer.to_be_bytes());
        varint::put_u64(out, self.id.file_seq);
        varint::put_u64(out, self.id.offset);
        varint::put_i64(out, self.time_us);
        out.push(self.flags.0);
        out.push(self.format as u8);
        varint::put_u64(out, self.original_len);
        varint::put_blob(out, self.crawl.as_str().as_bytes());
        varint::put_blob(out, self.host.as_bytes());
        varint::put_blob(out, self.app.as_bytes());
        varint::put_u64(out, self.fields.len() as u64);
        for f in self.fields {
            put_span(out, f);
        }
        // The raw line runs to the end of the frame: its length is implied.
        out.extend_from_slice(self.raw);
    }

    /// Where to cut the line so that the encoded event fits in `max` bytes, or `None` if
    /// it already fits. The line loses its last bytes, and the spans that no longer lie
    /// inside it go; if the header alone is still too long, the last spans go too.
    pub fn fit(&self, max: usize) -> Option<Fit> {
        // Nearly every line is far below the limit: a bound on the header from lengths
        // alone settles it without sizing every varint. The bound: fixed bytes (version,
        // tailer, flags, format), seven varints (file seq, offset, time, original length,
        // three name lengths), the names, the span count and the spans.
        let names = self.crawl.as_str().len() + self.host.len() + self.app.len();
        let spans = MAX_VARINT + self.fields.len() * (1 + 2 * MAX_VARINT);
        if 11 + 7 * MAX_VARINT + names + spans + self.raw.len() <= max {
            return None;
        }
        let head = self.head_len();
        let len = head + fields_len(self.fields.iter()) + self.raw.len();
        if len <= max {
            return None;
        }
        let inside = |keep: usize| self.fields.iter().filter(move |f| span_end(f) <= keep);
        let mut keep = self.raw.len().saturating_sub(len - max);
        let mut len = head + fields_len(inside(keep)) + keep;
        // Fewer spans may mean a shorter header: cut again until it fits (it converges at
        // once in practice; each round only removes bytes).
        while len > max && keep > 0 {
            keep = keep.saturating_sub(len - max);
            len = head + fields_len(inside(keep)) + keep;
        }
        let mut n = inside(keep).count();
        while len > max && n > 0 {
            n -= 1;
            len = head + fields_len(inside(keep).take(n)) + keep;
        }
        Some(Fit {
            raw_len: keep,
            fields: n,
        })
    }

    /// An owned copy.
    pub fn to_event(&self) -> Event {
        Event {
            id: self.id,
            time_us: self.time_us,
            flags: self.flags,
            original_len: self.original_len,
            format: self.format,
            crawl: self.crawl.clone(),
            host: self.host.to_owned(),
            app: self.app.to_owned(),
            fields: self.fields.to_vec(),
            raw: self.raw.to_vec(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn small_event() -> Event {
        Event {
            id: EventId {
                tailer: 1,
                file_seq: 2,
                offset: 3,
            },
            time_us: 1_795_255_200_000_000,
            flags: EventFlags::default(),
            original_len: 5,
            format: Format::Plain,
            crawl: CrawlId::parse("c1").expect("valid crawl id"),
            host: "h".into(),
            app: "a".into(),
            fields: vec![],
            raw: b"hello".to_vec(),
        }
    }

    pub(crate) fn arb_event() -> impl Strategy<Value = Event> {
        (
            any::<(u64, u64, u64)>(),
            any::<i64>(),
            0u8..64,
            prop::sample::select(vec![Format::Plain, Format::CrawlLog, Format::Syslog]),
            "[a-z0-9][a-z0-9._-]{0,20}",
            "[ -~]{0,30}",
            prop::collection::vec(any::<u8>(), 0..300),
            prop::collection::vec(
                (
                    prop::sample::select(Field::ALL.to_vec()),
                    any::<u16>(),
                    any::<u16>(),
                ),
                0..5,
            ),
        )
            .prop_map(
                |((tailer, file_seq, offset), time_us, flags, format, crawl, host, raw, spans)| {
                    let fields = spans
                        .into_iter()
                        .map(|(field, a, b)| {
                            let start = if raw.is_empty() {
                                0
                            } else {
                                a as usize % raw.len()
                            };
                            let len = (b as usize) % (raw.len() - start + 1);
                            FieldSpan {
                                field,
                                start: start as u32,
                                len: len as u32,
                            }
                        })
                        .collect();
                    Event {
                        id: EventId {
                            tailer,
                            file_seq,
                            offset,
                        },
                        time_us,
                        flags: EventFlags(flags),
                        original_len: raw.len() as u64,
                        format,
                        crawl: CrawlId::parse(&crawl).expect("strategy makes valid ids"),
                        host,
                        app: "heritrix".into(),
                        fields,
                        raw,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn round_trip(e in arb_event()) {
            let mut out = Vec::new();
            e.encode(&mut out);
            prop_assert_eq!(out.len(), e.encoded_len());
            prop_assert_eq!(Event::decode(&out)?, e);
        }

        #[test]
        fn every_prefix_is_an_error_not_a_panic(e in arb_event()) {
            let mut out = Vec::new();
            e.encode(&mut out);
            let header = out.len() - e.raw.len();
            for cut in 0..header {
                prop_assert!(Event::decode(&out[..cut]).is_err());
            }
        }

        #[test]
        fn garbage_never_panics(b in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = Event::decode(&b);
            let _ = Event::peek_id_and_time(&b);
        }

        #[test]
        fn peek_reads_what_decode_reads(e in arb_event()) {
            let mut out = Vec::new();
            e.encode(&mut out);
            prop_assert_eq!(Event::peek_id_and_time(&out)?, (e.id, e.time_us));
        }

        #[test]
        fn truncation_fits(mut e in arb_event(), max in 40usize..200) {
            e.truncate_to_fit(max);
            prop_assert!(e.encoded_len() <= max || e.raw.is_empty());
            let mut out = Vec::new();
            e.encode(&mut out);
            prop_assert_eq!(Event::decode(&out)?, e);
        }
    }

    /// The truncation rule as it was first written, cutting the owned event step by step:
    /// the oracle that [`EventRef::fit`] must agree with.
    fn truncate_stepwise(e: &mut Event, max: usize) -> bool {
        let len = e.encoded_len();
        if len <= max {
            return false;
        }
        let keep = e.raw.len().saturating_sub(len - max);
        e.raw.truncate(keep);
        e.fields.retain(|f| span_end(f) <= keep);
        e.flags.set(EventFlags::TRUNCATED);
        while e.encoded_len() > max && !e.raw.is_empty() {
            let keep = e.raw.len().saturating_sub(e.encoded_len() - max);
            e.raw.truncate(keep);
            e.fields.retain(|f| span_end(f) <= keep);
        }
        while e.encoded_len() > max && e.fields.pop().is_some() {}
        true
    }

    proptest! {
        #[test]
        fn fit_agrees_with_the_stepwise_rule(e in arb_event(), max in 0usize..600) {
            let mut want = e.clone();
            let cut = truncate_stepwise(&mut want, max);
            let mut got = e.clone();
            prop_assert_eq!(got.truncate_to_fit(max), cut);
            prop_assert_eq!(got, want);
        }

        #[test]
        fn borrowed_and_owned_encodings_are_byte_identical(e in arb_event(), max in 0usize..600) {
            // Parts held apart from any `Event`, as the tailer holds them.
            let (crawl, host, app) = (e.crawl.clone(), e.host.clone(), e.app.clone());
            let (spans, raw) = (e.fields.clone(), e.raw.clone());
            let r = EventRef {
                id: e.id,
                time_us: e.time_us,
                flags: e.flags,
                original_len: e.original_len,
                format: e.format,
                crawl: &crawl,
                host: &host,
                app: &app,
                fields: &spans,
                raw: &raw,
            };
            let (mut borrowed, mut owned) = (Vec::new(), Vec::new());
            r.encode(&mut borrowed);
            e.encode(&mut owned);
            prop_assert_eq!(borrowed.len(), r.encoded_len());
            prop_assert_eq!(&borrowed, &owned);
            prop_assert_eq!(r.to_event(), e.clone());

            let mut cut = e.clone();
            let truncated = cut.truncate_to_fit(max);
            let (mut kept, mut flags, mut keep) = (spans.clone(), r.flags, raw.len());
            let fit = r.fit(max);
            prop_assert_eq!(fit.is_some(), truncated);
            if let Some(fit) = fit {
                keep = fit.apply(&mut kept, &mut flags);
            }
            let r = EventRef { flags, fields: &kept, raw: &raw[..keep], ..r };
            borrowed.clear();
            owned.clear();
            r.encode(&mut borrowed);
            cut.encode(&mut owned);
            prop_assert_eq!(borrowed, owned);
        }
    }

    #[test]
    fn id_string_round_trips() {
        let id = EventId {
            tailer: 0xdead_beef,
            file_seq: 3,
            offset: 1234,
        };
        assert_eq!(id.to_string(), "00000000deadbeef-3-1234");
        assert_eq!(id.to_string().parse::<EventId>().unwrap(), id);
        assert!("x-1-2".parse::<EventId>().is_err());
        assert!("1-2".parse::<EventId>().is_err());
    }
}
