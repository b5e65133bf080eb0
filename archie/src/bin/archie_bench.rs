//! Archie's benchmark: time from request to ready for N real-looking crawl.log events,
//! index bytes per event, and search latency (a term, a rare substring, a common
//! substring, a regex) beside a full `LIKE` scan of the same rows and `grep -c` on the raw
//! file.
//!
//! `archie_bench [events=1000000] [index_threads=2] [batch_events=50000] [days=3]`
//! (run it `--release`; it writes about 1 GB per million events in a temp dir).

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use archie::index_reader::{IndexReader, Order, WalkFilter};
use archie::segment_fixture::{CrawlLogGenerator, FixtureEvent, write_segment};
use archie::{ArchieConfig, LocalDirSource, QueryPlan, RequestState, SearchMode};
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

/// CPU seconds this process has used (user + system), from /proc/self/stat: the machine
/// is shared, so wall time alone says little about the indexer's own cost.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of the whole line are the 12th and 13th after the ')'.
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn arg(i: usize, default: u64) -> u64 {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let events = arg(1, 1_000_000);
    let threads = arg(2, 2) as usize;
    let batch = arg(3, 50_000) as usize;
    let days = arg(4, 3).max(1);
    let tmp = tempfile::tempdir().expect("temp dir");
    let segments = tmp.path().join("segments");
    let raw_path = tmp.path().join("raw.log");

    // Data: `days` day segments of one crawl, and the same lines in a raw file.
    let t0 = Instant::now();
    let real =
        CrawlLogGenerator::real_lines(std::path::Path::new("/work/shared/data/real/heritrix"));
    let mut g = CrawlLogGenerator::new(42, real, 50);
    let mut raw = std::io::BufWriter::new(std::fs::File::create(&raw_path).expect("raw file"));
    let start: DateTime<Utc> = "2026-11-01T00:00:00Z".parse().expect("time");
    let per_day = events.div_ceil(days);
    let mut raw_bytes = 0u64;
    let mut written = 0u64;
    let mut rare = String::new();
    for d in 0..days {
        let day_start = start + chrono::Duration::days(d as i64);
        let n = per_day.min(events - written);
        let mut evs = Vec::with_capacity(n as usize);
        for i in 0..n {
            let t = day_start.timestamp_micros() + (i as i64 * 86_400_000_000 / n as i64);
            let line = g.line(t);
            if d == days / 2 && i == n / 2 {
                // A digest fragment: as rare as substrings get in crawl logs.
                if let Some(p) = line.find("sha1:") {
                    rare = line[p + 5..p + 17].to_owned();
                }
            }
            raw_bytes += line.len() as u64 + 1;
            writeln!(raw, "{line}").expect("raw write");
            evs.push(FixtureEvent {
                id: format!("{:016x}-{d}-{i}", 1),
                time_us: t,
                host: format!("crawler-{}", i % 4),
                app: "heritrix".into(),
                line,
            });
        }
        written += n;
        let day = day_start.format("%Y-%m-%d").to_string();
        write_segment(
            &segments.join("bench").join(format!("{day}.sqlite")),
            "bench",
            &day,
            &evs,
        )
        .expect("segment");
    }
    raw.flush().expect("raw flush");
    drop(raw);
    println!(
        "data: {events} events, {:.1} MB raw ({:.0} bytes/line), {days} day segments, made in {:.1} s",
        raw_bytes as f64 / 1e6,
        raw_bytes as f64 / events as f64,
        t0.elapsed().as_secs_f64()
    );

    let mut config = ArchieConfig::new(tmp.path().join("work"));
    config.index_threads = threads;
    config.index_batch_events = batch;
    let shutdown = CancellationToken::new();
    let handle = archie::start(
        config,
        Arc::new(LocalDirSource::new(&segments)),
        shutdown.clone(),
    )
    .await
    .expect("start");
    let svc = handle.service();
    let end = start + chrono::Duration::days(days as i64);
    let t0 = Instant::now();
    let cpu0 = cpu_secs();
    let (r, _) = svc.submit("bench", start, end).expect("submit");
    let mut first_searchable = None;
    let record = loop {
        let s = svc.status(&r.id).expect("status");
        if first_searchable.is_none() && s.events_indexed > 0 {
            first_searchable = Some(t0.elapsed());
        }
        if !s.state.is_building() {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = t0.elapsed();
    let cpu = cpu_secs() - cpu0;
    assert_eq!(record.state, RequestState::Ready, "{record:?}");
    let s = svc.searchable(&r.id).expect("searchable");
    let idx = s.files.disk_bytes();
    let events_db = std::fs::metadata(s.files.events_path())
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "index: threads={threads} batch={batch}: ready in {:.1} s = {:.0} events/s; {:.1} CPU s = {:.0} events per CPU second (load average {}); first lines searchable after {:.2} s; {:.0} bytes/event ({:.2}x raw; events table {:.0}, full-text {:.0})",
        took.as_secs_f64(),
        events as f64 / took.as_secs_f64(),
        cpu,
        events as f64 / cpu.max(0.001),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .unwrap_or("?"),
        first_searchable.unwrap_or_default().as_secs_f64(),
        idx as f64 / events as f64,
        idx as f64 / raw_bytes as f64,
        events_db as f64 / events as f64,
        (idx - events_db) as f64 / events as f64,
    );

    let mut files: Vec<String> = std::fs::read_dir(s.files.dir())
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                    format!(
                        "{} {:.0}",
                        e.file_name().to_string_lossy(),
                        len as f64 / events as f64
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    println!("bytes/event by file: {}", files.join(", "));
    // What the postings hold: blocks (rows) and their bytes.
    for table in ["tokens", "grams"] {
        let (mut rows, mut bytes) = (0i64, 0i64);
        for k in 0..s.files.shard_count() {
            let shard = rusqlite::Connection::open_with_flags(
                s.files.shard_path(k),
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .expect("open shard");
            let (r, b): (i64, i64) = shard
                .query_row(
                    &format!("SELECT count(*), coalesce(sum(length(lists)), 0) FROM {table}"),
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .expect("count postings");
            rows += r;
            bytes += b;
        }
        println!(
            "{table}: {rows} blocks ({:.3} per event), {:.0} block bytes per event",
            rows as f64 / events as f64,
            bytes as f64 / events as f64
        );
    }

    // Peak memory of the whole process (the data generation included), from /proc.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .unwrap_or("VmHWM: ?");
    println!("peak memory: {}", hwm.trim_start_matches("VmHWM:").trim());

    let reader = IndexReader::open(&s.files, s.upto).expect("reader");
    let conn = rusqlite::Connection::open_with_flags(
        s.files.events_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open events");
    let cases = [
        ("term", "robots.txt", SearchMode::Term),
        ("rare substring", rare.as_str(), SearchMode::Substring),
        ("common substring", "text/html", SearchMode::Substring),
        ("regex", r"sha1:AB[A-Z0-9]{3}7", SearchMode::Regex),
    ];
    println!(
        "| query | q | matches | archie all matches (ms) | archie first 100 (ms) | LIKE full scan (ms) | grep -c (ms) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, q, mode) in cases {
        let plan = QueryPlan::new(q, mode).expect("plan");
        let filter = WalkFilter {
            plan: &plan,
            from_us: start.timestamp_micros(),
            to_us: end.timestamp_micros(),
            host: None,
            fields: None,
            after_seq: None,
            order: Order::Asc,
            deadline: Instant::now() + Duration::from_secs(600),
        };
        let t = Instant::now();
        let mut n = 0u64;
        reader
            .walk(&filter, |_| {
                n += 1;
                true
            })
            .expect("walk");
        let all_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let mut first = 0;
        reader
            .walk(&filter, |_| {
                first += 1;
                first < 100
            })
            .expect("walk");
        let first_ms = t.elapsed().as_secs_f64() * 1e3;
        // The scan: every line, tested by SQLite (LIKE is case-insensitive for ASCII, so
        // its count can be higher: it is timed, not compared) or by grep.
        let t = Instant::now();
        let like: i64 = conn
            .query_row(
                "SELECT count(*) FROM events WHERE line LIKE ?1",
                [format!("%{q}%")],
                |r| r.get(0),
            )
            .expect("like");
        let like_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let grep_args: &[&str] = if mode == SearchMode::Regex {
            &["-cP"]
        } else {
            &["-cF"]
        };
        let out = std::process::Command::new("grep")
            .args(grep_args)
            .arg("--")
            .arg(q)
            .arg(&raw_path)
            .output()
            .expect("grep");
        let grep_ms = t.elapsed().as_secs_f64() * 1e3;
        let grep_n = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        println!(
            "| {name} | `{q}` | {n} (grep {grep_n}, LIKE {like}) | {all_ms:.1} | {first_ms:.1} | {like_ms:.0} | {grep_ms:.0} |"
        );
    }
    shutdown.cancel();
    handle.join().await;
}
