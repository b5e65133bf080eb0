//! `AckedRanges` and `AckedRecord`: which bytes of a spool bucket each home has acked,
//! kept beside the bucket as `<bucket>.b.acked` so that a restarted tailer re-sends only
//! what no home confirmed, not the whole bucket.
//!
//! Acks are kept as byte ranges of the bucket file (a frame's first length byte to its
//! last payload byte). A range says "every frame inside it that is routed to this home is
//! stored there": live packets carry whole frames of known file positions, and a repair
//! chunk covers everything routed to its home between two offsets. A frame counts as
//! acked only when a range holds it whole.
//!
//! The record only ever saves work: a missing, unreadable or stale record means more is
//! sent again, and every store de-duplicates by event id. It is written every
//! `acked_save_ms`, through a rename but without fsync, so a SIGKILL re-sends about one
//! such interval of acks.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::sidecar::{Durability, read_versioned, sidecar_path, write_by_rename};

/// Version of the acked record's JSON. Version 1 let an acked repair chunk vouch for its
/// whole byte span, frames routed to no buck included; such a record could mark frames
/// delivered that a home never got once the cluster file gave them a home, so it is read
/// as absent (costing a re-send, never a loss).
pub const ACKED_RECORD_VERSION: u32 = 2;

/// Most ranges kept per (bucket, home). Ranges fragment only when frames of other routes
/// interleave (a bucket holding two days with different homes); past the cap new small
/// ranges are not kept, which costs a re-send, never a loss.
pub const MAX_RANGES: usize = 4096;

/// A set of disjoint, non-adjacent byte ranges, kept sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckedRanges {
    ranges: Vec<Range<u64>>,
}

impl AckedRanges {
    /// Adds `r`, merging it with the ranges it touches. Empty ranges are ignored.
    pub fn insert(&mut self, r: Range<u64>) {
        if r.start >= r.end {
            return;
        }
        // First range that ends at or after r.start (it may touch r).
        let first = self.ranges.partition_point(|x| x.end < r.start);
        // One past the last range that starts at or before r.end.
        let last = self.ranges.partition_point(|x| x.start <= r.end);
        if first == last {
            if self.ranges.len() >= MAX_RANGES {
                return;
            }
            self.ranges.insert(first, r);
            return;
        }
        let start = r.start.min(self.ranges[first].start);
        let end = r.end.max(self.ranges[last - 1].end);
        self.ranges.drain(first + 1..last);
        self.ranges[first] = start..end;
    }

    /// Adds every range of `other`.
    pub fn union(&mut self, other: &AckedRanges) {
        for r in &other.ranges {
            self.insert(r.clone());
        }
    }

    /// Whether `start..end` lies inside one range.
    pub fn covers(&self, start: u64, end: u64) -> bool {
        let i = self.ranges.partition_point(|x| x.end < end);
        self.ranges
            .get(i)
            .is_some_and(|x| x.start <= start && end <= x.end)
    }

    /// Drops everything at or past `len` (a bucket cut back to `len` bytes).
    pub fn clamp(&mut self, len: u64) {
        self.ranges.retain(|r| r.start < len);
        if let Some(last) = self.ranges.last_mut() {
            last.end = last.end.min(len);
        }
    }

    /// The ranges, sorted.
    pub fn ranges(&self) -> &[Range<u64>] {
        &self.ranges
    }

    /// Whether no byte is acked.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

/// The sidecar of a spool bucket: the acked ranges per home.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckedRecord {
    /// Acked ranges by home buck id.
    pub homes: BTreeMap<String, AckedRanges>,
}

#[derive(Serialize, Deserialize)]
struct AckedRecordJson {
    version: u32,
    homes: BTreeMap<String, Vec<[u64; 2]>>,
}

impl AckedRecord {
    /// The sidecar path of `bucket`: `<bucket>.acked`.
    pub fn path_of(bucket: &Path) -> PathBuf {
        sidecar_path(bucket, ".acked")
    }

    /// Reads the sidecar of `bucket`; `Ok(None)` when there is none.
    pub fn load(bucket: &Path) -> std::io::Result<Option<AckedRecord>> {
        let Some(json) = read_versioned(
            &AckedRecord::path_of(bucket),
            "acked record",
            ACKED_RECORD_VERSION..=ACKED_RECORD_VERSION,
            |j: &AckedRecordJson| j.version,
        )?
        else {
            return Ok(None);
        };
        let mut record = AckedRecord::default();
        for (home, ranges) in json.homes {
            let set = record.homes.entry(home).or_default();
            for [start, end] in ranges {
                set.insert(start..end);
            }
        }
        Ok(Some(record))
    }

    /// Reads the sidecar of `bucket`, treating an unreadable one as absent (it only saves
    /// re-sends, so losing it is safe) after saying so.
    pub fn load_or_empty(bucket: &Path) -> AckedRecord {
        match AckedRecord::load(bucket) {
            Ok(r) => r.unwrap_or_default(),
            Err(e) => {
                tracing::warn!("ignoring the acked record (the bucket is re-sent whole): {e}");
                AckedRecord::default()
            }
        }
    }

