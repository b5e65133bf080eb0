//! `up_backlog`: `sluice up` given a backlog, as a new user tries it: how fast a file of
//! crawl.log lines written before the start becomes visible in SQL, and what the whole
//! process spends on it. Prints a table; not a test, not run by CI.
//!
//! ```text
//! cargo build --release --bin sluice -p sluice-bench --bin up_backlog
//! target/release/up_backlog [--size-mib 128] [--sluice target/release/sluice]
//!     [--baseline OTHER_SLUICE] [--runs 1] [--dir D]
//! ```
//!
//! Writes `--size-mib` of high-entropy Heritrix 3 crawl.log lines (the generator of
//! `tailer_vs_rsyslog`, logged over the last minutes) to `<dir>/logs/bench/crawl.log`,
//! then starts `sluice up --dir <dir>/up-N --http 127.0.0.1:0 '<dir>/logs/{crawl}/crawl.log'`
//! (every other setting at its default) and polls its `/metrics` every 20 ms until
//! `sluice_buck_inserted_total` (rows committed, so visible in SQL) counts every line.
//! Figures, from `/proc/<pid>` of the `sluice up` process (every agent in it): lines/s
//! from the start to the last line visible, CPU seconds (user + system) and CPU-s per
//! GiB of log, peak RSS; the CPU of its `segment-writer` and `wal-checkpoint` threads;
//! and the segment transactions it took (`sluice_buck_commits_total`) with the events
//! per transaction. With `--baseline`, each of `--runs` runs starts that binary first
//! and then `--sluice` on the same backlog, so the two meet the same machine load.

// A bench crate: its helpers may unwrap (clippy.toml allows it only in #[test] fns).
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use common::arg_value;

/// Kills the `sluice up` child when the benchmark ends, however it ends.
struct UpProcess(Child);

impl Drop for UpProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CPU seconds (user + system) in the text of a `/proc/.../stat` file.
fn stat_cpu_secs(stat: &str) -> f64 {
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Clock ticks of 1/100 s, as on the Linux systems this runs on.
    (t(11) + t(12)) / 100.0
}

/// What `/proc` says of the `sluice up` process.
struct ProcessCpu {
    /// Every thread, user + system seconds.
    all: f64,
    /// The `segment-writer` thread.
    writer: f64,
    /// The `wal-checkpoint` thread.
    checkpoint: f64,
    /// Peak RSS, KiB.
    peak_kib: u64,
}

fn process_cpu(pid: u32) -> ProcessCpu {
    let all =
        stat_cpu_secs(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default());
    let (mut writer, mut checkpoint) = (0.0, 0.0);
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            let cpu =
                std::fs::read_to_string(t.path().join("stat")).map_or(0.0, |s| stat_cpu_secs(&s));
            match comm.trim_end() {
                "segment-writer" => writer += cpu,
                "wal-checkpoint" => checkpoint += cpu,
                _ => {}
            }
        }
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let peak_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    ProcessCpu {
        all,
        writer,
        checkpoint,
        peak_kib,
    }
}

/// (`sluice_buck_inserted_total`, `sluice_buck_commits_total`) from `GET /metrics` at `addr`.
fn buck_counts(addr: &str) -> anyhow::Result<(u64, u64)> {
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET /metrics HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    let counter = |name: &str| {
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0)
    };
    Ok((
        counter("sluice_buck_inserted_total"),
        counter("sluice_buck_commits_total"),
    ))
}

/// Writes about `bytes` of crawl.log lines to `path`; returns the number of lines.
fn write_backlog(path: &Path, bytes: u64) -> anyhow::Result<u64> {
    std::fs::create_dir_all(path.parent().context("log path has a parent")?)?;
    let mut lines_gen = common::LineGen::new(7);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut buf = Vec::with_capacity(512);
    let (mut written, mut lines) = (0u64, 0u64);
    // Logged over the last 10 minutes, oldest first, so every line is within the time
    // window the tailer accepts and lands in today's segment.
    let start = chrono::Utc::now() - chrono::Duration::minutes(10);
    while written < bytes {
        buf.clear();
        let at = start + chrono::Duration::microseconds((lines as i64) * 500);
        lines_gen.line(at, None, &mut buf);
        out.write_all(&buf)?;
        written += buf.len() as u64;
        lines += 1;
    }
    out.flush()?;
    Ok(lines)
}

