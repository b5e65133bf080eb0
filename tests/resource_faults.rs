//! Faults of the process's resources under a running `sluice up`: a descriptor limit far
//! below the number of files it follows.

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;

use crate::util::{Agent, Dir, PATIENCE, appender, sql_count, wait_for};

/// r16: `ulimit -n 256` and 2,000 followed files: the tailer keeps at most half the limit
/// open (idle files wait their turn), the buck and the web port keep working, and every
/// line of every file is stored once.
#[test]
fn two_thousand_files_under_ulimit_256_all_arrive_once() {
    let dir = Dir::new("nofile");
    let files = 2_000;
    let per_file = 3;
    for f in 0..files {
        let mut out = appender(&dir.join(&format!("crawls/many/f{f:04}.log")));
        for i in 0..per_file {
            let now = Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
            writeln!(
                out,
                "{now}   200 {:>10} http://www.example.com/f{f}/{i} L http://www.example.com/ text/html #001 - sha1:X - -",
                1000 + i
            )
            .expect("writing a log");
        }
    }
    let data = dir.join("up");
    let glob = dir.join("crawls/many/*.log").display().to_string();
    let mut cmd = Command::new("sh");
    cmd.args(["-c", r#"ulimit -n 256 && exec "$@""#, "sh"])
        .arg(env!("CARGO_BIN_EXE_sluice"))
        .args(["up", "--dir"])
        .arg(&data)
        .args(["--http", "127.0.0.1:0", "--crawl", "many", &glob]);
    let mut agent = Agent::spawn_command(&dir, "up", cmd);
    let url = wait_for("sluice up to write up.json", PATIENCE, || {
        agent.assert_running();
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(data.join("up.json")).ok()?).ok()?;
        Some(format!("http://{}", v["http"].as_str()?))
    });
    let total = (files * per_file) as i64;
    wait_for("every line of every file stored", PATIENCE * 3, || {
        agent.assert_running();
        (sql_count(&url, "many", "SELECT count(*) FROM crawled_url")? >= total).then_some(())
    });
    assert_eq!(
        sql_count(&url, "many", "SELECT count(*) FROM crawled_url"),
        Some(total)
    );
    assert_eq!(
        sql_count(&url, "many", "SELECT count(DISTINCT url) FROM crawled_url"),
        Some(total)
    );
    let fds = std::fs::read_dir(format!("/proc/{}/fd", agent.pid()))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(fds < 256, "{fds} descriptors open under ulimit -n 256");
    assert!(
        agent.log().contains("more than half the descriptor limit"),
        "the lowered max_open_files is not explained in the log"
    );
    assert!(agent.terminate(Duration::from_secs(10)), "unclean stop");
}

/// The sum of the samples of `name` (no labels) in a Prometheus text page.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// r16: SIGTERM while `sluice up` is busy ingesting a large crawl log: it drains and exits
/// 0 in under 10 s with its offsets saved, and the next start stores the rest with few
/// duplicates (at most the lines of about one checkpoint interval, not the spool).
#[test]
fn sigterm_during_a_busy_ingest_exits_in_under_ten_seconds_and_resends_little() {
    let dir = Dir::new("busy-sigterm");
    let log = dir.join("crawl.log");
    let lines = 150_000;
    {
        let mut out = std::io::BufWriter::new(appender(&log));
        let now = Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
        for i in 0..lines {
            writeln!(
                out,
                "{now}   200 {:>10} http://www.example.com/busy/{i} L http://www.example.com/ text/html #001 - sha1:X - -",
                1000 + i
            )
            .expect("writing the crawl log");
        }
        out.flush().expect("flushing the crawl log");
    }
    let log_s = log.display().to_string();
    let mut up = crate::util::Up::start(&dir, &["--crawl", "busy", &log_s]);
    let count = "SELECT count(*) FROM events";
    let started = std::time::Instant::now();
    let first = wait_for("ingest under way", PATIENCE, || {
        up.agent.assert_running();
        sql_count(&up.url, "busy", count).filter(|&n| n >= 10_000)
    });
    let rate = first as f64 / started.elapsed().as_secs_f64().max(0.001);
    assert!(
        first < lines as i64,
        "the whole log went in before the SIGTERM"
    );
    let stopping = std::time::Instant::now();
    assert!(
        up.agent.terminate(Duration::from_secs(10)),
        "sluice up did not exit 0 within 10 s of SIGTERM; log:\n{}",
        up.agent.log()
    );
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(10), "stop took {took:?}");

    let mut up = crate::util::Up::start(&dir, &["--crawl", "busy", &log_s]);
    wait_for("every line stored after the restart", PATIENCE * 3, || {
        up.agent.assert_running();
        sql_count(&up.url, "busy", count).filter(|&n| n >= lines as i64)
    });
    assert_eq!(sql_count(&up.url, "busy", count), Some(lines as i64));
    let page = reqwest::blocking::get(format!("{}/metrics", up.url))
        .and_then(|r| r.text())
        .expect("/metrics");
    let duplicates = metric(&page, "sluice_buck_duplicates_total").unwrap_or(0.0);
    // One checkpoint interval (fsync_interval_ms, 1 s by default) at the rate seen, with
    // room for a noisy machine.
    let bound = (rate * 3.0).max(5_000.0);
    eprintln!(
        "busy SIGTERM: stopped in {took:?} at {first} of {lines} lines ({rate:.0} lines/s); {duplicates} duplicates after the restart (bound {bound:.0})"
    );
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates after a clean stop (ingest ran at {rate:.0} lines/s)"
    );
    assert!(up.agent.terminate(Duration::from_secs(10)), "unclean stop");
}
