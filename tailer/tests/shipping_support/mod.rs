//! Shared set-up for the shipping tests: a cluster of test receivers, a spool of synthetic
//! buckets written with `contracts`, and a running `Shipper` fed synthetic input.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use contracts::frame_stream::FrameStreamWriter;
use contracts::keys::KeyPair;
use contracts::spool_file::{spool_bucket_path, spool_header};
use contracts::{ClusterFile, CrawlId, Event, EventFlags, EventId, Format};
use tailer::config::TailerConfig;
use tailer::events::TailerEvents;
use tailer::pipeline::{BucketKey, SHIPPER_QUEUE, ShipperInput, SpoolUsage};
use tailer::shipping::test_receiver::TestReceiver;
use tailer::shipping::{Shipper, ShippingError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Bucket length the tests use, in seconds.
pub const INTERVAL_SECS: u64 = 60;

/// Polls `cond` every 10 ms until it holds; fails the test with `what` after `secs`.
pub async fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {secs} s waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn counter(
    events: &TailerEvents,
    f: impl Fn(&TailerEvents) -> &std::sync::atomic::AtomicU64,
) -> u64 {
    f(events).load(Ordering::Relaxed)
}

/// A test world: receivers named b0..bn, a cluster file, a spool, a tailer key.
pub struct World {
    pub dir: tempfile::TempDir,
    pub spool: PathBuf,
    pub state: PathBuf,
    pub cluster_path: PathBuf,
    pub receivers: Vec<TestReceiver>,
    pub tailer_keys: KeyPair,
    pub crawl: CrawlId,
    /// Start of the first "current" bucket: two hours ahead, so the start-up scan (which
    /// takes up buckets whose interval has passed) never mistakes a test's open bucket
    /// for a leftover.
    pub base: DateTime<Utc>,
    /// The UTC day of every event made by `events`.
    pub day: NaiveDate,
    /// Extra `key = value` lines for the tailer config.
    pub extra_config: String,
}

impl World {
    /// `n` receivers; the tailer's key is on every allow-list unless `allow` is false.
    pub async fn new(n: usize, allow: bool) -> World {
        World::with_encryption(n, allow, true).await
    }

    /// As `new`, with receivers that speak sealed (`encrypted`) or plain messages.
    pub async fn with_encryption(n: usize, allow: bool, encrypted: bool) -> World {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = dir.path().join("state");
        let tailer_keys = KeyPair::generate();
        tailer_keys.save(&state, "tailer").expect("save tailer key");
        let allowed = if allow {
            vec![*tailer_keys.public().as_bytes()]
        } else {
            vec![*KeyPair::generate().public().as_bytes()]
        };
        let mut receivers = Vec::new();
        for i in 0..n {
            receivers.push(
                TestReceiver::start(
                    &format!("b{i}"),
                    KeyPair::generate(),
                    allowed.clone(),
                    encrypted,
                )
                .await
                .expect("receiver"),
            );
        }
        let cluster_path = dir.path().join("cluster.toml");
        let spool = dir.path().join("spool");
        let base = contracts::spool_file::bucket_start(
            Utc::now() + chrono::Duration::hours(2),
            INTERVAL_SECS,
        );
        let w = World {
            spool,
            state,
            cluster_path,
            receivers,
            tailer_keys,
            crawl: CrawlId::parse("crawl-a").expect("crawl id"),
            base,
            day: base.date_naive(),
            extra_config: String::new(),
            dir,
        };
        w.write_cluster();
        w
    }

    /// Writes the cluster file listing every receiver at its address.
    pub fn write_cluster(&self) {
        let addrs: Vec<String> = self
            .receivers
            .iter()
            .map(|r| r.addr().to_string())
            .collect();
        self.write_cluster_with(&addrs);
    }

    /// Writes the cluster file with `addrs[i]` as the ingest address of buck `bi`.
    pub fn write_cluster_with(&self, addrs: &[String]) {
        self.write_cluster_full(addrs, "2020-01-01");
    }

    /// Writes the cluster file listing every receiver, each taking crawls from `since` on.
    pub fn write_cluster_since(&self, since: &str) {
        let addrs: Vec<String> = self
            .receivers
            .iter()
            .map(|r| r.addr().to_string())
            .collect();
        self.write_cluster_full(&addrs, since);
    }

    fn write_cluster_full(&self, addrs: &[String], since: &str) {
        let mut t = String::from("replicas = 2\n");
        for (i, (r, addr)) in self.receivers.iter().zip(addrs).enumerate() {
            t.push_str(&format!(
                "[[buck]]\nid = \"b{i}\"\ningest = \"{addr}\"\nhttp_url = \"http://127.0.0.1:1\"\npublic_key = \"{}\"\nsince = \"{since}\"\n",
                r.public_key_text()
            ));
        }
        std::fs::write(&self.cluster_path, t).expect("write cluster file");
    }

    pub fn cluster(&self) -> ClusterFile {
        ClusterFile::load(&self.cluster_path).expect("cluster file")
    }

    /// The receiver with buck id `id`.
    pub fn receiver(&self, id: &str) -> &TestReceiver {
        let i: usize = id.trim_start_matches('b').parse().expect("buck id bN");
        &self.receivers[i]
    }

    /// (homes, stand-ins) of the world's crawl and day.
    pub fn routing(&self) -> (Vec<String>, Vec<String>) {
        let h = self.cluster().home_bucks(&self.crawl, self.day);
        (h.homes().to_vec(), h.stand_ins().to_vec())
    }

    /// The tailer config: small, fast settings, overridden by `extra_config`.
    pub fn config(&self) -> TailerConfig {
        let defaults = [
            "repair_delay_max_secs = 0",
            "connect_backoff_min_ms = 20",
            "connect_backoff_max_ms = 200",
            "connect_timeout_ms = 2000",
            "ping_interval_ms = 200",
            "idle_timeout_ms = 2000",
            "packet_max_delay_ms = 10",
            "cluster_poll_ms = 50",
            "janitor_interval_ms = 50",
        ];
        let key = |line: &str| line.split('=').next().unwrap_or("").trim().to_owned();
        let overridden: Vec<String> = self.extra_config.lines().map(key).collect();
        let mut settings: Vec<String> = defaults
            .iter()
            .filter(|d| !overridden.contains(&key(d)))
            .map(|d| d.to_string())
            .collect();
        settings.push(self.extra_config.clone());
        let text = format!(
            r#"
spool_dir = "{spool}"
state_dir = "{state}"
cluster_file = "{cluster}"
bucket_interval_secs = {INTERVAL_SECS}
{settings}
[[source]]
path = "/nonexistent/*.log"
crawl = "crawl-a"
"#,
            spool = self.spool.display(),
            state = self.state.display(),
            cluster = self.cluster_path.display(),
            settings = settings.join("\n"),
        );
        TailerConfig::parse(&text, Path::new("test.toml")).expect("test config")
    }

    /// Starts a shipper on this world.
    pub fn start(&self) -> Running {
        let (tx, rx) = mpsc::channel(SHIPPER_QUEUE);
        let usage = SpoolUsage::new();
        let events = Arc::new(TailerEvents::default());
        let shutdown = CancellationToken::new();
        let handle = Shipper::spawn(
            self.config(),
            rx,
            usage.clone(),
            events.clone(),
            shutdown.clone(),
        );
        Running {
            tx,
            usage,
            events,
            shutdown,
            handle: Some(handle),
        }
    }

    /// `n` events of the world's crawl, with ids `first..first+n`, timed on the world's day.
    pub fn events(&self, first: u64, n: u64) -> Vec<Event> {
        let base = self.base.timestamp_micros();
        (first..first + n)
            .map(|i| {
                let raw = format!("line {i} of a synthetic crawl log").into_bytes();
                Event {
                    id: EventId {
                        tailer: 7,
                        file_seq: 1,
                        offset: i * 100,
                    },
                    time_us: base + i as i64,
                    flags: EventFlags::default(),
                    original_len: raw.len() as u64,
                    format: Format::Plain,
                    crawl: self.crawl.clone(),
                    host: "crawler-1".into(),
                    app: "heritrix".into(),
                    fields: vec![],
                    raw,
                }
            })
            .collect()
    }

    /// Writes a bucket file holding `events` (appending if it exists) and returns its key and path.
    pub fn write_bucket(&self, start: DateTime<Utc>, events: &[Event]) -> (BucketKey, PathBuf) {
        let path = spool_bucket_path(&self.spool, &self.crawl, start, INTERVAL_SECS);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("bucket dir");
        let mut buf = if path.exists() {
            std::fs::read(&path).expect("read bucket")
        } else {
            spool_header().to_vec()
        };
        buf.extend_from_slice(&frames(events));
        std::fs::write(&path, buf).expect("write bucket");
        (
            BucketKey {
                crawl: self.crawl.clone(),
                start,
            },
            path,
        )
    }

    /// The start of the `k`-th "current" bucket.
    pub fn bucket_start(&self, k: u32) -> DateTime<Utc> {
        self.base + chrono::Duration::seconds(i64::from(k) * INTERVAL_SECS as i64)
    }

    /// The start of an old bucket, long sealed: a leftover of an earlier run.
    pub fn old_bucket_start(&self, k: u32) -> DateTime<Utc> {
        NaiveDate::from_ymd_opt(2026, 1, 1)
            .expect("date")
            .and_hms_opt(12, k, 0)
            .expect("time")
            .and_utc()
    }
}

/// `events` as a frame stream of its own, as the tailer appends one batch.
pub fn frames(events: &[Event]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut writer = FrameStreamWriter::new();
    for e in events {
        assert!(writer.push(&mut out, &e.view()));
    }
    out
}

pub fn ids(events: &[Event]) -> BTreeSet<EventId> {
    events.iter().map(|e| e.id).collect()
}

/// A running shipper and its handles.
pub struct Running {
    pub tx: mpsc::Sender<ShipperInput>,
    pub usage: Arc<SpoolUsage>,
    pub events: Arc<TailerEvents>,
    pub shutdown: CancellationToken,
    pub handle: Option<tokio::task::JoinHandle<Result<(), ShippingError>>>,
}

impl Running {
    /// Appends `events` to `bucket` on disk (as the reader does) and hands the live copy over.
    pub async fn live(&self, world: &World, bucket: &BucketKey, events: &[Event]) {
        let (_, path) = world.write_bucket(bucket.start, &[]);
        let at = std::fs::metadata(&path).expect("bucket").len();
        world.write_bucket(bucket.start, events);
        let frames = frames(events);
        let input = ShipperInput::Live {
            bucket: bucket.clone(),
            day: world.day,
            ranges: std::iter::once(at..at + frames.len() as u64).collect(),
            frames: Bytes::from(frames),
            count: events.len() as u32,
        };
        self.tx.send(input).await.expect("shipper running");
    }

    pub async fn seal(&self, bucket: &BucketKey, path: &Path) {
        self.tx
            .send(ShipperInput::Sealed {
                bucket: bucket.clone(),
                path: path.to_path_buf(),
            })
            .await
            .expect("shipper running");
    }

    pub fn get(&self, f: impl Fn(&TailerEvents) -> &std::sync::atomic::AtomicU64) -> u64 {
        counter(&self.events, f)
    }

    /// Ends the shipper the way a SIGKILL would: no chance to save anything on the way out.
    pub fn kill(mut self) {
        if let Some(h) = self.handle.take() {
            h.abort();
        }
        self.shutdown.cancel();
    }

    /// Stops the shipper and checks it ended cleanly.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(h) = self.handle.take() {
            h.await.expect("shipper task").expect("shipper result");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Every receiver saw only well-formed, in-order, authentic messages.
pub fn assert_clean(world: &World) {
    for (i, r) in world.receivers.iter().enumerate() {
        let s = r.stats();
        assert!(
            s.protocol_errors.is_empty(),
            "receiver b{i}: {:?}",
            s.protocol_errors
        );
    }
}
