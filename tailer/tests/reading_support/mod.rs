//! Shared by the `reading_*` tests: a temp directory with logs, spool and state, a reader
//! running on its own thread with a test consumer of `ShipperInput`, and exactly-once
//! checks over the events decoded from the spool files.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use contracts::{Event, EventId};
use tailer::pipeline::{ShipperInput, SpoolUsage};
use tailer::read_scheduler::ReadScheduler;
use tailer::{TailerConfig, TailerError, TailerEvents};
use tokio_util::sync::CancellationToken;

pub const DEADLINE: Duration = Duration::from_secs(20);

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub logs: PathBuf,
    pub config: TailerConfig,
    pub events: Arc<TailerEvents>,
    pub usage: Arc<SpoolUsage>,
    /// While set, a helper thread keeps the spool usage at 0 (a pruner that frees as fast
    /// as the reader fills).
    pub pruning: Arc<AtomicBool>,
    pub live_frames: Arc<AtomicU64>,
    pub sealed: Arc<AtomicU64>,
    running: Option<Running>,
}

struct Running {
    token: CancellationToken,
    reader: JoinHandle<Result<(), TailerError>>,
    consumer: JoinHandle<()>,
}

impl Harness {
    /// Logs under `<dir>/logs/<crawl>/app.log`; `extra` is more TOML for the top level.
    pub fn new(extra: &str) -> Harness {
        Harness::with_source(
            extra,
            "{crawl}/app.log",
            "format = \"plain\"\nmultiline = false\n",
        )
    }

