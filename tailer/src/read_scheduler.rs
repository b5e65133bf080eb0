//! `ReadScheduler`: the scheduler over every followed file. One thread runs it: it discovers
//! files, notices rotations, reads lines into event frames, appends them to the spool, and
//! checkpoints offsets once the spool has them on disk.
//!
//! One cycle (`ReadScheduler::step`):
//!
//! 1. If the spool is full, reading pauses (nothing else is read until delivered buckets
//!    are pruned); sealing and fsync continue.
//! 2. Dormant files (closed because idle, or known only from the state file) that changed,
//!    moved or must be drained are located again and reopened.
//! 3. Every `discovery_interval_ms`, the patterns are expanded; a file not seen before gets
//!    a new seq, which is saved before any of its events exist.
//! 4. Each open file is checked (renamed or deleted: read it to its end; shorter than the
//!    read position: copytruncate) and read, at most `read_chunk_bytes` at a time.
//! 5. Buckets whose interval ended are sealed; the spool is fsynced by policy; once it is,
//!    offsets advance to what was spooled and the state file is saved.
//!
//! Between cycles the thread waits for a notify (inotify) event or `poll_interval_ms`,
//! whichever comes first: inotify makes following prompt, polling makes it certain
//! (directories inotify cannot watch, a watch limit, network file systems).

use std::collections::HashMap;

// Sets of file keys, seqs and paths rebuilt or probed each cycle over every followed file
// (20,000): SipHash was a tenth of the tailer's CPU at 1% of them written each second.
use foldhash::HashSet;
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use chrono::Utc;
use tokio::sync::mpsc::Sender;
use tokio_util::sync::CancellationToken;

use crate::checkpointer::{Checkpointer, FileCheckpoint, STATE_VERSION, State};
use crate::config::{SourceConfig, SourceFormat, StartAt, TailerConfig};
use crate::discovery::{DirWatch, Discovery, Found};
use crate::error::TailerError;
use crate::events::TailerEvents;
use crate::file_follower::{FileContext, FileFollower, Input, path_key};
use crate::fingerprint::{self, Fingerprint};
use crate::frame_batch::FrameBatch;
use crate::pipeline::{ShipperInput, SpoolUsage};
use crate::rotated_copy::{Located, locate};
use crate::spool_writer::SpoolWriter;
use crate::wake::Wake;

/// Size of the one read buffer shared by every file.
const SCRATCH_BYTES: usize = 64 * 1024;

/// A file known by its checkpoint only, with no open descriptor.
#[derive(Debug, Clone)]
struct Dormant {
    cp: FileCheckpoint,
    /// Size and modification time when it was closed; `None`: never looked at this run.
    seen: Option<(u64, SystemTime)>,
    /// Whether notify watches its directory: then it is looked at when an event names it
    /// (and at each sweep), not polled.
    watched: bool,
    /// When polling (not watched), the next look is due.
    next_poll: Instant,
    /// `path_key` of its path.
    key: u64,
    /// Its entry is in the state as last saved (it cannot change while it is closed).
    saved: bool,
}

/// Every closed file is looked at (a `stat`) at least this often, notify or not: a
/// missed or dropped event costs at most this much delay.
const DORMANT_SWEEP_EVERY: Duration = Duration::from_secs(60);

/// How many closed files not watched by notify are looked at per second, at most: with
/// 20,000 of them, each is looked at every 5 s instead of every discovery interval, which
/// cost 19,000 path lookups a second (about 3% of a core) while nothing changed.
const DORMANT_POLLS_PER_SEC: usize = 4_000;

/// The reading side of the tailer.
pub struct ReadScheduler {
    config: TailerConfig,
    tailer_id: u64,
    host: String,
    discovery: Discovery,
    spool: SpoolWriter,
    checkpointer: Checkpointer,
    next_seq: u64,
    followers: Vec<FileFollower>,
    dormant: Vec<Dormant>,
    events: Arc<TailerEvents>,
    usage: Arc<SpoolUsage>,
    scratch: Vec<u8>,
    /// Frames of the file being read, reused from read to read.
    batch: FrameBatch,
    /// No state file existed at start: `start_at` applies to the files found first.
    first_run: bool,
    last_discovery: Option<Instant>,
    last_dormant_check: Option<Instant>,
    last_dormant_sweep: Option<Instant>,
    /// Paths notify named that a pass has not got to yet (it ran out of descriptors).
    changed: HashSet<u64>,
    /// `path_key`s of the directories notify named (or named an entry of) since the last
    /// discovery pass, and whether it lost events meanwhile: the pass `stat`s those.
    changed_dirs: HashSet<u64>,
    changed_dirs_lost: bool,
    /// A sweep or a notify overflow that a pass has not finished.
    look_at_all: bool,
    last_save_check: Option<Instant>,
    paused: bool,
    wake: Wake,
    wake_watched_roots: bool,
    /// A batch the spool refused (disk full), appended before anything else is read.
    retry: Option<(contracts::CrawlId, FrameBatch)>,
    /// The spool's and state's file systems against `min_free_bytes` / `min_free_percent`.
    space: disk_space::HeadroomWatch,
    /// The state file could not be saved (disk full): it must be, before anything more is
    /// read, since a new file's seq is only safe to use once it is saved.
    unsaved: bool,
    /// Wait before the next cycle after a storage fault; doubles while it lasts.
    fault_backoff: Option<Duration>,
}

