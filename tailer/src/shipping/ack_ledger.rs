//! `AckLedger`: the shipper's memory of which bucket bytes each home acked, saved beside
//! the buckets as [`AckedRecord`]s once per checkpoint interval; and `BucketShare`, the
//! part of a live packet that came from one bucket, which is what an ack adds to it.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use super::acked_ranges::{AckedRanges, AckedRecord};
use crate::pipeline::BucketKey;

/// The events of one bucket in a live packet: how many, and where their frames (and the
/// context frames before them) lie in its file.
#[derive(Debug, Clone)]
pub(crate) struct BucketShare {
    pub key: BucketKey,
    pub frames: u32,
    /// Coalesced file ranges of the frames (empty when the reader gave no positions).
    pub ranges: Vec<Range<u64>>,
}

impl BucketShare {
    pub fn new(key: BucketKey) -> BucketShare {
        BucketShare {
            key,
            frames: 0,
            ranges: Vec::new(),
        }
    }

    /// Counts one more event, found at `place` in the bucket file when known.
    pub fn add(&mut self, place: Option<Range<u64>>) {
        self.frames += 1;
        self.settle(place);
    }

    /// Adds `place` (when known) to the ranges without counting an event: a context
    /// frame's place, settled with the events after it so acked ranges stay whole.
    pub fn settle(&mut self, place: Option<Range<u64>>) {
        let Some(place) = place else { return };
        match self.ranges.last_mut() {
            Some(r) if r.end == place.start => r.end = place.end,
            _ => self.ranges.push(place),
        }
    }
}

/// Acked ranges per bucket and home, for buckets not yet delivered everywhere.
#[derive(Debug, Default)]
pub(crate) struct AckLedger {
    acked: HashMap<BucketKey, AckedRecord>,
    /// Buckets whose ranges changed since they were last handed out for saving.
    dirty: HashSet<BucketKey>,
    /// Buckets delivered to every home: late acks for them are not recorded, so no
    /// record is written beside a bucket the janitor may be deleting.
    delivered: HashSet<BucketKey>,
}

impl AckLedger {
    /// `home` acked `ranges` of `key`'s file.
    pub fn record(
        &mut self,
        key: &BucketKey,
        home: &str,
        ranges: impl IntoIterator<Item = Range<u64>>,
    ) {
        let mut ranges = ranges.into_iter().peekable();
        if ranges.peek().is_none() || self.delivered.contains(key) {
            return;
        }
        let set = self
            .acked
            .entry(key.clone())
            .or_default()
            .homes
            .entry(home.to_owned())
            .or_default();
        for r in ranges {
            set.insert(r);
        }
        self.dirty.insert(key.clone());
    }

    /// Merges a record read from disk (an earlier run's acks) into `key`'s ranges.
    pub fn adopt(&mut self, key: &BucketKey, record: AckedRecord) {
        if self.delivered.contains(key) {
            return;
        }
        self.acked.entry(key.clone()).or_default().union(&record);
    }

    /// A copy of what `home` acked of `key`.
    pub fn ranges(&self, key: &BucketKey, home: &str) -> AckedRanges {
        self.acked
            .get(key)
            .and_then(|r| r.homes.get(home))
            .cloned()
            .unwrap_or_default()
    }

    /// A copy of every home's ranges of `key`.
    pub fn record_of(&self, key: &BucketKey) -> AckedRecord {
        self.acked.get(key).cloned().unwrap_or_default()
    }

    /// `key` reached every home: its ranges are no longer needed.
    pub fn delivered(&mut self, key: &BucketKey) {
        self.forget(key);
        self.delivered.insert(key.clone());
    }

    /// Drops what is known of `key` (delivered, or given up on).
    pub fn forget(&mut self, key: &BucketKey) {
        self.acked.remove(key);
        self.dirty.remove(key);
    }

    /// The buckets changed since the last call, with their ranges, to be saved.
    pub fn take_dirty(&mut self) -> Vec<(BucketKey, AckedRecord)> {
        let keys: Vec<BucketKey> = self.dirty.drain().collect();
        keys.into_iter()
            .filter_map(|k| {
                let r = self.acked.get(&k)?.clone();
                Some((k, r))
            })
            .collect()
    }

    /// Keeps only the buckets `keep` accepts.
    pub fn retain(&mut self, keep: impl Fn(&BucketKey) -> bool) {
        self.acked.retain(|k, _| keep(k));
        self.dirty.retain(|k| keep(k));
        self.delivered.retain(|k| keep(k));
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use contracts::CrawlId;

    fn key(minute: u32) -> BucketKey {
        BucketKey {
            crawl: CrawlId::parse("c").unwrap(),
            start: Utc.with_ymd_and_hms(2026, 11, 22, 1, minute, 0).unwrap(),
        }
    }

    #[test]
    fn a_share_coalesces_adjacent_frames() {
        let mut s = BucketShare::new(key(0));
        s.add(Some(16..50));
        s.add(Some(50..80));
        s.add(Some(90..100));
        s.add(None);
        assert_eq!(s.frames, 4);
        assert_eq!(s.ranges, vec![16..80, 90..100]);
    }

    #[test]
    fn recorded_ranges_are_handed_out_once_and_not_after_delivery() {
        let mut l = AckLedger::default();
        l.record(&key(0), "a", [16..100]);
        l.record(&key(0), "b", [16..50]);
        l.record(&key(1), "a", []);
        let dirty = l.take_dirty();
        assert_eq!(dirty.len(), 1);
        assert!(dirty[0].1.covers("a", 20, 100) && dirty[0].1.covers("b", 16, 50));
        assert!(l.take_dirty().is_empty());

        let mut disk = AckedRecord::default();
        disk.homes.entry("b".into()).or_default().insert(50..70);
        l.adopt(&key(0), disk);
        assert!(l.ranges(&key(0), "b").covers(16, 70));

        l.delivered(&key(0));
        l.record(&key(0), "a", [100..200]);
        assert!(l.take_dirty().is_empty());
        assert!(l.ranges(&key(0), "a").is_empty());
    }
}
