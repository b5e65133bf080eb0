use std::path::Path;
use std::time::Duration;

use contracts::transport::Message;
use contracts::{ClusterFile, CrawlId};

use crate::common::*;

const TROUGH_QUERY: &str =
    r#"SELECT count(id) FROM crawled_urls WHERE host = "www.example.com" GROUP BY status_code;"#;

fn crawl_line(status: u32, url: &str) -> String {
    format!(
        "2026-11-21T10:00:00.000Z {status:>5} 1234 {url} L http://www.example.com/ text/html #001 20261121095959999+10 sha1:AAAA - -"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trough_query_runs_as_written() {
    let b = TestBuck::start(|_| {}).await;
    let mut c = b.client().await;
    let lines = [
        crawl_line(200, "http://www.example.com/a"),
        crawl_line(200, "http://www.example.com/b"),
        crawl_line(404, "http://www.example.com/c"),
        crawl_line(200, "http://other.example.org/"),
    ];
    let events: Vec<_> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| crawl_log_event("trough", i as u64 * 200, l).unwrap())
        .collect();
    assert!(matches!(c.live(&events).await, Message::Ack { .. }));
    let rows = b.query("trough", TROUGH_QUERY).await;
    let mut counts: Vec<i64> = rows
        .iter()
        .map(|r| r["count(id)"].as_i64().unwrap())
        .collect();
    counts.sort();
    assert_eq!(counts, vec![1, 2]);
    // The view's id is the event id.
    let rows = b.query("trough", "SELECT id, url, status_code, size, payload_size, mimetype, via FROM crawled_urls ORDER BY url LIMIT 1").await;
    assert_eq!(rows[0]["id"], events[3].id.to_string());
    assert_eq!(rows[0]["url"], "http://other.example.org/");
    assert_eq!(rows[0]["payload_size"], 1234);
    assert_eq!(rows[0]["mimetype"], "text/html");
    // A text/plain body works as well (trough's client sends application/sql).
    let r = reqwest::Client::new()
        .post(format!("{}/?segment=trough", b.http))
        .header("content-type", "text/plain")
        .body("SELECT 1 AS one")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!([{"one": 1}])
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacks_get_a_clear_4xx_and_the_buck_keeps_serving() {
    let b = TestBuck::start(|c| {
        c.sql_timeout_ms = 300;
        c.sql_max_rows = 1000;
    })
    .await;
    let mut c = b.client().await;
    assert!(matches!(
        c.live(&[plain_event("victim", 0, now_us(), "x")]).await,
        Message::Ack { .. }
    ));
    assert!(matches!(
        c.live(&[plain_event("other", 0, now_us(), "secret")]).await,
        Message::Ack { .. }
    ));
    let other_path = b.config.segments_dir().join("other");
    let attacks: Vec<(String, u16, &str)> = vec![
        (format!("ATTACH DATABASE '{}' AS x", other_path.display()), 400, "not authorized"),
        ("PRAGMA writable_schema=1".into(), 400, "not authorized"),
        ("INSERT INTO events(id) VALUES ('x')".into(), 400, ""),
        ("DELETE FROM events".into(), 400, ""),
        ("DROP TABLE events".into(), 400, ""),
        ("DROP VIEW events".into(), 400, "not authorized"),
        ("CREATE TABLE t(x)".into(), 400, "not authorized"),
        ("CREATE TEMP TABLE t(x)".into(), 400, "not authorized"),
        ("SELECT load_extension('x')".into(), 400, "not authorized"),
        ("SELECT 1; DELETE FROM events".into(), 400, ""),
        ("BEGIN".into(), 400, "not authorized"),
        ("SELECT * FROM s0.meta; SELECT 2".into(), 400, ""),
        ("SELECT * FROM WHERE".into(), 400, "syntax error"),
        ("SELECT length(hex(zeroblob(2000000000)))".into(), 400, "too big"),
        ("SELECT nonsense FROM".into(), 400, "incomplete input"),
        ("WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r".into(), 408, "sql_timeout_ms"),
    ];
    for (sql, status, needle) in &attacks {
        let (got, _, body) = b.post("/?segment=victim", sql).await;
        assert_eq!(got.as_u16(), *status, "{sql}: {body}");
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("{sql}: not JSON: {body}"));
        let msg = v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{sql}: no error message: {body}"));
        assert!(!msg.is_empty() && msg.contains(needle), "{sql}: {msg}");
        // Still serving, and still intact.
        assert_eq!(
            b.query("victim", "SELECT count(*) AS n FROM events").await[0]["n"],
            1,
            "after {sql}"
        );
    }
    // Another crawl is invisible: only the victim's segments are attached.
    let (status, _, body) = b.post("/?segment=victim", "PRAGMA database_list").await;
    assert_eq!(status, 400, "file paths stay private: {body}");
    let rows = b
        .query(
            "victim",
            "SELECT count(*) AS n FROM events WHERE line = 'secret'",
        )
        .await;
    assert_eq!(rows[0]["n"], 0);

    // A cross join of a million rows: cut at sql_max_rows with a truncation marker.
    let (status, _, body) = b
        .post("/?segment=victim", "WITH d(x) AS (VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9)) SELECT a.x, b.x, c.x, d.x, e.x, f.x FROM d a, d b, d c, d d, d e, d f")
        .await;
    assert_eq!(status, 200, "{body}");
    let v: Vec<serde_json::Value> =
        serde_json::from_str(&body).expect("a well-formed array even when cut");
    assert_eq!(v.len(), 1001);
    assert!(
        v[1000]["_sluice_truncated"]
            .as_str()
            .unwrap()
            .contains("sql_max_rows")
    );
    assert!(b.counters().sql_truncated >= 1);

    // Unknown and hostile crawls.
    let (status, _, body) = b.post("/?segment=nope", "SELECT 1").await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("crawl nope has no segment"), "{body}");
    let (status, _, body) = b.post("/?segment=../x", "SELECT 1").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid crawl id"), "{body}");
    let (status, _, body) = b.post("/", "SELECT 1").await;
    assert_eq!(status, 400, "{body}");
    assert!(b.counters().sql_timeouts >= 1);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byte_limit_truncates_a_streamed_reply() {
    let b = TestBuck::start(|c| c.sql_max_bytes = 300_000).await;
    let mut c = b.client().await;
    assert!(matches!(
        c.live(&[plain_event("big", 0, now_us(), "x")]).await,
        Message::Ack { .. }
    ));
    let (status, _, body) = b
        .post("/?segment=big", "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 100000) SELECT i, printf('%050d', i) AS pad FROM r")
        .await;
    assert_eq!(status, 200);
    assert!(body.len() < 300_200, "{}", body.len());
    let v: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert!(
        v.last().unwrap()["_sluice_truncated"]
            .as_str()
            .unwrap()
            .contains("sql_max_bytes")
    );
    assert_eq!(v[0]["i"], 1);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_queries_pick_the_overlapping_days() {
    let b = TestBuck::start(|_| {}).await;
    let mut c = b.client().await;
    let day_us = 86_400_000_000i64;
    let base = chrono::NaiveDate::from_ymd_opt(2026, 11, 10)
        .unwrap()
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_micros();
    let events: Vec<_> = (0..3)
        .map(|d| plain_event("ranged", d as u64, base + d * day_us, "e"))
        .collect();
    assert!(matches!(c.live(&events).await, Message::Ack { .. }));
    let (status, headers, body) = b
        .post(
            "/sql?crawl=ranged&from=2026-11-11T00:00:00Z&to=2026-11-13T00:00:00Z",
            "SELECT count(*) AS n FROM events",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-sluice-days"], "2026-11-11,2026-11-12");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()[0]["n"],
        2
    );
    let (status, _, body) = b
        .post(
            "/sql?crawl=ranged&from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z",
            "SELECT 1",
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, _, body) = b
        .post(
            "/sql?crawl=ranged&from=yesterday&to=2026-11-21T00:00:00Z",
            "SELECT 1",
        )
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("RFC 3339"), "{body}");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buck_that_is_not_home_redirects() {
    let dir = tempfile::tempdir().unwrap();
    let cluster_path = dir.path().join("cluster.toml");
    let text = "replicas = 1\n[[buck]]\nid = \"b1\"\ningest = \"127.0.0.1:1\"\nhttp_url = \"http://b1.example:8100\"\nsince = \"2020-01-01\"\n\
                [[buck]]\nid = \"b2\"\ningest = \"127.0.0.1:2\"\nhttp_url = \"http://b2.example:8100/\"\nsince = \"2020-01-01\"\n";
    std::fs::write(&cluster_path, text).unwrap();
    let cluster = ClusterFile::parse(text, Path::new("cluster.toml")).unwrap();
    let today = chrono::Utc::now().date_naive();
    let not_mine = (0..100)
        .map(|i| CrawlId::parse(&format!("c{i}")).unwrap())
        .find(|c| !cluster.home_bucks(c, today).is_home("b1"))
        .expect("some crawl is homed on b2");
    let mine = (0..100)
        .map(|i| CrawlId::parse(&format!("c{i}")).unwrap())
        .find(|c| cluster.home_bucks(c, today).is_home("b1"))
        .expect("some crawl is homed on b1");
    let b = TestBuck::start_in(dir, |c| c.cluster_file = Some(cluster_path.clone())).await;
    let (status, headers, _) = b.post(&format!("/?segment={not_mine}"), "SELECT 1").await;
    assert_eq!(status, 307);
    assert_eq!(
        headers["location"],
        format!("http://b2.example:8100/?segment={not_mine}").as_str()
    );
    let (status, _, _) = b.post(&format!("/?segment={mine}"), "SELECT 1").await;
    assert_eq!(status, 404);
    b.stop().await;
}

#[tokio::test]
async fn a_configured_token_guards_the_sql_api() {
    let b = TestBuck::start(|c| c.api_token = Some("s3cret".into())).await;
    let mut c = b.client().await;
    let e = crawl_log_event("tok", 0, &crawl_line(200, "http://www.example.com/t")).unwrap();
    assert!(matches!(c.live(&[e]).await, Message::Ack { .. }));
    let (status, _, body) = b
        .post("/?segment=tok", "SELECT count(*) AS n FROM events")
        .await;
    assert_eq!(status, 401, "no token: {body}");
    assert!(body.contains("Authorization: Bearer"), "{body}");
    // r11.10: a token in the URL is not accepted, even the right one.
    let (status, _, body) = b
        .post(
            "/?segment=tok&token=s3cret",
            "SELECT count(*) AS n FROM events",
        )
        .await;
    assert_eq!(status, 401, "a token in the URL was accepted: {body}");
    let with = |token: &str| {
        reqwest::Client::new()
            .post(format!("{}/?segment=tok", b.http))
            .bearer_auth(token)
            .body("SELECT count(*) AS n FROM events")
            .send()
    };
    assert_eq!(with("wrong").await.unwrap().status(), 401);
    let r = with("s3cret").await.unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains("\"n\":1"), "{body}");
    // The segment API for porters is not behind the SQL token.
    assert!(b.get_json("/segments").await.is_array());
}

/// r11.6: a client that asks for a large result and then stops reading is cut off after
/// `sql_send_timeout_ms`, and its query's read transaction ends with it: the WAL can be
/// checkpointed whole again while ingest goes on (a reader holding a snapshot blocks a
/// TRUNCATE checkpoint).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_cannot_pin_the_wal() {
    use tokio::io::AsyncWriteExt;
    let b = TestBuck::start(|c| c.sql_send_timeout_ms = 1000).await;
    let mut c = b.client().await;
    let t = now_us();
    let pad = "y".repeat(400);
    for k in 0..2u64 {
        let events: Vec<_> = (0..500u64)
            .map(|i| plain_event("slow", (k * 500 + i) * 1000, t, &pad))
            .collect();
        assert!(matches!(c.live(&events).await, Message::Ack { .. }));
    }
    let http = b.http.trim_start_matches("http://").to_owned();
    let mut sock = tokio::net::TcpStream::connect(&http).await.unwrap();
    // Rows without end, each reading the segment: far more than the socket buffers and
    // the reply queue hold, so the query blocks on the client with its snapshot open.
    let sql = "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r LIMIT 1000000) SELECT x, printf('%.200c', 'z') AS pad, (SELECT count(*) FROM events) AS n FROM r";
    let req = format!(
        "POST /?segment=slow HTTP/1.1\r\nHost: {http}\r\nContent-Type: application/sql\r\nContent-Length: {}\r\n\r\n{sql}",
        sql.len()
    );
    sock.write_all(req.as_bytes()).await.unwrap();
    let day = chrono::DateTime::from_timestamp_micros(t)
        .unwrap()
        .date_naive();
    let path = contracts::segment_path::segment_path(
        &b.config.segments_dir(),
        &CrawlId::parse("slow").unwrap(),
        day,
        0,
    );
    // Ingest goes on while the reply is stalled; the query is cut off after the send
    // timeout, and then the WAL can be checkpointed whole.
    let mut offset = 1u64 << 40;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let cut_off = |b: &TestBuck| {
        let mut text = String::new();
        b.handle().events().render_prometheus(&mut text);
        text.lines()
            .any(|l| l == "sluice_buck_sql_send_timeouts_total 1")
    };
    while !cut_off(&b) {
        offset += 1000;
        let events = vec![plain_event("slow", offset, t, "more")];
        assert!(matches!(c.live(&events).await, Message::Ack { .. }));
        assert!(
            std::time::Instant::now() < deadline,
            "a client that stopped reading still holds its query after 20 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    let busy: i64 = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .unwrap();
    assert_eq!(busy, 0, "the WAL cannot be checkpointed whole");
    drop(sock);
    b.stop().await;
}

/// r11.4: values and rows bigger than a reply are refused before they are built, with a
/// clear 413 or 400, and so are results with thousands of columns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_values_rows_and_column_counts_get_a_clear_4xx() {
    let b = TestBuck::start(|c| {
        c.sql_max_bytes = 1 << 20;
        c.sql_max_value_bytes = 256 << 10;
    })
    .await;
    let mut c = b.client().await;
    assert!(matches!(
        c.live(&[plain_event("big", 1, now_us(), "x")]).await,
        Message::Ack { .. }
    ));
    let post = |sql: String| {
        let url = format!("{}/?segment=big", b.http);
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .body(sql)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    // One value past sql_max_value_bytes.
    let (status, body) = post("SELECT zeroblob(10000000) AS c0".into()).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("too big"), "{body}");
    // Values within it, but a row past the whole reply.
    let cols: Vec<String> = (0..6)
        .map(|i| format!("zeroblob(200000) AS c{i}"))
        .collect();
    let (status, body) = post(format!("SELECT {}", cols.join(", "))).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("sql_max_bytes"), "{body}");
    // 2,000 columns.
    let cols: Vec<String> = (0..2000).map(|i| format!("{i} AS c{i}")).collect();
    let (status, body) = post(format!("SELECT {}", cols.join(", "))).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("too many columns"), "{body}");
    b.stop().await;
}

