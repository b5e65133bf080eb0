//! Writes the segment fixtures under `fixtures/segments/v<N>/`: a segment made by the
//! buck's own writer from real Heritrix lines (and a few syslog, plain and invalid UTF-8
//! lines), and the archive object and manifest porter makes of it. Readers are tested
//! against the fixtures of every earlier schema version, so this is run once per version,
//! by the code that writes that version, and its output committed.
//!
//! `segment_fixtures <out dir>`

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use buck::{BuckConfig, BuckEvents, Bus, Origin, SegmentWriter, WriterOptions};
use chrono::{DateTime, NaiveDate, Utc};
use contracts::{CrawlId, Event};
use parsers::{EventBuilder, RawRecord, SourceFormat};

const REAL: &str = "/work/shared/data/real/heritrix";
const TAILER: u64 = 0x5eed_0000_f1c5_7e01;

/// The fixture's events, the same on every run: real crawl.log lines (Heritrix 3 with the
/// JSON extra field and an annotation with spaces, Heritrix 1, fetch errors), syslog and
/// plain lines, and a line that is not UTF-8.
pub fn fixture_events(crawl: &CrawlId) -> anyhow::Result<Vec<Event>> {
    let read: DateTime<Utc> = "2018-11-26T15:00:00Z".parse()?;
    let read_us = read.timestamp_micros();
    let files: [(&str, SourceFormat, &str, usize); 3] = [
        (
            "ukwa-manage/h3-2018-crawl.log",
            SourceFormat::CrawlLog,
            "heritrix",
            usize::MAX,
        ),
        (
            "ukwa-manage/h3-2017-fragment-of-a-crawl.log",
            SourceFormat::CrawlLog,
            "heritrix",
            usize::MAX,
        ),
        (
            "netarchivesuite/h1-2005-2006-crawldir/crawl.log",
            SourceFormat::CrawlLog,
            "heritrix",
            30,
        ),
    ];
    let mut out = Vec::new();
    for (seq, (file, format, app, take)) in files.iter().enumerate() {
        let text = std::fs::read(Path::new(REAL).join(file)).with_context(|| file.to_string())?;
        let mut b = EventBuilder::new(
            *format,
            TAILER,
            seq as u64 + 1,
            crawl.clone(),
            "crawler-01".into(),
            app.to_string(),
            60_000,
        );
        let mut offset = 0u64;
        for line in text.split(|&c| c == b'\n').take(*take) {
            if !line.is_empty() {
                out.push(b.build(RawRecord::line(offset, line.to_vec()), read_us));
            }
            offset += line.len() as u64 + 1;
        }
    }
    let others: [(SourceFormat, &str, &[u8]); 4] = [
        (
            SourceFormat::Syslog,
            "syslog",
            b"<34>1 2018-11-26T14:30:00.000Z crawler-01 heritrix 4242 ID47 - disk 91% full",
        ),
        (
            SourceFormat::Syslog,
            "syslog",
            b"<13>Nov 26 14:31:02 crawler-01 cron[77]: (root) CMD (run-parts /etc/cron.hourly)",
        ),
        (
            SourceFormat::Plain,
            "app",
            b"2018-11-26 14:32:00 plain line with a \"quote\" and a tab\there",
        ),
        (SourceFormat::Plain, "app", b"caf\xe9 is not UTF-8"),
    ];
    for (i, (format, app, line)) in others.iter().enumerate() {
        let mut b = EventBuilder::new(
            *format,
            TAILER,
            10 + i as u64,
            crawl.clone(),
            "crawler-01".into(),
            app.to_string(),
            60_000,
        );
        out.push(b.build(RawRecord::line(0, line.to_vec()), read_us));
    }
    Ok(out)
}

async fn write_segment(data_dir: &Path, events: Vec<Event>) -> anyhow::Result<()> {
    let mut cfg = BuckConfig::new("fixture", data_dir);
    // The fixture's day is long past: without a long grace the writer would close the
    // segment at once and put the rest into a part file.
    cfg.day_close_grace_secs = 100 * 365 * 86_400;
    cfg.writer_max_delay_ms = 1;
    let stats = Arc::new(BuckEvents::default());
    let bus = Bus::new(4096, stats.clone());
    let (writer, thread) = SegmentWriter::spawn(WriterOptions::from_config(&cfg), bus, stats)?;
    writer.write(events, Origin::Live).await?;
    drop(writer);
    tokio::task::spawn_blocking(move || thread.join())
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let out: PathBuf = std::env::args()
        .nth(1)
        .context("usage: segment_fixtures <out dir>")?
        .into();
    let crawl = CrawlId::parse("fixture")?;
    let day = NaiveDate::from_ymd_opt(2018, 11, 26).context("day")?;
    let tmp = tempfile::tempdir()?;
    let events = fixture_events(&crawl)?;
    let n = events.len();
    write_segment(tmp.path(), events).await?;
    let seg = tmp.path().join("segments/fixture/2018-11-26.sqlite");
    {
        let conn = rusqlite::Connection::open(&seg)?;
        // Closed, as the buck leaves a segment that porter archives.
        conn.execute_batch(
            "UPDATE meta SET value = 'closed' WHERE key = 'state';
             INSERT OR REPLACE INTO meta(key, value) VALUES ('closed_us', '1543276800000000');
             PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE;",
        )?;
    }
    let version: String = rusqlite::Connection::open(&seg)?.query_row(
        "SELECT value FROM meta WHERE key = 'schema_version'",
        [],
        |r| r.get(0),
    )?;
    let dir = out.join(format!("v{version}"));
    std::fs::create_dir_all(dir.join("archive/fixture"))?;
    std::fs::copy(&seg, dir.join("2018-11-26.sqlite"))?;

    let merged = tmp.path().join("merged.sqlite");
    let summary =
        porter::segment_merge::merge_replicas("fixture", std::slice::from_ref(&seg), &merged)?;
    let okey = porter::manifest::object_key(&crawl, day, 0);
    let object = dir.join("archive").join(&okey);
    let packed = porter::object_codec::compress(&merged, &object)?;
    let manifest = porter::Manifest::of_packed_segment(
        &crawl,
        day,
        0,
        &summary,
        packed,
        vec!["buck-a".into()],
        "2018-11-27T00:00:00Z".into(),
    );
    std::fs::write(
        dir.join("archive")
            .join(porter::manifest::manifest_key(&crawl, day, 0)),
        manifest.to_json(),
    )?;
    println!(
        "schema v{version}: {n} events, ids_sha256 {}, segment {} bytes, object {} bytes, in {}",
        summary.ids_sha256,
        std::fs::metadata(dir.join("2018-11-26.sqlite"))?.len(),
        manifest.object_bytes,
        dir.display()
    );
    Ok(())
}
