//! [`SummaryCache`]: hour summaries and row counts of closed segments, kept in memory
//! under a byte budget, so a summary of a closed day is a merge, not a scan.
//!
//! Only closed segments are cached: they are immutable, and an entry is used only while
//! the file's [`FileStamp`] is the one it was made from (a segment replaced, quarantined
//! or pruned is read again or not at all). Hours of an open segment are read each time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use durable_file::FileStamp;

use crate::crawl_summary::HourSummary;

/// Hour summaries of closed segments, least recently used evicted past the budget.
pub struct SummaryCache {
    budget: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    hours: HashMap<(PathBuf, i64), Entry>,
    weight: usize,
    clock: u64,
    /// Rows and first and last event time of closed segments (a few dozen bytes each,
    /// one per closed segment on the buck).
    figures: HashMap<PathBuf, (FileStamp, SegmentFigures)>,
}

/// What `GET /crawls` says of a segment: rows, first and last event time (microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentFigures {
    /// Events in it.
    pub rows: u64,
    /// The earliest event time.
    pub first_us: Option<i64>,
    /// The latest event time.
    pub last_us: Option<i64>,
}

struct Entry {
    stamp: FileStamp,
    summary: Arc<HourSummary>,
    weight: usize,
    used: u64,
}

impl SummaryCache {
    /// A cache holding about `budget` bytes of summaries.
    pub fn new(budget: usize) -> SummaryCache {
        SummaryCache {
            budget,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached summary of `hour` of the segment at `path`, if made from the file as
    /// it is now (`stamp`).
    pub fn get(&self, path: &Path, stamp: FileStamp, hour: i64) -> Option<Arc<HourSummary>> {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        let e = inner.hours.get_mut(&(path.to_path_buf(), hour))?;
        if e.stamp != stamp {
            return None;
        }
        e.used = now;
        Some(e.summary.clone())
    }

    /// Keeps `summary` of `hour` of the closed segment at `path` (as of `stamp`).
    pub fn put(&self, path: &Path, stamp: FileStamp, hour: i64, summary: Arc<HourSummary>) {
        let weight = summary.weight() + path.as_os_str().len() + 64;
        if weight > self.budget {
            return;
        }
        let mut inner = self.lock();
        inner.clock += 1;
        let used = inner.clock;
        let old = inner.hours.insert(
            (path.to_path_buf(), hour),
            Entry {
                stamp,
                summary,
                weight,
                used,
            },
        );
        inner.weight += weight;
        if let Some(old) = old {
            inner.weight -= old.weight;
        }
        while inner.weight > self.budget {
            let Some(oldest) = inner
                .hours
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = inner.hours.remove(&oldest) {
                inner.weight -= e.weight;
            }
        }
    }

    /// The figures of the closed segment at `path`, if counted from the file as it is now.
    pub fn figures(&self, path: &Path, stamp: FileStamp) -> Option<SegmentFigures> {
        match self.lock().figures.get(path) {
            Some((s, f)) if *s == stamp => Some(*f),
            _ => None,
        }
    }

    /// Keeps the figures of the closed segment at `path` (as of `stamp`).
    pub fn put_figures(&self, path: &Path, stamp: FileStamp, figures: SegmentFigures) {
        self.lock()
            .figures
            .insert(path.to_path_buf(), (stamp, figures));
    }

    /// Bytes held now (about).
    pub fn weight(&self) -> usize {
        self.lock().weight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_misses_and_the_budget_evicts_the_least_recently_used() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("2026-12-01.sqlite");
        std::fs::write(&p, b"one").unwrap();
        let stamp = FileStamp::of(&p).unwrap();
        let one = Arc::new(HourSummary {
            lines: 1,
            ..Default::default()
        });
        let per = one.weight() + p.as_os_str().len() + 64;
        let cache = SummaryCache::new(per * 2);
        cache.put(&p, stamp, 0, one.clone());
        cache.put(&p, stamp, 1, one.clone());
        assert!(cache.get(&p, stamp, 0).is_some());
        cache.put(&p, stamp, 2, one.clone());
        assert!(
            cache.get(&p, stamp, 1).is_none(),
            "hour 1 was the least recently used"
        );
        assert!(cache.get(&p, stamp, 0).is_some() && cache.get(&p, stamp, 2).is_some());
        assert!(cache.weight() <= per * 2);
        std::fs::write(&p, b"changed!").unwrap();
        let changed = FileStamp::of(&p).unwrap();
        assert!(cache.get(&p, changed, 0).is_none());
    }
}
