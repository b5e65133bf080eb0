//! The live view in a real browser: two `live-demo` bucks publishing the same event ids,
//! Debian's chromium driven by playwright-core (`web/tests/live_view.mjs`). Checks that
//! lines show once each within a second, the filter (and its URL), pause with "N new",
//! smoothness at 2,000 events/s, and that killing one buck turns its badge red while
//! the other's lines keep coming. Saves `test-artifacts/live-view.png`.
//! Needs `scripts/install-web-deps` and a built app (`cd web && npm run build`).

// A test or bench crate: its helpers may unwrap (clippy.toml allows it only in #[test] fns).
#![allow(clippy::unwrap_used)]

mod util;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use util::Node;

fn demo(id: &str, bucks_file: &std::path::Path) -> (Node, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_live-demo"));
    cmd.args(["--id", id, "--bucks-file"])
        .arg(bucks_file)
        .args(["--max-events-per-sec", "10000"]);
    let mut p = Node::spawn_cmd(id, cmd);
    let hello = p.wait_for(Duration::from_secs(20), "its url", |v| {
        v.get("url").is_some()
    });
    let url = hello["url"].as_str().expect("url is a string").to_owned();
    (p, url)
}

#[test]
fn live_view_in_chromium_two_bucks_dedup_filter_pause_smoothness_and_a_killed_buck() {
    util::require_chromium();
    assert!(
        web::live_view_built(),
        "the live view is not built into this test binary: run scripts/install-web-deps && (cd web && npm ci && npm run build), then cargo test again"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let bucks_file = dir.path().join("bucks.json");
    let (_a, url_a) = demo("buck-a", &bucks_file);
    let (b, url_b) = demo("buck-b", &bucks_file);
    let list =
        json!([{ "id": "buck-a", "http_url": url_a }, { "id": "buck-b", "http_url": url_b }]);
    std::fs::write(&bucks_file, list.to_string()).expect("write bucks file");

    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("create test-artifacts/");
    let shot = artifacts.join("live-view.png");
    let pid_b = b.pid().to_string();
    let mut page = Node::spawn(
        "live_view",
        "tests/live_view.mjs",
        &[&url_a, &url_b, &pid_b, shot.to_str().expect("utf-8 path")],
    );
    let end = page.wait_for(Duration::from_secs(180), "done or fail", |v| {
        v.get("done").is_some() || v.get("fail").is_some()
    });
    let steps: Vec<String> = page.seen.iter().map(|v| v.to_string()).collect();
    assert!(
        end.get("fail").is_none(),
        "browser test failed: {}; screenshot in {}; it said:\n  {}",
        end["fail"],
        shot.display(),
        steps.join("\n  ")
    );
    // The figures, for the record (and the report).
    eprintln!("live view figures: {end}");
    assert!(
        end["visible_ms"].as_u64().is_some_and(|ms| ms < 1000),
        "{end}"
    );
    assert!(
        end["frame_p50_ms"].as_f64().is_some_and(|ms| ms < 34.0),
        "median frame at 2,000 events/s: {end}"
    );
    assert!(shot.exists());
    drop(b);
}
