//! `SegmentWriter`: the one thread that writes segments.
//!
//! rusqlite is synchronous, so the writer runs on its own thread, fed by a bounded mpsc
//! ([`WriterOptions::queue`] requests): when it falls behind, connections wait to enqueue
//! and stop reading their sockets, which is the backpressure a tailer sees as slower
//! acks. It commits many requests in one transaction per touched segment (group commit:
//! the batch grows while requests keep coming, up to `max_batch_events` events or
//! `max_batch_wait`, see [`crate::batch_gathering`]), answers each request only after
//! the commit, then publishes what was newly inserted on the [`Bus`].
//!
//! It also closes segments: a day's segment `day_close_grace` after the day ends, a part
//! file `day_close_grace` after it was created (or after its day ended, if later). The
//! state lives in the file's `meta`, so it survives restarts; at start the writer reads
//! the state of every segment on disk.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
pub use contracts::prepared_row::PreparedEvent;
use contracts::segment_path::{parse_segment_file_name, segment_path};
use contracts::segment_sql::{self, Labels};
use contracts::{CrawlId, Event, EventId};
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::batch_gathering::{BatchLimits, Gathering};
use crate::config::BuckConfig;
use crate::error::{BuckError, SegmentError};
use crate::events::BuckEvents;
use crate::pub_sub::{Bus, Published};
use crate::segment_schema::{self, SegmentState, meta};
use crate::wal_checkpointer::{CheckpointThread, SegmentCheckpoint, WalCheckpointer};

/// How the writer batches, caches and closes.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// `<data_dir>/segments`.
    pub segments_dir: PathBuf,
    /// Requests queued before senders wait.
    pub queue: usize,
    /// Most events per transaction.
    pub max_batch_events: usize,
    /// Longest wait for the next request before committing: a quiet gap this long ends
    /// the batch.
    pub max_delay: Duration,
    /// Longest a batch keeps growing after its first request, while requests keep
    /// coming within `max_delay` of each other (a backlog).
    pub max_batch_wait: Duration,
    /// Segment connections kept open.
    pub max_open_segments: usize,
    /// Grace after a day's end (or a part's creation) before its segment closes.
    pub day_close_grace: Duration,
    /// How often to look for segments to close.
    pub close_check_interval: Duration,
    /// How long a closed, archived segment stays after its day ends.
    pub retention: Duration,
    /// How often to look for segments past their retention.
    pub prune_check_interval: Duration,
    /// Free space kept on the segments' file system (`min_free_bytes`, `min_free_percent`).
    pub headroom: disk_space::Headroom,
}

impl WriterOptions {
    /// The writer's options from the buck's config.
    pub fn from_config(c: &BuckConfig) -> WriterOptions {
        WriterOptions {
            segments_dir: c.segments_dir(),
            queue: c.writer_queue,
            max_batch_events: c.writer_max_batch_events,
            max_delay: Duration::from_millis(c.writer_max_delay_ms),
            max_batch_wait: Duration::from_millis(c.writer_max_batch_ms),
            max_open_segments: c.max_open_segments,
            day_close_grace: Duration::from_secs(c.day_close_grace_secs),
            close_check_interval: Duration::from_millis(c.close_check_interval_ms),
            retention: Duration::from_secs(c.retention_secs),
            prune_check_interval: Duration::from_millis(c.prune_check_interval_ms),
            headroom: disk_space::Headroom {
                min_free_bytes: c.min_free_bytes,
                min_free_percent: c.min_free_percent,
            },
        }
    }
}

/// Where a batch of events came from: decides how new rows are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A live packet: new rows are published as they are.
    Live,
    /// A re-sent bucket chunk (the repair path): new rows are published marked `late`.
    Repair,
}

/// What a committed request did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Events newly inserted.
    pub inserted: usize,
    /// Events already stored (ignored).
    pub duplicates: usize,
}

struct WriteRequest {
    events: Vec<PreparedEvent>,
    origin: Origin,
    reply: oneshot::Sender<Result<WriteOutcome, SegmentError>>,
}

/// The sending side of the writer; clone it freely. The writer thread stops once every
/// clone is dropped, after committing what was queued.
#[derive(Clone)]
pub struct SegmentWriter {
    tx: mpsc::Sender<WriteRequest>,
}

