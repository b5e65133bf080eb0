//! `SpoolJanitor`: keeps the spool's size known and prunes delivered buckets.
//!
//! Every `janitor_interval_ms` (or sooner, when the shipper says a bucket was delivered)
//! it walks the spool, sets `SpoolUsage::bytes` and the `spool_bytes` / `spool_buckets`
//! gauges to what is really on disk, then deletes:
//!
//! 1. delivered buckets older than `spool_max_age_secs`;
//! 2. while the spool holds `spool_max_bytes` or more, or its file system has less free
//!    than `min_free_bytes` / `min_free_percent`, the oldest delivered buckets.
//!
//! A bucket counts as delivered only when its `.delivered` record lists every home. An
//! undelivered bucket is never deleted by size: the reader pauses instead, until a home
//! comes back and takes it.
//!
//! Setting `bytes` from a walk (rather than only adding and subtracting) means a missed
//! update never accumulates: the figure is re-anchored on the disk at every walk.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use contracts::CrawlId;
use contracts::spool_file::parse_spool_bucket_path;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::acked_ranges::AckedRecord;
use super::delivery::DeliveryRecord;
use crate::events::TailerEvents;
use crate::pipeline::SpoolUsage;

/// Empty directories are removed only under buckets at least this old, so the janitor
/// never removes a directory the reader has just created for the current bucket.
const DIR_REMOVAL_MIN_AGE_SECS: i64 = 2 * 3600;

/// One bucket file found in the spool.
#[derive(Debug, Clone)]
pub struct SpoolEntry {
    /// The file.
    pub path: PathBuf,
    /// Its crawl.
    pub crawl: CrawlId,
    /// Its interval's start.
    pub start: DateTime<Utc>,
    /// Its size in bytes.
    pub bytes: u64,
    /// Whether every home has it (its record says so).
    pub delivered: bool,
}

/// Walks the spool and lists its bucket files, oldest first.
pub fn scan_spool(spool: &Path) -> Vec<SpoolEntry> {
    let mut out = Vec::new();
    let mut dirs = vec![spool.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), "cannot list spool directory: {e}");
                continue;
            }
        };
        for item in rd.flatten() {
            let path = item.path();
            let Ok(ft) = item.file_type() else { continue };
            if ft.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|x| x != "b") {
                continue;
            }
            let Some((crawl, start)) = parse_spool_bucket_path(spool, &path) else {
                continue;
            };
            let Ok(meta) = item.metadata() else { continue };
            let delivered = match DeliveryRecord::load(&path) {
                Ok(r) => r.is_some_and(|r| r.complete()),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "unreadable delivery record, the bucket is kept and re-sent: {e}");
                    false
                }
            };
            out.push(SpoolEntry {
                path,
                crawl,
                start,
                bytes: meta.len(),
                delivered,
            });
        }
    }
    out.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.path.cmp(&b.path)));
    out
}

/// What a pruning pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Bytes in the spool after the pass.
    pub bytes: u64,
    /// Bucket files left.
    pub buckets: u64,
    /// Buckets deleted.
    pub pruned: u64,
}

/// The pruning policy, separate from the task so it can be tested on its own.
#[derive(Debug, Clone)]
pub struct SpoolJanitor {
    /// The spool directory.
    pub spool: PathBuf,
    /// `spool_max_bytes`.
    pub max_bytes: u64,
    /// `spool_max_age_secs`.
    pub max_age_secs: u64,
    /// `bucket_interval_secs`.
    pub interval_secs: u64,
    /// `min_free_bytes` / `min_free_percent`: below it, delivered buckets go early.
    pub headroom: disk_space::Headroom,
}

