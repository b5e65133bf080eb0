//! The archive run: find the closed segments old enough to archive on every buck, merge
//! each one's replicas, upload object then manifest, verify, and tell the bucks.
//!
//! Every step is idempotent, so any number of porters may run at once and a porter killed
//! at any point can simply run again: work files have unique names, puts are create-only,
//! the manifest goes last (its presence means the object is complete and verified), an
//! object or manifest found already in place is accepted when its ids hash equals ours,
//! and the bucks are told only after the manifest is in place.
//!
//! A full disk is a pause, not a failure: before a run and before each step that writes a
//! temporary file, `work_dir`'s file system is measured against the headroom
//! (`min_free_bytes`, `min_free_percent`), and a write that meets ENOSPC, EDQUOT or EROFS
//! is recognised as such. Either defers the segment (and every segment the run has not
//! started) to the next run: nothing counts as failed, the attempt's files are removed,
//! an object uploaded but not verified is deleted, and the episode is logged once and
//! counted in [`PorterEvents::disk`].

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use contracts::{ClusterFile, CrawlId};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::archive_store::ArchiveStore;
use crate::buck_client::{ArchivedNotice, BuckClient, SegmentState};
use crate::config::PorterConfig;
use crate::error::{PorterError, StoreErrorKind};
use crate::events::PorterEvents;
use crate::manifest::{Manifest, manifest_key, object_key};
use crate::object_codec;
use crate::segment_merge;

/// What one archive run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveReport {
    /// Segments that were due for archiving.
    pub candidates: usize,
    /// Segments this run uploaded.
    pub archived: usize,
    /// Segments found already archived with the same content (bucks told again).
    pub already_archived: usize,
    /// Segments that failed, with the error: tried again next run.
    pub failed: Vec<(String, String)>,
    /// Why the run left work for a later run because `work_dir`'s file system was full,
    /// read-only or below its headroom (`None` when it did not).
    pub deferred: Option<String>,
    /// Segments left for a later run for that reason (not failed).
    pub segments_deferred: usize,
    /// Bucks that did not list their segments; nothing was archived while one is missing,
    /// since it may hold a replica.
    pub unreachable_bucks: Vec<String>,
    /// Events in the segments this run uploaded.
    pub events: u64,
    /// Uncompressed bytes of the segments this run uploaded.
    pub segment_bytes: u64,
    /// Compressed bytes uploaded.
    pub object_bytes: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// A segment due for archiving and the bucks that hold a replica of it.
#[derive(Debug, Clone)]
struct Candidate {
    crawl: CrawlId,
    day: NaiveDate,
    part: u32,
    name: String,
    replicas: Vec<BuckClient>,
}

impl Candidate {
    fn label(&self) -> String {
        format!("{}/{}", self.crawl.as_str(), self.name)
    }
}

/// (day, part, crawl): sorts oldest first.
type SegmentKey = (NaiveDate, u32, String);
/// (name, bucks listing it, their states).
type Holders = (String, Vec<BuckClient>, Vec<SegmentState>);

enum Outcome {
    Archived(Box<Manifest>),
    AlreadyArchived,
    /// Not started: the run is deferring for a full disk.
    Skipped,
}

/// Checks that `work_dir`'s file system has the headroom for more temporary files.
/// Measured before each step that writes one, so a run stops taking space before the
/// disk is full, not after.
fn check_space(config: &PorterConfig) -> Result<(), PorterError> {
    config
        .headroom()
        .check(&config.work_dir)
        .map_err(|low| PorterError::LowSpace {
            path: config.work_dir.clone(),
            low,
        })
}

/// Runs one archive pass with the store `config.archive` names.
pub async fn archive_once(
    config: &PorterConfig,
    progress: bool,
    events: Arc<PorterEvents>,
) -> Result<ArchiveReport, PorterError> {
    let store = crate::open_store(&config.archive, config)?;
    archive_with_store(config, store, progress, events).await
}

