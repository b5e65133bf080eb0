//! Export reader (issue 15): how fast `contracts::original_lines` (what `GET /export` and
//! `sluice export` run) writes a day's original lines, against two readers of the same
//! segment: the SQL a client would send to the read API (`SELECT line FROM events ORDER
//! BY time_us`, lines rebuilt by the views' SQL), and archie's `EventLines` (lines
//! rebuilt in Rust, time order), which is what history indexing reads.
//!
//! One segment of `--lines` generated Heritrix lines (archie's fixture generator, every
//! 50th a real line), spread over four source files written side by side. Each reader
//! writes every line with its newline into a sink that only counts; the figure is the
//! process CPU time it took (user + system), best of `--runs`.
//!
//! `export_lines [--lines 1000000] [--runs 3] [--dir D]`

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use archie::segment_fixture::{CrawlLogGenerator, FixtureEvent, write_segment};
use contracts::original_lines::{LineFilter, write_day_lines};
use contracts::segment_sql::EventLines;

fn cpu_secs() -> f64 {
    // SAFETY: getrusage fills the struct it is given; no other precondition.
    #[allow(unsafe_code)]
    let u = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

/// Runs `f` `runs` times; the best (CPU s, wall s) and what it returned.
fn best<T>(runs: usize, mut f: impl FnMut() -> anyhow::Result<T>) -> anyhow::Result<(f64, f64, T)> {
    let mut out = None;
    for _ in 0..runs {
        let (c0, w0) = (cpu_secs(), Instant::now());
        let v = f()?;
        let (c, w) = (cpu_secs() - c0, w0.elapsed().as_secs_f64());
        out = match out {
            Some((bc, bw, bv)) if bc <= c => Some((bc, bw, bv)),
            _ => Some((c, w, v)),
        };
    }
    out.context("no run")
}

fn main() -> anyhow::Result<()> {
    let lines: u64 = arg("--lines", "1000000").parse()?;
    let runs: usize = arg("--runs", "3").parse()?;
    let tmp = tempfile::tempdir()?;
    let dir = std::env::var_os("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(arg("--dir", &tmp.path().display().to_string())));
    let path = dir.join("export-bench.sqlite");
    let _ = std::fs::remove_file(&path);
    let real =
        CrawlLogGenerator::real_lines(std::path::Path::new("/work/shared/data/real/heritrix"));
    let mut generator = CrawlLogGenerator::new(15, real, 50);
    let t0 = 1_795_254_400_000_000i64;
    let mut offsets = [0u64; 4];
    let mut raw_bytes = 0u64;
    let events: Vec<FixtureEvent> = (0..lines)
        .map(|i| {
            // Whole milliseconds, as Heritrix logs them.
            let time_us = t0 + (i as i64) * 80_000;
            let line = generator.line(time_us);
            let file = (i % 4) as usize;
            let id = format!("{:016x}-{file}-{}", 0xfeed_u64, offsets[file]);
            offsets[file] += line.len() as u64 + 1;
            raw_bytes += line.len() as u64 + 1;
            FixtureEvent {
                id,
                time_us,
                host: "crawler-1".into(),
                app: "heritrix".into(),
                line,
            }
        })
        .collect();
    write_segment(&path, "bench", "2026-11-22", &events)?;
    drop(events);
    let stored: i64 = rusqlite::Connection::open(&path)?.query_row(
        "SELECT count(*) FROM event WHERE line IS NULL",
        [],
        |r| r.get(0),
    )?;
    println!(
        "{lines} lines, {:.1} MiB raw, {stored} stored as columns (rebuilt on read), best of {runs}",
        raw_bytes as f64 / 1048576.0
    );

    let (c, w, n) = best(runs, || {
        let mut n = 0u64;
        write_day_lines(
            std::slice::from_ref(&path),
            i64::MIN,
            i64::MAX,
            &LineFilter::default(),
            &mut |b| {
                n += b.len() as u64;
                Ok(())
            },
        )?;
        Ok(n)
    })?;
    anyhow::ensure!(
        n == raw_bytes,
        "export wrote {n} bytes, the lines are {raw_bytes}"
    );
    let report = |name: &str, c: f64, w: f64| {
        println!(
            "{name:<44} {c:>6.2} CPU-s  {w:>6.2} s  {:>6.0} k lines/CPU-s  {:>6.1} MiB/CPU-s",
            lines as f64 / c / 1000.0,
            raw_bytes as f64 / c / 1048576.0
        )
    };
    report("original_lines (export, written order)", c, w);

    let (c, w, n) = best(runs, || {
        let conn = rusqlite::Connection::open(&path)?;
        let mut stmt = conn.prepare("SELECT line FROM events ORDER BY time_us")?;
        let mut rows = stmt.query([])?;
        let mut n = 0u64;
        while let Some(r) = rows.next()? {
            n += r.get_ref(0)?.as_bytes()?.len() as u64 + 1;
        }
        Ok(n)
    })?;
    anyhow::ensure!(n == raw_bytes, "SQL read {n} bytes");
    report("SQL: SELECT line FROM events ORDER BY time_us", c, w);

    let (c, w, n) = best(runs, || {
        let conn = rusqlite::Connection::open(&path)?;
        let reader = EventLines::new(&conn)?;
        let mut stmt = conn.prepare(reader.sql())?;
        let mut rows = stmt.query((i64::MIN, i64::MAX))?;
        let mut n = 0u64;
        while let Some(r) = rows.next()? {
            n += reader.read(r)?.line.len() as u64 + 1;
        }
        Ok(n)
    })?;
    anyhow::ensure!(n == raw_bytes, "EventLines read {n} bytes");
    report("archie's EventLines (time order)", c, w);
    Ok(())
}
