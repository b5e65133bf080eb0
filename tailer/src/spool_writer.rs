//! `SpoolWriter`: appends events as frames to their crawl's current time-bucket file
//! (`<spool>/<crawl>/YYYY/MM/DD/HH/MM.b`), seals buckets when their interval ends, and
//! hands both to the shipper.
//!
//! Buckets go by read time, not event time, so a bucket is sealed once its interval has
//! passed no matter how old the lines in it are. The spool is the durable path: the live
//! copy is handed to the shipper, waiting at most `live_wait_ms` when its queue is full.
//! A busy shipper thus paces the reader (the log file holds the backlog, and nothing is
//! sent twice); a stuck one is skipped and counted until its queue drains to half, and
//! the sealed bucket's repair send covers what was skipped. Reading never waits on the
//! network for longer than that bound.
//! A `Sealed` notice is never skipped: it waits in a small queue until the channel has
//! room (there is at most one per crawl and interval).

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use contracts::CrawlId;
use contracts::spool_file::{
    SPOOL_HEADER_LEN, SPOOL_VERSION, SPOOL_VERSION_AT, bucket_start, check_spool_header,
    parse_spool_bucket_path, recover, spool_bucket_path, spool_header,
};
use tokio::sync::mpsc::Sender;
use tokio::sync::mpsc::error::TrySendError;

use crate::config::{FsyncPolicy, TailerConfig};
use crate::error::TailerError;
use crate::events::TailerEvents;
use crate::frame_batch::FrameBatch;
use crate::pipeline::{BucketKey, ShipperInput, SpoolUsage};
use crate::shipping::acked_ranges::AckedRecord;

/// The open (current-interval) bucket of one crawl.
#[derive(Debug)]
struct OpenBucket {
    key: BucketKey,
    path: PathBuf,
    file: File,
    /// Bytes in the file: where a failed append is cut back to.
    len: u64,
    /// Appended since the last fsync.
    dirty: bool,
}

/// Writes the spool. One per tailer; used from the reader thread only.
#[derive(Debug)]
pub struct SpoolWriter {
    dir: PathBuf,
    interval_secs: u64,
    fsync: FsyncPolicy,
    fsync_interval: Duration,
    max_bytes: u64,
    open: BTreeMap<CrawlId, OpenBucket>,
    pending_sealed: VecDeque<ShipperInput>,
    tx: Sender<ShipperInput>,
    usage: Arc<SpoolUsage>,
    events: Arc<TailerEvents>,
    last_fsync: Instant,
    /// Longest wait for room in the shipper's queue.
    live_wait: Duration,
    /// A wait timed out: live copies are skipped until the queue is half empty.
    live_congested: bool,
    /// Per crawl, the earliest start a new bucket may have: just after its newest sealed
    /// one. A clock stepped back would otherwise name a bucket already sealed (perhaps
    /// delivered and about to be pruned) and append to it.
    floor: BTreeMap<CrawlId, DateTime<Utc>>,
}

impl SpoolWriter {
    /// Opens the spool: recovers every bucket file left by an earlier run (cutting a torn
    /// last frame), counts their bytes into `usage`, announces every bucket older than the
    /// current interval as sealed, and reopens current ones for appending.
    pub fn open(
        config: &TailerConfig,
        tx: Sender<ShipperInput>,
        usage: Arc<SpoolUsage>,
        events: Arc<TailerEvents>,
    ) -> Result<SpoolWriter, TailerError> {
        SpoolWriter::open_at(config, tx, usage, events, Utc::now())
    }

