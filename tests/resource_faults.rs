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
