use contracts::transport::Message;

use crate::common::*;

fn v1_fixture() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/segments/v1/2018-11-26.sqlite")
}

const SEED: &str = r#"SELECT count(id) AS n FROM crawled_urls WHERE host = "www.example.com" GROUP BY status_code;"#;

fn example_line(time_us: i64, status: i64, i: usize) -> String {
    let t = chrono::DateTime::from_timestamp_micros(time_us)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ");
    format!(
        "{t} {status:>5} {:>10} http://www.example.com/p/{i} L http://www.example.com/ text/html #001 20261121095959999+1 sha1:ABCDEFGHIJKLMNOPQRSTUVWXYZ234567 - -",
        100 + i
    )
}

/// A buck that finds a version-1 segment (written by the buck before version 2) beside
/// the version-2 one it makes today answers SQL over both as one crawl: the same rows and
/// columns from each, the seed query over both files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_segment_is_queried_beside_a_v2_one() {
    let dir = tempfile::tempdir().unwrap();
    let seg_dir = dir.path().join("data/segments/fixture");
    std::fs::create_dir_all(&seg_dir).unwrap();
    std::fs::copy(v1_fixture(), seg_dir.join("2018-11-26.sqlite")).unwrap();
    let b = TestBuck::start_in(dir, |_| {}).await;
    let now = now_us() / 1000 * 1000;
    let events: Vec<_> = (0..5)
        .map(|i| {
            let line = example_line(now, [200, 200, 404, 200, 301][i], i);
            crawl_log_event("fixture", i as u64 * 1000, &line).unwrap()
        })
        .collect();
    let mut c = b.client().await;
    assert!(matches!(c.live(&events).await, Message::Ack { .. }));

    let n = b.query("fixture", "SELECT count(*) AS n FROM events").await;
    assert_eq!(n[0]["n"], 137);
    let urls = b
        .query("fixture", "SELECT count(*) AS n FROM crawled_url")
        .await;
    assert_eq!(urls[0]["n"], 133);
    let seed = b.query("fixture", SEED).await;
    let mut counts: Vec<i64> = seed.iter().map(|r| r["n"].as_i64().unwrap()).collect();
    counts.sort();
    assert_eq!(counts, vec![1, 1, 3]);
    // The v1 file answers its own crawl.log host, through the same views.
    let old = b
        .query(
            "fixture",
            "SELECT count(*) AS n FROM crawled_urls WHERE host = 'acid.matkelly.com'",
        )
        .await;
    assert!(old[0]["n"].as_i64().unwrap() > 0);
    // The v2 rows come back as the lines that were sent, byte for byte.
    let lines = b
        .query(
            "fixture",
            &format!("SELECT line FROM events WHERE time_us = {now} ORDER BY id"),
        )
        .await;
    let want: Vec<String> = events
        .iter()
        .map(|e| String::from_utf8(e.raw.clone()).unwrap())
        .collect();
    let got: Vec<String> = lines
        .iter()
        .map(|r| r["line"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, want);
}

/// A buck upgraded mid-day goes on writing its open version-1 segment as version 1: the
/// file keeps one layout, and the new event is in it with its `crawled_url` row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_v1_segment_is_written_as_v1() {
    let now = now_us() / 1000 * 1000;
    let dir = tempfile::tempdir().unwrap();
    let seg_dir = dir.path().join("data/segments/fixture");
    std::fs::create_dir_all(&seg_dir).unwrap();
    let today = seg_dir.join(format!("{}.sqlite", day_text(now)));
    std::fs::copy(v1_fixture(), &today).unwrap();
    {
        let conn = rusqlite::Connection::open(&today).unwrap();
        conn.execute_batch("UPDATE meta SET value = 'open' WHERE key = 'state'")
            .unwrap();
    }
    let b = TestBuck::start_in(dir, |_| {}).await;
    let ev = crawl_log_event("fixture", 0, &example_line(now, 404, 0)).unwrap();
    let mut c = b.client().await;
    assert!(matches!(c.live(&[ev]).await, Message::Ack { .. }));
    let seed = b.query("fixture", SEED).await;
    assert_eq!(seed.len(), 1);
    assert_eq!(seed[0]["n"], 1);
    let conn = rusqlite::Connection::open(&today).unwrap();
    let (version, kind): (String, String) = conn
        .query_row(
            "SELECT (SELECT value FROM meta WHERE key = 'schema_version'), (SELECT type FROM sqlite_master WHERE name = 'events')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((version.as_str(), kind.as_str()), ("1", "table"));
    let n: i64 = conn
        .query_row("SELECT count(*) FROM crawled_url", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 129);
}
