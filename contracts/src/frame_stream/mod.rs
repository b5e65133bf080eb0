//! Frame streams: frames that say what they share once.
//!
//! A frame stream is the frames of a spool bucket, a live packet or a repair chunk. Since
//! frame version 2 (spool version 2, protocol version 3), what the events of one source
//! file share (tailer id, file seq, crawl, host, app, format) is said once in a
//! **context frame**, and each event after it is a **compact event**: a tag byte, the gap
//! between its offset and where the previous event ended, the difference between its time
//! and the previous event's, and the line. The buck computes parsed fields from the line
//! with the same parser the tailer used (the `parsers` crate); only a line cut to fit its
//! frame keeps its spans, since the cut line may no longer parse as the whole one did.
//! A version-1 event (a frame whose first byte is 1) is still read anywhere in a stream,
//! so spools and peers from before the change keep working.
//!
//! A compact event means nothing without the frames before it, so whoever cuts a stream
//! (a live packet, a repair chunk that leaves frames out) writes the events it keeps
//! through a [`FrameStreamWriter`] of its own, which starts with a context. The reader
//! refuses compact events that follow a frame it could not decode, until the next
//! context: an event id is never guessed. Byte layouts: `docs/formats.md`, "Frame
//! stream".

mod reader;
mod writer;

pub use reader::{FrameRead, FrameStreamReader, StreamEvent};
pub use writer::FrameStreamWriter;

use crate::{CrawlId, Format};

/// First byte of a version-1 event frame.
pub const TAG_EVENT_V1: u8 = 1;
/// First byte of a context frame.
pub const TAG_CONTEXT: u8 = 2;
/// Set in the first byte of a compact event; the six bits below it are the event's flags.
pub const TAG_COMPACT: u8 = 0x80;
/// Set in a compact event's tag when an extension byte follows it.
pub const TAG_EXTENDED: u8 = 0x40;
/// Extension byte: the low two bits name the event's format when it is not the context's.
pub const EXT_FORMAT_MASK: u8 = 0x03;
/// Extension byte: the event's field spans follow (a line cut to fit its frame).
pub const EXT_SPANS: u8 = 0x04;
/// Extension byte: the line's original length follows (it is not the line's length: a
/// line cut to fit its frame).
pub const EXT_ORIGINAL_LEN: u8 = 0x08;
/// The extension bits this build knows.
const EXT_KNOWN: u8 = EXT_FORMAT_MASK | EXT_SPANS | EXT_ORIGINAL_LEN;

/// What the events after a context frame share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameContext {
    /// The tailer's id.
    pub tailer: u64,
    /// The source file's sequence number.
    pub file_seq: u64,
    /// The crawl.
    pub crawl: CrawlId,
    /// The host the lines were read on.
    pub host: String,
    /// The application that wrote them.
    pub app: String,
    /// The format events are parsed as unless their own tag says otherwise.
    pub format: Format,
}

impl FrameContext {
    /// Whether an event with these parts belongs to this context (its format aside).
    fn holds(&self, tailer: u64, file_seq: u64, crawl: &CrawlId, host: &str, app: &str) -> bool {
        self.tailer == tailer
            && self.file_seq == file_seq
            && self.host == host
            && self.app == app
            && &self.crawl == crawl
    }
}

#[cfg(test)]
mod tests;