    /// [`open`](Self::open) as if the clock said `now`.
    pub fn open_at(
        config: &TailerConfig,
        tx: Sender<ShipperInput>,
        usage: Arc<SpoolUsage>,
        events: Arc<TailerEvents>,
        now: DateTime<Utc>,
    ) -> Result<SpoolWriter, TailerError> {
        let dir = config.spool_dir.clone();
        std::fs::create_dir_all(&dir)
            .map_err(|e| TailerError::io("creating spool directory", &dir, e))?;
        let mut w = SpoolWriter {
            dir,
            interval_secs: config.bucket_interval_secs,
            fsync: config.fsync,
            fsync_interval: Duration::from_millis(config.fsync_interval_ms),
            max_bytes: config.spool_max_bytes,
            open: BTreeMap::new(),
            pending_sealed: VecDeque::new(),
            tx,
            usage,
            events,
            last_fsync: Instant::now(),
            live_wait: Duration::from_millis(config.live_wait_ms),
            live_congested: false,
            floor: BTreeMap::new(),
        };
        w.recover_all(now)?;
        Ok(w)
    }

    fn recover_all(&mut self, now: DateTime<Utc>) -> Result<(), TailerError> {
        let current = bucket_start(now, self.interval_secs);
        let mut files = Vec::new();
        collect_files(&self.dir, 0, &mut files);
        files.sort();
        let mut buckets = Vec::with_capacity(files.len());
        for path in files {
            match parse_spool_bucket_path(&self.dir, &path) {
                Some((crawl, start)) => buckets.push((crawl, start, path)),
                None => {
                    tracing::warn!(path = %path.display(), "ignoring a file in the spool that is not a bucket file")
                }
            }
        }
        // Only a crawl's newest bucket can have a torn tail: a bucket is fsynced when it is
        // sealed, before the next one is created. So only those are read through; the rest
        // are just measured, which keeps start-up fast and its memory small.
        let mut newest: BTreeMap<CrawlId, DateTime<Utc>> = BTreeMap::new();
        for (crawl, start, _) in &buckets {
            let n = newest.entry(crawl.clone()).or_insert(*start);
            *n = (*n).max(*start);
        }
        let mut total = 0u64;
        for (crawl, start, path) in buckets {
            let len = if newest.get(&crawl) == Some(&start) {
                recover_file(&path)?
            } else {
                std::fs::metadata(&path)
                    .map_err(|e| TailerError::io("reading spool bucket size", &path, e))?
                    .len()
            };
            if len == 0 {
                continue;
            }
            total += len;
            let key = BucketKey {
                crawl: crawl.clone(),
                start,
            };
            // Only a crawl's newest bucket of the current interval is appended to again.
            // One from a later interval (the clock was stepped back while the tailer was
            // stopped) may have been sealed and delivered already: it is sealed again, and
            // new frames go after it.
            if start != current || newest.get(&crawl) != Some(&start) {
                let next = start + chrono::Duration::seconds(self.interval_secs as i64);
                let floor = self.floor.entry(crawl.clone()).or_insert(next);
                *floor = (*floor).max(next);
                self.pending_sealed
                    .push_back(ShipperInput::Sealed { bucket: key, path });
            } else {
                // New frames go where a torn or lost tail was: acks recorded for bytes
                // past the recovered length described other frames.
                if let Err(e) = AckedRecord::clamp_file(&path, len) {
                    tracing::warn!(path = %path.display(), "cannot cut the acked record back to the recovered bucket, removing it (the bucket is re-sent whole): {e}");
                    let _ = std::fs::remove_file(AckedRecord::path_of(&path));
                }
                upgrade_header(&path)?;
                let file = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(|e| TailerError::io("opening spool bucket", &path, e))?;
                self.open.insert(
                    crawl,
                    OpenBucket {
                        key,
                        path,
                        file,
                        len,
                        dirty: false,
                    },
                );
            }
        }
        // The shipper's janitor also measures the spool on disk and may have done so
        // already: take the larger figure rather than count the same files twice.
        self.usage.bytes.fetch_max(total, Ordering::Relaxed);
        self.events
            .spool_bytes
            .store(self.usage.bytes(), Ordering::Relaxed);
        self.send_sealed();
        Ok(())
    }

    /// Whether the spool has reached `spool_max_bytes`: reading must pause.
    pub fn is_full(&self) -> bool {
        self.usage.bytes() >= self.max_bytes
    }