/// Issue 17 item 4: the whole result as CSV or NDJSON, streamed by the server for a
/// console's download: the same rows as the JSON array, a header row in CSV, the
/// truncation marker as a last line, and a 400 for a format it does not know.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_stream_as_csv_and_ndjson_with_the_same_rows() {
    let b = TestBuck::start(|c| c.sql_max_rows = 150).await;
    let mut c = b.client().await;
    let events: Vec<_> = (0..120)
        .map(|i| {
            let url = format!("http://www.example.com/{i},\"q\"");
            crawl_log_event("dl", i * 200, &crawl_line(200 + (i as u32 % 3), &url)).unwrap()
        })
        .collect();
    assert!(matches!(c.live(&events).await, Message::Ack { .. }));
    let sql = "SELECT url, status_code FROM crawled_url ORDER BY url";
    let json = b.query("dl", sql).await;
    assert_eq!(json.len(), 120);

    let (status, headers, body) = b.post("/?segment=dl&format=ndjson", sql).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "application/x-ndjson");
    let lines: Vec<serde_json::Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, json);

    let (status, headers, body) = b.post("/?segment=dl&format=csv", sql).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    let rows: Vec<&str> = body.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(rows[0], "url,status_code");
    assert_eq!(rows.len(), 121);
    for (csv, j) in rows[1..].iter().zip(&json) {
        // The URL holds a comma and quotes: quoted, quotes doubled.
        let url = j["url"].as_str().unwrap().replace('"', "\"\"");
        assert_eq!(*csv, format!("\"{url}\",{}", j["status_code"]));
    }

    // Past sql_max_rows: the last line says so, in each format.
    let many = "SELECT a.url FROM crawled_url a, crawled_url b LIMIT 200";
    let (_, _, body) = b.post("/?segment=dl&format=csv", many).await;
    assert!(
        body.trim_end()
            .ends_with("_sluice_truncated: reply cut at 150 rows (sql_max_rows)"),
        "{body}"
    );
    let (_, _, body) = b
        .post(
            "/sql?crawl=dl&from=2026-11-21T00:00:00Z&to=2026-11-22T00:00:00Z&format=ndjson",
            many,
        )
        .await;
    let last: serde_json::Value = serde_json::from_str(body.lines().last().unwrap()).unwrap();
    assert!(last["_sluice_truncated"].is_string(), "{body}");
    assert_eq!(body.lines().count(), 151);

    let (status, _, body) = b.post("/?segment=dl&format=xml", sql).await;
    assert_eq!(status, 400);
    assert!(body.contains("ndjson or csv"), "{body}");
}

