//! `tailer_vs_rsyslog`: our tailer against rsyslog's imfile and syslog-ng's file source,
//! shipping the same 1 GiB crawl.log over TCP on 127.0.0.1, plus the tailer at a steady
//! 5,000 lines/s and a SIGKILL in mid-stream. Prints tables; not a test, not run by CI.
//!
//! ```text
//! scripts/install-bench-deps        # rsyslog from Debian, syslog-ng unpacked in target/
//! cargo build --release -p sluice-bench
//! target/release/tailer_vs_rsyslog [--size-mib 1024] [--dir D] [--no-rsyslog]
//!     [--no-syslog-ng] [--syslog-ng-dir D] [--steady-secs 30] [--rate 5000] [--no-kill]
//!     [--steady-only] [--steady-extra 'read_coalesce_ms = 50'] [--stage-costs-only]
//! ```
//!
//! `--steady-only` runs the steady rate alone; `--steady-extra` adds TOML lines to the
//! steady tailer's config, to compare settings at the same rate.
//!
//! After the throughput table it prints the stage table: what encoding the events into
//! packets, zlib and sealing alone cost per GiB of log (`common/stage_costs.rs`), on the
//! real Heritrix logs and the start of the generated log, version-1 frames beside frame
//! streams. `--stage-costs-only` prints just that table (with the tailer's defaults),
//! without running any shipper.
//!
//! The tailer runs as a child process (this binary re-run with `--tailer-child`), so its
//! CPU time (`/proc/<pid>/stat` utime + stime) and peak RSS (`VmHWM`) are its own: read,
//! parse, frame, spool (fsync), zlib level 1, crypto_box, TCP. It ships to a sink in this
//! process that speaks the real protocol (hello, a sealed session, an ack per message) and
//! keeps only the event ids, so a duplicate is counted and never stored twice. rsyslogd
//! (`-n -f conf -i pidfile`) follows the same file with imfile and forwards it with omfwd;
//! syslog-ng (`-F`, a `file()` source with `flags(no-parse)` into a `network()`
//! destination) does the same. Each forwards the raw line plus a newline to a plain TCP
//! sink of its own that counts newline-framed lines, and is measured as the tailer is.
//!
//! syslog-ng's Debian package conflicts with rsyslog's, so `scripts/install-bench-deps`
//! unpacks it (and the libraries it needs that the machine lacks) into
//! `target/bench-deps/syslog-ng`; the run points `LD_LIBRARY_PATH` and `--module-path`
//! there. A syslog-ng installed as a system package is used when nothing is unpacked.

// A test or bench crate: its helpers may unwrap (clippy.toml allows it only in #[test] fns).
#![allow(clippy::unwrap_used)]

#[path = "../common/stage_costs.rs"]
mod stage_costs;

#[path = "../common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use common::{ProcSample, TailerProcess, arg_value};
use contracts::EventId;
use contracts::frame::FrameReader;
use contracts::keys::KeyPair;
use contracts::transport::{
    self, ClientHello, Message, PROTOCOL_MAX, PROTOCOL_MIN, ServerHello, codec,
};
use futures::{SinkExt as _, StreamExt as _};
use stage_costs::Encoding;
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

const MIB: f64 = 1024.0 * 1024.0;

