//! [`HistoryService`]: the requests, their builds, their expiry.
//!
//! State sits behind a `std::sync::Mutex`: every critical section is a few map
//! operations (never I/O or SQLite), so an async lock would only add overhead. Builds run
//! as tasks holding a permit of a semaphore of `concurrent_builds`; the SQLite work of a
//! build runs on blocking threads ([`IndexBuilder`]). The catalog is saved on every state
//! change, not on progress.
//!
//! A full disk is a wait, not a failure, for a request that has not started: below the
//! headroom (`min_free_bytes`, `min_free_percent`) on `work_dir` it stays `queued`, its
//! `message` says why, and the check is retried (1 s, doubling up to
//! `disk_retry_max_secs`). A build that meets a full or read-only disk midway fails with
//! a reason that names the path, and its partial files are removed. Both are one episode
//! of [`ArchieEvents::disk`] until space returns.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use contracts::CrawlId;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::catalog::{Catalog, RequestRecord, RequestState};
use crate::config::ArchieConfig;
use crate::error::ArchieError;
use crate::events::ArchieEvents;
use crate::index_builder::{BuildProgress, BuildSettings, IndexBuilder};
use crate::index_files::{IndexFiles, dir_bytes};
use crate::segment_source::{SegmentFile, SegmentSource, SourceProgress};

/// A build in progress: its counters and its stop switch.
struct LiveBuild {
    progress: Arc<BuildProgress>,
    cancel: CancellationToken,
}

#[derive(Default)]
struct State {
    requests: HashMap<String, RequestRecord>,
    live: HashMap<String, Arc<LiveBuild>>,
}

/// What a search needs to open an index.
#[derive(Debug, Clone)]
pub struct Searchable {
    /// The index files.
    pub files: IndexFiles,
    /// Seqs visible (the watermark while building).
    pub upto: i64,
    /// Whether the build is over.
    pub complete: bool,
    /// The request (for its range).
    pub record: RequestRecord,
}

/// The requests and their builds.
pub struct HistoryService {
    config: ArchieConfig,
    source: Arc<dyn SegmentSource>,
    events: Arc<ArchieEvents>,
    catalog: Catalog,
    state: Mutex<State>,
    builds: Arc<Semaphore>,
    /// One permit per SQL statement running (`sql_max_concurrent`).
    sql_slots: Arc<Semaphore>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// The free space kept on `work_dir`'s file system; starts as the config's.
    headroom: Mutex<disk_space::Headroom>,
}

