//! `tailer_files`: one tailer following many small files, as on a host running many
//! crawls: its CPU while nothing is written and while 1% of the files get a line each
//! second, its open descriptors, how soon a new file's first line and an appended line
//! are committed at the buck, and that every line arrives once. Prints a table; not a
//! test, not run by CI.
//!
//! ```text
//! cargo build --release -p sluice-bench
//! target/release/tailer_files [--files 20000] [--dirs 2000] [--idle-secs 10]
//!     [--active-secs 30] [--new-per-sec 2] [--dir D] [--notify on,off]
//!     [--tailer-extra 'key = value\nkey = value']
//! ```
//!
//! The files are `<dir>/logs/d<N>/.../f<M>.log`, spread over `--dirs` directories two
//! levels deep, followed by one `**` pattern (`<dir>/logs/**/*.log`, crawl `bench`),
//! each starting with one Heritrix crawl.log line. A real buck runs in this process
//! (`buck::start`, default config, encryption on); the tailer runs as a child process
//! (this binary with `--tailer-child`) with every default but `nice = 0` (so
//! `max_open_files` is 1,024 and idle files are closed after 300 s) and, for `--notify
//! off`, `use_notify = false` (what a tailer falls back to when inotify watches run out).
//!
//! Phases, each measured from `/proc/<pid>` of the tailer alone:
//! 1. start: until every first line is committed (the catch-up);
//! 2. idle: `--idle-secs` with nothing written;
//! 3. active: `--active-secs` with 1% of the files (chosen at random) getting one line
//!    each second, and `--new-per-sec` new files created each second (in existing
//!    directories), every line stamped with its write time (`wt:<µs>`).
//!
//! Figures: CPU share of one core in each phase, peak RSS, peak descriptors (all of the
//! tailer's, of which followed log files), write-to-commit latency of appended lines and
//! of new files' first lines (p50, p99, max), and lines committed against written.

// A bench crate: its helpers may unwrap (clippy.toml allows it only in #[test] fns).
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use buck::BusItem;
use common::{TailerProcess, arg_value, percentile};
use contracts::keys::KeyPair;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

struct Settings {
    files: usize,
    dirs: usize,
    idle_secs: u64,
    active_secs: u64,
    new_per_sec: usize,
    /// More TOML lines for the tailer's config (`--tailer-extra`).
    tailer_extra: String,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(common::TAILER_CHILD_ARG) {
        return common::tailer_child(Path::new(&args[2]));
    }
    let num = |name: &str, default: u64| -> anyhow::Result<u64> {
        Ok(arg_value(&args, name).map_or(Ok(default), |v| v.parse())?)
    };
    let settings = Settings {
        files: num("--files", 20_000)? as usize,
        dirs: num("--dirs", 2_000)?.max(1) as usize,
        idle_secs: num("--idle-secs", 10)?,
        active_secs: num("--active-secs", 30)?,
        new_per_sec: num("--new-per-sec", 2)? as usize,
        tailer_extra: arg_value(&args, "--tailer-extra")
            .unwrap_or_default()
            .replace("\\n", "\n"),
    };
    let modes: Vec<String> = arg_value(&args, "--notify")
        .unwrap_or_else(|| "on,off".into())
        .split(',')
        .map(|s| s.trim().to_owned())
        .collect();
    let dir_arg = arg_value(&args, "--dir");
    let (dir, _keep) = common::work_dir(dir_arg.as_deref())?;

    println!("# tailer_files");
    println!("machine: {}", common::machine_notes());
    println!(
        "{} files in {} directories (`**` pattern), 1% of files written per second, {} new files per second",
        settings.files, settings.dirs, settings.new_per_sec
    );
    let mut rows = Vec::new();
    for mode in modes {
        let notify = mode != "off";
        let r = run(&dir.join(format!("notify-{mode}")), &settings, notify)?;
        rows.push((mode, r));
    }
    println!();
    println!(
        "| notify | catch-up | CPU idle | CPU active | peak RSS | peak fds (log files) | appended p50 / p99 / max | new file p50 / p99 / max | committed / written |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (mode, r) in rows {
        let lat = |v: &[f64]| {
            let mut v = v.to_vec();
            v.sort_by(f64::total_cmp);
            format!(
                "{:.2} / {:.2} / {:.2} s",
                percentile(&v, 50.0),
                percentile(&v, 99.0),
                percentile(&v, 100.0)
            )
        };
        println!(
            "| {mode} | {:.1} s | {:.2}% | {:.2}% | {:.1} MiB | {} ({}) | {} | {} | {} / {} |",
            r.catch_up_secs,
            r.cpu_idle * 100.0,
            r.cpu_active * 100.0,
            r.peak_rss_kib as f64 / 1024.0,
            r.peak_fds,
            r.peak_log_fds,
            lat(&r.appended_secs),
            lat(&r.new_file_secs),
            r.committed,
            r.written,
        );
    }
    println!(
        "Targets (issue 14): <= 3% of a core idle-ish, <= 2 descriptors per active file plus a bounded pool, new files within 2 s, no line lost."
    );
    Ok(())
}

