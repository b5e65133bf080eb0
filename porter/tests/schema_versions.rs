//! Segments of every schema version: the committed fixtures in `fixtures/segments/v1`
//! (a segment and its archived object, written by the version-1 buck and porter) are
//! archived, merged with version-2 replicas, fetched and read, and every row answers as
//! it did.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{NaiveDate, TimeZone, Utc};
use contracts::segment_sql::{self, Labels};
use contracts::{CrawlId, Event, EventFlags, Format};
use porter::archive_store::ArchiveStore;
use porter::buck_client::SegmentState;
use porter::test_support::test_buck::{TestBuck, write_cluster_file};
use porter::{
    LocalDirStore, Manifest, PorterConfig, PorterEvents, archive_with_store, fetch_with_store,
};
use rusqlite::Connection;

const CRAWL: &str = "fixture";

fn v1_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/segments/v1")
}

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2018, 11, 26).unwrap()
}

type Row = Vec<rusqlite::types::Value>;

/// Every row of `sql` (whose first column orders it), as values.
fn rows(path: &Path, sql: &str) -> Vec<Row> {
    let conn = Connection::open(path).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| (0..n).map(|i| r.get(i)).collect())
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Asserts two row sets equal, naming the first row and column that differ (a whole
/// segment's rows are too long to read in an assertion message).
fn assert_same_rows(got: &[Row], want: &[Row], what: &str) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        for (c, (a, b)) in g.iter().zip(w).enumerate() {
            assert_eq!(a, b, "{what}: row {i} column {c} differs (id {:?})", w[0]);
        }
        assert_eq!(g.len(), w.len(), "{what}: row {i} has another column count");
    }
    assert_eq!(got.len(), want.len(), "{what}: row count");
}

const ALL_EVENTS: &str = "SELECT id, time, time_us, host, app, format, flags, original_len, line, raw, fields FROM events ORDER BY id";
const ALL_CRAWLED_URLS: &str = "SELECT * FROM crawled_urls ORDER BY id";