/// The writer thread (and its WAL checkpoint thread), to join at shutdown.
pub struct WriterThread {
    handle: std::thread::JoinHandle<()>,
    checkpoint: CheckpointThread,
}

impl WriterThread {
    /// Waits (blocking) for the thread to finish its last batch.
    pub fn join(self) -> Result<(), BuckError> {
        let r = self.handle.join().map_err(|_| BuckError::WriterPanicked);
        // The writer's end of the queue is gone with it, so this one stops too.
        self.checkpoint.join();
        r
    }
}

impl SegmentWriter {
    /// Reads the state of the segments on disk and starts the writer thread. Must be
    /// called inside a tokio runtime (the thread waits on the channel through it).
    pub fn spawn(
        opts: WriterOptions,
        bus: Bus,
        events: Arc<BuckEvents>,
    ) -> Result<(SegmentWriter, WriterThread), SegmentError> {
        let rt = tokio::runtime::Handle::current();
        let (checkpointer, checkpoint_thread) =
            WalCheckpointer::spawn().map_err(|source| SegmentError::Io {
                path: opts.segments_dir.clone(),
                source,
            })?;
        let mut state = WriterState {
            checkpointer,
            space: disk_space::HeadroomWatch::new(
                opts.headroom,
                vec![opts.segments_dir.clone()],
                disk_space::watch::DEFAULT_EVERY,
            ),
            opts: opts.clone(),
            bus,
            events,
            days: HashMap::new(),
            conns: HashMap::new(),
            tick: 0,
            batch_no: 0,
        };
        state.scan()?;
        let (tx, rx) = mpsc::channel(opts.queue);
        let handle = std::thread::Builder::new()
            .name("segment-writer".into())
            .spawn(move || state.run(rx, rt))
            .map_err(|source| SegmentError::Io {
                path: opts.segments_dir.clone(),
                source,
            })?;
        Ok((
            SegmentWriter { tx },
            WriterThread {
                handle,
                checkpoint: checkpoint_thread,
            },
        ))
    }

    /// Stores `events` and returns once they are committed (or the batch failed). Their
    /// rows are worked out here, on the caller's task.
    pub async fn write(
        &self,
        events: Vec<Event>,
        origin: Origin,
    ) -> Result<WriteOutcome, SegmentError> {
        let events = events.into_iter().map(PreparedEvent::new).collect();
        self.write_prepared(events, origin).await
    }

    /// [`write`](SegmentWriter::write) of events whose rows were worked out already.
    pub async fn write_prepared(
        &self,
        events: Vec<PreparedEvent>,
        origin: Origin,
    ) -> Result<WriteOutcome, SegmentError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(WriteRequest {
                events,
                origin,
                reply,
            })
            .await
            .map_err(|_| SegmentError::WriterStopped)?;
        rx.await.map_err(|_| SegmentError::WriterStopped)?
    }
}

/// A batch the writer is storing: its requests so far, in one open transaction per
/// touched segment, and what their commit will answer and publish.
#[derive(Default)]
struct OpenBatch {
    requests: Vec<WriteRequest>,
    /// One per request.
    outcomes: Vec<WriteOutcome>,
    /// Segments with a transaction begun for this batch.
    in_tx: Vec<SegKey>,
    live: Vec<Arc<Published>>,
    late: Vec<Arc<Published>>,
    bytes: u64,
    /// Time spent storing, without the waits for the next request: the commit metric.
    busy: Duration,
}

type DayKey = (CrawlId, NaiveDate);
type SegKey = (CrawlId, NaiveDate, u32);

#[derive(Debug, Clone, Copy)]
struct PartInfo {
    state: SegmentState,
    created_us: i64,
}

struct OpenSegment {
    conn: Connection,
    path: PathBuf,
    /// The file's schema version: a file made before version 2 is written as it was.
    version: i64,
    /// `label` numbers of this file; dropped with the connection.
    labels: Labels,
    last_used: u64,
    /// The file's (device, inode) when it was opened: if the path names another file,
    /// or none, the file was deleted or replaced under the buck.
    file_id: Option<(u64, u64)>,
    /// The batch in which the file was last seen to be the one opened.
    checked_batch: u64,
    /// Its WAL checkpoints, run by the checkpoint thread (`None`: SQLite's automatic
    /// checkpoint on this connection, as before).
    checkpoint: Option<Arc<SegmentCheckpoint>>,
}