impl SpoolJanitor {
    /// One pass: walk, publish the size, prune. Blocking (file system).
    pub fn pass(
        &self,
        usage: &SpoolUsage,
        events: &TailerEvents,
        now: DateTime<Utc>,
    ) -> PruneReport {
        let entries = scan_spool(&self.spool);
        let mut bytes: u64 = entries.iter().map(|e| e.bytes).sum();
        let mut buckets = entries.len() as u64;
        usage.bytes.store(bytes, Ordering::Relaxed);
        let mut pruned = 0;
        let mut delete = |e: &SpoolEntry, why: &str, bytes: &mut u64, buckets: &mut u64| {
            if let Err(err) = std::fs::remove_file(&e.path)
                && err.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %e.path.display(), "cannot delete delivered spool bucket: {err}");
                return;
            }
            for record in [
                DeliveryRecord::path_of(&e.path),
                AckedRecord::path_of(&e.path),
            ] {
                let _ = std::fs::remove_file(&record);
                // A record write cut short by a crash leaves its temporary file behind.
                let _ = std::fs::remove_file(DeliveryRecord::tmp_path_of(&record));
            }
            tracing::debug!(path = %e.path.display(), "pruned delivered spool bucket ({why})");
            *bytes = bytes.saturating_sub(e.bytes);
            *buckets = buckets.saturating_sub(1);
            let _ = usage
                .bytes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                    Some(b.saturating_sub(e.bytes))
                });
            events.bucket_pruned();
            pruned += 1;
            if (now - e.start).num_seconds() >= DIR_REMOVAL_MIN_AGE_SECS {
                self.remove_empty_dirs(&e.path);
            }
        };
        let max_age = chrono::Duration::seconds(self.max_age_secs.min(i64::MAX as u64 / 2) as i64);
        let interval = chrono::Duration::seconds(self.interval_secs as i64);
        let mut kept = Vec::with_capacity(entries.len());
        for e in entries {
            // Age counts from the bucket's end: that is when its last frame was written.
            if e.delivered && now - (e.start + interval) >= max_age {
                delete(&e, "age", &mut bytes, &mut buckets);
            } else {
                kept.push(e);
            }
        }
        // Oldest first (scan_spool sorts); undelivered buckets are skipped, never deleted.
        for e in kept.iter().filter(|e| e.delivered) {
            let why = if bytes >= self.max_bytes {
                "size"
            } else if self.headroom.check(&self.spool).is_err() {
                "free space"
            } else {
                break;
            };
            delete(e, why, &mut bytes, &mut buckets);
        }
        events.spool_size(usage.bytes(), buckets);
        events.janitor_pass();
        PruneReport {
            bytes,
            buckets,
            pruned,
        }
    }

    /// Removes the now-empty directories above a deleted bucket, up to the spool itself.
    fn remove_empty_dirs(&self, bucket: &Path) {
        let mut dir = bucket.parent();
        while let Some(d) = dir {
            if d == self.spool || !d.starts_with(&self.spool) {
                break;
            }
            // remove_dir fails on a non-empty directory, which ends the climb.
            if std::fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
    }

    /// Runs passes until `shutdown`: every `every`, and sooner when `kick` is notified
    /// (a bucket was delivered) while the spool needs room: reading is paused, or the
    /// spool holds half its `spool_max_bytes` or more. A pass walks the whole spool, so
    /// a kick at every delivery would cost a walk per bucket: with thousands of crawls
    /// sealing a bucket each a minute, the janitor would never rest.
    pub(crate) async fn run(
        self,
        every: Duration,
        kick: Arc<Notify>,
        usage: Arc<SpoolUsage>,
        events: Arc<TailerEvents>,
        shutdown: CancellationToken,
    ) {
        let me = Arc::new(self);
        loop {
            let (j, u, ev) = (me.clone(), usage.clone(), events.clone());
            if let Err(e) = tokio::task::spawn_blocking(move || j.pass(&u, &ev, Utc::now())).await {
                tracing::error!("spool janitor pass failed: {e}");
            }
            let next = tokio::time::Instant::now() + every;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep_until(next) => break,
                    _ = kick.notified() => {
                        if me.needs_room(&usage) {
                            break;
                        }
                    }
                }
            }
        }
    }

    /// Whether freeing space soon matters: reading is paused, or the spool is half full.
    fn needs_room(&self, usage: &SpoolUsage) -> bool {
        usage.paused.load(Ordering::Relaxed) || usage.bytes() >= self.max_bytes / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shipping::delivery::DELIVERY_RECORD_VERSION;
    use contracts::spool_file::{spool_bucket_path, spool_header};

    fn bucket(spool: &Path, start: &str, len: usize, delivered: Option<bool>) -> PathBuf {
        let crawl = CrawlId::parse("c").unwrap();
        let start = DateTime::parse_from_rfc3339(start)
            .unwrap()
            .with_timezone(&Utc);
        let p = spool_bucket_path(spool, &crawl, start, 60);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let mut b = spool_header().to_vec();
        b.resize(len, 0);
        std::fs::write(&p, b).unwrap();
        if let Some(all) = delivered {
            let homes: std::collections::BTreeSet<String> =
                ["x".to_string(), "y".to_string()].into();
            let done = if all {
                homes.clone()
            } else {
                ["x".to_string()].into()
            };
            DeliveryRecord {
                version: DELIVERY_RECORD_VERSION,
                homes,
                delivered: done,
                expected: Default::default(),
                unrouted: 0,
            }
            .save(&p)
            .unwrap();
        }
        p
    }

    #[test]
    fn prunes_delivered_by_age_and_size_never_undelivered() {
        let d = tempfile::tempdir().unwrap();
        let spool = d.path().to_path_buf();
        let old_done = bucket(&spool, "2026-01-01T00:00:00Z", 1000, Some(true));
        let old_partial = bucket(&spool, "2026-01-01T00:01:00Z", 1000, Some(false));
        let old_none = bucket(&spool, "2026-01-01T00:02:00Z", 1000, None);
        let new_done_a = bucket(&spool, "2026-01-02T00:00:00Z", 1000, Some(true));
        let new_done_b = bucket(&spool, "2026-01-02T00:01:00Z", 1000, Some(true));
        let now = DateTime::parse_from_rfc3339("2026-01-02T00:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let usage = SpoolUsage::default();
        let events = TailerEvents::default();
        let j = SpoolJanitor {
            spool: spool.clone(),
            max_bytes: 3500,
            max_age_secs: 3600,
            interval_secs: 60,
            headroom: disk_space::Headroom::NONE,
        };
        AckedRecord::default().save(&old_done).unwrap();
        AckedRecord::default().save(&old_partial).unwrap();
        let r = j.pass(&usage, &events, now);
        // Age removes the old delivered one; size (4000 >= 3500) then the oldest delivered.
        assert!(!old_done.exists());
        assert!(!DeliveryRecord::path_of(&old_done).exists());
        assert!(!AckedRecord::path_of(&old_done).exists());
        assert!(AckedRecord::path_of(&old_partial).exists());
        assert!(!new_done_a.exists());
        assert!(old_partial.exists() && old_none.exists() && new_done_b.exists());
        assert_eq!(
            r,
            PruneReport {
                bytes: 3000,
                buckets: 3,
                pruned: 2
            }
        );
        assert_eq!(usage.bytes(), 3000);
        assert_eq!(events.spool_bytes.load(Ordering::Relaxed), 3000);
        assert_eq!(events.buckets_pruned_total.load(Ordering::Relaxed), 2);
        // Still over a tiny limit: only undelivered ones and one delivered remain; the
        // delivered one goes, the undelivered ones stay whatever the size.
        let j = SpoolJanitor { max_bytes: 10, ..j };
        let r = j.pass(&usage, &events, now);
        assert!(!new_done_b.exists());
        assert!(old_partial.exists() && old_none.exists());
        assert_eq!(r.bytes, 2000);
        // A directory that still holds a bucket stays.
        assert!(old_partial.parent().unwrap().exists());
    }

    #[test]
    fn a_disk_below_its_headroom_prunes_every_delivered_bucket_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        let spool = d.path().to_path_buf();
        let done_a = bucket(&spool, "2026-01-02T00:00:00Z", 1000, Some(true));
        let partial = bucket(&spool, "2026-01-02T00:01:00Z", 1000, Some(false));
        let done_b = bucket(&spool, "2026-01-02T00:02:00Z", 1000, Some(true));
        let now = DateTime::parse_from_rfc3339("2026-01-02T00:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let roomy = SpoolJanitor {
            spool: spool.clone(),
            max_bytes: 1 << 30,
            max_age_secs: 86_400,
            interval_secs: 60,
            headroom: disk_space::Headroom::NONE,
        };
        let (usage, events) = (SpoolUsage::default(), TailerEvents::default());
        assert_eq!(roomy.pass(&usage, &events, now).pruned, 0);
        // A file system that can never have enough free space.
        let starved = SpoolJanitor {
            headroom: disk_space::Headroom {
                min_free_bytes: u64::MAX,
                min_free_percent: 0.0,
            },
            ..roomy
        };
        let r = starved.pass(&usage, &events, now);
        assert_eq!(r.pruned, 2);
        assert!(!done_a.exists() && !done_b.exists());
        assert!(partial.exists());
    }

    #[test]
    fn removes_empty_directories_up_to_the_spool() {
        let d = tempfile::tempdir().unwrap();
        let spool = d.path().join("spool");
        let p = bucket(&spool, "2026-01-01T00:00:00Z", 100, Some(true));
        let now = DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let j = SpoolJanitor {
            spool: spool.clone(),
            max_bytes: 1 << 30,
            max_age_secs: 60,
            interval_secs: 60,
            headroom: disk_space::Headroom::NONE,
        };
        j.pass(&SpoolUsage::default(), &TailerEvents::default(), now);
        assert!(!p.exists());
        assert!(spool.exists());
        assert_eq!(
            std::fs::read_dir(&spool).unwrap().count(),
            0,
            "crawl directory left behind"
        );
    }

    /// Waits (in paused time, a millisecond at a time) until `events` counts `n` passes;
    /// returns the virtual time it took.
    async fn passes(events: &TailerEvents, n: u64) -> Duration {
        let start = tokio::time::Instant::now();
        while events.janitor_passes_total.load(Ordering::Relaxed) < n {
            assert!(
                start.elapsed() < Duration::from_secs(600),
                "no pass {n} within 10 minutes"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        start.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_delivery_kicks_a_pass_only_when_the_spool_needs_room() {
        let dir = tempfile::tempdir().unwrap();
        let j = SpoolJanitor {
            spool: dir.path().to_path_buf(),
            max_bytes: 1000,
            max_age_secs: 3600,
            interval_secs: 60,
            headroom: disk_space::Headroom::NONE,
        };
        let kick = Arc::new(Notify::new());
        let usage = SpoolUsage::new();
        let events = Arc::new(TailerEvents::default());
        let shutdown = CancellationToken::new();
        let every = Duration::from_secs(60);
        let task = tokio::spawn(j.run(
            every,
            kick.clone(),
            usage.clone(),
            events.clone(),
            shutdown.clone(),
        ));
        passes(&events, 1).await;
        // Deliveries while the spool is nearly empty wait for the interval.
        for _ in 0..100 {
            kick.notify_one();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(events.janitor_passes_total.load(Ordering::Relaxed), 1);
        let waited = passes(&events, 2).await;
        assert!(waited <= every, "the interval pass came after {waited:?}");
        // Half full: a delivery brings the pass forward.
        usage.bytes.store(500, Ordering::Relaxed);
        kick.notify_one();
        assert!(passes(&events, 3).await < Duration::from_secs(1));
        // Paused: likewise, whatever the size.
        usage.bytes.store(0, Ordering::Relaxed);
        usage.paused.store(true, Ordering::Relaxed);
        kick.notify_one();
        assert!(passes(&events, 4).await < Duration::from_secs(1));
        shutdown.cancel();
        task.await.unwrap();
    }
}
