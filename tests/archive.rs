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
    let manifest_path = dir.join(&format!("up/archive/ar/{day}.sqlite.z.json"));
    let manifest: Value = wait_for("the archived manifest", PATIENCE, || {
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).ok()?).ok()
    });
    assert_eq!(manifest["events"].as_i64(), Some(n), "manifest: {manifest}");
    assert!(dir.join(&format!("up/archive/ar/{day}.sqlite.z")).exists());
    // The buck was told, and (past retention, unchanged) pruned it: only a tombstone
    // remains. The younger day, never archived, stays whatever its age.
    let tomb = dir.join(&format!("up/buck/segments/ar/{day}.sqlite.pruned"));
    wait_for("the archived segment to be pruned", PATIENCE, || {
        tomb.exists().then_some(())
    });
    assert!(
        !dir.join(&format!("up/buck/segments/ar/{day}.sqlite"))
            .exists()
    );
    let segs: Value = reqwest::blocking::get(format!("{}/segments", up.url))
        .unwrap()
        .json()
        .unwrap();
    let days: Vec<&str> = segs
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["day"].as_str())
        .collect();
    assert_eq!(
        days,
        vec![young.to_string().as_str()],
        "only the unarchived day is left: {segs}"
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
            "archive = \"file://{}\"\ncluster_file = {:?}\nwork_dir = {:?}\n",
            dir.join("up/archive").display(),
            dir.join("up/cluster.toml").display().to_string(),
            dir.join("porter-work").display().to_string()
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
    let out = Command::new(env!("CARGO_BIN_EXE_porter"))
        .args([
            "--config",
            &cfg.display().to_string(),
            "fetch",
            "ar",
            &from,
            &to,
            &out_dir.display().to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "porter fetch: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let files: Vec<&str> = stdout.lines().collect();
    assert_eq!(files.len(), 1, "one segment: {stdout}");
    let conn = rusqlite::Connection::open(files[0]).unwrap();
    let (count, distinct): (i64, i64) = conn
        .query_row("SELECT count(*), count(DISTINCT id) FROM events", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((count, distinct), (n, n));

    // A corrupted object is caught on fetch, naming it.
    let obj = dir.join(&format!("up/archive/ar/{day}.sqlite.z"));
    let mut bytes = std::fs::read(&obj).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&obj, bytes).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_porter"))
        .args([
            "--config",
            &cfg.display().to_string(),
            "fetch",
            "ar",
            &from,
            &to,
            &dir.join("fetched2").display().to_string(),
        ])
        .output()
        .unwrap();
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