impl Drop for OpenSegment {
    fn drop(&mut self) {
        // Before `conn` (fields drop after this): the checkpoint connection must not be
        // the file's last, which would remove the WAL by a name a new file may have.
        if let Some(c) = &self.checkpoint {
            c.close();
        }
    }
}

struct WriterState {
    opts: WriterOptions,
    /// Copies the WAL of busy segments into their files off this thread.
    checkpointer: WalCheckpointer,
    /// The segments' file system against `min_free_bytes` / `min_free_percent`.
    space: disk_space::HeadroomWatch,
    bus: Bus,
    events: Arc<BuckEvents>,
    days: HashMap<DayKey, BTreeMap<u32, PartInfo>>,
    conns: HashMap<SegKey, OpenSegment>,
    tick: u64,
    /// Batches committed (or tried) so far: each open file is checked once per batch.
    batch_no: u64,
}

/// The (device, inode) of the file at `path`, if there is one.
fn file_id(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

fn now_us() -> i64 {
    Utc::now().timestamp_micros()
}

fn day_end_us(day: NaiveDate) -> i64 {
    day.succ_opt()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_micros())
        .unwrap_or(i64::MAX)
}

/// Removes a segment's database and its WAL and shared-memory files, then syncs the
/// directory so the removal survives a crash.
fn remove_segment_files(path: &std::path::Path) -> Result<(), SegmentError> {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.to_path_buf().into_os_string();
        p.push(suffix);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(SegmentError::Io {
                    path: p.into(),
                    source: e,
                });
            }
        }
    }
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Inserts the batch's events named by `members` into `seg`, marking in `new` those that
/// were not there yet and counting the rest as duplicates.
fn insert_into(
    seg: &mut OpenSegment,
    batch: &mut [WriteRequest],
    members: &[(usize, usize)],
    new: &mut [Vec<bool>],
    outcomes: &mut [WriteOutcome],
    bytes: &mut u64,
) -> rusqlite::Result<()> {
    let conn = &seg.conn;
    // Held for the whole segment's share of the batch: finding a cached statement by its
    // text, for each row, was a tenth of the writer's time.
    let mut insert = match seg.version {
        1 => None,
        _ => Some(conn.prepare_cached(segment_sql::INSERT_ROW_SQL)?),
    };
    let mut lookup: Option<rusqlite::CachedStatement<'_>> = None;
    for &(i, j) in members {
        let repair = batch[i].origin == Origin::Repair;
        let p = &mut batch[i].events[j];
        // A re-sent bucket is mostly events already stored: looking the id up first skips
        // an insert the id would make it ignore.
        let stored = repair
            && match (seg.version, &mut lookup) {
                (1, _) => segment_sql::contains_id(conn, 1, p.id())?,
                (_, Some(stmt)) => segment_sql::contains_id_with(stmt, p.id())?,
                (_, slot @ None) => segment_sql::contains_id_with(
                    slot.insert(conn.prepare_cached(segment_sql::CONTAINS_ID_SQL)?),
                    p.id(),
                )?,
            };
        let inserted = !stored
            && match &mut insert {
                Some(stmt) => segment_sql::insert_row_with(stmt, conn, &mut seg.labels, &p.row())?,
                None => segment_sql::insert_event_v1(conn, p.event())?,
            };
        if inserted {
            new[i][j] = true;
            *bytes += p.raw_len() as u64;
        } else {
            outcomes[i].duplicates += 1;
        }
    }
    Ok(())
}