/// The tailer's `packet_max_bytes` and `compression_level` when its config names none
/// (docs/config.md): what `--stage-costs-only` measures with, having no tailer run.
const DEFAULT_PACKET_MAX_BYTES: usize = 64 * 1024;
const DEFAULT_COMPRESSION_LEVEL: u32 = 1;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(common::TAILER_CHILD_ARG) {
        return common::tailer_child(Path::new(&args[2]));
    }
    let size_mib: u64 = arg_value(&args, "--size-mib").map_or(Ok(1024), |v| v.parse())?;
    let steady_secs: u64 = arg_value(&args, "--steady-secs").map_or(Ok(30), |v| v.parse())?;
    let rate: u64 = arg_value(&args, "--rate").map_or(Ok(5000), |v| v.parse())?;
    let dir_arg = arg_value(&args, "--dir");
    let (dir, _keep) = common::work_dir(dir_arg.as_deref())?;
    let with_rsyslog = !args.iter().any(|a| a == "--no-rsyslog");
    let with_syslog_ng = !args.iter().any(|a| a == "--no-syslog-ng");
    let syslog_ng_dir =
        arg_value(&args, "--syslog-ng-dir").map_or_else(SyslogNg::default_dir, PathBuf::from);
    let with_kill = !args.iter().any(|a| a == "--no-kill");
    let steady_only = args.iter().any(|a| a == "--steady-only");
    let steady_extra = arg_value(&args, "--steady-extra").unwrap_or_default();
    let stage_costs_only = args.iter().any(|a| a == "--stage-costs-only");
    // A reused --dir holds earlier runs' spools and offsets: every run starts empty.
    for run in [
        "tailer-run",
        "tailer-run-r2",
        "rsyslog-run",
        "syslog-ng-run",
        "steady-run",
        "kill-run",
    ] {
        let _ = std::fs::remove_dir_all(dir.join(run));
    }

    println!("# tailer_vs_rsyslog");
    println!("machine: {}", common::machine_notes());
    println!("work dir: {}", dir.display());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let buck_keys = KeyPair::generate();
    if steady_only {
        return print_steady(&rt, &buck_keys, &dir, steady_secs, rate, &steady_extra);
    }

    let log = dir.join("crawl.log");
    let t = Instant::now();
    let start = chrono::Utc::now() - chrono::Duration::minutes(30);
    let lines = common::write_crawl_log(&log, size_mib << 20, start)?;
    // Written back before any agent runs: else the first one measured meets the kernel
    // still writing these pages while it fsyncs its own spool (8.58 against 5.76-6.16
    // CPU-s per GiB for the same build, docs/benchmarks.md).
    std::fs::File::open(&log)?.sync_all()?;
    let bytes = std::fs::metadata(&log)?.len();
    println!(
        "generated {} ({:.0} MiB, {lines} lines, mean {:.0} bytes a line) in {:.1} s, written back; it stays in the page cache",
        log.display(),
        bytes as f64 / MIB,
        bytes as f64 / lines as f64,
        t.elapsed().as_secs_f64()
    );

    if stage_costs_only {
        print_stage_costs(&log, DEFAULT_PACKET_MAX_BYTES, DEFAULT_COMPRESSION_LEVEL);
        return Ok(());
    }

    let mut rows = Vec::new();
    let ours = run_tailer_throughput(&rt, &buck_keys, &dir.join("tailer-run"), &log, lines, 1)?;
    rows.push(("sluice tailer, one home (this run)".to_owned(), ours));
    let ours = run_tailer_throughput(&rt, &buck_keys, &dir.join("tailer-run-r2"), &log, lines, 2)?;
    rows.push((
        "sluice tailer, two homes, R = 2 (this run)".to_owned(),
        ours,
    ));
    let file = LogFile {
        path: &log,
        lines,
        bytes,
    };
    if with_rsyslog {
        match run_rsyslog(&rt, &dir.join("rsyslog-run"), &file) {
            Ok(f) => rows.push(("rsyslog imfile+omfwd (this run)".to_owned(), f)),
            Err(e) => println!("rsyslog: not measured: {e:#}"),
        }
    }
    if with_syslog_ng {
        match SyslogNg::find(&syslog_ng_dir) {
            Ok(Some(sng)) => match run_syslog_ng(&rt, &sng, &dir.join("syslog-ng-run"), &file) {
                Ok(f) => rows.push((format!("syslog-ng {} file+tcp (this run)", sng.version), f)),
                Err(e) => println!("syslog-ng: not measured: {e:#}"),
            },
            Ok(None) => println!(
                "syslog-ng: not measured: not in {} nor on the PATH; `scripts/install-bench-deps` unpacks it into target/bench-deps/syslog-ng (or pass --no-syslog-ng)",
                syslog_ng_dir.display()
            ),
            Err(e) => println!("syslog-ng: not measured: {e:#}"),
        }
    }
    print_throughput(&rows, bytes, lines);
    // The stage table cuts and compresses as the one-home run's tailer did.
    match tailer::config::TailerConfig::load(&dir.join("tailer-run").join("tailer.toml")) {
        Ok(c) => print_stage_costs(&log, c.packet_max_bytes, c.compression_level),
        Err(e) => println!("stage costs: not measured: {e}"),
    }

    print_steady(&rt, &buck_keys, &dir, steady_secs, rate, &steady_extra)?;

    if with_kill {
        let k = run_kill(&rt, &buck_keys, &dir.join("kill-run"), &log, lines)?;
        println!();
        println!("## SIGKILL of the tailer in mid-stream, then a restart (same state and spool)");
        println!(
            "| lines | killed at (unique received) | unique received | lost | duplicates received | done after restart |"
        );
        println!("|---|---|---|---|---|---|");
        println!(
            "| {lines} | {} | {} | {} | {} | {:.1} s |",
            k.killed_at,
            k.unique,
            lines.saturating_sub(k.unique),
            k.duplicates,
            k.restart_secs
        );
    }
    Ok(())
}

/// At most this much of the generated log goes through the stage table: its figures are
/// per GiB, and the events of a 1 GiB log would hold about 2 GiB of memory.
const STAGE_LOG_MAX: u64 = 256 << 20;

/// Prints what encoding, zlib and crypto_box alone cost per GiB of log, on the real
/// Heritrix logs and on (the start of) the generated `log`, cut into packets as the
/// shipper of a tailer with these settings cuts them: the part of the tailer's CPU-seconds per
/// GiB that is theirs.
fn print_stage_costs(log: &Path, packet_max: usize, level: u32) {
    println!();
    println!(
        "## encoding, zlib and crypto_box alone on the tailer's packets (one thread, the shipper's own calls)"
    );
    match common::real_crawl_logs() {
        Ok((files, real)) => print_stage_table(
            &format!("real Heritrix logs ({files} files)"),
            &real,
            packet_max,
            level,
        ),
        Err(e) => println!("real Heritrix logs: not measured: {e:#}"),
    }
    let generated = std::fs::File::open(log).and_then(|f| {
        let mut head = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(f, STAGE_LOG_MAX), &mut head)?;
        Ok(head)
    });
    match generated {
        Ok(mut head) => {
            // Whole lines only.
            let end = head
                .iter()
                .rposition(|&c| c == b'\n')
                .map_or(0, |at| at + 1);
            head.truncate(end);
            print_stage_table(
                "generated crawl.log lines (random hosts, paths, sha1)",
                &head,
                packet_max,
                level,
            );
        }
        Err(e) => println!("{}: not measured: {e}", log.display()),
    }
}

