//! Issue 17 item 7: every page passes axe-core's WCAG 2 A/AA rules with no serious or
//! critical violation, in Chromium against `sluice up` holding a real crawl log.

use crate::util::{Dir, PATIENCE, Up, real_logs, run_browser_script, sql_count, wait_for};

#[test]
fn every_page_passes_axe_without_serious_violations() {
    let dir = Dir::new("a11y");
    let log = real_logs()[0].display().to_string();
    let up = Up::start(&dir, &["--crawl", "a11y", &log]);
    wait_for("the crawl's lines", PATIENCE, || {
        sql_count(&up.url, "a11y", "SELECT count(*) FROM events").filter(|&c| c > 0)
    });
    let pages = ["ui/live", "ui/sql", "ui/history", "ui/crawls?crawl={crawl}"];
    let args: Vec<&str> = [up.url.as_str(), "a11y"].into_iter().chain(pages).collect();
    let reports = run_browser_script("a11y.mjs", &args).reports;
    let checked: Vec<&str> = reports.iter().filter_map(|r| r["page"].as_str()).collect();
    assert_eq!(checked, pages, "{reports:?}");
    let serious: Vec<&serde_json::Value> = reports
        .iter()
        .flat_map(|r| r["violations"].as_array().into_iter().flatten())
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .collect();
    assert!(
        serious.is_empty(),
        "serious accessibility violations: {serious:?}"
    );
}

/// Issue 17 item 7: the live view at 900 px keeps its header to two rows, `/` focuses the
/// text filter, Esc in a filter box clears the filter, and the crawl box suggests the
/// buck's crawls.
#[test]
fn the_live_view_has_its_keys_and_a_compact_header() {
    let dir = Dir::new("live-keys");
    let log = real_logs()[0].display().to_string();
    let up = Up::start(&dir, &["--crawl", "keys", &log]);
    wait_for("the crawl's lines", PATIENCE, || {
        sql_count(&up.url, "keys", "SELECT count(*) FROM events").filter(|&c| c > 0)
    });
    let last = run_browser_script("live_keys.mjs", &[&up.url, "keys"]).last;
    assert_eq!(last["suggested"], serde_json::json!(["keys"]), "{last}");
    assert_eq!(last["focused"], "f-text", "{last}");
    assert_eq!(last["before"]["status"], "4xx", "{last}");
    assert_eq!(last["after"]["status"], "", "{last}");
    assert_eq!(last["after"]["crawl"], "", "{last}");
    let rows = last["headerRows"]["rows"].as_u64().unwrap_or(99);
    assert!(
        rows <= 2,
        "the header wraps into {rows} rows at 900 px: {last}"
    );
}
