//! The messages after the hellos, as encoded before compression and sealing.

use bytes::Bytes;

use crate::varint::{self, Reader};
use crate::{CrawlId, DecodeError};

use super::MAX_CHUNK_BYTES;

/// The first byte of an encoded `Message::Live`.
pub(super) const LIVE_TAG: u8 = 1;

/// The first byte of an encoded `Message::BucketChunk`.
const CHUNK_TAG: u8 = 2;

/// A frame the buck refused for good: the tailer counts it and never re-sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedFrame {
    /// Index of the frame within its packet or chunk.
    pub index: u32,
    /// Why, for the tailer's log.
    pub reason: String,
}

/// A message after the hellos.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Events as they are read: frames, to the crawl's homes, acked after commit.
    Live {
        /// The sender's sequence number for this message, echoed by the ack.
        seq: u64,
        /// Concatenated frames.
        frames: Bytes,
    },
    /// A piece of a sealed spool bucket (the repair path), acked after commit.
    BucketChunk {
        /// The sender's sequence number, echoed by the ack.
        seq: u64,
        /// The bucket's crawl.
        crawl: CrawlId,
        /// The bucket's start, seconds since the epoch.
        bucket_start: i64,
        /// Index of this chunk within the bucket.
        chunk: u32,
        /// Whether this is the bucket's last chunk.
        last: bool,
        /// Concatenated frames, at most [`MAX_CHUNK_BYTES`].
        frames: Bytes,
    },
    /// The frames of message `seq` are committed, except those rejected for good.
    Ack {
        /// The acknowledged message.
        seq: u64,
        /// Frames refused for good.
        rejected: Vec<RejectedFrame>,
    },
    /// Message `seq` was not stored (e.g. disk full): send it again after the delay.
    Nack {
        /// The refused message.
        seq: u64,
        /// How long to wait before re-sending.
        retry_after_ms: u32,
        /// Why, for the tailer's log.
        reason: String,
    },
    /// Keep-alive.
    Ping {
        /// Echoed by the pong.
        token: u64,
    },
    /// Answer to a ping.
    Pong {
        /// The ping's token.
        token: u64,
    },
}

/// The fields of a `Message::BucketChunk` before its frames: what
/// [`super::Session::seal_chunk`] puts before frames compressed once for every home.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHead<'a> {
    /// The sender's sequence number, echoed by the ack.
    pub seq: u64,
    /// The bucket's crawl.
    pub crawl: &'a CrawlId,
    /// The bucket's start, seconds since the epoch.
    pub bucket_start: i64,
    /// Index of this chunk within the bucket.
    pub chunk: u32,
    /// Whether this is the bucket's last chunk.
    pub last: bool,
}

impl ChunkHead<'_> {
    /// Encodes the tag and fields, as `Message::encode` does before the frames.
    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        out.push(CHUNK_TAG);
        varint::put_u64(out, self.seq);
        varint::put_blob(out, self.crawl.as_str().as_bytes());
        varint::put_i64(out, self.bucket_start);
        varint::put_u64(out, self.chunk.into());
        out.push(u8::from(self.last));
    }
}

impl Message {
    /// Encodes the message body (before compression and sealing).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Message::Live { seq, frames } => {
                out.push(LIVE_TAG);
                varint::put_u64(out, *seq);
                out.extend_from_slice(frames);
            }
            Message::BucketChunk {
                seq,
                crawl,
                bucket_start,
                chunk,
                last,
                frames,
            } => {
                ChunkHead {
                    seq: *seq,
                    crawl,
                    bucket_start: *bucket_start,
                    chunk: *chunk,
                    last: *last,
                }
                .encode(out);
                out.extend_from_slice(frames);
            }
            Message::Ack { seq, rejected } => {
                out.push(3);
                varint::put_u64(out, *seq);
                varint::put_u64(out, rejected.len() as u64);
                for r in rejected {
                    varint::put_u64(out, r.index.into());
                    varint::put_blob(out, r.reason.as_bytes());
                }
            }
            Message::Nack {
                seq,
                retry_after_ms,
                reason,
            } => {
                out.push(4);
                varint::put_u64(out, *seq);
                varint::put_u64(out, (*retry_after_ms).into());
                varint::put_blob(out, reason.as_bytes());
            }
            Message::Ping { token } => {
                out.push(5);
                varint::put_u64(out, *token);
            }
            Message::Pong { token } => {
                out.push(6);
                varint::put_u64(out, *token);
            }
        }
    }

    /// Decodes a message body.
    pub fn decode(buf: &[u8]) -> Result<Message, DecodeError> {
        const WHAT: &str = "message";
        let mut r = Reader::new(buf, WHAT);
        let at = r.pos();
        let msg = match r.u8()? {
            1 => {
                let seq = r.varint()?;
                Message::Live {
                    seq,
                    frames: Bytes::copy_from_slice(r.remaining()),
                }
            }
            CHUNK_TAG => {
                let seq = r.varint()?;
                let at = r.pos();
                let crawl = CrawlId::parse_bytes(r.blob(crate::crawl_id::MAX_CRAWL_ID_BYTES)?)
                    .map_err(|e| DecodeError::invalid(WHAT, at, e.to_string()))?;
                let bucket_start = r.varint_i64()?;
                let chunk = r.len(u32::MAX as usize)? as u32;
                let at = r.pos();
                let last = match r.u8()? {
                    0 => false,
                    1 => true,
                    b => return Err(DecodeError::invalid(WHAT, at, format!("bad boolean {b}"))),
                };
                let frames = r.remaining();
                if frames.len() > MAX_CHUNK_BYTES {
                    return Err(DecodeError::invalid(
                        WHAT,
                        r.pos(),
                        format!(
                            "bucket chunk of {} bytes exceeds {MAX_CHUNK_BYTES}",
                            frames.len()
                        ),
                    ));
                }
                Message::BucketChunk {
                    seq,
                    crawl,
                    bucket_start,
                    chunk,
                    last,
                    frames: Bytes::copy_from_slice(frames),
                }
            }
            3 => {
                let seq = r.varint()?;
                let n = r.len(u16::MAX as usize * 16)?;
                let mut rejected = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    let index = r.len(u32::MAX as usize)? as u32;
                    let reason = r.str(4096)?.to_owned();
                    rejected.push(RejectedFrame { index, reason });
                }
                r.finish()?;
                Message::Ack { seq, rejected }
            }
            4 => {
                let seq = r.varint()?;
                let retry_after_ms = r.len(u32::MAX as usize)? as u32;
                let reason = r.str(4096)?.to_owned();
                r.finish()?;
                Message::Nack {
                    seq,
                    retry_after_ms,
                    reason,
                }
            }
            5 => {
                let token = r.varint()?;
                r.finish()?;
                Message::Ping { token }
            }
            6 => {
                let token = r.varint()?;
                r.finish()?;
                Message::Pong { token }
            }
            t => {
                return Err(DecodeError::invalid(
                    WHAT,
                    at,
                    format!("unknown message type {t}"),
                ));
            }
        };
        Ok(msg)
    }
}