struct RunResult {
    catch_up_secs: f64,
    cpu_idle: f64,
    cpu_active: f64,
    peak_rss_kib: u64,
    peak_fds: usize,
    peak_log_fds: usize,
    appended_secs: Vec<f64>,
    new_file_secs: Vec<f64>,
    committed: usize,
    written: usize,
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// One crawl.log line stamped with its write time and a kind (`a` appended, `n` first
/// line of a new file, `s` first line at the start).
fn line(rng: &mut StdRng, kind: char, out: &mut Vec<u8>) {
    let host = format!("www.h{}.example.org", rng.random_range(0..1_000_000u32));
    let digest: String = (0..32)
        .map(|_| char::from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[rng.random_range(0..32)]))
        .collect();
    writeln!(
        out,
        "{} 200 {:>10} http://{host}/p/{} L http://{host}/ text/html #{:03} 20261204000000000+{} sha1:{digest} - {kind}wt:{}",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ"),
        rng.random_range(100..1_000_000u32),
        rng.random_range(0..u64::MAX),
        rng.random_range(0..100u32),
        rng.random_range(1..5000u32),
        now_us()
    )
    .unwrap();
}

/// The kind and write time in a line written by [`line`].
fn stamp(raw: &[u8]) -> Option<(u8, i64)> {
    let at = raw.windows(3).position(|w| w == b"wt:")?;
    let kind = *raw.get(at.checked_sub(1)?)?;
    let digits = &raw[at + 3..];
    let n = digits.iter().take_while(|c| c.is_ascii_digit()).count();
    Some((kind, std::str::from_utf8(&digits[..n]).ok()?.parse().ok()?))
}

fn append(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(bytes)?;
    Ok(())
}

/// Descriptors of `pid`: all, and those open on files under `logs`.
fn fds(pid: u32, logs: &Path) -> (usize, usize) {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return (0, 0);
    };
    let mut all = 0;
    let mut on_logs = 0;
    for e in dir.filter_map(Result::ok) {
        all += 1;
        if std::fs::read_link(e.path()).is_ok_and(|t| t.starts_with(logs)) {
            on_logs += 1;
        }
    }
    (all, on_logs)
}