/// One stage table over `log`, version-1 frames beside frame streams.
fn print_stage_table(name: &str, log: &[u8], packet_max: usize, level: u32) {
    let events = common::log_inputs::crawl_log_events(log);
    let rounds = common::log_inputs::rounds_for(log);
    println!();
    println!(
        "{name}: {:.1} MiB of log, {} lines, {rounds} round(s); packets of at most {} KiB, zlib level {level}",
        log.len() as f64 / MIB,
        events.len(),
        packet_max / 1024,
    );
    println!(
        "| frames | frames / log | packets | zlib out / log | encode | zlib | seal XSalsa20 (v1) | seal XChaCha20 (v2+) | zlib + XChaCha20 | repair, two homes, compressed per connection | repair, two homes, compressed once |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for encoding in Encoding::ALL {
        let c = match stage_costs::measure(
            &events,
            log.len() as u64,
            encoding,
            packet_max,
            level,
            rounds,
        ) {
            Ok(c) => c,
            Err(e) => {
                println!("| {} | not measured: {e:#} |", encoding.name());
                continue;
            }
        };
        println!(
            "| {} | {:.3} | {} | {:.3} | {:.2} | {:.2} | {:.2} | {:.2} | **{:.2}** | {:.2} | {:.2} |",
            encoding.name(),
            c.frame_bytes as f64 / log.len() as f64,
            c.packets,
            c.deflated_bytes as f64 / log.len() as f64,
            c.per_gib(c.encode_secs),
            c.per_gib(c.deflate_secs),
            c.per_gib(c.seal_secs),
            c.per_gib(c.seal_chacha_secs),
            c.per_gib(c.deflate_secs + c.seal_chacha_secs),
            c.per_gib(c.repair_two_homes_per_connection_secs),
            c.per_gib(c.repair_two_homes_once_secs),
        );
    }
    println!("(CPU-s per GiB of log, this thread's user + system time)");
}

/// What one shipper cost to move the whole file.
#[derive(Debug, Clone, Copy)]
struct Figures {
    secs: f64,
    cpu_secs: f64,
    hwm_kib: u64,
}

/// The generated file every shipper reads: its path, line count and size.
struct LogFile<'a> {
    path: &'a Path,
    lines: u64,
    bytes: u64,
}

fn print_throughput(rows: &[(String, Figures)], bytes: u64, lines: u64) {
    println!();
    println!("## whole file, tail to TCP on 127.0.0.1 (page cache warm)");
    println!("| shipper | MiB/s | MB/s | lines/s | CPU-s per GiB | CPU-s per GB | peak RSS |");
    println!("|---|---|---|---|---|---|---|");
    let b = bytes as f64;
    for (name, f) in rows {
        println!(
            "| {name} | {:.1} | {:.1} | {:.0} | {:.2} | {:.2} | {:.1} MiB |",
            b / MIB / f.secs,
            b / 1e6 / f.secs,
            lines as f64 / f.secs,
            f.cpu_secs / (b / (1024.0 * MIB)),
            f.cpu_secs / (b / 1e9),
            f.hwm_kib as f64 / 1024.0
        );
    }
    println!("| Fluent Bit 5.1 tuned, raw lines (FACTS.md) | | 91-101 | | | 8.1-8.6 | 55-60 MiB |");
    println!("| syslog-ng 3.38 (FACTS.md) | | 49-50 | | | 18-19 | 11-13 MiB |");
    println!("| rsyslog 8.2302 imfile (FACTS.md) | | 40-44 | | | 24-29 | 70-301 MiB |");
    println!(
        "Peers (FACTS.md) forward raw lines, unparsed, unencrypted, uncompressed; ours parses, spools, compresses and seals."
    );
}

fn tailer_extra_for_bulk() -> &'static str {
    // A 1 GiB file read in seconds lands in one or two spool buckets: the default 1 GiB
    // spool limit would pause reading until a bucket seals, which measures the bucket
    // interval, not the tailer.
    "spool_max_bytes = 8589934592\n"
}

