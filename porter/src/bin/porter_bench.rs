//! Porter benchmark (not run by the tests): archive throughput to an S3 server, and
//! archived bytes per event for a segment built from real Heritrix crawl logs.
//!
//! `cargo run -p sluice-porter --bin porter_bench -- [EVENTS]` (default 300000). The S3
//! server is the one SLUICE_TEST_S3_ENDPOINT names, or one started with
//! `scripts/s3-test-server start /tmp/sluice-s3-test-server`.
//!
//! The segment has the buck's schema (`contracts::segment_schema`) and is built from every crawl.log under /work/shared/data/real/heritrix (or
//! SLUICE_BENCH_LOGS), repeated to EVENTS lines, each line an event with its own id. The
//! timed archive path is the porter's own: merge (copy and compact), zlib, upload
//! (multipart above 16 MiB), read back and checksum. Fetching replicas from bucks over
//! HTTP is not included (it depends on the network, not on the porter).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use contracts::segment_schema::SEGMENT_SCHEMA_SQL;
use porter::{ArchiveStore, S3Settings, S3Store, object_codec, segment_merge};
use rusqlite::Connection;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(300_000);
    let logs_root = std::env::var("SLUICE_BENCH_LOGS")
        .unwrap_or_else(|_| "/work/shared/data/real/heritrix".into());
    let mut lines = Vec::new();
    collect_crawl_logs(Path::new(&logs_root), &mut lines)?;
    if lines.is_empty() {
        return Err(format!("no crawl.log lines under {logs_root}").into());
    }
    let work = tempfile::tempdir()?;
    let raw_log = work.path().join("crawl.log");
    let segment = work.path().join("segment.sqlite");
    let (raw_bytes, n) = build(&lines, events, &raw_log, &segment)?;
    let gz_bytes = gzip6(&raw_log)?;
    let seg_bytes = std::fs::metadata(&segment)?.len();

    let rt = tokio::runtime::Runtime::new()?;
    let (endpoint, key, secret) = s3_endpoint()?;
    let settings = S3Settings {
        endpoint: Some(endpoint.clone()),
        region: "us-east-1".into(),
        path_style: true,
        access_key_id: Some(key),
        secret_access_key: Some(secret),
    };
    let bucket = format!("porter-bench-{:08x}", rand::random::<u32>());
    let store = S3Store::new(&bucket, "archive", &settings, 16 << 20, 16 << 20)?;
    rt.block_on(store.ensure_bucket())?;

    let t0 = Instant::now();
    let merged = work.path().join("merged.sqlite");
    let summary =
        segment_merge::merge_replicas("bench/segment", std::slice::from_ref(&segment), &merged)?;
    let t_merge = t0.elapsed();
    let object = work.path().join("object.z");
    let packed = object_codec::compress(&merged, &object)?;
    let t_zlib = t0.elapsed() - t_merge;
    rt.block_on(store.put_file("bench/2026-11-02.sqlite.z", &object))?;
    let t_up = t0.elapsed() - t_merge - t_zlib;
    let back = work.path().join("back.z");
    rt.block_on(store.get_to_file("bench/2026-11-02.sqlite.z", &back))?;
    let (sha, size) = object_codec::sha256_file(&back)?;
    if sha != packed.object_sha256 || size != packed.object_bytes {
        return Err("read-back checksum mismatch".into());
    }
    let total = t0.elapsed();
    let t_verify = total - t_merge - t_zlib - t_up;

    let mib = seg_bytes as f64 / (1 << 20) as f64;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "events                    {n} (summary {})",
        summary.events
    )?;
    writeln!(
        out,
        "raw log                   {raw_bytes} bytes, {:.1} bytes/line",
        raw_bytes as f64 / n as f64
    )?;
    writeln!(
        out,
        "raw log gzip -6           {gz_bytes} bytes, {:.1} bytes/line",
        gz_bytes as f64 / n as f64
    )?;
    writeln!(
        out,
        "segment (sqlite)          {seg_bytes} bytes, {:.1} bytes/event",
        seg_bytes as f64 / n as f64
    )?;
    writeln!(out, "compacted segment         {} bytes", packed.file_bytes)?;
    writeln!(
        out,
        "archived object (zlib 6)  {} bytes, {:.1} bytes/event",
        packed.object_bytes,
        packed.object_bytes as f64 / n as f64
    )?;
    writeln!(
        out,
        "archive time              {:.2} s: merge {:.2}, zlib {:.2}, upload {:.2}, read back {:.2}",
        total.as_secs_f64(),
        t_merge.as_secs_f64(),
        t_zlib.as_secs_f64(),
        t_up.as_secs_f64(),
        t_verify.as_secs_f64()
    )?;
    writeln!(
        out,
        "throughput                {:.1} MiB/s of segment, {:.0} events/s (S3 at {endpoint})",
        mib / total.as_secs_f64(),
        n as f64 / total.as_secs_f64()
    )?;
    Ok(())
}

