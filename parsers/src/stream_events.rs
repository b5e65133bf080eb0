//! Whole events from frame streams: the parsed fields a compact frame leaves out are
//! computed here, from the line, by the parser the tailer used.
//!
//! A compact event carries its format but not its spans (`contracts::frame_stream`):
//! parsing the line again as that format gives the spans the tailer found, since the
//! parsers are deterministic on the line. A line cut to fit its frame keeps the tailer's
//! spans in the frame, because the cut line may not parse as the whole one did.

use contracts::frame::{FrameError, FrameReader, put_event_frame};
use contracts::frame_stream::{FrameRead, FrameStreamReader, StreamEvent};
use contracts::{DecodeError, Event, FieldSpan, Format};

use crate::{SourceFormat, parse_line_into};

/// The spans of `event`: its frame's own, or those its format's parser finds in its line.
/// `scratch` holds them when parsed (cleared first).
pub fn fields_of<'s>(event: &StreamEvent<'s>, scratch: &'s mut Vec<FieldSpan>) -> &'s [FieldSpan] {
    if let Some(fields) = event.fields {
        return fields;
    }
    let source = match event.format {
        Format::CrawlLog => SourceFormat::CrawlLog,
        Format::Syslog => SourceFormat::Syslog,
        Format::Plain => SourceFormat::Plain,
    };
    let parse = parse_line_into(source, event.raw, event.time_us, scratch);
    // The line parsed as another format than the tailer's (a parser changed between the
    // two builds): its spans would name the wrong fields, so it has none.
    if parse.format != event.format {
        scratch.clear();
    }
    scratch
}

/// Decodes every event of a frame stream (a Live or BucketChunk message's frames) with its
/// fields. For each event, in order, `Ok(event)` or why it does not decode (the index in
/// the result is the event's number, what an ack names); a framing error (an incomplete or
/// empty frame) ends the walk.
pub fn decode_stream(frames: &[u8]) -> (Vec<Result<Event, DecodeError>>, Option<FrameError>) {
    let mut reader = FrameStreamReader::new();
    let mut scratch = Vec::new();
    let mut out = Vec::new();
    for item in FrameReader::new(frames) {
        let payload = match item {
            Ok((_, payload)) => payload,
            Err(e) => return (out, Some(e)),
        };
        match reader.read(payload) {
            FrameRead::Context | FrameRead::BadContext(_) => {}
            FrameRead::Event(event) => {
                let fields = fields_of(&event, &mut scratch);
                out.push(Ok(event.to_event(fields)));
            }
            FrameRead::BadEvent { error, .. } => out.push(Err(error)),
        }
    }
    (out, None)
}