fn run(dir: &Path, s: &Settings, notify: bool) -> anyhow::Result<RunResult> {
    let _ = std::fs::remove_dir_all(dir);
    let logs = dir.join("logs");
    let mut rng = StdRng::seed_from_u64(14);
    // Two levels: 50 top directories, the rest below them, so `**` has depth to walk.
    let dirs: Vec<PathBuf> = (0..s.dirs)
        .map(|d| logs.join(format!("d{}", d % 50)).join(format!("c{d}")))
        .collect();
    for d in &dirs {
        std::fs::create_dir_all(d)?;
    }
    let mut files: Vec<PathBuf> = (0..s.files)
        .map(|i| dirs[i % dirs.len()].join(format!("f{i}.log")))
        .collect();
    let mut buf = Vec::new();
    for f in &files {
        buf.clear();
        line(&mut rng, 's', &mut buf);
        std::fs::write(f, &buf)?;
    }
    let mut written = files.len();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let shutdown = CancellationToken::new();
    let buck_keys = KeyPair::generate();
    buck_keys.save(dir, "buck")?;
    let ingest = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let pattern = logs.join("**/*.log");
    let extra = format!(
        "{}\n{}",
        s.tailer_extra,
        if notify { "" } else { "use_notify = false" }
    );
    let setup = common::write_tailer_setup(
        &dir.join("tailer"),
        &[ingest.local_addr()?],
        &buck_keys.public_text(),
        &pattern,
        &extra,
    )?;
    let mut config = buck::BuckConfig::new("b0", dir.join("buck"));
    config.key_file = Some(dir.join("buck.key"));
    config.allowed_tailers = vec![setup.tailer_keys.public_text()];
    let handle = rt.block_on(buck::start(config, ingest, shutdown.clone()))?;

    // Every committed event: its id (once each) and, for stamped lines, the latency.
    let mut sub = handle.bus().subscribe();
    let (tx, rx) = std::sync::mpsc::channel::<(String, u8, f64)>();
    rt.spawn(async move {
        while let Some(item) = sub.recv().await {
            if let BusItem::Event(p) = item {
                let (kind, wt) = stamp(&p.event.raw).unwrap_or((b'?', now_us()));
                let secs = (now_us() - wt) as f64 / 1e6;
                if tx.send((p.event.id.to_string(), kind, secs)).is_err() {
                    break;
                }
            }
        }
    });
    let mut ids = HashSet::new();
    let mut duplicates = 0usize;
    let mut appended_secs = Vec::new();
    let mut new_file_secs = Vec::new();
    let mut drain = |ids: &mut HashSet<String>, appended: &mut Vec<f64>, new: &mut Vec<f64>| {
        while let Ok((id, kind, secs)) = rx.try_recv() {
            if !ids.insert(id) {
                duplicates += 1;
            }
            match kind {
                b'a' => appended.push(secs),
                b'n' => new.push(secs),
                _ => {}
            }
        }
    };

    let tailer = TailerProcess::spawn(&setup.config)?;
    let pid = tailer.pid();
    let (mut peak_fds, mut peak_log_fds) = (0, 0);
    let look = |peak_fds: &mut usize, peak_log_fds: &mut usize| {
        let (a, l) = fds(pid, &logs);
        *peak_fds = (*peak_fds).max(a);
        *peak_log_fds = (*peak_log_fds).max(l);
    };

    // 1. Catch-up.
    let started = Instant::now();
    while ids.len() < written {
        drain(&mut ids, &mut appended_secs, &mut new_file_secs);
        look(&mut peak_fds, &mut peak_log_fds);
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "only {} of {written} first lines committed after 10 minutes",
            ids.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let catch_up_secs = started.elapsed().as_secs_f64();
    println!(
        "notify {}: {written} first lines committed in {catch_up_secs:.1} s",
        if notify { "on" } else { "off" }
    );

    // 2. Idle.
    let c0 = tailer.sample().map_or(0.0, |p| p.cpu_secs);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(s.idle_secs) {
        std::thread::sleep(Duration::from_millis(500));
        look(&mut peak_fds, &mut peak_log_fds);
    }
    let cpu_idle = (tailer.sample().map_or(0.0, |p| p.cpu_secs) - c0) / t0.elapsed().as_secs_f64();

    // 3. Active: once a second, 1% of the files get a line and a few new files appear.
    let per_sec = (s.files / 100).max(1);
    let c0 = tailer.sample().map_or(0.0, |p| p.cpu_secs);
    let t0 = Instant::now();
    for second in 0..s.active_secs {
        let tick = t0 + Duration::from_secs(second);
        if let Some(wait) = tick.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        for _ in 0..per_sec {
            let f = &files[rng.random_range(0..files.len())];
            buf.clear();
            line(&mut rng, 'a', &mut buf);
            append(f, &buf)?;
            written += 1;
        }
        for _ in 0..s.new_per_sec {
            let f = dirs[rng.random_range(0..dirs.len())].join(format!("n{}.log", files.len()));
            buf.clear();
            line(&mut rng, 'n', &mut buf);
            append(&f, &buf)?;
            files.push(f);
            written += 1;
        }
        drain(&mut ids, &mut appended_secs, &mut new_file_secs);
        look(&mut peak_fds, &mut peak_log_fds);
    }
    let active_wall = t0.elapsed().as_secs_f64().max(1.0);
    let cpu_active = (tailer.sample().map_or(0.0, |p| p.cpu_secs) - c0) / active_wall;
    let peak_rss_kib = tailer.sample().map_or(0, |p| p.hwm_kib);
    // The last lines: wait for them (bounded), then count.
    let deadline = Instant::now() + Duration::from_secs(60);
    while ids.len() < written && Instant::now() < deadline {
        drain(&mut ids, &mut appended_secs, &mut new_file_secs);
        std::thread::sleep(Duration::from_millis(100));
    }
    drain(&mut ids, &mut appended_secs, &mut new_file_secs);
    tailer.stop();
    shutdown.cancel();
    rt.block_on(handle.join())?;
    if duplicates > 0 {
        println!("({duplicates} events published twice on the bus: late repair copies)");
    }
    Ok(RunResult {
        catch_up_secs,
        cpu_idle,
        cpu_active,
        peak_rss_kib,
        peak_fds,
        peak_log_fds,
        appended_secs,
        new_file_secs,
        committed: ids.len(),
        written,
    })
}
