//! The live stream through the real pipeline: a file tailed by `sluice up`, events
//! committed by its buck, filtered by the broker, received by the official npm
//! `socket.io-client` (Node) and by the live view in headless Chromium.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use chrono::Utc;
use contracts::keys::KeyPair;
use serde_json::Value;

use crate::util::{
    Dir, PATIENCE, Up, appender, require_web_deps, run_browser_script, sql, sql_count, start_buck,
    wait_for, web_dir,
};

/// A Node socket.io client (web/tests/live_client.mjs) whose JSON lines arrive on a channel.
struct NodeClient {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Value>,
}

impl NodeClient {
    fn start(url: &str, opts: Value) -> NodeClient {
        let mut child = Command::new("node")
            .arg(web_dir().join("tests/live_client.mjs"))
            .arg(url)
            .arg(opts.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting node (is Node.js installed?)");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        let stdin = child.stdin.take();
        NodeClient {
            child,
            stdin,
            lines,
        }
    }

    /// The next line with `key`, skipping others.
    fn wait_line(&self, key: &str, timeout: Duration) -> Value {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) if v.get(key).is_some() => return v,
                Ok(v) if v.get("connect_error").is_some() => panic!("node client: {v}"),
                Ok(_) => continue,
                Err(_) => panic!("node client: no {key:?} line within {timeout:?}"),
            }
        }
    }

    fn expect(&mut self, n: usize) -> Value {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "expect {n}").expect("writing to node");
        self.wait_line("done", PATIENCE)
    }

    #[allow(unsafe_code)]
    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }
}

impl Drop for NodeClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn crawl_line(i: usize, status: i32) -> String {
    crawl_line_padded(i, status, 0)
}

