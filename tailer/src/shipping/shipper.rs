//! `Shipper`: the task that does the shipping side's I/O around [`ShipperState`].
//!
//! It reads what happens (input from the reader, reports from the connection tasks, the
//! answers of blocking reads, the clock, the cluster file), feeds it to the state
//! machine, and carries out the state's [`Command`]s: it spawns and cancels connection
//! tasks, runs bucket scans and chunk reads on the blocking pool, hands records to the
//! [record writer](super::record_writer), and moves each buck's queued messages into its
//! connection's outbox. It decides nothing itself.
//!
//! Backpressure, and why none of it can deadlock. Every channel is bounded:
//!
//! - reader -> shipper ([`SHIPPER_QUEUE`](crate::pipeline::SHIPPER_QUEUE)): while a buck's
//!   in-flight buffer is near full this task stops taking input and the reader waits,
//!   bounded by `live_wait_ms`;
//! - connections -> shipper ([`LINK_EVENTS_QUEUE`]): a connection waits, which only slows
//!   its reading of acks, because this task never waits on a connection;
//! - shipper -> connection ([`OUTBOX_QUEUE`]): messages move into an outbox only while it
//!   has room; the rest stay queued in the state (in its in-flight table, which bounds
//!   them) until the connection takes some;
//! - blocking reads -> shipper ([`DONE_QUEUE`]): a finished read waits on its blocking
//!   thread until this task takes its answer, which it always does: it waits on nothing
//!   those threads hold;
//! - shipper -> record writer ([`RECORD_QUEUE`](super::record_writer::RECORD_QUEUE)): the
//!   writer takes records even while it writes, so sending waits at most a moment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use contracts::keys::KeyPair;
use contracts::transport::Message;
use contracts::{ClusterFile, CrawlId};
use durable_file::FileStamp;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::ShippingError;
use super::acked_ranges::AckedRecord;
use super::buck_connection::{BuckConnection, LinkEvent, LinkParams, Outgoing};
use super::chunk_packs::ChunkPacks;
use super::delivery::{Chunk, DeliveryRecord, scan_bucket};
use super::record_writer::{RECORD_QUEUE, SidecarWrite, write_records};
use super::shipper_state::{Command, Scanned, ShipperState, ShippingPolicy};
use super::spool_janitor::{SpoolJanitor, scan_spool};
use crate::config::TailerConfig;
use crate::events::TailerEvents;
use crate::pipeline::{BucketKey, ShipperInput, SpoolUsage};

/// Capacity of the connections-to-shipper channel, in reports. Connection tasks wait
/// when it is full, which only slows their reading of acks.
const LINK_EVENTS_QUEUE: usize = 1024;

/// Capacity of each connection's outbox, in messages. A connection seals and writes one
/// message at a time; a few dozen ready keep its socket busy, and the messages behind
/// them wait in the shipper's in-flight table, which already holds every one of them.
pub(crate) const OUTBOX_QUEUE: usize = 64;

/// Capacity of the channel that brings back the answers of blocking reads (bucket scans,
/// repair chunks), in answers. Chunks are at most one per buck at a time; scans come in
/// bursts (start-up, a cluster change) and wait on their threads for their turn.
const DONE_QUEUE: usize = 64;

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

/// This task's side of one buck's connection task.
struct Link {
    cancel: CancellationToken,
    /// Where messages go while the connection is up.
    outbox: Option<mpsc::Sender<Outgoing>>,
}

