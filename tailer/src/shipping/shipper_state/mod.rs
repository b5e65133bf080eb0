//! `ShipperState`: every decision the shipper makes, and no I/O.
//!
//! It gathers live frames into packets per (crawl, day), routes each packet to the
//! crawl's homes (or, while every home is down, to the first stand-in that is up), keeps
//! each sent message in its buck's in-flight table until acked, and queues them again
//! when a connection comes back. It counts, per (bucket, home), the frames acked live;
//! when a bucket is sealed it waits a random moment and sends the bucket whole to every
//! home that has not acked all of its frames (the repair path), chunk by chunk, each
//! acked. A bucket whose every home has it is recorded as delivered beside it, and the
//! [`SpoolJanitor`](super::spool_janitor::SpoolJanitor) may then prune it.
//!
//! Inputs are method calls: a live input or a sealed bucket from the reader, a
//! connection up or down, an ack or a nack, the answer to a scan or a chunk read, a new
//! cluster file, and the passing of time (`on_tick(now)`, with [`next_deadline`] saying
//! when the next one is due). Outputs are [`Command`]s, taken with [`take_commands`], and
//! the messages each buck should be sent next, taken with [`next_send`]: the
//! [`Shipper`](super::Shipper) shell performs them. Nothing here touches a socket, a
//! file, a channel or the clock, so every path is a unit test on paused time.
//!
//! Why one owner: the in-flight tables, the live counts and the repair jobs all change
//! together on every ack; keeping them in one value needs no locks and makes each step
//! an ordinary function.
//!
//! Layout: this file holds the bucks (connections, in-flight tables, acks, nacks, timers);
//! `live.rs` the live packets; `repair.rs` delivery tracking and the repair path.
//!
//! [`next_deadline`]: ShipperState::next_deadline
//! [`take_commands`]: ShipperState::take_commands
//! [`next_send`]: ShipperState::next_send

mod live;
mod repair;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use contracts::transport::{MAX_CHUNK_BYTES, RejectedFrame};
use contracts::{BuckEntry, ClusterFile, CrawlId, EventId};
use tokio::time::Instant;

use self::live::PacketBuilder;
pub(crate) use self::repair::{ChunkRequest, Scanned};
use self::repair::{RepairJob, SealedBucket};
use super::ack_ledger::{AckLedger, BucketShare};
use super::acked_ranges::AckedRecord;
use super::buck_connection::Outgoing;
use super::delivery::ChunkStart;
use super::record_writer::SidecarWrite;
use crate::config::TailerConfig;
use crate::events::TailerEvents;
use crate::pipeline::BucketKey;

/// Longest nack delay honoured, whatever a buck asks: a buck that wants more can nack again.
const MAX_RETRY_AFTER_MS: u64 = 60_000;

/// The settings the state machine decides by, taken from the tailer config.
#[derive(Debug, Clone)]
pub(crate) struct ShippingPolicy {
    /// The spool, where the records of buckets not tracked as sealed are written.
    pub spool_dir: PathBuf,
    /// Length of a bucket, in seconds.
    pub bucket_interval_secs: u64,
    /// Largest live packet, in bytes of frames (already capped to one message).
    pub packet_max_bytes: usize,
    /// Longest a live frame waits for its packet to fill.
    pub packet_max_delay: Duration,
    /// zlib level of live packets, compressed once for all homes.
    pub compression_level: u32,
    /// Bytes of live packets held unacked per buck.
    pub inflight_max_bytes: usize,
    /// Largest read of one file, in bytes: what one live input can hold, before framing.
    pub read_chunk_bytes: usize,
    /// How long after a bucket is sealed its repair send may start.
    pub repair_delay: RepairDelay,
}

