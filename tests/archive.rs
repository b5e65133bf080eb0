//! `sluice up` archives closed segments to its local directory on schedule, and the
//! `porter` binary fetches them back, verified, with every event.

use std::io::Write;
use std::process::Command;

use chrono::{Duration, Utc};
use serde_json::Value;

use crate::util::{Dir, PATIENCE, Up, appender, sql_count, wait_for};

#[test]
fn closed_segments_are_archived_on_schedule_pruned_after_retention_and_fetched_back() {
    let dir = Dir::new("archive");
    let log = dir.join("crawl.log");
    // Inside the tailer's 7-day window (the times are kept), and closed days once the
    // grace is 0. The archive age (3 days after the day's end) picks the older day only;
    // the retention (5 minutes) is past for both, but only the archived one may go.
    let old = (Utc::now() - Duration::days(5)).date_naive();
    let day = (Utc::now() - Duration::days(3)).date_naive();
    let mut f = appender(&log);
    let n = 250;
    for d in [old, day] {
        for i in 0..n {
            let t = d.and_hms_opt(10, 0, 0).unwrap().and_utc() + Duration::seconds(i);
            let ts = t.format("%Y-%m-%dT%H:%M:%S%.3fZ");
            writeln!(
                f,
                "{ts}   200 {i:>10} http://arch.example.com/{d}/{i} L - text/html #001 - - - -"
            )
            .unwrap();
        }
    }
    drop(f);
    let log_s = log.display().to_string();
    let up = Up::start(
        &dir,
        &[
            "--crawl",
            "ar",
            "--day-close-grace-secs",
            "0",
            "--archive-age-secs",
            "259200",
            "--archive-interval-secs",
            "1",
            "--retention-secs",
            "300",
            &log_s,
        ],
    );
    wait_for("the events", PATIENCE, || {
        sql_count(&up.url, "ar", "SELECT count(*) FROM events").filter(|&c| c == 2 * n)
    });
    let (young, day) = (day, old);
    // The day closes at once (grace 0), so on a loaded machine some of its events may
    // arrive after it was archived and go to a part file (`.pN`), archived in turn. What
    // counts is that the day's manifests together hold every event once.
    let archive_dir = dir.join("up/archive/ar");
    let day_prefix = format!("{day}.");
    let archived_events = || -> Option<i64> {
        let mut total = 0;
        for f in std::fs::read_dir(&archive_dir).ok()?.flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.starts_with(&day_prefix) && name.ends_with(".json") {
                let m: Value =
                    serde_json::from_str(&std::fs::read_to_string(f.path()).ok()?).ok()?;
                total += m["events"].as_i64()?;
            }
        }
        Some(total)
    };
    wait_for("the day's events in archived manifests", PATIENCE, || {
        archived_events().filter(|&c| c >= n)
    });
    assert_eq!(archived_events(), Some(n), "every event archived once");
    assert!(dir.join(&format!("up/archive/ar/{day}.sqlite.z")).exists());
    // The buck was told, and (past retention, unchanged) pruned it: only tombstones
    // remain. The younger day, never archived, stays whatever its age.
    // The segment API answers only the porter's credential, which `sluice up` keeps
    // under its directory; without it, a receipt that would let the buck prune is
    // refused and counted.
    let porter_token = std::fs::read_to_string(dir.join("up/keys/porter.token"))
        .expect("sluice up's porter token");
    let porter_token = porter_token.trim();
    let refused = reqwest::blocking::Client::new()
        .post(format!("{}/segments/ar/{young}/archived", up.url))
        .json(&serde_json::json!({"ids_sha256": "0".repeat(64), "rows": 1}))
        .send()
        .expect("POST archived");
    assert_eq!(refused.status(), 401);
    assert!(
        crate::util::metrics_line(&up.url, "sluice_buck_porter_refused_total 1"),
        "the refusal is not counted"
    );
    let listed_days = || -> Option<Vec<String>> {
        let segs: Value = reqwest::blocking::Client::new()
            .get(format!("{}/segments", up.url))
            .bearer_auth(porter_token)
            .send()
            .ok()?
            .json()
            .ok()?;
        Some(
            segs.as_array()?
                .iter()
                .filter_map(|s| s["day"].as_str().map(str::to_owned))
                .collect(),
        )
    };
    wait_for("the archived day to be pruned", PATIENCE, || {
        listed_days().filter(|d| d.iter().all(|d| *d == young.to_string()))
    });
    let left = listed_days().unwrap();
    assert!(
        !left.is_empty() && left.iter().all(|d| *d == young.to_string()),
        "only the unarchived day is left: {left:?}"
    );
    assert!(
        dir.join(&format!("up/buck/segments/ar/{day}.sqlite.pruned"))
            .exists()
    );
    assert!(
        !dir.join(&format!("up/buck/segments/ar/{day}.sqlite"))
            .exists()
    );
    assert!(
        !dir.join(&format!("up/archive/ar/{young}.sqlite.z"))
            .exists(),
        "the younger day is not old enough to archive"
    );

    // Fetch it back with the porter binary, into a fresh directory.
    let cfg = dir.join("porter.toml");
    std::fs::write(
        &cfg,
        format!(
            "archive = \"file://{}\"\ncluster_file = {:?}\nwork_dir = {:?}\nbuck_token = {:?}\n",
            dir.join("up/archive").display(),
            dir.join("up/cluster.toml").display().to_string(),
            dir.join("porter-work").display().to_string(),
            porter_token,
        ),
    )
    .unwrap();
    let out_dir = dir.join("fetched");
    let from = day.and_hms_opt(0, 0, 0).unwrap().and_utc().to_rfc3339();
    let to = (day + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .to_rfc3339();
    let fetch = |into: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_porter"))
            .args([
                "--config",
                &cfg.display().to_string(),
                "fetch",
                "ar",
                &from,
                &to,
            ])
            .arg(into)
            .output()
            .unwrap()
    };
    let out = fetch(&out_dir);
    assert!(
        out.status.success(),
        "porter fetch: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let files: Vec<&str> = stdout.lines().collect();
    assert!(!files.is_empty(), "the day's segments: {stdout}");
    let mut ids = Vec::new();
    for f in &files {
        let conn = rusqlite::Connection::open(f).unwrap();
        let mut stmt = conn.prepare("SELECT id FROM events").unwrap();
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
        ids.extend(rows.map(Result::unwrap));
    }
    let count = ids.len() as i64;
    ids.sort();
    ids.dedup();
    assert_eq!((count, ids.len() as i64), (n, n), "fetched: {stdout}");

    // A corrupted object is caught on fetch, naming it.
    let obj = dir.join(&format!("up/archive/ar/{day}.sqlite.z"));
    let mut bytes = std::fs::read(&obj).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&obj, bytes).unwrap();
    let out = fetch(&dir.join("fetched2"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a corrupt object must fail the fetch"
    );
    assert!(
        err.contains(&format!("ar/{day}.sqlite.z")),
        "the error names the object: {err}"
    );
}
