//! What zlib's level and window cost on the tailer's frames (issue 14 item 4): the frames
//! of real Heritrix logs and of generated high-entropy lines (random hosts, paths and
//! sha1 digests), cut into 64 KiB packets as the tailer ships them, compressed per packet
//! (a reset compressor) and as one stream with a sync flush per packet, at levels 1-9 and
//! windows of 512 B to 32 KiB. Reports bytes on the wire per byte of log and CPU-seconds
//! per GiB of log (this thread's user + system time, so other load on the machine barely
//! moves it).
//!
//! The archive does not depend on these settings: a buck stores decoded rows and porter
//! compresses the segment again (zlib 9, `porter::object_codec`), so the transport's
//! level and window change only wire bytes and tailer CPU.
//!
//!     cargo run --release -p sluice-bench --bin zlib_levels [MiB of generated lines, default 64]

use anyhow::Context;
use chrono::Utc;
use contracts::CrawlId;
use flate2::{Compress, Compression, FlushCompress};
use parsers::{EventBuilder, RawRecord, SourceFormat};

#[path = "../common/mod.rs"]
mod common;

const PACKET: usize = 64 * 1024;

/// The frames of `log` (one crawl.log per line), as the tailer encodes them, in packets.
fn packets(log: &[u8]) -> Vec<Vec<u8>> {
    let mut b = EventBuilder::new(
        SourceFormat::CrawlLog,
        0x5eed,
        1,
        CrawlId::parse("bench").expect("a valid crawl id"),
        "crawler-01".into(),
        "heritrix".into(),
        60_000,
    );
    let now = Utc::now().timestamp_micros();
    let (mut out, mut cur, mut offset) = (Vec::new(), Vec::with_capacity(PACKET), 0u64);
    for line in log.split(|&c| c == b'\n') {
        if line.is_empty() {
            offset += 1;
            continue;
        }
        let ev = b.build(RawRecord::line(offset, line.to_vec()), now);
        offset += line.len() as u64 + 1;
        let before = cur.len();
        contracts::frame::put_event_frame(&mut cur, &ev);
        if cur.len() > PACKET {
            let tail = cur.split_off(before);
            out.push(std::mem::replace(&mut cur, tail));
        }
    }
    out.push(cur);
    out
}

struct Row {
    wire: u64,
    cpu: f64,
}

fn compress(packets: &[Vec<u8>], level: u32, window: u8, one_stream: bool) -> anyhow::Result<Row> {
    let mut z = Compress::new_with_window_bits(Compression::new(level), true, window);
    let mut buf = Vec::with_capacity(PACKET * 2);
    let mut wire = 0u64;
    let started = common::thread_cpu_secs();
    for p in packets {
        if !one_stream {
            z.reset();
        }
        buf.clear();
        let flush = if one_stream {
            FlushCompress::Sync
        } else {
            FlushCompress::Finish
        };
        let before_in = z.total_in();
        loop {
            let consumed = (z.total_in() - before_in) as usize;
            buf.reserve(PACKET);
            let status = z
                .compress_vec(&p[consumed..], &mut buf, flush)
                .context("deflate")?;
            let done = (z.total_in() - before_in) as usize == p.len();
            if done
                && (status == flate2::Status::StreamEnd || one_stream && buf.capacity() > buf.len())
            {
                break;
            }
        }
        wire += buf.len() as u64;
    }
    Ok(Row {
        wire,
        cpu: common::thread_cpu_secs() - started,
    })
}

fn table(name: &str, log: &[u8]) -> anyhow::Result<()> {
    let packets = packets(log);
    let frame_bytes: usize = packets.iter().map(Vec::len).sum();
    let gib = log.len() as f64 / (1u64 << 30) as f64;
    // Small inputs are compressed several times over, so the CPU figure is not all noise.
    let rounds = ((256 << 20) / log.len().max(1)).clamp(1, 200);
    println!(
        "\n{name}: {:.1} MiB of log, frames {:.2}x the log, {} packets of up to 64 KiB, {rounds} round(s)\n",
        log.len() as f64 / 1048576.0,
        frame_bytes as f64 / log.len() as f64,
        packets.len()
    );
    println!("| level | window | mode | wire / log | CPU-s per GiB of log |");
    println!("|---:|---:|---|---:|---:|");
    for (level, window) in [(1, 15), (2, 15), (3, 15), (6, 15), (9, 15), (1, 12), (1, 9)] {
        for one_stream in [false, true] {
            let mut cpu = 0.0;
            let mut wire = 0;
            for _ in 0..rounds {
                let r = compress(&packets, level, window, one_stream)?;
                cpu += r.cpu;
                wire = r.wire;
            }
            println!(
                "| {level} | {} B | {} | {:.3} | {:.2} |",
                1u32 << window,
                if one_stream {
                    "one stream, sync flush"
                } else {
                    "per packet"
                },
                wire as f64 / log.len() as f64,
                cpu / rounds as f64 / gib
            );
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let mib: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()
        .context("the size must be a number of MiB")?
        .unwrap_or(64);
    let (files, real) = common::real_crawl_logs()?;
    table(&format!("real Heritrix logs ({files} files)"), &real)?;

    let generated = common::generated_crawl_log(mib, 11);
    table(
        "generated crawl.log lines (random hosts, paths, sha1)",
        &generated,
    )
}
