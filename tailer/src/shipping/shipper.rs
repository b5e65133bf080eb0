//! `Shipper`: the one task that owns every piece of shipping state.
//!
//! It gathers live frames into packets per (crawl, day), routes each packet to the
//! crawl's homes (or, while every home is down, to the first stand-in that is up), keeps
//! each sent message in its buck's in-flight table until acked, and re-sends them when a
//! connection comes back. It counts, per (bucket, home), the frames acked live; when a
//! bucket is sealed it waits a random moment and sends the bucket whole to every home
//! that has not acked all of its frames (the repair path), chunk by chunk, each acked.
//! A bucket whose every home has it is recorded as delivered beside it, and the
//! [`SpoolJanitor`](super::spool_janitor::SpoolJanitor) may then prune it.
//!
//! Why one task: the in-flight tables, the live counts and the repair jobs all change
//! together on every ack; owning them in one place needs no locks and makes each step an
//! ordinary function. Connection tasks do the I/O and never block on this task's
//! channel for long, because this task never waits on theirs (their outboxes are
//! unbounded; what bounds them is the in-flight limit enforced here).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use chrono::{NaiveDate, Utc};
use contracts::frame::{FrameError, FrameReader};
use contracts::keys::KeyPair;
use contracts::spool_file::spool_bucket_path;
use contracts::transport::{MAX_CHUNK_BYTES, Message, PackedFrames};
use contracts::{BuckEntry, ClusterFile, CrawlId, Event, EventId};
use durable_file::FileStamp;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::ShippingError;
use super::ack_ledger::{AckLedger, BucketShare};
use super::acked_ranges::AckedRecord;
use super::buck_connection::{BuckConnection, LinkEvent, LinkParams, Outgoing};
use super::delivery::{
    BucketScan, Chunk, DELIVERY_RECORD_VERSION, DeliveryRecord, read_chunk, scan_bucket,
};
use super::spool_janitor::{SpoolJanitor, scan_spool};
use crate::config::TailerConfig;
use crate::events::TailerEvents;
use crate::pipeline::{BucketKey, ShipperInput, SpoolUsage};

/// Capacity of the connections-to-shipper channel, in reports. Connection tasks wait
/// when it is full, which only slows their reading of acks.
const LINK_EVENTS_QUEUE: usize = 1024;

/// How long after its interval ends an untracked bucket's live counts are kept, in
/// seconds: long enough for its Sealed report to arrive behind a busy channel.
const STALE_COUNT_GRACE_SECS: u64 = 600;

/// Longest nack delay honoured, whatever a buck asks: a buck that wants more can nack again.
const MAX_RETRY_AFTER_MS: u64 = 60_000;

/// Ships the spool to the bucks. See the module documentation.
pub struct Shipper;

impl Shipper {
    /// Starts shipping. The task runs until `shutdown` fires; it fails only when it
    /// cannot start (no usable cluster file, key or tailer id).
    pub fn spawn(
        config: TailerConfig,
        input: mpsc::Receiver<ShipperInput>,
        usage: Arc<SpoolUsage>,
        events: Arc<TailerEvents>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<Result<(), ShippingError>> {
        tokio::spawn(async move {
            let task = ShipperTask::start(config, usage, events, shutdown).await?;
            task.run(input).await;
            Ok(())
        })
    }
}

/// Whether a buck can be sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Not tried yet: treated as reachable, so start-up does not route to stand-ins.
    Connecting,
    Up,
    Down,
}

/// A message sent and not yet acked.
struct InFlight {
    message: Outgoing,
    frames: u32,
    what: Sent,
}

enum Sent {
    /// A live packet. `buckets` says which of its frames belong to each bucket;
    /// `home` is false on a stand-in, whose acks do not count as delivery.
    Live {
        buckets: Vec<BucketShare>,
        home: bool,
        bytes: usize,
    },
    /// A chunk of a repair job.
    Chunk {
        job: u64,
        next_offset: u64,
        settled: Vec<Range<u64>>,
        last: bool,
    },
}

struct BuckState {
    entry: BuckEntry,
    cancel: CancellationToken,
    status: Status,
    outbox: Option<mpsc::UnboundedSender<Outgoing>>,
    generation: u64,
    next_seq: u64,
    inflight: BTreeMap<u64, InFlight>,
    /// Bytes of live packets in `inflight`, held under `inflight_max_bytes`.
    live_bytes: usize,
    /// Repair jobs waiting for this buck, and the one being sent (one at a time, so a
    /// buck coming back is not flooded and at most one chunk per buck is in memory).
    repair_queue: VecDeque<u64>,
    active_repair: Option<u64>,
}

impl BuckState {
    fn send(&self, message: &Outgoing) {
        if let Some(outbox) = &self.outbox {
            // A closed outbox means the connection just ended; its Down report follows and
            // the message is re-sent on the next Up.
            let _ = outbox.send(message.clone());
        }
    }
}

/// Frames gathered for one (crawl, day) route.
struct PacketBuilder {
    frames: BytesMut,
    count: u32,
    buckets: Vec<BucketShare>,
    deadline: Instant,
}

/// A sealed bucket not yet delivered to every home.
struct SealedBucket {
    path: PathBuf,
    /// Frames per home, once scanned.
    scan: Option<BucketScan>,
    delivered: BTreeSet<String>,
    /// The random repair delay has passed.
    due: bool,
    /// Repair jobs by home.
    jobs: BTreeMap<String, u64>,
}

/// What a scan of a sealed bucket read: its frames per home, and its two records.
struct Scanned {
    scan: BucketScan,
    delivery: Option<DeliveryRecord>,
    acked: AckedRecord,
}

struct RepairJob {
    bucket: BucketKey,
    path: PathBuf,
    home: String,
    offset: u64,
    chunk: u32,
}