/// The first wait after a storage fault, and the most: short enough to resume soon after
/// an operator frees space, long enough not to spin on a full disk.
const FAULT_BACKOFF_MIN: Duration = Duration::from_millis(100);
const FAULT_BACKOFF_MAX: Duration = Duration::from_secs(5);

impl ReadScheduler {
    /// Opens the state (tailer id, checkpoints) and the spool (recovering it).
    pub fn new(
        config: TailerConfig,
        tx: Sender<ShipperInput>,
        usage: Arc<SpoolUsage>,
        events: Arc<TailerEvents>,
    ) -> Result<ReadScheduler, TailerError> {
        let tailer_id = crate::tailer_id::load_or_create(&config.state_dir)?;
        let mut checkpointer = Checkpointer::new(&config.state_dir)?;
        let state = checkpointer.load()?;
        let discovery = Discovery::new(&config.sources)?;
        let spool = SpoolWriter::open(&config, tx, usage.clone(), events.clone())?;
        let (next_seq, dormant, first_run) = match state {
            Some(s) => {
                if s.tailer_id != tailer_id {
                    return Err(TailerError::State {
                        path: checkpointer.path().into(),
                        message: format!(
                            "it belongs to tailer {:016x}, but tailer.id says {tailer_id:016x}",
                            s.tailer_id
                        ),
                    });
                }
                let dormant = s
                    .files
                    .into_iter()
                    .map(|cp| Dormant {
                        key: path_key(&cp.path),
                        cp,
                        seen: None,
                        watched: false,
                        next_poll: Instant::now(),
                        saved: false,
                    })
                    .collect();
                (s.next_seq, dormant, false)
            }
            None => (0, Vec::new(), true),
        };
        let mut config = config;
        config.max_open_files = open_files_within_limit(config.max_open_files);
        let space = disk_space::HeadroomWatch::new(
            config.headroom(),
            vec![config.spool_dir.clone(), config.state_dir.clone()],
            disk_space::watch::DEFAULT_EVERY,
        );
        Ok(ReadScheduler {
            space,
            unsaved: false,
            fault_backoff: None,
            host: config.host_name(),
            wake: Wake::new(config.use_notify),
            config,
            tailer_id,
            discovery,
            spool,
            checkpointer,
            next_seq,
            followers: Vec::new(),
            dormant,
            events,
            usage,
            scratch: vec![0u8; SCRATCH_BYTES],
            batch: FrameBatch::new(),
            first_run,
            last_discovery: None,
            last_dormant_check: None,
            last_dormant_sweep: None,
            changed: HashSet::default(),
            changed_dirs: HashSet::default(),
            changed_dirs_lost: false,
            look_at_all: false,
            last_save_check: None,
            paused: false,
            wake_watched_roots: false,
            retry: None,
        })
    }

    /// Runs cycles until `shutdown` is cancelled, then stops in order: no more reading,
    /// fsync the spool, save the checkpoints.
    pub fn run(mut self, shutdown: &CancellationToken) -> Result<(), TailerError> {
        let poll = Duration::from_millis(self.config.poll_interval_ms.max(1));
        let coalesce = Duration::from_millis(self.config.read_coalesce_ms);
        while !shutdown.is_cancelled() {
            let started = Instant::now();
            let busy = match self.step() {
                Ok(busy) => {
                    self.fault_backoff = None;
                    busy
                }
                // A full or read-only disk, or no descriptor left, is a pause: offsets
                // stay where the spool has the lines, and the cycle is tried again.
                Err(e) => {
                    if let Some((fault, path)) = e.storage_fault() {
                        self.events.disk.fault("tailer", path, fault);
                    } else if e.out_of_descriptors() {
                        if self.fault_backoff.is_none() {
                            tracing::warn!(error = %e, "out of file descriptors: retrying with a backoff; raise `ulimit -n` or lower max_open_files");
                        }
                    } else {
                        return Err(e);
                    }
                    tracing::debug!(error = %e, "retrying after a fault");
                    let wait = self
                        .fault_backoff
                        .map_or(FAULT_BACKOFF_MIN, |w| (w * 2).min(FAULT_BACKOFF_MAX));
                    self.fault_backoff = Some(wait);
                    self.wake.wait(wait, shutdown);
                    continue;
                }
            };
            if !busy {
                self.wake.wait(poll, shutdown);
                // A writer that appends a line at a time wakes the reader for each: reading
                // what a short pause gathers costs one cycle instead of dozens.
                let left = coalesce.saturating_sub(started.elapsed());
                if !left.is_zero() && !shutdown.is_cancelled() {
                    std::thread::sleep(left);
                }
            }
        }
        self.finish()
    }