/// Whether `crawl` matches `pattern`, where `*` stands for any run of characters.
pub fn crawl_matches(pattern: &str, crawl: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == crawl;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !crawl.starts_with(first) || crawl.len() < first.len() + last.len() || !crawl.ends_with(last)
    {
        return false;
    }
    let mut rest = &crawl[first.len()..crawl.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

fn check_crawl_spec(spec: &str) -> Result<(), ArchieError> {
    if spec.contains('*') {
        let probe = spec.replace('*', "x");
        CrawlId::parse(&probe).map_err(|e| {
            ArchieError::BadRequest(format!(
                "crawl pattern {spec:?}: {e} (with `*` as a wildcard)"
            ))
        })?;
    } else {
        CrawlId::parse(spec)
            .map_err(|e| ArchieError::BadRequest(format!("crawl {spec:?}: {e}")))?;
    }
    Ok(())
}

impl HistoryService {
    /// Loads the catalog, fails builds a restart interrupted, removes files no request
    /// owns, and returns the service.
    pub fn open(
        config: ArchieConfig,
        source: Arc<dyn SegmentSource>,
        events: Arc<ArchieEvents>,
        shutdown: CancellationToken,
    ) -> Result<Arc<HistoryService>, ArchieError> {
        std::fs::create_dir_all(&config.work_dir)
            .map_err(|e| ArchieError::io(&config.work_dir, e))?;
        let catalog = Catalog::new(&config.work_dir);
        let mut requests = HashMap::new();
        let now = Utc::now();
        for mut r in catalog.load()? {
            if r.state.is_building() {
                r.state = RequestState::Failed {
                    reason: "interrupted by a restart of archie; request the range again".into(),
                };
                r.expires_at = Some(now);
            }
            requests.insert(r.id.clone(), r);
        }
        // Directories of requests the catalog no longer knows (or knows as expired) are
        // left over from a crash between deleting and saving: remove them.
        if let Ok(rd) = std::fs::read_dir(&config.work_dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let is_request_dir = e.path().is_dir()
                    && name.len() == 16
                    && name.bytes().all(|b| b.is_ascii_hexdigit());
                let owned = requests
                    .get(&name)
                    .is_some_and(|r| !matches!(r.state, RequestState::Expired { .. }));
                if is_request_dir && !owned {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let svc = Arc::new(HistoryService {
            headroom: Mutex::new(config.headroom()),
            builds: Arc::new(Semaphore::new(config.concurrent_builds)),
            sql_slots: Arc::new(Semaphore::new(config.sql_max_concurrent)),
            config,
            source,
            events,
            catalog,
            state: Mutex::new(State {
                requests,
                live: HashMap::new(),
            }),
            shutdown,
            tasks: TaskTracker::new(),
        });
        svc.save()?;
        Ok(svc)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves maps that are still consistent (every
        // section is a handful of inserts): keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self) -> Result<(), ArchieError> {
        let mut all: Vec<RequestRecord> = self.lock().requests.values().cloned().collect();
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        self.catalog.save(&all)
    }

    /// [`save_logged`](Self::save_logged) on the blocking pool: the catalog is written
    /// and fsynced, which must not hold a runtime thread.
    async fn save_off_runtime(self: &Arc<Self>) {
        let svc = self.clone();
        let _ = tokio::task::spawn_blocking(move || svc.save_logged()).await;
    }

    fn save_logged(&self) {
        if let Err(e) = self.save() {
            tracing::error!(error = %e, "saving the archie catalog failed; state changes since the last save are lost on restart");
        }
    }

    fn request_dir(&self, id: &str) -> PathBuf {
        self.config.work_dir.join(id)
    }

    /// The index files of request `id`.
    pub fn index_files(&self, id: &str) -> IndexFiles {
        IndexFiles::new(
            self.request_dir(id).join("index"),
            self.config.index_threads,
        )
    }

    /// A slot to run one SQL statement in, or `Busy` past `sql_max_concurrent`.
    pub fn sql_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ArchieError> {
        self.sql_slots.clone().try_acquire_owned().map_err(|_| {
            ArchieError::Busy(format!(
                "{} sql statements are running (sql_max_concurrent): retry in a moment",
                self.config.sql_max_concurrent
            ))
        })
    }

    /// The headroom kept on `work_dir` now.
    pub fn headroom(&self) -> disk_space::Headroom {
        *self.headroom.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes the headroom kept on `work_dir` (tests; an operator's tool): requests
    /// waiting for space see it at their next check.
    pub fn set_headroom(&self, headroom: disk_space::Headroom) {
        *self.headroom.lock().unwrap_or_else(|p| p.into_inner()) = headroom;
    }

    /// The config.
    pub fn config(&self) -> &ArchieConfig {
        &self.config
    }

    /// The counters.
    pub fn events(&self) -> &Arc<ArchieEvents> {
        &self.events
    }

    /// Accepts a request, or returns the live one that covers it (`true` = reused).
    pub fn submit(
        self: &Arc<Self>,
        crawl: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<(RequestRecord, bool), ArchieError> {
        let checked = (|| {
            check_crawl_spec(crawl)?;
            if end <= start {
                return Err(ArchieError::BadRequest(format!(
                    "end {end} is not after start {start}"
                )));
            }
            let secs = (end - start).num_seconds();
            if secs as u64 > self.config.max_range_secs {
                return Err(ArchieError::BadRequest(format!(
                    "range of {secs} s is longer than the longest allowed, {} s (max_range_secs); split it",
                    self.config.max_range_secs
                )));
            }
            Ok(())
        })();
        if let Err(e) = checked {
            self.events.request_rejected();
            return Err(e);
        }
        let mut st = self.lock();
        if let Some(r) = st
            .requests
            .values()
            .filter(|r| r.covers(crawl, start, end))
            .min_by_key(|r| r.end - r.start)
        {
            let r = r.clone();
            drop(st);
            self.events.request(true);
            return Ok((self.fill_live(r), true));
        }
        let pending = st
            .requests
            .values()
            .filter(|r| r.state.is_building())
            .count();
        if pending >= self.config.max_pending_requests {
            drop(st);
            self.events.request_rejected();
            return Err(ArchieError::Busy(format!(
                "{pending} history requests are queued or building (max_pending_requests): retry when one is ready"
            )));
        }
        let id = loop {
            let id = format!("{:016x}", rand::random::<u64>());
            if !st.requests.contains_key(&id) {
                break id;
            }
        };
        let record = RequestRecord {
            id: id.clone(),
            name: format!(
                "{crawl} {}..{}",
                start.format("%Y-%m-%dT%H:%M:%SZ"),
                end.format("%Y-%m-%dT%H:%M:%SZ")
            ),
            crawl: crawl.to_owned(),
            crawls: Vec::new(),
            start,
            end,
            created_at: Utc::now(),
            state: RequestState::Queued,
            expires_at: None,
            events_indexed: 0,
            message: None,
            index_bytes: 0,
        };
        let live = Arc::new(LiveBuild {
            progress: Arc::new(BuildProgress::default()),
            cancel: self.shutdown.child_token(),
        });
        st.requests.insert(id.clone(), record.clone());
        st.live.insert(id.clone(), live.clone());
        drop(st);
        self.events.request(false);
        self.save_logged();
        let svc = self.clone();
        self.tasks
            .spawn(async move { svc.run_build(id, live).await });
        Ok((record, false))
    }

    /// Fills a building record's live figures (percent, events indexed).
    fn fill_live(&self, mut r: RequestRecord) -> RequestRecord {
        let live = self.lock().live.get(&r.id).cloned();
        if let Some(live) = live {
            let upto = live.progress.indexed_upto.load(Ordering::Acquire).max(0) as u64;
            r.events_indexed = upto;
            if let RequestState::Indexing {
                percent,
                events_total,
            } = &mut r.state
            {
                let total = live.progress.total.load(Ordering::Relaxed);
                *events_total = total;
                *percent = if total == 0 {
                    100.0
                } else {
                    (upto as f64 * 1000.0 / total as f64).round() / 10.0
                };
            }
        }
        r
    }

    /// The request `id`, with live progress.
    pub fn status(&self, id: &str) -> Result<RequestRecord, ArchieError> {
        let r = self
            .lock()
            .requests
            .get(id)
            .cloned()
            .ok_or_else(|| ArchieError::NotFound(id.to_owned()))?;
        Ok(self.fill_live(r))
    }

    /// Every request, newest first.
    pub fn list(&self) -> Vec<RequestRecord> {
        let mut all: Vec<RequestRecord> = self.lock().requests.values().cloned().collect();
        all.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        all.into_iter().map(|r| self.fill_live(r)).collect()
    }

    /// What a search of `id` may read, or why it cannot.
    pub fn searchable(&self, id: &str) -> Result<Searchable, ArchieError> {
        let r = self.status(id)?;
        let (upto, complete) = match &r.state {
            RequestState::Ready => (r.events_indexed as i64, true),
            RequestState::Indexing { .. } => (r.events_indexed as i64, false),
            RequestState::Queued | RequestState::Fetching { .. } => {
                return Err(ArchieError::NotSearchable(format!(
                    "history request {id} is still fetching its segments; search once it is indexing"
                )));
            }
            RequestState::Failed { reason } => {
                return Err(ArchieError::NotSearchable(format!(
                    "history request {id} failed: {reason}"
                )));
            }
            RequestState::Expired { reason } => {
                return Err(ArchieError::NotSearchable(format!(
                    "history request {id} expired ({reason}); request the range again"
                )));
            }
        };
        let files = self.index_files(id);
        if !files.events_path().exists() {
            return Err(ArchieError::NotSearchable(format!(
                "history request {id} is starting its index; search in a moment"
            )));
        }
        Ok(Searchable {
            files,
            upto,
            complete,
            record: r,
        })
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut RequestRecord)) {
        if let Some(r) = self.lock().requests.get_mut(id) {
            f(r);
        }
    }

    async fn run_build(self: Arc<Self>, id: String, live: Arc<LiveBuild>) {
        let permit = tokio::select! {
            p = self.builds.clone().acquire_owned() => p,
            _ = live.cancel.cancelled() => {
                let svc = self.clone();
                let cancelled = Err(ArchieError::Internal("cancelled before it started".into()));
                let _ = tokio::task::spawn_blocking(move || svc.finish(&id, cancelled, None)).await;
                return;
            }
        };
        let Ok(_permit) = permit else { return };
        // The slot is kept while waiting for space: every other build needs space too,
        // and the oldest request goes first once it returns.
        if !self.wait_for_space(&id, &live).await {
            let svc = self.clone();
            let cancelled = Err(ArchieError::Internal(
                "cancelled while waiting for disk space".into(),
            ));
            let _ =
                tokio::task::spawn_blocking(move || svc.finish(&id, cancelled, Some(&live))).await;
            return;
        }
        self.events.build_started();
        let result = tokio::select! {
            r = self.build(&id, &live) => r,
            _ = live.cancel.cancelled() => Err(ArchieError::Internal("cancelled".into())),
        };
        // Fetched copies are only an input: the index holds everything searches need.
        let segments = self.request_dir(&id).join("segments");
        let _ = tokio::fs::remove_dir_all(&segments).await;
        let ok = result.as_ref().map(|r| r.0).ok();
        self.events.build_finished(ok.is_some(), ok.unwrap_or(0));
        // Finishing removes trees and fsyncs the catalog: off the runtime.
        let svc = self.clone();
        let _ = tokio::task::spawn_blocking(move || svc.finish(&id, result, Some(&live))).await;
    }

    /// Waits until `work_dir` has the headroom, checking at 1 s, then at doubling waits
    /// up to `disk_retry_max_secs`; the request stays `queued` meanwhile, with a
    /// `message` saying why. Returns false if the request was cancelled (deleted, or
    /// archie stopping) while it waited.
    async fn wait_for_space(&self, id: &str, live: &LiveBuild) -> bool {
        let dir = self.config.work_dir.clone();
        let most = Duration::from_secs(self.config.disk_retry_max_secs.max(1));
        let mut wait = Duration::from_secs(1).min(most);
        let mut waited = false;
        loop {
            match self.headroom().check(&dir) {
                Ok(()) => {
                    if waited {
                        self.events.disk.resumed("archie");
                        self.update(id, |r| r.message = None);
                    }
                    return true;
                }
                Err(low) => {
                    // Logged once per episode, however many requests wait.
                    self.events.disk.paused("archie", &dir, &low.to_string());
                    if !waited {
                        let message = format!(
                            "waiting for disk space: {low} at {} ({} bytes free); the build starts by itself once there is room",
                            dir.display(),
                            low.available
                        );
                        self.update(id, |r| r.message = Some(message));
                        waited = true;
                    }
                }
            }
            tokio::select! {
                _ = live.cancel.cancelled() => return false,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(most);
        }
    }

    fn finish(
        &self,
        id: &str,
        result: Result<(u64, Option<String>), ArchieError>,
        live: Option<&LiveBuild>,
    ) {
        let now = Utc::now();
        let expires = now + chrono::Duration::seconds(self.config.expiry_secs as i64);
        let bytes = self.index_files(id).disk_bytes();
        let cancelled = live.is_some_and(|l| l.cancel.is_cancelled());
        // A full or read-only disk: the partial files go (they are what filled it, and
        // no search may read a half-built index), the episode is counted once.
        let fault = match &result {
            Err(e) if !cancelled => e.storage_fault(),
            _ => None,
        };
        if let Some((f, path)) = &fault {
            self.events.disk.fault("archie", path, *f);
        }
        if result.is_ok() {
            self.events.disk.resumed("archie");
        }
        let mut deleted = false;
        {
            let mut st = self.lock();
            st.live.remove(id);
            if let Some(r) = st.requests.get_mut(id) {
                // A request deleted while building is already expired: keep that, and
                // remove what the build wrote after the deletion.
                deleted = matches!(r.state, RequestState::Expired { .. });
                if !deleted {
                    match result {
                        Ok((n, message)) => {
                            r.state = RequestState::Ready;
                            r.events_indexed = n;
                            r.message = message;
                            r.index_bytes = bytes;
                        }
                        Err(e) => {
                            let reason = if cancelled && self.shutdown.is_cancelled() {
                                "archie shut down during the build; request the range again"
                                    .to_owned()
                            } else if let Some((f, path)) = &fault {
                                let what = match &e {
                                    ArchieError::Disk { .. } => e.to_string(),
                                    _ => format!("{} at {}: {e}", f.name(), path.display()),
                                };
                                format!(
                                    "{what}; its partial files were removed: request the range again once space returns"
                                )
                            } else {
                                e.to_string()
                            };
                            tracing::warn!(id, %reason, "history request failed");
                            r.state = RequestState::Failed { reason };
                            r.index_bytes = if fault.is_some() { 0 } else { bytes };
                        }
                    }
                    r.expires_at = Some(expires);
                }
            }
        }
        if deleted || fault.is_some() {
            let _ = std::fs::remove_dir_all(self.request_dir(id));
        }
        self.save_logged();
    }

    /// Fetches and indexes; returns the events indexed and a note for the user.
    async fn build(
        self: &Arc<Self>,
        id: &str,
        live: &Arc<LiveBuild>,
    ) -> Result<(u64, Option<String>), ArchieError> {
        let record = self.status(id)?;
        self.update(id, |r| {
            r.state = RequestState::Fetching {
                done: 0,
                total: 0,
                bytes: 0,
            }
        });
        let crawls: Vec<CrawlId> = if record.crawl.contains('*') {
            self.source
                .crawls()
                .await?
                .into_iter()
                .filter(|c| crawl_matches(&record.crawl, c.as_str()))
                .collect()
        } else {
            vec![
                CrawlId::parse(&record.crawl)
                    .map_err(|e| ArchieError::BadRequest(e.to_string()))?,
            ]
        };
        self.update(id, |r| {
            r.crawls = crawls.iter().map(|c| c.to_string()).collect()
        });
        self.save_off_runtime().await;
        if crawls.len() > self.config.max_crawls_per_request {
            return Err(ArchieError::BadRequest(format!(
                "{:?} matches {} crawls, more than one request may cover (max_crawls_per_request = {}): use a narrower pattern",
                record.crawl,
                crawls.len(),
                self.config.max_crawls_per_request
            )));
        }
        let max_bytes = self.config.max_fetch_bytes;
        // Set by the progress callback once the fetched bytes pass `max_fetch_bytes`; the
        // fetch in flight is dropped at once.
        let over_budget = CancellationToken::new();
        let seg_dir = self.request_dir(id).join("segments");
        let mut segments: Vec<SegmentFile> = Vec::new();
        let (mut done_before, mut total_before, mut bytes_before) = (0usize, 0usize, 0u64);
        for crawl in &crawls {
            let svc = self.clone();
            let rid = id.to_owned();
            let over = over_budget.clone();
            let progress = move |p: SourceProgress| {
                if bytes_before + p.bytes > max_bytes {
                    over.cancel();
                }
                svc.update(&rid, |r| {
                    r.state = RequestState::Fetching {
                        done: done_before + p.done,
                        total: total_before + p.total,
                        bytes: bytes_before + p.bytes,
                    }
                })
            };
            let dest = seg_dir.join(crawl.as_str());
            let fetching = self
                .source
                .fetch(crawl, record.start, record.end, &dest, &progress);
            let got = tokio::select! {
                got = fetching => got?,
                _ = over_budget.cancelled() => Vec::new(),
            };
            if over_budget.is_cancelled() {
                return Err(ArchieError::BadRequest(format!(
                    "{} from {} to {} needs more than max_fetch_bytes ({max_bytes} bytes) of segments: request a shorter range or fewer crawls",
                    record.crawl,
                    record.start.to_rfc3339(),
                    record.end.to_rfc3339()
                )));
            }
            let bytes: u64 = got.iter().map(|s| s.bytes).sum();
            self.events.fetched(got.len() as u64, bytes);
            done_before += got.len();
            total_before += got.len();
            bytes_before += bytes;
            segments.extend(got);
        }
        let message = if crawls.is_empty() {
            Some(format!(
                "no crawl matches {:?} in {}",
                record.crawl,
                self.source.describe()
            ))
        } else if segments.is_empty() {
            Some(format!(
                "no segments cover {} from {} to {} in {}: check the crawl id and the range",
                record.crawl,
                record.start.to_rfc3339(),
                record.end.to_rfc3339(),
                self.source.describe()
            ))
        } else {
            None
        };
        self.update(id, |r| {
            r.state = RequestState::Indexing {
                percent: 0.0,
                events_total: 0,
            }
        });
        self.save_off_runtime().await;
        let files = self.index_files(id);
        let settings = BuildSettings {
            threads: self.config.index_threads,
            batch_events: self.config.index_batch_events,
        };
        let (progress, cancel) = (live.progress.clone(), live.cancel.clone());
        let (from_us, to_us) = (
            record.start.timestamp_micros(),
            record.end.timestamp_micros(),
        );
        let report = tokio::task::spawn_blocking(move || {
            IndexBuilder::new(&files, settings, progress, cancel).build(&segments, from_us, to_us)
        })
        .await
        .map_err(|e| ArchieError::Internal(format!("index build task: {e}")))??;
        let message = message.or_else(|| {
            (report.events == 0).then(|| {
                format!(
                    "the segments of {} hold no events from {} to {}",
                    record.crawl,
                    record.start.to_rfc3339(),
                    record.end.to_rfc3339()
                )
            })
        });
        Ok((report.events, message))
    }

    /// Deletes request `id`'s files now (its state becomes `expired`).
    pub fn delete(&self, id: &str) -> Result<RequestRecord, ArchieError> {
        let live = {
            let mut st = self.lock();
            let r = st
                .requests
                .get_mut(id)
                .ok_or_else(|| ArchieError::NotFound(id.to_owned()))?;
            r.state = RequestState::Expired {
                reason: "deleted on request".into(),
            };
            r.expires_at = Some(Utc::now());
            st.live.get(id).cloned()
        };
        if let Some(l) = live {
            l.cancel.cancel();
        }
        let _ = std::fs::remove_dir_all(self.request_dir(id));
        self.save_logged();
        self.status(id)
    }

    /// One pass of the reaper: deletes expired indexes, then the oldest ready ones while
    /// the disk budget is exceeded, and forgets records expired for longer than
    /// `expiry_secs`. Blocking (file deletion): run it off the runtime.
    pub fn reap_once(&self) {
        let now = Utc::now();
        let expiry = chrono::Duration::seconds(self.config.expiry_secs as i64);
        let mut to_delete = Vec::new();
        let mut changed = false;
        let total_bytes;
        {
            let mut st = self.lock();
            let mut forget = Vec::new();
            for r in st.requests.values_mut() {
                match (&r.state, r.expires_at) {
                    (RequestState::Expired { .. }, Some(t)) if t + expiry <= now => {
                        forget.push(r.id.clone())
                    }
                    (s, Some(t))
                        if !s.is_building()
                            && !matches!(s, RequestState::Expired { .. })
                            && t <= now =>
                    {
                        r.state = RequestState::Expired {
                            reason: format!("expired at {}", t.to_rfc3339()),
                        };
                        to_delete.push((r.id.clone(), false));
                    }
                    _ => {}
                }
            }
            for id in forget {
                st.requests.remove(&id);
                changed = true;
            }
            let mut ready: Vec<&mut RequestRecord> = st
                .requests
                .values_mut()
                .filter(|r| matches!(r.state, RequestState::Ready))
                .collect();
            ready.sort_by_key(|r| r.created_at);
            let mut total: u64 = ready.iter().map(|r| r.index_bytes).sum();
            for r in ready {
                if total <= self.config.disk_budget_bytes {
                    break;
                }
                total -= r.index_bytes;
                r.state = RequestState::Expired {
                    reason: format!(
                        "evicted: indexes passed the disk budget of {} bytes (disk_budget_bytes); oldest go first",
                        self.config.disk_budget_bytes
                    ),
                };
                r.expires_at = Some(now);
                to_delete.push((r.id.clone(), true));
            }
            total_bytes = total;
        }
        self.events.set_index_bytes(total_bytes);
        for (id, evicted) in &to_delete {
            let dir = self.request_dir(id);
            if let Err(e) = std::fs::remove_dir_all(&dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %dir.display(), error = %e, "could not delete an expired index; trying again next pass");
            }
            self.events.expired(*evicted);
            tracing::info!(id, evicted, "history index deleted");
        }
        if changed || !to_delete.is_empty() {
            self.save_logged();
        }
        // An episode no request is waiting out (a build failed on a full disk and took its
        // files with it) ends once the headroom is there again; while a request waits,
        // this check fails as its own does.
        if self.events.disk.active() == 1 && self.headroom().check(&self.config.work_dir).is_ok() {
            self.events.disk.resumed("archie");
        }
    }

    /// Runs the reaper every `reap_interval_secs` until shutdown.
    pub async fn reaper(self: Arc<Self>) {
        let every = Duration::from_secs(self.config.reap_interval_secs);
        loop {
            let svc = self.clone();
            let _ = tokio::task::spawn_blocking(move || svc.reap_once()).await;
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    /// Waits for every build task to end (after shutdown).
    pub async fn wait_builds(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Size on disk of request `id`'s directory.
    pub fn request_bytes(&self, id: &str) -> u64 {
        dir_bytes(&self.request_dir(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crawl_patterns() {
        assert!(crawl_matches("crawl-*", "crawl-1"));
        assert!(crawl_matches("*", "anything"));
        assert!(crawl_matches("a*b*c", "a-x-b-y-c"));
        assert!(!crawl_matches("a*b*c", "a-x-c"));
        assert!(!crawl_matches("crawl-1", "crawl-10"));
        assert!(!crawl_matches("ab*ba", "aba"));
        assert!(check_crawl_spec("crawl-*").is_ok());
        assert!(check_crawl_spec("../x").is_err());
    }
}
