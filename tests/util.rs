//! Helpers for the cross-process tests: a fresh directory per test, agents spawned from
//! this package's binaries and killed when dropped, and polling with a deadline (never a
//! guessed sleep).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use rand::Rng;
use serde_json::{Map, Value};

/// A fresh temporary directory, removed on drop (kept if the test panics, for a look).
pub struct Dir {
    tmp: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl Dir {
    pub fn new(name: &str) -> Dir {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("sluice-{name}-"))
            .tempdir()
            .expect("creating a temp dir");
        let path = tmp.path().to_path_buf();
        Dir {
            tmp: Some(tmp),
            path,
        }
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(t) = self.tmp.take()
        {
            eprintln!("test dir kept for inspection: {}", t.keep().display());
        }
    }
}

/// A spawned agent process; SIGKILLed and reaped on drop. Its output goes to a log file
/// printed when a test fails.
pub struct Agent {
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Agent {
    /// Spawns this package's binary `bin` with `args`, logging to `<dir>/<name>.log`.
    pub fn spawn(dir: &Dir, name: &str, bin: &str, args: &[&str]) -> Agent {
        let exe = match bin {
            "sluice" => env!("CARGO_BIN_EXE_sluice"),
            "tailer" => env!("CARGO_BIN_EXE_tailer"),
            "buck" => env!("CARGO_BIN_EXE_buck"),
            "porter" => env!("CARGO_BIN_EXE_porter"),
            "archie" => env!("CARGO_BIN_EXE_archie"),
            other => panic!("unknown binary {other}"),
        };
        let mut cmd = Command::new(exe);
        cmd.args(args);
        Agent::spawn_command(dir, name, cmd)
    }

    /// Spawns `cmd` (a wrapper around one of this package's binaries, such as `unshare`
    /// that execs it), logging to `<dir>/<name>.log`.
    pub fn spawn_command(dir: &Dir, name: &str, mut cmd: Command) -> Agent {
        let log = dir.join(&format!("{name}.log"));
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("opening agent log");
        let err = out.try_clone().expect("cloning log handle");
        let child = cmd
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        Agent {
            name: name.into(),
            child: Some(child),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// The agent's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails the test if the agent has exited.
    pub fn assert_running(&mut self) {
        if let Some(c) = self.child.as_mut()
            && let Ok(Some(status)) = c.try_wait()
        {
            panic!(
                "agent {} exited with {status}; log:\n{}",
                self.name,
                self.log()
            );
        }
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait for a clean exit (up to `timeout`), returning whether it exited 0.
    #[allow(unsafe_code)]
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = c.try_wait() {
                return s.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- log of agent {} ----\n{}", self.name, self.log());
        }
        self.kill();
    }
}

/// Polls `f` every 20 ms until it returns `Some`, or panics naming `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Generous deadline for conditions that are normally met in well under a second: CI
/// machines are shared and noisy.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The browser app's crate, whose `tests/` holds the Node and Chromium scripts.
pub fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("web")
}

/// Fails with what to run when the Node packages (and, for a `browser` test, Chromium
/// and the built app) are missing, instead of a puzzling error from deep inside a script.
pub fn require_web_deps(browser: bool) {
    assert!(
        web_dir().join("node_modules/socket.io-client").is_dir(),
        "web/node_modules is missing: run scripts/install-web-deps"
    );
    if browser {
        assert!(
            Path::new("/usr/bin/chromium").exists(),
            "/usr/bin/chromium is missing: run scripts/install-web-deps"
        );
        assert!(
            web_dir().join("dist").is_dir(),
            "web/dist is missing: run scripts/build-web"
        );
    }
}

/// What a browser script reported.
pub struct BrowserRun {
    /// Every JSON line it printed, in order.
    pub reports: Vec<Value>,
    /// The last of them, `{"done": true, ..}` with the figures the test checks.
    pub last: Value,
}

/// Runs the browser script `web/tests/<script>` in Node with `args` and asserts that it
/// finished: its last JSON line says `"done": true`. A script reports by JSON lines and
/// says `done` only at its end, so anything else (a failed step, a crash, a missing
/// line) fails here with all it printed.
pub fn run_browser_script(script: &str, args: &[&str]) -> BrowserRun {
    require_web_deps(true);
    let out = Command::new("node")
        .arg(web_dir().join("tests").join(script))
        .args(args)
        .output()
        .expect("running node (is Node.js installed? scripts/install-web-deps)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let reports: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let last = reports.last().cloned().unwrap_or(Value::Null);
    assert_eq!(
        last["done"],
        Value::Bool(true),
        "{script} did not finish ({}): {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    BrowserRun { reports, last }
}

/// A running `sluice up`.
pub struct Up {
    pub agent: Agent,
    pub url: String,
}

impl Up {
    /// Starts `sluice up --dir <dir>/up --http 127.0.0.1:0` with `extra` args and waits for readiness.
    pub fn start(dir: &Dir, extra: &[&str]) -> Up {
        Up::start_with_env(dir, extra, &[])
    }

    /// As [`Up::start`], with these environment variables set for `sluice up`.
    pub fn start_with_env(dir: &Dir, extra: &[&str], env: &[(&str, &str)]) -> Up {
        let data = dir.join("up");
        let _ = std::fs::remove_file(data.join("up.json"));
        let data_s = data.display().to_string();
        let mut args = vec!["up", "--dir", &data_s, "--http", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.args(&args).envs(env.iter().copied());
        let mut agent = Agent::spawn_command(dir, "up", cmd);
        let state = data.join("up.json");
        let url = wait_for("sluice up to write up.json", PATIENCE, || {
            agent.assert_running();
            let text = std::fs::read_to_string(&state).ok()?;
            let v: Value = serde_json::from_str(&text).ok()?;
            let base = v["base_path"].as_str().unwrap_or("");
            Some(format!("http://{}{base}", v["http"].as_str()?))
        });
        wait_for("sluice up's /healthz", PATIENCE, || {
            let r = reqwest::blocking::get(format!("{url}/healthz")).ok()?;
            r.status().is_success().then_some(())
        });
        Up { agent, url }
    }
}

/// Runs `sql` over `crawl` through the trough-compatible read API.
pub fn sql(url: &str, crawl: &str, sql: &str) -> Result<Vec<Map<String, Value>>, String> {
    let client = reqwest::blocking::Client::new();
    let r = client
        .post(format!("{url}/"))
        .query(&[("segment", crawl)])
        .header("content-type", "application/sql;charset=utf-8")
        .body(sql.to_owned())
        .send()
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let text = r.text().map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{status}: {text}"));
    }
    serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))
}

/// Whether `/metrics` of the agent at `url` holds exactly the sample line `line`.
pub fn metrics_line(url: &str, line: &str) -> bool {
    reqwest::blocking::get(format!("{url}/metrics"))
        .and_then(|r| r.text())
        .unwrap_or_default()
        .lines()
        .any(|l| l == line)
}

/// A single integer from the first row's first column.
pub fn sql_count(url: &str, crawl: &str, q: &str) -> Option<i64> {
    let rows = sql(url, crawl, q).ok()?;
    rows.first()?.values().next()?.as_i64()
}

/// Real crawl logs shipped beside the repository.
pub fn real_logs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/real/heritrix");
    let mut v = vec![
        root.join("ukwa-manage/h3-2018-crawl.log"),
        root.join("ukwa-manage/h3-2017-fragment-of-a-crawl.log"),
        root.join("ukwa-manage/h3-2017-fragment-of-a-crawl-with-dead-seeds.log"),
        root.join("netarchivesuite/h3-3.3.0-2015/crawl.log"),
        root.join("netarchivesuite/h1-2005-2006-crawldir/crawl.log"),
        root.join("netarchivesuite/h1-stop-reason-crawl.log"),
    ];
    v.retain(|p| p.exists());
    v
}

/// Opens a file for writing lines (append).
pub fn appender(path: &Path) -> File {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("creating parent dirs");
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("opening for append")
}

/// A `buck` process listening on ports it chose (port 0), as its ready file says.
pub struct BuckProc {
    pub id: String,
    pub agent: Agent,
    pub ingest: String,
    pub http: String,
}

/// Starts the `buck` binary with `<dir>/<id>.toml` on port 0 and waits for its ready file.
/// `run` numbers restarts (each gets its own log and ready file).
pub fn start_buck(dir: &Dir, id: &str, run: u32) -> BuckProc {
    let ready = dir.join(&format!("{id}.ready.{run}"));
    let config = dir.join(&format!("{id}.toml")).display().to_string();
    let ready_s = ready.display().to_string();
    let mut agent = Agent::spawn(
        dir,
        &format!("{id}-run{run}"),
        "buck",
        &[
            "--config",
            &config,
            "--ingest",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--ready-file",
            &ready_s,
        ],
    );
    let v: Value = wait_for(&format!("buck {id} to listen"), PATIENCE, || {
        agent.assert_running();
        serde_json::from_str(&std::fs::read_to_string(&ready).ok()?).ok()
    });
    let ingest = v["ingest"].as_str().expect("ingest address").to_owned();
    let http = format!("http://{}", v["http"].as_str().expect("http address"));
    BuckProc {
        id: id.into(),
        agent,
        ingest,
        http,
    }
}

/// A Heritrix crawl.log line with the entropy of a real crawl: a random host, path and
/// sha1 digest, so the spool and the segments grow as they would in production.
fn crawl_line(rng: &mut impl Rng, i: usize) -> String {
    let now = Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
    let host: String = (0..rng.random_range(6..14))
        .map(|_| rng.random_range(b'a'..=b'z') as char)
        .collect();
    let path: String = (0..rng.random_range(20..60))
        .map(|_| rng.random_range(b'a'..=b'z') as char)
        .collect();
    let digest: String = (0..32)
        .map(|_| char::from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[rng.random_range(0..32)]))
        .collect();
    format!(
        "{now}   200 {:>10} http://www.{host}.com/{path}/{i} LLX http://www.{host}.com/ text/html #042 20261204020202123+45 sha1:{digest} - duplicate:digest,content-size:{}\n",
        rng.random_range(300..90_000),
        rng.random_range(300..90_000)
    )
}