/// A crawl.log line whose URL carries `pad` extra bytes of query string.
fn crawl_line_padded(i: usize, status: i32, pad: usize) -> String {
    let now = Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
    let q = "q".repeat(pad);
    format!(
        "{now} {status:>5} {:>10} http://live.example.com/{i}?{q} L - text/html #001 - - - -\n",
        100 + i
    )
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_node_client_receives_exactly_the_matching_lines() {
    require_web_deps(false);
    let dir = Dir::new("live-node");
    let log = dir.join("crawl.log");
    appender(&log);
    let log_s = log.display().to_string();
    let up = Up::start(&dir, &["--crawl", "lv", &log_s]);
    let mut client = NodeClient::start(
        &up.url,
        serde_json::json!({"subscribe": {"crawl": "lv", "status": "404", "backfill": 0}}),
    );
    client.wait_line("ready", PATIENCE);
    let mut f = appender(&log);
    for i in 0..90 {
        f.write_all(crawl_line(i, [200, 404, 301][i % 3]).as_bytes())
            .unwrap();
    }
    drop(f);
    wait_for("90 events committed", PATIENCE, || {
        sql_count(&up.url, "lv", "SELECT count(*) FROM events").filter(|&n| n == 90)
    });
    let done = client.expect(30);
    let mut got = ids(&done["live"]);
    got.sort();
    let mut want: Vec<String> = sql(
        &up.url,
        "lv",
        "SELECT id FROM crawled_urls WHERE status_code = 404 ORDER BY id",
    )
    .unwrap()
    .iter()
    .map(|r| r["id"].as_str().unwrap().to_owned())
    .collect();
    want.sort();
    assert_eq!(got, want, "the client received exactly the 404 lines");
    assert_eq!(done["dropped"], serde_json::json!({}), "nothing dropped");
}

#[test]
fn a_stalled_client_is_told_what_it_missed_while_a_fast_one_misses_nothing() {
    require_web_deps(false);
    let dir = Dir::new("live-slow");
    let log = dir.join("crawl.log");
    appender(&log);
    let log_s = log.display().to_string();
    let up = Up::start(&dir, &["--crawl", "lv", &log_s]);
    let sub = serde_json::json!({"subscribe": {"crawl": "lv", "backfill": 0}});
    let mut fast = NodeClient::start(&up.url, sub.clone());
    let mut slow = NodeClient::start(&up.url, sub);
    fast.wait_line("ready", PATIENCE);
    slow.wait_line("ready", PATIENCE);
    slow.signal(libc::SIGSTOP);
    // 16,000 lines of 1 KiB at about 1,300 a second: under the per-client rate cap
    // (2,000/s), and more than a stopped client can have parked in front of it: the
    // broker's queue (1,024 events), socketioxide's buffer (16 batches of up to 256) and
    // the loopback socket buffers (a few MiB).
    let total = 16_000;
    for batch in 0..80 {
        let mut f = appender(&log);
        for i in 0..200 {
            f.write_all(crawl_line_padded(batch * 200 + i, 200, 1000).as_bytes())
                .unwrap();
        }
        drop(f);
        std::thread::sleep(Duration::from_millis(150));
    }
    wait_for("every line committed", PATIENCE, || {
        sql_count(&up.url, "lv", "SELECT count(*) FROM events").filter(|&n| n == total as i64)
    });
    let f = fast.expect(total);
    assert_eq!(
        ids(&f["live"]).len(),
        total,
        "the fast client got every event: {}",
        f["dropped"]
    );
    assert_eq!(f["dropped"], serde_json::json!({}));
    slow.signal(libc::SIGCONT);
    let s = slow.expect(total);
    let dropped: u64 = s["dropped"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(Value::as_u64)
        .sum();
    let live = ids(&s["live"]).len() as u64;
    assert!(dropped > 0, "the stalled client was told it missed events");
    assert_eq!(
        live + dropped,
        total as u64,
        "received plus reported missed accounts for every event"
    );
}

/// A second buck, "other", beside the one `sluice up` will start in `dir/up`, and the
/// `--cluster-extra` file that makes it a second home of the crawl. `more_config` is
/// appended to its config.
fn second_home(dir: &Dir, more_config: &str) -> (crate::util::BuckProc, PathBuf) {
    let up_dir = dir.join("up");
    let tailer_key = KeyPair::generate();
    tailer_key.save(&up_dir.join("keys"), "tailer").unwrap();
    let other_key = KeyPair::generate();
    other_key.save(&dir.join("keys"), "other").unwrap();
    let cluster = up_dir.join("cluster.toml");
    // Valid until `sluice up` writes the real one (the buck reads it at start).
    std::fs::write(&cluster, "[[buck]]\nid = \"local\"\ningest = \"127.0.0.1:1\"\nhttp_url = \"http://127.0.0.1:1\"\nsince = \"1970-01-01\"\n").unwrap();
    let cfg = format!(
        "id = \"other\"\ndata_dir = {:?}\ncluster_file = {:?}\nkey_file = {:?}\nallowed_tailers = [{:?}]\n{more_config}",
        dir.join("other").display().to_string(),
        cluster.display().to_string(),
        dir.join("keys/other.key").display().to_string(),
        tailer_key.public_text()
    );
    std::fs::write(dir.join("other.toml"), cfg).unwrap();
    let other = start_buck(dir, "other", 0);
    let extra = dir.join("extra.toml");
    std::fs::write(
        &extra,
        format!(
            "[[buck]]\nid = \"other\"\ningest = \"{}\"\nhttp_url = \"{}\"\npublic_key = \"{}\"\nsince = \"1970-01-01\"\n",
            other.ingest,
            other.http,
            other_key.public_text()
        ),
    )
    .unwrap();
    (other, extra)
}

/// `sluice up` following `dir/crawl.log` (made empty) as `crawl`, whose second home is
/// the buck "other" ([`second_home`], with `more_config`); returns both and the log's path.
fn up_with_two_homes(
    dir: &Dir,
    crawl: &str,
    more_config: &str,
) -> (Up, crate::util::BuckProc, String) {
    let (other, extra) = second_home(dir, more_config);
    let log = dir.join("crawl.log");
    appender(&log);
    let (log_s, extra_s) = (log.display().to_string(), extra.display().to_string());
    let up = Up::start(
        dir,
        &["--crawl", crawl, "--cluster-extra", &extra_s, &log_s],
    );
    (up, other, log_s)
}

/// Where browser tests leave their screenshots.
fn artifacts_dir() -> PathBuf {
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    artifacts
}

#[test]
fn the_live_view_shows_appended_lines_from_two_bucks_and_survives_one_dying() {
    require_web_deps(true);
    let dir = Dir::new("live-browser");
    let (up, other, log_s) = up_with_two_homes(&dir, "lv", "");
    let shot = artifacts_dir().join("live-pipeline.png");
    let last = run_browser_script(
        "pipeline_live_view.mjs",
        &[
            &up.url,
            &log_s,
            "lv",
            &other.agent.pid().to_string(),
            &shot.display().to_string(),
        ],
    )
    .last;
    assert!(last["write_to_visible_ms"].as_u64().unwrap() <= 1000);
    assert!(shot.exists(), "screenshot saved");
}

/// Kills the process whose pid is in a file, when dropped: the buck the browser test
/// restarts is not this process's child.
struct KillPidFile(PathBuf);

impl Drop for KillPidFile {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        if let Some(pid) = std::fs::read_to_string(&self.0)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// Prints a log file when the test fails, whichever check fails: an agent the test
/// started by hand leaves its reasons there.
struct ShowLogOnFailure(&'static str, PathBuf);

impl Drop for ShowLogOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- {} ----\n{}",
                self.0,
                std::fs::read_to_string(&self.1).unwrap_or_default()
            );
        }
    }
}

