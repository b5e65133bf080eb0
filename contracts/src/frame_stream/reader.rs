//! `FrameStreamReader`: frame payloads back to events, keeping what contexts said.

use super::writer::put_context;
use super::{
    EXT_FORMAT_MASK, EXT_KNOWN, EXT_ORIGINAL_LEN, EXT_SPANS, FrameContext, TAG_COMPACT,
    TAG_CONTEXT, TAG_EVENT_V1, TAG_EXTENDED,
};
use crate::event::{EventParts, MAX_NAME_BYTES, check_spans, read_span};
use crate::frame::put_frame;
use crate::varint::Reader;
use crate::{CrawlId, DecodeError, Event, EventFlags, EventId, EventRef, Field, FieldSpan, Format};

const WHAT: &str = "frame";

/// What one frame was.
#[derive(Debug)]
pub enum FrameRead<'s> {
    /// A context frame: the events after it share what it says.
    Context,
    /// An event.
    Event(StreamEvent<'s>),
    /// A context frame that does not decode: the compact events after it are refused
    /// until the next context.
    BadContext(DecodeError),
    /// An event that does not decode (it counts in the event numbering); compact events
    /// after it are refused until the next context, since their ids depend on it.
    BadEvent {
        /// Its number among the stream's events.
        index: u32,
        /// Why.
        error: DecodeError,
    },
}

/// An event read from a stream, borrowing its line from the frame and what it shares from
/// the reader.
#[derive(Debug, Clone, Copy)]
pub struct StreamEvent<'s> {
    /// Its number among the stream's events (context frames are not counted): what an ack
    /// names.
    pub index: u32,
    /// Identity.
    pub id: EventId,
    /// Event time, microseconds since the Unix epoch, UTC.
    pub time_us: i64,
    /// Flags.
    pub flags: EventFlags,
    /// Length of the line as read.
    pub original_len: u64,
    /// How the line was parsed.
    pub format: Format,
    /// What it shares with its neighbours: crawl, host, app.
    pub context: &'s FrameContext,
    /// Its spans when the frame carries them (version-1 events, cut lines); otherwise
    /// computed from the line by the reader's user.
    pub fields: Option<&'s [FieldSpan]>,
    /// The line as read (cut if `truncated`), without its terminator.
    pub raw: &'s [u8],
}

impl<'s> StreamEvent<'s> {
    /// The event with `fields` as its spans (this frame's own, or computed).
    pub fn with_fields<'f>(&self, fields: &'f [FieldSpan]) -> EventRef<'f>
    where
        's: 'f,
    {
        EventRef {
            id: self.id,
            time_us: self.time_us,
            flags: self.flags,
            original_len: self.original_len,
            format: self.format,
            crawl: &self.context.crawl,
            host: &self.context.host,
            app: &self.context.app,
            fields,
            raw: self.raw,
        }
    }

    /// An owned event with `fields` as its spans.
    pub fn to_event(&self, fields: &[FieldSpan]) -> Event {
        self.with_fields(fields).to_event()
    }

    /// The crawl.
    pub fn crawl(&self) -> &'s CrawlId {
        &self.context.crawl
    }
}

/// Reads the frames of one stream in order. A fresh reader per stream: a packet, a chunk,
/// a spool bucket.
#[derive(Debug, Default)]
pub struct FrameStreamReader {
    context: Option<FrameContext>,
    /// Why compact events are refused now (no context yet, or a frame that did not
    /// decode since the last one).
    broken: Option<&'static str>,
    next_offset: u64,
    last_time_us: i64,
    spans: Vec<FieldSpan>,
    events: u32,
}

impl FrameStreamReader {
    /// A reader at the start of a stream.
    pub fn new() -> FrameStreamReader {
        FrameStreamReader {
            broken: Some("comes before any context frame"),
            ..FrameStreamReader::default()
        }
    }

    /// Events seen so far, good and bad.
    pub fn events(&self) -> u32 {
        self.events
    }