/// Appends `lines` Heritrix crawl.log lines (of [`crawl_line`]) to `path`. Each line's URL
/// is unique (random host and path), so `count(DISTINCT url)` counts lines.
pub fn write_log(path: &Path, lines: usize) {
    let mut rng = rand::rng();
    let mut out = std::io::BufWriter::new(appender(path));
    for i in 0..lines {
        out.write_all(crawl_line(&mut rng, i).as_bytes())
            .expect("writing the crawl log");
    }
    out.flush().expect("flushing the crawl log");
}

/// `sluice up` flags under which a past day is archived at once: it closes with no grace,
/// is old enough to archive as soon as it closes, and the porter looks every second.
pub const ARCHIVE_AT_ONCE: [&str; 6] = [
    "--day-close-grace-secs",
    "0",
    "--archive-age-secs",
    "0",
    "--archive-interval-secs",
    "1",
];

/// `n` crawl.log lines of the past `day`, one every 7 s from 09:00, with three hosts,
/// four statuses and three MIME types mixed: what the history searches are checked on.
pub fn mixed_crawl_lines(day: chrono::NaiveDate, n: i64) -> Vec<String> {
    let hosts = [
        "www.example.com",
        "acid.matkelly.com",
        "crawl-test-site.webarchive.org.uk",
    ];
    (0..n)
        .map(|i| {
            let t = day.and_hms_opt(9, 0, 0).unwrap().and_utc() + chrono::Duration::seconds(i * 7);
            let status = [200, 404, 301, -5003][i as usize % 4];
            let host = hosts[i as usize % 3];
            let mime = ["text/html", "image/png", "application/pdf"][i as usize % 3];
            format!(
                "{} {status:>5} {:>10} http://{host}/path/{i}/page.html L http://{host}/ {mime} #0{:02} - sha1:ABC{i} - -",
                t.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                1000 + i,
                i % 50
            )
        })
        .collect()
}

