//! r15.1: the monitoring feeds through `sluice up`: `GET /subscribe` to a fast reqwest
//! client, a fast `curl -N` and a `curl` stopped with SIGSTOP; Graphite to a plaintext
//! listener in the test; `sluice check` reaching each of its exit codes.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use chrono::{Duration as Days, Utc};
use serde_json::Value;

use crate::util::{Agent, Dir, PATIENCE, Up, appender, sql_count, wait_for};

/// A crawl.log line with a unique URL on one of seven hosts, `pad` bytes of query string,
/// dated `ago` before now.
fn line(i: usize, status: i32, pad: usize, ago: Days) -> String {
    let t = (Utc::now() - ago).format("%Y-%m-%dT%H:%M:%S%.3fZ");
    format!(
        "{t} {status:>5} {:>10} http://www{}.feeds.example/{i}?{} L - text/html #001 - - - -",
        100 + i,
        i % 7,
        "q".repeat(pad)
    )
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut f = appender(path);
    let mut text = String::new();
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    f.write_all(text.as_bytes()).expect("writing the log");
}

/// The non-empty lines of an NDJSON file, parsed.
fn records(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // Only complete lines: the last one may be half written.
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    complete
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:.200}")))
        .collect()
}

fn gauge(url: &str, name: &str) -> Option<f64> {
    let text = reqwest::blocking::get(format!("{url}/metrics"))
        .ok()?
        .text()
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[allow(unsafe_code)]
fn signal(agent: &Agent, sig: i32) {
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    unsafe {
        libc::kill(agent.pid() as i32, sig);
    }
}

fn curl(dir: &Dir, name: &str, url: &str) -> Agent {
    assert!(
        Command::new("curl").arg("--version").output().is_ok(),
        "this test runs the real curl: install it (scripts/install-test-deps does)"
    );
    let out = dir.join(&format!("{name}.ndjson")).display().to_string();
    let mut cmd = Command::new("curl");
    cmd.args(["-sSN", "-o", &out, url]);
    Agent::spawn_command(dir, name, cmd)
}

/// A fast client (reqwest) and a fast `curl -N` each get exactly the matching lines, in
/// order, appended to a file; a `curl` stopped with SIGSTOP gets `dropped` records for
/// what its queue could not hold, and ingest goes on: every line is SQL-visible while it
/// is stopped, and after SIGCONT its events plus its dropped counts make every line.
#[test]
fn subscribers_fast_get_exactly_the_matching_lines_and_a_stalled_curl_gets_dropped_records() {
    let dir = Dir::new("feeds-subscribe");
    let logs = dir.join("logs");
    for crawl in ["web", "other"] {
        appender(&logs.join(crawl).join("crawl.log"));
    }
    let pattern = format!("{}/{{crawl}}/crawl.log", logs.display());
    let mut up = Up::start(&dir, &[&pattern]);
    let filter = format!("{}/subscribe?crawl=web&status=4xx", up.url);

    let fast_file = dir.join("fast.ndjson");
    {
        let mut resp = reqwest::blocking::Client::builder()
            .timeout(None)
            .build()
            .unwrap()
            .get(&filter)
            .send()
            .expect("GET /subscribe");
        assert_eq!(resp.status(), 200);
        let mut out = appender(&fast_file);
        // Ends when `sluice up` goes at the end of the test.
        std::thread::spawn(move || {
            let _ = resp.copy_to(&mut out);
        });
    }
    let fast_curl = curl(&dir, "fast-curl", &filter);
    let stalled = curl(
        &dir,
        "stalled-curl",
        &format!("{}/subscribe?crawl=web", up.url),
    );
    wait_for("three subscribers", PATIENCE, || {
        up.agent.assert_running();
        (gauge(&up.url, "sluice_buck_subscribers")? == 3.0).then_some(())
    });
    signal(&stalled, libc::SIGSTOP);

    // 30,000 lines of ~800 bytes: far more than the stopped client's queue (4,096
    // records) and socket buffers hold. Written 2,000 at a time, each batch stored before
    // the next, so a commit never outruns the bus (4,096) of the fast subscribers.
    let statuses = [200, 404, 301, 410, -5003, 500];
    let total = 30_000;
    let all: Vec<String> = (0..total)
        .map(|i| line(i, statuses[i % statuses.len()], 600, Days::zero()))
        .collect();
    for (n, chunk) in all.chunks(2_000).enumerate() {
        write_lines(&logs.join("web").join("crawl.log"), chunk);
        write_lines(
            &logs.join("other").join("crawl.log"),
            &[line(total + n, 404, 10, Days::zero())],
        );
        let stored = ((n + 1) * 2_000).min(total) as i64;
        wait_for("the batch stored", PATIENCE, || {
            up.agent.assert_running();
            sql_count(&up.url, "web", "SELECT count(*) FROM events").filter(|&c| c == stored)
        });
    }
    let dropped_while_stopped = gauge(
        &up.url,
        "sluice_buck_subscribe_dropped_total{reason=\"queue\"}",
    )
    .unwrap_or(0.0);
    assert!(
        dropped_while_stopped > 0.0,
        "the stopped client lost nothing: it should have"
    );

    let expected: Vec<&String> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| matches!(statuses[i % statuses.len()], 404 | 410))
        .map(|(_, l)| l)
        .collect();
    for file in [fast_file.clone(), dir.join("fast-curl.ndjson")] {
        let got = wait_for("the fast client's lines", PATIENCE, || {
            let r = records(&file);
            (r.len() >= expected.len()).then_some(r)
        });
        let lines: Vec<&str> = got
            .iter()
            .map(|r| {
                assert!(r.get("id").is_some(), "not an event: {r}");
                assert_eq!(r["crawl"], "web");
                r["line"].as_str().expect("line")
            })
            .collect();
        assert_eq!(lines.len(), expected.len(), "{}", file.display());
        assert!(
            lines.iter().zip(&expected).all(|(a, b)| a == b),
            "{}: not exactly the matching lines in order",
            file.display()
        );
    }
    drop(fast_curl);

    signal(&stalled, libc::SIGCONT);
    let stalled_file = dir.join("stalled-curl.ndjson");
    let (events, dropped) = wait_for("the stalled client's records", PATIENCE, || {
        let r = records(&stalled_file);
        let events: Vec<&Value> = r.iter().filter(|v| v.get("id").is_some()).collect();
        let dropped: u64 = r.iter().filter_map(|v| v["dropped"].as_u64()).sum();
        (events.len() as u64 + dropped == total as u64).then(|| {
            (
                events
                    .iter()
                    .map(|e| e["line"].as_str().unwrap().to_owned())
                    .collect::<Vec<_>>(),
                dropped,
            )
        })
    });
    eprintln!(
        "stalled client: {} events, {dropped} dropped (in queue records), {dropped_while_stopped} counted while stopped",
        events.len()
    );
    assert!(dropped > 0);
    let unique: HashSet<&String> = events.iter().collect();
    assert_eq!(unique.len(), events.len(), "an event twice");
    let web: HashSet<&String> = all.iter().collect();
    assert!(events.iter().all(|l| web.contains(l)));
    assert_eq!(
        sql_count(&up.url, "web", "SELECT count(*) FROM events"),
        Some(total as i64)
    );
    up.agent.assert_running();
}

