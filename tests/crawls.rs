//! Issue 15 item 3: the crawls page in Chromium against `sluice up`: the crawl is listed
//! with its rows, and a day's chart and table add up to the lines written, class by
//! class. The screenshot is kept in `test-artifacts/crawls-page.png`.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{Duration, Utc};
use contracts::status_class::StatusClass;

use crate::util::{Dir, PATIENCE, Up, appender, run_browser_script, sql_count, wait_for};

#[test]
fn the_crawls_page_charts_a_day_whose_numbers_equal_the_log() {
    let dir = Dir::new("crawls-page");
    let log = dir.join("crawl.log");
    let day = (Utc::now() - Duration::days(1)).date_naive();
    let codes = [200, 200, 301, 404, 503, -2, 1, 200, 302];
    let n = 2_400i64;
    let mut want: BTreeMap<&str, i64> = BTreeMap::new();
    let mut f = appender(&log);
    for i in 0..n {
        // Spread over the day's 24 hours, 100 a hour.
        let t = day.and_hms_opt(0, 0, 0).unwrap().and_utc() + Duration::seconds(i * 36);
        let code = codes[i as usize % codes.len()];
        let class = match StatusClass::of(Some(code)) {
            StatusClass::Informational => StatusClass::Other,
            c => c,
        };
        *want.entry(class.name()).or_default() += 1;
        writeln!(
            f,
            "{} {code:>5} {:>10} http://site{}.example.org/p/{i} L - text/html #001 - sha1:ABCDEFGHIJKLMNOPQRSTUVWXYZ234567 - -",
            t.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            100 + i,
            i % 17
        )
        .unwrap();
    }
    drop(f);
    let log_s = log.display().to_string();
    let up = Up::start(&dir, &["--crawl", "weekly-7", &log_s]);
    wait_for("every line stored", PATIENCE, || {
        sql_count(&up.url, "weekly-7", "SELECT count(*) FROM events").filter(|&c| c == n)
    });
    let shot =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("test-artifacts/crawls-page.png");
    std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
    let last = run_browser_script(
        "crawls_page.mjs",
        &[
            &up.url,
            "weekly-7",
            &day.to_string(),
            &shot.display().to_string(),
        ],
    )
    .last;
    assert_eq!(last["listed"], n, "the crawls table: {last}");
    assert_eq!(last["total"], n, "the day's table: {last}");
    for (class, count) in &want {
        assert_eq!(last["byClass"][class], *count, "class {class}: {last}");
    }
    assert!(last["bars"].as_u64().unwrap_or(0) >= 24, "no chart: {last}");
    assert!(
        last["url"]
            .as_str()
            .unwrap_or("")
            .contains("crawl=weekly-7"),
        "the choice is not in the URL: {last}"
    );
    assert_eq!(last["violations"], serde_json::json!([]), "{last}");
    // sluice up's one buck is the crawl's home, and it answers (up, or degraded with why).
    let states = last["homeStates"].as_array().cloned().unwrap_or_default();
    assert_eq!(states.len(), 1, "{last}");
    let state = states[0].as_str().unwrap_or("");
    assert!(
        state == "(up)" || state.starts_with("(degraded"),
        "the home is shown as {state:?}: {last}"
    );
    assert!(shot.exists());
}