/// Issue 17 items 1 and 3, in Chromium against `sluice up` and a second buck, with real
/// Heritrix crawl.log lines: the columns of a known line, a `site` filter showing exactly
/// that website's lines, click-to-filter, a row expanded to its whole line with the match
/// highlighted, the banner and gap marker when a buck dies, and after its restart every
/// line written during the outage arriving from it (see `web/tests/live_columns.mjs`).
#[test]
fn the_live_view_shows_crawl_log_columns_and_catches_up_after_a_buck_restart() {
    require_web_deps(true);
    let dir = Dir::new("live-columns");
    let (up, other, log_s) = up_with_two_homes(&dir, "lc", "");
    let artifacts = artifacts_dir();
    // Real Heritrix output shipped in the repository (samples/heritrix/SOURCES.md).
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/heritrix");
    let pid_file = dir.join("other-restarted.pid");
    let _restarted = KillPidFile(pid_file.clone());
    let strip = |a: &str| a.trim_start_matches("http://").to_owned();
    let restarted_log = dir.join("other-restarted.log");
    let _show = ShowLogOnFailure("restarted buck other", restarted_log.clone());
    let last = run_browser_script(
        "live_columns.mjs",
        &[
            &up.url,
            &log_s,
            "lc",
            &real.join("crawl-h3.3.0.log").display().to_string(),
            &real.join("crawl.log").display().to_string(),
            &other.agent.pid().to_string(),
            &artifacts.display().to_string(),
            env!("CARGO_BIN_EXE_buck"),
            &dir.join("other.toml").display().to_string(),
            &other.ingest,
            &strip(&other.http),
            &pid_file.display().to_string(),
            &restarted_log.display().to_string(),
        ],
    )
    .last;
    assert_eq!(last["outage_lines_from_restarted_buck"], 47);
    assert!(artifacts.join("live-columns-site.png").exists());
}

/// A buck with an API token refuses the live view without it, and the page says so and
/// takes it: the live view served by that buck (beside `sluice up`'s open one, both homes
/// of the crawl) shows the open buck's lines, the refusing buck red with a banner that
/// points at the token box; a wrong token is refused again; the right one brings that
/// buck's copy of every line, the crawl list (its `/crawls` needs the token), and is kept
/// in the browser, never in the URL (see `web/tests/live_token.mjs`).
#[test]
fn the_live_view_asks_for_the_token_of_a_buck_that_refuses_it() {
    require_web_deps(true);
    const TOKEN: &str = "live-view-token-7f3a9c2e41b6d805";
    let dir = Dir::new("live-token");
    let (up, other, log_s) = up_with_two_homes(&dir, "lt", &format!("api_token = {TOKEN:?}\n"));
    let lines = 40;
    crate::util::write_log(Path::new(&log_s), lines);
    wait_for("the lines stored by sluice up's buck", PATIENCE, || {
        (sql_count(&up.url, "lt", "SELECT count(*) FROM events")? == lines as i64).then_some(())
    });
    let shot = artifacts_dir().join("live-token.png");
    let last = run_browser_script(
        "live_token.mjs",
        &[
            &other.http,
            "lt",
            TOKEN,
            &lines.to_string(),
            &shot.display().to_string(),
        ],
    )
    .last;
    assert_eq!(last["lines_from_token_buck"], lines);
    assert_eq!(last["lines_before_token"], lines);
}