    /// Writes the sidecar of `bucket` atomically.
    pub fn save(&self, bucket: &Path) -> std::io::Result<()> {
        let json = AckedRecordJson {
            version: ACKED_RECORD_VERSION,
            homes: self
                .homes
                .iter()
                .map(|(h, r)| {
                    let v = r.ranges().iter().map(|x| [x.start, x.end]).collect();
                    (h.clone(), v)
                })
                .collect(),
        };
        let bytes = serde_json::to_vec(&json).map_err(std::io::Error::other)?;
        // Not fsynced: it is rewritten four times a second, and one lost or torn by a
        // crash is read as absent (more is re-sent), never as acks that did not happen.
        write_by_rename(&AckedRecord::path_of(bucket), &bytes, Durability::Unsynced)
    }

    /// Cuts the record of `bucket` back to `len` bytes: the bucket was recovered to that
    /// length and will be appended to, so acks past it describe frames that are gone.
    pub fn clamp_file(bucket: &Path, len: u64) -> std::io::Result<()> {
        let Some(mut record) = AckedRecord::load(bucket)? else {
            return Ok(());
        };
        let before = record.clone();
        for r in record.homes.values_mut() {
            r.clamp(len);
        }
        if record != before {
            record.save(bucket)?;
        }
        Ok(())
    }

    /// Adds every home's ranges of `other`.
    pub fn union(&mut self, other: &AckedRecord) {
        for (home, ranges) in &other.homes {
            self.homes.entry(home.clone()).or_default().union(ranges);
        }
    }

    /// Saves `self` merged with what is already beside `bucket`: a run that reopened a
    /// bucket knows only its own acks until the bucket is sealed and scanned, and must
    /// not overwrite an earlier run's.
    pub fn merge_into_file(&self, bucket: &Path) -> std::io::Result<()> {
        let mut merged = AckedRecord::load_or_empty(bucket);
        merged.union(self);
        merged.save(bucket)
    }

    /// Whether `home` acked the frame at `start..end`.
    pub fn covers(&self, home: &str, start: u64, end: u64) -> bool {
        self.homes.get(home).is_some_and(|r| r.covers(start, end))
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn ranges_cover_exactly_the_inserted_bytes(
            inserts in prop::collection::vec((0u64..200, 0u64..20), 0..40)
        ) {
            let mut set = AckedRanges::default();
            let mut bytes = [false; 220];
            for &(s, n) in &inserts {
                set.insert(s..s + n);
                for b in &mut bytes[s as usize..(s + n) as usize] {
                    *b = true;
                }
            }
            // Sorted, disjoint and not touching.
            for w in set.ranges().windows(2) {
                prop_assert!(w[0].end < w[1].start);
            }
            for s in 0..220u64 {
                for e in s + 1..=(s + 8).min(220) {
                    let all = bytes[s as usize..e as usize].iter().all(|&b| b);
                    prop_assert_eq!(set.covers(s, e), all, "{}..{}", s, e);
                }
            }
        }
    }

    #[test]
    fn clamp_drops_bytes_past_the_length() {
        let mut set = AckedRanges::default();
        set.insert(10..20);
        set.insert(30..40);
        set.insert(50..60);
        set.clamp(35);
        assert_eq!(set.ranges(), &[10..20, 30..35]);
        assert!(!set.covers(30, 40));
    }

    #[test]
    fn the_cap_keeps_merging_but_stops_adding() {
        let mut set = AckedRanges::default();
        for i in 0..MAX_RANGES as u64 + 10 {
            set.insert(i * 10..i * 10 + 5);
        }
        assert_eq!(set.ranges().len(), MAX_RANGES);
        // A range touching an existing one still merges.
        set.insert(5..10);
        assert!(set.covers(0, 15));
    }

    #[test]
    fn record_round_trips_clamps_and_checks_version() {
        let d = tempfile::tempdir().unwrap();
        let bucket = d.path().join("07.b");
        assert_eq!(AckedRecord::load(&bucket).unwrap(), None);
        let mut r = AckedRecord::default();
        r.homes.entry("a".into()).or_default().insert(16..400);
        r.homes.entry("b".into()).or_default().insert(16..100);
        r.save(&bucket).unwrap();
        assert_eq!(AckedRecord::load(&bucket).unwrap(), Some(r.clone()));
        assert!(r.covers("a", 100, 200) && !r.covers("b", 100, 200) && !r.covers("c", 16, 20));

        AckedRecord::clamp_file(&bucket, 200).unwrap();
        let back = AckedRecord::load(&bucket).unwrap().unwrap();
        assert_eq!(back.homes["a"].ranges(), &[16..200]);
        assert_eq!(back.homes["b"].ranges(), &[16..100]);

        std::fs::write(AckedRecord::path_of(&bucket), r#"{"version":9,"homes":{}}"#).unwrap();
        let e = AckedRecord::load(&bucket).unwrap_err().to_string();
        assert!(e.contains("version 9 is not supported"), "{e}");
        assert_eq!(AckedRecord::load_or_empty(&bucket), AckedRecord::default());
        std::fs::write(AckedRecord::path_of(&bucket), b"{torn").unwrap();
        assert_eq!(AckedRecord::load_or_empty(&bucket), AckedRecord::default());
    }
}
