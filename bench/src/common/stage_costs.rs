//! What encoding, zlib and crypto_box alone cost on the tailer's packets, on one thread:
//! the floor under the tailer's CPU-seconds per GiB that no change to the rest of its code
//! can lower, measured with the very functions the shipper calls.
//!
//! The events are first written as the tailer's reader spools them (one frame stream, or
//! version-1 frames), then cut into live packets of at most `packet_max` bytes as the
//! shipper cuts them: an event that would take a packet past the limit opens the next
//! one, and each packet of a frame stream reads on its own. Two ways of cutting a frame
//! stream are measured: the shipper's since 5a45df4 (the spooled event frames copied as
//! they are, each packet behind a resume context of the reader's state) and the one before
//! it (every event read and written again through a `FrameStreamWriter` of the packet's
//! own, restarted at each packet). Repair chunks are cut the same way at
//! [`MAX_CHUNK_BYTES`]. The version-1 encoding (one whole event a frame, what the tailer
//! sent before frame streams) is the baseline. "Encode" is the spooling and the cutting
//! together: the work per event between a parsed line and a packet to compress.

use bytes::Bytes;
use contracts::frame::FrameReader;
use contracts::frame_stream::{FrameRead, FrameStreamReader, FrameStreamWriter, TAG_CONTEXT};
use contracts::keys::KeyPair;
use contracts::transport::{
    ChunkHead, Cipher, Direction, MAX_CHUNK_BYTES, Message, PackedFrames, Session,
};
use contracts::{CrawlId, Event};

// Included by `tailer_vs_rsyslog` beside `common`, whose clock it reads.
use crate::common::thread_cpu_secs;

/// How events become frames, and frames packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// One whole event a frame (`contracts::frame::put_event_frame`), frames copied.
    Version1,
    /// A frame stream, each event written again into the packet's own stream (the shipper
    /// from e352568 to 5a45df4).
    StreamRewritten,
    /// A frame stream, event frames copied behind a resume context (the shipper now).
    StreamCopied,
}

impl Encoding {
    /// Every encoding, the baseline first.
    pub const ALL: [Encoding; 3] = [
        Encoding::Version1,
        Encoding::StreamRewritten,
        Encoding::StreamCopied,
    ];

    /// The name a table gives it.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Version1 => "version-1 events",
            Encoding::StreamRewritten => "frame stream, events written again per packet",
            Encoding::StreamCopied => "frame stream, frames copied behind a resume context",
        }
    }
}

/// CPU seconds of each stage over every round.
pub struct StageCosts {
    /// Bytes of log one round covers, and how many rounds were run.
    pub log_bytes: u64,
    pub rounds: usize,
    /// Bytes of frames (what the tailer compresses) in one round, and the packets they made.
    pub frame_bytes: u64,
    pub packets: u64,
    /// Writing the events into packets (`FrameStreamWriter::push` or `put_event_frame`).
    pub encode_secs: f64,
    /// zlib at the tailer's level, once per packet (`PackedFrames::new`).
    pub deflate_secs: f64,
    /// Compressed bytes out of zlib in one round.
    pub deflated_bytes: u64,
    /// Wrapping, Adler-32 and crypto_box sealing of each packed packet (`seal_live`),
    /// with `SalsaBox` (protocol version 1).
    pub seal_secs: f64,
    /// The same with `ChaChaBox` (protocol version 2 and later).
    pub seal_chacha_secs: f64,
    /// The events cut into repair chunks sent to two homes with `ChaChaBox`: each
    /// connection compressing and sealing its own (`Session::seal`, as before), and
    /// compressed once then sealed per home (`PackedFrames::new` and
    /// `Session::seal_chunk`, as now).
    pub repair_two_homes_per_connection_secs: f64,
    pub repair_two_homes_once_secs: f64,
}

impl StageCosts {
    /// Adds the CPU seconds of `other`'s stages to this one's.
    fn add_secs(&mut self, other: &StageCosts) {
        self.encode_secs += other.encode_secs;
        self.deflate_secs += other.deflate_secs;
        self.seal_secs += other.seal_secs;
        self.seal_chacha_secs += other.seal_chacha_secs;
        self.repair_two_homes_per_connection_secs += other.repair_two_homes_per_connection_secs;
        self.repair_two_homes_once_secs += other.repair_two_homes_once_secs;
    }

    /// `secs` (summed over every round) per GiB of log.
    pub fn per_gib(&self, secs: f64) -> f64 {
        secs / (self.log_bytes as f64 * self.rounds as f64 / (1u64 << 30) as f64)
    }
}

