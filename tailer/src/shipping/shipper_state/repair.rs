//! Delivery per (bucket, home) and the repair path: a sealed bucket is counted per home
//! (a scan, done by the shell), homes that acked every frame live are delivered, and once
//! the random repair delay has passed every other home is sent the bucket whole, one
//! chunk at a time, one bucket at a time per home.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use contracts::frame::FrameReader;
use contracts::frame_stream::{FrameRead, FrameStreamReader};
use contracts::spool_file::spool_bucket_path;
use contracts::transport::{Message, RejectedFrame};
use contracts::{ClusterFile, CrawlId, EventId};
use tokio::time::Instant;

use super::{Command, InFlight, Sent, ShipperState, Status, Timer};
use crate::pipeline::BucketKey;
use crate::shipping::acked_ranges::{AckedRanges, AckedRecord};
use crate::shipping::buck_connection::Outgoing;
use crate::shipping::delivery::{
    BucketScan, Chunk, ChunkStart, DELIVERY_RECORD_VERSION, DeliveryRecord, read_chunk,
};
use crate::shipping::record_writer::SidecarWrite;

/// How long after its interval ends an untracked bucket's live counts are kept, in
/// seconds: long enough for its Sealed report to arrive behind a busy channel.
const STALE_COUNT_GRACE_SECS: u64 = 600;

/// A sealed bucket not yet delivered to every home.
pub(super) struct SealedBucket {
    path: PathBuf,
    /// Frames per home, once scanned.
    scan: Option<BucketScan>,
    delivered: BTreeSet<String>,
    /// The random repair delay has passed.
    due: bool,
    /// Repair jobs by home.
    jobs: BTreeMap<String, u64>,
}

/// What a scan of a sealed bucket read: its frames per home, and its two records.
#[derive(Debug)]
pub(crate) struct Scanned {
    /// Frames per home, and how many of them the records say each home acked.
    pub scan: BucketScan,
    /// The delivery record beside the bucket, if any.
    pub delivery: Option<DeliveryRecord>,
    /// The acked record beside the bucket (empty if none).
    pub acked: AckedRecord,
}

pub(super) struct RepairJob {
    bucket: BucketKey,
    path: PathBuf,
    home: String,
    start: ChunkStart,
    chunk: u32,
}

/// What the shell reads for the next chunk of a repair job.
#[derive(Debug)]
pub(crate) struct ChunkRequest {
    /// The job, to name in the answer.
    pub job: u64,
    /// The bucket file.
    pub path: PathBuf,
    /// Where the chunk starts, and where its walk starts.
    pub start: ChunkStart,
    /// The home it is for.
    pub home: String,
    /// The bucket's crawl.
    pub crawl: CrawlId,
    /// Events refused for good: left out.
    pub skip: HashSet<EventId>,
    /// What the home acked already: left out.
    pub acked: AckedRanges,
    /// The routing that says which frames are the home's.
    pub cluster: Arc<ClusterFile>,
}

impl ChunkRequest {
    /// Reads the chunk (blocking file I/O).
    pub fn read(&self) -> std::io::Result<Chunk> {
        read_chunk(
            &self.path,
            self.start,
            &self.home,
            &self.cluster,
            &self.crawl,
            &self.skip,
            &self.acked,
        )
    }
}

impl ShipperState {
    /// Starts tracking a sealed bucket (once; a repeated Sealed is ignored).
    pub(super) fn track_sealed(&mut self, bucket: BucketKey, path: PathBuf) {
        if self.sealed.contains_key(&bucket) {
            return;
        }
        self.sealed.insert(
            bucket.clone(),
            SealedBucket {
                path,
                scan: None,
                delivered: BTreeSet::new(),
                due: false,
                jobs: BTreeMap::new(),
            },
        );
        self.events.buckets_pending(self.sealed.len());
        self.scan(bucket);
    }

    /// Asks for the bucket's frames to be counted per home.
    pub(super) fn scan(&mut self, bucket: BucketKey) {
        let Some(s) = self.sealed.get(&bucket) else {
            return;
        };
        self.commands.push(Command::ScanBucket {
            path: s.path.clone(),
            cluster: self.cluster.clone(),
            acked: self.ledger.record_of(&bucket),
            bucket,
        });
    }