impl ShippingPolicy {
    /// The policy of `config`.
    pub fn of(config: &TailerConfig) -> ShippingPolicy {
        ShippingPolicy {
            spool_dir: config.spool_dir.clone(),
            bucket_interval_secs: config.bucket_interval_secs,
            // A packet must fit one message whatever the config says: a message too
            // large to seal would fail on every reconnect.
            packet_max_bytes: config.packet_max_bytes.clamp(1, MAX_CHUNK_BYTES),
            packet_max_delay: Duration::from_millis(config.packet_max_delay_ms),
            compression_level: config.compression_level,
            inflight_max_bytes: config.inflight_max_bytes,
            read_chunk_bytes: config.read_chunk_bytes,
            repair_delay: RepairDelay::up_to(Duration::from_secs(config.repair_delay_max_secs)),
        }
    }
}

/// The wait between a bucket's sealing and its repair send: random, so that a fleet of
/// tailers whose buckets seal at the same second does not repair at the same second.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RepairDelay {
    min: Duration,
    max: Duration,
}

impl RepairDelay {
    /// Uniformly random in `[0, max]`.
    pub fn up_to(max: Duration) -> RepairDelay {
        RepairDelay {
            min: Duration::ZERO,
            max,
        }
    }

    /// Always `delay`: for tests that must know when the repair starts.
    #[cfg(test)]
    pub fn exactly(delay: Duration) -> RepairDelay {
        RepairDelay {
            min: delay,
            max: delay,
        }
    }

    fn pick(&self) -> Duration {
        let min = self.min.as_millis() as u64;
        let max = (self.max.as_millis() as u64).max(min);
        Duration::from_millis(rand::random_range(min..=max))
    }
}

/// What the shell must do for the state machine.
#[derive(Debug)]
pub(crate) enum Command {
    /// Open a connection to this buck and keep it open; report it up and down.
    Connect(BuckEntry),
    /// Close the connection to this buck: it left the cluster file, or changed (a
    /// `Connect` with its new entry follows).
    Disconnect {
        /// The buck.
        buck: String,
    },
    /// Count the frames of a sealed bucket per home and read its records; answer with
    /// [`ShipperState::on_scanned`].
    ScanBucket {
        /// The bucket.
        bucket: BucketKey,
        /// Its file.
        path: PathBuf,
        /// The routing to count by.
        cluster: Arc<ClusterFile>,
        /// The ranges known acked in memory, to add to those on disk.
        acked: AckedRecord,
    },
    /// Read the next chunk of a repair job; answer with [`ShipperState::on_chunk_read`].
    ReadChunk(ChunkRequest),
    /// Write a record beside a bucket, after every record asked for before it.
    WriteRecord(SidecarWrite),
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
    /// In the buck's send queue (so a retry does not queue it twice).
    queued: bool,
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
        next: ChunkStart,
        settled: Vec<std::ops::Range<u64>>,
        last: bool,
    },
}

struct BuckState {
    entry: BuckEntry,
    status: Status,
    generation: u64,
    next_seq: u64,
    inflight: BTreeMap<u64, InFlight>,
    /// Messages to hand to the current connection, in order, by sequence number. Every
    /// one is in `inflight`, at most once, so the queue is bounded by the in-flight table.
    send_queue: VecDeque<u64>,
    /// Bytes of live packets in `inflight`, held under `inflight_max_bytes`.
    live_bytes: usize,
    /// Repair jobs waiting for this buck, and the one being sent (one at a time, so a
    /// buck coming back is not flooded and at most one chunk per buck is in memory).
    repair_queue: VecDeque<u64>,
    active_repair: Option<u64>,
}

impl BuckState {
    fn new(entry: BuckEntry) -> BuckState {
        BuckState {
            entry,
            status: Status::Connecting,
            generation: 0,
            next_seq: 0,
            inflight: BTreeMap::new(),
            send_queue: VecDeque::new(),
            live_bytes: 0,
            repair_queue: VecDeque::new(),
            active_repair: None,
        }
    }

