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

use bytes::Bytes;
use crypto_box::aead::{Aead, AeadInPlace};
use crypto_box::{PublicKey, SalsaBox, SecretKey};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio_util::codec::LengthDelimitedCodec;

use crate::varint::{self, Reader};
use crate::{CrawlId, DecodeError};

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
pub const PROTOCOL_MAX: u8 = 1;

/// The framing of the TCP stream, for both sides: a `u32` big-endian length before each
/// hello or message (tokio-util's default), capped at [`MAX_MESSAGE_BYTES`] so that a
/// peer cannot make the other buffer an arbitrary length it declares.
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_MESSAGE_BYTES)
        .new_codec()
}

const HELLO_MAGIC: &[u8; 4] = b"SLTH";
const COUNTER_BYTES: usize = 7;

/// Bytes of the Poly1305 tag crypto_box puts before the ciphertext.
const TAG_BYTES: usize = 16;
const COUNTER_LIMIT: u64 = 1 << 56;

/// The tailer's first message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    /// Oldest protocol version the tailer speaks.
    pub min_version: u8,
    /// Newest protocol version the tailer speaks.
    pub max_version: u8,
    /// The tailer's id (its event ids' first part).
    pub tailer_id: u64,
    /// The tailer's X25519 public key.
    pub public_key: [u8; 32],
    /// Whether the tailer wants sealed messages. Off only when configured so explicitly.
    pub encrypted: bool,
    /// The host the tailer runs on, for logs.
    pub host: String,
}

/// The buck's answer to a hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerHello {
    /// The connection is accepted.
    Accept {
        /// The protocol version both speak.
        version: u8,
        /// The buck's id, as in the cluster file.
        buck_id: String,
        /// Random salt for this connection's nonces.
        salt: [u8; 16],
        /// Whether messages are sealed.
        encrypted: bool,
    },
    /// The connection is refused, and why; the buck closes it.
    Reject {
        /// A message for the tailer's operator.
        reason: String,
    },
}

impl ClientHello {
    /// A hello offering every protocol version this build speaks
    /// ([`PROTOCOL_MIN`]`..=`[`PROTOCOL_MAX`]).
    pub fn new(tailer_id: u64, public_key: [u8; 32], encrypted: bool, host: String) -> ClientHello {
        ClientHello {
            min_version: PROTOCOL_MIN,
            max_version: PROTOCOL_MAX,
            tailer_id,
            public_key,
            encrypted,
            host,
        }
    }

    /// Encodes the hello.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = HELLO_MAGIC.to_vec();
        out.push(0); // kind: client hello
        out.push(self.min_version);
        out.push(self.max_version);
        out.extend_from_slice(&self.tailer_id.to_be_bytes());
        out.extend_from_slice(&self.public_key);
        out.push(u8::from(self.encrypted));
        varint::put_blob(&mut out, self.host.as_bytes());
        out
    }

    /// Decodes a hello.
    pub fn decode(buf: &[u8]) -> Result<ClientHello, DecodeError> {
        let mut r = Reader::new(buf, "client hello");
        check_magic(&mut r, 0)?;
        let min_version = r.u8()?;
        let max_version = r.u8()?;
        let tailer_id = r.u64_be()?;
        let public_key = r.array::<32>()?;
        let encrypted = decode_bool(&mut r)?;
        let host = r.str(255)?.to_owned();
        r.finish()?;
        Ok(ClientHello {
            min_version,
            max_version,
            tailer_id,
            public_key,
            encrypted,
            host,
        })
    }

    /// The version to speak with a peer that speaks `min..=max`, if any.
    pub fn negotiate(&self, min: u8, max: u8) -> Option<u8> {
        let v = self.max_version.min(max);
        (v >= self.min_version.max(min)).then_some(v)
    }
}

