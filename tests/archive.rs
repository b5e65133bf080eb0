//! `sluice up` archives closed segments to its local directory on schedule, and the
//! `porter` binary fetches them back, verified, with every event.

use std::io::Write;
use std::process::Command;

use chrono::{Duration, Utc};
use porter::ArchiveStore;
use serde_json::Value;

use crate::util::{
    ARCHIVE_AT_ONCE, Dir, FreshS3, PATIENCE, Up, appender, porter_toml, segments_field, sql_count,
    wait_for,
};

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
    let listed_days = || segments_field(&up.url, porter_token, "day");
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
        porter_toml(
            &dir,
            &dir.join("up/archive"),
            &dir.join("porter-work"),
            &format!("buck_token = {porter_token:?}\n"),
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

/// `sluice up` holding one closed day of `n` events of crawl `crawl` that a porter with
/// `archive_age_secs = 86400` archives (its own porter never does), for tests of a
/// porter run by hand.
pub(crate) struct ClosedDay {
    pub up: Up,
    pub day: chrono::NaiveDate,
    pub porter_token: String,
}

impl ClosedDay {
    pub fn start(dir: &Dir, crawl: &str, n: i64) -> ClosedDay {
        let log = dir.join("crawl.log");
        let day = (Utc::now() - Duration::days(3)).date_naive();
        let mut f = appender(&log);
        for i in 0..n {
            let t = day.and_hms_opt(9, 0, 0).unwrap().and_utc() + Duration::milliseconds(i * 10);
            let ts = t.format("%Y-%m-%dT%H:%M:%S%.3fZ");
            writeln!(
                f,
                "{ts}   200 {i:>10} http://room.example.com/{i}/{:x} L - text/html #001 - sha1:{:032x} - -",
                i * 7919,
                i * 104_729
            )
            .unwrap();
        }
        drop(f);
        let log_s = log.display().to_string();
        // The embedded porter never finds the day old enough: only the porter run by the
        // test does.
        let up = Up::start(
            dir,
            &[
                "--crawl",
                crawl,
                "--day-close-grace-secs",
                "0",
                "--archive-age-secs",
                "3000000000",
                &log_s,
            ],
        );
        wait_for("the events", PATIENCE, || {
            sql_count(&up.url, crawl, "SELECT count(*) FROM events").filter(|&c| c == n)
        });
        let porter_token = std::fs::read_to_string(dir.join("up/keys/porter.token"))
            .expect("sluice up's porter token")
            .trim()
            .to_owned();
        let closed = ClosedDay {
            up,
            day,
            porter_token,
        };
        wait_for("the day's segment to close", PATIENCE, || {
            closed
                .states()
                .filter(|s| !s.is_empty() && s.iter().all(|s| s == "closed"))
        });
        closed
    }

    /// The states of the buck's segments (`open`, `closed`, `archived`).
    pub fn states(&self) -> Option<Vec<String>> {
        segments_field(&self.up.url, &self.porter_token, "state")
    }

    /// A porter config over this cluster, archiving to `archive` with `work_dir`.
    pub fn porter_config(
        &self,
        dir: &Dir,
        archive: &std::path::Path,
        work: &std::path::Path,
        min_free_bytes: &str,
    ) -> String {
        porter_toml(
            dir,
            archive,
            work,
            &format!(
                "buck_token = {:?}\narchive_age_secs = 86400\nmin_free_bytes = {min_free_bytes}\n",
                self.porter_token
            ),
        )
    }
}

/// Every file under `root` (directories left empty are not litter).
pub(crate) fn files_under(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().display().to_string());
            }
        }
    }
    out
}

