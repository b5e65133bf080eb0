//! What frame streams (issue 14 item 1) save and what they move: version-1 frames against
//! frame streams on real Heritrix logs and on generated high-entropy lines (random hosts,
//! paths and sha1 digests), cut into 64 KiB packets as the tailer ships them.
//!
//! Per encoding: frame bytes per byte of log; the tailer's cost to encode the frames and
//! compress each packet (zlib level 1, the default); wire bytes per byte of log; and the
//! buck's cost to decode the frames back to whole events. Version-1 frames carry the
//! parsed spans; a frame stream does not, so the buck parses each line again: that parse
//! is the cost that moves from tailer to buck. CPU is this thread's user + system time per
//! GiB of log, so other load on the machine barely moves it.
//!
//!     cargo run --release -p sluice-bench --bin frame_streams [MiB of generated lines, default 64]

use anyhow::Context;
use contracts::Event;
use contracts::frame_stream::FrameStreamWriter;
use flate2::{Compress, Compression, FlushCompress};

#[path = "../common/mod.rs"]
mod common;

const PACKET: usize = 64 * 1024;

#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    Version1,
    Stream,
}

/// Encodes `events` into packets of at most 64 KiB; a stream packet has a writer of its
/// own, as the tailer's live packets do.
fn encode(events: &[Event], how: Encoding) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut cur = Vec::with_capacity(PACKET + 4096);
    let mut writer = FrameStreamWriter::new();
    for e in events {
        if cur.len() >= PACKET {
            out.push(std::mem::replace(
                &mut cur,
                Vec::with_capacity(PACKET + 4096),
            ));
            writer.restart();
        }
        let ok = match how {
            Encoding::Version1 => contracts::frame::put_event_frame(&mut cur, e),
            Encoding::Stream => writer.push(&mut cur, &e.view()),
        };
        assert!(ok, "every bench line fits a frame");
    }
    out.push(cur);
    out
}

fn compress(packets: &[Vec<u8>]) -> anyhow::Result<u64> {
    let mut z = Compress::new(Compression::new(1), true);
    let mut buf = Vec::with_capacity(PACKET * 2);
    let mut wire = 0u64;
    for p in packets {
        z.reset();
        buf.clear();
        let before_in = z.total_in();
        loop {
            let consumed = (z.total_in() - before_in) as usize;
            buf.reserve(PACKET);
            let status = z
                .compress_vec(&p[consumed..], &mut buf, FlushCompress::Finish)
                .context("deflate")?;
            if status == flate2::Status::StreamEnd {
                break;
            }
        }
        wire += buf.len() as u64;
    }
    Ok(wire)
}

/// Decodes every packet to whole events as the buck does; returns how many.
fn decode(packets: &[Vec<u8>], how: Encoding) -> usize {
    let mut n = 0;
    for p in packets {
        let (events, framing) = match how {
            Encoding::Version1 => contracts::frame::decode_frames(p),
            Encoding::Stream => parsers::stream_events::decode_stream(p),
        };
        assert!(framing.is_none());
        n += events.iter().filter(|e| e.is_ok()).count();
    }
    n
}

fn table(name: &str, log: &[u8]) -> anyhow::Result<()> {
    let events = common::log_inputs::crawl_log_events(log);
    let gib = log.len() as f64 / (1u64 << 30) as f64;
    let raw: usize = events.iter().map(|e| e.raw.len()).sum();
    let rounds = common::log_inputs::rounds_for(log);
    println!(
        "\n{name}: {:.1} MiB of log, {} lines ({:.0} bytes of line on average), {rounds} round(s)\n",
        log.len() as f64 / 1048576.0,
        events.len(),
        raw as f64 / events.len().max(1) as f64
    );
    println!(
        "| frames | frames / log | wire / log (zlib 1) | tailer: encode + zlib, CPU-s per GiB | buck: decode, CPU-s per GiB |"
    );
    println!("|---|---:|---:|---:|---:|");
    for how in [Encoding::Version1, Encoding::Stream] {
        let (mut encode_cpu, mut decode_cpu) = (0.0, 0.0);
        let (mut frames, mut wire) = (0, 0);
        for _ in 0..rounds {
            let started = common::thread_cpu_secs();
            let packets = encode(&events, how);
            wire = compress(&packets)?;
            encode_cpu += common::thread_cpu_secs() - started;
            frames = packets.iter().map(Vec::len).sum::<usize>();
            let started = common::thread_cpu_secs();
            let n = decode(&packets, how);
            decode_cpu += common::thread_cpu_secs() - started;
            anyhow::ensure!(n == events.len(), "{n} of {} events decoded", events.len());
        }
        println!(
            "| {} | {:.3} | {:.3} | {:.2} | {:.2} |",
            match how {
                Encoding::Version1 => "version-1 events",
                Encoding::Stream => "frame stream",
            },
            frames as f64 / log.len() as f64,
            wire as f64 / log.len() as f64,
            encode_cpu / rounds as f64 / gib,
            decode_cpu / rounds as f64 / gib
        );
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    common::log_inputs::run_on_real_and_generated(table)
}