/// Lines a Graphite plaintext listener on port 0 receives, kept in order.
fn graphite_listener() -> (String, Arc<Mutex<Vec<String>>>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binding the listener");
    let addr = l.local_addr().unwrap().to_string();
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    std::thread::spawn(move || {
        for sock in l.incoming() {
            let Ok(sock) = sock else { return };
            let sink = sink.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(sock).lines() {
                    let Ok(l) = l else { return };
                    sink.lock().unwrap().push(l);
                }
            });
        }
    });
    (addr, got)
}

fn sums(lines: &[String]) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for l in lines {
        let parts: Vec<&str> = l.split(' ').collect();
        assert_eq!(parts.len(), 3, "not `path value timestamp`: {l}");
        let ts: i64 = parts[2].parse().expect("a timestamp");
        assert!((ts - Utc::now().timestamp()).abs() < 600, "{l}");
        *out.entry(parts[0].to_owned()).or_default() += parts[1].parse::<f64>().expect("value");
    }
    out
}

/// `sluice up --graphite ADDR`: the listener's sums per crawl equal what SQL counts in
/// the segments: lines per status class (negative codes `failed`, plain text `other`),
/// log bytes, fetched bytes; distinct hosts per interval are at most the seven written.
#[test]
fn graphite_listener_receives_what_sluice_up_stored() {
    let dir = Dir::new("feeds-graphite");
    let (addr, got) = graphite_listener();
    let logs = dir.join("logs");
    for crawl in ["web", "notes"] {
        appender(&logs.join(crawl).join("crawl.log"));
    }
    let pattern = format!("{}/{{crawl}}/crawl.log", logs.display());
    let mut up = Up::start(
        &dir,
        &[
            "--graphite",
            &addr,
            "--graphite-prefix",
            "t",
            "--graphite-interval-secs",
            "1",
            &pattern,
        ],
    );
    let statuses = [200, 404, 301, -5003, 500, 200, 204];
    let n = 3_000;
    let web: Vec<String> = (0..n)
        .map(|i| line(i, statuses[i % statuses.len()], 0, Days::zero()))
        .collect();
    write_lines(&logs.join("web").join("crawl.log"), &web);
    let notes: Vec<String> = (0..50)
        .map(|i| format!("a note without a time {i}"))
        .collect();
    write_lines(&logs.join("notes").join("crawl.log"), &notes);
    wait_for("every line stored", PATIENCE, || {
        up.agent.assert_running();
        let w = sql_count(&up.url, "web", "SELECT count(*) FROM events")?;
        let p = sql_count(&up.url, "notes", "SELECT count(*) FROM events")?;
        (w == n as i64 && p == 50).then_some(())
    });
    let q = |crawl: &str, sql: &str| sql_count(&up.url, crawl, sql).expect("a count") as f64;
    let class = |lo: i64, hi: i64| {
        q(
            "web",
            &format!("SELECT count(*) FROM crawled_url WHERE status_code BETWEEN {lo} AND {hi}"),
        )
    };
    let p = "t.local.crawls";
    let want: Vec<(String, f64)> = vec![
        (format!("{p}.web.lines.2xx"), class(200, 299)),
        (format!("{p}.web.lines.3xx"), class(300, 399)),
        (format!("{p}.web.lines.4xx"), class(400, 499)),
        (format!("{p}.web.lines.5xx"), class(500, 599)),
        (format!("{p}.web.lines.failed"), class(-99_999, -1)),
        (
            format!("{p}.web.log_bytes"),
            q("web", "SELECT sum(original_len) FROM events"),
        ),
        (
            format!("{p}.web.fetched_bytes"),
            q("web", "SELECT sum(size) FROM crawled_url"),
        ),
        (format!("{p}.notes.lines.other"), 50.0),
        (
            format!("{p}.notes.log_bytes"),
            q("notes", "SELECT sum(original_len) FROM events"),
        ),
    ];
    let written_2xx = (0..n)
        .filter(|i| (200..300).contains(&statuses[i % statuses.len()]))
        .count();
    assert_eq!(
        want[0].1, written_2xx as f64,
        "the SQL side is what was written"
    );
    let received = wait_for("the listener's sums to equal SQL's", PATIENCE, || {
        up.agent.assert_running();
        let s = sums(&got.lock().unwrap());
        want.iter().all(|(k, v)| s.get(k) == Some(v)).then_some(s)
    });
    assert!(!received.contains_key(&format!("{p}.web.lines.other")));
    assert!(!received.contains_key(&format!("{p}.notes.lines.2xx")));
    let hosts: Vec<f64> = got
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with(&format!("{p}.web.hosts ")))
        .filter_map(|l| l.split(' ').nth(1)?.parse().ok())
        .collect();
    assert!(
        !hosts.is_empty() && hosts.iter().all(|&h| (1.0..=7.0).contains(&h)),
        "{hosts:?}"
    );
    assert!(received.contains_key("t.local.buck.inserted"));
    assert_eq!(received["t.local.buck.inserted"], (n + 50) as f64);
}