/// A GET's status, headers and body.
async fn get_reply(url: String) -> (reqwest::StatusCode, reqwest::header::HeaderMap, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status(), r.headers().clone(), r.text().await.unwrap())
}

/// Queries, exports and crawl summaries share `sql_max_concurrent` slots: while a slow
/// query holds the only one, each of them is told 503 with `Retry-After` and which limit
/// refused it, and the slot is free again once the query ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_sql_slot_refuses_queries_exports_and_summaries_alike() {
    let b = TestBuck::start(|c| {
        c.sql_max_concurrent = 1;
        // Longer than the wait for the slot below: a loaded machine cannot miss the
        // window in which the slow query holds it.
        c.sql_timeout_ms = 6_000;
    })
    .await;
    let mut c = b.client().await;
    let event = crawl_log_event("busy", 0, &crawl_line(200, "http://www.example.com/")).unwrap();
    assert!(matches!(c.live(&[event]).await, Message::Ack { .. }));

    // Counts until sql_timeout_ms stops it.
    let endless =
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT max(x) FROM n";
    let send_slow = || {
        tokio::spawn(
            reqwest::Client::new()
                .post(format!("{}/?segment=busy", b.http))
                .body(endless)
                .send(),
        )
    };
    let crawls = format!("{}/crawls", b.http);
    let mut slow = send_slow();
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if get_reply(crawls.clone()).await.0 == 503 {
            break;
        }
        if slow.is_finished() {
            // The probe held the slot when the query came, so the query was the one
            // refused (a loaded machine orders them either way): send it again.
            let refused = slow.await.unwrap().unwrap();
            assert_eq!(refused.status(), 503, "{refused:?}");
            slow = send_slow();
        }
        assert!(
            tokio::time::Instant::now() < end,
            "timed out waiting for the slow query to hold the slot"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let range = "from=2026-11-21T00:00:00Z&to=2026-11-22T00:00:00Z";
    let refused = [
        b.post("/?segment=busy", "SELECT 1").await,
        get_reply(format!("{}/export?crawl=busy&{range}", b.http)).await,
        get_reply(format!("{}/crawls/busy/summary?{range}", b.http)).await,
        get_reply(crawls.clone()).await,
    ];
    for (status, headers, body) in refused {
        assert_eq!(status, 503, "{body}");
        assert_eq!(headers["retry-after"], "1");
        assert!(body.contains("sql_max_concurrent"), "{body}");
    }

    let timed_out = slow.await.unwrap().unwrap();
    assert!(timed_out.status().is_client_error(), "{timed_out:?}");
    eventually(
        Duration::from_secs(5),
        "the slot to be free again",
        || async { get_reply(crawls.clone()).await.0 == 200 },
    )
    .await;
    let rows = b.query("busy", "SELECT count(*) AS n FROM events").await;
    assert_eq!(rows[0]["n"], 1);
}
