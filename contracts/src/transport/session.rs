//! An established connection's two directions: compress, seal and count what is sent;
//! check, open and inflate what is received.

use bytes::Bytes;
use crypto_box::aead::{Aead, AeadInPlace};
use crypto_box::{ChaChaBox, PublicKey, SalsaBox, SecretKey};
use flate2::{Compress, Compression, Decompress};

use crate::DecodeError;
use crate::varint::{self, Reader};

use super::hello::Cipher;
use super::message::{ChunkHead, LIVE_TAG, Message};
use super::zlib::{
    ZLIB_HEADER, adler32, adler32_combine, deflate_into, inflate_at_most, stored_block,
};
use super::{MAX_INFLATED_BYTES, MAX_MESSAGE_BYTES};

const COUNTER_BYTES: usize = 7;

/// Bytes of the Poly1305 tag crypto_box puts before the ciphertext.
const TAG_BYTES: usize = 16;
const COUNTER_LIMIT: u64 = 1 << 56;

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

/// The box a connection seals with. (NaCl boxes take no associated data: what a version-2
/// connection binds besides the bodies, its hellos, goes into the nonces instead.)
enum SealingBox {
    Salsa(SalsaBox),
    ChaCha(ChaChaBox),
}

impl SealingBox {
    fn seal_in_place(
        &self,
        nonce: &crypto_box::Nonce,
        body: &mut [u8],
    ) -> Result<crypto_box::Tag, crypto_box::aead::Error> {
        match self {
            SealingBox::Salsa(b) => b.encrypt_in_place_detached(nonce, b"", body),
            SealingBox::ChaCha(b) => b.encrypt_in_place_detached(nonce, b"", body),
        }
    }

    fn open(
        &self,
        nonce: &crypto_box::Nonce,
        sealed: &[u8],
    ) -> Result<Vec<u8>, crypto_box::aead::Error> {
        match self {
            SealingBox::Salsa(b) => b.decrypt(nonce, sealed),
            SealingBox::ChaCha(b) => b.decrypt(nonce, sealed),
        }
    }
}

/// One side of an established connection: seals what it sends, opens what it receives.
pub struct Session {
    cipher: Option<SealingBox>,
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
    /// A protocol version 1 session: sealing with the `SalsaBox` made of `my_secret` and
    /// `their_public`, or plain (compressed, counted, not encrypted) when `keys` is `None`.
    pub fn new(
        keys: Option<(&SecretKey, &PublicKey)>,
        salt: [u8; 16],
        send_dir: Direction,
    ) -> Session {
        Session::negotiated(keys, salt, send_dir, Cipher::SalsaBox, None)
    }

