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

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use contracts::CrawlId;
use flate2::{Compress, Compression, FlushCompress};
use parsers::{EventBuilder, RawRecord, SourceFormat};

#[path = "../common/mod.rs"]
mod common;

const PACKET: usize = 64 * 1024;

/// This thread's CPU time (user + system), in seconds.
fn thread_cpu() -> f64 {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage writes a whole rusage into the pointer it is given.
    #[allow(unsafe_code)]
    let ru = unsafe {
        if libc::getrusage(libc::RUSAGE_THREAD, ru.as_mut_ptr()) != 0 {
            return 0.0;
        }
        ru.assume_init()
    };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

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
    let started = thread_cpu();
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
        cpu: thread_cpu() - started,
    })
}

fn real_logs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            real_logs(&p, out);
        } else if p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains("crawl") && n.ends_with(".log"))
        {
            out.push(p);
        }
    }
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
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/real/heritrix");
    let mut files = Vec::new();
    real_logs(&root, &mut files);
    files.sort();
    let mut real = Vec::new();
    for f in &files {
        real.extend(std::fs::read(f).with_context(|| format!("reading {}", f.display()))?);
        if !real.ends_with(b"\n") {
            real.push(b'\n');
        }
    }
    anyhow::ensure!(!real.is_empty(), "no crawl logs under {}", root.display());
    table(
        &format!("real Heritrix logs ({} files)", files.len()),
        &real,
    )?;

    let mut lines = common::LineGen::new(11);
    let start: DateTime<Utc> = "2026-11-21T00:00:00Z".parse()?;
    let mut generated = Vec::with_capacity(mib << 20);
    let mut i = 0i64;
    while generated.len() < mib << 20 {
        lines.line(
            start + chrono::Duration::milliseconds(i * 10),
            None,
            &mut generated,
        );
        i += 1;
    }
    table(
        "generated crawl.log lines (random hosts, paths, sha1)",
        &generated,
    )
}
