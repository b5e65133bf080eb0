//! `FrameStreamWriter`: events to frames, a context frame whenever what they share changes.

use super::{EXT_ORIGINAL_LEN, EXT_SPANS, FrameContext, TAG_COMPACT, TAG_CONTEXT, TAG_EXTENDED};
use crate::event::put_span;
use crate::frame::put_frame;
use crate::varint;
use crate::{EventFlags, EventRef};

/// Writes events as compact frames. Each stream (a bucket's append, a live packet, a
/// repair chunk) that must be read on its own starts with a fresh writer or a
/// [`restart`](FrameStreamWriter::restart).
#[derive(Debug, Default)]
pub struct FrameStreamWriter {
    context: Option<FrameContext>,
    /// Where the previous event ended: the offset the next one is coded against.
    next_offset: u64,
    /// The previous event's time.
    last_time_us: i64,
}

impl FrameStreamWriter {
    /// A writer whose first event gets a context frame.
    pub fn new() -> FrameStreamWriter {
        FrameStreamWriter::default()
    }

    /// Makes the next event start with a context frame, so the frames from here on can be
    /// read without those before them.
    pub fn restart(&mut self) {
        self.context = None;
    }

    /// Appends `event`'s frame to `out`, after a context frame when the event's tailer,
    /// file, crawl, host or app differ from the previous event's. Returns false, and
    /// appends nothing, when the event does not fit a frame (events cut by
    /// [`EventRef::fit`] always do).
    pub fn push(&mut self, out: &mut Vec<u8>, event: &EventRef<'_>) -> bool {
        let start = out.len();
        let same = self.context.as_ref().is_some_and(|c| {
            c.holds(
                event.id.tailer,
                event.id.file_seq,
                event.crawl,
                event.host,
                event.app,
            )
        });
        if !same {
            let context = FrameContext {
                tailer: event.id.tailer,
                file_seq: event.id.file_seq,
                crawl: event.crawl.clone(),
                host: event.host.to_owned(),
                app: event.app.to_owned(),
                format: event.format,
            };
            self.next_offset = event.id.offset;
            self.last_time_us = event.time_us;
            if !put_frame(out, |out| {
                put_context(out, &context, event.id.offset, event.time_us)
            }) {
                self.context = None;
                return false;
            }
            self.context = Some(context);
        }
        let Some(context) = &self.context else {
            return false;
        };
        let spans = event.flags.has(EventFlags::TRUNCATED) && !event.fields.is_empty();
        let original_len = event.original_len != event.raw.len() as u64;
        let mut ext = if event.format == context.format {
            0
        } else {
            event.format as u8
        };
        if spans {
            ext |= EXT_SPANS;
        }
        if original_len {
            ext |= EXT_ORIGINAL_LEN;
        }
        let written = put_frame(out, |out| {
            out.reserve(event.raw.len() + 24);
            let mut tag = TAG_COMPACT | (event.flags.0 & EventFlags::KNOWN);
            if ext != 0 {
                tag |= TAG_EXTENDED;
            }
            out.push(tag);
            if ext != 0 {
                out.push(ext);
            }
            varint::put_i64(out, event.id.offset.wrapping_sub(self.next_offset) as i64);
            varint::put_i64(out, event.time_us.wrapping_sub(self.last_time_us));
            if original_len {
                varint::put_u64(out, event.original_len);
            }
            if spans {
                varint::put_u64(out, event.fields.len() as u64);
                for f in event.fields {
                    put_span(out, f);
                }
            }
            out.extend_from_slice(event.raw);
        });
        if !written {
            // The context frame written for it (if any) goes too; the next event writes
            // its own.
            out.truncate(start);
            self.context = None;
            return false;
        }
        self.next_offset = event.id.offset.wrapping_add(event.original_len);
        self.last_time_us = event.time_us;
        true
    }
}

/// A context frame's payload: what the events after it share, and the offset and time the
/// first of them is coded against.
pub(super) fn put_context(out: &mut Vec<u8>, c: &FrameContext, next_offset: u64, time_us: i64) {
    out.push(TAG_CONTEXT);
    out.extend_from_slice(&c.tailer.to_be_bytes());
    varint::put_u64(out, c.file_seq);
    out.push(c.format as u8);
    varint::put_blob(out, c.crawl.as_str().as_bytes());
    varint::put_blob(out, c.host.as_bytes());
    varint::put_blob(out, c.app.as_bytes());
    varint::put_u64(out, next_offset);
    varint::put_i64(out, time_us);
}