/// Runs `events` (the events of `log_bytes` of log) `rounds` times through encoding,
/// compression and sealing as the shipper does for one home, then through the repair
/// path to two homes.
pub fn measure(
    events: &[Event],
    log_bytes: u64,
    encoding: Encoding,
    packet_max: usize,
    level: u32,
    rounds: usize,
) -> anyhow::Result<StageCosts> {
    anyhow::ensure!(!events.is_empty(), "no events to measure");
    anyhow::ensure!(rounds > 0, "no round to measure");
    let keys = (KeyPair::generate(), KeyPair::generate());
    // A first round, not counted: the heap grows to hold the packets and their compressed
    // copies before the clock starts, so whichever encoding is measured first does not pay
    // the page faults for both.
    one_round(events, encoding, packet_max, level, &keys)?;
    let mut costs = one_round(events, encoding, packet_max, level, &keys)?;
    for _ in 1..rounds {
        costs.add_secs(&one_round(events, encoding, packet_max, level, &keys)?);
    }
    costs.log_bytes = log_bytes;
    costs.rounds = rounds;
    Ok(costs)
}

/// One round of [`measure`]; `log_bytes` and `rounds` are left for the caller to set.
fn one_round(
    events: &[Event],
    encoding: Encoding,
    packet_max: usize,
    level: u32,
    (tailer, buck): &(KeyPair, KeyPair),
) -> anyhow::Result<StageCosts> {
    let cpu0 = thread_cpu_secs();
    let packets = cut(events, encoding, packet_max)?;
    let encode_secs = thread_cpu_secs() - cpu0;

    let cpu0 = thread_cpu_secs();
    let mut packed = Vec::with_capacity(packets.len());
    for p in &packets {
        packed.push(PackedFrames::new(p.clone(), level)?);
    }
    let deflate_secs = thread_cpu_secs() - cpu0;
    let deflated_bytes = packed
        .iter()
        .map(|p| (p.held_bytes() - p.frames().len()) as u64)
        .sum();
    let seal_secs = seal_live(&packed, Cipher::SalsaBox, tailer, buck)?;
    let seal_chacha_secs = seal_live(&packed, Cipher::ChaChaBox, tailer, buck)?;
    drop(packed);

    let chunks = cut(events, encoding, MAX_CHUNK_BYTES)?;
    let (repair_two_homes_per_connection_secs, repair_two_homes_once_secs) =
        repair_two_homes(&chunks, level, tailer, buck)?;
    Ok(StageCosts {
        log_bytes: 0,
        rounds: 1,
        frame_bytes: packets.iter().map(|p| p.len() as u64).sum(),
        packets: packets.len() as u64,
        encode_secs,
        deflate_secs,
        deflated_bytes,
        seal_secs,
        seal_chacha_secs,
        repair_two_homes_per_connection_secs,
        repair_two_homes_once_secs,
    })
}

/// `events` spooled and cut into packets of at most `max` bytes (or one event, if
/// larger), each readable on its own, as the reader and the shipper do.
pub fn cut(events: &[Event], encoding: Encoding, max: usize) -> anyhow::Result<Vec<Bytes>> {
    let mut spooled = Vec::new();
    let mut writer = FrameStreamWriter::new();
    for event in events {
        let fits = match encoding {
            Encoding::Version1 => contracts::frame::put_event_frame(&mut spooled, event),
            _ => writer.push(&mut spooled, &event.view()),
        };
        anyhow::ensure!(
            fits,
            "an event built by the tailer's builder does not fit a frame"
        );
    }
    let mut packets = Packets::new(max);
    let mut reader = FrameStreamReader::new();
    // Whether the packet's stream reads the next frame as the spool's stream does.
    let mut in_step = false;
    for item in FrameReader::new(&spooled) {
        let (at, payload) = item?;
        let frame = &spooled[at..at + 2 + payload.len()];
        match encoding {
            Encoding::Version1 => {
                packets.make_room(frame.len());
                packets.frames.extend_from_slice(frame);
            }
            Encoding::StreamRewritten => {
                let FrameRead::Event(event) = reader.read(payload) else {
                    continue;
                };
                let event = event.with_fields(event.fields.unwrap_or(&[]));
                let before = packets.frames.len();
                anyhow::ensure!(packets.writer.push(&mut packets.frames, &event));
                if before > 0 && packets.frames.len() > max {
                    // Sent without it; it opens the next packet, after its own context.
                    packets.frames.truncate(before);
                    packets.send();
                    anyhow::ensure!(packets.writer.push(&mut packets.frames, &event));
                }
            }
            Encoding::StreamCopied => {
                if payload.first() == Some(&TAG_CONTEXT) {
                    reader.read(payload);
                    in_step = false;
                    continue;
                }
                if packets.make_room(frame.len()) {
                    in_step = false;
                }
                if !in_step {
                    reader.put_resume_context(&mut packets.frames);
                }
                anyhow::ensure!(
                    matches!(reader.read(payload), FrameRead::Event(_)),
                    "a spooled frame does not decode"
                );
                packets.frames.extend_from_slice(frame);
                in_step = true;
            }
        }
        if packets.frames.len() >= max {
            packets.send();
            in_step = false;
        }
    }
    Ok(packets.finish())
}