/// One run of `sluice` over the backlog in `dir`, with its state in `up_dir` (removed
/// afterwards); prints its row.
fn run_once(
    label: &str,
    sluice: &Path,
    dir: &Path,
    up_dir: &Path,
    lines: u64,
    bytes: u64,
) -> anyhow::Result<()> {
    let pattern = format!("{}/logs/{{crawl}}/crawl.log", dir.display());
    let started = Instant::now();
    let child = Command::new(sluice)
        .args(["up", "--dir"])
        .arg(up_dir)
        .args(["--http", "127.0.0.1:0", &pattern])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", sluice.display()))?;
    let up = UpProcess(child);
    let pid = up.0.id();
    let state = up_dir.join("up.json");
    let addr = loop {
        if let Ok(text) = std::fs::read_to_string(&state)
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
            && let Some(a) = v.get("http").and_then(|a| a.as_str())
        {
            break a.to_owned();
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("sluice up wrote no {} within 60 s", state.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut last = (0, Instant::now());
    let (done, commits) = loop {
        let (n, commits) = buck_counts(&addr).unwrap_or((0, 0));
        if n >= lines {
            break (started.elapsed(), commits);
        }
        if n != last.0 {
            last = (n, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(60) {
            bail!("stalled at {n} of {lines} lines visible for 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let cpu = process_cpu(pid);
    drop(up);
    let _ = std::fs::remove_dir_all(up_dir);
    let secs = done.as_secs_f64();
    let gib = bytes as f64 / (1u64 << 30) as f64;
    println!(
        "| {label} | {:.0} | {:.1} | {secs:.1} s | {:.1} | **{:.0}** | {:.0} | {:.0} | {:.2} cores | {:.0} MiB | {commits} | {:.0} |",
        lines as f64 / secs,
        bytes as f64 / (1 << 20) as f64 / secs,
        cpu.all,
        cpu.all / gib,
        cpu.writer / gib,
        cpu.checkpoint / gib,
        cpu.all / secs,
        cpu.peak_kib as f64 / 1024.0,
        lines as f64 / commits.max(1) as f64,
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let size_mib: u64 = arg_value(&args, "--size-mib").map_or(Ok(128), |v| v.parse())?;
    let runs: usize = arg_value(&args, "--runs").map_or(Ok(1), |v| v.parse())?;
    let sluice = match arg_value(&args, "--sluice") {
        Some(p) => PathBuf::from(p),
        None => std::env::current_exe()?
            .parent()
            .context("the benchmark's directory")?
            .join("sluice"),
    };
    let baseline = arg_value(&args, "--baseline").map(PathBuf::from);
    for bin in std::iter::once(&sluice).chain(baseline.as_ref()) {
        if !bin.exists() {
            bail!(
                "{} not found: build it with `cargo build --release --bin sluice` or pass --sluice",
                bin.display()
            );
        }
    }
    let dir_arg = arg_value(&args, "--dir");
    let (dir, _keep) = common::work_dir(dir_arg.as_deref())?;
    let log = dir.join("logs").join("bench").join("crawl.log");
    let lines = write_backlog(&log, size_mib << 20)?;
    let bytes = std::fs::metadata(&log)?.len();
    println!("# up_backlog");
    println!(
        "{lines} lines, {:.1} MiB, in {}; {}",
        bytes as f64 / (1 << 20) as f64,
        log.display(),
        common::machine_notes()
    );
    println!(
        "| binary | lines/s to SQL-visible | MiB/s | wall | CPU-s (whole process) | CPU-s per GiB | writer thread CPU-s per GiB | checkpoint thread CPU-s per GiB | CPU share | peak RSS | commits | events per commit |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut n = 0;
    for _ in 0..runs {
        if let Some(b) = &baseline {
            n += 1;
            run_once(
                "baseline",
                b,
                &dir,
                &dir.join(format!("up-{n}")),
                lines,
                bytes,
            )?;
        }
        n += 1;
        run_once(
            "sluice",
            &sluice,
            &dir,
            &dir.join(format!("up-{n}")),
            lines,
            bytes,
        )?;
    }
    Ok(())
}
