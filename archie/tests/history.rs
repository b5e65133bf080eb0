//! History requests end to end over HTTP: real segment files, a real port, answers
//! compared with plain scans of the source lines.

// A test or bench crate: its helpers may unwrap (clippy.toml allows it only in #[test] fns).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// The scan a search is compared with: which source lines it keeps.
type Keep = Box<dyn Fn(&archie::segment_fixture::FixtureEvent) -> bool>;

const BUILD_DEADLINE: Duration = Duration::from_secs(120);

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn assert_time_order(lines: &[Value], asc: bool) {
    for w in lines.windows(2) {
        let (a, b) = (
            w[0]["time_us"].as_i64().unwrap(),
            w[1]["time_us"].as_i64().unwrap(),
        );
        let (sa, sb) = (w[0]["seq"].as_i64().unwrap(), w[1]["seq"].as_i64().unwrap());
        if asc {
            assert!(a <= b && sa < sb, "not ascending: {} then {}", w[0], w[1]);
        } else {
            assert!(a >= b && sa > sb, "not descending: {} then {}", w[0], w[1]);
        }
    }
}

/// Three days of one crawl (one day with a late part) and a day of another.
fn three_days() -> Fixture {
    let mut f = fixture();
    f.add("crawl-a", "2026-11-01", 0, 3000, 1);
    f.add("crawl-a", "2026-11-02", 0, 2500, 2);
    f.add("crawl-a", "2026-11-02", 1, 300, 3);
    f.add("crawl-a", "2026-11-03", 0, 2000, 4);
    f.add("crawl-b", "2026-11-02", 0, 1500, 5);
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_answer_what_a_scan_of_the_lines_finds() {
    let f = three_days();
    let srv = Server::start(config(&f.work()), &f.segments()).await;
    let (start, end) = ("2026-11-01T12:00:00Z", "2026-11-03T06:00:00Z");
    let r = srv.request("crawl-a", start, end).await;
    let id = r["id"].as_str().unwrap().to_owned();
    assert!(r["name"].as_str().unwrap().contains("crawl-a"), "{r}");
    let done = srv.wait_done(&id, BUILD_DEADLINE).await;
    assert_eq!(done["state"], "ready", "{done}");
    let all = f.scan(&["crawl-a"], ts(start), ts(end), |_| true);
    assert_eq!(done["events_indexed"].as_u64().unwrap(), all.len() as u64);
    assert!(done["expires_at"].is_string(), "{done}");

    let term = |w: &'static str| {
        move |e: &archie::segment_fixture::FixtureEvent| contracts::tokenizer::has_token(&e.line, w)
    };
    let cases: Vec<(&str, &str, Keep)> = vec![
        ("term", "robots.txt", Box::new(term("robots.txt"))),
        ("term", "404", Box::new(term("404"))),
        ("term", "www.raeder.dk", Box::new(term("www.raeder.dk"))),
        (
            "term",
            "text/html",
            Box::new(|e| {
                contracts::tokenizer::has_token(&e.line, "text")
                    && contracts::tokenizer::has_token(&e.line, "html")
            }),
        ),
        (
            "substring",
            "robots.txt",
            Box::new(|e| e.line.contains("robots.txt")),
        ),
        (
            "substring",
            "sha1:AB",
            Box::new(|e| e.line.contains("sha1:AB")),
        ),
        ("substring", "Z7", Box::new(|e| e.line.contains("Z7"))),
        ("substring", "kaRO", Box::new(|e| e.line.contains("kaRO"))),
        (
            "regex",
            r"sha1:[A-Z]{2}7",
            Box::new(|e| {
                regex::Regex::new(r"sha1:[A-Z]{2}7")
                    .unwrap()
                    .is_match(&e.line)
            }),
        ),
        (
            "regex",
            r"#0(12|34) ",
            Box::new(|e| regex::Regex::new(r"#0(12|34) ").unwrap().is_match(&e.line)),
        ),
        (
            "regex",
            r"\s404\s+\d{3} ",
            Box::new(|e| {
                regex::Regex::new(r"\s404\s+\d{3} ")
                    .unwrap()
                    .is_match(&e.line)
            }),
        ),
        (
            "regex",
            r"(?i)ROBOTS\.txt",
            Box::new(|e| {
                regex::Regex::new(r"(?i)ROBOTS\.txt")
                    .unwrap()
                    .is_match(&e.line)
            }),
        ),
    ];
    for (mode, q, keep) in &cases {
        let want = f.scan(&["crawl-a"], ts(start), ts(end), keep);
        let got = srv
            .search_all(&id, &format!("q={}&mode={mode}", enc(q)), 1000)
            .await;
        assert_time_order(&got, true);
        assert_eq!(sorted(ids(&got)), sorted(want.clone()), "{mode} {q:?}");
        assert!(
            !want.is_empty() || *q == "kaRO",
            "{mode} {q:?} matches nothing: a weak case"
        );
    }

    // A time range narrows the walk: no more rows are read than the range holds.
    let (from, to) = ("2026-11-02T03:00:00Z", "2026-11-02T05:00:00Z");
    let want = f.scan(&["crawl-a"], ts(from), ts(to), |_| true);
    let (s, v) = srv
        .get(&format!(
            "/history/{id}/search?from={from}&to={to}&limit=1000"
        ))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        sorted(ids(v["lines"].as_array().unwrap())),
        sorted(want.clone())
    );
    assert!(
        v["stats"]["rows_scanned"].as_u64().unwrap() <= want.len() as u64,
        "{}",
        v["stats"]
    );
    assert_eq!(v["stats"]["complete"], true);
    let want = f.scan(&["crawl-a"], ts(from), ts(to), |e| {
        e.line.contains("text/dns")
    });
    let got = srv
        .search_all(
            &id,
            &format!("q=text%2Fdns&mode=substring&from={from}&to={to}"),
            7,
        )
        .await;
    assert_eq!(sorted(ids(&got)), sorted(want));

    // Host filter.
    let want = f.scan(&["crawl-a"], ts(start), ts(end), |e| {
        e.host == "crawler-2" && e.line.contains("http://")
    });
    let got = srv
        .search_all(&id, "q=http%3A%2F%2F&mode=substring&host=crawler-2", 500)
        .await;
    assert_eq!(sorted(ids(&got)), sorted(want));

    // Histogram: the counts add up to the matches, each in its bucket.
    let want = f.scan(&["crawl-a"], ts(start), ts(end), |e| {
        e.line.contains("robots.txt")
    });
    let (s, h) = srv
        .get(&format!(
            "/history/{id}/histogram?q=robots.txt&mode=substring&buckets=10"
        ))
        .await;
    assert_eq!(s, 200, "{h}");
    assert_eq!(h["total"].as_u64().unwrap(), want.len() as u64);
    assert_eq!(h["counts"].as_array().unwrap().len(), 10);
    let (_, h) = srv.get(&format!("/history/{id}/histogram?buckets=7")).await;
    assert_eq!(h["total"].as_u64().unwrap(), all.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_page_every_match_once_in_both_directions() {
    let f = three_days();
    let srv = Server::start(config(&f.work()), &f.segments()).await;
    let (start, end) = ("2026-11-01T00:00:00Z", "2026-11-04T00:00:00Z");
    let id = srv.request("crawl-*", start, end).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = srv.wait_done(&id, BUILD_DEADLINE).await;
    assert_eq!(done["state"], "ready", "{done}");
    assert_eq!(done["crawls"], json!(["crawl-a", "crawl-b"]));
    let crawls = ["crawl-a", "crawl-b"];
    let all = f.scan(&crawls, ts(start), ts(end), |_| true);
    assert_eq!(done["events_indexed"].as_u64().unwrap(), all.len() as u64);

    for (params, keep) in [
        (
            "q=",
            Box::new(|_: &archie::segment_fixture::FixtureEvent| true) as Box<dyn Fn(&_) -> bool>,
        ),
        (
            "q=200&mode=term",
            Box::new(|e: &archie::segment_fixture::FixtureEvent| {
                contracts::tokenizer::has_token(&e.line, "200")
            }),
        ),
    ] {
        let want = sorted(f.scan(&crawls, ts(start), ts(end), keep));
        let asc = srv
            .search_all(&id, &format!("{params}&order=asc"), 113)
            .await;
        let desc = srv
            .search_all(&id, &format!("{params}&order=desc"), 97)
            .await;
        assert_time_order(&asc, true);
        assert_time_order(&desc, false);
        assert_eq!(
            asc.len(),
            want.len(),
            "{params}: a line served twice or missed"
        );
        assert_eq!(sorted(ids(&asc)), want);
        let mut rev = ids(&desc);
        rev.reverse();
        assert_eq!(rev, ids(&asc), "{params}: desc is not asc reversed");
    }

    // Context: the lines around one event, in order, the event in the middle.
    let mid = &all[all.len() / 2];
    let (s, c) = srv
        .get(&format!(
            "/history/{id}/context?event={}&before=3&after=2",
            enc(mid)
        ))
        .await;
    assert_eq!(s, 200, "{c}");
    let lines = c["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[3]["event"].as_str().unwrap(), mid);
    assert_time_order(lines, true);
    let (s, _) = srv.get(&format!("/history/{id}/context?event=nope")).await;
    assert_eq!(s, 404);

    // A narrower request for the same crawls reuses the index.
    let again = srv
        .request("crawl-*", "2026-11-02T00:00:00Z", "2026-11-02T12:00:00Z")
        .await;
    assert_eq!(again["id"].as_str().unwrap(), id);
    assert_eq!(again["reused"], true);
    let other = srv.request("crawl-a", start, end).await;
    assert_ne!(other["id"].as_str().unwrap(), id);
    let (s, list) = srv.get("/history").await;
    assert_eq!(s, 200);
    assert_eq!(list["requests"].as_array().unwrap().len(), 2, "{list}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_ranges_bad_segments_and_bad_requests_say_so() {
    let mut f = fixture();
    f.add("crawl-a", "2026-11-01", 0, 200, 1);
    // Garbage where a segment should be.
    let bad = f.segments().join("crawl-bad").join("2026-11-01.sqlite");
    std::fs::create_dir_all(bad.parent().unwrap()).unwrap();
    std::fs::write(
        &bad,
        b"this is not a database, just garbage bytes ".repeat(200),
    )
    .unwrap();
    let srv = Server::start(config(&f.work()), &f.segments()).await;

    let id = srv
        .request("crawl-a", "2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z")
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = srv.wait_done(&id, BUILD_DEADLINE).await;
    assert_eq!(done["state"], "ready", "{done}");
    assert_eq!(done["events_indexed"], 0);
    assert!(
        done["message"]
            .as_str()
            .unwrap()
            .contains("no segments cover crawl-a"),
        "{done}"
    );
    let (s, v) = srv.get(&format!("/history/{id}/search?q=anything")).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["lines"].as_array().unwrap().is_empty());

    let id = srv
        .request("crawl-bad", "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z")
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = srv.wait_done(&id, BUILD_DEADLINE).await;
    assert_eq!(done["state"], "failed", "{done}");
    let reason = done["reason"].as_str().unwrap();
    assert!(
        reason.contains("2026-11-01.sqlite") && reason.contains("not a database"),
        "{reason}"
    );
    let (s, v) = srv.get(&format!("/history/{id}/search?q=x")).await;
    assert_eq!(s, 409, "{v}");
    assert!(v["error"].as_str().unwrap().contains("failed"), "{v}");

    for body in [
        json!({"crawl": "crawl-a", "start": "2026-11-01T00:00:00Z", "end": "2026-12-15T00:00:00Z"}),
        json!({"crawl": "crawl-a", "start": "2026-11-02T00:00:00Z", "end": "2026-11-01T00:00:00Z"}),
        json!({"crawl": "../etc", "start": "2026-11-01T00:00:00Z", "end": "2026-11-02T00:00:00Z"}),
        json!({"crawl": "crawl-a", "start": "yesterday", "end": "2026-11-02T00:00:00Z"}),
        json!({"crawl": "crawl-a", "start": "2026-11-01T00:00:00Z", "end": "2026-11-02T00:00:00Z", "x": 1}),
    ] {
        let (s, v) = srv.post("/history", body.clone()).await;
        assert_eq!(s, 400, "{body}: {v}");
        assert!(!v["error"].as_str().unwrap().is_empty());
    }
    // A bad time names the field and shows the form, not a JSON decoder's message.
    let (_, v) = srv
        .post(
            "/history",
            json!({"crawl": "crawl-a", "start": "yesterday", "end": "2026-11-02T00:00:00Z"}),
        )
        .await;
    assert_eq!(
        v["error"].as_str().unwrap_or(""),
        "start \"yesterday\" is not an RFC 3339 time (premature end of input): write it like 2026-11-20T00:00:00Z",
        "{v}"
    );
    let (s, _) = srv.get("/history/0000000000000000").await;
    assert_eq!(s, 404);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_reads_and_refuses_everything_else() {
    let mut f = fixture();
    f.add("crawl-a", "2026-11-01", 0, 1500, 1);
    let mut c = config(&f.work());
    c.sql_time_limit_secs = 1;
    c.sql_row_limit = 100;
    let srv = Server::start(c, &f.segments()).await;
    let id = srv
        .request("crawl-a", "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z")
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(srv.wait_done(&id, BUILD_DEADLINE).await["state"], "ready");

    let (s, v) = srv.sql(&id, "SELECT count(*) AS n FROM events").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v[0]["n"], 1500);
    let want = f
        .events
        .iter()
        .filter(|(_, e)| e.line.contains("robots.txt"))
        .count();
    let (s, v) = srv
        .sql(&id, "SELECT count(*) AS n FROM events WHERE seq IN (SELECT j.value FROM shard0.tokens t JOIN shard0.batches b USING (batch), json_each(archie_postings(t.lists, t.first_key, archie_token('ROBOTS.txt'), b.first_seq)) j UNION SELECT j.value FROM shard1.tokens t JOIN shard1.batches b USING (batch), json_each(archie_postings(t.lists, t.first_key, archie_token('robots.txt'), b.first_seq)) j) AND line GLOB '*robots.txt*'")
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v[0]["n"].as_u64().unwrap(), want as u64);
    let (s, v) = srv.sql(&id, "SELECT seq FROM events").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v.as_array().unwrap().len(), 100);

    for hostile in [
        "DELETE FROM events",
        "INSERT INTO events(seq, id, crawl, time_us, host, app, format, flags, line) VALUES (0,'x','c',0,'h','a','f',0,'l')",
        "DROP TABLE events",
        "CREATE TABLE t(x)",
        "ATTACH DATABASE '/tmp/archie-evil.sqlite' AS evil",
        "PRAGMA writable_schema = 1",
        "PRAGMA journal_mode = DELETE",
        "SELECT load_extension('/tmp/evil.so')",
        "SELECT 1; DELETE FROM events",
        "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r",
        "VACUUM INTO '/tmp/archie-copy.sqlite'",
        "",
    ] {
        let (s, v) = srv.sql(&id, hostile).await;
        assert_eq!(s, 400, "{hostile}: {v}");
        assert!(v["error"].as_str().is_some(), "{hostile}: {v}");
    }
    assert!(!std::path::Path::new("/tmp/archie-evil.sqlite").exists());
    let (_, v) = srv.sql(&id, "SELECT count(*) AS n FROM events").await;
    assert_eq!(v[0]["n"], 1500);
    srv.stop().await;
}