/// Rewrites a frame stream as version-1 event frames, one per event in the same order, for
/// a buck that speaks a protocol version before frame streams. An event that does not
/// decode becomes a one-byte frame the buck refuses for good, so that event numbers (what
/// acks name) stay the same. Returns the number of events, or the framing error that ends
/// the stream (nothing is written then).
pub fn to_version1_frames(frames: &[u8], out: &mut Vec<u8>) -> Result<u32, FrameError> {
    let start = out.len();
    out.reserve(frames.len() + frames.len() / 4);
    let mut reader = FrameStreamReader::new();
    let mut scratch = Vec::new();
    for item in FrameReader::new(frames) {
        let payload = match item {
            Ok((_, payload)) => payload,
            Err(e) => {
                out.truncate(start);
                return Err(e);
            }
        };
        match reader.read(payload) {
            FrameRead::Context | FrameRead::BadContext(_) => {}
            FrameRead::Event(event) => {
                let fields = fields_of(&event, &mut scratch);
                let event = event.with_fields(fields);
                if !put_event_frame(out, event) {
                    // Only a line cut by the frame stream's smaller header can miss a
                    // version-1 frame: the tailer cuts by version 1's rule, so never.
                    out.extend_from_slice(&[0, 1, 0]);
                }
            }
            FrameRead::BadEvent { .. } => out.extend_from_slice(&[0, 1, 0]),
        }
    }
    Ok(reader.events())
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::frame::decode_frames;
    use contracts::frame_stream::FrameStreamWriter;
    use contracts::{CrawlId, EventFlags, EventId};

    const CRAWL_LOG: &[u8] = b"2026-12-04T10:00:00.123Z   200      12345 https://example.com/a.html LLE https://example.com/ text/html #042 20261204095959999+120 sha1:ABCDEFGHIJKLMNOPQRSTUVWXYZ234567 - -";

    /// The event the tailer would build for `line`, fields included.
    fn tailer_event(offset: u64, line: &[u8]) -> Event {
        let parsed = crate::parse_line(SourceFormat::Auto, line, 1_795_255_200_000_000);
        Event {
            id: EventId {
                tailer: 7,
                file_seq: 1,
                offset,
            },
            time_us: parsed.time_us.unwrap_or(1_795_255_200_000_000),
            flags: EventFlags::default(),
            original_len: line.len() as u64,
            format: parsed.format,
            crawl: CrawlId::parse("c1").expect("valid"),
            host: "h".into(),
            app: "heritrix".into(),
            fields: parsed.fields,
            raw: line.to_vec(),
        }
    }

    fn sample() -> Vec<Event> {
        let lines: [&[u8]; 4] = [
            CRAWL_LOG,
            b"<34>1 2026-12-04T10:00:01.000Z host app 12 ID47 - a syslog message",
            b"Dec  4 10:00:02 host sshd[12]: an RFC 3164 line",
            b"no time here \xff\xfe at all",
        ];
        let mut offset = 0;
        lines
            .iter()
            .map(|l| {
                let e = tailer_event(offset, l);
                offset += l.len() as u64 + 1;
                e
            })
            .collect()
    }

    fn stream(events: &[Event]) -> Vec<u8> {
        let mut w = FrameStreamWriter::new();
        let mut out = Vec::new();
        for e in events {
            assert!(w.push(&mut out, &e.view()));
        }
        out
    }

    #[test]
    fn fields_computed_from_the_line_equal_the_tailers() {
        let events = sample();
        assert!(
            events
                .iter()
                .all(|e| !e.fields.is_empty() || e.format == Format::Plain)
        );
        let (back, framing) = decode_stream(&stream(&events));
        assert_eq!(framing, None);
        let back: Vec<Event> = back.into_iter().map(|e| e.expect("decodes")).collect();
        assert_eq!(back, events);
    }

    #[test]
    fn an_old_buck_gets_the_same_events_as_version_1_frames() {
        let events = sample();
        let mut v1 = Vec::new();
        assert_eq!(to_version1_frames(&stream(&events), &mut v1), Ok(4));
        let (back, framing) = decode_frames(&v1);
        assert_eq!(framing, None);
        let back: Vec<Event> = back.into_iter().map(|e| e.expect("decodes")).collect();
        assert_eq!(back, events);
    }

    #[test]
    fn a_bad_event_keeps_its_number_in_version_1() {
        let events = sample();
        let mut frames = stream(&events[..1]);
        frames.extend_from_slice(&[0, 1, 0x55]);
        frames.extend(stream(&events[1..2]));
        let mut v1 = Vec::new();
        assert_eq!(to_version1_frames(&frames, &mut v1), Ok(3));
        let (back, _) = decode_frames(&v1);
        assert_eq!(back.len(), 3);
        assert!(back[0].is_ok() && back[1].is_err() && back[2].is_ok());
        let (back, _) = decode_stream(&frames);
        assert!(back[0].is_ok() && back[1].is_err() && back[2].is_ok());
    }

    #[test]
    fn a_torn_stream_writes_nothing() {
        let mut frames = stream(&sample());
        frames.extend_from_slice(&[0, 9, 1]);
        let mut v1 = vec![1, 2];
        assert!(to_version1_frames(&frames, &mut v1).is_err());
        assert_eq!(v1, vec![1, 2]);
    }
}
