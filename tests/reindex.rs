//! `sluice reindex` and `archie build`: a history index built from the archive on this
//! machine, served afterwards by `sluice up` over the same work dir, answers searches
//! exactly as a scan of the source file does.

use std::collections::BTreeSet;
use std::process::{Command, Output};

use chrono::{Duration, Utc};
use serde_json::Value;

use crate::history::search_all;
use crate::util::{ARCHIVE_AT_ONCE, Dir, PATIENCE, Up, append_lines, mixed_crawl_lines, wait_for};

fn reindex(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("reindex")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("running sluice reindex")
}

/// The record printed on stdout by a successful build.
fn record(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn a_reindex_of_an_archived_day_is_served_by_sluice_up_and_answers_like_grep() {
    let dir = Dir::new("reindex");
    let log = dir.join("crawl.log");
    let day = (Utc::now() - Duration::days(3)).date_naive();
    let lines = mixed_crawl_lines(day, 600);
    append_lines(&log, &lines);
    let log_s = log.display().to_string();
    let up_args = [&["--crawl", "ri"][..], &ARCHIVE_AT_ONCE, &[&log_s]].concat();
    let mut up = Up::start(&dir, &up_args);
    // Every event of the day in archived manifests (a late part file included).
    let archived = || -> Option<i64> {
        let mut total = 0;
        for f in std::fs::read_dir(dir.join("up/archive/ri")).ok()?.flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.ends_with(".json") {
                let m: Value =
                    serde_json::from_str(&std::fs::read_to_string(f.path()).ok()?).ok()?;
                total += m["events"].as_i64()?;
            }
        }
        Some(total)
    };
    wait_for("the day's events in the archive", PATIENCE, || {
        archived().filter(|&n| n == 600)
    });
    let up_dir = dir.join("up").display().to_string();
    let from = day.and_hms_opt(0, 0, 0).unwrap().and_utc().to_rfc3339();
    let to = (day + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .to_rfc3339();
    let args = ["--dir", &up_dir, "--from", &from, "--to", &to, "ri"];

    // A running archie holds its work dir: the build is refused, saying why.
    let out = reindex(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("in use"), "{err}");
    assert!(
        up.agent.terminate(std::time::Duration::from_secs(30)),
        "sluice up did not stop cleanly"
    );

    // Built with the buck down: from the archive alone.
    let r = record(&reindex(&args));
    assert_eq!(r["state"], "ready", "{r}");
    assert_eq!(r["events_indexed"].as_u64(), Some(600), "{r}");
    let id = r["id"].as_str().unwrap().to_owned();

    // `sluice up` over the same directory serves it.
    let up = Up::start(&dir, &up_args);
    let status: Value = reqwest::blocking::get(format!("{}/history/{id}", up.url))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(status["state"], "ready", "{status}");
    let grep = |pred: &dyn Fn(&str) -> bool| -> BTreeSet<String> {
        lines.iter().filter(|l| pred(l)).cloned().collect()
    };
    let term = search_all(&up.url, &id, "term", "acid.matkelly.com");
    assert_eq!(term, grep(&|l| l.contains("acid.matkelly.com")));
    let sub = search_all(&up.url, &id, "substring", "/path/12");
    assert!(!sub.is_empty());
    assert_eq!(sub, grep(&|l| l.contains("/path/12")));
    drop(up);

    // `archie build` makes the same index in another work dir (another history machine).
    let work = dir.join("archie2");
    let archie_toml = dir.join("archie2.toml");
    std::fs::write(
        &archie_toml,
        format!("work_dir = {:?}\n", work.display().to_string()),
    )
    .unwrap();
    let porter_toml = dir.join("porter2.toml");
    std::fs::write(
        &porter_toml,
        crate::util::porter_toml(&dir, &dir.join("up/archive"), &dir.join("porter2"), ""),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_archie"))
        .args(["--config", &archie_toml.display().to_string()])
        .args(["--porter-config", &porter_toml.display().to_string()])
        .args(["build", "--from", &from, "--to", &to, "ri"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let r = record(&out);
    assert_eq!(r["events_indexed"].as_u64(), Some(600), "{r}");
    let catalog = std::fs::read_to_string(work.join("catalog.json")).unwrap();
    assert!(catalog.contains(r["id"].as_str().unwrap()), "{catalog}");
}
