//! The seam between the reading side (files -> events -> spool) and the shipping side
//! (spool -> bucks). The spool is the durable path; the live copy handed over here is a
//! fast path that may be skipped when the shipper is behind, because the sealed bucket's
//! repair send covers whatever the live path did not deliver.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use contracts::CrawlId;

/// Capacity of the reader-to-shipper channel, in messages. Small on purpose: a live
/// message holds up to one read chunk (1 MiB by default) of frames, so this bounds the
/// memory between reader and shipper; a full channel makes the reader wait (bounded by
/// `live_wait_ms`) rather than buffer without bound.
pub const SHIPPER_QUEUE: usize = 4;

/// A spool bucket: one crawl's frames for one interval.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BucketKey {
    /// The crawl.
    pub crawl: CrawlId,
    /// The interval's start.
    pub start: DateTime<Utc>,
}

/// What the reading side hands to the shipping side.
#[derive(Debug, Clone)]
pub enum ShipperInput {
    /// Frames just appended to `bucket`, all with event times on `day`, to send live to
    /// the homes of (crawl, day).
    Live {
        /// The bucket they were appended to.
        bucket: BucketKey,
        /// The UTC day of their event times.
        day: NaiveDate,
        /// Concatenated frames.
        frames: Bytes,
        /// Number of frames.
        count: u32,
        /// Where `frames` lie in the bucket file, in order: these byte ranges, read one
        /// after the other, are `frames`. Acks are recorded by file position.
        ranges: Vec<Range<u64>>,
    },
    /// `bucket` is sealed at `path`: nothing more will be appended. Sent at the interval's
    /// end, and at start-up for every bucket left from a previous run.
    Sealed {
        /// The bucket.
        bucket: BucketKey,
        /// Its file.
        path: PathBuf,
    },
}

/// Spool size shared by the reader (which pauses when full) and the shipper (which
/// prunes and updates it).
#[derive(Debug, Default)]
pub struct SpoolUsage {
    /// Bytes in the spool's bucket files.
    pub bytes: AtomicU64,
    /// Whether reading is paused because the spool is full.
    pub paused: AtomicBool,
}

impl SpoolUsage {
    /// A shared, zeroed usage.
    pub fn new() -> Arc<SpoolUsage> {
        Arc::new(SpoolUsage::default())
    }

    /// Current bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}
