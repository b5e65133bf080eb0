//! Issue 17 item 4: the SQL console with large results, in Chromium against `sluice up`.
//! The screenshot is kept in `test-artifacts/sql-console.png`.

use crate::util::{Dir, PATIENCE, Up, run_browser_script, sql_count, wait_for, write_log};

#[test]
fn the_console_draws_a_hundred_thousand_rows_cancels_truncates_and_downloads() {
    let dir = Dir::new("console-big");
    let log = dir.join("crawl.log");
    write_log(&log, 50);
    let log_s = log.display().to_string();
    let mut up = Up::start(&dir, &["--crawl", "big", &log_s]);
    wait_for("the crawl's lines", PATIENCE, || {
        sql_count(&up.url, "big", "SELECT count(*) FROM events").filter(|&c| c == 50)
    });
    let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("sql-console.png");
    let csv = dir.join("download.csv");
    let last = run_browser_script(
        "console_big.mjs",
        &[
            &up.url,
            "big",
            &shot.display().to_string(),
            &csv.display().to_string(),
        ],
    )
    .last;
    // Run is disabled while a query runs; Cancel aborts it and gives Run back.
    assert_eq!(
        last["during"],
        serde_json::json!({"run": true, "cancel": false}),
        "{last}"
    );
    assert_eq!(
        last["afterCancel"],
        serde_json::json!({"run": false, "cancel": true}),
        "{last}"
    );
    // 100,000 rows: drawn in under a second, only a screenful in the page.
    let status = last["bigStatus"].as_str().unwrap_or("");
    assert!(status.starts_with("100,000 rows"), "{last}");
    let draw_ms = last["drawMs"].as_f64().unwrap_or(f64::MAX);
    assert!(draw_ms < 1000.0, "drawing took {draw_ms} ms: {last}");
    assert!(last["domRows"].as_u64().unwrap_or(u64::MAX) < 200, "{last}");
    assert_eq!(last["noticeHidden"], true, "{last}");
    // Headers stay on one line (no `stat us_c ode`).
    assert_eq!(last["header"]["whiteSpace"], "nowrap", "{last}");
    assert!(
        last["header"]["height"].as_f64().unwrap_or(99.0) < 30.0,
        "{last}"
    );
    // Past sql_max_rows: a notice, not a row reading "undefined".
    assert_eq!(last["noticeShown"], true, "{last}");
    assert!(
        last["notice"]
            .as_str()
            .unwrap_or("")
            .contains("Only the first 100,000 rows"),
        "{last}"
    );
    assert_eq!(last["undefinedCells"], 0, "{last}");
    // The CSV the server streamed: a header and every row.
    let body = std::fs::read_to_string(&csv).expect("the downloaded CSV");
    let lines: Vec<&str> = body.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 100_001);
    assert_eq!(lines[0], "i,twice,label");
    assert_eq!(lines[100_000], "100000,200000,row number 100000");
    // The schema list names the views (each once) and their columns.
    assert_eq!(
        last["schemaItems"],
        serde_json::json!(["events", "crawled_url", "crawled_urls"]),
        "{last}"
    );
    let schema = last["schema"].as_str().unwrap_or("");
    for want in [
        "events",
        "crawled_url",
        "crawled_urls",
        "time_us",
        "status_code",
    ] {
        assert!(schema.contains(want), "schema list lacks {want}: {schema}");
    }
    up.agent.assert_running();
}
