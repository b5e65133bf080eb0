//! `pipeline_latency`: how long a crawl.log line takes from its write to being committed
//! in the buck's SQLite segment (visible to SQL), and to a socket.io client of the live
//! view, at steady write rates. Prints a table; not a test, not run by CI.
//!
//! ```text
//! cargo build --release -p sluice-bench
//! target/release/pipeline_latency [--rates 5000,50000] [--secs 20] [--dir D] [--no-socketio]
//!     [--tailer-extra 'read_coalesce_ms = 100']   # TOML lines added to the tailer's config
//!     [--writer-max-delay-ms N] [--bus-capacity N]
//! ```
//!
//! A real buck runs in this process (`buck::start`, default config, encryption on); a
//! tailer runs as a child process (this binary re-run with `--tailer-child`, every default
//! but `nice = 0`) following a file a writer thread appends to at the given rate, in a
//! write per millisecond. Each line carries its write time (`wt:<unix µs>` among its
//! annotations). Measured:
//!
//! - commit: each event's arrival on the buck's bus, which publishes only after the
//!   segment's transaction committed, so this is "visible in SQL";
//! - SQL poll: every 50 ms, `SELECT line FROM events ORDER BY rowid DESC LIMIT 1` on the
//!   segment (read-only), the age of the newest row (a cross-check, poll interval included);
//! - socket.io: `bench/live_latency.mjs` (npm socket.io-client from `web/node_modules`)
//!   subscribed with the filter `{"status": "4xx"}` (about 11% of lines), each live event
//!   timed on arrival. Skipped when node or the module is missing.

// A test or bench crate: its helpers may unwrap (clippy.toml allows it only in #[test] fns).
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use buck::BusItem;
use common::{TailerProcess, arg_value, percentile};
use contracts::keys::KeyPair;
use tokio_util::sync::CancellationToken;