fn collect_crawl_logs(dir: &Path, lines: &mut Vec<String>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if p.is_dir() {
            collect_crawl_logs(&p, lines)?;
        } else if name.ends_with("crawl.log") || name.starts_with("h3-20") {
            let text = String::from_utf8_lossy(&std::fs::read(&p)?).into_owned();
            // A crawl.log line starts with a timestamp and has at least 10 fields.
            lines.extend(
                text.lines()
                    .filter(|l| {
                        l.split_whitespace().count() >= 10
                            && l.as_bytes().first().is_some_and(u8::is_ascii_digit)
                    })
                    .map(str::to_string),
            );
        }
    }
    Ok(())
}

/// Writes the repeated raw log and a segment with the buck's tables; returns the raw
/// log's size and the number of events.
fn build(
    lines: &[String],
    n: usize,
    raw_log: &Path,
    segment: &Path,
) -> Result<(u64, usize), Box<dyn std::error::Error>> {
    let mut log = std::io::BufWriter::new(std::fs::File::create(raw_log)?);
    let conn = Connection::open(segment)?;
    // A bench file, rebuilt on every run: durability would only slow the build.
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;")?;
    conn.execute_batch(SEGMENT_SCHEMA_SQL)?;
    let tx = conn.unchecked_transaction()?;
    let mut offset = 0u64;
    let mut last_us = 0i64;
    let crawl = contracts::CrawlId::parse("bench")?;
    let mut labels = contracts::segment_sql::Labels::new();
    for i in 0..n {
        let line = &lines[i % lines.len()];
        writeln!(log, "{line}")?;
        // As the buck writes it: the line parsed as the tailer does, the time its log time.
        let p = parsers::parse_line(parsers::SourceFormat::CrawlLog, line.as_bytes(), last_us);
        let time_us = p.time_us.unwrap_or(last_us);
        last_us = time_us;
        let ev = contracts::Event {
            id: contracts::EventId {
                tailer: 0x5eed,
                file_seq: 1,
                offset,
            },
            time_us,
            flags: contracts::EventFlags::default(),
            original_len: line.len() as u64,
            format: p.format,
            crawl: crawl.clone(),
            host: "crawler-01".into(),
            app: "heritrix".into(),
            fields: p.fields,
            raw: line.as_bytes().to_vec(),
        };
        contracts::segment_sql::insert_event(&tx, &mut labels, &ev)?;
        offset += line.len() as u64 + 1;
    }
    tx.commit()?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    log.flush()?;
    Ok((offset, n))
}

/// Size of `gzip -6` of a file (the gzip command, else flate2 at level 6).
fn gzip6(path: &Path) -> Result<u64, Box<dyn std::error::Error>> {
    if let Ok(out) = Command::new("gzip").arg("-6").arg("-c").arg(path).output()
        && out.status.success()
    {
        return Ok(out.stdout.len() as u64);
    }
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    enc.write_all(&std::fs::read(path)?)?;
    Ok(enc.finish()?.len() as u64)
}

fn s3_endpoint() -> Result<(String, String, String), Box<dyn std::error::Error>> {
    let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    if let Ok(e) = std::env::var("SLUICE_TEST_S3_ENDPOINT") {
        return Ok((
            e,
            var("SLUICE_TEST_S3_ACCESS_KEY", "testkey"),
            var("SLUICE_TEST_S3_SECRET_KEY", "testsecret"),
        ));
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/s3-test-server");
    let out = Command::new(script)
        .arg("start")
        .arg("/tmp/sluice-s3-test-server")
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let get = |k: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")).map(str::to_string))
    };
    match (
        get("SLUICE_TEST_S3_ENDPOINT"),
        get("SLUICE_TEST_S3_ACCESS_KEY"),
        get("SLUICE_TEST_S3_SECRET_KEY"),
    ) {
        (Some(e), Some(k), Some(s)) => Ok((e, k, s)),
        _ => Err(format!(
            "scripts/s3-test-server start failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into()),
    }
}