/// What helper tasks report back.
enum Internal {
    Scanned {
        bucket: BucketKey,
        result: std::io::Result<Scanned>,
    },
    RepairDue {
        bucket: BucketKey,
    },
    ChunkRead {
        job: u64,
        result: std::io::Result<Chunk>,
    },
    Retry {
        buck: String,
        seq: u64,
        generation: u64,
    },
}

struct ShipperTask {
    config: TailerConfig,
    events: Arc<TailerEvents>,
    shutdown: CancellationToken,
    cluster_path: PathBuf,
    cluster: Arc<ClusterFile>,
    cluster_stamp: Option<FileStamp>,
    params: Arc<LinkParams>,
    bucks: BTreeMap<String, BuckState>,
    link_tx: mpsc::Sender<LinkEvent>,
    link_rx: mpsc::Receiver<LinkEvent>,
    internal_tx: mpsc::UnboundedSender<Internal>,
    internal_rx: mpsc::UnboundedReceiver<Internal>,
    packets: HashMap<(CrawlId, NaiveDate), PacketBuilder>,
    live_acked: HashMap<BucketKey, HashMap<String, u64>>,
    /// Frames per (bucket, home) sent live and not acked yet: while they may still be
    /// acked, the repair decision waits for them instead of sending the bucket twice.
    live_pending: HashMap<BucketKey, HashMap<String, u64>>,
    /// Events a buck refused for good, per bucket: left out of repair chunks.
    rejected: HashMap<BucketKey, HashSet<EventId>>,
    sealed: HashMap<BucketKey, SealedBucket>,
    jobs: HashMap<u64, RepairJob>,
    next_job: u64,
    /// Acked byte ranges per (bucket, home), saved beside the buckets.
    ledger: AckLedger,
    /// Records to write beside buckets, in order (see `write_records`).
    records: mpsc::UnboundedSender<SidecarWrite>,
}

/// A record to write beside its bucket at `path`.
enum SidecarWrite {
    /// Which homes have the bucket whole; `complete` wakes the janitor after.
    Delivery {
        path: PathBuf,
        record: DeliveryRecord,
        complete: bool,
    },
    /// What each home acked. Skipped when the bucket is gone (pruned meanwhile).
    Acked { path: PathBuf, record: AckedRecord },
}

/// Writes bucket records one at a time, in the order they were decided: two writes of
/// one bucket's record racing on the blocking pool could leave the older one on disk,
/// and a delivered bucket would then look undelivered.
async fn write_records(
    mut rx: mpsc::UnboundedReceiver<SidecarWrite>,
    janitor_kick: Arc<Notify>,
    events: Arc<TailerEvents>,
) {
    while let Some(mut write) = rx.recv().await {
        let mut wait = RECORD_RETRY_MIN;
        loop {
            let ev = events.clone();
            match tokio::task::spawn_blocking(move || save_record(write, &ev)).await {
                Ok(Ok(complete)) => {
                    if complete {
                        janitor_kick.notify_one();
                    }
                    break;
                }
                // A delivery record is what lets the janitor free the bucket: on a full
                // disk it is written again until it fits, or the spool could never shrink.
                Ok(Err(again)) => {
                    write = again;
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(RECORD_RETRY_MAX);
                }
                Err(e) => {
                    tracing::error!("bucket record writer failed: {e}");
                    break;
                }
            }
        }
    }
}

/// The first and the longest wait before a delivery record refused for space is written
/// again.
const RECORD_RETRY_MIN: Duration = Duration::from_millis(100);
const RECORD_RETRY_MAX: Duration = Duration::from_secs(5);

/// Writes one record. `Ok(complete)` once written (or given up for a reason waiting
/// cannot fix), `complete` meaning the bucket is delivered and the janitor may go;
/// `Err(write)` when a delivery record found no space, to be written again later.
fn save_record(write: SidecarWrite, events: &TailerEvents) -> Result<bool, SidecarWrite> {
    match write {
        SidecarWrite::Delivery {
            path,
            record,
            complete,
        } => match record.save(&path) {
            Ok(()) => Ok(complete),
            Err(e) => {
                let record_path = DeliveryRecord::path_of(&path);
                if let Some(fault) = disk_space::StorageFault::of(&e) {
                    events.disk.fault("tailer", &record_path, fault);
                    return Err(SidecarWrite::Delivery {
                        path,
                        record,
                        complete,
                    });
                }
                tracing::error!(
                    path = %record_path.display(),
                    "cannot write delivery record (the bucket will be sent again after a restart): {e}"
                );
                Ok(false)
            }
        },
        SidecarWrite::Acked { path, record } => {
            if path.exists()
                && let Err(e) = record.merge_into_file(&path)
            {
                let record_path = AckedRecord::path_of(&path);
                // Without it only a restart's re-send grows: on a full disk, skip it.
                match disk_space::StorageFault::of(&e) {
                    Some(fault) => {
                        events.disk.fault("tailer", &record_path, fault);
                    }
                    None => tracing::warn!(
                        path = %record_path.display(),
                        "cannot write acked record (a restart would re-send more of the bucket): {e}"
                    ),
                }
            }
            Ok(false)
        }
    }
}

