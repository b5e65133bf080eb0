//! `sluice up` listening off loopback is closed by default (docs/security.md): it makes
//! `DIR/keys/api.token` and says where, the SQL API, archie's history API and the live
//! stream need that token, and the segment API needs the porter token.
//!
//! The address off loopback lives in a private network namespace (`unshare --net`), on
//! one end of a veth pair (the `dummy` link type needs a kernel module not every test
//! machine has), so no traffic leaves the machine. The client side enters the same
//! namespace from a thread of its own (`setns`), and builds its HTTP client there: the
//! client's I/O thread is spawned from it and inherits the namespace.

use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder};
use serde_json::Value;

use crate::util::{Agent, Dir, PATIENCE, wait_for, write_log};

const ADDRESS: &str = "10.77.0.1";
const CRAWL: &str = "offlo";
const COUNT: &str = "SELECT count(*) FROM crawled_url";

/// A `sluice up --http 10.77.0.1:0` in a network namespace of its own.
struct UpInNetns {
    agent: Agent,
    /// `http://10.77.0.1:<port>`, reachable only from inside the namespace.
    url: String,
    data: PathBuf,
}

impl UpInNetns {
    fn start(dir: &Dir, args: &[&str]) -> UpInNetns {
        let data = dir.join("up");
        let script = format!(
            "ip link set lo up && ip link add d0 type veth peer name d1 && ip addr add {ADDRESS}/24 dev d0 && ip link set d1 up && ip link set d0 up && exec \"$@\""
        );
        let mut cmd = Command::new("unshare");
        cmd.args(["--net", "sh", "-c", &script, "sh"])
            .arg(env!("CARGO_BIN_EXE_sluice"))
            .args(["up", "--dir"])
            .arg(&data)
            .args(["--http", &format!("{ADDRESS}:0")])
            .args(args);
        let mut agent = Agent::spawn_command(dir, "up", cmd);
        let state = data.join("up.json");
        let v: Value = wait_for("sluice up to write up.json", PATIENCE, || {
            agent.assert_running();
            serde_json::from_str(&std::fs::read_to_string(&state).ok()?).ok()
        });
        // unshare and sh exec (no fork): the pid spawned is sluice's, in the new namespace.
        assert_eq!(
            v["pid"].as_u64(),
            Some(u64::from(agent.pid())),
            "sluice up is not the process spawned (did unshare fork?)"
        );
        let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/net")).expect("ns link");
        assert_ne!(
            ns(&agent.pid().to_string()),
            ns("self"),
            "sluice up runs in the test's own network namespace"
        );
        let http = v["http"].as_str().expect("http address in up.json");
        assert!(
            http.starts_with(&format!("{ADDRESS}:")),
            "up.json says {http}"
        );
        UpInNetns {
            url: format!("http://{http}"),
            agent,
            data,
        }
    }
}

/// Runs `f` on a thread that has entered the network namespace of process `pid`, with an
/// HTTP client built there.
#[allow(unsafe_code)]
fn in_netns_of<T: Send + 'static>(pid: u32, f: impl FnOnce(&Client) -> T + Send + 'static) -> T {
    let t = std::thread::spawn(move || {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).expect("opening the netns");
        // SAFETY: setns(2) on a descriptor we own; it changes only this thread's namespace.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "setns: {} (the test runs as root)",
            std::io::Error::last_os_error()
        );
        let client = Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client");
        f(&client)
    });
    t.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
}

fn read_token(path: &Path) -> String {
    let mode = std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "{} has mode {mode:o}", path.display());
    let token = std::fs::read_to_string(path).expect("reading a token");
    let token = token.trim().to_owned();
    assert!(token.len() >= 32, "a short token in {}", path.display());
    token
}

/// Status and body; a transport error fails the test.
fn send(r: RequestBuilder) -> (u16, String) {
    let r = r.send().expect("an HTTP request inside the namespace");
    (r.status().as_u16(), r.text().unwrap_or_default())
}

fn bearer(r: RequestBuilder, token: &str) -> RequestBuilder {
    r.header("authorization", format!("Bearer {token}"))
}