    /// Appends a context frame (length prefix included) that puts a fresh reader where
    /// this one is now: the frames after the last one read decode the same after it as
    /// they do here. Whoever cuts a stream can so copy its frames instead of writing each
    /// event again. Returns false, and appends nothing, when this reader has no context
    /// or refuses compact events now (the next compact event is refused here too).
    pub fn put_resume_context(&self, out: &mut Vec<u8>) -> bool {
        if self.broken.is_some() {
            return false;
        }
        let Some(context) = &self.context else {
            return false;
        };
        put_frame(out, |out| {
            put_context(out, context, self.next_offset, self.last_time_us)
        })
    }

    /// Reads the next frame's payload.
    pub fn read<'s>(&'s mut self, payload: &'s [u8]) -> FrameRead<'s> {
        match payload.first().copied() {
            Some(TAG_CONTEXT) => match read_context(payload) {
                Ok((context, next_offset, time_us)) => {
                    self.context = Some(context);
                    self.next_offset = next_offset;
                    self.last_time_us = time_us;
                    self.broken = None;
                    FrameRead::Context
                }
                Err(error) => {
                    self.broken = Some("follows a context frame that did not decode");
                    FrameRead::BadContext(error)
                }
            },
            Some(TAG_EVENT_V1) => self.read_v1(payload),
            Some(tag) if tag & TAG_COMPACT != 0 => self.read_compact(payload),
            Some(tag) => self.bad_event(DecodeError::Version {
                what: WHAT,
                found: tag.into(),
                min: TAG_EVENT_V1.into(),
                max: TAG_CONTEXT.into(),
            }),
            None => self.bad_event(DecodeError::Truncated {
                what: WHAT,
                at: 0,
                need: 1,
            }),
        }
    }

    fn bad_event<'s>(&mut self, error: DecodeError) -> FrameRead<'s> {
        bad_event(&mut self.events, &mut self.broken, error)
    }

    fn read_v1<'s>(&'s mut self, payload: &'s [u8]) -> FrameRead<'s> {
        let parts = match EventParts::decode(payload, &mut self.spans) {
            Ok(parts) => parts,
            Err(error) => return self.bad_event(error),
        };
        // A version-1 event says everything itself; compact events after one (never
        // written, but harmless) are coded against it.
        let same = self.context.as_ref().is_some_and(|c| {
            c.holds(
                parts.id.tailer,
                parts.id.file_seq,
                &parts.crawl,
                parts.host,
                parts.app,
            ) && c.format == parts.format
        });
        if !same {
            self.context = None;
        }
        let context: &FrameContext = self.context.get_or_insert_with(|| FrameContext {
            tailer: parts.id.tailer,
            file_seq: parts.id.file_seq,
            crawl: parts.crawl,
            host: parts.host.to_owned(),
            app: parts.app.to_owned(),
            format: parts.format,
        });
        self.broken = None;
        self.next_offset = parts.id.offset.wrapping_add(parts.original_len);
        self.last_time_us = parts.time_us;
        let index = self.events;
        self.events = self.events.wrapping_add(1);
        FrameRead::Event(StreamEvent {
            index,
            id: parts.id,
            time_us: parts.time_us,
            flags: parts.flags,
            original_len: parts.original_len,
            format: parts.format,
            context,
            fields: Some(&self.spans),
            raw: parts.raw,
        })
    }

    fn read_compact<'s>(&'s mut self, payload: &'s [u8]) -> FrameRead<'s> {
        if let Some(why) = self.broken {
            return self.bad_event(DecodeError::invalid(
                WHAT,
                0,
                format!("a compact event {why}"),
            ));
        }
        // Fields borrowed one by one: `context` borrows the reader for the event returned.
        let Some(context) = &self.context else {
            return bad_event(
                &mut self.events,
                &mut self.broken,
                DecodeError::invalid(WHAT, 0, "a compact event comes before any context frame"),
            );
        };
        let decoded = decode_compact(
            payload,
            self.next_offset,
            self.last_time_us,
            context.format,
            &mut self.spans,
        );
        let compact = match decoded {
            Ok(compact) => compact,
            Err(error) => return bad_event(&mut self.events, &mut self.broken, error),
        };
        self.next_offset = compact.offset.wrapping_add(compact.original_len);
        self.last_time_us = compact.time_us;
        let index = self.events;
        self.events = self.events.wrapping_add(1);
        FrameRead::Event(StreamEvent {
            index,
            id: EventId {
                tailer: context.tailer,
                file_seq: context.file_seq,
                offset: compact.offset,
            },
            time_us: compact.time_us,
            flags: compact.flags,
            original_len: compact.original_len,
            format: compact.format,
            context,
            fields: compact.has_spans.then_some(self.spans.as_slice()),
            raw: compact.raw,
        })
    }
}