impl ServerHello {
    /// Encodes the answer.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = HELLO_MAGIC.to_vec();
        out.push(1); // kind: server hello
        match self {
            ServerHello::Accept {
                version,
                buck_id,
                salt,
                encrypted,
            } => {
                out.push(0);
                out.push(*version);
                varint::put_blob(&mut out, buck_id.as_bytes());
                out.extend_from_slice(salt);
                out.push(u8::from(*encrypted));
            }
            ServerHello::Reject { reason } => {
                out.push(1);
                varint::put_blob(&mut out, reason.as_bytes());
            }
        }
        out
    }

    /// Decodes an answer.
    pub fn decode(buf: &[u8]) -> Result<ServerHello, DecodeError> {
        let mut r = Reader::new(buf, "server hello");
        check_magic(&mut r, 1)?;
        let at = r.pos();
        let h = match r.u8()? {
            0 => {
                let version = r.u8()?;
                let buck_id = r.str(255)?.to_owned();
                let salt = r.array::<16>()?;
                let encrypted = decode_bool(&mut r)?;
                ServerHello::Accept {
                    version,
                    buck_id,
                    salt,
                    encrypted,
                }
            }
            1 => ServerHello::Reject {
                reason: r.str(4096)?.to_owned(),
            },
            k => {
                return Err(DecodeError::invalid(
                    "server hello",
                    at,
                    format!("unknown status {k}"),
                ));
            }
        };
        r.finish()?;
        Ok(h)
    }
}

fn check_magic(r: &mut Reader<'_>, kind: u8) -> Result<(), DecodeError> {
    let m = r.array::<4>()?;
    if &m != HELLO_MAGIC {
        return Err(DecodeError::invalid(
            "hello",
            0,
            "not a sluice hello (bad magic): is this a sluice tailer/buck?",
        ));
    }
    let at = r.pos();
    let k = r.u8()?;
    if k != kind {
        return Err(DecodeError::invalid(
            "hello",
            at,
            format!("expected hello kind {kind}, got {k}"),
        ));
    }
    Ok(())
}

fn decode_bool(r: &mut Reader<'_>) -> Result<bool, DecodeError> {
    let at = r.pos();
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        b => Err(DecodeError::invalid(
            "hello",
            at,
            format!("bad boolean {b}"),
        )),
    }
}

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
                out.push(2);
                varint::put_u64(out, *seq);
                varint::put_blob(out, crawl.as_str().as_bytes());
                varint::put_i64(out, *bucket_start);
                varint::put_u64(out, (*chunk).into());
                out.push(u8::from(*last));
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
            2 => {
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

/// Why a message could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The bytes do not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The message failed authentication: a wrong key, a forged or corrupted message, or
    /// a message replayed from another connection.
    #[error(
        "message {counter} failed authentication (wrong key, forged, or from another connection)"
    )]
    Authentication {
        /// The message's counter.
        counter: u64,
    },
    /// The counter is not the next one: a replayed, dropped or reordered message.
    #[error("message counter {got} where {expected} was expected: replayed or reordered message")]
    Replay {
        /// The counter expected.
        expected: u64,
        /// The counter received.
        got: u64,
    },
    /// The body does not inflate, or inflates past the limit.
    #[error("message body does not inflate: {0}")]
    Inflate(String),
    /// The sealed message is larger than [`MAX_MESSAGE_BYTES`].
    #[error("message of {0} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(usize),
    /// 2^56 messages were sent on one connection: reconnect.
    #[error("message counter exhausted; reconnect")]
    CounterExhausted,
}

/// Which way a message travels: part of every nonce, so the two directions never share one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Direction {
    /// From the tailer to the buck.
    TailerToBuck = 0,
    /// From the buck to the tailer.
    BuckToTailer = 1,
}

/// One side of an established connection: seals what it sends, opens what it receives.
pub struct Session {
    cipher: Option<SalsaBox>,
    salt: [u8; 16],
    send_dir: Direction,
    next_send: u64,
    next_recv: u64,
    /// zlib streams kept for the session's life and reset per message: setting one up
    /// allocates and clears its window and tables, which for a typical message costs
    /// as much as compressing it.
    deflate: Compress,
    inflate: Decompress,
    /// Scratch for encoding a message before it is compressed.
    body: Vec<u8>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("encrypted", &self.cipher.is_some())
            .field("next_send", &self.next_send)
            .field("next_recv", &self.next_recv)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session sealing with the box made of `my_secret` and `their_public`, or plain
    /// (compressed, counted, not encrypted) when `keys` is `None`.
    pub fn new(
        keys: Option<(&SecretKey, &PublicKey)>,
        salt: [u8; 16],
        send_dir: Direction,
    ) -> Session {
        Session {
            cipher: keys.map(|(s, p)| SalsaBox::new(p, s)),
            salt,
            send_dir,
            next_send: 0,
            next_recv: 0,
            deflate: Compress::new(Compression::new(1), true),
            inflate: Decompress::new(true),
            body: Vec::new(),
        }
    }