fn run_tailer_throughput(
    rt: &tokio::runtime::Runtime,
    buck_keys: &KeyPair,
    dir: &Path,
    log: &Path,
    lines: u64,
    homes: usize,
) -> anyhow::Result<Figures> {
    let sinks = (0..homes)
        .map(|i| rt.block_on(ProtocolSink::start(buck_keys.clone(), &format!("b{i}"))))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let addrs: Vec<SocketAddr> = sinks.iter().map(|s| s.addr).collect();
    let setup = common::write_tailer_setup(
        dir,
        &addrs,
        &buck_keys.public_text(),
        log,
        tailer_extra_for_bulk(),
    )?;
    for sink in &sinks {
        sink.allow(*setup.tailer_keys.public().as_bytes());
    }
    let me = std::process::id();
    let sink_cpu0 = common::sample(me).unwrap_or_default().cpu_secs;
    let tailer = TailerProcess::spawn(&setup.config)?;
    let (secs, last) = wait_for(&tailer, Duration::from_secs(600), || {
        sinks
            .iter()
            .all(|s| s.state.unique.load(Ordering::SeqCst) >= lines)
    });
    let sink_cpu = common::sample(me).unwrap_or_default().cpu_secs - sink_cpu0;
    let got = sinks
        .iter()
        .map(|s| s.state.unique.load(Ordering::SeqCst))
        .min()
        .unwrap_or(0);
    tailer.stop();
    let metrics = setup.config.with_extension("metrics");
    let sum = |f: fn(&SinkState) -> &AtomicU64| -> u64 {
        sinks
            .iter()
            .map(|s| f(&s.state).load(Ordering::SeqCst))
            .sum()
    };
    println!(
        "tailer to {homes} home(s): {got} of {lines} lines received by each in {secs:.1} s (tailer CPU {:.1} s, sinks and bench CPU {sink_cpu:.1} s; {} frames, {} connections); live copies dropped {}, skipped {}, repair chunks {}; counters in {}",
        last.cpu_secs,
        sum(|s| &s.frames),
        sum(|s| &s.connections),
        common::metric(&metrics, "sluice_tailer_live_dropped_total"),
        common::metric(&metrics, "sluice_tailer_live_skipped_total"),
        common::metric(&metrics, "sluice_tailer_repair_chunks_sent_total"),
        metrics.display()
    );
    if got < lines {
        for (i, sink) in sinks.iter().enumerate() {
            let errors = sink.state.errors.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(e) = errors.first() {
                println!("sink b{i}: {} connection errors, first: {e}", errors.len());
            }
        }
        bail!("the tailer delivered {got} of {lines} lines in 600 s");
    }
    Ok(Figures {
        secs,
        cpu_secs: last.cpu_secs,
        hwm_kib: last.hwm_kib,
    })
}

/// Polls `done` every 20 ms and the process every 100 ms; returns the seconds from the
/// process's start to `done` and its last sample.
fn wait_for(
    p: &TailerProcess,
    limit: Duration,
    mut done: impl FnMut() -> bool,
) -> (f64, ProcSample) {
    wait_pid(p.pid(), p.started, limit, &mut done)
}

fn wait_pid(
    pid: u32,
    started: Instant,
    limit: Duration,
    done: &mut dyn FnMut() -> bool,
) -> (f64, ProcSample) {
    let mut last = ProcSample::default();
    let mut n = 0u64;
    while started.elapsed() < limit {
        if n.is_multiple_of(5)
            && let Some(s) = common::sample(pid)
        {
            last = s;
        }
        n += 1;
        if done() {
            let secs = started.elapsed().as_secs_f64();
            if let Some(s) = common::sample(pid) {
                last = s;
            }
            return (secs, last);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (started.elapsed().as_secs_f64(), last)
}

// ---------------------------------------------------------------------------------------
// rsyslog and syslog-ng: shippers of raw lines

/// How long a line shipper may run in all before it counts as short of lines.
const SHIPPER_LIMIT: Duration = Duration::from_secs(600);
/// How long a line shipper may go without delivering a new line before it counts as
/// stalled (it has read everything it will read, or never started).
const SHIPPER_STALL: Duration = Duration::from_secs(60);

fn run_rsyslog(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    file: &LogFile,
) -> anyhow::Result<Figures> {
    let rsyslogd = which("rsyslogd").context(
        "rsyslogd not found: install it with `scripts/install-bench-deps` (or `apt-get install -y rsyslog`)",
    )?;
    std::fs::create_dir_all(dir.join("work"))?;
    let sink = rt.block_on(LineSink::start())?;
    let conf = dir.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{work}" maxMessageSize="64k")
module(load="imfile")
template(name="line" type="string" string="%msg%\n")
input(type="imfile" file="{log}" tag="crawl" ruleset="fwd")
ruleset(name="fwd") {{
  action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp" template="line")
}}
"#,
            work = dir.join("work").display(),
            log = file.path.display(),
            port = sink.addr.port()
        ),
    )?;
    let mut check = Command::new(&rsyslogd);
    check.args(["-N1", "-f"]).arg(&conf);
    config_check("rsyslogd -N1", check, &conf)?;
    let mut cmd = Command::new(&rsyslogd);
    cmd.arg("-n")
        .arg("-f")
        .arg(&conf)
        .arg("-i")
        .arg(dir.join("rsyslogd.pid"));
    measure_line_shipper("rsyslogd", cmd, &dir.join("rsyslogd.err"), &sink, file)
}