/// The packets cut so far and the one being filled.
struct Packets {
    max: usize,
    frames: Vec<u8>,
    /// The stream writer of the packet being filled (for [`Encoding::StreamRewritten`]).
    writer: FrameStreamWriter,
    sent: Vec<Bytes>,
}

impl Packets {
    fn new(max: usize) -> Packets {
        Packets {
            max,
            frames: Vec::with_capacity(max + 4096),
            writer: FrameStreamWriter::new(),
            sent: Vec::new(),
        }
    }

    /// Sends the packet being filled if `len` more bytes would take it past the limit;
    /// says whether it did.
    fn make_room(&mut self, len: usize) -> bool {
        let full = !self.frames.is_empty() && self.frames.len() + len > self.max;
        if full {
            self.send();
        }
        full
    }

    /// Sends the packet being filled and starts the next, with a fresh stream.
    fn send(&mut self) {
        let next = Vec::with_capacity(self.max + 4096);
        self.sent
            .push(Bytes::from(std::mem::replace(&mut self.frames, next)));
        self.writer.restart();
    }

    fn finish(mut self) -> Vec<Bytes> {
        if !self.frames.is_empty() {
            self.send();
        }
        self.sent
    }
}

/// CPU seconds to seal every packet of `packed` for one home with `cipher`.
fn seal_live(
    packed: &[PackedFrames],
    cipher: Cipher,
    tailer: &KeyPair,
    buck: &KeyPair,
) -> anyhow::Result<f64> {
    let mut session = Session::negotiated(
        Some((tailer.secret(), buck.public())),
        [7; 16],
        Direction::TailerToBuck,
        cipher,
        None,
    );
    let cpu0 = thread_cpu_secs();
    let mut sealed = 0usize;
    for (seq, p) in packed.iter().enumerate() {
        sealed += session.seal_live(seq as u64, p)?.len();
    }
    anyhow::ensure!(sealed > 0, "nothing sealed");
    Ok(thread_cpu_secs() - cpu0)
}

/// CPU seconds to send `chunks` to two homes: each connection compressing its own
/// chunk, then each chunk compressed once.
fn repair_two_homes(
    chunks: &[Bytes],
    level: u32,
    tailer: &KeyPair,
    buck: &KeyPair,
) -> anyhow::Result<(f64, f64)> {
    let crawl = CrawlId::parse("bench-crawl")?;
    let sessions = || {
        [0u8, 1].map(|salt| {
            Session::negotiated(
                Some((tailer.secret(), buck.public())),
                [salt; 16],
                Direction::TailerToBuck,
                Cipher::ChaChaBox,
                None,
            )
            .with_compression(level)
        })
    };
    let mut homes = sessions();
    let cpu0 = thread_cpu_secs();
    let mut sealed = 0usize;
    for (n, frames) in chunks.iter().enumerate() {
        let msg = Message::BucketChunk {
            seq: n as u64,
            crawl: crawl.clone(),
            bucket_start: 0,
            chunk: n as u32,
            last: n + 1 == chunks.len(),
            frames: frames.clone(),
        };
        for home in &mut homes {
            sealed += home.seal(&msg)?.len();
        }
    }
    let per_connection = thread_cpu_secs() - cpu0;

    let mut homes = sessions();
    let cpu0 = thread_cpu_secs();
    for (n, frames) in chunks.iter().enumerate() {
        let packed = PackedFrames::new(frames.clone(), level)?;
        let head = ChunkHead {
            seq: n as u64,
            crawl: &crawl,
            bucket_start: 0,
            chunk: n as u32,
            last: n + 1 == chunks.len(),
        };
        for home in &mut homes {
            sealed += home.seal_chunk(&head, &packed)?.len();
        }
    }
    let once = thread_cpu_secs() - cpu0;
    anyhow::ensure!(sealed > 0, "nothing sealed");
    Ok((per_connection, once))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every packet is read on its own and every event arrives once, in order, whole.
    #[test]
    fn stream_packets_read_alone_and_hold_every_event() {
        let log = crate::common::generated_crawl_log(1, 3);
        let events = crate::common::log_inputs::crawl_log_events(&log);
        for encoding in [Encoding::StreamRewritten, Encoding::StreamCopied] {
            let packets = cut(&events, encoding, 64 * 1024).unwrap();
            assert!(packets.len() > 1, "1 MiB of log makes several packets");
            let mut decoded = Vec::new();
            for p in &packets {
                assert!(p.len() <= 64 * 1024, "a packet of {} bytes", p.len());
                let (got, framing) = parsers::stream_events::decode_stream(p);
                assert!(framing.is_none());
                decoded.extend(got.into_iter().map(|e| e.unwrap()));
            }
            assert_eq!(decoded.len(), events.len());
            for (got, want) in decoded.iter().zip(&events) {
                assert_eq!(got.id, want.id);
                assert_eq!(got.raw, want.raw);
            }
        }
    }
}