/// r11 item 11: a request cannot fetch more than `max_fetch_bytes` of segments nor cover
/// more than `max_crawls_per_request` crawls; past either it fails, says which setting,
/// and leaves no fetched copies behind. Within them it works as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_fetch_caps_fail_and_say_which_setting() {
    let f = three_days();
    let day1 = std::fs::metadata(f.segments().join("crawl-a").join("2026-11-01.sqlite"))
        .unwrap()
        .len();
    let mut c = config(&f.work());
    c.max_fetch_bytes = day1;
    c.max_crawls_per_request = 1;
    let srv = Server::start(c, &f.segments()).await;
    let request = |crawl: &'static str, start: &'static str, end: &'static str| {
        let srv = &srv;
        async move {
            let id = srv.request(crawl, start, end).await["id"]
                .as_str()
                .unwrap()
                .to_owned();
            (srv.wait_done(&id, BUILD_DEADLINE).await, id)
        }
    };

    let (done, _) = request("crawl-a", "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z").await;
    assert_eq!(done["state"], "ready", "one day fits: {done}");
    assert_eq!(done["events_indexed"], 3000);

    let (done, id) = request("crawl-a", "2026-11-01T00:00:00Z", "2026-11-04T00:00:00Z").await;
    assert_eq!(done["state"], "failed", "{done}");
    assert!(
        done["reason"].as_str().unwrap().contains("max_fetch_bytes"),
        "{done}"
    );
    assert!(
        !srv.work.join(&id).join("segments").exists(),
        "fetched copies of a refused request were left behind"
    );

    let (done, _) = request("crawl-*", "2026-11-02T00:00:00Z", "2026-11-02T01:00:00Z").await;
    assert_eq!(done["state"], "failed", "{done}");
    assert!(
        done["reason"]
            .as_str()
            .unwrap()
            .contains("max_crawls_per_request"),
        "{done}"
    );
    srv.stop().await;
}