/// One socket.io connection over engine.io long-polling: the namespace's answer to a
/// CONNECT carrying `auth` (`40{...}` accepted, `44{...}` refused).
fn socket_io_connect(client: &Client, url: &str, auth: &str) -> String {
    let base = format!("{url}/socket.io/?EIO=4&transport=polling");
    let (status, open) = send(client.get(&base));
    assert_eq!(status, 200, "engine.io open: {open}");
    let v: Value = serde_json::from_str(open.strip_prefix('0').expect("an OPEN packet"))
        .expect("OPEN payload");
    let polling = format!("{base}&sid={}", v["sid"].as_str().expect("sid"));
    let (status, body) = send(client.post(&polling).body(format!("40{auth}")));
    assert_eq!(status, 200, "socket.io CONNECT: {body}");
    // The first socket.io packet (`4...`) of the polls, past engine.io's pings.
    wait_for("the answer to socket.io CONNECT", PATIENCE, || {
        let (status, body) = send(client.get(&polling));
        assert_eq!(status, 200, "socket.io poll: {body}");
        body.split('\u{1e}')
            .find(|p| p.starts_with('4'))
            .map(str::to_owned)
    })
}

/// `sluice up --http 10.77.0.1:0` makes an API token (0600) and says where; SQL
/// needs it (401 without, the right count with), the segment API needs the porter token,
/// and archie's history API and the live stream need the API token too.
#[test]
fn sluice_up_off_loopback_is_closed_without_its_tokens() {
    let dir = Dir::new("off-loopback");
    let log = dir.join("crawls/offlo/crawl.log");
    let before = 150;
    write_log(&log, before);
    let log_s = log.display().to_string();
    let mut up = UpInNetns::start(
        &dir,
        &["--crawl", CRAWL, "--bucket-interval-secs", "1", &log_s],
    );

    // (1) The token, private, and where it is said.
    let token_path = up.data.join("keys/api.token");
    let token = read_token(&token_path);
    let porter_token = read_token(&up.data.join("keys/porter.token"));
    assert_ne!(token, porter_token);
    let said = up.agent.log();
    assert!(
        said.contains("off loopback") && said.contains(&token_path.display().to_string()),
        "sluice up did not say where its API token is:\n{said}"
    );
    assert!(!said.contains(&token), "the token itself is in the log");

    // Lines appended while it runs.
    let after = 250;
    write_log(&log, after);
    let lines = (before + after) as i64;

    let pid = up.agent.pid();
    let url = up.url.clone();
    let outcome = in_netns_of(pid, move |client| {
        let trough = || {
            client
                .post(format!("{url}/"))
                .query(&[("segment", CRAWL)])
                .header("content-type", "application/sql;charset=utf-8")
                .body(COUNT)
        };
        // Before the first line is stored: 404 (no segment yet). A new segment appears
        // whole (made under a temporary name), so never `no such table`.
        let not_yet = |status: u16, _body: &str| status == 404;
        let count = |r: RequestBuilder| -> Option<i64> {
            let (status, body) = send(r);
            assert!(
                status == 200 || not_yet(status, &body),
                "SQL with the token: {status}: {body}"
            );
            let rows: Vec<serde_json::Map<String, Value>> = serde_json::from_str(&body).ok()?;
            rows.first()?.values().next()?.as_i64()
        };

        // (2) SQL with the token answers every line, exactly once.
        let n = wait_for("every line stored, read with the token", PATIENCE, || {
            count(bearer(trough(), &token)).filter(|&n| n >= lines)
        });
        assert_eq!(n, lines, "lines stored twice");
        let day = chrono::Utc::now();
        let range = |r: RequestBuilder| {
            r.query(&[
                ("crawl", CRAWL),
                (
                    "from",
                    &(day - chrono::Duration::days(1))
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                ),
                (
                    "to",
                    &(day + chrono::Duration::days(1))
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                ),
            ])
            .body("SELECT count(DISTINCT url) FROM crawled_url")
        };
        let sql = client.post(format!("{url}/sql"));
        assert_eq!(
            count(bearer(range(sql), &token)),
            Some(lines),
            "a line lost or stored twice"
        );

        // ... and without it, or with a wrong one, or with the porter's, is refused.
        for (what, r) in [
            ("no token", trough()),
            (
                "a wrong token",
                bearer(trough(), "not-the-token-at-all-0123456789"),
            ),
            ("the porter token", bearer(trough(), &porter_token)),
            ("no token on /sql", range(client.post(format!("{url}/sql")))),
            (
                "the token in the URL",
                trough().query(&[("token", token.as_str()), ("access_token", token.as_str())]),
            ),
        ] {
            let (status, body) = send(r);
            assert_eq!(status, 401, "SQL with {what}: {body}");
            assert!(!body.contains("count"), "SQL with {what} answered: {body}");
        }

        // (3) The segment API is the porters': 401 without the porter token, a copy even
        // with the API token; listed with it (and, for monitoring, with the API token).
        let segments = format!("{url}/segments");
        for (what, r) in [
            ("no token", client.get(&segments)),
            (
                "the API token, a segment copy",
                bearer(
                    client.get(format!("{segments}/{CRAWL}/{}", day.format("%Y-%m-%d"))),
                    &token,
                ),
            ),
            (
                "no token, an archived receipt",
                client
                    .post(format!(
                        "{segments}/{CRAWL}/{}/archived",
                        day.format("%Y-%m-%d")
                    ))
                    .json(&serde_json::json!({"key": "x"})),
            ),
        ] {
            let (status, body) = send(r);
            assert_eq!(status, 401, "segment API with {what}: {body}");
        }
        let (status, body) = send(bearer(client.get(&segments), &token));
        assert_eq!(
            status, 200,
            "the segment listing with the API token: {body}"
        );
        let (status, body) = send(bearer(client.get(&segments), &porter_token));
        assert_eq!(status, 200, "segment API with the porter token: {body}");
        let listed: Vec<Value> = serde_json::from_str(&body).expect("a segment list");
        assert!(
            listed.iter().any(|s| s["crawl"] == CRAWL),
            "the crawl's segment is not listed: {body}"
        );

        // (4) Archie's history API and the live stream take the API token too.
        let history = format!("{url}/history");
        let (status, body) = send(client.get(&history));
        assert_eq!(status, 401, "history without the token: {body}");
        let (status, body) = send(client.post(&history).json(&serde_json::json!({
            "crawl": CRAWL, "start": day.to_rfc3339(), "end": day.to_rfc3339()
        })));
        assert_eq!(status, 401, "a history request without the token: {body}");
        let (status, body) = send(bearer(client.get(&history), &token));
        assert_eq!(status, 200, "history with the token: {body}");

        // GET /subscribe: the API token's, like SQL (the stream itself is not read here).
        let subscribe = format!("{url}/subscribe?crawl={CRAWL}");
        let status_of = |r: RequestBuilder| r.send().map(|r| r.status().as_u16()).unwrap_or(0);
        assert_eq!(
            status_of(client.get(&subscribe)),
            401,
            "subscribe without the token"
        );
        assert_eq!(
            status_of(bearer(client.get(&subscribe), &token)),
            200,
            "subscribe with the token"
        );

        let refused = socket_io_connect(client, &url, "");
        assert!(
            refused.starts_with("44"),
            "live stream without a token: {refused}"
        );
        let refused = socket_io_connect(client, &url, r#"{"token":"not-the-token-at-all"}"#);
        assert!(
            refused.starts_with("44"),
            "live stream with a wrong token: {refused}"
        );
        let auth = serde_json::json!({ "token": token }).to_string();
        let accepted = socket_io_connect(client, &url, &auth);
        assert!(
            accepted.starts_with("40"),
            "live stream with the token: {accepted}"
        );

        // The refusals are counted.
        let (status, metrics) = send(bearer(client.get(format!("{url}/metrics")), &token));
        assert_eq!(status, 200);
        metrics
    });
    up.agent.assert_running();
    let line = |name: &str| {
        outcome
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{outcome}"))
            .to_owned()
    };
    assert_eq!(
        line("sluice_buck_porter_refused_total "),
        "sluice_buck_porter_refused_total 3"
    );
    assert!(
        line("sluice_live_refused_total{reason=\"token\"}").ends_with(" 2"),
        "{outcome}"
    );
    assert_eq!(
        line("sluice_buck_api_refused_total "),
        "sluice_buck_api_refused_total 6"
    );
    assert_eq!(
        line("sluice_archie_token_refused_total "),
        "sluice_archie_token_refused_total 2"
    );
}