impl ShipperTask {
    async fn start(
        config: TailerConfig,
        usage: Arc<SpoolUsage>,
        events: Arc<TailerEvents>,
        shutdown: CancellationToken,
    ) -> Result<ShipperTask, ShippingError> {
        let cluster_path = config
            .cluster_file
            .clone()
            .ok_or(ShippingError::NoClusterFile)?;
        let cluster = load_cluster(&cluster_path, config.encryption)?;
        let keys = KeyPair::load_or_create(&config.key_file())?;
        let tailer_id = crate::tailer_id::load_or_create(&config.state_dir)?;
        let host = config.host_name();
        let params = Arc::new(LinkParams {
            tailer_id,
            host,
            keys,
            encryption: config.encryption,
            max_protocol_version: config.max_protocol_version,
            compression_level: config.compression_level,
            connect_timeout: Duration::from_millis(config.connect_timeout_ms.max(1)),
            ping_interval: Duration::from_millis(config.ping_interval_ms.max(1)),
            idle_timeout: Duration::from_millis(config.idle_timeout_ms.max(1)),
            backoff_min_ms: config.connect_backoff_min_ms,
            backoff_max_ms: config.connect_backoff_max_ms,
        });
        if !config.encryption {
            tracing::warn!("encryption = false: messages to bucks travel unencrypted");
        }
        let (link_tx, link_rx) = mpsc::channel(LINK_EVENTS_QUEUE);
        let (internal_tx, internal_rx) = mpsc::unbounded_channel();
        let janitor_kick = Arc::new(Notify::new());
        let (records, records_rx) = mpsc::unbounded_channel();
        tokio::spawn(write_records(
            records_rx,
            janitor_kick.clone(),
            events.clone(),
        ));
        let janitor = SpoolJanitor {
            spool: config.spool_dir.clone(),
            max_bytes: config.spool_max_bytes,
            max_age_secs: config.spool_max_age_secs,
            interval_secs: config.bucket_interval_secs,
            headroom: config.headroom(),
        };
        tokio::spawn(janitor.run(
            Duration::from_millis(config.janitor_interval_ms.max(1)),
            janitor_kick.clone(),
            usage,
            events.clone(),
            shutdown.clone(),
        ));
        let mut task = ShipperTask {
            cluster_stamp: FileStamp::of(&cluster_path),
            cluster_path,
            cluster: Arc::new(cluster),
            config,
            events,
            shutdown,
            params,
            bucks: BTreeMap::new(),
            link_tx,
            link_rx,
            internal_tx,
            internal_rx,
            packets: HashMap::new(),
            live_acked: HashMap::new(),
            live_pending: HashMap::new(),
            rejected: HashMap::new(),
            sealed: HashMap::new(),
            jobs: HashMap::new(),
            next_job: 0,
            ledger: AckLedger::default(),
            records,
        };
        task.connect_bucks();
        task.adopt_leftover_buckets().await;
        Ok(task)
    }

