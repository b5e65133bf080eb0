//! History through `sluice up`: lines archived to its local directory come back in a
//! temporary index, and term, substring and regex searches answer exactly the lines a scan
//! of the source file finds. The history page is checked in headless Chromium.

use std::collections::BTreeSet;

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::util::{
    ARCHIVE_AT_ONCE, Dir, PATIENCE, Up, append_lines, mixed_crawl_lines, run_browser_script,
    sql_count, wait_for,
};

fn get(url: &str) -> Value {
    reqwest::blocking::get(url)
        .and_then(|r| r.json())
        .unwrap_or(Value::Null)
}

/// Every line found by `search?mode=..&q=..`, following cursors to the end.
pub(crate) fn search_all(base: &str, id: &str, mode: &str, q: &str) -> BTreeSet<String> {
    let mut got = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = reqwest::Url::parse(&format!("{base}/history/{id}/search")).unwrap();
        url.query_pairs_mut()
            .append_pair("q", q)
            .append_pair("mode", mode)
            .append_pair("limit", "50");
        if let Some(c) = &cursor {
            url.query_pairs_mut().append_pair("cursor", c);
        }
        let v = get(url.as_str());
        let lines = v["lines"]
            .as_array()
            .unwrap_or_else(|| panic!("search {mode} {q:?}: {v}"));
        for l in lines {
            assert!(
                got.insert(l["line"].as_str().unwrap().to_owned()),
                "a line came twice across pages"
            );
        }
        match v["next_cursor"].as_str() {
            Some(c) if !lines.is_empty() => cursor = Some(c.to_owned()),
            _ => return got,
        }
    }
}

#[test]
fn a_history_request_over_the_archive_answers_like_grep() {
    let dir = Dir::new("history");
    let log = dir.join("crawl.log");
    let day = (Utc::now() - Duration::days(3)).date_naive();
    let lines = mixed_crawl_lines(day, 600);
    append_lines(&log, &lines);
    let log_s = log.display().to_string();
    let up = Up::start(
        &dir,
        &[&["--crawl", "hi"][..], &ARCHIVE_AT_ONCE, &[&log_s]].concat(),
    );
    wait_for("the events", PATIENCE, || {
        sql_count(&up.url, "hi", "SELECT count(*) FROM events").filter(|&c| c == 600)
    });
    wait_for("the archive", PATIENCE, || {
        dir.join(&format!("up/archive/hi/{day}.sqlite.z.json"))
            .exists()
            .then_some(())
    });

    let client = reqwest::blocking::Client::new();
    let start = day.and_hms_opt(0, 0, 0).unwrap().and_utc();
    let end = start + Duration::days(1);
    let r: Value = client
        .post(format!("{}/history", up.url))
        .json(&json!({"crawl": "hi", "start": start, "end": end}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let id = r["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id: {r}"))
        .to_owned();
    let status = wait_for("the index to be ready", PATIENCE, || {
        let v = get(&format!("{}/history/{id}", up.url));
        assert_ne!(v["state"], "failed", "history request failed: {v}");
        (v["state"] == "ready").then_some(v)
    });
    assert_eq!(status["events_indexed"].as_u64(), Some(600), "{status}");

    let grep = |pred: &dyn Fn(&str) -> bool| -> BTreeSet<String> {
        lines.iter().filter(|l| pred(l)).cloned().collect()
    };
    let term = search_all(&up.url, &id, "term", "acid.matkelly.com");
    assert_eq!(term, grep(&|l| l.contains("acid.matkelly.com")));
    let sub = search_all(&up.url, &id, "substring", "/path/12");
    assert_eq!(sub, grep(&|l| l.contains("/path/12")));
    assert!(!sub.is_empty());
    let re = search_all(&up.url, &id, "regex", r"-5003 +10[0-9]7 ");
    let rx = regex::Regex::new(r"-5003 +10[0-9]7 ").unwrap();
    assert_eq!(re, grep(&|l| rx.is_match(l)));

    // The history page renders the request, a search and its results in Chromium.
    let shot = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("test-artifacts/history.png");
    std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
    let last = run_browser_script(
        "history_page.mjs",
        &[
            &up.url,
            "hi",
            &start.to_rfc3339(),
            &end.to_rfc3339(),
            "acid.matkelly.com",
            &shot.display().to_string(),
        ],
    )
    .last;
    assert_eq!(
        last["shown"].as_u64(),
        Some(
            term.len()
                .min(last["page_size"].as_u64().unwrap_or(0) as usize) as u64
        ),
        "{last}"
    );
    // Issue 17 item 5: a header, times to the millisecond, matches highlighted, a
    // histogram with axes and counts, clear errors, and a request that can be deleted.
    assert_eq!(
        last["header"],
        serde_json::json!(["time (UTC)", "crawler", "crawl", "line", "context"]),
        "{last}"
    );
    let first_time = last["firstTime"].as_str().unwrap_or("");
    assert!(
        first_time.len() <= 23 && first_time.as_bytes().get(10) == Some(&b' '),
        "time shown as {first_time:?}: {last}"
    );
    let marks = last["marks"].as_array().cloned().unwrap_or_default();
    assert!(!marks.is_empty(), "no match highlighted: {last}");
    assert!(
        marks.iter().all(|m| m
            .as_str()
            .unwrap_or("")
            .eq_ignore_ascii_case("acid.matkelly.com")),
        "{last}"
    );
    assert_eq!(last["barRects"], 60, "{last}");
    // The site and status filters: only the term's 404 lines, each shown, counted alike.
    let filtered = last["filtered"].as_array().cloned().unwrap_or_default();
    let want_404 = term
        .iter()
        .filter(|l| l.split_whitespace().nth(1) == Some("404"))
        .count();
    assert!(want_404 > 0);
    assert_eq!(filtered.len(), want_404.min(200), "{last}");
    assert!(
        last["filteredTotal"]
            .as_str()
            .unwrap_or("")
            .starts_with(&format!("{want_404} matches")),
        "{last}"
    );
    assert!(
        last["axisLabels"].as_array().is_some_and(|a| a.len() >= 4),
        "{last}"
    );
    assert!(
        last["badDate"]
            .as_str()
            .unwrap_or("")
            .contains("\"yesterday\" is not an RFC 3339 time"),
        "{last}"
    );
    assert!(
        last["unknownCrawl"]
            .as_str()
            .unwrap_or("")
            .contains("no segments cover no-such-crawl"),
        "{last}"
    );
    assert_eq!(
        last["requestsAfter"].as_u64().map(|n| n + 1),
        last["requestsBefore"].as_u64(),
        "{last}"
    );
}