impl WriterState {
    /// Reads every segment's state from disk, so that segments left open by a previous
    /// run are closed on time and closed ones are never written again.
    fn scan(&mut self) -> Result<(), SegmentError> {
        let dir = &self.opts.segments_dir;
        std::fs::create_dir_all(dir).map_err(|source| SegmentError::Io {
            path: dir.clone(),
            source,
        })?;
        let crawls = std::fs::read_dir(dir).map_err(|source| SegmentError::Io {
            path: dir.clone(),
            source,
        })?;
        for c in crawls.flatten() {
            let Some(crawl) = c.file_name().to_str().and_then(|s| CrawlId::parse(s).ok()) else {
                continue;
            };
            let Ok(files) = std::fs::read_dir(c.path()) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name();
                let name = name.to_str().unwrap_or("");
                if let Some((day, part)) = name
                    .strip_suffix(segment_schema::TOMBSTONE_SUFFIX)
                    .and_then(parse_segment_file_name)
                {
                    // A pruned segment: its name stays taken, so late events for that
                    // day go to a new part instead of re-creating an archived file.
                    // The tombstone is written only after the archive copy was verified,
                    // so files left by a crash between the two steps are removed now.
                    let seg = c
                        .path()
                        .join(name.trim_end_matches(segment_schema::TOMBSTONE_SUFFIX));
                    if let Err(e) = remove_segment_files(&seg) {
                        tracing::warn!(error = %e, "cannot finish pruning a segment; it stays on disk");
                    }
                    self.days.entry((crawl.clone(), day)).or_default().insert(
                        part,
                        PartInfo {
                            state: SegmentState::Pruned,
                            created_us: 0,
                        },
                    );
                    continue;
                }
                let Some((day, part)) = parse_segment_file_name(name) else {
                    continue;
                };
                let path = f.path();
                let mut tomb = path.clone().into_os_string();
                tomb.push(segment_schema::TOMBSTONE_SUFFIX);
                if std::path::Path::new(&tomb).exists() {
                    continue;
                }
                let info = segment_schema::open_read_only(&path).and_then(|conn| {
                    let state = segment_schema::read_state(&conn, &path)?;
                    let created_us = segment_schema::get_meta(&conn, &path, meta::CREATED_US)?
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    Ok(PartInfo { state, created_us })
                });
                match info {
                    Ok(info) => {
                        self.days
                            .entry((crawl.clone(), day))
                            .or_default()
                            .insert(part, info);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read a segment's state; it will not be written or closed until fixed")
                    }
                }
            }
        }
        self.report_open();
        Ok(())
    }

    fn run(mut self, mut rx: mpsc::Receiver<WriteRequest>, rt: tokio::runtime::Handle) {
        // Timers are created on this thread, so it must be inside the runtime's context.
        let _guard = rt.enter();
        let mut last_close_check = Instant::now() - self.opts.close_check_interval;
        let mut last_prune_check = Instant::now() - self.opts.prune_check_interval;
        let mut open = true;
        while open {
            if last_close_check.elapsed() >= self.opts.close_check_interval {
                self.close_due(now_us());
                last_close_check = Instant::now();
            }
            if last_prune_check.elapsed() >= self.opts.prune_check_interval {
                self.prune_due(now_us());
                last_prune_check = Instant::now();
            }
            let wait = self
                .opts
                .close_check_interval
                .saturating_sub(last_close_check.elapsed());
            let first = match rt.block_on(tokio::time::timeout(wait, rx.recv())) {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(_) => continue,
            };
            let limits = BatchLimits {
                max_events: self.opts.max_batch_events,
                gap: self.opts.max_delay,
                max_wait: self.opts.max_batch_wait,
            };
            open = self.write_batch(first, &mut rx, limits, &rt);
        }
        tracing::info!("segment writer stopped");
    }

    /// Gathers a batch after `first` and stores it, each request as it is taken, in one
    /// transaction per touched segment; answers every request after the commit. Returns
    /// whether the queue is still open.
    fn write_batch(
        &mut self,
        first: WriteRequest,
        rx: &mut mpsc::Receiver<WriteRequest>,
        limits: BatchLimits,
        rt: &tokio::runtime::Handle,
    ) -> bool {
        self.batch_no += 1;
        // Below the headroom nothing is begun: a transaction that fills the disk could
        // leave SQLite no room to checkpoint, and tailers keep the events meanwhile.
        if let Some((dir, low)) = self.space.low() {
            self.events.disk.paused("buck", dir, &low.to_string());
            let reason = format!("segments disk {}: {low}", dir.display());
            self.events.commit_failed();
            let _ = first.reply.send(Err(SegmentError::BatchFailed {
                reason,
                transient: true,
            }));
            return true;
        }
        let mut gathering = Gathering::start(limits, first.events.len());
        let mut batch = OpenBatch::default();
        let mut next = Some(first);
        let mut stored = Ok(());
        while let Some(req) = next {
            let started = Instant::now();
            stored = self.apply(&mut batch, req);
            batch.busy += started.elapsed();
            if stored.is_err() {
                break;
            }
            next = rt.block_on(gathering.next(rx, |r: &WriteRequest| r.events.len()));
        }
        self.commit_batch(batch, stored);
        gathering.open()
    }

    /// Commits what [`apply`](WriterState::apply) stored of `batch` (`stored`: whether
    /// every request was), or rolls it back, and answers every request.
    fn commit_batch(&mut self, batch: OpenBatch, stored: Result<(), SegmentError>) {
        let OpenBatch {
            requests,
            outcomes,
            in_tx,
            live,
            late,
            bytes,
            busy,
        } = batch;
        let started = Instant::now();
        let result = stored.and_then(|()| {
            for key in &in_tx {
                if let Some(s) = self.conns.get(key) {
                    s.conn
                        .execute_batch("COMMIT")
                        .map_err(SegmentError::sqlite(&s.path))?;
                }
            }
            for key in &in_tx {
                if let Some(s) = self.conns.get(key)
                    && let Some(c) = &s.checkpoint
                    && let Err(e) = self.checkpointer.after_commit(c, &s.conn)
                {
                    // Committed all the same; the next commit tries again.
                    tracing::warn!(path = %s.path.display(), error = %e, "WAL checkpoint failed");
                }
            }
            Ok(())
        });
        match result {
            Ok(()) => {
                self.events.disk.resumed("buck");
                let inserted: usize = outcomes.iter().map(|o| o.inserted).sum();
                let dups: usize = outcomes.iter().map(|o| o.duplicates).sum();
                self.events
                    .committed(inserted, dups, bytes, busy + started.elapsed());
                for (req, outcome) in requests.into_iter().zip(outcomes) {
                    let _ = req.reply.send(Ok(outcome));
                }
                // Publish after the acks are on their way: the live view never shows an
                // event that is not stored.
                self.bus.publish(live);
                self.bus.publish(late);
            }
            Err(e) => {
                if let SegmentError::Sqlite { path, .. } = &e
                    && e.is_corruption()
                {
                    let path = path.clone();
                    if let Err(q) = self.quarantine(&path, &e) {
                        tracing::error!(error = %q, "cannot quarantine a corrupt segment");
                    }
                }
                match e.storage_fault() {
                    // Logged once per episode: a full disk can last hours.
                    Some((fault, path)) => {
                        self.events.disk.fault("buck", path, fault);
                    }
                    None => {
                        tracing::warn!(error = %e, "batch not committed; its messages will be nacked");
                    }
                }
                self.events.commit_failed();
                for key in &in_tx {
                    // A connection that failed mid-transaction is dropped, so the next
                    // batch starts from a clean handle.
                    if let Some(s) = self.conns.remove(key) {
                        let _ = s.conn.execute_batch("ROLLBACK");
                    }
                }
                let transient = e.is_transient();
                let reason = e.to_string();
                for req in requests {
                    let _ = req.reply.send(Err(SegmentError::BatchFailed {
                        reason: reason.clone(),
                        transient,
                    }));
                }
            }
        }
        self.evict();
    }

    /// Adds `req` to `open` and inserts its events, in two passes: first the segment each
    /// event goes to (which may open files and look into closed parts, and begins the
    /// segment's transaction), then, segment by segment, the inserts, with the insert
    /// statement held for all of that segment's rows.
    fn apply(&mut self, open: &mut OpenBatch, req: WriteRequest) -> Result<(), SegmentError> {
        let k = open.requests.len();
        open.requests.push(req);
        open.outcomes.push(WriteOutcome::default());
        let batch = &mut open.requests[k..];
        let outcomes = &mut open.outcomes[k..];
        let in_tx = &mut open.in_tx;
        let bytes = &mut open.bytes;
        let now = now_us();
        // Per segment, the (request, event) numbers it takes, in batch order.
        let mut groups: Vec<(SegKey, Vec<(usize, usize)>)> = Vec::new();
        // Per request, which of its events were newly inserted.
        let mut new: Vec<Vec<bool>> = batch.iter().map(|r| vec![false; r.events.len()]).collect();
        for (i, req) in batch.iter().enumerate() {
            for (j, p) in req.events.iter().enumerate() {
                let day = p.day();
                let part = self.target_part(p.crawl(), day);
                if part > 0 && self.in_closed_parts(p.crawl(), p.id(), day)? {
                    outcomes[i].duplicates += 1;
                    continue;
                }
                let g = match groups
                    .iter()
                    .rposition(|(k, _)| k.1 == day && k.2 == part && k.0 == *p.crawl())
                {
                    Some(g) => g,
                    None => {
                        groups.push(((p.crawl().clone(), day, part), Vec::new()));
                        groups.len() - 1
                    }
                };
                groups[g].1.push((i, j));
            }
        }
        for (key, members) in &groups {
            let seg = self.segment(key, now)?;
            if !in_tx.contains(key) {
                seg.conn
                    .execute_batch("BEGIN IMMEDIATE")
                    .map_err(SegmentError::sqlite(&seg.path))?;
                in_tx.push(key.clone());
            }
            insert_into(seg, batch, members, &mut new, outcomes, bytes)
                .map_err(SegmentError::sqlite(&seg.path))?;
        }
        for ((req, new), outcome) in batch.iter_mut().zip(new).zip(outcomes.iter_mut()) {
            let late_flag = req.origin == Origin::Repair;
            for (p, is_new) in std::mem::take(&mut req.events).into_iter().zip(new) {
                if !is_new {
                    continue;
                }
                outcome.inserted += 1;
                let p = Arc::new(Published {
                    event: Arc::new(p.into_event()),
                    late: late_flag,
                });
                if late_flag {
                    open.late.push(p)
                } else {
                    open.live.push(p)
                }
            }
        }
        Ok(())
    }

    /// The part an event of (crawl, day) goes to: the day's segment while it is open,
    /// else the open part, else a new part.
    fn target_part(&self, crawl: &CrawlId, day: NaiveDate) -> u32 {
        let Some(parts) = self.days.get(&(crawl.clone(), day)) else {
            return 0;
        };
        match parts.get(&0) {
            None => return 0,
            Some(p) if p.state == SegmentState::Open => return 0,
            Some(_) => {}
        }
        if let Some((n, _)) = parts
            .iter()
            .rev()
            .find(|(_, p)| p.state == SegmentState::Open)
        {
            return *n;
        }
        parts.keys().next_back().map_or(0, |n| n + 1)
    }

    /// Whether the event is already in one of its day's closed files: a late re-send of
    /// an event stored before the close must stay a duplicate, not become a new row.
    fn in_closed_parts(
        &mut self,
        crawl: &CrawlId,
        id: &EventId,
        day: NaiveDate,
    ) -> Result<bool, SegmentError> {
        let closed: Vec<u32> = match self.days.get(&(crawl.clone(), day)) {
            Some(parts) => parts
                .iter()
                .filter(|(_, p)| p.state == SegmentState::Closed)
                .map(|(n, _)| *n)
                .collect(),
            None => return Ok(false),
        };
        let now = now_us();
        for part in closed {
            let seg = self.segment(&(crawl.clone(), day, part), now)?;
            if segment_sql::contains_id(&seg.conn, seg.version, id)
                .map_err(SegmentError::sqlite(&seg.path))?
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn segment(&mut self, key: &SegKey, now: i64) -> Result<&mut OpenSegment, SegmentError> {
        self.tick += 1;
        if let Some(seg) = self.conns.get_mut(key)
            && seg.checked_batch != self.batch_no
        {
            if file_id(&seg.path) == seg.file_id {
                seg.checked_batch = self.batch_no;
            } else {
                // SQLite would go on writing to the unlinked inode, and every row would
                // vanish with the connection: start a new file instead, and say so.
                tracing::error!(
                    path = %seg.path.display(),
                    "segment file deleted or replaced under the running buck: the rows it held since it was opened are gone from this buck (the crawl's other home keeps them, and porter merges homes); new events go to a new file. Do not remove segment files of a running buck"
                );
                self.events.segment_vanished();
                self.conns.remove(key);
            }
        }
        if !self.conns.contains_key(key) {
            let (crawl, day, part) = key;
            let path = segment_path(&self.opts.segments_dir, crawl, *day, *part);
            let mut conn = match segment_schema::open_for_write(&path, crawl, *day, *part, now) {
                Err(e) if e.is_corruption() => {
                    self.quarantine(&path, &e)?;
                    segment_schema::open_for_write(&path, crawl, *day, *part, now)?
                }
                other => other?,
            };
            let parts = self.days.entry((crawl.clone(), *day)).or_default();
            if !parts.contains_key(part) {
                let created_us = segment_schema::get_meta(&conn, &path, meta::CREATED_US)?
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(now);
                parts.insert(
                    *part,
                    PartInfo {
                        state: SegmentState::Open,
                        created_us,
                    },
                );
                self.report_open();
            }
            let version = segment_schema::version(&conn, &path)?;
            let checkpoint = SegmentCheckpoint::attach(&mut conn, &path);
            self.conns.insert(
                key.clone(),
                OpenSegment {
                    conn,
                    version,
                    labels: Labels::new(),
                    file_id: file_id(&path),
                    path,
                    last_used: 0,
                    checked_batch: self.batch_no,
                    checkpoint,
                },
            );
        }
        let tick = self.tick;
        let seg = self.conns.get_mut(key).ok_or(SegmentError::WriterStopped)?;
        seg.last_used = tick;
        Ok(seg)
    }

    /// Moves a segment file SQLite finds corrupt (and its WAL and shared memory) to
    /// `<data_dir>/quarantine/<crawl>/`, named with the time, so the rest keeps serving and
    /// a fresh file takes new events; the operator can inspect or salvage it.
    fn quarantine(
        &mut self,
        path: &std::path::Path,
        why: &SegmentError,
    ) -> Result<(), SegmentError> {
        let data_dir = self
            .opts
            .segments_dir
            .parent()
            .unwrap_or(&self.opts.segments_dir);
        let crawl_dir = path
            .parent()
            .and_then(|p| p.file_name())
            .map(|c| c.to_owned())
            .unwrap_or_default();
        let dest_dir = data_dir.join("quarantine").join(crawl_dir);
        std::fs::create_dir_all(&dest_dir).map_err(|source| SegmentError::Io {
            path: dest_dir.clone(),
            source,
        })?;
        let stamp = now_us();
        let mut moved = Vec::new();
        for suffix in ["", "-wal", "-shm"] {
            let mut from = path.to_path_buf().into_os_string();
            from.push(suffix);
            let from = PathBuf::from(from);
            let Some(name) = from.file_name() else {
                continue;
            };
            let mut to = dest_dir.join(name).into_os_string();
            to.push(format!(".{stamp}"));
            match std::fs::rename(&from, &to) {
                Ok(()) => moved.push(PathBuf::from(to)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(SegmentError::Io { path: from, source }),
            }
        }
        tracing::error!(
            path = %path.display(),
            quarantined = ?moved,
            "segment file is corrupt ({why}): moved to the quarantine directory and a new file started; its rows are served by the crawl's other home, and porter merges homes. Inspect it with sqlite3 (.recover) before deleting it"
        );
        self.events.segment_quarantined();
        Ok(())
    }

    fn evict(&mut self) {
        while self.conns.len() > self.opts.max_open_segments {
            let Some(oldest) = self
                .conns
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.conns.remove(&oldest);
        }
    }

    fn close_due(&mut self, now: i64) {
        let grace = self.opts.day_close_grace.as_micros() as i64;
        let mut due = Vec::new();
        for ((crawl, day), parts) in &self.days {
            for (part, info) in parts {
                if info.state != SegmentState::Open {
                    continue;
                }
                let end = day_end_us(*day);
                let base = if *part == 0 {
                    end
                } else {
                    end.max(info.created_us)
                };
                if now >= base.saturating_add(grace) {
                    due.push((crawl.clone(), *day, *part));
                }
            }
        }
        for key in due {
            match self.close(&key, now) {
                Ok(()) => {
                    tracing::info!(crawl = %key.0, day = %key.1, part = key.2, "segment closed");
                    self.events.segment_closed();
                }
                Err(e) => tracing::warn!(error = %e, "cannot close segment; will retry"),
            }
        }
        self.report_open();
    }

    /// Deletes closed segments past their retention that a porter archived and that have
    /// not changed since (their ids hash still equals the one the porter verified).
    /// Anything else stays: an unarchived or changed segment is never pruned, whatever
    /// the order of failures.
    fn prune_due(&mut self, now: i64) {
        let retention = self.opts.retention.as_micros() as i64;
        let mut due = Vec::new();
        for ((crawl, day), parts) in &self.days {
            if now < day_end_us(*day).saturating_add(retention) {
                continue;
            }
            for (part, info) in parts {
                if info.state == SegmentState::Closed {
                    due.push((crawl.clone(), *day, *part));
                }
            }
        }
        for key in due {
            match self.prune(&key) {
                Ok(true) => {
                    tracing::info!(crawl = %key.0, day = %key.1, part = key.2, "segment pruned: archived, unchanged, past retention");
                    self.events.segment_pruned();
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot prune segment; will retry"),
            }
        }
    }

    fn prune(&mut self, key: &SegKey) -> Result<bool, SegmentError> {
        let (crawl, day, part) = key;
        let path = segment_path(&self.opts.segments_dir, crawl, *day, *part);
        // The writer's own connection when it has one: closing it to look would make
        // SQLite drop the WAL's shared memory, which a read-only connection cannot make
        // again, and would churn files every check. Else a read-write one for the same
        // reason, though it only reads.
        let opened = match self.conns.contains_key(key) {
            true => None,
            false => Some(Connection::open(&path).map_err(SegmentError::sqlite(&path))?),
        };
        let conn = match (&opened, self.conns.get(key)) {
            (Some(c), _) => c,
            (None, Some(seg)) => &seg.conn,
            (None, None) => return Ok(false),
        };
        if segment_schema::get_meta(conn, &path, meta::ARCHIVED_UNCHANGED)?.as_deref() != Some("1")
        {
            return Ok(false);
        }
        let archived = segment_schema::get_meta(conn, &path, meta::ARCHIVED_IDS_SHA256)?;
        let (ids, rows) = segment_schema::ids_digest(conn, &path)?;
        if !archived.is_some_and(|a| a.eq_ignore_ascii_case(&ids)) {
            tracing::warn!(path = %path.display(), "segment changed since it was archived: not pruned; the next archive run re-archives it");
            return Ok(false);
        }
        drop(opened);
        self.conns.remove(key);
        let io = |p: &std::path::Path| {
            let path = p.to_path_buf();
            move |source| SegmentError::Io { path, source }
        };
        let mut tomb = path.clone().into_os_string();
        tomb.push(segment_schema::TOMBSTONE_SUFFIX);
        let tomb = std::path::PathBuf::from(tomb);
        let record = serde_json::json!({
            "version": 1, "crawl": crawl.as_str(), "day": day.to_string(), "part": part,
            "ids_sha256": ids, "rows": rows, "pruned_us": now_us(),
        });
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tomb).map_err(io(&tomb))?;
            f.write_all(record.to_string().as_bytes())
                .map_err(io(&tomb))?;
            f.sync_all().map_err(io(&tomb))?;
        }
        remove_segment_files(&path)?;
        if let Some(info) = self
            .days
            .get_mut(&(crawl.clone(), *day))
            .and_then(|p| p.get_mut(part))
        {
            info.state = SegmentState::Pruned;
        }
        Ok(true)
    }

    fn close(&mut self, key: &SegKey, now: i64) -> Result<(), SegmentError> {
        let seg = self.segment(key, now)?;
        let path = seg.path.clone();
        segment_schema::set_meta(&seg.conn, &path, meta::STATE, "closed")?;
        segment_schema::set_meta(&seg.conn, &path, meta::CLOSED_US, &now.to_string())?;
        // Fold the WAL into the file so the closed segment is one self-contained file.
        // PASSIVE never waits: a long SQL query reading the segment must not stall
        // ingest. Whatever it could not copy is checkpointed when the last connection
        // to the file closes.
        seg.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .map_err(SegmentError::sqlite(&path))?;
        self.conns.remove(key);
        if let Some(info) = self
            .days
            .get_mut(&(key.0.clone(), key.1))
            .and_then(|p| p.get_mut(&key.2))
        {
            info.state = SegmentState::Closed;
        }
        Ok(())
    }

    fn report_open(&self) {
        let n = self
            .days
            .values()
            .flat_map(|p| p.values())
            .filter(|p| p.state == SegmentState::Open)
            .count();
        self.events.segments_open_now(n);
    }
}
