//! What both benchmark binaries share: a generator of realistic Heritrix crawl.log lines,
//! `/proc` sampling of a child process, the tailer run as a child of the benchmark (so its
//! CPU time and memory are its own), and the keys, cluster file and tailer config that
//! connect it to a buck or a sink.
//!
//! Included by each binary with `#[path]`; not every binary uses every item.
#![allow(dead_code)]

pub mod log_inputs;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use contracts::keys::KeyPair;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The argument that makes a benchmark binary run a tailer instead (see [`tailer_child`]).
pub const TAILER_CHILD_ARG: &str = "--tailer-child";

/// Shortest and longest generated line, newline excluded.
pub const MIN_LINE: usize = 200;
/// See [`MIN_LINE`].
pub const MAX_LINE: usize = 450;

const WORDS: &[&str] = &[
    "index",
    "news",
    "archive",
    "2026",
    "article",
    "images",
    "static",
    "css",
    "js",
    "media",
    "about",
    "contact",
    "blog",
    "post",
    "category",
    "tag",
    "page",
    "search",
    "wp-content",
    "uploads",
    "assets",
    "thumb",
    "en",
    "de",
    "fr",
    "products",
    "item",
    "view",
    "docs",
    "collections",
    "events",
    "library",
    "catalog",
    "record",
    "feed",
    "sitemap",
    "people",
];
const TLDS: &[&str] = &[
    "com", "org", "net", "co.uk", "de", "fr", "edu", "gov.uk", "io",
];
const MIMES: &[&str] = &[
    "text/html",
    "text/html",
    "text/html",
    "image/jpeg",
    "image/png",
    "application/javascript",
    "text/css",
    "application/pdf",
    "image/gif",
    "application/json",
    "text/plain",
    "image/svg+xml",
];
const HOPS: &[&str] = &[
    "L", "LL", "LLL", "LE", "LLE", "E", "X", "LX", "R", "LR", "-",
];
const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Makes Heritrix 3 crawl.log lines of 200 to 450 bytes: varied status (most 200, then
/// redirects, 404s, DNS lookups and negative fetch codes), size, URL, mime type, hop path,
/// annotations, and on about half of them the trailing JSON extra field.
pub struct LineGen {
    rng: StdRng,
    hosts: Vec<String>,
    scratch: Vec<u8>,
}

impl LineGen {
    /// A generator; the same seed gives the same lines.
    pub fn new(seed: u64) -> LineGen {
        let mut rng = StdRng::seed_from_u64(seed);
        let hosts = (0..600)
            .map(|i| {
                let w = WORDS[rng.random_range(0..WORDS.len())];
                let sub = ["www.", "", "cdn.", "blog.", "static."][rng.random_range(0..5)];
                format!(
                    "{sub}{w}{i}.example-{}.{}",
                    rng.random_range(0..90),
                    TLDS[rng.random_range(0..TLDS.len())]
                )
            })
            .collect();
        LineGen {
            rng,
            hosts,
            scratch: Vec::with_capacity(512),
        }
    }

    /// Appends one line, newline included, logged at `at`. `annotation`, when given, is
    /// added to the annotations field (the latency benchmark puts the write time there).
    pub fn line(&mut self, at: DateTime<Utc>, annotation: Option<&str>, out: &mut Vec<u8>) {
        let r = &mut self.rng;
        let target = r.random_range(MIN_LINE..=MAX_LINE);
        let host = &self.hosts[r.random_range(0..self.hosts.len())];
        let roll = r.random_range(0..100u32);
        let (status, dns): (i32, bool) = match roll {
            0..=59 => (200, false),
            60..=64 => (1, true),
            65..=70 => (301, false),
            71..=74 => (302, false),
            75..=81 => (404, false),
            82..=83 => (304, false),
            84..=85 => (403, false),
            86..=87 => (500, false),
            88 => (503, false),
            89..=90 => (-1, false),
            91 => (-2, false),
            92 => (-6, false),
            93..=94 => (-9998, false),
            95 => (-5003, false),
            _ => (200, false),
        };
        let size: i64 = match status {
            1 => r.random_range(40..90),
            200 => r.random_range(200..2_000_000),
            301 | 302 | 304 => r.random_range(0..600),
            s if s < 0 => -1,
            _ => r.random_range(150..9_000),
        };
        let mime = if dns {
            "text/dns"
        } else if status < 0 {
            "unknown"
        } else if status != 200 {
            "text/html"
        } else {
            MIMES[r.random_range(0..MIMES.len())]
        };
        let hop = if dns {
            "P"
        } else {
            HOPS[r.random_range(0..HOPS.len())]
        };
        let dur = r.random_range(3..4_000i64);
        let fetch_start = at - chrono::Duration::milliseconds(dur);
        let mut annotations: Vec<String> = Vec::new();
        match r.random_range(0..10u32) {
            0..=3 => {}
            4..=5 => annotations.push(format!("content-size:{}", size.max(0) + 300)),
            6 => annotations.push("duplicate:digest".into()),
            7 => annotations.push(format!("{}t", r.random_range(2..4))),
            8 => annotations.push(format!(
                "ip:10.{}.{}.{}",
                r.random_range(0..255),
                r.random_range(0..255),
                r.random_range(1..255)
            )),
            _ => annotations.push("warcRevisit:digest".into()),
        }
        if let Some(a) = annotation {
            annotations.push(a.to_owned());
        }
        let annotations = if annotations.is_empty() {
            "-".to_owned()
        } else {
            annotations.join(",")
        };
        let json = if dns || r.random_bool(0.5) {
            let warc = format!(
                "CRAWL-{}-{:05}-{}~crawler{}~8443.warc.gz",
                at.format("%Y%m%d%H%M%S"),
                r.random_range(0..400),
                r.random_range(1000..99999),
                r.random_range(1..9)
            );
            if r.random_bool(0.5) {
                format!(
                    " {{\"contentSize\":{},\"warcFilename\":\"{warc}\",\"warcFileOffset\":{},\"warcFileRecordLength\":{}}}",
                    size.max(0) + 310,
                    r.random_range(0..1_000_000_000u64),
                    size.max(0) + 900
                )
            } else {
                format!(
                    " {{\"warcFilename\":\"{warc}\",\"scopeDecision\":\"ACCEPT by rule #{} SurtPrefixedDecideRule\"}}",
                    r.random_range(1..20)
                )
            }
        } else {
            String::new()
        };
        let digest: String = if status > 0 {
            let mut d = String::from("sha1:");
            d.extend((0..32).map(|_| BASE32[r.random_range(0..32)] as char));
            d
        } else {
            "-".into()
        };
        let thread = r.random_range(0..200);
        let source = if r.random_bool(0.3) {
            "seed-group-a"
        } else {
            "-"
        };

        let head = format!(
            "{} {status:>5} {size:>10} ",
            at.format("%Y-%m-%dT%H:%M:%S%.3fZ")
        );
        let url_prefix = if dns {
            format!("dns:{host}")
        } else {
            format!(
                "{}://{host}/",
                if r.random_bool(0.7) { "https" } else { "http" }
            )
        };
        let via_prefix = format!("https://{host}/");
        let tail = format!(
            " {mime} #{thread:03} {}+{dur} {digest} {source} {annotations}{json}",
            fetch_start.format("%Y%m%d%H%M%S%3f")
        );
        // The one part whose length is free: the URL's path (the via's for a DNS line).
        let fixed =
            head.len() + url_prefix.len() + 1 + hop.len() + 1 + via_prefix.len() + tail.len();
        let free = target.saturating_sub(fixed).max(1);
        self.scratch.clear();
        fill_path(r, free, &mut self.scratch);
        let path = std::str::from_utf8(&self.scratch).unwrap_or("x");
        let (url_path, via_path) = if dns { ("", path) } else { (path, "") };
        let _ = writeln!(
            out,
            "{head}{url_prefix}{url_path} {hop} {via_prefix}{via_path}{tail}"
        );
    }
}

fn fill_path(r: &mut StdRng, len: usize, out: &mut Vec<u8>) {
    while out.len() < len {
        if !out.is_empty() {
            out.push(if r.random_bool(0.1) { b'-' } else { b'/' });
        }
        if r.random_bool(0.15) {
            let _ = write!(out, "{}", r.random_range(1..100_000));
        } else {
            out.extend_from_slice(WORDS[r.random_range(0..WORDS.len())].as_bytes());
        }
        if out.len() + 12 < len && r.random_bool(0.08) {
            let _ = write!(
                out,
                ".html?id={}&p={}",
                r.random_range(0..9999),
                r.random_range(0..50)
            );
        }
    }
    out.truncate(len);
    if out.last() == Some(&b'/') || out.last() == Some(&b'-') {
        out.pop();
        out.push(b'x');
    }
}

/// Writes `bytes` or more of crawl.log to `path`, with log times from `start` on, 0.4 ms
/// apart. Returns the number of lines.
pub fn write_crawl_log(path: &Path, bytes: u64, start: DateTime<Utc>) -> anyhow::Result<u64> {
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    let mut lines_gen = LineGen::new(42);
    let mut buf = Vec::with_capacity(1 << 16);
    let (mut written, mut lines) = (0u64, 0u64);
    while written < bytes {
        buf.clear();
        for _ in 0..128 {
            let at = start + chrono::Duration::microseconds((lines * 400) as i64);
            lines_gen.line(at, None, &mut buf);
            lines += 1;
        }
        w.write_all(&buf)?;
        written += buf.len() as u64;
    }
    w.flush()?;
    Ok(lines)
}

/// One look at a process in `/proc`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    /// User plus system CPU time so far, in seconds.
    pub cpu_secs: f64,
    /// Resident set now, in KiB.
    pub rss_kib: u64,
    /// Peak resident set so far (VmHWM), in KiB.
    pub hwm_kib: u64,
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`; `None` once the process is gone.
#[allow(unsafe_code)]
pub fn sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime and stime are fields 14 and 15.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Some(ProcSample {
        cpu_secs: ticks as f64 / hz,
        rss_kib: kib("VmRSS:"),
        hwm_kib: kib("VmHWM:"),
    })
}

/// Runs the tailer in this process until SIGTERM or SIGINT: what a benchmark binary does
/// when started with [`TAILER_CHILD_ARG`]. The same runtime as the `tailer` binary's (a
/// multi-thread runtime with every default). At exit the tailer's counters are written
/// to `<config>.metrics`.
pub fn tailer_child(config: &Path) -> anyhow::Result<()> {
    let cfg = tailer::TailerConfig::load(config)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let events = Arc::new(tailer::TailerEvents::default());
    let result = rt.block_on(async {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            stop.cancel();
        });
        tailer::run(cfg, shutdown, events.clone()).await
    });
    let mut metrics = String::new();
    events.render_prometheus(&mut metrics);
    let _ = std::fs::write(config.with_extension("metrics"), metrics);
    result.context("tailer")
}

/// A tailer running as a child process of the benchmark.
pub struct TailerProcess {
    child: Child,
    /// When it was started.
    pub started: Instant,
}

impl TailerProcess {
    /// Starts this binary again as a tailer with `config`.
    pub fn spawn(config: &Path) -> anyhow::Result<TailerProcess> {
        let exe = std::env::current_exe()?;
        let child = Command::new(exe)
            .arg(TAILER_CHILD_ARG)
            .arg(config)
            .stdin(Stdio::null())
            .spawn()
            .context("starting the tailer child")?;
        Ok(TailerProcess {
            child,
            started: Instant::now(),
        })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A look at it in `/proc`.
    pub fn sample(&self) -> Option<ProcSample> {
        sample(self.pid())
    }

    /// SIGTERM, then waits (SIGKILL after 30 s).
    pub fn stop(mut self) {
        signal(self.pid(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGKILL, and reaps it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TailerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends `sig` to `pid`.
#[allow(unsafe_code)]
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill takes plain integers; pid is our own child.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// The files that make a tailer ship to one buck.
pub struct TailerSetup {
    /// The tailer's config file.
    pub config: PathBuf,
    /// The tailer's key pair (the buck must allow its public key).
    pub tailer_keys: KeyPair,
}

/// Writes, under `dir`, a cluster file naming bucks `b0`, `b1`, ... at `ingests` with
/// `buck_public` as its key, a tailer key, and a tailer config following `log` as crawl
/// `bench` with every default except those in `extra` (TOML lines) and `nice = 0`.
pub fn write_tailer_setup(
    dir: &Path,
    ingests: &[std::net::SocketAddr],
    buck_public: &str,
    log: &Path,
    extra: &str,
) -> anyhow::Result<TailerSetup> {
    std::fs::create_dir_all(dir)?;
    let cluster = dir.join("cluster.toml");
    // With two bucks and the default two replicas, both are homes of every crawl.
    let bucks: String = ingests
        .iter()
        .enumerate()
        .map(|(i, ingest)| {
            format!(
                "[[buck]]\nid = \"b{i}\"\ningest = \"{ingest}\"\nhttp_url = \"http://127.0.0.1:1\"\npublic_key = \"{buck_public}\"\nsince = \"2000-01-01\"\n"
            )
        })
        .collect();
    std::fs::write(&cluster, bucks)?;
    let tailer_keys = KeyPair::generate();
    tailer_keys.save(dir, "tailer")?;
    let config = dir.join("tailer.toml");
    let q = |p: PathBuf| format!("{:?}", p.display().to_string());
    std::fs::write(
        &config,
        format!(
            "spool_dir = {}\nstate_dir = {}\ncluster_file = {}\nkey_file = {}\nnice = 0\nhost = \"bench-host\"\n{extra}\n[[source]]\npath = {:?}\nformat = \"crawl_log\"\ncrawl = \"bench\"\n",
            q(dir.join("spool")),
            q(dir.join("state")),
            q(cluster),
            q(dir.join("tailer.key")),
            log.display().to_string(),
        ),
    )?;
    Ok(TailerSetup {
        config,
        tailer_keys,
    })
}

/// A counter from the tailer child's metrics file (0 when missing).
pub fn metric(path: &Path, name: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Percentile `p` (0-100) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Where to put the benchmark's files: `--dir D` or a fresh temp dir.
pub fn work_dir(arg: Option<&str>) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    match arg {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            Ok((PathBuf::from(d), None))
        }
        None => {
            let t = tempfile::Builder::new().prefix("sluice-bench-").tempdir()?;
            Ok((t.path().to_path_buf(), Some(t)))
        }
    }
}

/// The value after `--name` in the arguments, if any.
pub fn arg_value(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// A one-line description of the machine: cores, memory, load average.
pub fn machine_notes() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0.0, |k| k as f64 / 1048576.0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "{cores} cores, {mem:.1} GiB RAM, load average {} (shared, noisy machine)",
        load.join(" ")
    )
}

/// This thread's CPU time (user + system) in seconds: what a figure per GiB is measured
/// in, since other load on the machine barely moves it.
pub fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    #[allow(unsafe_code)]
    unsafe {
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts)
    };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// The real Heritrix crawl logs under `shared/data/real/heritrix`, concatenated in path
/// order (each ending in a newline), and how many files they were.
pub fn real_crawl_logs() -> anyhow::Result<(usize, Vec<u8>)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains("crawl") && n.ends_with(".log"))
            {
                out.push(p);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/real/heritrix");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    let mut real = Vec::new();
    for f in &files {
        real.extend(std::fs::read(f).with_context(|| format!("reading {}", f.display()))?);
        if !real.ends_with(b"\n") {
            real.push(b'\n');
        }
    }
    anyhow::ensure!(!real.is_empty(), "no crawl logs under {}", root.display());
    Ok((files.len(), real))
}

/// `mib` MiB of generated crawl.log lines (random hosts, paths, sha1 digests), 10 ms apart
/// from 2026-11-21T00:00:00Z.
pub fn generated_crawl_log(mib: usize, seed: u64) -> Vec<u8> {
    let mut lines = LineGen::new(seed);
    let start = DateTime::<Utc>::from_timestamp(1_795_219_200, 0).unwrap_or_default();
    let mut out = Vec::with_capacity(mib << 20);
    let mut i = 0i64;
    while out.len() < mib << 20 {
        lines.line(
            start + chrono::Duration::milliseconds(i * 10),
            None,
            &mut out,
        );
        i += 1;
    }
    out
}