/// A syslog-ng to run: unpacked by `scripts/install-bench-deps`, or a system install.
struct SyslogNg {
    binary: PathBuf,
    /// `--module-path` for an unpacked one (its compiled-in path is under /usr).
    module_dir: Option<PathBuf>,
    /// Directories for `LD_LIBRARY_PATH`: libsyslog-ng's own and the unpacked libraries.
    lib_dirs: Vec<PathBuf>,
    /// As `--version` prints it in parentheses: "3.38.1".
    version: String,
}

impl SyslogNg {
    /// Where `scripts/install-bench-deps` unpacks it: `target/bench-deps/syslog-ng` in the
    /// workspace this binary was built from.
    fn default_dir() -> PathBuf {
        let bench = Path::new(env!("CARGO_MANIFEST_DIR"));
        bench
            .parent()
            .unwrap_or(bench)
            .join("target/bench-deps/syslog-ng")
    }

    /// The one unpacked under `root`, else one on the PATH; `Ok(None)` when there is
    /// neither, an error when the one found does not run.
    fn find(root: &Path) -> anyhow::Result<Option<SyslogNg>> {
        let unpacked = root.join("usr/sbin/syslog-ng");
        let mut sng = if unpacked.is_file() {
            let lib = root.join("usr/lib/syslog-ng");
            // Modules sit in a directory named after the version (usr/lib/syslog-ng/3.38).
            let module_dir = std::fs::read_dir(&lib)
                .with_context(|| format!("reading {}", lib.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|d| d.join("libaffile.so").is_file())
                .with_context(|| format!("no syslog-ng modules under {}", lib.display()))?;
            // The unpacked libraries' multiarch directories (usr/lib/x86_64-linux-gnu ...).
            let mut lib_dirs = vec![lib];
            for parent in [root.join("usr/lib"), root.join("lib")] {
                let Ok(entries) = std::fs::read_dir(&parent) else {
                    continue;
                };
                lib_dirs.extend(
                    entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|d| d.is_dir() && d.to_string_lossy().ends_with("-linux-gnu")),
                );
            }
            SyslogNg {
                binary: unpacked,
                module_dir: Some(module_dir),
                lib_dirs,
                version: String::new(),
            }
        } else if let Some(binary) = which("syslog-ng") {
            SyslogNg {
                binary,
                module_dir: None,
                lib_dirs: Vec::new(),
                version: String::new(),
            }
        } else {
            return Ok(None);
        };
        let out = sng
            .command()
            .arg("--version")
            .output()
            .with_context(|| format!("running {} --version", sng.binary.display()))?;
        if !out.status.success() {
            bail!(
                "{} --version failed (run scripts/install-bench-deps again?): {}",
                sng.binary.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        // The first line reads "syslog-ng 3 (3.38.1)".
        let text = String::from_utf8_lossy(&out.stdout);
        let first = text.lines().next().unwrap_or_default();
        sng.version = first
            .split_once('(')
            .and_then(|(_, v)| v.split_once(')'))
            .map_or_else(|| first.to_owned(), |(v, _)| v.to_owned());
        Ok(Some(sng))
    }

    /// A command running this syslog-ng with its libraries and modules found.
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        if !self.lib_dirs.is_empty() {
            let inherited = std::env::var_os("LD_LIBRARY_PATH").unwrap_or_default();
            let dirs = self
                .lib_dirs
                .iter()
                .cloned()
                .chain(std::env::split_paths(&inherited));
            if let Ok(joined) = std::env::join_paths(dirs) {
                cmd.env("LD_LIBRARY_PATH", joined);
            }
        }
        if let Some(m) = &self.module_dir {
            cmd.arg(format!("--module-path={}", m.display()));
        }
        cmd
    }

    /// The `@version:` a config declares: major.minor of this syslog-ng.
    fn config_version(&self) -> String {
        self.version
            .split('.')
            .take(2)
            .collect::<Vec<_>>()
            .join(".")
    }
}

fn run_syslog_ng(
    rt: &tokio::runtime::Runtime,
    sng: &SyslogNg,
    dir: &Path,
    file: &LogFile,
) -> anyhow::Result<Figures> {
    std::fs::create_dir_all(dir)?;
    let sink = rt.block_on(LineSink::start())?;
    let conf = dir.join("syslog-ng.conf");
    // flags(no-parse): the whole line is ${MESSAGE}, no syslog header looked for, and the
    // template sends it back out with a newline, as rsyslog's `%msg%\n` does.
    // flags(flow-control) on the log path: without it syslog-ng drops lines once the
    // destination's queue (log-fifo-size) is full, which a file read at full speed fills;
    // with it the file source waits, as rsyslog's imfile does behind its queue.
    // Everything else keeps its default.
    std::fs::write(
        &conf,
        format!(
            r#"@version: {version}
options {{ stats-freq(0); }};
source s_crawl {{ file("{log}" flags(no-parse)); }};
destination d_sink {{
  network("127.0.0.1" port({port}) transport("tcp") template("${{MESSAGE}}\n"));
}};
log {{ source(s_crawl); destination(d_sink); flags(flow-control); }};
"#,
            version = sng.config_version(),
            log = file.path.display(),
            port = sink.addr.port()
        ),
    )?;
    let mut check = sng.command();
    check.arg("--syntax-only").arg("-f").arg(&conf);
    config_check("syslog-ng --syntax-only", check, &conf)?;
    // Its state (persist file, control socket, pid file) stays in the work dir, so it
    // starts at offset 0 and touches nothing of a system syslog-ng. -e sends its own
    // messages to stderr, kept in syslog-ng.err.
    let mut cmd = sng.command();
    cmd.args(["-F", "-e", "--no-caps", "-f"])
        .arg(&conf)
        .arg("-R")
        .arg(dir.join("syslog-ng.persist"))
        .arg("-c")
        .arg(dir.join("syslog-ng.ctl"))
        .arg("-p")
        .arg(dir.join("syslog-ng.pid"));
    measure_line_shipper("syslog-ng", cmd, &dir.join("syslog-ng.err"), &sink, file)
}

/// Runs a shipper's own config check; fails with what it printed.
fn config_check(what: &str, mut check: Command, conf: &Path) -> anyhow::Result<()> {
    let out = check.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} rejects {}: {}{}",
            conf.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Starts `cmd`, a shipper forwarding the raw lines of `file` to `sink`, and measures it
/// as the tailer is measured: CPU time and peak RSS of its process from `/proc`, and the
/// time from its start until the sink holds every line. Then stops it (SIGTERM, SIGKILL
/// after 20 s). Fails, with the shortfall, when it exits, stalls for [`SHIPPER_STALL`] or
/// runs past [`SHIPPER_LIMIT`] first.
fn measure_line_shipper(
    name: &str,
    mut cmd: Command,
    stderr: &Path,
    sink: &LineSink,
    file: &LogFile,
) -> anyhow::Result<Figures> {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(stderr)?))
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    let pid = child.id();
    let (mut seen, mut seen_at) = (0, Instant::now());
    let mut exited = None;
    let (secs, last) = wait_pid(pid, started, SHIPPER_LIMIT, &mut || {
        let got = sink.lines.load(Ordering::SeqCst);
        if got >= file.lines {
            return true;
        }
        if got != seen {
            (seen, seen_at) = (got, Instant::now());
        }
        if let Ok(Some(status)) = child.try_wait() {
            exited = Some(status);
            return true;
        }
        seen_at.elapsed() >= SHIPPER_STALL
    });
    let got = sink.lines.load(Ordering::SeqCst);
    let got_bytes = sink.bytes.load(Ordering::SeqCst);
    common::signal(pid, libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && !matches!(child.try_wait(), Ok(Some(_))) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "{name}: {got} of {} lines and {got_bytes} of {} bytes received in {secs:.1} s (CPU {:.1} s; its messages in {})",
        file.lines,
        file.bytes,
        last.cpu_secs,
        stderr.display()
    );
    let short = file.lines.saturating_sub(got);
    if let Some(status) = exited {
        bail!(
            "{name} exited ({status}) with {short} of {} lines undelivered",
            file.lines
        );
    }
    if short > 0 {
        bail!(
            "{name} delivered {got} of {} lines, {short} short, after {secs:.0} s (the last {} s with nothing new)",
            file.lines,
            seen_at.elapsed().as_secs()
        );
    }
    Ok(Figures {
        secs,
        cpu_secs: last.cpu_secs,
        hwm_kib: last.hwm_kib,
    })
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A plain TCP sink: counts non-empty newline-terminated lines and their bytes.
struct LineSink {
    addr: SocketAddr,
    lines: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
}