    /// Queues message `seq` for the current connection, if there is one. Without one it
    /// waits in `inflight`, queued again on the next `Up`.
    fn transmit(&mut self, seq: u64) {
        if self.status != Status::Up {
            return;
        }
        if let Some(f) = self.inflight.get_mut(&seq)
            && !f.queued
        {
            f.queued = true;
            self.send_queue.push_back(seq);
        }
    }

    /// The connection is gone: what was queued for it is queued again on the next `Up`.
    fn clear_send_queue(&mut self) {
        for seq in self.send_queue.drain(..) {
            if let Some(f) = self.inflight.get_mut(&seq) {
                f.queued = false;
            }
        }
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }
}

/// Something due at an instant.
#[derive(Debug)]
enum Timer {
    /// A sealed bucket's random repair delay has passed.
    RepairDue(BucketKey),
    /// A nacked message may be sent again, if its connection is still the same.
    Retry {
        buck: String,
        seq: u64,
        generation: u64,
    },
}

/// The shipper's state. See the module documentation.
pub(crate) struct ShipperState {
    policy: ShippingPolicy,
    events: Arc<TailerEvents>,
    cluster: Arc<ClusterFile>,
    bucks: BTreeMap<String, BuckState>,
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
    /// Timers by due instant; the second key only keeps two timers of one instant apart.
    timers: BTreeMap<(Instant, u64), Timer>,
    next_timer: u64,
    commands: Vec<Command>,
}

impl ShipperState {
    /// A state routing by `cluster`; its first commands connect to every buck.
    pub fn new(
        cluster: Arc<ClusterFile>,
        policy: ShippingPolicy,
        events: Arc<TailerEvents>,
    ) -> ShipperState {
        let mut state = ShipperState {
            policy,
            events,
            cluster,
            bucks: BTreeMap::new(),
            packets: HashMap::new(),
            live_acked: HashMap::new(),
            live_pending: HashMap::new(),
            rejected: HashMap::new(),
            sealed: HashMap::new(),
            jobs: HashMap::new(),
            next_job: 0,
            ledger: AckLedger::default(),
            timers: BTreeMap::new(),
            next_timer: 0,
            commands: Vec::new(),
        };
        state.connect_bucks();
        state
    }

    /// The commands decided since the last call, in order.
    pub fn take_commands(&mut self) -> Vec<Command> {
        std::mem::take(&mut self.commands)
    }

    /// The next message to hand to `buck`'s connection, if any.
    pub fn next_send(&mut self, buck: &str) -> Option<Outgoing> {
        let b = self.bucks.get_mut(buck)?;
        while let Some(seq) = b.send_queue.pop_front() {
            if let Some(f) = b.inflight.get_mut(&seq) {
                f.queued = false;
                return Some(f.message.clone());
            }
        }
        None
    }

    /// The bucks that have messages waiting for their connection.
    pub fn bucks_with_sends(&self) -> impl Iterator<Item = &str> {
        self.bucks
            .iter()
            .filter(|(_, b)| !b.send_queue.is_empty())
            .map(|(id, _)| id.as_str())
    }

    /// Whether `buck` is known to be connected.
    pub fn is_up(&self, buck: &str) -> bool {
        self.bucks.get(buck).is_some_and(|b| b.status == Status::Up)
    }