    /// Appends `batch` (frames of one crawl, read at `now`) to the crawl's current bucket
    /// and offers them live to the shipper, grouped by event day. The batch is emptied once
    /// it is in the bucket file; after an error it is left as it was, to be appended again.
    pub fn append(
        &mut self,
        crawl: &CrawlId,
        batch: &mut FrameBatch,
        now: DateTime<Utc>,
    ) -> Result<(), TailerError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut start = bucket_start(now, self.interval_secs);
        if let Some(floor) = self.floor.get(crawl) {
            start = start.max(*floor);
        }
        match self.open.get(crawl).map(|b| b.key.start) {
            // The clock went back: stay in the open bucket rather than reopen an old one.
            Some(open) if open > start => start = open,
            Some(open) if open < start => self.seal(crawl)?,
            _ => {}
        }
        if !self.open.contains_key(crawl) {
            let bucket = self.create(crawl, start)?;
            self.open.insert(crawl.clone(), bucket);
        }
        let bucket = self
            .open
            .get_mut(crawl)
            .ok_or_else(|| TailerError::Task("spool bucket vanished".into()))?;
        if let Err(e) = bucket.file.write_all(batch.bytes()) {
            // A partial append (disk full) would leave a torn frame in the middle of the
            // bucket once later appends succeed: cut the file back to its last whole frame.
            let _ = bucket.file.set_len(bucket.len);
            return Err(TailerError::io(
                "appending to spool bucket",
                &bucket.path,
                e,
            ));
        }
        bucket.dirty = true;
        let added = batch.bytes().len() as u64;
        let base = bucket.len;
        bucket.len += added;
        self.usage.bytes.fetch_add(added, Ordering::Relaxed);
        self.events
            .spool_bytes
            .store(self.usage.bytes(), Ordering::Relaxed);
        let key = bucket.key.clone();
        self.offer_live(&key, base, batch);
        if self.fsync == FsyncPolicy::Always {
            self.sync_all()?;
        }
        Ok(())
    }

    /// Hands the batch's frames, just appended at file offset `base`, to the shipper, one
    /// message per event day, and empties it.
    fn offer_live(&mut self, key: &BucketKey, base: u64, batch: &mut FrameBatch) {
        // Nearly every batch has one day: its buffer goes as it is, without a copy.
        if let Some(day) = batch.single_day() {
            let count = u32::try_from(batch.len()).unwrap_or(u32::MAX);
            let frames = batch.take_bytes();
            let ranges = std::iter::once(base..base + frames.len() as u64).collect();
            self.offer_day(key, day, frames, count, ranges);
            return;
        }
        let mut groups: BTreeMap<NaiveDate, DayGroup> = BTreeMap::new();
        for run in batch.runs() {
            let g = groups.entry(run.day).or_default();
            g.frames
                .extend_from_slice(&batch.bytes()[run.bytes.clone()]);
            g.count += run.count;
            let place = base + run.bytes.start as u64..base + run.bytes.end as u64;
            match g.ranges.last_mut() {
                Some(r) if r.end == place.start => r.end = place.end,
                _ => g.ranges.push(place),
            }
        }
        batch.clear();
        for (day, g) in groups {
            self.offer_day(key, day, Bytes::from(g.frames), g.count, g.ranges);
        }
    }

    fn offer_day(
        &mut self,
        key: &BucketKey,
        day: NaiveDate,
        frames: Bytes,
        count: u32,
        ranges: Vec<Range<u64>>,
    ) {
        let msg = ShipperInput::Live {
            bucket: key.clone(),
            day,
            frames,
            count,
            ranges,
        };
        if !self.send_live(msg) {
            self.events
                .live_skipped_total
                .fetch_add(u64::from(count), Ordering::Relaxed);
        }
    }

    /// Hands a live copy to the shipper; false when it was skipped.
    fn send_live(&mut self, msg: ShipperInput) -> bool {
        if self.live_congested && self.tx.capacity() * 2 >= self.tx.max_capacity() {
            self.live_congested = false;
            tracing::info!("the shipper caught up; live copies flow again");
        }
        let msg = match self.tx.try_send(msg) {
            Ok(()) => return true,
            Err(TrySendError::Closed(_)) => return false,
            Err(TrySendError::Full(msg)) => msg,
        };
        if self.live_congested || self.live_wait.is_zero() {
            return false;
        }
        // The reader runs on a blocking thread of the tailer's runtime; without one (a
        // caller outside any runtime) there is nothing to wait with, so skip.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let started = Instant::now();
        match rt.block_on(self.tx.send_timeout(msg, self.live_wait)) {
            Ok(()) => {
                self.events
                    .live_wait_us_total
                    .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                true
            }
            Err(_) => {
                self.live_congested = true;
                tracing::warn!(
                    wait_ms = self.live_wait.as_millis() as u64,
                    "the shipper took no live copy for the whole wait; skipping live copies until it catches up (the repair send delivers them)"
                );
                false
            }
        }
    }

    fn create(&self, crawl: &CrawlId, start: DateTime<Utc>) -> Result<OpenBucket, TailerError> {
        let path = spool_bucket_path(&self.dir, crawl, start, self.interval_secs);
        let parent = path.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(parent)
            .map_err(|e| TailerError::io("creating spool directory", parent, e))?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| TailerError::io("creating spool bucket", &path, e))?;
        let mut len = file
            .metadata()
            .map_err(|e| TailerError::io("reading spool bucket size", &path, e))?
            .len();
        if len == 0 {
            if let Err(e) = file.write_all(&spool_header()) {
                let _ = file.set_len(0);
                return Err(TailerError::io("writing spool bucket header", &path, e));
            }
            len = SPOOL_HEADER_LEN as u64;
            self.usage
                .bytes
                .fetch_add(SPOOL_HEADER_LEN as u64, Ordering::Relaxed);
            // The new file's name must survive a crash as well as its bytes.
            durable_file::sync_dir(parent)
                .map_err(|e| TailerError::io("syncing spool directory", parent, e))?;
        } else {
            upgrade_header(&path)?;
        }
        Ok(OpenBucket {
            key: BucketKey {
                crawl: crawl.clone(),
                start,
            },
            path,
            file,
            len,
            dirty: true,
        })
    }

    /// Seals the open bucket of `crawl`: fsync, close, announce.
    fn seal(&mut self, crawl: &CrawlId) -> Result<(), TailerError> {
        if let Some(b) = self.open.remove(crawl) {
            if let Err(e) = b.file.sync_data() {
                let path = b.path.clone();
                self.open.insert(crawl.clone(), b);
                return Err(TailerError::io("syncing spool bucket", &path, e));
            }
            let next = b.key.start + chrono::Duration::seconds(self.interval_secs as i64);
            self.floor.insert(crawl.clone(), next);
            self.pending_sealed.push_back(ShipperInput::Sealed {
                bucket: b.key,
                path: b.path,
            });
        }
        self.send_sealed();
        Ok(())
    }

    fn send_sealed(&mut self) {
        while let Some(msg) = self.pending_sealed.pop_front() {
            match self.tx.try_send(msg) {
                Ok(()) => {}
                Err(TrySendError::Full(msg)) => {
                    self.pending_sealed.push_front(msg);
                    break;
                }
                // The shipper is gone (shutting down); the next start announces it again.
                Err(TrySendError::Closed(_)) => {}
            }
        }
    }

    /// Periodic work: seals buckets whose interval has ended, retries queued seal
    /// notices, and fsyncs under the configured policy. Returns true when every appended
    /// frame is now fsynced, i.e. offsets read so far may be checkpointed.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Result<bool, TailerError> {
        let current = bucket_start(now, self.interval_secs);
        let expired: Vec<CrawlId> = self
            .open
            .iter()
            .filter(|(_, b)| b.key.start < current)
            .map(|(c, _)| c.clone())
            .collect();
        for crawl in expired {
            self.seal(&crawl)?;
        }
        self.send_sealed();
        let dirty = self.open.values().any(|b| b.dirty);
        if dirty
            && self.fsync == FsyncPolicy::Interval
            && self.last_fsync.elapsed() >= self.fsync_interval
        {
            self.sync_all()?;
        }
        Ok(!self.open.values().any(|b| b.dirty))
    }

    /// Fsyncs every bucket with unsynced frames.
    pub fn sync_all(&mut self) -> Result<(), TailerError> {
        for b in self.open.values_mut().filter(|b| b.dirty) {
            b.file
                .sync_data()
                .map_err(|e| TailerError::io("syncing spool bucket", &b.path, e))?;
            b.dirty = false;
        }
        self.last_fsync = Instant::now();
        Ok(())
    }

    /// Seal notices still waiting for room in the channel.
    pub fn pending_sealed(&self) -> usize {
        self.pending_sealed.len()
    }
}

