//! Storage at the size of gzip (issue 13): how big a crawl's segment is on the buck and its
//! archived object in the archive, against the raw log and `gzip -6` of the same lines.
//!
//! Two data sets, because a generator that compresses better than reality flatters every
//! figure: the real Heritrix logs in `/work/shared/data/real/heritrix` (every `*crawl*.log`),
//! and generated Heritrix 3 lines with random hosts, URL paths and sha1 digests (the
//! tailer benchmark's `LineGen`; `gzip -6` takes them to about 0.30 of their size, as the
//! issue's generated crawl).
//!
//! Each set goes through the buck's own `SegmentWriter` (parsed by `parsers` as the tailer
//! does), the writer is stopped (which checkpoints the WAL into the file), then porter's
//! archive path makes the object (`merge_replicas`, then `object_codec::compress`). The
//! object is inflated again and the seed query run on it by the stock `sqlite3` binary
//! when there is one.
//!
//! `storage_size [--lines 1000000] [--real DIR] [--dir D]`

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use buck::{BuckConfig, BuckEvents, Bus, Origin, SegmentWriter, WriterOptions};
use chrono::{DateTime, Utc};
use contracts::{CrawlId, Event};
use parsers::{EventBuilder, RawRecord, SourceFormat};

#[path = "../common/mod.rs"]
mod common;

const SEED_QUERY: &str =
    r#"SELECT count(id) FROM crawled_urls WHERE host = "www.example.com" GROUP BY status_code;"#;

struct Row {
    name: String,
    lines: u64,
    raw: u64,
    gzip: u64,
    segment: u64,
    object: u64,
    ingest_secs: f64,
    archive_secs: f64,
}

fn gzip6(path: &Path) -> anyhow::Result<u64> {
    let out = std::process::Command::new("gzip")
        .args(["-6", "-c"])
        .arg(path)
        .output()
        .context("running gzip")?;
    anyhow::ensure!(out.status.success(), "gzip failed");
    Ok(out.stdout.len() as u64)
}

/// Every file under `dir` (recursively) whose name holds `crawl` and ends in `.log`.
fn real_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            real_files(&p, out);
        } else if p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains("crawl") && n.ends_with(".log"))
        {
            out.push(p);
        }
    }
}

/// The log time at the start of a crawl.log line, if any.
fn line_time_us(line: &[u8]) -> Option<i64> {
    let t = std::str::from_utf8(line.get(..24)?).ok()?;
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.timestamp_micros())
}

/// Events of one file, read as the tailer would: at `read_us`, or, when `None`, just
/// after its first line's time, so that the lines keep their own times. Read today, old
/// lines are `time_suspect` and take the read time, so every file lands in today's
/// segment, as with `sluice up` on old logs.
fn file_events(crawl: &CrawlId, seq: u64, bytes: &[u8], read_us: Option<i64>) -> Vec<Event> {
    let read_us = read_us.unwrap_or_else(|| {
        bytes
            .split(|&c| c == b'\n')
            .find_map(line_time_us)
            .unwrap_or(0)
            + 3_600_000_000
    });
    let mut b = EventBuilder::new(
        SourceFormat::CrawlLog,
        0x5eed,
        seq,
        crawl.clone(),
        "crawler-01".into(),
        "heritrix".into(),
        60_000,
    );
    let mut offset = 0u64;
    let mut out = Vec::new();
    for line in bytes.split(|&c| c == b'\n') {
        if !line.is_empty() {
            out.push(b.build(RawRecord::line(offset, line.to_vec()), read_us));
        }
        offset += line.len() as u64 + 1;
    }
    out
}