    /// Sets the zlib level (0-9) for what this side sends. Default 1: on crawl logs it
    /// compresses about 10x at over 200 MB/s a core, where level 6 gains little more.
    pub fn with_compression(mut self, level: u32) -> Session {
        self.deflate = Compress::new(Compression::new(level.min(9)), true);
        self
    }

    fn nonce(&self, dir: Direction, counter: u64) -> crypto_box::Nonce {
        let mut n = [0u8; 24];
        n[..16].copy_from_slice(&self.salt);
        n[16] = dir as u8;
        n[17..].copy_from_slice(&counter.to_be_bytes()[1..]);
        n.into()
    }

    /// Encodes, compresses and seals `msg` into a wire message.
    pub fn seal(&mut self, msg: &Message) -> Result<Vec<u8>, TransportError> {
        let counter = self.next_send;
        if counter >= COUNTER_LIMIT {
            return Err(TransportError::CounterExhausted);
        }
        self.body.clear();
        msg.encode(&mut self.body);
        let mut out = self.wire_buffer(self.body.len() / 4 + 64);
        deflate_into(&mut self.deflate, &self.body, &mut out)?;
        self.finish_sealing(counter, out)
    }

    /// Seals `Message::Live { seq, frames }` for this connection from frames compressed
    /// once for every home ([`PackedFrames`]): only the few bytes before the frames are
    /// compressed here. The wire message is an ordinary one; the receiver cannot tell.
    pub fn seal_live(
        &mut self,
        seq: u64,
        frames: &PackedFrames,
    ) -> Result<Vec<u8>, TransportError> {
        let counter = self.next_send;
        if counter >= COUNTER_LIMIT {
            return Err(TransportError::CounterExhausted);
        }
        self.body.clear();
        self.body.push(LIVE_TAG);
        varint::put_u64(&mut self.body, seq);
        // zlib header, the message head as a stored block, the frames' own blocks, and
        // the Adler-32 of the whole body, combined from the two parts'.
        let mut out = self.wire_buffer(frames.deflated().len() + 32);
        out.extend_from_slice(&ZLIB_HEADER);
        stored_block(&self.body, &mut out)?;
        out.extend_from_slice(frames.deflated());
        let adler = adler32_combine(
            adler32(&self.body),
            frames.adler,
            frames.frames.len() as u64,
        );
        out.extend_from_slice(&adler.to_be_bytes());
        self.finish_sealing(counter, out)
    }

    /// A buffer for one wire message: room for the counter and, when sealing, the tag,
    /// which the compressed body is then appended after and encrypted in place.
    fn wire_buffer(&self, body_capacity: usize) -> Vec<u8> {
        let prefix = COUNTER_BYTES + if self.cipher.is_some() { TAG_BYTES } else { 0 };
        let mut out = Vec::with_capacity(prefix + body_capacity);
        out.resize(prefix, 0);
        out
    }

    /// Writes the counter into a [`Session::wire_buffer`] holding the compressed body and
    /// seals the body in place, its tag before it (the layout `crypto_box` gives).
    fn finish_sealing(
        &mut self,
        counter: u64,
        mut out: Vec<u8>,
    ) -> Result<Vec<u8>, TransportError> {
        out[..COUNTER_BYTES].copy_from_slice(&counter.to_be_bytes()[1..]);
        if let Some(c) = &self.cipher {
            let (head, body) = out.split_at_mut(COUNTER_BYTES + TAG_BYTES);
            let tag = c
                .encrypt_in_place_detached(&self.nonce(self.send_dir, counter), b"", body)
                .map_err(|_| TransportError::Authentication { counter })?;
            head[COUNTER_BYTES..].copy_from_slice(&tag);
        }
        if out.len() > MAX_MESSAGE_BYTES {
            return Err(TransportError::TooLarge(out.len()));
        }
        self.next_send += 1;
        Ok(out)
    }