const SOCKETIO_FILTER: &str = r#"{"status": "4xx"}"#;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(common::TAILER_CHILD_ARG) {
        return common::tailer_child(Path::new(&args[2]));
    }
    let rates: Vec<u64> = arg_value(&args, "--rates")
        .unwrap_or_else(|| "5000,50000".into())
        .split(',')
        .map(|r| r.trim().parse())
        .collect::<Result<_, _>>()?;
    let secs: u64 = arg_value(&args, "--secs").map_or(Ok(20), |v| v.parse())?;
    let dir_arg = arg_value(&args, "--dir");
    let (dir, _keep) = common::work_dir(dir_arg.as_deref())?;
    let socketio = !args.iter().any(|a| a == "--no-socketio");
    let tailer_extra = arg_value(&args, "--tailer-extra").unwrap_or_default();
    // The buck's `writer_max_delay_ms`, to try another than the default.
    let writer_delay: Option<u64> = arg_value(&args, "--writer-max-delay-ms")
        .map(|v| v.parse())
        .transpose()?;
    // The buck's `bus_capacity` (events a subscriber may fall behind).
    let bus_capacity: Option<usize> = arg_value(&args, "--bus-capacity")
        .map(|v| v.parse())
        .transpose()?;

    println!("# pipeline_latency");
    println!("machine: {}", common::machine_notes());
    println!("work dir: {}", dir.display());
    if !tailer_extra.is_empty() {
        println!("tailer config added: {tailer_extra}");
    }
    let mut rows = Vec::new();
    for rate in rates {
        let r = run(
            &dir.join(format!("rate-{rate}")),
            rate,
            secs,
            socketio,
            &tailer_extra,
            writer_delay,
            bus_capacity,
        )?;
        rows.push((rate, r));
    }
    println!();
    println!("## write to commit (bus after commit = visible in SQL), and to a socket.io client");
    println!(
        "| lines/s | lines | committed | bus missed | commit p50 | commit p99 | commit max | SQL poll p50 | SQL poll p99 | socket.io n | socket.io p50 | socket.io p99 | socket.io dropped |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (rate, r) in rows {
        let ms = |v: f64| format!("{:.0} ms", v / 1000.0);
        let mut c = r.commit_us.clone();
        c.sort_by(f64::total_cmp);
        let mut p = r.poll_us.clone();
        p.sort_by(f64::total_cmp);
        let (sn, s50, s99, sd) = match &r.socketio {
            Some(s) => (
                s["n"].to_string(),
                format!("{:.0} ms", s["p50_ms"].as_f64().unwrap_or(f64::NAN)),
                format!("{:.0} ms", s["p99_ms"].as_f64().unwrap_or(f64::NAN)),
                s["dropped"].to_string(),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        println!(
            "| {rate} | {} | {} | {} | {} | {} | {} | {} | {} | {sn} | {s50} | {s99} | {sd} |",
            r.written,
            c.len(),
            r.missed,
            ms(percentile(&c, 50.0)),
            ms(percentile(&c, 99.0)),
            ms(percentile(&c, 100.0)),
            ms(percentile(&p, 50.0)),
            ms(percentile(&p, 99.0)),
        );
    }
    println!("Targets: commit (SQL) p99 under 1 s at 5,000 lines/s; live client p99 under 250 ms.");
    Ok(())
}

struct RunResult {
    written: u64,
    commit_us: Vec<f64>,
    poll_us: Vec<f64>,
    missed: u64,
    socketio: Option<serde_json::Value>,
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// The `wt:<µs>` write time in a line.
fn write_time(line: &[u8]) -> Option<i64> {
    let at = line.windows(3).position(|w| w == b"wt:")? + 3;
    let digits = line[at..].iter().take_while(|c| c.is_ascii_digit()).count();
    std::str::from_utf8(&line[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

fn run(
    dir: &Path,
    rate: u64,
    secs: u64,
    socketio: bool,
    tailer_extra: &str,
    writer_delay: Option<u64>,
    bus_capacity: Option<usize>,
) -> anyhow::Result<RunResult> {
    std::fs::create_dir_all(dir)?;
    let log = dir.join("crawl.log");
    std::fs::write(&log, b"")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let shutdown = CancellationToken::new();
    let buck_keys = KeyPair::generate();
    buck_keys.save(dir, "buck")?;
    let tailer_keys_dir = dir.join("tailer");
    // The tailer's setup needs the buck's address, and the buck the tailer's key: bind
    // first, then write the tailer's files, then start the buck.
    let ingest = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let http = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let http_addr = http.local_addr()?;
    let setup = common::write_tailer_setup(
        &tailer_keys_dir,
        &[ingest.local_addr()?],
        &buck_keys.public_text(),
        &log,
        tailer_extra,
    )?;
    let mut config = buck::BuckConfig::new("b0", dir.join("buck"));
    config.key_file = Some(dir.join("buck.key"));
    config.allowed_tailers = vec![setup.tailer_keys.public_text()];
    if let Some(ms) = writer_delay {
        config.writer_max_delay_ms = ms;
    }
    if let Some(n) = bus_capacity {
        config.bus_capacity = n;
    }
    let handle = rt.block_on(buck::start(config, ingest, shutdown.clone()))?;
    let router = handle.serve_live(handle.router());
    let stop_http = shutdown.clone();
    rt.spawn(async move {
        let _ = axum::serve(http, router)
            .with_graceful_shutdown(stop_http.cancelled_owned())
            .await;
    });

    let total = rate * secs;
    let mut sub = handle.bus().subscribe();
    let stop_collect = CancellationToken::new();
    let stop = stop_collect.clone();
    let collector = rt.spawn(async move {
        let (mut lat, mut missed, mut late) = (Vec::with_capacity(total as usize), 0u64, 0u64);
        loop {
            let item = tokio::select! {
                _ = stop.cancelled() => break,
                item = sub.recv() => item,
            };
            match item {
                Some(BusItem::Event(p)) => {
                    late += u64::from(p.late);
                    if let Some(wt) = write_time(&p.event.raw) {
                        lat.push((now_us() - wt) as f64);
                    }
                    if lat.len() as u64 + missed >= total {
                        break;
                    }
                }
                Some(BusItem::Missed(n)) => missed += n,
                None => break,
            }
        }
        (lat, missed, late)
    });

    let tailer = TailerProcess::spawn(&setup.config)?;
    let node = if socketio {
        LiveClient::start(&format!("http://{http_addr}"))
            .map_err(|e| println!("socket.io client not run: {e:#}"))
            .ok()
    } else {
        None
    };
    std::thread::sleep(Duration::from_secs(2));

    let writing = Arc::new(AtomicBool::new(true));
    let poller = {
        let segment = dir
            .join("buck/segments/bench")
            .join(format!("{}.sqlite", chrono::Utc::now().format("%Y-%m-%d")));
        let writing = writing.clone();
        std::thread::spawn(move || poll_sql(&segment, &writing))
    };
    let written = write_at_rate(&log, rate, total)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !collector.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    writing.store(false, Ordering::SeqCst);
    stop_collect.cancel();
    let (commit_us, missed, late) = rt.block_on(collector)?;
    let poll_us = poller
        .join()
        .map_err(|_| anyhow::anyhow!("poller panicked"))?;
    std::thread::sleep(Duration::from_millis(500));
    let socketio = node.and_then(|n| n.finish().map_err(|e| println!("socket.io: {e:#}")).ok());
    tailer.stop();
    let metrics = setup.config.with_extension("metrics");
    println!(
        "{rate} lines/s: {} committed ({late} late, by the repair path); tailer live copies dropped {}, repair chunks sent {}",
        commit_us.len(),
        common::metric(&metrics, "sluice_tailer_live_dropped_total"),
        common::metric(&metrics, "sluice_tailer_repair_chunks_sent_total"),
    );
    shutdown.cancel();
    rt.block_on(handle.join())?;
    Ok(RunResult {
        written,
        commit_us,
        poll_us,
        missed,
        socketio,
    })
}

/// Appends `total` lines at `rate` lines/s, one write a millisecond, each line stamped
/// with the time just before its write.
fn write_at_rate(log: &Path, rate: u64, total: u64) -> anyhow::Result<u64> {
    let mut f = std::fs::OpenOptions::new().append(true).open(log)?;
    let mut lines_gen = common::LineGen::new(11);
    let t0 = Instant::now();
    let mut written = 0u64;
    let mut buf = Vec::new();
    while written < total {
        let due = ((t0.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        if due > written {
            buf.clear();
            let now = chrono::Utc::now();
            let tag = format!("wt:{}", now.timestamp_micros());
            while written < due {
                lines_gen.line(now, Some(&tag), &mut buf);
                written += 1;
            }
            f.write_all(&buf)?;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(written)
}

/// Every 50 ms while `writing`, the age of the newest row of the segment.
fn poll_sql(segment: &Path, writing: &AtomicBool) -> Vec<f64> {
    let mut ages = Vec::new();
    let mut conn: Option<rusqlite::Connection> = None;
    let mut last_rowid = -1i64;
    while writing.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
        if conn.is_none() && segment.exists() {
            conn = rusqlite::Connection::open_with_flags(
                segment,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .ok();
        }
        let Some(c) = &conn else { continue };
        // The `events` view of a version-2 segment has no rowid: the table's newest rowid
        // says whether a row came, and the view gives back a line of its time (indexed).
        let row: Option<(i64, String)> = c
            .query_row(
                "SELECT e.rowid, (SELECT line FROM events WHERE time_us = e.time_us LIMIT 1) \
                 FROM event e ORDER BY e.rowid DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .ok();
        if let Some((rowid, line)) = row
            && rowid != last_rowid
        {
            last_rowid = rowid;
            if let Some(wt) = write_time(line.as_bytes()) {
                ages.push((now_us() - wt) as f64);
            }
        }
    }
    ages
}

/// `bench/live_latency.mjs` under node.
struct LiveClient {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl LiveClient {
    fn start(url: &str) -> anyhow::Result<LiveClient> {
        let bench = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let web = bench.join("../web");
        if !web.join("node_modules/socket.io-client").is_dir() {
            anyhow::bail!("web/node_modules/socket.io-client missing: run `npm ci` in web/");
        }
        let mut child = Command::new("node")
            .arg(bench.join("live_latency.mjs"))
            .arg(&web)
            .arg(url)
            .arg(SOCKETIO_FILTER)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting node")?;
        let out = child.stdout.take().context("node stdout")?;
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let first = lines
            .recv_timeout(Duration::from_secs(10))
            .context("socket.io client: no answer in 10 s")?;
        if !first.contains("\"ready\"") {
            anyhow::bail!("socket.io client: {first}");
        }
        Ok(LiveClient { child, lines })
    }

    fn finish(mut self) -> anyhow::Result<serde_json::Value> {
        if let Some(stdin) = self.child.stdin.as_mut() {
            stdin.write_all(b"finish\n")?;
        }
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(20))
            .context("socket.io client: no summary")?;
        let _ = self.child.wait();
        Ok(serde_json::from_str(&line)?)
    }
}

impl Drop for LiveClient {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