impl LineSink {
    async fn start() -> anyhow::Result<LineSink> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let lines = Arc::new(AtomicU64::new(0));
        let bytes = Arc::new(AtomicU64::new(0));
        let (l, b) = (lines.clone(), bytes.clone());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let (l, b) = (l.clone(), b.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 1 << 16];
                    let mut line_len = 0u64;
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let mut done = 0u64;
                        for &c in &buf[..n] {
                            if c == b'\n' {
                                if line_len > 0 {
                                    done += 1;
                                }
                                line_len = 0;
                            } else {
                                line_len += 1;
                            }
                        }
                        b.fetch_add(n as u64, Ordering::SeqCst);
                        l.fetch_add(done, Ordering::SeqCst);
                    }
                });
            }
        });
        Ok(LineSink { addr, lines, bytes })
    }
}

// ---------------------------------------------------------------------------------------
// The protocol sink: a buck that keeps only ids.

#[derive(Default)]
struct SinkState {
    allowed: Mutex<Vec<[u8; 32]>>,
    copies: Mutex<HashMap<EventId, u32>>,
    unique: AtomicU64,
    frames: AtomicU64,
    connections: AtomicU64,
    errors: Mutex<Vec<String>>,
}

struct ProtocolSink {
    addr: SocketAddr,
    state: Arc<SinkState>,
}