    /// Checks the counter, opens and inflates a wire message, and decodes it.
    pub fn open(&mut self, wire: &[u8]) -> Result<Message, TransportError> {
        if wire.len() > MAX_MESSAGE_BYTES {
            return Err(TransportError::TooLarge(wire.len()));
        }
        let mut r = Reader::new(wire, "sealed message");
        let mut c = [0u8; 8];
        c[1..].copy_from_slice(r.bytes(COUNTER_BYTES)?);
        let counter = u64::from_be_bytes(c);
        if counter != self.next_recv {
            return Err(TransportError::Replay {
                expected: self.next_recv,
                got: counter,
            });
        }
        let recv_dir = match self.send_dir {
            Direction::TailerToBuck => Direction::BuckToTailer,
            Direction::BuckToTailer => Direction::TailerToBuck,
        };
        let body = r.remaining();
        let packed = match &self.cipher {
            Some(cb) => cb
                .decrypt(&self.nonce(recv_dir, counter), body)
                .map_err(|_| TransportError::Authentication { counter })?,
            None => body.to_vec(),
        };
        let plain = inflate_at_most(&mut self.inflate, &packed, MAX_INFLATED_BYTES)?;
        // Only a message that opened cleanly moves the counter on.
        self.next_recv += 1;
        Ok(Message::decode(&plain)?)
    }
}

/// The frames of a live packet compressed once, whatever the number of homes it goes to;
/// [`Session::seal_live`] wraps them for one connection. With two homes this halves the
/// tailer's compression work, its largest cost.
#[derive(Debug, Clone)]
pub struct PackedFrames {
    frames: Bytes,
    /// `frames` as a whole zlib stream; its raw deflate blocks (the last one final,
    /// starting on a fresh window) lie between the 2-byte header and the Adler-32.
    zlib: Vec<u8>,
    /// Adler-32 of `frames`.
    adler: u32,
}

impl PackedFrames {
    /// Compresses `frames` at zlib `level` (0-9).
    pub fn new(frames: Bytes, level: u32) -> Result<PackedFrames, TransportError> {
        thread_local! {
            static DEFLATE: std::cell::RefCell<Option<(u32, Compress)>> =
                const { std::cell::RefCell::new(None) };
        }
        let level = level.min(9);
        let mut zlib = Vec::with_capacity(frames.len() / 2 + 64);
        DEFLATE.with(|cell| {
            let mut cell = cell.borrow_mut();
            if cell.as_ref().is_none_or(|(l, _)| *l != level) {
                *cell = Some((level, Compress::new(Compression::new(level), true)));
            }
            match cell.as_mut() {
                Some((_, z)) => deflate_into(z, &frames, &mut zlib),
                None => Err(TransportError::Inflate("no compressor".into())),
            }
        })?;
        // A zlib stream is a 2-byte header, deflate blocks, and the Adler-32 of its data.
        if zlib.len() < ZLIB_HEADER.len() + 4 {
            return Err(TransportError::Inflate("deflate output too short".into()));
        }
        let trailer = &zlib[zlib.len() - 4..];
        let adler = u32::from_be_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        // It lives as long as the packet is unacked: give back the room reserved for a
        // worse ratio.
        zlib.shrink_to_fit();
        Ok(PackedFrames {
            zlib,
            frames,
            adler,
        })
    }

    /// The raw deflate blocks of the frames.
    fn deflated(&self) -> &[u8] {
        &self.zlib[ZLIB_HEADER.len()..self.zlib.len() - 4]
    }

    /// The frames, uncompressed.
    pub fn frames(&self) -> &Bytes {
        &self.frames
    }

    /// Bytes held: the frames and their compressed form.
    pub fn held_bytes(&self) -> usize {
        self.frames.len() + self.zlib.len()
    }
}

/// The first byte of an encoded `Message::Live`.
const LIVE_TAG: u8 = 1;

/// A zlib header: deflate, 32 KiB window, no preset dictionary, check bits valid.
const ZLIB_HEADER: [u8; 2] = [0x78, 0x01];