    async fn run(mut self, mut input: mpsc::Receiver<ShipperInput>) {
        let mut input_open = true;
        let mut cluster_poll =
            tokio::time::interval(Duration::from_millis(self.config.cluster_poll_ms.max(1)));
        cluster_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ack_save =
            tokio::time::interval(Duration::from_millis(self.config.acked_save_ms.max(1)));
        ack_save.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next_flush = self.packets.values().map(|p| p.deadline).min();
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                // While a buck that is up has a full in-flight buffer, no more live frames
                // are taken: the reader waits (bounded by `live_wait_ms`) instead of the
                // copy being dropped here and sent a second time by the repair path.
                got = input.recv(), if input_open && !self.live_saturated() => match got {
                    Some(i) => self.on_input(i),
                    None => {
                        tracing::info!("the reader closed its channel; shipping what is spooled until shutdown");
                        input_open = false;
                    }
                },
                Some(ev) = self.link_rx.recv() => self.on_link(ev),
                Some(i) = self.internal_rx.recv() => self.on_internal(i),
                _ = sleep_until(next_flush) => self.flush_due(),
                _ = cluster_poll.tick() => {
                    self.poll_cluster();
                    self.drop_stale_counts();
                }
                _ = ack_save.tick() => self.save_acked(),
            }
        }
        self.save_acked();
        for b in self.bucks.values() {
            b.cancel.cancel();
        }
    }

    /// Whether some buck that is (or is about to be) up could not take all the live
    /// packets of one more input from the reader without passing its in-flight limit.
    /// One input is at most a read chunk of lines, which framing can grow; twice the
    /// chunk plus a packet's slack bounds it.
    fn live_saturated(&self) -> bool {
        let input_max = self
            .config
            .read_chunk_bytes
            .saturating_mul(2)
            .saturating_add(self.config.packet_max_bytes.clamp(1, MAX_CHUNK_BYTES));
        let room = self.config.inflight_max_bytes.saturating_sub(input_max);
        self.bucks
            .values()
            .any(|b| matches!(b.status, Status::Up | Status::Connecting) && b.live_bytes > room)
    }

    // ---- connections -------------------------------------------------------------

    fn connect_bucks(&mut self) {
        let cluster = self.cluster.clone();
        let wanted: BTreeMap<&str, &BuckEntry> =
            cluster.bucks.iter().map(|b| (b.id.as_str(), b)).collect();
        let gone: Vec<String> = self
            .bucks
            .keys()
            .filter(|id| !wanted.contains_key(id.as_str()))
            .cloned()
            .collect();
        for id in gone {
            if let Some(b) = self.bucks.remove(&id) {
                tracing::info!(buck = %id, "buck left the cluster file; closing its connection");
                b.cancel.cancel();
                for job in b.repair_queue.iter().chain(b.active_repair.iter()) {
                    self.jobs.remove(job);
                }
                for per_home in self.live_pending.values_mut() {
                    per_home.remove(&id);
                }
            }
        }
        for (id, entry) in wanted {
            match self.bucks.get_mut(id) {
                Some(b) if b.entry == *entry => continue,
                Some(b) => {
                    tracing::info!(buck = %id, "buck changed in the cluster file; reconnecting");
                    b.cancel.cancel();
                    b.cancel = self.shutdown.child_token();
                    b.entry = entry.clone();
                    b.status = Status::Connecting;
                    b.outbox = None;
                    BuckConnection::spawn(
                        entry.clone(),
                        self.params.clone(),
                        self.events.clone(),
                        self.link_tx.clone(),
                        b.cancel.clone(),
                    );
                }
                None => {
                    let cancel = self.shutdown.child_token();
                    BuckConnection::spawn(
                        entry.clone(),
                        self.params.clone(),
                        self.events.clone(),
                        self.link_tx.clone(),
                        cancel.clone(),
                    );
                    self.bucks.insert(
                        id.to_owned(),
                        BuckState {
                            entry: entry.clone(),
                            cancel,
                            status: Status::Connecting,
                            outbox: None,
                            generation: 0,
                            next_seq: 0,
                            inflight: BTreeMap::new(),
                            live_bytes: 0,
                            repair_queue: VecDeque::new(),
                            active_repair: None,
                        },
                    );
                }
            }
        }
    }

    /// Forgets live counts of buckets that are neither tracked as sealed nor recent: acks
    /// that arrive after their bucket was delivered (a re-sent packet to a home that got
    /// the bucket by repair) would otherwise leave entries behind for good.
    fn drop_stale_counts(&mut self) {
        let grace = chrono::Duration::seconds(
            (self.config.bucket_interval_secs + STALE_COUNT_GRACE_SECS) as i64,
        );
        let now = Utc::now();
        let sealed = &self.sealed;
        let keep = |k: &BucketKey| sealed.contains_key(k) || k.start + grace > now;
        self.live_acked.retain(|k, _| keep(k));
        self.live_pending.retain(|k, _| keep(k));
        self.rejected.retain(|k, _| keep(k));
        self.ledger.retain(keep);
    }

    /// Hands the acked ranges that changed to the record writer.
    fn save_acked(&mut self) {
        for (key, record) in self.ledger.take_dirty() {
            let path = match self.sealed.get(&key) {
                Some(s) => s.path.clone(),
                None => spool_bucket_path(
                    &self.config.spool_dir,
                    &key.crawl,
                    key.start,
                    self.config.bucket_interval_secs,
                ),
            };
            let _ = self.records.send(SidecarWrite::Acked { path, record });
        }
    }

    fn poll_cluster(&mut self) {
        let now = FileStamp::of(&self.cluster_path);
        if now == self.cluster_stamp {
            return;
        }
        self.cluster_stamp = now;
        match load_cluster(&self.cluster_path, self.config.encryption) {
            Ok(c) if c == *self.cluster => {}
            Ok(c) => {
                tracing::info!(path = %self.cluster_path.display(), bucks = c.bucks.len(), "cluster file changed; applying it");
                self.cluster = Arc::new(c);
                self.connect_bucks();
                // Homes may have changed: count each pending bucket's frames again.
                let pending: Vec<BucketKey> = self.sealed.keys().cloned().collect();
                for key in pending {
                    self.scan(key);
                }
            }
            Err(e) => tracing::error!("{e}; keeping the previous cluster file"),
        }
    }

    fn on_link(&mut self, ev: LinkEvent) {
        match ev {
            LinkEvent::Up {
                buck,
                generation,
                outbox,
            } => {
                let Some(b) = self.bucks.get_mut(&buck) else {
                    return;
                };
                b.status = Status::Up;
                b.generation = generation;
                b.outbox = Some(outbox);
                // Re-send, in order, everything the buck has not acked.
                for f in b.inflight.values() {
                    b.send(&f.message);
                }
                self.start_repair(&buck);
            }
            LinkEvent::Down { buck, generation } => {
                let Some(b) = self.bucks.get_mut(&buck) else {
                    return;
                };
                if generation == 0 || generation == b.generation {
                    b.status = Status::Down;
                    b.outbox = None;
                }
            }
            LinkEvent::Reply { buck, message } => match message {
                Message::Ack { seq, rejected } => self.on_ack(&buck, seq, rejected),
                Message::Nack {
                    seq,
                    retry_after_ms,
                    reason,
                } => {
                    let Some(b) = self.bucks.get(&buck) else {
                        return;
                    };
                    if !b.inflight.contains_key(&seq) {
                        return;
                    }
                    self.events.nacked();
                    tracing::warn!(buck = %buck, seq, retry_after_ms, "buck refused a message for now: {reason}; retrying");
                    let wait = Duration::from_millis(
                        u64::from(retry_after_ms).clamp(1, MAX_RETRY_AFTER_MS),
                    );
                    let tx = self.internal_tx.clone();
                    let generation = b.generation;
                    tokio::spawn(async move {
                        tokio::time::sleep(wait).await;
                        let _ = tx.send(Internal::Retry {
                            buck,
                            seq,
                            generation,
                        });
                    });
                }
                _ => {}
            },
        }
    }

    fn on_ack(&mut self, buck: &str, seq: u64, rejected: Vec<contracts::transport::RejectedFrame>) {
        let Some(b) = self.bucks.get_mut(buck) else {
            return;
        };
        // An ack for a message already acked (a re-send that crossed its first ack) is
        // ignored, so nothing is counted twice.
        let Some(f) = b.inflight.remove(&seq) else {
            return;
        };
        let refused = (rejected.len() as u64).min(f.frames.into());
        self.events.acked(u64::from(f.frames) - refused, refused);
        if refused > 0 {
            for r in rejected.iter().take(5) {
                tracing::warn!(buck = %buck, seq, frame = r.index, "buck rejected a frame for good: {}", r.reason);
            }
            self.remember_rejected(&f, &rejected);
        }
        let Some(b) = self.bucks.get_mut(buck) else {
            return;
        };
        match f.what {
            Sent::Live {
                buckets,
                home,
                bytes,
            } => {
                b.live_bytes -= bytes;
                if !home {
                    return;
                }
                // A frame rejected for good is settled too: it is never sent again.
                for share in buckets {
                    let (key, n) = (&share.key, share.frames);
                    if let Some(p) = self.live_pending.get_mut(key).and_then(|h| h.get_mut(buck)) {
                        *p = p.saturating_sub(n.into());
                    }
                    *self
                        .live_acked
                        .entry(key.clone())
                        .or_default()
                        .entry(buck.to_owned())
                        .or_default() += u64::from(n);
                    self.ledger.record(key, buck, share.ranges.iter().cloned());
                    if self.sealed.contains_key(key) {
                        self.evaluate(key);
                    }
                }
            }
            Sent::Chunk {
                job,
                next_offset,
                settled,
                last,
            } => {
                if let Some(j) = self.jobs.get(&job) {
                    self.ledger.record(&j.bucket, &j.home, settled);
                }
                if last {
                    b.active_repair = None;
                    if let Some(j) = self.jobs.remove(&job) {
                        self.events.repair_done();
                        if let Some(s) = self.sealed.get_mut(&j.bucket) {
                            s.jobs.remove(&j.home);
                            s.delivered.insert(j.home.clone());
                            self.evaluate(&j.bucket);
                        }
                    }
                    self.start_repair(buck);
                } else if let Some(j) = self.jobs.get_mut(&job) {
                    j.offset = next_offset;
                    j.chunk += 1;
                    self.read_next_chunk(job);
                }
            }
        }
    }

    // ---- live packets ------------------------------------------------------------

    fn on_input(&mut self, input: ShipperInput) {
        match input {
            ShipperInput::Live {
                bucket,
                day,
                frames,
                count: _,
                ranges,
            } => {
                // A packet must fit one message whatever the config says: a message too
                // large to seal would fail on every reconnect.
                let max = self.config.packet_max_bytes.clamp(1, MAX_CHUNK_BYTES);
                let route = (bucket.crawl.clone(), day);
                let mut places = FilePlaces::new(ranges);
                let mut items = FrameReader::new(&frames).peekable();
                // One pass of the outer loop per packet: the route is hashed (and, for a new
                // packet, cloned) once per packet, not once per frame.
                loop {
                    let first_at = match items.peek() {
                        None => break,
                        Some(Ok((at, _))) => *at,
                        Some(Err(
                            e @ (FrameError::Incomplete { .. } | FrameError::Empty { .. }),
                        )) => {
                            tracing::error!(bucket = ?bucket, "live frames from the reader are malformed ({e}); the rest are left to the repair send");
                            break;
                        }
                    };
                    if !self.packets.contains_key(&route) {
                        let delay = Duration::from_millis(self.config.packet_max_delay_ms);
                        // Room for what this input can still add, up to a full packet (and
                        // its last frame unless a huge one): growing by doubling copied
                        // each packet once more.
                        let room = (frames.len() - first_at).min(max + 4096);
                        self.packets.insert(
                            route.clone(),
                            PacketBuilder {
                                frames: BytesMut::with_capacity(room),
                                count: 0,
                                buckets: Vec::new(),
                                deadline: Instant::now() + delay,
                            },
                        );
                    }
                    // Always there: inserted just above if it was not.
                    let Some(p) = self.packets.get_mut(&route) else {
                        break;
                    };
                    let mut full = false;
                    while let Some(Ok((at, payload))) = items.peek() {
                        let frame = &frames[*at..*at + 2 + payload.len()];
                        if p.count > 0 && p.frames.len() + frame.len() > max {
                            full = true;
                            break;
                        }
                        items.next();
                        p.frames.extend_from_slice(frame);
                        p.count += 1;
                        let place = places.next(frame.len() as u64);
                        match p.buckets.last_mut() {
                            Some(share) if share.key == bucket => share.add(place),
                            _ => {
                                let mut share = BucketShare::new(bucket.clone());
                                share.add(place);
                                p.buckets.push(share);
                            }
                        }
                        if p.frames.len() >= max {
                            full = true;
                            break;
                        }
                    }
                    if full {
                        self.flush(&route);
                    }
                }
            }
            ShipperInput::Sealed { bucket, path } => {
                // Every frame of the bucket is on its way before deciding what to repair.
                let routes: Vec<_> = self
                    .packets
                    .keys()
                    .filter(|(c, _)| *c == bucket.crawl)
                    .cloned()
                    .collect();
                for r in routes {
                    self.flush(&r);
                }
                self.track_sealed(bucket, path);
            }
        }
    }

    fn flush_due(&mut self) {
        let now = Instant::now();
        let due: Vec<_> = self
            .packets
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for r in due {
            self.flush(&r);
        }
    }

    /// Sends the packet of `route` to the homes of (crawl, day), or to a stand-in.
    fn flush(&mut self, route: &(CrawlId, NaiveDate)) {
        let Some(p) = self.packets.remove(route) else {
            return;
        };
        if p.count == 0 {
            return;
        }
        let frames = p.frames.freeze();
        // Compressed once here for every home, rather than once per connection.
        let packed = match PackedFrames::new(frames.clone(), self.config.compression_level) {
            Ok(packed) => Some(Arc::new(packed)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot compress a live packet once for all homes; each connection compresses it");
                None
            }
        };
        let order = self.cluster.home_bucks(&route.0, route.1);
        let homes = order.homes();
        if homes.is_empty() {
            tracing::warn!(crawl = %route.0.as_str(), day = %route.1, "no buck takes this crawl on this day (see `since` in the cluster file); the live copy is dropped, the spool keeps it");
            self.events.live_dropped(p.count.into());
            return;
        }
        let all_down = homes
            .iter()
            .all(|h| self.bucks.get(h).is_none_or(|b| b.status == Status::Down));
        if all_down
            && let Some(stand_in) = order
                .stand_ins()
                .iter()
                .find(|s| self.bucks.get(*s).is_some_and(|b| b.status == Status::Up))
        {
            let stand_in = stand_in.clone();
            self.enqueue_live(&stand_in, frames, packed, p.count, p.buckets, false);
            return;
        }
        for h in homes {
            self.enqueue_live(
                h,
                frames.clone(),
                packed.clone(),
                p.count,
                p.buckets.clone(),
                true,
            );
        }
    }

    /// Puts a live packet in `buck`'s in-flight table and sends it if the buck is up.
    /// Past the in-flight limit the live copy is dropped: the repair send covers it.
    fn enqueue_live(
        &mut self,
        buck: &str,
        frames: Bytes,
        packed: Option<Arc<PackedFrames>>,
        count: u32,
        buckets: Vec<BucketShare>,
        home: bool,
    ) {
        let Some(b) = self.bucks.get_mut(buck) else {
            return;
        };
        let bytes = frames.len();
        if b.live_bytes + bytes > self.config.inflight_max_bytes {
            self.events.live_dropped(count.into());
            tracing::debug!(buck = %buck, "in-flight limit reached; live copy dropped, the repair send covers it");
            return;
        }
        let seq = b.next_seq;
        b.next_seq += 1;
        if home {
            for share in &buckets {
                *self
                    .live_pending
                    .entry(share.key.clone())
                    .or_default()
                    .entry(buck.to_owned())
                    .or_default() += u64::from(share.frames);
            }
        }
        let message = match packed {
            Some(packed) => Outgoing::Live { seq, packed },
            None => Outgoing::Message(Message::Live { seq, frames }),
        };
        b.send(&message);
        b.inflight.insert(
            seq,
            InFlight {
                message,
                frames: count,
                what: Sent::Live {
                    buckets,
                    home,
                    bytes,
                },
            },
        );
        b.live_bytes += bytes;
        self.events.live_packet_sent(count, !home);
    }

    // ---- delivery tracking and the repair path ------------------------------------

    /// Starts tracking a sealed bucket (once; a repeated Sealed is ignored).
    fn track_sealed(&mut self, bucket: BucketKey, path: PathBuf) {
        if self.sealed.contains_key(&bucket) {
            return;
        }
        self.sealed.insert(
            bucket.clone(),
            SealedBucket {
                path,
                scan: None,
                delivered: BTreeSet::new(),
                due: false,
                jobs: BTreeMap::new(),
            },
        );
        self.events.buckets_pending(self.sealed.len());
        self.scan(bucket);
    }

    /// Counts the bucket's frames per home, off the runtime.
    fn scan(&self, bucket: BucketKey) {
        let Some(s) = self.sealed.get(&bucket) else {
            return;
        };
        let path = s.path.clone();
        let cluster = self.cluster.clone();
        let tx = self.internal_tx.clone();
        let mut acked = self.ledger.record_of(&bucket);
        tokio::task::spawn_blocking(move || {
            let on_disk = AckedRecord::load_or_empty(&path);
            acked.union(&on_disk);
            let result = scan_bucket(&path, &cluster, &bucket.crawl, &acked).and_then(|scan| {
                Ok(Scanned {
                    scan,
                    delivery: DeliveryRecord::load(&path)?,
                    acked: on_disk,
                })
            });
            let _ = tx.send(Internal::Scanned { bucket, result });
        });
    }

    fn on_internal(&mut self, i: Internal) {
        match i {
            Internal::Scanned { bucket, result } => self.on_scanned(bucket, result),
            Internal::RepairDue { bucket } => {
                if let Some(s) = self.sealed.get_mut(&bucket) {
                    s.due = true;
                    self.evaluate(&bucket);
                }
            }
            Internal::ChunkRead { job, result } => self.on_chunk_read(job, result),
            Internal::Retry {
                buck,
                seq,
                generation,
            } => {
                if let Some(b) = self.bucks.get(&buck)
                    && b.generation == generation
                    && b.status == Status::Up
                    && let Some(f) = b.inflight.get(&seq)
                {
                    b.send(&f.message);
                }
            }
        }
    }

    fn on_scanned(&mut self, bucket: BucketKey, result: std::io::Result<Scanned>) {
        let Some(s) = self.sealed.get_mut(&bucket) else {
            return;
        };
        let Scanned {
            scan,
            delivery: record,
            acked,
        } = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(path = %s.path.display(), "cannot read sealed spool bucket, it is not shipped: {e}; move it out of the spool if it is damaged");
                self.forget(&bucket);
                return;
            }
        };
        if scan.unrouted > 0 {
            tracing::warn!(path = %s.path.display(), frames = scan.unrouted, "no buck takes some frames of this bucket yet (see `since` in the cluster file); it stays in the spool");
        }
        // A home delivered under an earlier routing stays delivered only if it is routed
        // the same frames now, or its acked ranges cover all it must have: a changed
        // cluster file can give it frames it never got (a day that had no home yet).
        let before = s.scan.as_ref().map(|p| p.expected.clone());
        s.delivered
            .retain(|h| still_delivered(h, before.as_ref(), &scan));
        if let Some(r) = record {
            // A version 1 record kept no counts: its homes are trusted as they were.
            let counted = (r.version >= 2).then_some(&r.expected);
            s.delivered.extend(
                r.delivered
                    .into_iter()
                    .filter(|h| still_delivered(h, counted, &scan)),
            );
        }
        // Frames an earlier run saw acked count as acked live: only the rest is repaired.
        let counts = self.live_acked.entry(bucket.clone()).or_default();
        for (home, &n) in &scan.acked {
            let c = counts.entry(home.clone()).or_default();
            *c = (*c).max(n);
        }
        self.ledger.adopt(&bucket, acked);
        let first = s.scan.is_none();
        // Jobs for homes that are no longer homes (the cluster changed) are dropped.
        let stale: Vec<(String, u64)> = s
            .jobs
            .iter()
            .filter(|(h, _)| !scan.expected.contains_key(*h))
            .map(|(h, j)| (h.clone(), *j))
            .collect();
        for (h, j) in stale {
            s.jobs.remove(&h);
            self.jobs.remove(&j);
        }
        s.scan = Some(scan);
        if first {
            let max_ms = self.config.repair_delay_max_secs.saturating_mul(1000);
            let wait = Duration::from_millis(rand::random_range(0..=max_ms));
            let tx = self.internal_tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                let _ = tx.send(Internal::RepairDue { bucket });
            });
        } else {
            self.evaluate(&bucket);
        }
    }

    /// Settles what can be settled for a sealed bucket: homes that acked every frame live
    /// are delivered; once the repair delay has passed, the others get a repair job; when
    /// every home has it, the bucket is recorded as delivered.
    fn evaluate(&mut self, bucket: &BucketKey) {
        let Some(s) = self.sealed.get_mut(bucket) else {
            return;
        };
        let Some(scan) = &s.scan else { return };
        let live = self.live_acked.get(bucket);
        let pending = self.live_pending.get(bucket);
        let mut changed = false;
        let mut new_jobs = Vec::new();
        for (home, &want) in &scan.expected {
            if s.delivered.contains(home) {
                continue;
            }
            let acked = live.and_then(|l| l.get(home)).copied().unwrap_or(0);
            let in_flight = pending.and_then(|l| l.get(home)).copied().unwrap_or(0);
            if acked >= want {
                s.delivered.insert(home.clone());
                changed = true;
            } else if acked + in_flight >= want {
                // Every missing frame is in flight to this home (and re-sent on
                // reconnect): its acks decide, and each one re-evaluates the bucket.
            } else if s.due && !s.jobs.contains_key(home) && self.bucks.contains_key(home) {
                new_jobs.push(home.clone());
            }
        }
        let started = new_jobs.clone();
        for home in new_jobs {
            let id = self.next_job;
            self.next_job += 1;
            s.jobs.insert(home.clone(), id);
            self.jobs.insert(
                id,
                RepairJob {
                    bucket: bucket.clone(),
                    path: s.path.clone(),
                    home: home.clone(),
                    offset: 0,
                    chunk: 0,
                },
            );
            if let Some(b) = self.bucks.get_mut(&home) {
                b.repair_queue.push_back(id);
            }
        }
        for home in started {
            self.start_repair(&home);
        }
        let Some(s) = self.sealed.get(bucket) else {
            return;
        };
        let Some(scan) = &s.scan else { return };
        let homes: BTreeSet<String> = scan.expected.keys().cloned().collect();
        let complete = scan.unrouted == 0 && homes.is_subset(&s.delivered);
        if changed || complete {
            let record = DeliveryRecord {
                version: DELIVERY_RECORD_VERSION,
                homes,
                delivered: s.delivered.clone(),
                expected: scan.expected.clone(),
                unrouted: scan.unrouted,
            };
            let path = s.path.clone();
            let _ = self.records.send(SidecarWrite::Delivery {
                path,
                record,
                complete,
            });
        }
        if complete {
            self.events
                .bucket_delivered(self.sealed.len().saturating_sub(1));
            self.forget(bucket);
            self.ledger.delivered(bucket);
        }
    }

    fn forget(&mut self, bucket: &BucketKey) {
        if let Some(s) = self.sealed.remove(bucket) {
            for j in s.jobs.values() {
                self.jobs.remove(j);
            }
        }
        self.live_acked.remove(bucket);
        self.live_pending.remove(bucket);
        self.rejected.remove(bucket);
        self.ledger.forget(bucket);
        self.events.buckets_pending(self.sealed.len());
    }

    /// Starts the next repair job of `buck` if it is up and not already sending one.
    fn start_repair(&mut self, buck: &str) {
        loop {
            let Some(b) = self.bucks.get_mut(buck) else {
                return;
            };
            if b.status != Status::Up || b.active_repair.is_some() {
                return;
            }
            let Some(job) = b.repair_queue.pop_front() else {
                return;
            };
            // A job whose bucket was settled meanwhile (live acks caught up) is skipped.
            let Some(j) = self.jobs.get(&job) else {
                continue;
            };
            let still_needed = self
                .sealed
                .get(&j.bucket)
                .is_some_and(|s| !s.delivered.contains(&j.home));
            if !still_needed {
                self.jobs.remove(&job);
                continue;
            }
            b.active_repair = Some(job);
            self.read_next_chunk(job);
            return;
        }
    }

    /// Notes the events of the frames a buck refused for good, so that no repair chunk
    /// carries them again (to this buck or any other: the reasons are the frame's own).
    fn remember_rejected(
        &mut self,
        f: &InFlight,
        rejected: &[contracts::transport::RejectedFrame],
    ) {
        let live_frames = match &f.message {
            Outgoing::Live { packed, .. } => Some(packed.frames()),
            Outgoing::Message(Message::Live { frames, .. }) => Some(frames),
            Outgoing::Message(_) => None,
        };
        let (frames, owners): (&Bytes, Vec<&BucketKey>) = match (live_frames, &f.message, &f.what) {
            (Some(frames), _, Sent::Live { buckets, .. }) => (
                frames,
                buckets
                    .iter()
                    .flat_map(|s| std::iter::repeat_n(&s.key, s.frames as usize))
                    .collect(),
            ),
            (
                _,
                Outgoing::Message(Message::BucketChunk { frames, .. }),
                Sent::Chunk { job, .. },
            ) => {
                let Some(j) = self.jobs.get(job) else { return };
                (frames, vec![&j.bucket; f.frames as usize])
            }
            _ => return,
        };
        let wanted: HashSet<u32> = rejected.iter().map(|r| r.index).collect();
        for (index, item) in FrameReader::new(frames).enumerate() {
            let Ok((_, payload)) = item else { break };
            if !wanted.contains(&(index as u32)) {
                continue;
            }
            if let (Some(key), Ok(event)) = (owners.get(index), Event::decode(payload)) {
                self.rejected
                    .entry((*key).clone())
                    .or_default()
                    .insert(event.id);
            }
        }
    }

    fn read_next_chunk(&self, job: u64) {
        let Some(j) = self.jobs.get(&job) else { return };
        let (path, offset, home, crawl) = (
            j.path.clone(),
            j.offset,
            j.home.clone(),
            j.bucket.crawl.clone(),
        );
        let skip = self.rejected.get(&j.bucket).cloned().unwrap_or_default();
        let acked = self.ledger.ranges(&j.bucket, &j.home);
        let cluster = self.cluster.clone();
        let tx = self.internal_tx.clone();
        tokio::task::spawn_blocking(move || {
            let result = read_chunk(&path, offset, &home, &cluster, &crawl, &skip, &acked);
            let _ = tx.send(Internal::ChunkRead { job, result });
        });
    }

    fn on_chunk_read(&mut self, job: u64, result: std::io::Result<Chunk>) {
        let Some(j) = self.jobs.get(&job) else { return };
        let home = j.home.clone();
        let chunk = match result {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(path = %j.path.display(), home = %home, "cannot read spool bucket for its repair send: {e}");
                let bucket = j.bucket.clone();
                self.jobs.remove(&job);
                if let Some(b) = self.bucks.get_mut(&home) {
                    b.active_repair = None;
                }
                self.forget(&bucket);
                self.start_repair(&home);
                return;
            }
        };
        let (crawl, bucket_start, n) =
            (j.bucket.crawl.clone(), j.bucket.start.timestamp(), j.chunk);
        let Some(b) = self.bucks.get_mut(&home) else {
            return;
        };
        let seq = b.next_seq;
        b.next_seq += 1;
        let message = Outgoing::Message(Message::BucketChunk {
            seq,
            crawl,
            bucket_start,
            chunk: n,
            last: chunk.last,
            frames: chunk.frames,
        });
        b.send(&message);
        b.inflight.insert(
            seq,
            InFlight {
                message,
                frames: chunk.count,
                what: Sent::Chunk {
                    job,
                    next_offset: chunk.next_offset,
                    settled: chunk.settled,
                    last: chunk.last,
                },
            },
        );
        self.events.repair_chunk_sent();
    }

    /// At start-up, takes up every sealed bucket of an earlier run that is not delivered
    /// yet (the reader also reports them; a second report is ignored).
    async fn adopt_leftover_buckets(&mut self) {
        let spool = self.config.spool_dir.clone();
        let entries = match tokio::task::spawn_blocking(move || scan_spool(&spool)).await {
            Ok(e) => e,
            Err(e) => {
                tracing::error!("cannot scan the spool at start-up: {e}");
                return;
            }
        };
        let interval = chrono::Duration::seconds(self.config.bucket_interval_secs as i64);
        let now = Utc::now();
        for e in entries {
            // The current interval's bucket may still be written to: the reader seals it.
            if e.delivered || e.start + interval > now {
                continue;
            }
            self.track_sealed(
                BucketKey {
                    crawl: e.crawl,
                    start: e.start,
                },
                e.path,
            );
        }
    }
}