/// The events of a version-1 segment, rebuilt from its rows (lines parsed again as the
/// tailer parsed them).
fn events_of(path: &Path) -> Vec<Event> {
    let conn = Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT id, time_us, host, app, format, flags, original_len, line, raw FROM events ORDER BY rowid")
        .unwrap();
    stmt.query_map([], |r| {
        let id: String = r.get(0)?;
        let line: String = r.get(7)?;
        let raw: Option<Vec<u8>> = r.get(8)?;
        let format = Format::from_name(&r.get::<_, String>(4)?).unwrap();
        let raw = raw.unwrap_or_else(|| line.into_bytes());
        let time_us: i64 = r.get(1)?;
        let source = match format {
            Format::CrawlLog => parsers::SourceFormat::CrawlLog,
            Format::Syslog => parsers::SourceFormat::Syslog,
            Format::Plain => parsers::SourceFormat::Plain,
        };
        let fields = parsers::parse_line(source, &raw, time_us).fields;
        Ok(Event {
            id: id.parse().unwrap(),
            time_us,
            flags: EventFlags(r.get::<_, i64>(5)? as u8),
            original_len: r.get::<_, i64>(6)? as u64,
            format,
            crawl: CrawlId::parse(CRAWL).unwrap(),
            host: r.get(2)?,
            app: r.get(3)?,
            fields,
            raw,
        })
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// A version-2 segment of `events`, closed, as the buck writes it.
fn write_v2(path: &Path, events: &[Event]) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(contracts::segment_schema::SEGMENT_SCHEMA_SQL)
        .unwrap();
    conn.execute_batch(
        "INSERT INTO meta VALUES ('schema_version', '2'), ('state', 'closed'), ('crawl', 'fixture'), ('day', '2018-11-26');",
    )
    .unwrap();
    let mut labels = Labels::new();
    for e in events {
        assert!(segment_sql::insert_event(&conn, &mut labels, e).unwrap());
    }
}

fn v1_manifest() -> Manifest {
    let key = "fixture/2018-11-26.sqlite.z.json";
    Manifest::from_json(
        key,
        &std::fs::read(v1_dir().join("archive").join(key)).unwrap(),
    )
    .unwrap()
}

fn config(root: &Path, bucks: &[&TestBuck]) -> PorterConfig {
    write_cluster_file(&root.join("cluster.toml"), bucks);
    let mut config = PorterConfig::new(
        format!("file://{}/archive", root.display()),
        root.join("cluster.toml"),
        root.join("work"),
    );
    config.archive_age_secs = 3600;
    config.retry_base_delay_ms = 1;
    config
}

async fn fetch(config: &PorterConfig, store: Arc<dyn ArchiveStore>, out: &Path) -> PathBuf {
    let from = Utc.from_utc_datetime(&day().and_hms_opt(0, 0, 0).unwrap());
    let report = fetch_with_store(
        config,
        store,
        Arc::new(PorterEvents::default()),
        &CrawlId::parse(CRAWL).unwrap(),
        from,
        from + chrono::Duration::days(1),
        out,
        &|_| {},
    )
    .await
    .unwrap();
    assert_eq!(report.segments.len(), 1);
    report.segments[0].path.clone()
}

/// A version-2 buck's events written the way it writes them read back exactly as the
/// version-1 buck's file of the same events: every column of `events` (lines byte for
/// byte, parsed fields, times) and of `crawled_urls`.
#[test]
fn a_v2_segment_answers_every_column_as_the_v1_fixture_does() {
    let d = tempfile::tempdir().unwrap();
    let v1 = v1_dir().join("2018-11-26.sqlite");
    let v2 = d.path().join("v2.sqlite");
    write_v2(&v2, &events_of(&v1));
    assert_eq!(rows(&v1, ALL_EVENTS).len(), 132);
    assert_same_rows(&rows(&v2, ALL_EVENTS), &rows(&v1, ALL_EVENTS), "ALL_EVENTS");
    assert_eq!(rows(&v1, ALL_CRAWLED_URLS).len(), 128);
    assert_same_rows(
        &rows(&v2, ALL_CRAWLED_URLS),
        &rows(&v1, ALL_CRAWLED_URLS),
        "ALL_CRAWLED_URLS",
    );
    // A bulk reader (archie's) rebuilds the same lines in Rust as the views in SQL.
    let conn = Connection::open(&v2).unwrap();
    let reader = segment_sql::EventLines::new(&conn).unwrap();
    let mut stmt = conn.prepare(reader.sql()).unwrap();
    let mut got: Vec<(String, String)> = stmt
        .query_map((i64::MIN, i64::MAX), |r| reader.read(r))
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            (r.id, r.line)
        })
        .collect();
    got.sort();
    let want: Vec<(String, String)> = rows(&v1, "SELECT id, line FROM events ORDER BY id")
        .into_iter()
        .map(|r| match (&r[0], &r[1]) {
            (rusqlite::types::Value::Text(a), rusqlite::types::Value::Text(b)) => {
                (a.clone(), b.clone())
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(got, want);
    drop(stmt);
    // Most crawl.log lines are stored once, as columns; the rest keep their text.
    let conn = Connection::open(&v2).unwrap();
    let rebuilt: i64 = conn
        .query_row("SELECT count(*) FROM event WHERE line IS NULL", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(
        rebuilt >= 100,
        "only {rebuilt} of 128 crawl.log lines rebuilt"
    );
}

/// An old buck's version-1 copy and a new buck's version-2 copy (missing some events) of
/// the same segment archive as one version-2 object with the ids hash the version-1
/// porter recorded, and fetch back with every row as the version-1 file has it.
#[tokio::test]
async fn v1_and_v2_replicas_archive_to_the_same_ids_hash_and_fetch_whole() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let v1 = root.join("buck0.sqlite");
    std::fs::copy(v1_dir().join("2018-11-26.sqlite"), &v1).unwrap();
    let v2 = root.join("buck1.sqlite");
    let events = events_of(&v1);
    write_v2(&v2, &events[..100]);
    let b0 = TestBuck::start("buck-a").await;
    let b1 = TestBuck::start("buck-b").await;
    b0.serve(CRAWL, day(), 0, v1.clone(), SegmentState::Closed);
    b1.serve(CRAWL, day(), 0, v2, SegmentState::Closed);
    let config = config(root, &[&b0, &b1]);
    let store: Arc<dyn ArchiveStore> = Arc::new(LocalDirStore::new(root.join("archive")).unwrap());
    let report = archive_with_store(
        &config,
        store.clone(),
        false,
        Arc::new(PorterEvents::default()),
    )
    .await
    .unwrap();
    assert_eq!((report.archived, report.events), (1, 132), "{report:?}");
    let m = Manifest::from_json(
        "m",
        &store
            .get_bytes("fixture/2018-11-26.sqlite.z.json")
            .await
            .unwrap(),
    )
    .unwrap();
    let old = v1_manifest();
    assert_eq!(
        m.ids_sha256, old.ids_sha256,
        "the same events, the same ids hash"
    );
    assert_eq!(
        (m.events, m.first_time_us, m.last_time_us),
        (old.events, old.first_time_us, old.last_time_us)
    );
    assert!(
        m.object_bytes < old.object_bytes,
        "{} >= {}",
        m.object_bytes,
        old.object_bytes
    );

    let fetched = fetch(&config, store, &root.join("fetched")).await;
    assert_same_rows(
        &rows(&fetched, ALL_EVENTS),
        &rows(&v1, ALL_EVENTS),
        "ALL_EVENTS",
    );
    assert_same_rows(
        &rows(&fetched, ALL_CRAWLED_URLS),
        &rows(&v1, ALL_CRAWLED_URLS),
        "ALL_CRAWLED_URLS",
    );
    let conn = Connection::open(&fetched).unwrap();
    let mut indexes: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'event_%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    indexes.sort();
    assert_eq!(
        indexes,
        ["event_id", "event_time", "event_url_host"],
        "rebuilt on fetch"
    );
    let seed = r#"SELECT count(id) FROM crawled_urls WHERE host = "acid.matkelly.com" GROUP BY status_code;"#;
    assert_eq!(rows(&fetched, seed), rows(&v1, seed));
    assert!(!rows(&v1, seed).is_empty());
}

/// The archived object is a SQLite file a stock `sqlite3` opens after inflating it, and
/// the seed query answers there as on the version-1 segment.
#[tokio::test]
async fn an_archived_v2_object_answers_the_seed_query_in_the_sqlite3_shell() {
    let out = std::process::Command::new("sqlite3")
        .arg("--version")
        .output()
        .expect("the sqlite3 shell (scripts/install-test-deps installs it)");
    assert!(out.status.success());
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let v2 = root.join("buck0.sqlite");
    write_v2(&v2, &events_of(&v1_dir().join("2018-11-26.sqlite")));
    let merged = root.join("merged.sqlite");
    porter::segment_merge::merge_replicas("t", std::slice::from_ref(&v2), &merged).unwrap();
    let packed = porter::object_codec::compress(&merged, &root.join("o.z")).unwrap();
    let inflated = root.join("inflated.sqlite");
    porter::object_codec::inflate(&root.join("o.z"), &inflated).unwrap();
    assert!(packed.object_bytes > 0);
    let seed = r#"SELECT count(id) FROM crawled_urls WHERE host = "acid.matkelly.com" GROUP BY status_code;"#;
    let shell = std::process::Command::new("sqlite3")
        .arg(&inflated)
        .arg(format!(
            "{seed} SELECT count(*), sum(length(line)) FROM events;"
        ))
        .output()
        .unwrap();
    assert!(
        shell.status.success(),
        "{}",
        String::from_utf8_lossy(&shell.stderr)
    );
    let v1 = v1_dir().join("2018-11-26.sqlite");
    let mut want: Vec<String> = rows(&v1, seed)
        .iter()
        .map(|r| {
            format!("{:?}", r[0])
                .replace("Integer(", "")
                .replace(')', "")
        })
        .collect();
    let totals = rows(&v1, "SELECT count(*), sum(length(line)) FROM events");
    want.push(format!(
        "{}|{}",
        format!("{:?}", totals[0][0])
            .replace("Integer(", "")
            .replace(')', ""),
        format!("{:?}", totals[0][1])
            .replace("Integer(", "")
            .replace(')', "")
    ));
    let got: Vec<String> = String::from_utf8_lossy(&shell.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(got, want);
}

/// An object the version-1 porter archived (committed, with its manifest) is fetched,
/// verified and read as it was.
#[tokio::test]
async fn a_v1_archived_object_is_fetched_and_read() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let archive = root.join("archive");
    std::fs::create_dir_all(archive.join("fixture")).unwrap();
    for f in ["2018-11-26.sqlite.z", "2018-11-26.sqlite.z.json"] {
        std::fs::copy(
            v1_dir().join("archive/fixture").join(f),
            archive.join("fixture").join(f),
        )
        .unwrap();
    }
    // A buck that holds nothing: the archive alone answers.
    let buck = TestBuck::start("buck-a").await;
    let config = config(root, &[&buck]);
    let store: Arc<dyn ArchiveStore> = Arc::new(LocalDirStore::new(archive).unwrap());
    let fetched = fetch(&config, store, &root.join("fetched")).await;
    let v1 = v1_dir().join("2018-11-26.sqlite");
    assert_same_rows(
        &rows(&fetched, ALL_EVENTS),
        &rows(&v1, ALL_EVENTS),
        "ALL_EVENTS",
    );
    assert_same_rows(
        &rows(&fetched, ALL_CRAWLED_URLS),
        &rows(&v1, ALL_CRAWLED_URLS),
        "ALL_CRAWLED_URLS",
    );
    let summary = porter::segment_merge::summarize("t", &fetched).unwrap();
    assert_eq!(summary.ids_sha256, v1_manifest().ids_sha256);
}
