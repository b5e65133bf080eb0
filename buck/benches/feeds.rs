//! What the Graphite counts cost ingest, printed (not asserted):
//!
//! 1. `Tally::record` alone over crawl.log events (status class, bytes, URL host into
//!    the distinct-host count): ns per event;
//! 2. the segment writer fed directly (as `ingest`'s first figure), without and with the
//!    bus counting into a `Tally`, four rounds alternating which runs first, each on a
//!    fresh directory.
//!
//! `cargo bench -p sluice-buck --bench feeds -- [events]`

// A test or bench crate: its helpers may unwrap (clippy.toml allows it only in #[test] fns).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Instant;

use buck::graphite::Tally;
use buck::{BuckConfig, BuckEvents, Bus, Origin, Published, SegmentWriter, WriterOptions};
use contracts::{CrawlId, Event};

fn make_events(crawl: &CrawlId, n: usize) -> Vec<Event> {
    let mut b = parsers::EventBuilder::new(
        parsers::SourceFormat::CrawlLog,
        1,
        1,
        crawl.clone(),
        "crawler-1".into(),
        "heritrix".into(),
        60_000,
    );
    let mut offset = 0u64;
    (0..n)
        .map(|i| {
            let h = format!("host{}.example.org", i % 5000);
            let status = [200, 200, 200, 301, 404, -1][i % 6];
            let line = format!(
                "2026-11-21T10:00:00.000Z {status:>5} {:>6} http://{h}/path/{i}.html L http://{h}/ text/html #0{:02} 20261121095959999+{} sha1:ABCDEFGHIJKLMNOPQRSTUVWXYZ234567 - -",
                i % 100_000,
                i % 50,
                i % 900,
            );
            let ev = b.build(parsers::RawRecord::line(offset, line.clone().into_bytes()), 1_763_719_200_000_000);
            offset += line.len() as u64 + 1;
            ev
        })
        .collect()
}

/// CPU seconds this process has used (user + system), from /proc/self/stat: less
/// disturbed by other processes on a shared machine than wall time.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which ends with the last ')'): utime is the 12th,
    // stime the 13th, in clock ticks (100 per second on Linux).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

/// Events per wall second and CPU seconds used, for one run.
async fn writer_direct(events: &[Event], counting: bool) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = BuckConfig::new("bench", dir.path());
    let stats = Arc::new(BuckEvents::default());
    let tally = counting.then(|| Arc::new(Tally::default()));
    let bus = Bus::new(4096, stats.clone()).counting(tally.clone());
    let (writer, thread) =
        SegmentWriter::spawn(WriterOptions::from_config(&cfg), bus, stats.clone()).unwrap();
    let started = Instant::now();
    let cpu = cpu_secs();
    let mut tasks = Vec::new();
    for part in events.chunks(events.len().div_ceil(8)) {
        let w = writer.clone();
        let part = part.to_vec();
        tasks.push(tokio::spawn(async move {
            for chunk in part.chunks(1000) {
                w.write(chunk.to_vec(), Origin::Live).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu;
    if let Some(t) = tally {
        let counted: u64 = t.take().values().map(|c| c.lines.iter().sum::<u64>()).sum();
        assert_eq!(counted, events.len() as u64);
    }
    drop(writer);
    tokio::task::spawn_blocking(move || thread.join())
        .await
        .unwrap()
        .unwrap();
    (events.len() as f64 / secs, cpu)
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let crawl = CrawlId::parse("bench").unwrap();
    let events = make_events(&crawl, n);
    let published: Vec<Arc<Published>> = events
        .iter()
        .map(|e| {
            Arc::new(Published {
                event: Arc::new(e.clone()),
                late: false,
            })
        })
        .collect();
    let tally = Tally::default();
    let started = Instant::now();
    for batch in published.chunks(1000) {
        tally.record(batch);
    }
    let secs = started.elapsed().as_secs_f64();
    let hosts = tally.take()["bench"].hosts.count();
    println!(
        "Tally::record: {:.0} ns/event ({n} events, {hosts} distinct hosts counted of 5000)",
        secs * 1e9 / n as f64
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for round in 1..=4 {
        // Alternated A-B, B-A: the second run of a pair meets the first's dirty pages.
        let (off, on) = if round % 2 == 1 {
            let off = rt.block_on(writer_direct(&events, false));
            (off, rt.block_on(writer_direct(&events, true)))
        } else {
            let on = rt.block_on(writer_direct(&events, true));
            (rt.block_on(writer_direct(&events, false)), on)
        };
        println!(
            "round {round}: segment writer {:>9.0} events/s, {:.2} CPU-s without [graphite]; {:>9.0} events/s, {:.2} CPU-s with ({:+.1}% CPU)",
            off.0,
            off.1,
            on.0,
            on.1,
            (on.1 / off.1 - 1.0) * 100.0
        );
    }
}