/// The frames of one append that share an event day, and where they lie in the bucket.
#[derive(Default)]
struct DayGroup {
    frames: Vec<u8>,
    count: u32,
    ranges: Vec<Range<u64>>,
}

/// Recovers one bucket file: cuts a torn tail, removes a file too short to hold its
/// header. Returns its length afterwards (0 if removed).
fn recover_file(path: &Path) -> Result<u64, TailerError> {
    let bytes =
        std::fs::read(path).map_err(|e| TailerError::io("reading spool bucket", path, e))?;
    if bytes.len() < SPOOL_HEADER_LEN {
        // Created but never written: a crash between create and header write.
        tracing::warn!(path = %path.display(), len = bytes.len(), "removing a spool bucket cut before its header was written");
        std::fs::remove_file(path)
            .map_err(|e| TailerError::io("removing empty spool bucket", path, e))?;
        return Ok(0);
    }
    let r = recover(&bytes).map_err(|e| TailerError::Spool {
        path: path.into(),
        message: e.to_string(),
    })?;
    if let Some(reason) = &r.cut_reason {
        tracing::warn!(
            path = %path.display(),
            kept_frames = r.frames,
            kept_events = r.events,
            cut_bytes = bytes.len() - r.good_len,
            reason = %reason,
            "cutting the torn tail of a spool bucket (its lines are read again from the checkpoint)"
        );
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| TailerError::io("opening spool bucket", path, e))?;
        f.set_len(r.good_len as u64)
            .map_err(|e| TailerError::io("truncating spool bucket", path, e))?;
        f.sync_all()
            .map_err(|e| TailerError::io("syncing spool bucket", path, e))?;
    }
    Ok(r.good_len as u64)
}