/// Runs `sluice check ARGS`; returns the exit code and the one line it printed.
fn check(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("check")
        .args(args)
        .env_remove("SLUICE_API_TOKEN")
        .output()
        .expect("running sluice check");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "one status line: {stdout:?} / {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.code().expect("an exit code"),
        lines[0].to_owned(),
    )
}

fn expect(args: &[&str], code: i32, prefix: &str) -> String {
    let (got, line) = check(args);
    assert_eq!(got, code, "sluice check {args:?}: {line}");
    assert!(line.starts_with(prefix), "sluice check {args:?}: {line}");
    line
}

/// `sluice check` against `sluice up`: every check, each exit code reached for real:
/// OK, WARNING and CRITICAL from silence (lines dated now and three days ago), spool
/// and archive thresholds; UNKNOWN for bad arguments, an unreachable metrics address
/// and a refused token; CRITICAL for a buck that is down.
#[test]
fn sluice_check_reaches_every_exit_code_against_sluice_up() {
    let dir = Dir::new("feeds-check");
    let logs = dir.join("logs");
    for crawl in ["fresh", "old"] {
        appender(&logs.join(crawl).join("crawl.log"));
    }
    let pattern = format!("{}/{{crawl}}/crawl.log", logs.display());
    let mut up = Up::start(
        &dir,
        &[
            "--day-close-grace-secs",
            "1",
            "--archive-age-secs",
            "864000",
            &pattern,
        ],
    );
    let fresh: Vec<String> = (0..20).map(|i| line(i, 200, 0, Days::zero())).collect();
    let old: Vec<String> = (0..20).map(|i| line(i, 200, 0, Days::days(3))).collect();
    write_lines(&logs.join("fresh").join("crawl.log"), &fresh);
    write_lines(&logs.join("old").join("crawl.log"), &old);
    let porter_token = std::fs::read_to_string(dir.join("up/keys/porter.token"))
        .expect("sluice up's porter token");
    let porter_token = porter_token.trim();
    wait_for(
        "both crawls stored and the old day closed",
        PATIENCE,
        || {
            up.agent.assert_running();
            let f = sql_count(&up.url, "fresh", "SELECT count(*) FROM events")?;
            let o = sql_count(&up.url, "old", "SELECT count(*) FROM events")?;
            let segs: Value = reqwest::blocking::Client::new()
                .get(format!("{}/segments", up.url))
                .bearer_auth(porter_token)
                .send()
                .ok()?
                .json()
                .ok()?;
            let closed = segs
                .as_array()?
                .iter()
                .any(|s| s["crawl"] == "old" && s["state"] == "closed");
            (f == 20 && o == 20 && closed).then_some(())
        },
    );
    let api = up.url.as_str();
    let line = expect(&["--api", api, "buck"], 0, "SLUICE BUCK OK - ");
    assert!(line.contains("| time="), "{line}");

    let line = expect(
        &[
            "--api",
            api,
            "silence",
            "--crawl",
            "fresh",
            "--max-silence-secs",
            "3600",
        ],
        0,
        "SLUICE SILENCE OK - crawl fresh: last line ",
    );
    assert!(line.contains("| silence="), "{line}");
    expect(
        &[
            "--api",
            api,
            "silence",
            "--crawl",
            "old",
            "--max-silence-secs",
            "3600",
        ],
        2,
        "SLUICE SILENCE CRITICAL - crawl old: ",
    );
    expect(
        &[
            "--api",
            api,
            "silence",
            "--crawl",
            "old",
            "--warning",
            "3600",
            "--max-silence-secs",
            "864000",
        ],
        1,
        "SLUICE SILENCE WARNING - ",
    );

    wait_for("bytes in the spool", PATIENCE, || {
        (gauge(api, "sluice_tailer_spool_bytes")? > 0.0).then_some(())
    });
    let line = expect(
        &[
            "--api",
            api,
            "spool",
            "--warning",
            "99",
            "--critical",
            "100",
        ],
        0,
        "SLUICE SPOOL OK - spool ",
    );
    assert!(
        line.contains("| spool=") && line.contains("%;99;100;0;100"),
        "{line}"
    );
    expect(
        &["--api", api, "spool", "--warning", "0", "--critical", "100"],
        1,
        "SLUICE SPOOL WARNING - ",
    );
    expect(
        &["--api", api, "spool", "--warning", "0", "--critical", "0"],
        2,
        "SLUICE SPOOL CRITICAL - ",
    );

    let line = expect(
        &[
            "--api",
            api,
            "--token",
            porter_token,
            "archive",
            "--max-age-hours",
            "24",
        ],
        2,
        "SLUICE ARCHIVE CRITICAL - 1 segments not archived after 24 h, oldest old/",
    );
    assert!(line.contains("| oldest_unarchived="), "{line}");
    expect(
        &[
            "--api",
            api,
            "--token",
            porter_token,
            "archive",
            "--warning",
            "24",
            "--max-age-hours",
            "1000",
        ],
        1,
        "SLUICE ARCHIVE WARNING - ",
    );
    expect(
        &[
            "--api",
            api,
            "--token",
            porter_token,
            "archive",
            "--crawl",
            "fresh",
            "--max-age-hours",
            "24",
        ],
        0,
        "SLUICE ARCHIVE OK - ",
    );

    // UNKNOWN: the check cannot judge.
    expect(
        &["--api", api, "silence"],
        3,
        "SLUICE CHECK UNKNOWN - bad arguments",
    );
    expect(
        &["--api", api, "spool", "--warning", "90", "--critical", "80"],
        3,
        "SLUICE SPOOL UNKNOWN - --warning 90 is above --critical 80",
    );
    expect(
        &["--api", "http://127.0.0.1:1", "spool"],
        3,
        "SLUICE SPOOL UNKNOWN - cannot read",
    );
    expect(
        &["--api", api, "archive", "--max-age-hours", "24"],
        3,
        "SLUICE ARCHIVE UNKNOWN - ",
    );

    // The buck down: CRITICAL.
    up.agent.kill();
    expect(&["--api", api, "buck"], 2, "SLUICE BUCK CRITICAL - ");
}