/// Issue 16: the porter's work directory below its headroom (`min_free_bytes` larger
/// than any file system) defers the run: nothing fails, nothing is uploaded or left in
/// the work directory, the buck keeps the segment unarchived. With a setting the disk
/// allows, the next run archives every event.
#[test]
fn a_porter_below_its_headroom_defers_without_failing_and_archives_once_allowed() {
    let dir = Dir::new("archive-headroom");
    let n = 200;
    let fx = ClosedDay::start(&dir, "hr", n);
    let (cfg, archive, work) = (
        dir.join("porter.toml"),
        dir.join("porter-archive"),
        dir.join("porter-work"),
    );
    let archive_once = || {
        Command::new(env!("CARGO_BIN_EXE_porter"))
            .args(["--config", &cfg.display().to_string(), "archive", "--once"])
            .output()
            .unwrap()
    };

    // Larger than any file system (TOML integers stop at i64::MAX).
    std::fs::write(
        &cfg,
        fx.porter_config(&dir, &archive, &work, "9223372036854775807"),
    )
    .unwrap();
    let out = archive_once();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a deferred run is not a success: {err}"
    );
    assert!(
        err.contains("deferred 1 segment(s) for disk space (none failed")
            && err.contains("kept free (min_free_bytes / min_free_percent)")
            && err.contains(&work.display().to_string()),
        "the deferral says why and where: {err}"
    );
    assert!(err.contains("0 segment(s) failed"), "{err}");
    assert!(!err.contains("porter: failed"), "{err}");
    assert_eq!(
        files_under(&archive),
        Vec::<String>::new(),
        "nothing uploaded"
    );
    assert_eq!(
        files_under(&work),
        Vec::<String>::new(),
        "no temporary file"
    );
    assert_eq!(fx.states(), Some(vec!["closed".to_owned()]), "not archived");

    // Space is allowed again: the same porter archives the day, every event once.
    std::fs::write(&cfg, fx.porter_config(&dir, &archive, &work, "0")).unwrap();
    let out = archive_once();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "porter archive --once: {err}");
    let manifest = archive.join(format!("hr/{}.sqlite.z.json", fx.day));
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    assert_eq!(m["events"].as_i64(), Some(n), "{m}");
    assert_eq!(
        files_under(&work),
        Vec::<String>::new(),
        "no temporary file"
    );
    wait_for("the buck to list the day archived", PATIENCE, || {
        fx.states().filter(|s| s.iter().all(|s| s == "archived"))
    });
}

/// `sluice up --archive s3://bucket/prefix --s3-path-style` with the AWS environment
/// (`AWS_ENDPOINT_URL`, keys, region) pointing at an S3-compatible server (the test
/// SeaweedFS): a closed day is archived under the prefix, the buck marks it archived,
/// and the object is the segment's.
#[test]
fn sluice_up_archives_to_an_s3_compatible_server_named_in_the_environment() {
    // The store as the porter in `sluice up` sees it: the bucket, under the prefix.
    let s3 = FreshS3::new();
    let (store, rt) = (&s3.store, &s3.rt);

    let dir = Dir::new("up-s3");
    let log = dir.join("crawl.log");
    let day = (Utc::now() - Duration::days(3)).date_naive();
    let mut f = appender(&log);
    for i in 0..50i64 {
        let t = day.and_hms_opt(9, 0, 0).unwrap().and_utc() + Duration::milliseconds(i * 10);
        writeln!(
            f,
            "{}   200 {i:>10} http://s3.example.com/{i} L - text/html #001 - sha1:{:032x} - -",
            t.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            i * 104_729
        )
        .unwrap();
    }
    drop(f);
    let archive = s3.archive_url();
    let log_s = log.display().to_string();
    let env = FreshS3::aws_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let up = Up::start_with_env(
        &dir,
        &[
            &["--crawl", "s3crawl"][..],
            &ARCHIVE_AT_ONCE,
            &["--archive", &archive, "--s3-path-style", &log_s],
        ]
        .concat(),
        &env,
    );
    let key = format!("s3crawl/{day}.sqlite.z");
    let manifest_key = format!("{key}.json");
    wait_for(
        "the day's object and its manifest in the bucket",
        PATIENCE,
        || {
            let objects = rt.block_on(store.list("s3crawl/")).ok()?;
            let has = |k: &str| objects.iter().any(|o| o.key == k && o.size > 0);
            (has(&key) && has(&manifest_key)).then_some(())
        },
    );
    let manifest: Value =
        serde_json::from_slice(&rt.block_on(store.get_bytes(&manifest_key)).unwrap()).unwrap();
    assert_eq!(manifest["events"], 50, "{manifest}");
    drop(up);
}