/// Runs one archive pass against a given store (tests, or a store already open).
pub async fn archive_with_store(
    config: &PorterConfig,
    store: Arc<dyn ArchiveStore>,
    progress: bool,
    events: Arc<PorterEvents>,
) -> Result<ArchiveReport, PorterError> {
    let started = Instant::now();
    let work_dir = config.work_dir.clone();
    // Litter of killed runs; failures here only leave it for the next run.
    let _ = tokio::task::spawn_blocking(move || remove_stale_work(&work_dir)).await;
    let cluster = ClusterFile::load(&config.cluster_file)?;
    let mut report = ArchiveReport::default();
    let (candidates, unreachable) = find_candidates(config, &cluster, Utc::now(), &events).await?;
    report.candidates = candidates.len();
    if !unreachable.is_empty() {
        tracing::warn!(bucks = ?unreachable, due = candidates.len(), "bucks did not answer; archiving postponed until every buck lists its segments");
        events.segments_postponed(candidates.len() as u64);
        report.unreachable_bucks = unreachable;
        events.run_finished(false);
        report.elapsed = started.elapsed();
        return Ok(report);
    }
    // The work directory exists before it is measured (statvfs of a missing directory
    // says nothing), and a disk too full to create it defers the run like a low one.
    let space = match tokio::fs::create_dir_all(&config.work_dir).await {
        Ok(()) => check_space(config),
        Err(e) => Err(PorterError::io(&config.work_dir, e)),
    };
    if let Err(e) = space {
        let Some((path, why)) = e.disk_full() else {
            return Err(e);
        };
        events.disk.paused("porter", &path, &why);
        events.segments_deferred(candidates.len() as u64);
        report.segments_deferred = candidates.len();
        report.deferred = Some(e.to_string());
        report.elapsed = started.elapsed();
        events.run_finished(true);
        tracing::info!(due = candidates.len(), reason = %e, "archive run deferred until the work directory has space");
        return Ok(report);
    }
    let bar = progress_bar(progress, candidates.len());
    let limit = Arc::new(Semaphore::new(config.parallelism.max(1)));
    // Set by the first segment that meets a full disk: the segments not started yet wait
    // for the next run rather than each filling the disk again.
    let disk_full = Arc::new(AtomicBool::new(false));
    let mut tasks = JoinSet::new();
    // Oldest first: candidates are sorted by (day, part, crawl), and a task starts only
    // when it gets a permit, so the oldest segments take the first permits.
    for c in candidates {
        let permit = match limit.clone().acquire_owned().await {
            Ok(p) => p,
            Err(_) => break,
        };
        let (store, events, config) = (store.clone(), events.clone(), config.clone());
        let disk_full = disk_full.clone();
        tasks.spawn(async move {
            let label = c.label();
            let result = if disk_full.load(Ordering::Relaxed) {
                Ok(Outcome::Skipped)
            } else {
                archive_segment(&config, store.as_ref(), &events, &c).await
            };
            if matches!(&result, Err(e) if e.disk_full().is_some()) {
                disk_full.store(true, Ordering::Relaxed);
            }
            drop(permit);
            (label, result)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (label, result) = match joined {
            Ok(r) => r,
            Err(e) => (
                "(task)".to_string(),
                Err(PorterError::segment(
                    "(task)",
                    format!("archive task failed: {e}"),
                )),
            ),
        };
        match result {
            Ok(Outcome::Archived(m)) => {
                report.archived += 1;
                report.events += m.events;
                report.segment_bytes += m.file_bytes;
                report.object_bytes += m.object_bytes;
            }
            Ok(Outcome::AlreadyArchived) => report.already_archived += 1,
            Ok(Outcome::Skipped) => {
                events.segments_deferred(1);
                report.segments_deferred += 1;
            }
            Err(e) if e.disk_full().is_some() => {
                if let Some((path, why)) = e.disk_full() {
                    // Logged once per episode, not once per segment.
                    events.disk.paused("porter", &path, &why);
                }
                events.segments_deferred(1);
                report.segments_deferred += 1;
                tracing::debug!(segment = %label, error = %e, "segment deferred to the next run: work directory disk");
                report.deferred.get_or_insert_with(|| e.to_string());
            }
            Err(e) => {
                events.segment_failed();
                tracing::error!(segment = %label, error = %e, "segment not archived; will retry next run");
                report.failed.push((label, e.to_string()));
            }
        }
        if let Some(b) = &bar {
            b.inc(1);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    report.elapsed = started.elapsed();
    // A run that found space for everything it tried ends an episode (the failures left
    // are not the disk's).
    if report.deferred.is_none() {
        events.disk.resumed("porter");
    }
    events.run_finished(report.failed.is_empty());
    tracing::info!(
        candidates = report.candidates,
        archived = report.archived,
        already = report.already_archived,
        failed = report.failed.len(),
        deferred = report.segments_deferred,
        events = report.events,
        object_bytes = report.object_bytes,
        secs = report.elapsed.as_secs_f64(),
        "archive run finished"
    );
    Ok(report)
}

fn progress_bar(wanted: bool, n: usize) -> Option<indicatif::ProgressBar> {
    if !wanted || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(n as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "archiving [{bar:40}] {pos}/{len} segments, {elapsed}",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}

/// Lists every buck's segments and picks the due ones, oldest first.
async fn find_candidates(
    config: &PorterConfig,
    cluster: &ClusterFile,
    now: DateTime<Utc>,
    events: &PorterEvents,
) -> Result<(Vec<Candidate>, Vec<String>), PorterError> {
    let timeout = Duration::from_secs(config.buck_timeout_secs);
    let clients: Vec<BuckClient> = cluster
        .bucks
        .iter()
        .map(|b| BuckClient::new(&b.id, &b.http_url, timeout, config.buck_token.as_deref()))
        .collect::<Result<_, _>>()?;
    let listings = futures::future::join_all(clients.iter().map(|c| c.list_segments())).await;
    let mut unreachable = Vec::new();
    // (day, part, crawl) -> (name, replicas, states)
    let mut by_segment: BTreeMap<SegmentKey, Holders> = BTreeMap::new();
    for (client, listing) in clients.iter().zip(listings) {
        let listing = match listing {
            Ok(l) => l,
            Err(e) => {
                events.buck_error();
                tracing::warn!(buck = %client.id, error = %e, "buck did not list its segments");
                unreachable.push(client.id.clone());
                continue;
            }
        };
        for s in listing {
            let entry = by_segment
                .entry((s.day, s.part, s.crawl.clone()))
                .or_insert_with(|| (s.name.clone(), Vec::new(), Vec::new()));
            entry.1.push(client.clone());
            entry.2.push(s.state);
        }
    }
    let age = chrono::Duration::seconds(
        i64::try_from(config.archive_age_secs).unwrap_or(i64::MAX / 1_000_000),
    );
    let mut out = Vec::new();
    for ((day, part, crawl), (name, replicas, states)) in by_segment {
        let Ok(crawl) = CrawlId::parse(&crawl) else {
            tracing::warn!(crawl = %crawl, "a buck lists a segment with an invalid crawl id; skipped");
            continue;
        };
        let Some(day_end) = day
            .succ_opt()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc())
        else {
            continue;
        };
        let due = day_end + age <= now;
        let closed = states.iter().all(|s| *s != SegmentState::Open);
        let all_archived = states.iter().all(|s| *s == SegmentState::Archived);
        if due && closed && !all_archived {
            out.push(Candidate {
                crawl,
                day,
                part,
                name,
                replicas,
            });
        }
    }
    Ok((out, unreachable))
}

/// Attempt directories older than this are left from a killed run (an attempt takes
/// minutes, and the timeouts bound it well below a day).
const STALE_WORK: Duration = Duration::from_secs(86_400);

/// Removes `work_dir/<crawl>/<attempt>` directories older than [`STALE_WORK`].
fn remove_stale_work(work_dir: &Path) {
    let Ok(crawls) = std::fs::read_dir(work_dir) else {
        return;
    };
    for crawl in crawls.flatten() {
        let Ok(attempts) = std::fs::read_dir(crawl.path()) else {
            continue;
        };
        for a in attempts.flatten() {
            let old = a
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_WORK);
            if old {
                tracing::info!(dir = %a.path().display(), "removing work files of a killed run");
                let _ = std::fs::remove_dir_all(a.path());
            }
        }
    }
}

/// A fresh work directory for one attempt, unique so that two porters (or a restarted
/// one) sharing a work dir never touch each other's files.
fn attempt_dir(config: &PorterConfig, c: &Candidate) -> PathBuf {
    let tag: u64 = rand::random();
    config
        .work_dir
        .join(c.crawl.as_str())
        .join(format!("{}.{tag:016x}", c.name))
}

async fn archive_segment(
    config: &PorterConfig,
    store: &dyn ArchiveStore,
    events: &PorterEvents,
    c: &Candidate,
) -> Result<Outcome, PorterError> {
    check_space(config)?;
    let dir = attempt_dir(config, c);
    let result = match tokio::fs::create_dir_all(&dir).await {
        Ok(()) => archive_in(config, store, events, c, &dir).await,
        Err(e) => Err(PorterError::io(&dir, e)),
    };
    // Work files are scratch: a failed removal only leaves litter for the next cleanup.
    let _ = tokio::fs::remove_dir_all(&dir).await;
    result
}

async fn archive_in(
    config: &PorterConfig,
    store: &dyn ArchiveStore,
    events: &PorterEvents,
    c: &Candidate,
    dir: &Path,
) -> Result<Outcome, PorterError> {
    let label = c.label();
    // Every replica must answer: archiving without one could lose the rows only it has.
    let mut replica_files = Vec::new();
    for (i, buck) in c.replicas.iter().enumerate() {
        check_space(config)?;
        let path = dir.join(format!("replica-{i}.sqlite"));
        if let Err(e) = buck.download(c.crawl.as_str(), &c.name, &path).await {
            // A full disk here is ours, not the buck's.
            if e.disk_full().is_none() {
                events.buck_error();
            }
            return Err(e);
        }
        replica_files.push(path);
    }
    check_space(config)?;
    let merged = dir.join("merged.sqlite");
    let object = dir.join("object.z");
    let (summary, packed, own) = {
        let (label2, merged, object) = (label.clone(), merged.clone(), object.clone());
        tokio::task::spawn_blocking(move || {
            // Each buck's own copy, so that it can tell later whether it changed since.
            let own = replica_files
                .iter()
                .map(|f| segment_merge::summarize(&label2, f))
                .collect::<Result<Vec<_>, _>>()?;
            let summary = segment_merge::merge_replicas(&label2, &replica_files, &merged)?;
            let packed = object_codec::compress(&merged, &object)
                .map_err(|e| PorterError::io(&object, e))?;
            Ok::<_, PorterError>((summary, packed, own))
        })
        .await
        .map_err(|e| PorterError::segment(&label, format!("merge task failed: {e}")))??
    };
    let okey = object_key(&c.crawl, c.day, c.part);
    let mkey = manifest_key(&c.crawl, c.day, c.part);
    let replicas: Vec<String> = c.replicas.iter().map(|b| b.id.clone()).collect();
    let mut manifest = Manifest::of_packed_segment(
        &c.crawl,
        c.day,
        c.part,
        &summary,
        packed,
        replicas,
        Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );

    // 1. A manifest in place means a complete, verified archive: same ids, done.
    if let Some(existing) = read_manifest(store, &mkey).await? {
        check_same(events, &mkey, &existing, &manifest)?;
        verify_object(store, events, &existing, dir).await?;
        notify(events, c, &own, &existing).await?;
        events.segment_already_archived();
        return Ok(Outcome::AlreadyArchived);
    }

    // 2. The object, create-only. One already there (another porter's, or ours from a run
    //    killed before its manifest) is adopted if it holds the same events. Reading it
    //    back (or the one found) needs its size again in `dir`: measured first, so a low
    //    disk defers before anything is uploaded.
    check_space(config)?;
    let mut uploaded = false;
    match store.put_file(&okey, &object).await {
        Ok(()) => uploaded = true,
        Err(e) if e.kind == StoreErrorKind::AlreadyExists => {
            adopt_existing_object(store, events, &mut manifest, dir).await?;
        }
        Err(e) => return Err(e.into()),
    }

    // 3. Read it back before anything depends on it.
    if let Err(e) = verify_object(store, events, &manifest, dir).await {
        if uploaded {
            // Ours and wrong: remove it so that the next run uploads it again.
            let _ = store.delete(&okey).await;
        }
        return Err(e);
    }

    // 4. The manifest, create-only, last.
    match store
        .put_bytes(&mkey, Bytes::from(manifest.to_json()))
        .await
    {
        Ok(()) => {}
        Err(e) if e.kind == StoreErrorKind::AlreadyExists => {
            // Another porter finished first: fine if it archived the same events.
            let existing =
                read_manifest(store, &mkey)
                    .await?
                    .ok_or_else(|| PorterError::Missing {
                        segment: label.clone(),
                        message: format!(
                            "manifest {mkey} was reported to exist, then could not be read"
                        ),
                    })?;
            check_same(events, &mkey, &existing, &manifest)?;
            notify(events, c, &own, &existing).await?;
            events.segment_already_archived();
            return Ok(Outcome::AlreadyArchived);
        }
        Err(e) => return Err(e.into()),
    }
    notify(events, c, &own, &manifest).await?;
    events.segment_archived(manifest.events, manifest.file_bytes, manifest.object_bytes);
    tracing::info!(segment = %label, events = manifest.events, object_bytes = manifest.object_bytes, "segment archived");
    Ok(Outcome::Archived(Box::new(manifest)))
}

async fn read_manifest(
    store: &dyn ArchiveStore,
    key: &str,
) -> Result<Option<Manifest>, PorterError> {
    match store.get_bytes(key).await {
        Ok(data) => Manifest::from_json(key, &data)
            .map(Some)
            .map_err(|message| PorterError::Corrupt {
                key: key.to_string(),
                message,
            }),
        Err(e) if e.kind == StoreErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn check_same(
    events: &PorterEvents,
    key: &str,
    existing: &Manifest,
    ours: &Manifest,
) -> Result<(), PorterError> {
    if existing.ids_sha256 == ours.ids_sha256 {
        return Ok(());
    }
    events.conflict();
    tracing::error!(key, existing = %existing.ids_sha256, ours = %ours.ids_sha256, "ALERT: archive holds a different segment under this key; not overwritten");
    Err(PorterError::Conflict {
        key: key.to_string(),
        existing: existing.ids_sha256.clone(),
        ours: ours.ids_sha256.clone(),
    })
}

/// An object is at our key but no manifest: download and inflate it; if its ids hash is
/// ours, describe it (its bytes, not ours) in the manifest, else raise the alert.
async fn adopt_existing_object(
    store: &dyn ArchiveStore,
    events: &PorterEvents,
    manifest: &mut Manifest,
    dir: &Path,
) -> Result<(), PorterError> {
    let key = manifest.object_key.clone();
    let z = dir.join("existing.z");
    let db = dir.join("existing.sqlite");
    store.get_to_file(&key, &z).await?;
    let (k, z2, db2) = (key.clone(), z.clone(), db.clone());
    let (object, file, summary) = tokio::task::spawn_blocking(move || {
        let object = object_codec::sha256_file(&z2).map_err(|e| PorterError::io(&z2, e))?;
        let file = object_codec::inflate(&z2, &db2).map_err(|e| {
            // A full or read-only disk under the inflated copy is not the object's fault.
            if disk_space::StorageFault::of(&e).is_some() {
                PorterError::io(&db2, e)
            } else {
                PorterError::Corrupt {
                    key: k.clone(),
                    message: format!("does not inflate: {e}"),
                }
            }
        })?;
        let summary = segment_merge::summarize(&k, &db2).map_err(|e| PorterError::Corrupt {
            key: k.clone(),
            message: e.to_string(),
        })?;
        Ok::<_, PorterError>((object, file, summary))
    })
    .await
    .map_err(|e| PorterError::segment(&key, format!("inspect task failed: {e}")))??;
    if summary.ids_sha256 != manifest.ids_sha256 {
        events.conflict();
        tracing::error!(key = %key, existing = %summary.ids_sha256, ours = %manifest.ids_sha256, "ALERT: archive holds a different object under this key and no manifest; not overwritten");
        return Err(PorterError::Conflict {
            key,
            existing: summary.ids_sha256,
            ours: manifest.ids_sha256.clone(),
        });
    }
    manifest.object_sha256 = object.0;
    manifest.object_bytes = object.1;
    manifest.file_sha256 = file.0;
    manifest.file_bytes = file.1;
    Ok(())
}

/// Reads the object back and checks its size and sha256 against the manifest.
async fn verify_object(
    store: &dyn ArchiveStore,
    events: &PorterEvents,
    manifest: &Manifest,
    dir: &Path,
) -> Result<(), PorterError> {
    let key = &manifest.object_key;
    let size = store.size(key).await?;
    if size != manifest.object_bytes {
        events.corrupt_object();
        return Err(PorterError::Corrupt {
            key: key.clone(),
            message: format!("{size} bytes, manifest says {}", manifest.object_bytes),
        });
    }
    let check = dir.join("verify.z");
    store.get_to_file(key, &check).await?;
    let c2 = check.clone();
    let (sha, n) = tokio::task::spawn_blocking(move || object_codec::sha256_file(&c2))
        .await
        .map_err(|e| PorterError::segment(key.as_str(), format!("verify task failed: {e}")))?
        .map_err(|e| PorterError::io(&check, e))?;
    let _ = tokio::fs::remove_file(&check).await;
    if sha != manifest.object_sha256 || n != manifest.object_bytes {
        events.corrupt_object();
        return Err(PorterError::Corrupt {
            key: key.clone(),
            message: format!(
                "read back sha256 {sha} ({n} bytes), manifest says {} ({} bytes)",
                manifest.object_sha256, manifest.object_bytes
            ),
        });
    }
    Ok(())
}

/// Tells every replica's buck that the segment is archived, with the hash of the archived
/// union and of that buck's own copy as downloaded.
async fn notify(
    events: &PorterEvents,
    c: &Candidate,
    own: &[segment_merge::SegmentSummary],
    manifest: &Manifest,
) -> Result<(), PorterError> {
    let mut first_err = None;
    for (buck, own) in c.replicas.iter().zip(own) {
        let notice = ArchivedNotice {
            ids_sha256: own.ids_sha256.clone(),
            rows: own.events,
            archive_key: manifest.object_key.clone(),
            archive_ids_sha256: manifest.ids_sha256.clone(),
            archive_rows: manifest.events,
        };
        match buck.mark_archived(c.crawl.as_str(), &c.name, &notice).await {
            Ok(()) => events.buck_notified(),
            Err(e) => {
                events.buck_error();
                tracing::warn!(buck = %buck.id, segment = %c.label(), error = %e, "buck not told; it keeps the segment until a later run tells it");
                first_err.get_or_insert(e);
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}