/// Appends `head` as one stored (uncompressed) deflate block, not the final one. A stored
/// block ends byte-aligned and refers to nothing, so another compressor's blocks may
/// follow it in the same stream; a message head of a few bytes gains nothing from
/// compression, and no compressor has to be reset (clearing its tables) per message.
fn stored_block(head: &[u8], out: &mut Vec<u8>) -> Result<(), TransportError> {
    let len = u16::try_from(head.len())
        .map_err(|_| TransportError::Inflate("message head too long for a stored block".into()))?;
    // BFINAL = 0, BTYPE = 00 (stored), then padding to the byte boundary.
    out.push(0);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(head);
    Ok(())
}

/// Adler-32 of `data` (RFC 1950), for the short message heads `seal_live` stores.
fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &x in chunk {
            a += u32::from(x);
            b += a;
        }
        a %= ADLER_BASE;
        b %= ADLER_BASE;
    }
    (b << 16) | a
}

const ADLER_BASE: u32 = 65_521;

/// The Adler-32 of `A || B` from those of `A` and `B` and the length of `B`, as zlib's
/// `adler32_combine` computes it.
fn adler32_combine(adler_a: u32, adler_b: u32, len_b: u64) -> u32 {
    let base = u64::from(ADLER_BASE);
    let rem = len_b % base;
    let a1 = u64::from(adler_a & 0xffff);
    let b1 = u64::from(adler_a >> 16);
    let a2 = u64::from(adler_b & 0xffff);
    let b2 = u64::from(adler_b >> 16);
    let a = (a1 + a2 + base - 1) % base;
    let b = (rem * a1 % base + b1 + b2 + base - rem) % base;
    ((b as u32) << 16) | a as u32
}

/// Compresses `input` as one whole zlib stream with a reused (reset) compressor,
/// appending it to `out`.
fn deflate_into(z: &mut Compress, input: &[u8], out: &mut Vec<u8>) -> Result<(), TransportError> {
    z.reset();
    loop {
        let read = z.total_in() as usize;
        if out.len() == out.capacity() {
            out.reserve(out.capacity().max(64));
        }
        let status = z
            .compress_vec(&input[read.min(input.len())..], out, FlushCompress::Finish)
            .map_err(|e| TransportError::Inflate(format!("deflate: {e}")))?;
        if status == Status::StreamEnd {
            return Ok(());
        }
    }
}

/// Inflates one whole zlib stream with a reused (reset) decompressor, refusing output
/// past `limit` bytes (a zlib bomb) and input that ends before its stream does.
fn inflate_at_most(
    z: &mut Decompress,
    input: &[u8],
    limit: usize,
) -> Result<Vec<u8>, TransportError> {
    z.reset(true);
    let mut out = Vec::with_capacity((input.len() * 4).clamp(256, limit + 1));
    loop {
        let read = (z.total_in() as usize).min(input.len());
        if out.len() == out.capacity() {
            if out.len() > limit {
                return Err(TransportError::Inflate(format!(
                    "inflates past {limit} bytes"
                )));
            }
            let grow = out.capacity().min(limit + 1 - out.len()).max(1);
            out.reserve_exact(grow);
        }
        let before = (z.total_in(), z.total_out());
        let status = z
            .decompress_vec(&input[read..], &mut out, FlushDecompress::Finish)
            .map_err(|e| TransportError::Inflate(e.to_string()))?;
        if out.len() > limit {
            return Err(TransportError::Inflate(format!(
                "inflates past {limit} bytes"
            )));
        }
        match status {
            Status::StreamEnd => return Ok(out),
            _ if (z.total_in(), z.total_out()) == before && out.len() < out.capacity() => {
                return Err(TransportError::Inflate(
                    "the zlib stream is cut short".into(),
                ));
            }
            _ => {}
        }
    }
}