impl ProtocolSink {
    /// A sink answering as buck `id` (the tailer checks it against the cluster file).
    async fn start(keys: KeyPair, id: &str) -> anyhow::Result<ProtocolSink> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(SinkState::default());
        let s = state.clone();
        let id = id.to_owned();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (s, keys, id) = (s.clone(), keys.clone(), id.clone());
                tokio::spawn(async move {
                    if let Err(e) = serve(stream, &s, &keys, &id).await {
                        s.errors.lock().unwrap_or_else(|e| e.into_inner()).push(e);
                    }
                });
            }
        });
        Ok(ProtocolSink { addr, state })
    }

    fn allow(&self, key: [u8; 32]) {
        self.state
            .allowed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(key);
    }
}

async fn serve(
    stream: TcpStream,
    s: &SinkState,
    keys: &KeyPair,
    buck_id: &str,
) -> Result<(), String> {
    let mut wire = Framed::new(stream, codec());
    let hello_bytes = match wire.next().await {
        Some(Ok(b)) => b,
        _ => return Ok(()),
    };
    let hello = ClientHello::decode(&hello_bytes).map_err(|e| format!("hello: {e}"))?;
    let allowed = s
        .allowed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&hello.public_key);
    let version = hello.negotiate(PROTOCOL_MIN, PROTOCOL_MAX);
    let (true, Some(version)) = (allowed, version) else {
        let reject = ServerHello::Reject {
            reason: "not allowed".into(),
        };
        let _ = wire.send(Bytes::from(reject.encode())).await;
        return Err("a tailer was refused".into());
    };
    let tailer_key = crypto_box::PublicKey::from(hello.public_key);
    let pair = hello.encrypted.then(|| (keys.secret(), &tailer_key));
    let accepted = transport::accept(&hello_bytes, version, PROTOCOL_MAX, buck_id, pair);
    if wire.send(Bytes::from(accepted.answer)).await.is_err() {
        return Ok(());
    }
    s.connections.fetch_add(1, Ordering::SeqCst);
    let mut session = accepted.session;
    while let Some(Ok(buf)) = wire.next().await {
        let msg = session.open(&buf).map_err(|e| format!("open: {e}"))?;
        let reply = match msg {
            Message::Ping { token } => Message::Pong { token },
            Message::Live { seq, frames } | Message::BucketChunk { seq, frames, .. } => {
                store(s, &frames)?;
                Message::Ack {
                    seq,
                    rejected: Vec::new(),
                }
            }
            _ => continue,
        };
        let sealed = session.seal(&reply).map_err(|e| format!("seal: {e}"))?;
        if wire.send(Bytes::from(sealed)).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// Counts the frames' event ids. Only the id is decoded (version, tailer, file seq,
/// offset: the encoding's first fields), so the sink costs little beside the tailer.
fn store(s: &SinkState, frames: &[u8]) -> Result<(), String> {
    let mut ids = Vec::new();
    // A frame stream: context frames say what the compact events after them share.
    let mut reader = contracts::frame_stream::FrameStreamReader::new();
    for item in FrameReader::new(frames) {
        let (_, payload) = item.map_err(|e| format!("torn frame: {e}"))?;
        match reader.read(payload) {
            contracts::frame_stream::FrameRead::Event(e) => ids.push(e.id),
            contracts::frame_stream::FrameRead::Context => {}
            contracts::frame_stream::FrameRead::BadContext(e)
            | contracts::frame_stream::FrameRead::BadEvent { error: e, .. } => {
                return Err(format!("bad event: {e}"));
            }
        }
    }
    let mut copies = s.copies.lock().unwrap_or_else(|e| e.into_inner());
    let mut new = 0;
    for id in &ids {
        let n = copies.entry(*id).or_insert(0);
        if *n == 0 {
            new += 1;
        }
        *n += 1;
    }
    s.frames.fetch_add(ids.len() as u64, Ordering::SeqCst);
    s.unique.fetch_add(new, Ordering::SeqCst);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Steady rate

struct Steady {
    cpu_mean: f64,
    cpu_max: f64,
    rss_mean_kib: f64,
    rss_max_kib: u64,
    hwm_kib: u64,
    written: u64,
    delivered: u64,
}

/// Runs the tailer at a steady rate and prints its row.
fn print_steady(
    rt: &tokio::runtime::Runtime,
    buck_keys: &KeyPair,
    dir: &Path,
    secs: u64,
    rate: u64,
    extra: &str,
) -> anyhow::Result<()> {
    let steady = run_steady(rt, buck_keys, dir, secs, rate, extra)?;
    println!();
    println!("## tailer at a steady {rate} lines/s for {secs} s (sampled every second)");
    if !extra.is_empty() {
        println!("config added: {extra}");
    }
    println!(
        "| CPU % mean | CPU % max (1 s) | RSS mean | RSS max | peak RSS (VmHWM) | delivered |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {:.1} | {:.1} | {:.1} MiB | {:.1} MiB | {:.1} MiB | {} of {} |",
        steady.cpu_mean,
        steady.cpu_max,
        steady.rss_mean_kib / 1024.0,
        steady.rss_max_kib as f64 / 1024.0,
        steady.hwm_kib as f64 / 1024.0,
        steady.delivered,
        steady.written
    );
    Ok(())
}

fn run_steady(
    rt: &tokio::runtime::Runtime,
    buck_keys: &KeyPair,
    dir: &Path,
    secs: u64,
    rate: u64,
    extra: &str,
) -> anyhow::Result<Steady> {
    let dir = dir.join("steady-run");
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("steady.log");
    std::fs::write(&log, b"")?;
    let sink = rt.block_on(ProtocolSink::start(buck_keys.clone(), "b0"))?;
    let setup =
        common::write_tailer_setup(&dir, &[sink.addr], &buck_keys.public_text(), &log, extra)?;
    sink.allow(*setup.tailer_keys.public().as_bytes());
    let tailer = TailerProcess::spawn(&setup.config)?;
    std::thread::sleep(Duration::from_secs(2));
    let total = secs * rate;
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || write_at_rate(&log, rate, total))
    };
    let mut prev = tailer.sample().unwrap_or_default();
    let (mut cpu, mut rss) = (Vec::new(), Vec::new());
    let t0 = Instant::now();
    for i in 1..=secs {
        let next = t0 + Duration::from_secs(i);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let s = tailer.sample().unwrap_or_default();
        cpu.push((s.cpu_secs - prev.cpu_secs) * 100.0);
        rss.push(s.rss_kib);
        prev = s;
    }
    let written = writer
        .join()
        .map_err(|_| anyhow::anyhow!("writer panicked"))??;
    let deadline = Instant::now() + Duration::from_secs(30);
    while sink.state.unique.load(Ordering::SeqCst) < written && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let last = tailer.sample().unwrap_or_default();
    tailer.stop();
    Ok(Steady {
        cpu_mean: cpu.iter().sum::<f64>() / cpu.len().max(1) as f64,
        cpu_max: cpu.iter().copied().fold(0.0, f64::max),
        rss_mean_kib: rss.iter().sum::<u64>() as f64 / rss.len().max(1) as f64,
        rss_max_kib: rss.iter().copied().max().unwrap_or(0),
        hwm_kib: last.hwm_kib,
        written,
        delivered: sink.state.unique.load(Ordering::SeqCst),
    })
}