    pub fn with_source(extra: &str, pattern: &str, source_extra: &str) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).expect("logs dir");
        // Small thresholds, unless the test sets its own.
        let defaults = [
            "poll_interval_ms = 20",
            "discovery_interval_ms = 50",
            "bucket_interval_secs = 1",
            "fsync_interval_ms = 50",
            "rotated_linger_ms = 200",
            "nice = 0",
            "host = \"test-host\"",
        ];
        let mut top = String::new();
        for d in defaults {
            let key = d.split(' ').next().unwrap_or_default();
            if !extra
                .lines()
                .any(|l| l.split('=').next().is_some_and(|k| k.trim() == key))
            {
                top.push_str(d);
                top.push('\n');
            }
        }
        let text = format!(
            "spool_dir = \"{spool}\"\nstate_dir = \"{state}\"\n{top}{extra}\n[[source]]\npath = \"{logs}/{pattern}\"\n{source_extra}\n",
            spool = dir.path().join("spool").display(),
            state = dir.path().join("state").display(),
            logs = logs.display(),
        );
        let config =
            TailerConfig::parse(&text, Path::new("test.toml")).expect("test config parses");
        Harness {
            dir,
            logs,
            config,
            events: Arc::new(TailerEvents::default()),
            usage: SpoolUsage::new(),
            pruning: Arc::new(AtomicBool::new(false)),
            live_frames: Arc::new(AtomicU64::new(0)),
            sealed: Arc::new(AtomicU64::new(0)),
            running: None,
        }
    }

    pub fn log(&self, crawl: &str) -> PathBuf {
        let d = self.logs.join(crawl);
        std::fs::create_dir_all(&d).expect("crawl dir");
        d.join("app.log")
    }

    pub fn spool(&self) -> PathBuf {
        self.config.spool_dir.clone()
    }

    pub fn state_file(&self) -> PathBuf {
        self.config.state_dir.join("checkpoints.json")
    }

    pub fn start(&mut self) {
        assert!(self.running.is_none(), "already running");
        // A fresh usage per run: the real tailer starts from zero and counts the spool.
        self.usage = SpoolUsage::new();
        let (tx, mut rx) = tokio::sync::mpsc::channel(tailer::pipeline::SHIPPER_QUEUE);
        let (live, sealed) = (self.live_frames.clone(), self.sealed.clone());
        let consumer = std::thread::spawn(move || {
            while let Some(msg) = rx.blocking_recv() {
                match msg {
                    ShipperInput::Live { count, .. } => {
                        live.fetch_add(u64::from(count), Ordering::Relaxed)
                    }
                    ShipperInput::Sealed { .. } => sealed.fetch_add(1, Ordering::Relaxed),
                };
            }
        });
        let token = CancellationToken::new();
        let (config, usage, events, stop) = (
            self.config.clone(),
            self.usage.clone(),
            self.events.clone(),
            token.clone(),
        );
        let pruning = self.pruning.clone();
        let prune_usage = self.usage.clone();
        let prune_stop = token.clone();
        std::thread::spawn(move || {
            while !prune_stop.is_cancelled() {
                if pruning.load(Ordering::Relaxed) {
                    prune_usage.bytes.store(0, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let reader =
            std::thread::spawn(move || ReadScheduler::new(config, tx, usage, events)?.run(&stop));
        self.running = Some(Running {
            token,
            reader,
            consumer,
        });
    }

    pub fn stop(&mut self) {
        let r = self.running.take().expect("not running");
        r.token.cancel();
        r.reader
            .join()
            .expect("reader thread")
            .expect("reader ends cleanly");
        r.consumer.join().expect("consumer thread");
    }

    /// Every event in the spool, in file order (buckets sorted by path). A torn last
    /// frame of a bucket being written is ignored.
    pub fn spool_events(&self) -> Vec<Event> {
        let mut files = Vec::new();
        collect(&self.spool(), &mut files);
        files.sort();
        let mut out = Vec::new();
        for f in files {
            let bytes = std::fs::read(&f).expect("read bucket");
            if bytes.len() < 8 {
                continue;
            }
            let (events, _torn) = parsers::stream_events::decode_stream(&bytes[8..]);
            out.extend(
                events
                    .into_iter()
                    .map(|e| e.expect("spooled event decodes")),
            );
        }
        out
    }

    /// Waits until every line in `lines` is in the spool (or the deadline passes).
    pub fn wait_lines(&self, lines: &[Vec<u8>]) -> Vec<Event> {
        let start = Instant::now();
        loop {
            let events = self.spool_events();
            let have: std::collections::HashSet<&[u8]> =
                events.iter().map(|e| e.raw.as_slice()).collect();
            if lines.iter().all(|l| have.contains(l.as_slice())) {
                return events;
            }
            if start.elapsed() > DEADLINE {
                let missing: Vec<String> = lines
                    .iter()
                    .filter(|l| !have.contains(l.as_slice()))
                    .take(5)
                    .map(|l| String::from_utf8_lossy(l).into_owned())
                    .collect();
                panic!(
                    "timed out waiting for {} lines; first missing: {missing:?}",
                    lines
                        .iter()
                        .filter(|l| !have.contains(l.as_slice()))
                        .count()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn wait_until(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let start = Instant::now();
        while !cond() {
            assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            r.token.cancel();
            let _ = r.reader.join();
        }
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "b") {
            out.push(p);
        }
    }
}

/// Lines `"<tag> line <i> <padding>"` for i in range.
pub fn lines(tag: &str, range: std::ops::Range<usize>) -> Vec<Vec<u8>> {
    range
        .map(|i| format!("{tag} line {i:05} {}", "x".repeat(i % 37)).into_bytes())
        .collect()
}

pub fn append(path: &Path, lines: &[Vec<u8>]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log");
    let mut buf = Vec::new();
    for l in lines {
        buf.extend_from_slice(l);
        buf.push(b'\n');
    }
    f.write_all(&buf).expect("write log");
}

/// Asserts that every line of `want` is in `events` exactly once and nothing else is, and
/// that no id is used twice. Returns the id of each line.
pub fn assert_exactly_once(events: &[Event], want: &[Vec<u8>]) -> HashMap<Vec<u8>, EventId> {
    let mut by_line: BTreeMap<&[u8], Vec<EventId>> = BTreeMap::new();
    for e in events {
        by_line.entry(e.raw.as_slice()).or_default().push(e.id);
    }
    let mut ids = std::collections::HashSet::new();
    for e in events {
        assert!(
            ids.insert(e.id),
            "id {} spooled twice (line {:?})",
            e.id,
            e.line()
        );
    }
    for l in want {
        match by_line.get(l.as_slice()) {
            Some(v) if v.len() == 1 => {}
            Some(v) => panic!(
                "line {:?} spooled {} times: {v:?}",
                String::from_utf8_lossy(l),
                v.len()
            ),
            None => panic!("line {:?} missing", String::from_utf8_lossy(l)),
        }
    }
    assert_eq!(events.len(), want.len(), "unexpected extra events");
    by_line
        .into_iter()
        .map(|(l, v)| (l.to_vec(), v[0]))
        .collect()
}

/// Like `assert_exactly_once`, but a crash may spool a line twice under the same id:
/// each line must have exactly one id.
pub fn assert_one_id_per_line(events: &[Event], want: &[Vec<u8>]) {
    let mut by_line: BTreeMap<&[u8], std::collections::BTreeSet<EventId>> = BTreeMap::new();
    for e in events {
        by_line.entry(e.raw.as_slice()).or_default().insert(e.id);
    }
    for l in want {
        let ids = by_line
            .get(l.as_slice())
            .unwrap_or_else(|| panic!("line {:?} missing", String::from_utf8_lossy(l)));
        assert_eq!(
            ids.len(),
            1,
            "line {:?} has several ids: {ids:?}",
            String::from_utf8_lossy(l)
        );
    }
    assert_eq!(by_line.len(), want.len(), "unexpected extra lines");
}

pub fn gzip(src: &Path, dst: &Path) {
    let data = std::fs::read(src).expect("read for gzip");
    let f = std::fs::File::create(dst).expect("create gz");
    let mut enc = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    enc.write_all(&data).expect("gzip");
    enc.finish().expect("gzip finish");
}