    /// When `on_tick` next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let timer = self.timers.keys().next().map(|(at, _)| *at);
        let flush = self.packets.values().map(|p| p.deadline).min();
        match (timer, flush) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Time passed: sends the packets whose delay ran out and fires the timers that are due.
    pub fn on_tick(&mut self, now: Instant) {
        self.flush_due(now);
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            match entry.remove() {
                Timer::RepairDue(bucket) => self.on_repair_due(&bucket),
                Timer::Retry {
                    buck,
                    seq,
                    generation,
                } => {
                    if let Some(b) = self.bucks.get_mut(&buck)
                        && b.generation == generation
                    {
                        b.transmit(seq);
                    }
                }
            }
        }
    }

    fn schedule(&mut self, at: Instant, timer: Timer) {
        self.timers.insert((at, self.next_timer), timer);
        self.next_timer += 1;
    }

    // ---- the cluster and the connections ------------------------------------------

    /// Applies a changed cluster file: connections follow it, and every sealed bucket is
    /// counted again, since its homes may have changed.
    pub fn on_cluster(&mut self, cluster: Arc<ClusterFile>) {
        self.cluster = cluster;
        self.connect_bucks();
        let pending: Vec<BucketKey> = self.sealed.keys().cloned().collect();
        for key in pending {
            self.scan(key);
        }
    }

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
                self.commands.push(Command::Disconnect { buck: id.clone() });
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
                    self.commands.push(Command::Disconnect {
                        buck: id.to_owned(),
                    });
                    b.entry = entry.clone();
                    b.status = Status::Connecting;
                    b.clear_send_queue();
                    self.commands.push(Command::Connect(entry.clone()));
                }
                None => {
                    self.commands.push(Command::Connect(entry.clone()));
                    self.bucks
                        .insert(id.to_owned(), BuckState::new(entry.clone()));
                }
            }
        }
    }

    /// A connection to `buck` is established: everything it has not acked is queued
    /// again, in order, and its waiting repair starts.
    pub fn on_link_up(&mut self, buck: &str, generation: u64) {
        let Some(b) = self.bucks.get_mut(buck) else {
            return;
        };
        b.status = Status::Up;
        b.generation = generation;
        b.clear_send_queue();
        let seqs: Vec<u64> = b.inflight.keys().copied().collect();
        for seq in seqs {
            b.transmit(seq);
        }
        self.start_repair(buck);
    }

    /// A connection attempt failed (`generation` 0) or connection `generation` ended. A
    /// report from a connection older than the current one is ignored.
    pub fn on_link_down(&mut self, buck: &str, generation: u64) {
        let Some(b) = self.bucks.get_mut(buck) else {
            return;
        };
        if generation == 0 || generation == b.generation {
            b.status = Status::Down;
            b.clear_send_queue();
        }
    }

    /// `buck` refused message `seq` for now: it is sent again after `retry_after_ms`.
    pub fn on_nack(
        &mut self,
        buck: &str,
        seq: u64,
        retry_after_ms: u32,
        reason: &str,
        now: Instant,
    ) {
        let Some(b) = self.bucks.get(buck) else {
            return;
        };
        if !b.inflight.contains_key(&seq) {
            return;
        }
        self.events.nacked();
        tracing::warn!(buck = %buck, seq, retry_after_ms, "buck refused a message for now: {reason}; retrying");
        let wait = Duration::from_millis(u64::from(retry_after_ms).clamp(1, MAX_RETRY_AFTER_MS));
        let generation = b.generation;
        self.schedule(
            now + wait,
            Timer::Retry {
                buck: buck.to_owned(),
                seq,
                generation,
            },
        );
    }

    /// `buck` committed message `seq`, except the frames in `rejected`, refused for good.
    pub fn on_ack(&mut self, buck: &str, seq: u64, rejected: Vec<RejectedFrame>) {
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
        match f.what {
            Sent::Live {
                buckets,
                home,
                bytes,
            } => {
                if let Some(b) = self.bucks.get_mut(buck) {
                    b.live_bytes -= bytes;
                }
                if home {
                    self.on_live_acked(buck, buckets);
                }
            }
            Sent::Chunk {
                job,
                next,
                settled,
                last,
            } => self.on_chunk_acked(buck, job, next, settled, last),
        }
    }

    /// The sequence numbers `buck` has not acked yet, for tests.
    #[cfg(test)]
    fn in_flight(&self, buck: &str) -> Vec<u64> {
        self.bucks
            .get(buck)
            .map(|b| b.inflight.keys().copied().collect())
            .unwrap_or_default()
    }
}