async fn ingest(data_dir: &Path, batches: Vec<Vec<Event>>) -> anyhow::Result<f64> {
    let mut cfg = BuckConfig::new("bench", data_dir);
    cfg.day_close_grace_secs = 100 * 365 * 86_400;
    cfg.writer_max_delay_ms = 2;
    let stats = Arc::new(BuckEvents::default());
    let bus = Bus::new(4096, stats.clone());
    let (writer, thread) = SegmentWriter::spawn(WriterOptions::from_config(&cfg), bus, stats)?;
    let started = Instant::now();
    for b in batches {
        writer.write(b, Origin::Live).await?;
    }
    let secs = started.elapsed().as_secs_f64();
    drop(writer);
    tokio::task::spawn_blocking(move || thread.join())
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(secs)
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    out.retain(|p| p.extension().is_some_and(|x| x == "sqlite"));
    out.sort();
    out
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Segment bytes on disk (with any WAL left), object bytes, archive seconds, and the seed
/// query's answer from the stock `sqlite3` on the first inflated object.
fn measure(work: &Path, crawl_dir: &Path) -> anyhow::Result<(u64, u64, f64, String)> {
    let mut segment = 0;
    let mut object = 0;
    let mut secs = 0.0;
    let mut answer = String::new();
    for (i, seg) in segment_files(crawl_dir).iter().enumerate() {
        let mut wal = seg.clone().into_os_string();
        wal.push("-wal");
        segment += file_size(seg) + file_size(Path::new(&wal));
        let merged = work.join(format!("merged-{i}.sqlite"));
        let obj = work.join(format!("object-{i}.z"));
        let started = Instant::now();
        porter::segment_merge::merge_replicas("bench", std::slice::from_ref(seg), &merged)?;
        let packed = porter::object_codec::compress(&merged, &obj)?;
        secs += started.elapsed().as_secs_f64();
        object += packed.object_bytes;
        if i == 0 {
            let inflated = work.join("inflated.sqlite");
            porter::object_codec::inflate(&obj, &inflated)?;
            answer = match std::process::Command::new("sqlite3")
                .arg(&inflated)
                .arg(format!(
                    "SELECT count(*) FROM crawled_url; {SEED_QUERY} SELECT count(*) FROM events;"
                ))
                .output()
            {
                Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
                Ok(o) => format!("sqlite3 failed: {}", String::from_utf8_lossy(&o.stderr)),
                Err(e) => format!("no sqlite3: {e}"),
            };
            let _ = std::fs::remove_file(&inflated);
        }
        if std::env::var_os("STORAGE_SIZE_KEEP").is_none() {
            let _ = std::fs::remove_file(&merged);
            let _ = std::fs::remove_file(&obj);
        }
    }
    Ok((segment, object, secs, answer))
}

async fn real_set(work: &Path, dir: &Path, today: bool) -> anyhow::Result<Row> {
    let mut files = Vec::new();
    real_files(dir, &mut files);
    files.sort();
    anyhow::ensure!(!files.is_empty(), "no crawl logs under {}", dir.display());
    let name = if today { "real-today" } else { "real-days" };
    let crawl = CrawlId::parse(name)?;
    let raw_path = work.join(format!("{name}.log"));
    let now_us = Utc::now().timestamp_micros();
    let mut raw = Vec::new();
    let mut batches = Vec::new();
    let mut lines = 0;
    for (i, f) in files.iter().enumerate() {
        let bytes = std::fs::read(f)?;
        raw.extend_from_slice(&bytes);
        let evs = file_events(&crawl, i as u64 + 1, &bytes, today.then_some(now_us));
        lines += evs.len() as u64;
        batches.push(evs);
    }
    std::fs::write(&raw_path, &raw)?;
    let data = work.join(format!("{name}-buck"));
    let ingest_secs = ingest(&data, batches).await?;
    let segs = data.join("segments").join(name);
    let n_segs = segment_files(&segs).len();
    let (segment, object, archive_secs, answer) = measure(work, &segs)?;
    println!("{name}: sqlite3 on the first inflated object: {answer}");
    Ok(Row {
        name: if today {
            format!(
                "Heritrix samples ({} files) read today: 1 segment",
                files.len()
            )
        } else {
            format!(
                "Heritrix samples ({} files) at their own times: {n_segs} day segments",
                files.len()
            )
        },
        lines,
        raw: raw.len() as u64,
        gzip: gzip6(&raw_path)?,
        segment,
        object,
        ingest_secs,
        archive_secs,
    })
}

async fn generated_set(work: &Path, n: u64) -> anyhow::Result<Row> {
    let crawl = CrawlId::parse("gen")?;
    let start: DateTime<Utc> = "2026-11-21T00:00:00Z".parse()?;
    let raw_path = work.join("generated.log");
    let mut gen_ = common::LineGen::new(42);
    let mut b = EventBuilder::new(
        SourceFormat::CrawlLog,
        0x5eed,
        1,
        crawl.clone(),
        "crawler-01".into(),
        "heritrix".into(),
        60_000,
    );
    let mut raw = std::io::BufWriter::new(std::fs::File::create(&raw_path)?);
    let mut batches = Vec::new();
    let mut batch = Vec::with_capacity(1000);
    let mut offset = 0u64;
    let mut line = Vec::with_capacity(512);
    let mut raw_bytes = 0u64;
    for i in 0..n {
        // 0.08 s apart: a million lines fill one UTC day.
        let at = start + chrono::Duration::microseconds(i as i64 * 80_000);
        line.clear();
        gen_.line(at, None, &mut line);
        std::io::Write::write_all(&mut raw, &line)?;
        raw_bytes += line.len() as u64;
        let body = line.strip_suffix(b"\n").unwrap_or(&line).to_vec();
        batch.push(b.build(RawRecord::line(offset, body), at.timestamp_micros()));
        offset += line.len() as u64;
        if batch.len() == 1000 {
            batches.push(std::mem::replace(&mut batch, Vec::with_capacity(1000)));
        }
    }
    batches.push(batch);
    std::io::Write::flush(&mut raw)?;
    drop(raw);
    let data = work.join("gen-buck");
    let ingest_secs = ingest(&data, batches).await?;
    let (segment, object, archive_secs, answer) = measure(work, &data.join("segments/gen"))?;
    println!("generated: sqlite3 on the inflated object: {answer}");
    Ok(Row {
        name: "generated crawl (random hosts, paths, sha1)".into(),
        lines: n,
        raw: raw_bytes,
        gzip: gzip6(&raw_path)?,
        segment,
        object,
        ingest_secs,
        archive_secs,
    })
}

fn kb(n: u64) -> String {
    if n >= 10_000_000 {
        format!("{:.1} MB", n as f64 / 1e6)
    } else {
        format!("{:.0} KB", n as f64 / 1e3)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = common::arg_value(&args, "--lines")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let real = common::arg_value(&args, "--real")
        .unwrap_or_else(|| "/work/shared/data/real/heritrix".into());
    let (work, _keep) = common::work_dir(common::arg_value(&args, "--dir").as_deref())?;
    println!("{}", common::machine_notes());
    let rows = vec![
        real_set(&work, Path::new(&real), true).await?,
        real_set(&work, Path::new(&real), false).await?,
        generated_set(&work, n).await?,
    ];
    println!();
    println!(
        "| data | lines | raw log | gzip -6 of the lines | buck segment on disk | archived object | ingest (writer) | archive (merge + zlib) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} ({:.2}x raw) | {} ({:.2}x gzip) | {:.0} events/s | {:.2} s |",
            r.name,
            r.lines,
            kb(r.raw),
            kb(r.gzip),
            kb(r.segment),
            r.segment as f64 / r.raw as f64,
            kb(r.object),
            r.object as f64 / r.gzip as f64,
            r.lines as f64 / r.ingest_secs,
            r.archive_secs
        );
    }
    Ok(())
}