    /// Fsyncs the spool and saves the checkpoints (the end of a clean stop).
    ///
    /// On a full or read-only disk the offsets cannot be saved: that is not an error of
    /// the stop, as the next start reads again from the last saved offsets and the bucks
    /// drop what they already have.
    pub fn finish(mut self) -> Result<(), TailerError> {
        let appended = self.retry_append();
        let saved = self.spool.sync_all().and_then(|()| {
            if appended {
                for f in &mut self.followers {
                    f.mark_durable();
                }
            }
            self.followers.retain(|f| !f.done);
            // Whole, so that the state file alone is complete after a clean stop.
            let state = self.state();
            self.checkpointer.compact(&state)
        });
        if let Err(e) = saved {
            if let Some((fault, path)) = e.storage_fault() {
                tracing::warn!(path = %path.display(), error = %e, "reader stopped without saving its offsets ({}): the next start reads again from the last saved ones; nothing is lost", fault.name());
                return Ok(());
            }
            return Err(e);
        }
        tracing::info!(
            files = self.followers.len() + self.dormant.len(),
            "reader stopped; spool fsynced and offsets saved"
        );
        Ok(())
    }

    /// One cycle. Returns true when a file still had bytes to read (run again at once).
    pub fn step(&mut self) -> Result<bool, TailerError> {
        if self.unsaved {
            self.save()?;
        }
        let low = self.space.low().cloned();
        if let Some((dir, space)) = &low {
            self.events.disk.paused("tailer", dir, &space.to_string());
        }
        let spool_full = self.spool.is_full();
        let full = spool_full || low.is_some();
        if spool_full != self.paused {
            self.paused = spool_full;
            self.usage.paused.store(spool_full, Ordering::Relaxed);
            self.events.spool_pause(spool_full);
            if spool_full {
                tracing::warn!(
                    "spool full at {} bytes: reading paused until delivered buckets are pruned",
                    self.usage.bytes()
                );
            } else {
                tracing::info!(
                    bytes = self.usage.bytes(),
                    "spool below its limit: reading resumed"
                );
            }
        }
        let mut busy = false;
        if !full && self.retry_append() {
            self.events.disk.resumed("tailer");
            self.wake_roots();
            let news = self.wake.take_changed();
            for p in &news.paths {
                self.changed.insert(path_key(p));
            }
            // A directory is listed again only when an event can mean it holds a new
            // entry: one named in it, or the directory itself.
            for p in &news.entries {
                self.changed_dirs.insert(path_key(p));
                if let Some(dir) = p.parent() {
                    self.changed_dirs.insert(path_key(dir));
                }
            }
            let overflow = news.overflow;
            if self.wake.forget_named_dirs(&news.moved) {
                for f in &mut self.followers {
                    f.watched = None;
                }
                for d in &mut self.dormant {
                    d.watched = self.wake.covers(&d.cp.path);
                }
            }
            self.look_at_all |= overflow;
            self.changed_dirs_lost |= overflow;
            let poll_all = self.look_at_all;
            self.resume_dormant()?;
            self.discover()?;
            busy = self.read_all(poll_all)?;
        }
        if self.spool.tick(Utc::now())? && self.retry.is_none() {
            for f in &mut self.followers {
                f.mark_durable();
            }
            self.followers.retain(|f| !f.done);
            self.idle_close();
            self.save_if_changed()?;
        }
        self.events.files(
            self.followers.len() + self.dormant.len(),
            self.followers.len(),
        );
        Ok(busy)
    }

    fn wake_roots(&mut self) {
        if !self.wake_watched_roots {
            self.wake_watched_roots = true;
            let roots: Vec<PathBuf> = self
                .discovery
                .matchers()
                .iter()
                .map(|m| m.root().to_path_buf())
                .collect();
            for r in roots {
                self.wake.watch(&r);
            }
        }
    }

    fn context(&self, source: usize, crawl: contracts::CrawlId, path: &Path) -> FileContext {
        let s: &SourceConfig = &self.config.sources[source];
        FileContext {
            source,
            source_pattern: s.path.clone(),
            crawl,
            format: s.format,
            multiline: s.multiline,
            app: app_name(s, path),
            host: self.host.clone(),
            tailer_id: self.tailer_id,
            max_line_bytes: self.config.max_line_bytes,
        }
    }

    fn open_slots(&self) -> usize {
        self.config
            .max_open_files
            .max(1)
            .saturating_sub(self.followers.len())
    }

    /// Frees one descriptor by closing the longest-idle file that is fully checkpointed.
    fn evict_one(&mut self) -> bool {
        self.evict_oldest(1) == 1
    }

