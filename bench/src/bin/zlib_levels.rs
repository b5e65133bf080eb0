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
use flate2::{Compress, Compression, FlushCompress};

#[path = "../common/mod.rs"]
mod common;

const PACKET: usize = 64 * 1024;

/// The frames of `log` (one crawl.log per line), as the tailer encodes them, in packets.
fn packets(log: &[u8]) -> Vec<Vec<u8>> {
    let (mut out, mut cur) = (Vec::new(), Vec::with_capacity(PACKET));
    for ev in common::log_inputs::crawl_log_events(log) {
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
    let rounds = common::log_inputs::rounds_for(log);
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
    common::log_inputs::run_on_real_and_generated(table)
}