/// r11 item 4 and 5 for archie: a statement cannot make a huge value or a huge row, a
/// reply stops at its byte limit, and statements past `sql_max_concurrent` get 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_is_held_to_value_row_byte_and_concurrency_limits() {
    let mut f = fixture();
    f.add("crawl-a", "2026-11-01", 0, 1500, 1);
    let mut c = config(&f.work());
    c.sql_time_limit_secs = 2;
    c.sql_row_limit = 10_000;
    c.sql_max_bytes = 64 * 1024;
    c.sql_max_value_bytes = 1 << 20;
    c.sql_max_concurrent = 1;
    let srv = Server::start(c, &f.segments()).await;
    let id = srv
        .request("crawl-a", "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z")
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(srv.wait_done(&id, BUILD_DEADLINE).await["state"], "ready");

    // Six 64 MiB blobs: refused by SQLite's value limit before anything is allocated.
    let bomb: Vec<String> = (0..6)
        .map(|i| format!("zeroblob(67108864) AS c{i}"))
        .collect();
    let (s, v) = srv.sql(&id, &format!("SELECT {}", bomb.join(", "))).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("too big"), "{v}");
    // Values under the value limit whose row passes the reply's bytes: 413.
    let wide: Vec<String> = (0..6)
        .map(|i| format!("zeroblob(900000) AS c{i}"))
        .collect();
    let (s, v) = srv.sql(&id, &format!("SELECT {}", wide.join(", "))).await;
    assert_eq!(s, 413, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("sql_max_bytes"),
        "{v}"
    );
    // 2,000 columns.
    let cols: Vec<String> = (0..2000).map(|i| format!("{i} AS c{i}")).collect();
    let (s, v) = srv.sql(&id, &format!("SELECT {}", cols.join(", "))).await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("too many columns"),
        "{v}"
    );
    // A reply stops at sql_max_bytes, still valid JSON, and says so.
    let r = srv
        .client
        .post(format!("{}/history/{id}/sql", srv.base))
        .body("SELECT seq, line FROM events ORDER BY seq")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-archie-truncated"], "true");
    let body = r.bytes().await.unwrap();
    assert!(body.len() <= 64 * 1024, "{} bytes", body.len());
    let rows: Vec<Value> = serde_json::from_slice(&body).expect("a cut reply is still JSON");
    assert!(rows.len() > 10 && rows.len() < 1500, "{} rows", rows.len());
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(
            row["seq"].as_u64(),
            Some(i as u64 + 1),
            "rows in order, none torn"
        );
    }

    // A statement that runs to its time limit holds the only slot: others get 503. (A
    // probe may take the slot first and the slow one be refused: then start it again.
    // The probes run back to back, so on a loaded machine the slow one can lose that
    // race several times in a row; a refused attempt costs milliseconds.)
    let mut refused = 0;
    for _attempt in 0..50 {
        let slow = {
            let (client, url) = (srv.client.clone(), format!("{}/history/{id}/sql", srv.base));
            tokio::spawn(async move {
                client
                    .post(url)
                    .body("WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r")
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        };
        refused = 0;
        while !slow.is_finished() {
            let r = srv
                .client
                .post(format!("{}/history/{id}/sql", srv.base))
                .body("SELECT count(*) AS n FROM events")
                .send()
                .await
                .unwrap();
            if r.status() == 503 {
                assert!(r.headers().contains_key("retry-after"));
                refused += 1;
            }
        }
        match slow.await.unwrap().unwrap() {
            503 => continue,
            s => {
                assert_eq!(s, 400, "the slow one stops at its time limit");
                break;
            }
        }
    }
    assert!(
        refused > 0,
        "no statement was refused while the slot was held"
    );
    let (s, v) = srv.sql(&id, "SELECT count(*) AS n FROM events").await;
    assert_eq!(
        (s, v[0]["n"].as_u64()),
        (200, Some(1500)),
        "the slot came back"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_deletes_the_files_also_after_a_restart() {
    let mut f = fixture();
    f.add("crawl-a", "2026-11-01", 0, 500, 1);
    let mut c = config(&f.work());
    c.expiry_secs = 1;
    c.reap_interval_secs = 1;
    let srv = Server::start(c.clone(), &f.segments()).await;
    let id = srv
        .request("crawl-a", "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z")
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let dir = f.work().join(&id);
    let until = Instant::now() + BUILD_DEADLINE;
    loop {
        let (_, v) = srv.get(&format!("/history/{id}")).await;
        // Marked expired first (no new search opens it), then the files go, outside the
        // reaper's lock: wait for both.
        if v["state"] == "expired" && !dir.exists() {
            assert!(v["reason"].as_str().unwrap().contains("expired"), "{v}");
            break;
        }
        assert!(
            Instant::now() < until,
            "never expired or {} still exists: {v}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (s, v) = srv.get(&format!("/history/{id}/search?q=x")).await;
    assert_eq!(s, 409, "{v}");
    srv.stop().await;

    // A long expiry, a restart, then a short one: the catalog keeps the time, and the
    // reaper of the new process deletes it.
    let mut long = c.clone();
    long.expiry_secs = 5;
    let srv = Server::start(long.clone(), &f.segments()).await;
    let id = srv
        .request("crawl-a", "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z")
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(srv.wait_done(&id, BUILD_DEADLINE).await["state"], "ready");
    srv.stop().await;
    let dir = f.work().join(&id);
    assert!(dir.exists());
    let srv = Server::start(long, &f.segments()).await;
    let (s, v) = srv.get(&format!("/history/{id}/search?q=200")).await;
    assert!(s == 200 || s == 409, "{v}");
    let until = Instant::now() + Duration::from_secs(30);
    while dir.exists() {
        assert!(Instant::now() < until, "not reaped after restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, v) = srv.get(&format!("/history/{id}")).await;
    assert_eq!(v["state"], "expired", "{v}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_budget_evicts_the_oldest_index() {
    let mut f = fixture();
    f.add("crawl-a", "2026-11-01", 0, 800, 1);
    f.add("crawl-b", "2026-11-01", 0, 800, 2);
    let mut c = config(&f.work());
    c.reap_interval_secs = 1;
    let srv = Server::start(c.clone(), &f.segments()).await;
    let a = srv
        .request("crawl-a", "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z")
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let one = srv.wait_done(&a, BUILD_DEADLINE).await;
    let bytes = one["index_bytes"].as_u64().unwrap();
    assert!(bytes > 0, "{one}");
    srv.stop().await;
    // Room for about one index: the older one goes when the second is ready.
    c.disk_budget_bytes = bytes + bytes / 2;
    let srv = Server::start(c, &f.segments()).await;
    let b = srv
        .request("crawl-b", "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z")
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(srv.wait_done(&b, BUILD_DEADLINE).await["state"], "ready");
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, v) = srv.get(&format!("/history/{a}")).await;
        // The reaper marks the index expired (so no new search opens it) before it
        // deletes the files, outside its lock: wait for both.
        if v["state"] == "expired" && !f.work().join(&a).exists() {
            assert!(v["reason"].as_str().unwrap().contains("disk budget"), "{v}");
            break;
        }
        assert!(Instant::now() < until, "not evicted: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, v) = srv.get(&format!("/history/{b}")).await;
    assert_eq!(v["state"], "ready");
    srv.stop().await;
}

/// r11.11: with `api_token` set, archie answers nothing without it; and past
/// `max_pending_requests` queued or building, a new request is a 503 with Retry-After,
/// not one more build fetching the archive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_guards_every_route_and_pending_requests_are_capped() {
    let f = three_days();
    let mut cfg = config(&f.work());
    cfg.api_token = Some("archie-test-token-0123".into());
    cfg.max_pending_requests = 1;
    cfg.concurrent_builds = 1;
    let srv = Server::start(cfg, &f.segments()).await;
    let http = reqwest::Client::new();
    let body =
        json!({"crawl": "crawl-a", "start": "2026-11-01T00:00:00Z", "end": "2026-11-02T00:00:00Z"});
    for (what, req) in [
        ("list", http.get(format!("{}/history", srv.base))),
        (
            "create",
            http.post(format!("{}/history", srv.base)).json(&body),
        ),
        (
            "status",
            http.get(format!("{}/history/0000000000000000", srv.base)),
        ),
        (
            "wrong token",
            http.get(format!("{}/history", srv.base))
                .bearer_auth("not-it"),
        ),
    ] {
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{what}");
    }
    let authed = |req: reqwest::RequestBuilder| req.bearer_auth("archie-test-token-0123");
    let first = authed(http.post(format!("{}/history", srv.base)).json(&body))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 202);
    let other =
        json!({"crawl": "crawl-b", "start": "2026-11-02T00:00:00Z", "end": "2026-11-03T00:00:00Z"});
    let second = authed(http.post(format!("{}/history", srv.base)).json(&other))
        .send()
        .await
        .unwrap();
    // Unless the first finished in between, the second is refused for now.
    let first_state = authed(http.get(format!("{}/history", srv.base)))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    if second.status() == 503 {
        assert!(second.headers().contains_key("retry-after"));
        let v: Value = second.json().await.unwrap();
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains("max_pending_requests"),
            "{v}"
        );
    } else {
        assert_eq!(second.status(), 202);
        assert!(
            first_state.to_string().contains("ready"),
            "a second request was queued beside a building one: {first_state}"
        );
    }
}
