//! The transport between a tailer and a buck.
//!
//! A TCP connection carries length-delimited messages of at most [`MAX_MESSAGE_BYTES`].
//! The first two are plain: the tailer's [`ClientHello`] (its id, public key and the
//! protocol versions it speaks) and the buck's [`ServerHello`] (the chosen version and a
//! random 16-byte salt, or a rejection). Every later message is a [`Message`],
//! zlib-compressed and sealed with crypto_box under the nonce
//! `salt || direction || 7-byte counter`. The counter travels in clear in front of the
//! ciphertext and must be exactly one more than the last one received, so a replayed,
//! dropped or reordered message is rejected, and no nonce repeats across directions
//! (the direction byte), connections or restarts (the salt).

mod handshake;
mod hello;
mod message;
mod session;
mod zlib;

pub use handshake::{Accepted, JoinError, Joined, accept, join};
pub use hello::{Cipher, ClientHello, HandshakeError, ServerHello, transcript};
pub use message::{ChunkHead, Message, RejectedFrame};
pub use session::{Direction, PackedFrames, Session, TransportError, random_salt};

use tokio_util::codec::LengthDelimitedCodec;

/// Largest message on the wire, the length-delimited codec's `max_frame_length`.
pub const MAX_MESSAGE_BYTES: usize = 2 * 1024 * 1024;
/// Largest inflated message body: a 1 MiB bucket chunk plus headroom. Larger is refused,
/// so a zlib bomb costs the buck nothing.
pub const MAX_INFLATED_BYTES: usize = MAX_MESSAGE_BYTES;
/// Largest bucket chunk, in frame bytes before compression.
pub const MAX_CHUNK_BYTES: usize = 1024 * 1024;
/// Oldest protocol version this build speaks.
pub const PROTOCOL_MIN: u8 = 1;
/// Newest protocol version this build speaks.
pub const PROTOCOL_MAX: u8 = 3;
/// The first protocol version whose Live and BucketChunk messages may carry frame streams
/// (context frames and compact events, `crate::frame_stream`). A tailer sends version-1
/// events to an older buck.
pub const FRAME_STREAM_VERSION: u8 = 3;

/// Why `max_protocol_version` (a tailer's or a buck's setting) cannot be used, if it
/// cannot: it must be a version this build speaks.
pub fn max_version_problem(max_protocol_version: u8) -> Option<String> {
    (!(PROTOCOL_MIN..=PROTOCOL_MAX).contains(&max_protocol_version)).then(|| {
        format!(
            "max_protocol_version = {max_protocol_version} is not a version this build speaks: use {PROTOCOL_MIN}..={PROTOCOL_MAX}"
        )
    })
}

/// The framing of the TCP stream, for both sides: a `u32` big-endian length before each
/// hello or message (tokio-util's default), capped at [`MAX_MESSAGE_BYTES`] so that a
/// peer cannot make the other buffer an arbitrary length it declares.
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_MESSAGE_BYTES)
        .new_codec()
}