    /// A session sealing with `cipher`. From protocol version 2 on, `transcript` (the
    /// hellos', see [`super::transcript`], which covers the buck's random salt) takes the
    /// salt's place in every nonce: both sides must have seen the same hellos for any
    /// message to open.
    pub fn negotiated(
        keys: Option<(&SecretKey, &PublicKey)>,
        salt: [u8; 16],
        send_dir: Direction,
        cipher: Cipher,
        transcript: Option<[u8; 32]>,
    ) -> Session {
        let salt = match transcript {
            Some(t) => {
                let mut bound = [0u8; 16];
                bound.copy_from_slice(&t[..16]);
                bound
            }
            None => salt,
        };
        Session {
            cipher: keys.map(|(s, p)| match cipher {
                Cipher::SalsaBox => SealingBox::Salsa(SalsaBox::new(p, s)),
                Cipher::ChaChaBox => SealingBox::ChaCha(ChaChaBox::new(p, s)),
            }),
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
        self.seal_packed(
            |body| {
                body.push(LIVE_TAG);
                varint::put_u64(body, seq);
            },
            frames,
        )
    }

    /// Seals the `Message::BucketChunk` of `head` and `frames` (a repair chunk) for this
    /// connection from frames compressed once, as [`Session::seal_live`] does for a
    /// live packet: the receiver gets the same message [`Session::seal`] would send.
    pub fn seal_chunk(
        &mut self,
        head: &ChunkHead<'_>,
        frames: &PackedFrames,
    ) -> Result<Vec<u8>, TransportError> {
        self.seal_packed(|body| head.encode(body), frames)
    }

    /// Seals a message whose body is what `head` writes followed by `frames`.
    fn seal_packed(
        &mut self,
        head: impl FnOnce(&mut Vec<u8>),
        frames: &PackedFrames,
    ) -> Result<Vec<u8>, TransportError> {
        let counter = self.next_send;
        if counter >= COUNTER_LIMIT {
            return Err(TransportError::CounterExhausted);
        }
        self.body.clear();
        head(&mut self.body);
        // zlib header, the message head as a stored block, the frames' own blocks, and
        // the Adler-32 of the whole body, combined from the two parts'.
        let mut out = self.wire_buffer(frames.deflated().len() + self.body.len() + 32);
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
                .seal_in_place(&self.nonce(self.send_dir, counter), body)
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
                .open(&self.nonce(recv_dir, counter), body)
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

    /// Bytes of the frames compressed: about what sealing them for a connection encrypts.
    pub fn compressed_len(&self) -> usize {
        self.zlib.len()
    }

    /// Bytes held: the frames and their compressed form.
    pub fn held_bytes(&self) -> usize {
        self.frames.len() + self.zlib.len()
    }
}

/// A fresh random salt for a connection.
pub fn random_salt() -> [u8; 16] {
    rand::random()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CrawlId;
    use crate::keys::KeyPair;
    use crate::transport::{
        ClientHello, PROTOCOL_MAX, PROTOCOL_MIN, RejectedFrame, ServerHello, codec,
    };
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn a_repair_chunk_packed_once_opens_as_the_same_bucket_chunk_on_every_connection(
            frames in prop::collection::vec(any::<u8>(), 0..20_000),
            repeat in 1usize..40,
            crawl in "[a-z0-9][a-z0-9._-]{0,60}",
            bucket_start: i64,
            chunk: u32,
            last: bool,
            seq: u64,
            enc: bool,
            level in 0u32..10,
        ) {
            let frames: Vec<u8> = frames.iter().copied().cycle().take(frames.len() * repeat).collect();
            let frames = Bytes::from(frames);
            let crawl = CrawlId::parse(&crawl).map_err(|e| TestCaseError::reject(e.to_string()))?;
            let packed = PackedFrames::new(frames.clone(), level)?;
            let expected = Message::BucketChunk {
                seq,
                crawl: crawl.clone(),
                bucket_start,
                chunk,
                last,
                frames: frames.clone(),
            };
            let head = ChunkHead { seq, crawl: &crawl, bucket_start, chunk, last };
            // Two homes: one compression, two seals, and each opens to what an ordinary
            // seal of the whole message would have sent.
            for _home in 0..2 {
                let (mut t, mut b, ..) = pair(enc);
                prop_assert_eq!(b.open(&t.seal(&Message::Ping { token: seq })?)?, Message::Ping { token: seq });
                let w = t.seal_chunk(&head, &packed)?;
                prop_assert_eq!(b.open(&w)?, expected.clone());
                let w = t.seal(&expected)?;
                prop_assert_eq!(b.open(&w)?, expected.clone());
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

    fn negotiated_pair(
        cipher_t: Cipher,
        cipher_b: Cipher,
        transcript_t: Option<[u8; 32]>,
        transcript_b: Option<[u8; 32]>,
    ) -> (Session, Session) {
        let t = KeyPair::generate();
        let b = KeyPair::generate();
        let salt = random_salt();
        let ts = Session::negotiated(
            Some((t.secret(), b.public())),
            salt,
            Direction::TailerToBuck,
            cipher_t,
            transcript_t,
        );
        let bs = Session::negotiated(
            Some((b.secret(), t.public())),
            salt,
            Direction::BuckToTailer,
            cipher_b,
            transcript_b,
        );
        (ts, bs)
    }

    #[test]
    fn chacha_sessions_carry_messages_and_packed_frames_both_ways() {
        let tr = super::super::transcript(2, b"client hello", b"server hello");
        let (mut t, mut b) = negotiated_pair(Cipher::ChaChaBox, Cipher::ChaChaBox, tr, tr);
        let live = Message::Live {
            seq: 3,
            frames: Bytes::from_static(b"\x00\x05hello"),
        };
        assert_eq!(b.open(&t.seal(&live).unwrap()).unwrap(), live);
        let packed = PackedFrames::new(Bytes::from_static(b"\x00\x05hello"), 1).unwrap();
        assert_eq!(b.open(&t.seal_live(3, &packed).unwrap()).unwrap(), live);
        let ack = Message::Ack {
            seq: 3,
            rejected: vec![],
        };
        assert_eq!(t.open(&b.seal(&ack).unwrap()).unwrap(), ack);
    }

    #[test]
    fn an_altered_hello_or_another_cipher_fails_the_first_message() {
        let msg = Message::Ping { token: 1 };
        let sent = super::super::transcript(2, b"client hello max 2", b"server hello");
        let seen = super::super::transcript(2, b"client hello max 1", b"server hello");
        let (mut t, mut b) = negotiated_pair(Cipher::ChaChaBox, Cipher::ChaChaBox, sent, seen);
        assert!(matches!(
            b.open(&t.seal(&msg).unwrap()),
            Err(TransportError::Authentication { counter: 0 })
        ));
        let (mut t, mut b) = negotiated_pair(Cipher::SalsaBox, Cipher::ChaChaBox, None, None);
        assert!(matches!(
            b.open(&t.seal(&msg).unwrap()),
            Err(TransportError::Authentication { counter: 0 })
        ));
    }
}
