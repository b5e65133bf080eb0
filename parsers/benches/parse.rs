//! How fast lines become events: CPU-seconds per GiB for each format, on the real sample
//! logs repeated. The tailer's budget for everything is about 8 CPU-seconds per GiB, so
//! parsing should take a small part of it.
//!
//! Run with `cargo bench -p sluice-parsers`; `SLUICE_BENCH_MIB` sets the volume (default 256).
//! Times are the thread's CPU time, so a busy machine does not inflate them.

// A test or bench crate: its helpers may unwrap (clippy.toml allows it only in #[test] fns).
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

/// CPU time this thread has used, in seconds: the machine is shared, so wall time would
/// measure the neighbours. Linux's schedstat; wall time elsewhere.
fn cpu_secs(wall: Instant) -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or_else(|| wall.elapsed().as_secs_f64(), |ns| ns as f64 / 1e9)
}

use contracts::CrawlId;
use parsers::{EventBuilder, RawRecord, SourceFormat, parse_line};

fn lines(rel: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/real/heritrix");
    let text = std::fs::read(dir.join(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"));
    text.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn syslog_lines() -> Vec<Vec<u8>> {
    (0..200)
        .map(|i| match i % 3 {
            0 => format!("Nov 21 10:{:02}:{:02} crawler-07 sshd[{i}]: Accepted publickey for ops from 192.0.2.{i} port 5{i:03} ssh2", i % 60, i % 60),
            1 => format!("<165>1 2026-11-21T10:00:{:02}.123456+01:00 crawler-07 heritrix {i} ID47 [meta seq=\"{i}\"] fetched http://example.com/{i}", i % 60),
            _ => format!("2026-11-21T10:00:{:02}.123456+00:00 crawler-07 systemd[1]: Started session-{i}.scope - Session {i} of User ops.", i % 60),
        }
        .into_bytes())
        .collect()
}

fn run(name: &str, format: SourceFormat, sample: &[Vec<u8>], target_bytes: usize) {
    let read_time = 1_795_255_200_000_000;
    let per_round: usize = sample.iter().map(|l| l.len() + 1).sum();
    let rounds = (target_bytes / per_round).max(1);
    let crawl = CrawlId::parse("bench").expect("valid crawl id");
    let mut builder = EventBuilder::new(
        format,
        1,
        0,
        crawl,
        "crawler-07".into(),
        "heritrix".into(),
        65_000,
    );

    let wall = Instant::now();
    let start = cpu_secs(wall);
    let mut fields = 0usize;
    for _ in 0..rounds {
        for l in sample {
            fields += parse_line(format, black_box(l), read_time).fields.len();
        }
    }
    let parse = cpu_secs(wall) - start;

    let start = cpu_secs(wall);
    let mut offset = 0u64;
    for _ in 0..rounds {
        for l in sample {
            let e = builder.build(RawRecord::line(offset, l.clone()), read_time);
            offset += e.original_len + 1;
            black_box(e);
        }
    }
    let build = cpu_secs(wall) - start;

    let bytes = (rounds * per_round) as f64;
    let gib = bytes / (1u64 << 30) as f64;
    let n = (rounds * sample.len()) as f64;
    println!(
        "{name:<28} {:>7.0} MiB  parse_line {:>6.0} ns/line {:>5.2} s/GiB   build {:>6.0} ns/line {:>5.2} s/GiB   ({fields} fields)",
        bytes / 1048576.0,
        parse * 1e9 / n,
        parse / gib,
        build * 1e9 / n,
        build / gib,
    );
}

fn main() {
    let mib: usize = std::env::var("SLUICE_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let target = mib << 20;
    let crawl_h3 = lines("ukwa-manage/h3-2018-crawl.log");
    let crawl_h1 = lines("netarchivesuite/h1-2005-2006-crawldir/crawl.log");
    let progress = lines("netarchivesuite/h1-2005-2006-crawldir/progress-statistics.log");
    let syslog = syslog_lines();
    run(
        "crawl_log h3 (json extra)",
        SourceFormat::CrawlLog,
        &crawl_h3,
        target,
    );
    run("crawl_log h1", SourceFormat::CrawlLog, &crawl_h1, target);
    run("auto on crawl.log", SourceFormat::Auto, &crawl_h1, target);
    run("syslog", SourceFormat::Syslog, &syslog, target);
    run("auto on syslog", SourceFormat::Auto, &syslog, target);
    run(
        "plain progress-statistics",
        SourceFormat::Plain,
        &progress,
        target,
    );
    run(
        "auto on progress-statistics",
        SourceFormat::Auto,
        &progress,
        target,
    );
}