/// The answer of a blocking read.
enum Done {
    Scanned {
        bucket: BucketKey,
        result: std::io::Result<Scanned>,
    },
    ChunkRead {
        job: u64,
        result: std::io::Result<Chunk>,
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
    state: ShipperState,
    links: BTreeMap<String, Link>,
    link_tx: mpsc::Sender<LinkEvent>,
    link_rx: mpsc::Receiver<LinkEvent>,
    done_tx: mpsc::Sender<Done>,
    done_rx: mpsc::Receiver<Done>,
    records: mpsc::Sender<SidecarWrite>,
    /// Repair chunks compressed once for all the homes they go to.
    chunk_packs: Arc<ChunkPacks>,
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
        let cluster = Arc::new(load_cluster(&cluster_path, config.encryption)?);
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
        let (done_tx, done_rx) = mpsc::channel(DONE_QUEUE);
        let janitor_kick = Arc::new(Notify::new());
        let (records, records_rx) = mpsc::channel(RECORD_QUEUE);
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
        let state = ShipperState::new(cluster.clone(), ShippingPolicy::of(&config), events.clone());
        let mut task = ShipperTask {
            cluster_stamp: FileStamp::of(&cluster_path),
            cluster_path,
            cluster,
            config,
            events,
            shutdown,
            params,
            state,
            links: BTreeMap::new(),
            link_tx,
            link_rx,
            done_tx,
            done_rx,
            records,
            chunk_packs: Arc::default(),
        };
        task.execute().await;
        task.adopt_leftover_buckets().await;
        task.execute().await;
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
            let next_deadline = self.state.next_deadline();
            let full_outboxes = self.full_outboxes();
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                // While a buck that is up has a full in-flight buffer, no more live frames
                // are taken: the reader waits (bounded by `live_wait_ms`) instead of the
                // copy being dropped here and sent a second time by the repair path.
                got = input.recv(), if input_open && !self.state.live_saturated() => match got {
                    Some(i) => self.on_input(i),
                    None => {
                        tracing::info!("the reader closed its channel; shipping what is spooled until shutdown");
                        input_open = false;
                    }
                },
                Some(ev) = self.link_rx.recv() => self.on_link(ev),
                Some(done) = self.done_rx.recv() => self.on_done(done),
                _ = sleep_until(next_deadline) => self.state.on_tick(Instant::now()),
                // Room in an outbox: the messages waiting for it move on at the loop's end.
                _ = room_in_any(full_outboxes) => {}
                _ = cluster_poll.tick() => {
                    self.poll_cluster();
                    self.state.drop_stale_counts(Utc::now());
                }
                _ = ack_save.tick() => self.state.save_acked(),
            }
            self.execute().await;
        }
        self.state.save_acked();
        self.execute().await;
        for link in self.links.values() {
            link.cancel.cancel();
        }
    }

    fn on_input(&mut self, input: ShipperInput) {
        match input {
            ShipperInput::Live {
                bucket,
                day,
                frames,
                count: _,
                ranges,
            } => self
                .state
                .on_live(bucket, day, frames, ranges, Instant::now()),
            ShipperInput::Sealed { bucket, path } => self.state.on_sealed(bucket, path),
        }
    }

    fn on_link(&mut self, ev: LinkEvent) {
        match ev {
            LinkEvent::Up {
                buck,
                generation,
                outbox,
            } => {
                if let Some(link) = self.links.get_mut(&buck) {
                    link.outbox = Some(outbox);
                }
                self.state.on_link_up(&buck, generation);
            }
            LinkEvent::Down { buck, generation } => {
                self.state.on_link_down(&buck, generation);
                // Dropping the outbox of a live connection would end it: only once the
                // state no longer counts the buck as up.
                if !self.state.is_up(&buck)
                    && let Some(link) = self.links.get_mut(&buck)
                {
                    link.outbox = None;
                }
            }
            LinkEvent::Reply { buck, message } => match message {
                Message::Ack { seq, rejected } => self.state.on_ack(&buck, seq, rejected),
                Message::Nack {
                    seq,
                    retry_after_ms,
                    reason,
                } => self
                    .state
                    .on_nack(&buck, seq, retry_after_ms, &reason, Instant::now()),
                _ => {}
            },
        }
    }

    fn on_done(&mut self, done: Done) {
        match done {
            Done::Scanned { bucket, result } => {
                self.state.on_scanned(bucket, result, Instant::now())
            }
            Done::ChunkRead { job, result } => self.state.on_chunk_read(job, result),
        }
    }

    /// Carries out the state's commands, then moves queued messages into the outboxes.
    async fn execute(&mut self) {
        for command in self.state.take_commands() {
            match command {
                Command::Connect(entry) => {
                    let cancel = self.shutdown.child_token();
                    let id = entry.id.clone();
                    BuckConnection::spawn(
                        entry,
                        self.params.clone(),
                        self.events.clone(),
                        self.link_tx.clone(),
                        cancel.clone(),
                    );
                    self.links.insert(
                        id,
                        Link {
                            cancel,
                            outbox: None,
                        },
                    );
                }
                Command::Disconnect { buck } => {
                    if let Some(link) = self.links.remove(&buck) {
                        link.cancel.cancel();
                    }
                }
                Command::ScanBucket {
                    bucket,
                    path,
                    cluster,
                    acked,
                } => {
                    let tx = self.done_tx.clone();
                    tokio::task::spawn_blocking(move || {
                        let result = scan_sealed(&path, &cluster, &bucket.crawl, acked);
                        // Closed only at shutdown, when the answer no longer matters.
                        let _ = tx.blocking_send(Done::Scanned { bucket, result });
                    });
                }
                Command::ReadChunk(request) => {
                    let tx = self.done_tx.clone();
                    let packs = self.chunk_packs.clone();
                    let level = self.config.compression_level;
                    tokio::task::spawn_blocking(move || {
                        let result = request.read().map(|mut chunk| {
                            // Compressed here, on the blocking pool, and only once when
                            // another home's read gave the same frames.
                            match packs.pack(&request.path, request.start.offset, &chunk.frames, level) {
                                Ok(packed) => chunk.packed = Some(packed),
                                Err(e) => {
                                    tracing::warn!(path = %request.path.display(), error = %e, "cannot compress a repair chunk once for all homes; its connection compresses it");
                                }
                            }
                            chunk
                        });
                        let _ = tx.blocking_send(Done::ChunkRead {
                            job: request.job,
                            result,
                        });
                    });
                }
                Command::WriteRecord(write) => {
                    // The writer ends only after this task drops its sender.
                    let _ = self.records.send(write).await;
                }
            }
        }
        self.fill_outboxes();
    }

    /// Moves each buck's queued messages into its connection's outbox, while it has room.
    fn fill_outboxes(&mut self) {
        let waiting: Vec<String> = self.state.bucks_with_sends().map(str::to_owned).collect();
        for buck in waiting {
            let Some(link) = self.links.get_mut(&buck) else {
                continue;
            };
            let Some(outbox) = &link.outbox else {
                continue;
            };
            let mut closed = false;
            loop {
                let permit = match outbox.try_reserve() {
                    Ok(permit) => permit,
                    Err(TrySendError::Full(())) => break,
                    // The connection just ended: its Down report follows, and its next Up
                    // queues every unacked message again.
                    Err(TrySendError::Closed(())) => {
                        closed = true;
                        break;
                    }
                };
                match self.state.next_send(&buck) {
                    Some(message) => permit.send(message),
                    None => break,
                }
            }
            if closed {
                link.outbox = None;
            }
        }
    }

    /// The outboxes that are full while messages wait for them.
    fn full_outboxes(&self) -> Vec<mpsc::Sender<Outgoing>> {
        self.state
            .bucks_with_sends()
            .filter_map(|buck| self.links.get(buck)?.outbox.as_ref())
            .filter(|outbox| outbox.capacity() == 0)
            .cloned()
            .collect()
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
                self.state.on_cluster(self.cluster.clone());
            }
            Err(e) => tracing::error!("{e}; keeping the previous cluster file"),
        }
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
            let bucket = BucketKey {
                crawl: e.crawl,
                start: e.start,
            };
            self.state.on_sealed(bucket, e.path);
        }
    }
}

/// Counts the frames of the sealed bucket at `path` per home and reads its records. The
/// acked ranges in memory (`acked`) and on disk both count.
fn scan_sealed(
    path: &Path,
    cluster: &ClusterFile,
    crawl: &CrawlId,
    mut acked: AckedRecord,
) -> std::io::Result<Scanned> {
    let on_disk = AckedRecord::load_or_empty(path);
    acked.union(&on_disk);
    let scan = scan_bucket(path, cluster, crawl, &acked)?;
    Ok(Scanned {
        scan,
        delivery: DeliveryRecord::load(path)?,
        acked: on_disk,
    })
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

/// Waits until one of `outboxes` has room (or is closed); forever when there are none.
async fn room_in_any(outboxes: Vec<mpsc::Sender<Outgoing>>) {
    if outboxes.is_empty() {
        return std::future::pending().await;
    }
    let waits = outboxes.iter().map(|o| Box::pin(o.reserve()));
    // The permit is dropped at once: the slot is taken again by `fill_outboxes`.
    let _ = futures::future::select_all(waits).await;
}