/// A fresh random salt for a connection.
pub fn random_salt() -> [u8; 16] {
    rand::random()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyPair;
    use proptest::prelude::*;

    #[test]
    fn the_codec_frames_with_a_u32_length_and_refuses_a_longer_one_than_the_limit() {
        use bytes::BytesMut;
        use tokio_util::codec::{Decoder, Encoder};
        let hello = ClientHello::new(7, [1; 32], true, "crawler-07".into());
        assert_eq!(
            (hello.min_version, hello.max_version),
            (PROTOCOL_MIN, PROTOCOL_MAX)
        );
        let body = hello.encode();
        let mut wire = BytesMut::new();
        codec()
            .encode(Bytes::from(body.clone()), &mut wire)
            .unwrap();
        assert_eq!(wire[..4], (body.len() as u32).to_be_bytes());
        let got = codec().decode(&mut wire).unwrap().unwrap();
        assert_eq!(ClientHello::decode(&got).unwrap(), hello);

        let too_long = (MAX_MESSAGE_BYTES as u32 + 1).to_be_bytes();
        let mut wire = BytesMut::from(&too_long[..]);
        assert!(codec().decode(&mut wire).is_err());
        let at_limit = (MAX_MESSAGE_BYTES as u32).to_be_bytes();
        let mut wire = BytesMut::from(&at_limit[..]);
        assert!(
            matches!(codec().decode(&mut wire), Ok(None)),
            "waits for the body"
        );
    }

    fn pair(encrypted: bool) -> (Session, Session, KeyPair, KeyPair) {
        let t = KeyPair::generate();
        let b = KeyPair::generate();
        let salt = random_salt();
        let ts = Session::new(
            encrypted.then(|| (t.secret(), b.public())),
            salt,
            Direction::TailerToBuck,
        );
        let bs = Session::new(
            encrypted.then(|| (b.secret(), t.public())),
            salt,
            Direction::BuckToTailer,
        );
        (ts, bs, t, b)
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        prop_oneof![
            (any::<u64>(), prop::collection::vec(any::<u8>(), 0..500)).prop_map(|(seq, f)| {
                Message::Live {
                    seq,
                    frames: f.into(),
                }
            }),
            (
                any::<u64>(),
                any::<i64>(),
                any::<u32>(),
                any::<bool>(),
                prop::collection::vec(any::<u8>(), 0..500)
            )
                .prop_map(|(seq, bucket_start, chunk, last, f)| Message::BucketChunk {
                    seq,
                    crawl: CrawlId::parse("crawl-1").expect("valid"),
                    bucket_start,
                    chunk,
                    last,
                    frames: f.into()
                }),
            (
                any::<u64>(),
                prop::collection::vec((any::<u32>(), "[a-z ]{0,20}"), 0..4)
            )
                .prop_map(|(seq, r)| Message::Ack {
                    seq,
                    rejected: r
                        .into_iter()
                        .map(|(index, reason)| RejectedFrame { index, reason })
                        .collect()
                }),
            (any::<u64>(), any::<u32>(), "[a-z ]{0,20}").prop_map(
                |(seq, retry_after_ms, reason)| Message::Nack {
                    seq,
                    retry_after_ms,
                    reason
                }
            ),
            any::<u64>().prop_map(|token| Message::Ping { token }),
            any::<u64>().prop_map(|token| Message::Pong { token }),
        ]
    }

    proptest! {
        #[test]
        fn messages_round_trip_both_ways(msgs in prop::collection::vec(arb_message(), 1..5), enc: bool) {
            let (mut t, mut b, ..) = pair(enc);
            for m in &msgs {
                let w = t.seal(m)?;
                prop_assert_eq!(&b.open(&w)?, m);
                let w = b.seal(m)?;
                prop_assert_eq!(&t.open(&w)?, m);
            }
        }

        #[test]
        fn garbage_never_panics(b in prop::collection::vec(any::<u8>(), 0..300)) {
            let (_, mut s, ..) = pair(true);
            let _ = s.open(&b);
            let (_, mut s, ..) = pair(false);
            let _ = s.open(&b);
            let _ = Message::decode(&b);
            let _ = ClientHello::decode(&b);
            let _ = ServerHello::decode(&b);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn a_live_packet_packed_once_opens_as_the_same_message_on_every_connection(
            frames in prop::collection::vec(any::<u8>(), 0..20_000),
            repeat in 1usize..40,
            seqs in prop::collection::vec(any::<u64>(), 1..4),
            enc: bool,
            level in 0u32..10,
        ) {
            // Repetitive bytes too, so that matches and long blocks occur.
            let frames: Vec<u8> = frames.iter().copied().cycle().take(frames.len() * repeat).collect();
            let frames = Bytes::from(frames);
            let packed = PackedFrames::new(frames.clone(), level)?;
            for seq in seqs {
                let (t, mut b, ..) = pair(enc);
                let mut t = t.with_compression(level);
                let w = t.seal_live(seq, &packed)?;
                prop_assert_eq!(b.open(&w)?, Message::Live { seq, frames: frames.clone() });
                // And after an ordinary message on the same connection.
                let w = t.seal(&Message::Ping { token: seq })?;
                prop_assert_eq!(b.open(&w)?, Message::Ping { token: seq });
                let w = t.seal_live(seq ^ 1, &packed)?;
                prop_assert_eq!(b.open(&w)?, Message::Live { seq: seq ^ 1, frames: frames.clone() });
            }
        }
    }

    #[test]
    fn adler32_parts_combine_to_the_whole() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for cut in [0, 1, 5551, 5552, 65_520, 65_521, 65_522, 99_999, 100_000] {
            let (a, b) = data.split_at(cut);
            assert_eq!(
                adler32_combine(adler32(a), adler32(b), b.len() as u64),
                adler32(&data),
                "cut at {cut}"
            );
        }
        // Known value: Adler-32 of "Wikipedia" is 0x11E60398.
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
    }

    #[test]
    fn replay_and_reorder_are_rejected() {
        let (mut t, mut b, ..) = pair(true);
        let m0 = t.seal(&Message::Ping { token: 1 }).unwrap();
        let m1 = t.seal(&Message::Ping { token: 2 }).unwrap();
        assert!(matches!(
            b.open(&m1),
            Err(TransportError::Replay {
                expected: 0,
                got: 1
            })
        ));
        b.open(&m0).unwrap();
        assert!(matches!(b.open(&m0), Err(TransportError::Replay { .. })));
        b.open(&m1).unwrap();
    }

    #[test]
    fn wrong_key_and_other_connection_fail_authentication() {
        let (mut t, ..) = pair(true);
        let (_, mut other, ..) = pair(true);
        let w = t.seal(&Message::Ping { token: 1 }).unwrap();
        assert!(matches!(
            other.open(&w),
            Err(TransportError::Authentication { .. })
        ));
        // Same keys, different salt (another connection): the replay fails too.
        let tk = KeyPair::generate();
        let bk = KeyPair::generate();
        let mut a = Session::new(
            Some((tk.secret(), bk.public())),
            random_salt(),
            Direction::TailerToBuck,
        );
        let mut b = Session::new(
            Some((bk.secret(), tk.public())),
            random_salt(),
            Direction::BuckToTailer,
        );
        let w = a.seal(&Message::Ping { token: 1 }).unwrap();
        assert!(matches!(
            b.open(&w),
            Err(TransportError::Authentication { .. })
        ));
    }

    #[test]
    fn a_message_cannot_be_reflected_back() {
        let (mut t, ..) = pair(true);
        let w = t.seal(&Message::Ping { token: 1 }).unwrap();
        // The tailer's own message, sent back to it, uses the other direction's nonce.
        assert!(t.open(&w).is_err());
    }

    #[test]
    fn zlib_bomb_is_refused() {
        let (mut t, mut b, ..) = pair(false);
        let big = Message::Live {
            seq: 0,
            frames: vec![0u8; MAX_INFLATED_BYTES + 10].into(),
        };
        let w = t.seal(&big).unwrap();
        assert!(matches!(b.open(&w), Err(TransportError::Inflate(_))));
    }

    #[test]
    fn hellos_round_trip_and_negotiate() {
        let h = ClientHello {
            min_version: 1,
            max_version: 3,
            tailer_id: 7,
            public_key: [9; 32],
            encrypted: true,
            host: "h".into(),
        };
        assert_eq!(ClientHello::decode(&h.encode()).unwrap(), h);
        assert_eq!(h.negotiate(1, 1), Some(1));
        assert_eq!(h.negotiate(4, 5), None);
        for s in [
            ServerHello::Accept {
                version: 1,
                buck_id: "b1".into(),
                salt: [3; 16],
                encrypted: false,
            },
            ServerHello::Reject {
                reason: "key not on the allow-list".into(),
            },
        ] {
            assert_eq!(ServerHello::decode(&s.encode()).unwrap(), s);
        }
    }
}