/// Appends `lines` to the file at `path`, each with its newline.
pub fn append_lines(path: &Path, lines: &[String]) {
    let mut f = appender(path);
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

/// A bucket of its own on the test S3 server (created), a store on it under the prefix
/// `sluice`, and a runtime to drive the store from a test.
pub struct FreshS3 {
    pub bucket: String,
    pub store: porter::S3Store,
    pub rt: tokio::runtime::Runtime,
}

impl FreshS3 {
    pub fn new() -> FreshS3 {
        let bucket = porter::test_support::s3_server::fresh_bucket();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store = porter::S3Store::new(
            &bucket,
            "sluice",
            &porter::test_support::s3_server::s3_settings(),
            64 << 20,
            5 << 20,
        )
        .unwrap();
        rt.block_on(store.ensure_bucket()).unwrap();
        FreshS3 { bucket, store, rt }
    }

    /// The archive URL of the store: `s3://<bucket>/sluice`.
    pub fn archive_url(&self) -> String {
        format!("s3://{}/sluice", self.bucket)
    }

    /// The AWS environment that points a `sluice` process at the test server, by name:
    /// the SDK addresses buckets as `bucket.host` (virtual-host style) unless told
    /// otherwise, and `<bucket>.localhost` does not resolve, so it works only with path
    /// style (`--s3-path-style`).
    pub fn aws_env() -> [(&'static str, String); 4] {
        let endpoint = porter::test_support::s3_server::s3_endpoint();
        [
            (
                "AWS_ENDPOINT_URL",
                endpoint.endpoint.replace("127.0.0.1", "localhost"),
            ),
            ("AWS_ACCESS_KEY_ID", endpoint.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", endpoint.secret_key.clone()),
            ("AWS_REGION", "us-east-1".to_owned()),
        ]
    }
}

/// A porter config over the cluster of the `sluice up` in `dir`, archiving to `archive`
/// with `work` as its work dir, then the TOML lines `extra`.
pub fn porter_toml(dir: &Dir, archive: &Path, work: &Path, extra: &str) -> String {
    format!(
        "archive = \"file://{}\"\ncluster_file = {:?}\nwork_dir = {:?}\n{extra}",
        archive.display(),
        dir.join("up/cluster.toml").display().to_string(),
        work.display().to_string(),
    )
}

/// `field` of every segment that `GET /segments` on `url` lists (asked with the porter's
/// `token`), or None while the buck does not answer.
pub fn segments_field(url: &str, token: &str, field: &str) -> Option<Vec<String>> {
    let segs: Value = reqwest::blocking::Client::new()
        .get(format!("{url}/segments"))
        .bearer_auth(token)
        .send()
        .ok()?
        .json()
        .ok()?;
    Some(
        segs.as_array()?
            .iter()
            .filter_map(|s| s[field].as_str().map(str::to_owned))
            .collect(),
    )
}