/// Walks the file ranges of a live input alongside its frames: each frame's place in the
/// bucket file, or `None` when the ranges do not account for it.
struct FilePlaces {
    ranges: std::vec::IntoIter<Range<u64>>,
    current: Option<Range<u64>>,
}

impl FilePlaces {
    fn new(ranges: Vec<Range<u64>>) -> FilePlaces {
        let mut ranges = ranges.into_iter();
        let current = ranges.next();
        FilePlaces { ranges, current }
    }

    /// The place of the next frame, `len` bytes long. Ranges that do not split into the
    /// frames exactly end the walk: a wrong place would record acks for other frames.
    fn next(&mut self, len: u64) -> Option<Range<u64>> {
        loop {
            let r = self.current.as_mut()?;
            if r.start == r.end {
                self.current = self.ranges.next();
                continue;
            }
            if r.end - r.start < len {
                self.current = None;
                return None;
            }
            let place = r.start..r.start + len;
            r.start += len;
            return Some(place);
        }
    }
}

/// Whether `home`, delivered when it was routed `before` frames per home (`None`: not
/// known), still has every frame `scan` routes to it.
fn still_delivered(home: &str, before: Option<&BTreeMap<String, u64>>, scan: &BucketScan) -> bool {
    let want = scan.expected.get(home).copied().unwrap_or(0);
    let unchanged = before.is_none_or(|b| b.get(home).copied().unwrap_or(0) == want);
    unchanged || scan.acked.get(home).copied().unwrap_or(0) >= want
}

fn load_cluster(path: &Path, encryption: bool) -> Result<ClusterFile, ShippingError> {
    let c = ClusterFile::load(path)?;
    if encryption && let Some(b) = c.bucks.iter().find(|b| b.public_key.is_none()) {
        return Err(ShippingError::MissingBuckKey {
            path: path.into(),
            buck: b.id.clone(),
        });
    }
    Ok(c)
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