    /// Frees up to `n` descriptors by closing the longest-idle files that are fully
    /// checkpointed; returns how many were closed. One scan of the open files serves the
    /// whole batch: with 20,000 files and 1,024 descriptors, hundreds of closed files are
    /// reopened a second, and a scan per reopening was most of what reopening cost.
    ///
    /// A file holding back a multi-line record is not a candidate: the record lives only
    /// in the follower, and closing it would leave the record unread until the file
    /// changes again (possibly never). It becomes one once the record is flushed, which
    /// happens `multiline_flush_ms` after the file went quiet. Nor is one an event named
    /// since it was last read: it has news, and closed, it would wait for the next event.
    fn evict_oldest(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        let changed = &self.changed;
        let mut victims: Vec<(Instant, usize)> = self
            .followers
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                !f.rotated
                    && !f.done
                    && !f.has_pending_record()
                    && f.durable == f.spooled
                    && f.position() >= f.last_size
                    && (changed.is_empty() || !changed.contains(&f.key))
            })
            .map(|(i, f)| (f.last_growth, i))
            .collect();
        if victims.len() > n {
            victims.select_nth_unstable(n - 1);
            victims.truncate(n);
        }
        // Highest index first: `swap_remove` moves the last follower into the hole, and
        // that one is never a victim still to be taken.
        victims.sort_unstable_by_key(|v| std::cmp::Reverse(v.1));
        let closed = victims.len();
        for (_, i) in victims {
            let f = self.followers.swap_remove(i);
            self.make_dormant(f);
        }
        closed
    }

    fn make_dormant(&mut self, f: FileFollower) {
        // The size recorded is how far it was read, not the file's size: bytes appended
        // after the last read then count as a change and reopen it.
        let seen = f
            .input()
            .plain()
            .and_then(|file| file.metadata().ok())
            .map(|m| (f.position(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
        let watched = f.watched.unwrap_or_else(|| self.wake.covers(&f.path));
        let key = f.key;
        let (cp, saved) = f.into_entry();
        self.dormant.push(Dormant {
            key,
            cp,
            seen,
            watched,
            next_poll: Instant::now(),
            saved,
        });
    }

    fn idle_close(&mut self) {
        let idle = Duration::from_secs(self.config.idle_close_secs);
        let mut i = 0;
        while i < self.followers.len() {
            let f = &self.followers[i];
            if !f.rotated
                && !f.has_pending_record()
                && f.durable == f.spooled
                && f.position() >= f.last_size
                && f.last_growth.elapsed() >= idle
            {
                let f = self.followers.swap_remove(i);
                tracing::debug!(path = %f.path.display(), "closing idle file");
                self.make_dormant(f);
            } else {
                i += 1;
            }
        }
    }

    fn resume_dormant(&mut self) -> Result<(), TailerError> {
        // Closed files are idle ones: looking at them once a discovery interval (rather
        // than every poll) keeps the idle cost of many files low, and only those notify
        // named (or, unwatched, those due a poll) are looked at, with a sweep of all of
        // them every `DORMANT_SWEEP_EVERY`. Those that must be reopened whatever their
        // state (never looked at, rotated) do not wait.
        let every = Duration::from_millis(self.config.discovery_interval_ms);
        let now = Instant::now();
        let look = self.last_dormant_check.is_none_or(|t| t.elapsed() >= every);
        if look {
            self.last_dormant_check = Some(now);
        }
        let sweep = look
            && self
                .last_dormant_sweep
                .is_none_or(|t| t.elapsed() >= DORMANT_SWEEP_EVERY);
        if sweep {
            self.last_dormant_sweep = Some(now);
        }
        if sweep {
            self.look_at_all = true;
        }
        let all = self.look_at_all;
        let polled = self.dormant.iter().filter(|d| !d.watched).count();
        let poll_gap = every.max(Duration::from_secs_f64(
            polled as f64 / DORMANT_POLLS_PER_SEC as f64,
        ));
        let mut wanted = Vec::new();
        for (i, d) in self.dormant.iter_mut().enumerate() {
            let must = d.seen.is_none() || d.cp.rotated;
            let due = look
                && if all {
                    true
                } else if d.watched {
                    !self.changed.is_empty() && self.changed.contains(&d.key)
                } else {
                    d.next_poll <= now
                };
            if due && !d.watched {
                d.next_poll = now + poll_gap;
            }
            if must || due && needs_resume(d) {
                wanted.push(i);
            }
        }
        let short = wanted.len().saturating_sub(self.open_slots());
        self.evict_oldest(short);
        let can = wanted.len().min(self.open_slots());
        let all_resumed = can == wanted.len();
        wanted.truncate(can);
        // Highest index first: `swap_remove` moves the last entry (one not wanted, or a
        // file just closed) into the hole.
        for i in wanted.into_iter().rev() {
            let d = self.dormant.swap_remove(i);
            self.resume(d)?;
        }
        if !all_resumed {
            // What is left is looked at in a later pass: keep what notify named.
            return Ok(());
        }
        if look && !self.changed.is_empty() {
            // Every closed file named was looked at; what is left is for open ones,
            // which `read_all` takes next.
            let open: HashSet<u64> = self.followers.iter().map(|f| f.key).collect();
            self.changed.retain(|k| open.contains(k));
        }
        if look {
            self.look_at_all = false;
        }
        Ok(())
    }

    fn resume(&mut self, d: Dormant) -> Result<(), TailerError> {
        let cp = d.cp;
        // By pattern; else (the pattern was edited) by whichever source still matches the
        // path, so editing a pattern does not make every file be read again.
        let source = self
            .config
            .sources
            .iter()
            .position(|s| s.path == cp.source)
            .or_else(|| {
                self.discovery.matchers().iter().position(|m| {
                    matches!(
                        m.classify(&cp.path),
                        crate::crawl_matcher::PathMatch::Crawl(_)
                    )
                })
            });
        let Some(source) = source else {
            tracing::warn!(path = %cp.path.display(), source = %cp.source, "dropping the checkpoint of a file no configured source matches any more");
            return Ok(());
        };
        match locate(&cp, None) {
            Some(loc) => {
                let moved = loc.path != cp.path;
                if moved {
                    self.events.rotation();
                    tracing::info!(path = %cp.path.display(), copy = %loc.path.display(), seq = cp.seq, offset = cp.offset, "reading the rest of a rotated file from its copy");
                }
                let mut f = self.follower_from(&cp, source, loc);
                f.rotated = cp.rotated || moved;
                self.wake.watch_parent(&f.path);
                self.followers.push(f);
            }
            None => {
                let lost = d
                    .seen
                    .map(|(size, _)| size.saturating_sub(cp.offset))
                    .unwrap_or(0);
                let truncated = std::fs::metadata(&cp.path)
                    .is_ok_and(|m| (m.dev(), m.ino()) == (cp.dev, cp.inode));
                if truncated {
                    self.events.rotation();
                    tracing::warn!(path = %cp.path.display(), seq = cp.seq, offset = cp.offset, "file was truncated or rewritten while not followed and no rotated copy holds the lines after the offset: they are lost; the file is read again from its start under a new seq");
                } else if lost > 0 || cp.rotated {
                    self.events.file_lost();
                    tracing::warn!(path = %cp.path.display(), seq = cp.seq, offset = cp.offset, "a file went away before it was read to its end and no rotated copy matches it: the lines after the offset are lost");
                } else {
                    tracing::info!(path = %cp.path.display(), seq = cp.seq, "file no longer exists; forgetting it");
                }
            }
        }
        Ok(())
    }

    fn follower_from(&self, cp: &FileCheckpoint, source: usize, loc: Located) -> FileFollower {
        let ctx = self.context(source, cp.crawl.clone(), &cp.path);
        let mut f = FileFollower::new(
            cp.path.clone(),
            loc.dev,
            loc.inode,
            cp.seq,
            cp.fingerprint,
            cp.offset,
            cp.tail,
            loc.input,
            ctx,
        );
        f.last_size = loc.size;
        // A head shorter than 256 bytes keeps growing from the stream, starting from the
        // bytes it already covers (checked against the checkpoint by `locate`).
        if usize::from(cp.fingerprint.len) < fingerprint::FINGERPRINT_BYTES
            && cp.offset == u64::from(cp.fingerprint.len)
            && let Some(file) = f.input().plain()
            && let Ok(prefix) = fingerprint::read_head(file, cp.offset)
            && Fingerprint::of(&prefix) == cp.fingerprint
        {
            f.collect_head(prefix);
        }
        f
    }

    /// The (device, inode) of every file followed, open or not. Built once per scan:
    /// looking each found path up in the lists instead made a scan quadratic in the
    /// number of files (20,000 files: 4e8 comparisons every discovery interval).
    fn known(&self) -> HashSet<(u64, u64)> {
        let mut known = HashSet::with_capacity_and_hasher(
            self.followers.len() + self.dormant.len(),
            Default::default(),
        );
        known.extend(
            self.followers
                .iter()
                .map(|f| (f.dev, f.inode))
                .chain(self.dormant.iter().map(|d| (d.cp.dev, d.cp.inode))),
        );
        known
    }

    fn discover(&mut self) -> Result<(), TailerError> {
        let every = Duration::from_millis(self.config.discovery_interval_ms);
        if self.last_discovery.is_some_and(|t| t.elapsed() < every) {
            return Ok(());
        }
        self.last_discovery = Some(Instant::now());
        let watch = QuietDirs {
            watching: &self.wake.watching,
            changed: &self.changed_dirs,
            lost: self.changed_dirs_lost,
        };
        let mut found = self.discovery.scan(&self.events, &watch);
        // What notify named is accounted for: the pass looked at those directories.
        self.changed_dirs.clear();
        self.changed_dirs_lost = false;
        if found.is_empty() {
            // Nothing listed anew: no need to build the sets below (20,000 paths hashed
            // each discovery interval).
            self.first_run = false;
            return Ok(());
        }
        if found.len() > FOUND_STAT_MAX {
            // A path already followed (and not rotated away) needs no stat here: if
            // another file has taken its place, the follower's own check or the dormant
            // check sees the new identity first and the path is found again next pass.
            // With a few paths found (a file created in a directory returns that
            // directory's files), a `stat` of each costs less than hashing every
            // followed path, and tells the same by device and inode below.
            // By the paths' bytes: every path here was made the same way (a directory
            // listing's entry joined to its directory), and hashing bytes costs a
            // fraction of hashing a `Path` component by component.
            let followed: HashSet<&std::ffi::OsStr> = self
                .followers
                .iter()
                .filter(|f| !f.rotated)
                .map(|f| f.path.as_os_str())
                .chain(
                    self.dormant
                        .iter()
                        .filter(|d| !d.cp.rotated)
                        .map(|d| d.cp.path.as_os_str()),
                )
                .collect();
            found.retain(|f| !followed.contains(f.path.as_os_str()));
        }
        let mut known = self.known();
        let mut assigned = false;
        let mut found = found.into_iter();
        while let Some(Found {
            path,
            source,
            crawl,
        }) = found.next()
        {
            let Ok(meta) = std::fs::metadata(&path) else {
                self.discovery.revisit(&path);
                continue;
            };
            if known.contains(&(meta.dev(), meta.ino())) {
                continue;
            }
            if self.open_slots() == 0 && !self.evict_one() {
                // No descriptor to spare: these are found again in a later pass.
                self.discovery.revisit(&path);
                for rest in found.by_ref() {
                    self.discovery.revisit(&rest.path);
                }
                break;
            }
            let at_end = self.first_run && self.config.sources[source].start_at == StartAt::End;
            let (file, meta, head, start, tail) = match open_new(&path, at_end) {
                Ok(opened) => opened,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot open a matching file; will retry");
                    self.discovery.revisit(&path);
                    continue;
                }
            };
            let seq = self.next_seq;
            self.next_seq += 1;
            assigned = true;
            known.insert((meta.dev(), meta.ino()));
            tracing::info!(path = %path.display(), seq, crawl = %crawl, inode = meta.ino(), "following a new file");
            let ctx = self.context(source, crawl, &path);
            let mut f = FileFollower::new(
                path,
                meta.dev(),
                meta.ino(),
                seq,
                head,
                start,
                tail,
                Input::Plain(file),
                ctx,
            );
            f.last_size = meta.len();
            if start == 0 {
                f.collect_head(Vec::new());
            }
            self.wake.watch_parent(&f.path);
            self.followers.push(f);
        }
        self.first_run = false;
        if assigned {
            // A seq is saved before its first event exists, so it is never handed out
            // twice; until it is (disk full), nothing is read.
            self.unsaved = true;
            self.save()?;
        }
        Ok(())
    }

    /// Checks and reads the open files. One that notify watches is skipped unless an
    /// event named it, it was last polled [`DORMANT_SWEEP_EVERY`] ago, or it needs
    /// looking at anyway (rotated, holding a record, failing, behind its size): without
    /// notify, or with `poll_all` (events were lost), every one is.
    fn read_all(&mut self, poll_all: bool) -> Result<bool, TailerError> {
        let mut busy = false;
        // Keys of files with more to read than one chunk.
        let mut more = Vec::new();
        // Notify names every write, rename and deletion in a watched directory (and says
        // when it lost events: `poll_all`), so a watched open file needs no look of its
        // own between events; the rare look is for what no event can miss by design
        // but a kernel could (as for closed files). A look is an `fstat`, a `stat` and a
        // `read`: once a discovery interval, 3,000 system calls a second for 1,024 open
        // files that did not change.
        let safety = DORMANT_SWEEP_EVERY;
        let now = Instant::now();
        let mut i = 0;
        while i < self.followers.len() {
            if self.followers[i].watched.is_none() {
                let watched = self.wake.covers(&self.followers[i].path);
                self.followers[i].watched = Some(watched);
            }
            let f = &self.followers[i];
            // Every follower of the path is named (a rotated one and its successor share
            // it): the keys are cleared after the pass.
            let named = !self.changed.is_empty() && self.changed.contains(&f.key);
            let skip = !poll_all
                && !named
                && !f.rotated
                && !f.done
                && !f.failing
                && !f.has_pending_record()
                && f.position() >= f.last_size
                && f.watched == Some(true)
                && now.saturating_duration_since(f.last_polled) < safety;
            if skip {
                i += 1;
                continue;
            }
            self.followers[i].last_polled = Instant::now();
            let size = self.check_file(i)?;
            let budget = self.config.read_chunk_bytes.max(1);
            let now_us = Utc::now().timestamp_micros();
            let f = &mut self.followers[i];
            let before = f.position();
            // A plain file no longer than what was read has nothing to read: a polled
            // file that did not grow costs its `fstat` and no `read`.
            let read = if size.is_some_and(|len| len <= before) && !f.failing {
                Ok(0)
            } else {
                f.read(
                    &mut self.scratch,
                    budget,
                    now_us,
                    &mut self.batch,
                    &self.events,
                )
            };
            let read = match read {
                Ok(n) => {
                    f.failing = false;
                    n
                }
                Err(e) => {
                    if matches!(f.input(), Input::Gzip(_)) {
                        // A corrupt archive will not get better: give up on the rest.
                        tracing::warn!(path = %f.path.display(), seq = f.seq, error = %e, "cannot decompress the rest of a rotated copy; its remaining lines are lost");
                        self.events.file_lost();
                        f.done = true;
                    } else if !f.failing {
                        tracing::warn!(path = %f.path.display(), error = %e, "cannot read file; retrying every cycle");
                    }
                    f.failing = true;
                    0
                }
            };
            if read as usize >= budget {
                busy = true;
                // More may be there: read on in the next cycle, event or not.
                more.push(f.key);
            }
            f.last_size = f.last_size.max(before + read);
            if read == 0 {
                let quiet = f.last_growth.elapsed();
                let linger = Duration::from_millis(self.config.rotated_linger_ms);
                if f.rotated && !f.done && quiet >= linger {
                    // Rotated away and quiet: nothing more can come, so the last line
                    // without `\n` is complete.
                    f.flush(true, now_us, &mut self.batch, &self.events)
                        .map_err(|e| TailerError::io("reading", f.path.clone(), e))?;
                    f.done = true;
                    tracing::debug!(path = %f.path.display(), seq = f.seq, "finished a rotated file");
                } else if f.has_pending_record()
                    && quiet >= Duration::from_millis(self.config.multiline_flush_ms)
                {
                    f.flush(false, now_us, &mut self.batch, &self.events)
                        .map_err(|e| TailerError::io("reading", f.path.clone(), e))?;
                }
            }
            if !self.batch.is_empty() {
                let crawl = self.followers[i].ctx.crawl.clone();
                if let Err(e) = self.spool.append(&crawl, &mut self.batch, Utc::now()) {
                    match e.storage_fault() {
                        Some((fault, path)) => {
                            self.events.disk.fault("tailer", path, fault);
                        }
                        None => {
                            tracing::warn!(error = %e, "cannot append to the spool: reading paused, retrying every poll interval");
                        }
                    }
                    self.retry = Some((crawl, std::mem::take(&mut self.batch)));
                    self.changed.extend(more);
                    return Ok(false);
                }
            }
            i += 1;
        }
        if !self.changed.is_empty() {
            for f in &self.followers {
                self.changed.remove(&f.key);
            }
        }
        self.changed.extend(more);
        Ok(busy)
    }

    /// Appends the batch an earlier append failed on (disk full). Until it succeeds
    /// nothing else is read and no offset moves, so nothing is checkpointed past it.
    fn retry_append(&mut self) -> bool {
        let Some((crawl, mut batch)) = self.retry.take() else {
            return true;
        };
        match self.spool.append(&crawl, &mut batch, Utc::now()) {
            Ok(()) => {
                tracing::debug!("spool writable again");
                true
            }
            Err(_) => {
                self.retry = Some((crawl, batch));
                false
            }
        }
    }

    /// Notices what happened to an open file since the last cycle. Returns the size of
    /// a plain file that is still at its path (`None`: read it to know).
    fn check_file(&mut self, i: usize) -> Result<Option<u64>, TailerError> {
        let f = &self.followers[i];
        if f.rotated || f.done {
            return Ok(None);
        }
        let Some(file) = f.input().plain() else {
            return Ok(None);
        };
        let fmeta = file
            .metadata()
            .map_err(|e| TailerError::io("reading file metadata", f.path.clone(), e))?;
        if fmeta.len() < f.position() || fmeta.len() < f.last_size {
            return self.truncated(i, fmeta.len()).map(|()| None);
        }
        // Truncated and written past the old position between two looks: the size alone
        // cannot tell, the bytes before the spooled offset can (one small pread, only
        // when the size changed).
        if fmeta.len() != f.last_size {
            let io = |e| TailerError::io("reading", f.path.clone(), e);
            let tail_ok = f.spooled_tail.len == 0
                || fingerprint::tail_of(file, f.spooled).map_err(io)? == Some(f.spooled_tail);
            // Nothing read yet has no tail: the head tells a rewrite from growth.
            if !tail_ok || !fingerprint::head_matches(file, &f.fingerprint).map_err(io)? {
                return self.truncated(i, fmeta.len()).map(|()| None);
            }
        }
        let gone = match std::fs::metadata(&f.path) {
            Ok(m) => (m.dev(), m.ino()) != (f.dev, f.inode),
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        };
        let f = &mut self.followers[i];
        // The largest size seen: a file shorter than that was truncated, read or not.
        f.last_size = f.last_size.max(fmeta.len());
        if gone || fmeta.nlink() == 0 {
            f.rotated = true;
            self.events.rotation();
            tracing::info!(path = %f.path.display(), seq = f.seq, inode = f.inode, "file rotated away or deleted: reading it to its end");
            return Ok(None);
        }
        Ok(Some(fmeta.len()))
    }

    /// The open file is shorter than the read position: copytruncate (or a rewrite).
    /// The lines after the position are looked for in a rotated copy under the same seq;
    /// the file itself starts over under a new seq.
    fn truncated(&mut self, i: usize, size: u64) -> Result<(), TailerError> {
        self.events.rotation();
        let f = &self.followers[i];
        let mut cp = f.checkpoint();
        cp.offset = f.spooled;
        cp.tail = f.spooled_tail;
        cp.rotated = true;
        let (durable, durable_tail, last_size, source) =
            (f.durable, f.durable_tail, f.last_size, f.ctx.source);
        match locate(&cp, Some((f.dev, f.inode))) {
            Some(loc) => {
                tracing::info!(path = %cp.path.display(), copy = %loc.path.display(), seq = cp.seq, offset = cp.offset, "file truncated (copytruncate): reading the rest from its copy");
                let mut old = self.follower_from(&cp, source, loc);
                old.rotated = true;
                old.durable = durable;
                old.durable_tail = durable_tail;
                self.followers.push(old);
            }
            None => {
                let window = last_size.saturating_sub(cp.offset);
                self.events.copytruncate_window(window);
                tracing::warn!(path = %cp.path.display(), seq = cp.seq, offset = cp.offset, lost_bytes = window, "file truncated and no copy holds the lines after the offset: they are lost");
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let f = &mut self.followers[i];
        f.restart_as(seq)
            .map_err(|e| TailerError::io("re-reading truncated file", f.path.clone(), e))?;
        f.last_size = size;
        tracing::info!(path = %f.path.display(), seq, "following the truncated file from its start under a new seq");
        self.save()
    }

    /// The entries of the open files kept in the state (a finished rotated copy whose
    /// offsets are durable is not).
    fn open_checkpoints(&self) -> Vec<FileCheckpoint> {
        self.followers
            .iter()
            .filter(|f| !(f.done && f.durable == f.spooled))
            .map(FileFollower::checkpoint)
            .collect()
    }

    fn state(&self) -> State {
        let mut files = self.open_checkpoints();
        files.extend(self.dormant.iter().map(|d| d.cp.clone()));
        files.sort_by(|a, b| (a.seq, &a.path).cmp(&(b.seq, &b.path)));
        State {
            version: STATE_VERSION,
            tailer_id: self.tailer_id,
            next_seq: self.next_seq,
            files,
            // The checkpointer numbers its own generations.
            generation: 0,
        }
    }

    /// Saves what changed since the last save. Only the open files' entries are made
    /// anew and compared; a closed file's entry cannot change, so once saved it is only
    /// looked up by seq (a new file's seq is saved this way twice a second while files
    /// appear: comparing 20,000 entries each time showed in the profile).
    fn save(&mut self) -> Result<(), TailerError> {
        for f in &mut self.followers {
            f.refresh_entry();
        }
        let files = self
            .followers
            .iter()
            .filter(|f| !(f.done && f.durable == f.spooled))
            .filter_map(FileFollower::entry)
            .chain(self.dormant.iter().map(|d| (&d.cp, d.saved)));
        self.checkpointer
            .save_files(self.tailer_id, self.next_seq, files)?;
        self.unsaved = false;
        for f in &mut self.followers {
            f.entry_saved();
        }
        for d in &mut self.dormant {
            d.saved = true;
        }
        Ok(())
    }

    fn save_if_changed(&mut self) -> Result<(), TailerError> {
        // Building the state to compare costs a copy of every file's checkpoint: do it at
        // most once a checkpoint interval (`fsync_interval_ms`), which is also what a
        // crash may re-read.
        let every = Duration::from_millis(self.config.fsync_interval_ms);
        if self.last_save_check.is_some_and(|t| t.elapsed() < every) {
            return Ok(());
        }
        self.last_save_check = Some(Instant::now());
        // Offsets not saved only cost a re-read after a crash; the next cycle tries again
        // rather than waiting for the next interval. Only what changed is written.
        self.unsaved = true;
        self.save()
    }
}

/// Up to this many paths found by a discovery pass are told from followed files by their
/// device and inode alone (a `stat` each); more (the first pass, a full rescan) are first
/// looked up by path.
const FOUND_STAT_MAX: usize = 64;

/// The share of the process's descriptor limit (`ulimit -n`) the reader may keep open for
/// followed files: the rest is for the spool, sockets, notify and, in `sluice up`, the
/// buck's segments and connections.
const OPEN_FILES_SHARE_OF_LIMIT: u64 = 2;

/// `max_open_files`, lowered (with a warning) to half the process's descriptor limit: past
/// that, opening a spool bucket or a socket would fail with EMFILE instead of a followed
/// file waiting its turn.
#[allow(unsafe_code)]
fn open_files_within_limit(configured: usize) -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the limit into `lim`, which lives across the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0
        || lim.rlim_cur == libc::RLIM_INFINITY
    {
        return configured;
    }
    let share = (lim.rlim_cur / OPEN_FILES_SHARE_OF_LIMIT).max(1);
    let share = usize::try_from(share).unwrap_or(usize::MAX);
    if configured > share {
        tracing::warn!(
            max_open_files = configured,
            nofile = lim.rlim_cur,
            "max_open_files is more than half the descriptor limit (ulimit -n): following at most {share} files open at once (idle ones are closed and reopened when they change); raise `ulimit -n` to open more"
        );
        share
    } else {
        configured
    }
}

/// Opens a newly found file positioned at its start (or its end, `at_end`), with its head
/// and the tail before that position.
fn open_new(
    path: &Path,
    at_end: bool,
) -> std::io::Result<(
    std::fs::File,
    std::fs::Metadata,
    Fingerprint,
    u64,
    Fingerprint,
)> {
    let mut file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    let start = if at_end { meta.len() } else { 0 };
    let head = fingerprint::head_of(&file)?;
    let tail = fingerprint::tail_of(&file, start)?.unwrap_or_default();
    FileFollower::seek_plain(&mut file, start)?;
    Ok((file, meta, head, start, tail))
}

/// Notify's view of directories for a discovery pass: a watched directory nothing was
/// named in since the last pass holds the names it held then.
struct QuietDirs<'a> {
    watching: &'a HashMap<OsString, Instant>,
    /// `path_key`s of directories events named (or named an entry of).
    changed: &'a HashSet<u64>,
    /// Events were lost: nothing is known to be quiet.
    lost: bool,
}

impl DirWatch for QuietDirs<'_> {
    fn unchanged_since(&self, dir: &Path, since: Instant) -> bool {
        !self.lost
            && self
                .watching
                .get(dir.as_os_str())
                .is_some_and(|from| *from <= since)
            && !self.changed.contains(&path_key(dir))
    }
}

fn needs_resume(d: &Dormant) -> bool {
    let Some((size, mtime)) = d.seen else {
        return true;
    };
    if d.cp.rotated {
        return true;
    }
    match std::fs::metadata(&d.cp.path) {
        Ok(m) => {
            (m.dev(), m.ino()) != (d.cp.dev, d.cp.inode)
                || m.len() != size
                || m.modified().ok() != Some(mtime)
        }
        Err(_) => true,
    }
}

/// The `app` of a file's events: configured, else `heritrix` for crawl logs, else the
/// file's name without its extension.
pub fn app_name(source: &SourceConfig, path: &Path) -> String {
    if let Some(app) = &source.app {
        return app.clone();
    }
    if source.format == SourceFormat::CrawlLog {
        return "heritrix".into();
    }
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "log".into())
}