/// Sets the version byte of a bucket file written by an older build (version 1: events
/// only) to this build's, before frame streams are appended to it. The older events stay
/// readable: a version-2 reader reads version-1 events anywhere in a stream. Synced, so a
/// crash never leaves a version-1 header over a stream.
fn upgrade_header(path: &Path) -> Result<(), TailerError> {
    use std::io::Read;
    use std::os::unix::fs::FileExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| TailerError::io("opening spool bucket", path, e))?;
    let mut header = [0u8; SPOOL_HEADER_LEN];
    file.read_exact(&mut header)
        .map_err(|e| TailerError::io("reading spool bucket header", path, e))?;
    let version = check_spool_header(&header).map_err(|e| TailerError::Spool {
        path: path.into(),
        message: e.to_string(),
    })?;
    if version >= SPOOL_VERSION {
        return Ok(());
    }
    tracing::info!(path = %path.display(), version, "appending to a spool bucket of an older version: its header now says version {SPOOL_VERSION}");
    file.write_all_at(&[SPOOL_VERSION], SPOOL_VERSION_AT as u64)
        .and_then(|()| file.sync_data())
        .map_err(|e| TailerError::io("upgrading spool bucket header", path, e))
}

/// Every `*.b` file under the spool (crawl/YYYY/MM/DD/HH/name: depth 6 at most).
fn collect_files(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let Ok(ft) = e.file_type() else { continue };
        let path = e.path();
        if ft.is_dir() && depth < 5 {
            collect_files(&path, depth + 1, out);
        } else if ft.is_file() && path.extension().is_some_and(|x| x == "b") {
            out.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::{Event, EventFlags, EventId, Format, frame};

    /// A writer on `cfg`'s spool and the shipper's end of its channel.
    fn open_writer(cfg: &TailerConfig) -> (SpoolWriter, tokio::sync::mpsc::Receiver<ShipperInput>) {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let w = SpoolWriter::open(
            cfg,
            tx,
            SpoolUsage::new(),
            Arc::new(TailerEvents::default()),
        )
        .unwrap();
        (w, rx)
    }

    fn config(dir: &Path) -> TailerConfig {
        let mut c =
            TailerConfig::parse("[[source]]\npath=\"/x\"\ncrawl=\"c\"\n", Path::new("t")).unwrap();
        c.spool_dir = dir.to_path_buf();
        c.bucket_interval_secs = 1;
        c
    }

    fn event(offset: u64, time_us: i64) -> Event {
        Event {
            id: EventId {
                tailer: 1,
                file_seq: 0,
                offset,
            },
            time_us,
            flags: EventFlags::default(),
            original_len: 4,
            format: Format::Plain,
            crawl: CrawlId::parse("c1").unwrap(),
            host: "h".into(),
            app: "a".into(),
            fields: vec![],
            raw: b"line".to_vec(),
        }
    }

    fn batch(events: &[Event]) -> FrameBatch {
        let mut b = FrameBatch::new();
        for e in events {
            assert!(b.push(&e.view()));
        }
        b
    }

    #[test]
    fn appends_seals_and_splits_live_by_day() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let usage = SpoolUsage::new();
        let events = Arc::new(TailerEvents::default());
        let mut w = SpoolWriter::open(&config(dir.path()), tx, usage.clone(), events).unwrap();
        let crawl = CrawlId::parse("c1").unwrap();
        let now = Utc::now();
        let day = 86_400_000_000i64;
        let mut b = batch(&[
            event(0, now.timestamp_micros()),
            event(5, now.timestamp_micros() - day),
            event(10, now.timestamp_micros()),
        ]);
        w.append(&crawl, &mut b, now).unwrap();
        assert!(b.is_empty());
        let mut live = Vec::new();
        while let Ok(ShipperInput::Live { count, day, .. }) = rx.try_recv() {
            live.push((day, count));
        }
        live.sort();
        assert_eq!(live.len(), 2);
        assert_eq!(live.iter().map(|l| l.1).sum::<u32>(), 3);
        assert!(!w.tick(now).unwrap() || w.fsync == FsyncPolicy::Interval);
        w.tick(now + chrono::Duration::seconds(2)).unwrap();
        let Ok(ShipperInput::Sealed { path, .. }) = rx.try_recv() else {
            panic!("no seal")
        };
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, usage.bytes());
        assert_eq!(recover(&bytes).unwrap().events, 3);
    }

    /// r16: a clock stepped back by an hour never sends frames to a bucket already
    /// sealed (perhaps delivered and pruned next): within a run they stay in the open
    /// bucket or go after the last sealed one, and after a restart the same holds.
    #[test]
    fn a_clock_stepped_back_never_appends_to_a_sealed_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let crawl = CrawlId::parse("c1").unwrap();
        let t = DateTime::parse_from_rfc3339("2026-12-04T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let hour = chrono::Duration::hours(1);
        let sec = chrono::Duration::seconds(1);
        let ev = |o: u64| event(o, t.timestamp_micros());
        let path_at = |start| spool_bucket_path(dir.path(), &crawl, start, 1);
        let sealed = |rx: &mut tokio::sync::mpsc::Receiver<ShipperInput>| {
            let mut out = Vec::new();
            while let Ok(m) = rx.try_recv() {
                if let ShipperInput::Sealed { bucket, .. } = m {
                    out.push(bucket.start);
                }
            }
            out
        };

        let (mut w, mut rx) = open_writer(&cfg);
        w.append(&crawl, &mut batch(&[ev(0)]), t).unwrap();
        // An hour back while bucket t is open: the frames join it.
        w.append(&crawl, &mut batch(&[ev(10)]), t - hour).unwrap();
        w.tick(t - hour).unwrap();
        assert!(
            sealed(&mut rx).is_empty(),
            "sealed by a clock that went back"
        );
        assert!(!path_at(t - hour).exists());
        assert_eq!(
            recover(&std::fs::read(path_at(t)).unwrap()).unwrap().events,
            2
        );
        // The clock is right again and bucket t is sealed; then it steps back once more.
        w.tick(t + sec).unwrap();
        assert_eq!(sealed(&mut rx), vec![t]);
        w.append(&crawl, &mut batch(&[ev(20)]), t - hour).unwrap();
        assert_eq!(
            recover(&std::fs::read(path_at(t)).unwrap()).unwrap().events,
            2
        );
        assert!(!path_at(t - hour).exists());
        assert!(
            path_at(t + sec).exists(),
            "new frames go after the sealed bucket"
        );
        drop(w);

        // A restart with the clock an hour behind the newest bucket: it is sealed again
        // (it may have been sealed before the restart) and new frames go after it.
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let mut w = SpoolWriter::open_at(
            &cfg,
            tx,
            SpoolUsage::new(),
            Arc::new(TailerEvents::default()),
            t - hour,
        )
        .unwrap();
        assert_eq!(sealed(&mut rx), vec![t, t + sec]);
        w.append(&crawl, &mut batch(&[ev(30)]), t - hour).unwrap();
        assert!(!path_at(t - hour).exists());
        assert_eq!(
            recover(&std::fs::read(path_at(t + sec)).unwrap())
                .unwrap()
                .events,
            1
        );
        assert!(path_at(t + sec * 2).exists());
    }

    #[test]
    fn a_one_day_batch_goes_live_as_the_bytes_appended() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, mut rx) = open_writer(&config(dir.path()));
        let crawl = CrawlId::parse("c1").unwrap();
        let now = Utc::now();
        let t = now.timestamp_micros();
        let mut b = batch(&[event(0, t), event(5, t), event(10, t)]);
        let appended = b.bytes().to_vec();
        w.append(&crawl, &mut b, now).unwrap();
        let Ok(ShipperInput::Live {
            frames, count, day, ..
        }) = rx.try_recv()
        else {
            panic!("no live copy")
        };
        assert_eq!(
            (&frames[..], count, day),
            (&appended[..], 3, now.date_naive())
        );
        assert!(rx.try_recv().is_err(), "one message for one day");
        // The batch is ready for the next read.
        b.push(&event(15, t).view());
        w.append(&crawl, &mut b, now).unwrap();
        assert!(matches!(
            rx.try_recv(),
            Ok(ShipperInput::Live { count: 1, .. })
        ));
    }

    #[test]
    fn a_failed_append_leaves_the_batch_to_be_appended_again() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, mut rx) = open_writer(&config(dir.path()));
        let crawl = CrawlId::parse("c1").unwrap();
        let now = Utc::now();
        let t = now.timestamp_micros();
        w.append(&crawl, &mut batch(&[event(0, t)]), now).unwrap();
        assert!(rx.try_recv().is_ok());
        // A descriptor that cannot write stands in for a full disk.
        let path = w.open[&crawl].path.clone();
        let writable = std::mem::replace(
            &mut w.open.get_mut(&crawl).unwrap().file,
            File::open(&path).unwrap(),
        );
        let mut b = batch(&[event(5, t), event(10, t)]);
        let frames = b.bytes().to_vec();
        assert!(w.append(&crawl, &mut b, now).is_err());
        assert_eq!((b.bytes(), b.len()), (&frames[..], 2));
        assert!(
            rx.try_recv().is_err(),
            "nothing goes live before it is spooled"
        );
        w.open.get_mut(&crawl).unwrap().file = writable;
        w.append(&crawl, &mut b, now).unwrap();
        assert!(b.is_empty());
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(recover(&bytes).unwrap().events, 3);
        assert!(bytes.ends_with(&frames));
    }

    #[test]
    fn a_full_channel_skips_the_live_copy_and_counts_it_but_keeps_seal_notices() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        let usage = SpoolUsage::new();
        let events = Arc::new(TailerEvents::default());
        let mut w = SpoolWriter::open(&config(dir.path()), tx, usage, events.clone()).unwrap();
        let crawl = CrawlId::parse("c1").unwrap();
        let now = Utc::now();
        let t = now.timestamp_micros();
        w.append(&crawl, &mut batch(&[event(0, t)]), now).unwrap();
        w.append(&crawl, &mut batch(&[event(5, t), event(10, t)]), now)
            .unwrap();
        assert_eq!(events.live_skipped_total.load(Ordering::Relaxed), 2);
        // The channel is still full: the seal notice waits instead of being dropped.
        w.tick(now + chrono::Duration::seconds(2)).unwrap();
        assert_eq!(w.pending_sealed(), 1);
        assert!(matches!(
            rx.try_recv(),
            Ok(ShipperInput::Live { count: 1, .. })
        ));
        w.tick(now + chrono::Duration::seconds(2)).unwrap();
        assert_eq!(w.pending_sealed(), 0);
        assert!(matches!(rx.try_recv(), Ok(ShipperInput::Sealed { .. })));
    }

    #[test]
    fn torn_tail_is_cut_and_old_bucket_announced_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let crawl = CrawlId::parse("c1").unwrap();
        let start = bucket_start(Utc::now() - chrono::Duration::seconds(30), 1);
        let path = spool_bucket_path(dir.path(), &crawl, start, 1);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut bytes = spool_header().to_vec();
        frame::put_event_frame(&mut bytes, &event(0, 0));
        let good = bytes.len();
        frame::put_event_frame(&mut bytes, &event(5, 0));
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let usage = SpoolUsage::new();
        let _w = SpoolWriter::open(
            &config(dir.path()),
            tx,
            usage.clone(),
            Arc::new(TailerEvents::default()),
        )
        .unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, good);
        assert_eq!(usage.bytes() as usize, good);
        match rx.try_recv() {
            Ok(ShipperInput::Sealed { bucket, path: p }) => {
                assert_eq!((bucket.crawl, bucket.start, p), (crawl, start, path));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bucket_reopened_after_a_crash_keeps_acks_only_below_its_recovered_length() {
        let dir = tempfile::tempdir().unwrap();
        let crawl = CrawlId::parse("c1").unwrap();
        let mut cfg = config(dir.path());
        // Long enough that the bucket is still the current one when it is reopened.
        cfg.bucket_interval_secs = 86_400 * 365;
        let start = bucket_start(Utc::now(), cfg.bucket_interval_secs);
        let path = spool_bucket_path(dir.path(), &crawl, start, cfg.bucket_interval_secs);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut bytes = spool_header().to_vec();
        frame::put_event_frame(&mut bytes, &event(0, 0));
        let good = bytes.len() as u64;
        frame::put_event_frame(&mut bytes, &event(5, 0));
        // The second frame was acked, then lost with the page cache (torn on disk).
        let mut acked = AckedRecord::default();
        acked
            .homes
            .entry("b1".into())
            .or_default()
            .insert(SPOOL_HEADER_LEN as u64..bytes.len() as u64);
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        acked.save(&path).unwrap();
        let (tx, _rx) = tokio::sync::mpsc::channel(16);
        let _w = SpoolWriter::open(
            &cfg,
            tx,
            SpoolUsage::new(),
            Arc::new(TailerEvents::default()),
        )
        .unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good);
        let back = AckedRecord::load(&path).unwrap().unwrap();
        assert!(back.covers("b1", SPOOL_HEADER_LEN as u64, good));
        assert!(
            !back.covers("b1", good, good + 1),
            "acks past the recovered length would claim frames appended later"
        );
    }
}