/// Appends `total` lines at `rate` lines/s, in a write every 10 ms; returns the count.
fn write_at_rate(log: &Path, rate: u64, total: u64) -> anyhow::Result<u64> {
    let mut f = std::fs::OpenOptions::new().append(true).open(log)?;
    let mut lines_gen = common::LineGen::new(7);
    let t0 = Instant::now();
    let mut written = 0u64;
    let mut buf = Vec::new();
    while written < total {
        let due = ((t0.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        buf.clear();
        let now = chrono::Utc::now();
        while written < due {
            lines_gen.line(now, None, &mut buf);
            written += 1;
        }
        f.write_all(&buf)?;
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(written)
}

// ---------------------------------------------------------------------------------------
// SIGKILL mid-stream

struct Kill {
    killed_at: u64,
    unique: u64,
    duplicates: u64,
    restart_secs: f64,
}

fn run_kill(
    rt: &tokio::runtime::Runtime,
    buck_keys: &KeyPair,
    dir: &Path,
    log: &Path,
    lines: u64,
) -> anyhow::Result<Kill> {
    let sink = rt.block_on(ProtocolSink::start(buck_keys.clone(), "b0"))?;
    // Short buckets so the repair path (re-sent sealed buckets) shows within the run.
    let extra = format!(
        "{}bucket_interval_secs = 10\nrepair_delay_max_secs = 2\n",
        tailer_extra_for_bulk()
    );
    let setup =
        common::write_tailer_setup(dir, &[sink.addr], &buck_keys.public_text(), log, &extra)?;
    sink.allow(*setup.tailer_keys.public().as_bytes());
    let first = TailerProcess::spawn(&setup.config)?;
    wait_for(&first, Duration::from_secs(600), || {
        sink.state.unique.load(Ordering::SeqCst) >= lines / 2
    });
    first.kill();
    let killed_at = sink.state.unique.load(Ordering::SeqCst);
    let second = TailerProcess::spawn(&setup.config)?;
    let (restart_secs, _) = wait_for(&second, Duration::from_secs(600), || {
        sink.state.unique.load(Ordering::SeqCst) >= lines
    });
    // Let re-sent sealed buckets arrive: wait until no frame came for 15 s.
    let mut frames = sink.state.frames.load(Ordering::SeqCst);
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(200));
        let f = sink.state.frames.load(Ordering::SeqCst);
        if f != frames {
            frames = f;
            quiet_since = Instant::now();
        }
    }
    second.stop();
    let unique = sink.state.unique.load(Ordering::SeqCst);
    let errors = sink
        .state
        .errors
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if !errors.is_empty() {
        println!("kill run: sink errors: {errors:?}");
    }
    Ok(Kill {
        killed_at,
        unique,
        duplicates: frames - unique,
        restart_secs,
    })
}
