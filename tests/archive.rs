//! `sluice up` archives closed segments to its local directory on schedule, and the
//! `porter` binary fetches them back, verified, with every event.

use std::io::Write;
use std::process::Command;

use chrono::{Duration, Utc};
use serde_json::Value;

use crate::util::{Dir, PATIENCE, Up, appender, sql_count, wait_for};

#[test]
fn closed_segments_are_archived_on_schedule_and_fetched_back() {
    let dir = Dir::new("archive");
    let log = dir.join("crawl.log");
    // Three days ago: inside the tailer's 7-day window (the time is kept), and a closed
    // day once the grace is 0.
    let day = (Utc::now() - Duration::days(3)).date_naive();
    let mut f = appender(&log);
    let n = 250;
    for i in 0..n {
        let t = day.and_hms_opt(10, 0, 0).unwrap().and_utc() + Duration::seconds(i);
        let ts = t.format("%Y-%m-%dT%H:%M:%S%.3fZ");
        writeln!(
            f,
            "{ts}   200 {i:>10} http://arch.example.com/{i} L - text/html #001 - - - -"
        )
        .unwrap();
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
            "0",
            "--archive-interval-secs",
            "1",
            &log_s,
        ],
    );
    wait_for("the events", PATIENCE, || {
        sql_count(&up.url, "ar", "SELECT count(*) FROM events").filter(|&c| c == n)
    });
    let manifest_path = dir.join(&format!("up/archive/ar/{day}.sqlite.z.json"));
    let manifest: Value = wait_for("the archived manifest", PATIENCE, || {
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).ok()?).ok()
    });
    assert_eq!(manifest["events"].as_i64(), Some(n), "manifest: {manifest}");
    assert!(dir.join(&format!("up/archive/ar/{day}.sqlite.z")).exists());
    // The buck was told: its segment list says archived.
    let segs: Value = wait_for("the buck to record the archive", PATIENCE, || {
        let v: Value = reqwest::blocking::get(format!("{}/segments", up.url))
            .ok()?
            .json()
            .ok()?;
        v.as_array()?
            .iter()
            .any(|s| s["crawl"] == "ar" && s["state"] == "archived")
            .then_some(v)
    });
    assert!(segs.is_array());

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