/// Counts an event that does not decode; compact events after it are refused until the
/// next context.
fn bad_event<'s>(
    events: &mut u32,
    broken: &mut Option<&'static str>,
    error: DecodeError,
) -> FrameRead<'s> {
    let index = *events;
    *events = events.wrapping_add(1);
    *broken = Some("follows an event that did not decode");
    FrameRead::BadEvent { index, error }
}

/// A compact event's own parts.
struct Compact<'a> {
    offset: u64,
    time_us: i64,
    flags: EventFlags,
    original_len: u64,
    format: Format,
    has_spans: bool,
    raw: &'a [u8],
}

fn decode_compact<'a>(
    payload: &'a [u8],
    next_offset: u64,
    last_time_us: i64,
    context_format: Format,
    spans: &mut Vec<FieldSpan>,
) -> Result<Compact<'a>, DecodeError> {
    let mut r = Reader::new(payload, WHAT);
    let tag = r.u8()?;
    let flags = EventFlags(tag & EventFlags::KNOWN);
    let ext = if tag & TAG_EXTENDED != 0 { r.u8()? } else { 0 };
    if ext & !EXT_KNOWN != 0 {
        return Err(DecodeError::invalid(
            WHAT,
            1,
            format!("unknown extension bits {ext:#x}"),
        ));
    }
    let format = match ext & EXT_FORMAT_MASK {
        0 => context_format,
        code => Format::from_code(code)
            .ok_or_else(|| DecodeError::invalid(WHAT, 1, format!("unknown format code {code}")))?,
    };
    let offset = next_offset.wrapping_add(r.varint_i64()? as u64);
    let time_us = last_time_us.wrapping_add(r.varint_i64()?);
    let original_len = if ext & EXT_ORIGINAL_LEN != 0 {
        Some(r.varint()?)
    } else {
        None
    };
    spans.clear();
    let has_spans = ext & EXT_SPANS != 0;
    let mut checks = [0usize; Field::ALL.len()];
    if has_spans {
        let n = r.len(Field::ALL.len())?;
        for check in checks.iter_mut().take(n) {
            *check = r.pos();
            spans.push(read_span(&mut r, WHAT)?);
        }
    }
    let raw = r.remaining();
    check_spans(spans, &checks, raw.len(), WHAT)?;
    let original_len = original_len.unwrap_or(raw.len() as u64);
    if original_len < raw.len() as u64 {
        return Err(DecodeError::invalid(
            WHAT,
            0,
            "original length is shorter than the line",
        ));
    }
    Ok(Compact {
        offset,
        time_us,
        flags,
        original_len,
        format,
        has_spans,
        raw,
    })
}

fn read_context(payload: &[u8]) -> Result<(FrameContext, u64, i64), DecodeError> {
    const WHAT: &str = "context frame";
    let mut r = Reader::new(payload, WHAT);
    r.u8()?;
    let tailer = r.u64_be()?;
    let file_seq = r.varint()?;
    let at = r.pos();
    let code = r.u8()?;
    let format = Format::from_code(code)
        .ok_or_else(|| DecodeError::invalid(WHAT, at, format!("unknown format code {code}")))?;
    let at = r.pos();
    let crawl = CrawlId::parse_bytes(r.blob(crate::crawl_id::MAX_CRAWL_ID_BYTES)?)
        .map_err(|e| DecodeError::invalid(WHAT, at, e.to_string()))?;
    let host = r.str(MAX_NAME_BYTES)?.to_owned();
    let app = r.str(MAX_NAME_BYTES)?.to_owned();
    let next_offset = r.varint()?;
    let time_us = r.varint_i64()?;
    r.finish()?;
    Ok((
        FrameContext {
            tailer,
            file_seq,
            crawl,
            host,
            app,
            format,
        },
        next_offset,
        time_us,
    ))
}
