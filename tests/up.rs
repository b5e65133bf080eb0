//! `sluice up` end to end: lines written to a file come out of the SQL API, exactly once.

use std::collections::BTreeMap;
use std::io::Write;

use crate::util::{Dir, PATIENCE, Up, appender, sql, sql_count, wait_for};

fn status_counts_from_file(text: &str) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let status = line
            .split_whitespace()
            .nth(1)
            .expect("crawl.log line has a status")
            .to_owned();
        *m.entry(status).or_default() += 1;
    }
    m
}

#[test]
fn a_line_written_to_a_file_is_answered_by_sql() {
    let dir = Dir::new("up-skeleton");
    let log = dir.join("jobs/c1/logs/crawl.log");
    let mut f = appender(&log);
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
    writeln!(f, "{now}   200       1234 http://www.example.com/ - - text/html #001 20261121100000000+5 sha1:AAAA - -").unwrap();
    drop(f);
    let pattern = dir
        .join("jobs/{crawl}/logs/crawl.log")
        .display()
        .to_string();
    let up = Up::start(&dir, &["--bucket-interval-secs", "1", &pattern]);
    let n = wait_for("the line to be queryable", PATIENCE, || {
        sql_count(&up.url, "c1", "SELECT count(*) FROM events").filter(|&n| n >= 1)
    });
    assert_eq!(n, 1);
    // The query from the original design, verbatim.
    let rows = sql(
        &up.url,
        "c1",
        r#"SELECT count(id) FROM crawled_urls WHERE host = "www.example.com" GROUP BY status_code;"#,
    )
    .expect("the design's query runs as written");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].values().next().and_then(|v| v.as_i64()), Some(1));
}

#[test]
fn real_crawl_log_counts_per_status_match_the_file() {
    let dir = Dir::new("up-real");
    let src = crate::util::real_logs()
        .into_iter()
        .next()
        .expect("real crawl logs beside the repo");
    let text = std::fs::read_to_string(&src).unwrap();
    let expected = status_counts_from_file(&text);
    let total: i64 = expected.values().sum();
    let log = dir.join("crawl.log");
    std::fs::copy(&src, &log).unwrap();
    let log_s = log.display().to_string();
    let up = Up::start(&dir, &["--crawl", "real", &log_s]);
    wait_for("every line to arrive", PATIENCE, || {
        sql_count(&up.url, "real", "SELECT count(*) FROM crawled_url").filter(|&n| n == total)
    });
    let rows = sql(
        &up.url,
        "real",
        "SELECT status_code, count(*) AS n FROM crawled_url GROUP BY status_code",
    )
    .unwrap();
    let got: BTreeMap<String, i64> = rows
        .iter()
        .map(|r| (r["status_code"].to_string(), r["n"].as_i64().unwrap()))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(
        sql_count(&up.url, "real", "SELECT count(*) FROM events"),
        Some(total),
        "no duplicates"
    );
}

#[test]
fn sigterm_stops_cleanly_and_a_restart_stores_nothing_twice() {
    let dir = Dir::new("up-restart");
    let log = dir.join("crawl.log");
    let mut f = appender(&log);
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
    for i in 0..500 {
        writeln!(
            f,
            "{now}   200 {i:>10} http://www.example.com/{i} L - text/html #001 - - - -"
        )
        .unwrap();
    }
    drop(f);
    let log_s = log.display().to_string();
    let mut up = Up::start(&dir, &["--crawl", "r1", &log_s]);
    wait_for("500 events", PATIENCE, || {
        up.agent.assert_running();
        sql_count(&up.url, "r1", "SELECT count(*) FROM events").filter(|&n| n == 500)
    });
    assert!(
        up.agent.terminate(std::time::Duration::from_secs(30)),
        "sluice up exits 0 on SIGTERM; log:\n{}",
        up.agent.log()
    );
    assert!(
        !dir.join("up/up.json").exists(),
        "up.json is removed on a clean stop"
    );
    // Restart: the checkpoints hold, and anything re-read is de-duplicated.
    let mut f = appender(&log);
    for i in 500..600 {
        writeln!(
            f,
            "{now}   404 {i:>10} http://www.example.com/{i} L - text/html #001 - - - -"
        )
        .unwrap();
    }
    drop(f);
    let mut up = Up::start(&dir, &["--crawl", "r1", &log_s]);
    wait_for("600 events", PATIENCE, || {
        up.agent.assert_running();
        sql_count(&up.url, "r1", "SELECT count(*) FROM events").filter(|&n| n >= 600)
    });
    assert_eq!(
        sql_count(&up.url, "r1", "SELECT count(*) FROM events"),
        Some(600)
    );
    assert_eq!(
        sql_count(
            &up.url,
            "r1",
            "SELECT count(*) FROM crawled_url WHERE status_code = 404"
        ),
        Some(100)
    );
}

/// Behind a reverse proxy that forwards its prefix: with `--base-path`, every page, API
/// and the live stream answer under it, nothing answers outside it, and the cluster file
/// tells browsers the prefixed URL.
#[test]
fn base_path_serves_everything_under_the_prefix() {
    let dir = Dir::new("up-base-path");
    let log = dir.join("crawl.log");
    let mut f = appender(&log);
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
    writeln!(f, "{now}   200       1234 http://www.example.com/ - - text/html #001 20261121100000000+5 sha1:AAAA - -").unwrap();
    drop(f);
    let log_s = log.display().to_string();
    let up = Up::start(
        &dir,
        &["--base-path", "/logs/sluice", "--crawl", "bp", &log_s],
    );
    assert!(up.url.ends_with("/logs/sluice"), "{}", up.url);
    let n = wait_for("the line through the prefixed SQL API", PATIENCE, || {
        sql_count(&up.url, "bp", "SELECT count(*) FROM events").filter(|&n| n >= 1)
    });
    assert_eq!(n, 1);
    let get = |url: String| reqwest::blocking::get(url).expect("request");
    let root = up.url.trim_end_matches("/logs/sluice").to_owned();
    assert_eq!(get(format!("{root}/healthz")).status(), 404);
    assert_eq!(get(format!("{root}/ui/live")).status(), 404);
    let page = get(format!("{}/ui/live", up.url));
    assert_eq!(page.status(), 200);
    assert!(page.text().unwrap().contains("<html"));
    // The socket.io handshake (Engine.IO polling open packet) under the prefix.
    let open = get(format!("{}/socket.io/?EIO=4&transport=polling", up.url));
    assert_eq!(open.status(), 200);
    assert!(
        open.text().unwrap().starts_with("0{"),
        "an Engine.IO open packet"
    );
    // The live view learns each buck's URL from /api/bucks: the prefixed one.
    let bucks: serde_json::Value = get(format!("{}/api/bucks", up.url)).json().unwrap();
    assert!(bucks.to_string().contains(&up.url), "{bucks}");
}