    /// The answer to a [`Command::ScanBucket`].
    pub fn on_scanned(
        &mut self,
        bucket: BucketKey,
        result: std::io::Result<Scanned>,
        now: Instant,
    ) {
        let Some(s) = self.sealed.get_mut(&bucket) else {
            return;
        };
        let Scanned {
            scan,
            delivery: record,
            acked,
        } = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(path = %s.path.display(), "cannot read sealed spool bucket, it is not shipped: {e}; move it out of the spool if it is damaged");
                self.forget(&bucket);
                return;
            }
        };
        if scan.unrouted > 0 {
            tracing::warn!(path = %s.path.display(), frames = scan.unrouted, "no buck takes some frames of this bucket yet (see `since` in the cluster file); it stays in the spool");
        }
        // A home delivered under an earlier routing stays delivered only if it is routed
        // the same frames now, or its acked ranges cover all it must have: a changed
        // cluster file can give it frames it never got (a day that had no home yet).
        let before = s.scan.as_ref().map(|p| p.expected.clone());
        s.delivered
            .retain(|h| still_delivered(h, before.as_ref(), &scan));
        if let Some(r) = record {
            // A version 1 record kept no counts: its homes are trusted as they were.
            let counted = (r.version >= 2).then_some(&r.expected);
            s.delivered.extend(
                r.delivered
                    .into_iter()
                    .filter(|h| still_delivered(h, counted, &scan)),
            );
        }
        // Frames an earlier run saw acked count as acked live: only the rest is repaired.
        let counts = self.live_acked.entry(bucket.clone()).or_default();
        for (home, &n) in &scan.acked {
            let c = counts.entry(home.clone()).or_default();
            *c = (*c).max(n);
        }
        self.ledger.adopt(&bucket, acked);
        let first = s.scan.is_none();
        // Jobs for homes that are no longer homes (the cluster changed) are dropped.
        let stale: Vec<(String, u64)> = s
            .jobs
            .iter()
            .filter(|(h, _)| !scan.expected.contains_key(*h))
            .map(|(h, j)| (h.clone(), *j))
            .collect();
        for (h, j) in stale {
            s.jobs.remove(&h);
            self.jobs.remove(&j);
        }
        s.scan = Some(scan);
        if first {
            let at = now + self.policy.repair_delay.pick();
            self.schedule(at, Timer::RepairDue(bucket));
        } else {
            self.evaluate(&bucket);
        }
    }

    pub(super) fn on_repair_due(&mut self, bucket: &BucketKey) {
        if let Some(s) = self.sealed.get_mut(bucket) {
            s.due = true;
            self.evaluate(bucket);
        }
    }

    /// Settles what can be settled for a sealed bucket: homes that acked every frame live
    /// are delivered; once the repair delay has passed, the others get a repair job; when
    /// every home has it, the bucket is recorded as delivered.
    pub(super) fn evaluate(&mut self, bucket: &BucketKey) {
        let Some(s) = self.sealed.get_mut(bucket) else {
            return;
        };
        let Some(scan) = &s.scan else { return };
        let live = self.live_acked.get(bucket);
        let pending = self.live_pending.get(bucket);
        let mut changed = false;
        let mut new_jobs = Vec::new();
        for (home, &want) in &scan.expected {
            if s.delivered.contains(home) {
                continue;
            }
            let acked = live.and_then(|l| l.get(home)).copied().unwrap_or(0);
            let in_flight = pending.and_then(|l| l.get(home)).copied().unwrap_or(0);
            if acked >= want {
                s.delivered.insert(home.clone());
                changed = true;
            } else if acked + in_flight >= want {
                // Every missing frame is in flight to this home (and re-sent on
                // reconnect): its acks decide, and each one re-evaluates the bucket.
            } else if s.due && !s.jobs.contains_key(home) && self.bucks.contains_key(home) {
                new_jobs.push(home.clone());
            }
        }
        for home in &new_jobs {
            let id = self.next_job;
            self.next_job += 1;
            s.jobs.insert(home.clone(), id);
            self.jobs.insert(
                id,
                RepairJob {
                    bucket: bucket.clone(),
                    path: s.path.clone(),
                    home: home.clone(),
                    start: ChunkStart {
                        offset: 0,
                        resume: 0,
                    },
                    chunk: 0,
                },
            );
            if let Some(b) = self.bucks.get_mut(home) {
                b.repair_queue.push_back(id);
            }
        }
        for home in new_jobs {
            self.start_repair(&home);
        }
        let Some(s) = self.sealed.get(bucket) else {
            return;
        };
        let Some(scan) = &s.scan else { return };
        let homes: BTreeSet<String> = scan.expected.keys().cloned().collect();
        let complete = scan.unrouted == 0 && homes.is_subset(&s.delivered);
        if changed || complete {
            let record = DeliveryRecord {
                version: DELIVERY_RECORD_VERSION,
                homes,
                delivered: s.delivered.clone(),
                expected: scan.expected.clone(),
                unrouted: scan.unrouted,
            };
            self.commands
                .push(Command::WriteRecord(SidecarWrite::Delivery {
                    path: s.path.clone(),
                    record,
                    complete,
                }));
        }
        if complete {
            self.events
                .bucket_delivered(self.sealed.len().saturating_sub(1));
            self.forget(bucket);
            self.ledger.delivered(bucket);
        }
    }

    fn forget(&mut self, bucket: &BucketKey) {
        if let Some(s) = self.sealed.remove(bucket) {
            for j in s.jobs.values() {
                self.jobs.remove(j);
            }
        }
        self.live_acked.remove(bucket);
        self.live_pending.remove(bucket);
        self.rejected.remove(bucket);
        self.ledger.forget(bucket);
        self.events.buckets_pending(self.sealed.len());
    }

    /// Starts the next repair job of `buck` if it is up and not already sending one.
    pub(super) fn start_repair(&mut self, buck: &str) {
        loop {
            let Some(b) = self.bucks.get_mut(buck) else {
                return;
            };
            if b.status != Status::Up || b.active_repair.is_some() {
                return;
            }
            let Some(job) = b.repair_queue.pop_front() else {
                return;
            };
            // A job whose bucket was settled meanwhile (live acks caught up) is skipped.
            let Some(j) = self.jobs.get(&job) else {
                continue;
            };
            let still_needed = self
                .sealed
                .get(&j.bucket)
                .is_some_and(|s| !s.delivered.contains(&j.home));
            if !still_needed {
                self.jobs.remove(&job);
                continue;
            }
            b.active_repair = Some(job);
            self.read_next_chunk(job);
            return;
        }
    }

    /// A home acked a chunk of repair job `job`: the next chunk is read, or after the
    /// last one the home has the bucket and its next repair starts.
    pub(super) fn on_chunk_acked(
        &mut self,
        buck: &str,
        job: u64,
        next: ChunkStart,
        settled: Vec<Range<u64>>,
        last: bool,
    ) {
        if let Some(j) = self.jobs.get(&job) {
            self.ledger.record(&j.bucket, &j.home, settled);
        }
        if last {
            if let Some(b) = self.bucks.get_mut(buck) {
                b.active_repair = None;
            }
            if let Some(j) = self.jobs.remove(&job) {
                self.events.repair_done();
                if let Some(s) = self.sealed.get_mut(&j.bucket) {
                    s.jobs.remove(&j.home);
                    s.delivered.insert(j.home.clone());
                    self.evaluate(&j.bucket);
                }
            }
            self.start_repair(buck);
        } else if let Some(j) = self.jobs.get_mut(&job) {
            j.start = next;
            j.chunk += 1;
            self.read_next_chunk(job);
        }
    }

    /// Notes the events of the frames a buck refused for good, so that no repair chunk
    /// carries them again (to this buck or any other: the reasons are the frame's own).
    pub(super) fn remember_rejected(&mut self, f: &InFlight, rejected: &[RejectedFrame]) {
        let live_frames = match &f.message {
            Outgoing::Live { packed, .. } => Some(packed.frames()),
            Outgoing::Message(Message::Live { frames, .. }) => Some(frames),
            Outgoing::Message(_) | Outgoing::Chunk { .. } => None,
        };
        let chunk_frames = match &f.message {
            Outgoing::Message(Message::BucketChunk { frames, .. }) => Some(frames),
            Outgoing::Chunk { packed, .. } => Some(packed.frames()),
            _ => None,
        };
        let (frames, owners): (&Bytes, Vec<&BucketKey>) = match (live_frames, chunk_frames, &f.what)
        {
            (Some(frames), _, Sent::Live { buckets, .. }) => (
                frames,
                buckets
                    .iter()
                    .flat_map(|s| std::iter::repeat_n(&s.key, s.frames as usize))
                    .collect(),
            ),
            (_, Some(frames), Sent::Chunk { job, .. }) => {
                let Some(j) = self.jobs.get(job) else { return };
                (frames, vec![&j.bucket; f.frames as usize])
            }
            _ => return,
        };
        let wanted: HashSet<u32> = rejected.iter().map(|r| r.index).collect();
        // Indices name events, not frames: the stream's context frames are not counted.
        let mut reader = FrameStreamReader::new();
        for item in FrameReader::new(frames) {
            let Ok((_, payload)) = item else { break };
            let FrameRead::Event(event) = reader.read(payload) else {
                continue;
            };
            if !wanted.contains(&event.index) {
                continue;
            }
            if let Some(key) = owners.get(event.index as usize) {
                self.rejected
                    .entry((*key).clone())
                    .or_default()
                    .insert(event.id);
            }
        }
    }

    fn read_next_chunk(&mut self, job: u64) {
        let Some(j) = self.jobs.get(&job) else { return };
        self.commands.push(Command::ReadChunk(ChunkRequest {
            job,
            path: j.path.clone(),
            start: j.start,
            home: j.home.clone(),
            crawl: j.bucket.crawl.clone(),
            skip: self.rejected.get(&j.bucket).cloned().unwrap_or_default(),
            acked: self.ledger.ranges(&j.bucket, &j.home),
            cluster: self.cluster.clone(),
        }));
    }

    /// The answer to a [`Command::ReadChunk`]: the chunk is queued for its home.
    pub fn on_chunk_read(&mut self, job: u64, result: std::io::Result<Chunk>) {
        let Some(j) = self.jobs.get(&job) else { return };
        let home = j.home.clone();
        let chunk = match result {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(path = %j.path.display(), home = %home, "cannot read spool bucket for its repair send: {e}");
                let bucket = j.bucket.clone();
                self.jobs.remove(&job);
                if let Some(b) = self.bucks.get_mut(&home) {
                    b.active_repair = None;
                }
                self.forget(&bucket);
                self.start_repair(&home);
                return;
            }
        };
        let (crawl, bucket_start, n) =
            (j.bucket.crawl.clone(), j.bucket.start.timestamp(), j.chunk);
        let Some(b) = self.bucks.get_mut(&home) else {
            return;
        };
        let seq = b.take_seq();
        let message = match chunk.packed {
            Some(packed) => Outgoing::Chunk {
                seq,
                crawl,
                bucket_start,
                chunk: n,
                last: chunk.last,
                packed,
            },
            None => Outgoing::Message(Message::BucketChunk {
                seq,
                crawl,
                bucket_start,
                chunk: n,
                last: chunk.last,
                frames: chunk.frames,
            }),
        };
        b.inflight.insert(
            seq,
            InFlight {
                message,
                frames: chunk.count,
                what: Sent::Chunk {
                    job,
                    next: ChunkStart {
                        offset: chunk.next_offset,
                        resume: chunk.next_resume,
                    },
                    settled: chunk.settled,
                    last: chunk.last,
                },
                queued: false,
            },
        );
        b.transmit(seq);
        self.events.repair_chunk_sent();
    }

    /// Forgets live counts of buckets that are neither tracked as sealed nor recent: acks
    /// that arrive after their bucket was delivered (a re-sent packet to a home that got
    /// the bucket by repair) would otherwise leave entries behind for good.
    pub fn drop_stale_counts(&mut self, now: DateTime<Utc>) {
        let grace = chrono::Duration::seconds(
            (self.policy.bucket_interval_secs + STALE_COUNT_GRACE_SECS) as i64,
        );
        let sealed = &self.sealed;
        let keep = |k: &BucketKey| sealed.contains_key(k) || k.start + grace > now;
        self.live_acked.retain(|k, _| keep(k));
        self.live_pending.retain(|k, _| keep(k));
        self.rejected.retain(|k, _| keep(k));
        self.ledger.retain(keep);
    }

    /// Asks for the acked ranges that changed to be written beside their buckets.
    pub fn save_acked(&mut self) {
        for (key, record) in self.ledger.take_dirty() {
            let path = match self.sealed.get(&key) {
                Some(s) => s.path.clone(),
                None => spool_bucket_path(
                    &self.policy.spool_dir,
                    &key.crawl,
                    key.start,
                    self.policy.bucket_interval_secs,
                ),
            };
            self.commands
                .push(Command::WriteRecord(SidecarWrite::Acked { path, record }));
        }
    }
}

/// Whether `home`, delivered when it was routed `before` frames per home (`None`: not
/// known), still has every frame `scan` routes to it.
fn still_delivered(home: &str, before: Option<&BTreeMap<String, u64>>, scan: &BucketScan) -> bool {
    let want = scan.expected.get(home).copied().unwrap_or(0);
    let unchanged = before.is_none_or(|b| b.get(home).copied().unwrap_or(0) == want);
    unchanged || scan.acked.get(home).copied().unwrap_or(0) >= want
}
