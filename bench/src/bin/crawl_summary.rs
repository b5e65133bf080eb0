//! Per-crawl summaries over a closed day of generated crawl.log lines (random hosts,
//! paths, sha1 digests; a million by default): `GET /crawls/{crawl}/summary` hourly and
//! daily, the first time (read from the segment) and again (merged from the cached
//! hours), `GET /crawls`, and, as the baseline, the same hourly figures asked through
//! the SQL API as a user would without the summary route.
//!
//!     cargo run --release -p sluice-bench --bin crawl_summary [LINES]

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use buck::{BuckConfig, BuckEvents, Bus, Origin, SegmentWriter, WriterOptions};
use chrono::{DateTime, Utc};
use contracts::CrawlId;
use parsers::{EventBuilder, RawRecord, SourceFormat};
use tokio_util::sync::CancellationToken;

#[path = "../common/mod.rs"]
mod common;

const DAY: &str = "2026-11-21";

async fn write_day(data_dir: &Path, n: u64) -> anyhow::Result<()> {
    let mut cfg = BuckConfig::new("bench", data_dir);
    cfg.day_close_grace_secs = 100 * 365 * 86_400;
    let stats = Arc::new(BuckEvents::default());
    let bus = Bus::new(4096, stats.clone());
    let (writer, thread) = SegmentWriter::spawn(WriterOptions::from_config(&cfg), bus, stats)?;
    let start: DateTime<Utc> = format!("{DAY}T00:00:00Z").parse()?;
    let mut lines = common::LineGen::new(7);
    let mut b = EventBuilder::new(
        SourceFormat::CrawlLog,
        0x5eed,
        1,
        CrawlId::parse("gen")?,
        "crawler-01".into(),
        "heritrix".into(),
        60_000,
    );
    let (mut offset, mut line, mut batch) = (0u64, Vec::new(), Vec::with_capacity(1000));
    let step_us = 86_400_000_000 / n as i64;
    for i in 0..n {
        let at = start + chrono::Duration::microseconds(i as i64 * step_us);
        line.clear();
        lines.line(at, None, &mut line);
        let body = line.strip_suffix(b"\n").unwrap_or(&line).to_vec();
        batch.push(b.build(RawRecord::line(offset, body), at.timestamp_micros()));
        offset += line.len() as u64;
        if batch.len() == 1000 {
            writer
                .write(
                    std::mem::replace(&mut batch, Vec::with_capacity(1000)),
                    Origin::Live,
                )
                .await?;
        }
    }
    writer.write(batch, Origin::Live).await?;
    drop(writer);
    tokio::task::spawn_blocking(move || thread.join())
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // Closed, as the buck closes a day: state in meta, WAL folded in.
    let path = data_dir.join(format!("segments/gen/{DAY}.sqlite"));
    let conn = rusqlite::Connection::open(&path)?;
    conn.execute(
        "INSERT INTO meta(key, value) VALUES ('state', 'closed') \
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [],
    )?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

async fn timed_get(
    client: &reqwest::Client,
    url: &str,
) -> anyhow::Result<(f64, serde_json::Value)> {
    let started = Instant::now();
    let r = client.get(url).send().await?;
    anyhow::ensure!(r.status().is_success(), "{url}: {}", r.status());
    let v: serde_json::Value = r.json().await?;
    Ok((started.elapsed().as_secs_f64() * 1000.0, v))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()
        .context("LINES must be a number")?
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let started = Instant::now();
    write_day(&data, n).await?;
    println!(
        "wrote a closed day of {n} generated crawl.log lines in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let cfg = BuckConfig::new("bench", &data);
    let ingest = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", http.local_addr()?);
    let shutdown = CancellationToken::new();
    let handle = buck::start(cfg, ingest, shutdown.clone()).await?;
    let router = handle.router();
    let token = shutdown.clone();
    tokio::spawn(async move {
        let _ = axum::serve(http, router)
            .with_graceful_shutdown(token.cancelled_owned())
            .await;
    });
    let client = reqwest::Client::new();
    let range = format!("from={DAY}T00:00:00Z&to=2026-11-22T00:00:00Z");
    let hourly = format!("{base}/crawls/gen/summary?{range}&step=3600");
    let daily = format!("{base}/crawls/gen/summary?{range}&step=86400");

    println!("| request | ms |");
    println!("|---|---:|");
    let (ms, v) = timed_get(&client, &hourly).await?;
    let lines: u64 = v["steps"]
        .as_array()
        .map(|s| s.iter().filter_map(|s| s["lines"].as_u64()).sum())
        .unwrap_or(0);
    anyhow::ensure!(lines == n, "the summary counts {lines} lines, not {n}");
    println!("| summary, 24 hourly steps, first (reads the segment) | {ms:.1} |");
    let mut cached = Vec::new();
    for _ in 0..5 {
        cached.push(timed_get(&client, &hourly).await?.0);
    }
    cached.sort_by(f64::total_cmp);
    println!(
        "| summary, 24 hourly steps, cached (median of 5) | {:.1} |",
        cached[2]
    );
    let (ms, v) = timed_get(&client, &daily).await?;
    println!(
        "| summary, one daily step, cached ({} distinct hosts) | {ms:.1} |",
        v["steps"][0]["distinct_hosts"]
    );
    let (ms, _) = timed_get(&client, &format!("{base}/crawls")).await?;
    println!("| GET /crawls, first | {ms:.1} |");
    let (ms, _) = timed_get(&client, &format!("{base}/crawls")).await?;
    println!("| GET /crawls, again | {ms:.1} |");

    // The baseline: the hourly lines, status classes, bytes and distinct hosts through SQL.
    let sql = "SELECT substr(timestamp, 1, 13) AS hour, count(*) AS lines, \
               sum(status_code BETWEEN 200 AND 299) AS s2xx, sum(status_code < 0) AS failed, \
               sum(size) AS bytes, count(DISTINCT host) AS hosts \
               FROM crawled_url GROUP BY hour";
    let started = Instant::now();
    let r = client
        .post(format!("{base}/?segment=gen"))
        .header("content-type", "application/sql;charset=utf-8")
        .body(sql)
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "baseline SQL: {}", r.status());
    let rows: serde_json::Value = r.json().await?;
    println!(
        "| baseline: the same hourly figures through the SQL API ({} rows) | {:.1} |",
        rows.as_array().map_or(0, |a| a.len()),
        started.elapsed().as_secs_f64() * 1000.0
    );
    shutdown.cancel();
    handle.join().await?;
    Ok(())
}
