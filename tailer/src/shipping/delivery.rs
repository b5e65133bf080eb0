//! `DeliveryRecord`: which homes have acknowledged a sealed bucket whole, kept beside it
//! as `<bucket>.b.delivered`; and the two walks of a bucket file the repair path needs:
//! how many events each home must receive ([`scan_bucket`]) and the next chunk of the
//! events routed to one home ([`read_chunk`]).
//!
//! Both walks read the file in blocks through `contracts::frame::FrameReader` and one
//! `FrameStreamReader` (a compact event means nothing without the context frame before
//! it), so a bucket of any size costs at most one block plus one chunk of memory. A chunk
//! is a stream of its own, written through a `FrameStreamWriter`; the next chunk's walk
//! starts at the last context before it, at most one reader batch back, rather than at
//! the file's start (which would read a large bucket once per chunk).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::ops::{ControlFlow, Range};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use chrono::NaiveDate;
use contracts::frame::{FrameError, FrameReader};
use contracts::frame_stream::{
    FrameRead, FrameStreamReader, FrameStreamWriter, StreamEvent, TAG_CONTEXT, TAG_EVENT_V1,
};
use contracts::spool_file::{SPOOL_HEADER_LEN, check_spool_header};
use contracts::transport::{MAX_CHUNK_BYTES, PackedFrames};
use contracts::{ClusterFile, CrawlId, EventId};
use serde::{Deserialize, Serialize};

use super::sidecar::{Durability, read_versioned, sidecar_path, tmp_path, write_by_rename};

use super::acked_ranges::{AckedRanges, AckedRecord};

/// Version of the delivery record's JSON. 2 added `expected` and `unrouted`; version 1
/// records are still read (as if every frame had a home and the routing never changed).
pub const DELIVERY_RECORD_VERSION: u32 = 2;

/// The oldest delivery record version this build reads.
const OLDEST_DELIVERY_RECORD_VERSION: u32 = 1;

/// Bytes read from a bucket file at a time.
const READ_BLOCK: usize = 256 * 1024;

/// The sidecar of a sealed bucket: the homes it must reach and those that have it all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// Always [`DELIVERY_RECORD_VERSION`].
    pub version: u32,
    /// The homes of the bucket's frames when it was last scanned.
    pub homes: BTreeSet<String>,
    /// The homes that acknowledged every frame routed to them.
    pub delivered: BTreeSet<String>,
    /// Frames each home had to receive when the record was written (version 2). A later
    /// scan that routes a home more frames (the cluster file changed) stops trusting that
    /// home's place in `delivered` unless its acked ranges cover them.
    #[serde(default)]
    pub expected: BTreeMap<String, u64>,
    /// Frames whose day no buck took when the record was written (version 2). A bucket
    /// with any is not complete whatever its homes acked: those frames wait in the spool
    /// for a home.
    #[serde(default)]
    pub unrouted: u64,
}

impl DeliveryRecord {
    /// Whether every frame had a home and every home has the bucket, so it may be pruned.
    pub fn complete(&self) -> bool {
        self.unrouted == 0 && self.homes.is_subset(&self.delivered)
    }

    /// The sidecar path of `bucket`: `<bucket>.delivered`.
    pub fn path_of(bucket: &Path) -> PathBuf {
        sidecar_path(bucket, ".delivered")
    }

    /// The temporary file a record at `record` is written through.
    pub fn tmp_path_of(record: &Path) -> PathBuf {
        tmp_path(record)
    }

    /// Reads the sidecar of `bucket`; `Ok(None)` when there is none.
    pub fn load(bucket: &Path) -> std::io::Result<Option<DeliveryRecord>> {
        read_versioned(
            &DeliveryRecord::path_of(bucket),
            "delivery record",
            OLDEST_DELIVERY_RECORD_VERSION..=DELIVERY_RECORD_VERSION,
            |r: &DeliveryRecord| r.version,
        )
    }

    /// Writes the sidecar of `bucket` atomically: a temporary file, fsync, rename, fsync
    /// of the directory. A crash leaves the old record or the new one, never a torn one.
    pub fn save(&self, bucket: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec(self).map_err(|e| invalid(e.to_string()))?;
        write_by_rename(&DeliveryRecord::path_of(bucket), &json, Durability::Synced)
    }
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

/// Routes events to homes by their event day, caching the answer per day.
pub(crate) struct Router<'a> {
    cluster: &'a ClusterFile,
    crawl: &'a CrawlId,
    by_day: HashMap<NaiveDate, Vec<String>>,
}

impl<'a> Router<'a> {
    pub(crate) fn new(cluster: &'a ClusterFile, crawl: &'a CrawlId) -> Router<'a> {
        Router {
            cluster,
            crawl,
            by_day: HashMap::new(),
        }
    }

    /// The homes of an event.
    fn homes(&mut self, event: &StreamEvent<'_>) -> &[String] {
        let day = contracts::event::utc_day(event.time_us);
        self.by_day
            .entry(day)
            .or_insert_with(|| self.cluster.home_bucks(self.crawl, day).homes().to_vec())
    }
}

/// What a walk of a sealed bucket found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketScan {
    /// Events each home must receive.
    pub expected: BTreeMap<String, u64>,
    /// Events whose day has no eligible buck yet: the bucket waits for a cluster change.
    pub unrouted: u64,
    /// Events that do not decode (left out of the repair send).
    pub undecodable: u64,
    /// Of the events each home must receive, those `acked` says it has.
    pub acked: BTreeMap<String, u64>,
}

/// Counts the events of the bucket at `path` per home, and how many of them each home
/// acked according to `acked`. Context frames are not events: they are not counted.
pub fn scan_bucket(
    path: &Path,
    cluster: &ClusterFile,
    crawl: &CrawlId,
    acked: &AckedRecord,
) -> std::io::Result<BucketScan> {
    let mut router = Router::new(cluster, crawl);
    let mut scan = BucketScan::default();
    walk_stream(path, 0, |at, frame, read| {
        match read {
            FrameRead::Context | FrameRead::BadContext(_) => {}
            FrameRead::BadEvent { .. } => scan.undecodable += 1,
            FrameRead::Event(event) => match router.homes(&event) {
                [] => scan.unrouted += 1,
                homes => {
                    let end = at + frame.len() as u64;
                    for h in homes {
                        *scan.expected.entry(h.clone()).or_default() += 1;
                        if acked.covers(h, at, end) {
                            *scan.acked.entry(h.clone()).or_default() += 1;
                        }
                    }
                }
            },
        }
        ControlFlow::Continue(())
    })?;
    Ok(scan)
}

/// A piece of a bucket for one home.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// A frame stream of its own (it starts with a context frame), at most
    /// `MAX_CHUNK_BYTES`.
    pub frames: Bytes,
    /// Number of events in it.
    pub count: u32,
    /// Where the next chunk starts in the file.
    pub next_offset: u64,
    /// Where the walk for the next chunk starts: the last frame before `next_offset` that
    /// says the context of the events after it (a context frame, or a version-1 event),
    /// so the reader knows the context in force at `next_offset`.
    pub next_resume: u64,
    /// The byte ranges, between the chunk's start and `next_offset`, whose every frame is
    /// settled for the home once the chunk is acked: sent in it, acked before, refused
    /// for good, or a context frame (it says nothing a home must have). Events routed
    /// elsewhere or to no buck yet split the ranges, so an acked chunk never vouches for
    /// an event the home did not get.
    pub settled: Vec<Range<u64>>,
    /// Whether this is the bucket's last chunk.
    pub last: bool,
    /// `frames` compressed once for every home it goes to, when the reader did so;
    /// otherwise the connection compresses them.
    pub packed: Option<Arc<PackedFrames>>,
}

/// Where a chunk read starts in a bucket file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkStart {
    /// Where the chunk starts (0 for the bucket's start).
    pub offset: u64,
    /// Where the walk starts, at or before `offset`: [`Chunk::next_resume`] of the chunk
    /// before (0 for the first). Frames between the two are read only for their context.
    pub resume: u64,
}

/// Reads, from `start` in the bucket at `path`, the next chunk of events routed to
/// `home`: as many as fit in `MAX_CHUNK_BYTES`, written through a stream writer of the
/// chunk's own. Events in `skip` (refused for good by a buck) and frames inside `acked`
/// (the home has them) are left out.
pub fn read_chunk(
    path: &Path,
    start: ChunkStart,
    home: &str,
    cluster: &ClusterFile,
    crawl: &CrawlId,
    skip: &HashSet<EventId>,
    acked: &AckedRanges,
) -> std::io::Result<Chunk> {
    let mut router = Router::new(cluster, crawl);
    let mut frames = Vec::new();
    let mut writer = FrameStreamWriter::new();
    let mut count = 0u32;
    let mut settled: Vec<Range<u64>> = Vec::new();
    let mut settle = |at: u64, end: u64| match settled.last_mut() {
        Some(last) if last.end == at => last.end = end,
        _ => settled.push(at..end),
    };
    let mut resume = start.resume;
    let walk_from = start.resume.min(start.offset);
    let (next_offset, last) = walk_stream(path, walk_from, |at, frame, read| {
        let says_context = matches!(frame.get(2), Some(&(TAG_CONTEXT | TAG_EVENT_V1)));
        if at < start.offset {
            if says_context {
                resume = at;
            }
            return ControlFlow::Continue(());
        }
        let end = at + frame.len() as u64;
        let event = match read {
            FrameRead::Context | FrameRead::BadContext(_) => {
                resume = at;
                settle(at, end);
                return ControlFlow::Continue(());
            }
            // A buck would refuse it for good, so the repair path leaves it out.
            FrameRead::BadEvent { .. } => {
                if says_context {
                    resume = at;
                }
                return ControlFlow::Continue(());
            }
            FrameRead::Event(event) => event,
        };
        if acked.covers(at, end) {
            settle(at, end);
        } else if !router.homes(&event).iter().any(|h| h == home) {
        } else if skip.contains(&event.id) {
            settle(at, end);
        } else {
            let before = frames.len();
            let fields = event.fields.unwrap_or(&[]);
            if !writer.push(&mut frames, &event.with_fields(fields)) {
                // Read back from a frame, it fits one: this cannot happen, and a buck
                // could not take it either.
                tracing::warn!(path = %path.display(), at, "an event of a spool bucket cannot be written again; it is left out");
            } else if frames.len() > MAX_CHUNK_BYTES {
                frames.truncate(before);
                return ControlFlow::Break(());
            } else {
                count += 1;
                settle(at, end);
            }
        }
        if says_context {
            resume = at;
        }
        ControlFlow::Continue(())
    })?;
    Ok(Chunk {
        frames: frames.into(),
        count,
        next_offset,
        next_resume: resume,
        last,
        settled,
        packed: None,
    })
}

/// Walks the frames of a bucket file from `offset` through one stream reader, calling
/// `f(offset, frame, read)` for each until it breaks. `offset` must be where the file
/// starts or a frame whose reading does not depend on those before it (a context frame or
/// a version-1 event). Returns what [`walk_frames`] does.
fn walk_stream(
    path: &Path,
    offset: u64,
    mut f: impl FnMut(u64, &[u8], FrameRead<'_>) -> ControlFlow<()>,
) -> std::io::Result<(u64, bool)> {
    let mut reader = FrameStreamReader::new();
    walk_frames(path, offset, |at, frame, payload| {
        f(at, frame, reader.read(payload))
    })
}

/// Walks the whole frames of a bucket file from `offset`, calling `f(offset, frame,
/// payload)` for each until it breaks. Returns where the walk stopped (the offset of the
/// frame `f` broke on, or the end of the last whole frame) and whether it reached the end.
/// A torn last frame (a crash while appending) is left out.
fn walk_frames(
    path: &Path,
    offset: u64,
    mut f: impl FnMut(u64, &[u8], &[u8]) -> ControlFlow<()>,
) -> std::io::Result<(u64, bool)> {
    let mut file = std::fs::File::open(path)?;
    let mut header = [0u8; SPOOL_HEADER_LEN];
    file.read_exact(&mut header)?;
    check_spool_header(&header).map_err(|e| invalid(e.to_string()))?;
    let mut pos = offset.max(SPOOL_HEADER_LEN as u64);
    file.seek(SeekFrom::Start(pos))?;
    let mut buf: Vec<u8> = Vec::with_capacity(READ_BLOCK);
    loop {
        let have = buf.len();
        buf.resize(have + READ_BLOCK, 0);
        let n = file.read(&mut buf[have..])?;
        buf.truncate(have + n);
        let mut consumed = 0;
        for item in FrameReader::new(&buf) {
            match item {
                Ok((at, payload)) => {
                    let end = at + 2 + payload.len();
                    if f(pos + at as u64, &buf[at..end], payload).is_break() {
                        return Ok((pos + at as u64, false));
                    }
                    consumed = end;
                }
                Err(FrameError::Incomplete { .. }) => break,
                Err(e @ FrameError::Empty { .. }) => {
                    return Err(invalid(format!(
                        "{}: {e} (after byte {pos})",
                        path.display()
                    )));
                }
            }
        }
        buf.drain(..consumed);
        pos += consumed as u64;
        if n == 0 {
            if !buf.is_empty() {
                tracing::warn!(path = %path.display(), at = pos, "spool bucket ends in a torn frame; it is left out");
            }
            return Ok((pos, true));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::frame::put_event_frame;
    use contracts::spool_file::spool_header;
    use contracts::{Event, EventFlags, EventId, Format};
    use parsers::stream_events::decode_stream;

    pub(crate) fn event(
        tailer: u64,
        offset: u64,
        crawl: &CrawlId,
        time_us: i64,
        raw_len: usize,
    ) -> Event {
        let raw = vec![b'x'; raw_len];
        Event {
            id: EventId {
                tailer,
                file_seq: 1,
                offset,
            },
            time_us,
            flags: EventFlags::default(),
            original_len: raw.len() as u64,
            format: Format::Plain,
            crawl: crawl.clone(),
            host: "h".into(),
            app: "a".into(),
            fields: vec![],
            raw,
        }
    }

    fn cluster() -> ClusterFile {
        let mut t = String::from("replicas = 1\n");
        for i in 0..3 {
            t.push_str(&format!("[[buck]]\nid = \"b{i}\"\ningest = \"127.0.0.1:1\"\nhttp_url = \"http://x\"\nsince = \"2026-01-01\"\n"));
        }
        ClusterFile::parse(&t, Path::new("c.toml")).unwrap()
    }

    #[test]
    fn chunks_cover_each_homes_frames_exactly_once() {
        let d = tempfile::tempdir().unwrap();
        let crawl = CrawlId::parse("c").unwrap();
        let c = cluster();
        let path = d.path().join("b.b");
        let mut buf = spool_header().to_vec();
        // Two days, 40 frames of ~60 KB: several chunks, homes differ by day (with luck;
        // the test computes rather than assumes the routing).
        let day_us = 86_400_000_000i64;
        let base = 1_780_000_000_000_000i64;
        let mut want: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for i in 0..40u64 {
            let t = base + (i as i64 % 2) * day_us;
            let e = event(1, i, &crawl, t, 60_000);
            assert!(put_event_frame(&mut buf, &e));
            for h in c.home_bucks(&crawl, e.day()).homes() {
                want.entry(h.clone()).or_default().push(i);
            }
        }
        buf.extend_from_slice(&[0, 9, 1]); // torn tail
        std::fs::write(&path, &buf).unwrap();

        let scan = scan_bucket(&path, &c, &crawl, &AckedRecord::default()).unwrap();
        assert_eq!(
            scan.expected,
            want.iter()
                .map(|(h, v)| (h.clone(), v.len() as u64))
                .collect()
        );
        // Frame 3 was refused for good: no chunk carries it.
        let skip: HashSet<EventId> = [EventId {
            tailer: 1,
            file_seq: 1,
            offset: 3,
        }]
        .into();
        for ids in want.values_mut() {
            ids.retain(|&i| i != 3);
        }
        for (home, ids) in &want {
            let mut got = Vec::new();
            let mut start = ChunkStart {
                offset: 0,
                resume: 0,
            };
            let mut chunks = 0;
            loop {
                let ch = read_chunk(
                    &path,
                    start,
                    home,
                    &c,
                    &crawl,
                    &skip,
                    &AckedRanges::default(),
                )
                .unwrap();
                assert!(ch.frames.len() <= MAX_CHUNK_BYTES);
                let (events, torn) = decode_stream(&ch.frames);
                assert!(torn.is_none());
                assert_eq!(events.len(), ch.count as usize);
                got.extend(events.into_iter().map(|e| e.unwrap().id.offset));
                start = ChunkStart {
                    offset: ch.next_offset,
                    resume: ch.next_resume,
                };
                chunks += 1;
                if ch.last {
                    break;
                }
            }
            assert_eq!(&got, ids, "home {home}");
            assert!(chunks >= 2, "expected several chunks for {home}");
        }
    }

    #[test]
    fn frames_a_home_acked_are_counted_and_left_out_of_its_chunks() {
        let d = tempfile::tempdir().unwrap();
        let crawl = CrawlId::parse("c").unwrap();
        let c = cluster();
        let path = d.path().join("b.b");
        let mut buf = spool_header().to_vec();
        let mut places = Vec::new();
        for i in 0..10u64 {
            let at = buf.len() as u64;
            assert!(put_event_frame(
                &mut buf,
                &event(1, i, &crawl, 1_780_000_000_000_000, 100)
            ));
            places.push(at..buf.len() as u64);
        }
        std::fs::write(&path, &buf).unwrap();
        let home = c
            .home_bucks(&crawl, event(1, 0, &crawl, 1_780_000_000_000_000, 1).day())
            .homes()[0]
            .clone();
        let mut acked = AckedRecord::default();
        let ranges = acked.homes.entry(home.clone()).or_default();
        // Frames 0-3 whole, and half of frame 6 (not enough to count).
        ranges.insert(places[0].start..places[3].end);
        ranges.insert(places[6].start..places[6].start + 10);
        let scan = scan_bucket(&path, &c, &crawl, &acked).unwrap();
        assert_eq!(scan.expected[&home], 10);
        assert_eq!(scan.acked[&home], 4);
        let ch = read_chunk(
            &path,
            ChunkStart {
                offset: 0,
                resume: 0,
            },
            &home,
            &c,
            &crawl,
            &HashSet::new(),
            &acked.homes[&home],
        )
        .unwrap();
        let (events, _) = decode_stream(&ch.frames);
        let got: Vec<u64> = events.into_iter().map(|e| e.unwrap().id.offset).collect();
        assert_eq!(got, vec![4, 5, 6, 7, 8, 9]);
        assert!(ch.last);
    }

    #[test]
    fn record_round_trips_and_checks_version() {
        let d = tempfile::tempdir().unwrap();
        let bucket = d.path().join("07.b");
        assert_eq!(DeliveryRecord::load(&bucket).unwrap(), None);
        let r = DeliveryRecord {
            version: DELIVERY_RECORD_VERSION,
            homes: ["a".to_string(), "b".to_string()].into(),
            delivered: ["a".to_string()].into(),
            expected: [("a".to_string(), 3), ("b".to_string(), 3)].into(),
            unrouted: 0,
        };
        r.save(&bucket).unwrap();
        assert!(d.path().join("07.b.delivered").exists());
        let back = DeliveryRecord::load(&bucket).unwrap().unwrap();
        assert_eq!(back, r);
        assert!(!back.complete());
        std::fs::write(
            d.path().join("07.b.delivered"),
            r#"{"version":7,"homes":[],"delivered":[]}"#,
        )
        .unwrap();
        let e = DeliveryRecord::load(&bucket).unwrap_err().to_string();
        assert!(e.contains("version 7 is not supported"), "{e}");
    }

    #[test]
    fn frames_without_a_home_keep_a_record_incomplete_and_v1_records_still_read() {
        let d = tempfile::tempdir().unwrap();
        let bucket = d.path().join("07.b");
        let mut r = DeliveryRecord {
            version: DELIVERY_RECORD_VERSION,
            homes: ["a".to_string()].into(),
            delivered: ["a".to_string()].into(),
            expected: [("a".to_string(), 3)].into(),
            unrouted: 2,
        };
        assert!(
            !r.complete(),
            "every home acked, but two frames wait for a home"
        );
        r.unrouted = 0;
        assert!(r.complete());
        std::fs::write(
            d.path().join("07.b.delivered"),
            r#"{"version":1,"homes":["a"],"delivered":["a"]}"#,
        )
        .unwrap();
        let v1 = DeliveryRecord::load(&bucket).unwrap().unwrap();
        assert_eq!((v1.version, v1.unrouted), (1, 0));
        assert!(v1.complete());
    }

    #[test]
    fn an_acked_chunk_vouches_only_for_the_frames_settled_for_its_home() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("b.b");
        let crawl = CrawlId::parse("c").unwrap();
        // Frames 0-1 on a day every buck takes, 2 on a day before any buck's `since`,
        // 3-4 on the first day again.
        let mut c = String::from("replicas = 1\n");
        c.push_str("[[buck]]\nid = \"x\"\ningest = \"127.0.0.1:1\"\nhttp_url = \"http://127.0.0.1:2\"\nsince = \"2026-01-02\"\n");
        let cluster = ClusterFile::parse(&c, Path::new("c.toml")).unwrap();
        let day = |d: u32| {
            chrono::NaiveDate::from_ymd_opt(2026, 1, d)
                .unwrap()
                .and_hms_opt(12, 0, 0)
                .unwrap()
                .and_utc()
                .timestamp_micros()
        };
        let mut bytes = spool_header().to_vec();
        let mut places = Vec::new();
        for (i, d) in [2, 2, 1, 2, 2].into_iter().enumerate() {
            let start = bytes.len() as u64;
            assert!(put_event_frame(
                &mut bytes,
                &event(1, i as u64, &crawl, day(d), 20)
            ));
            places.push(start..bytes.len() as u64);
        }
        std::fs::write(&path, &bytes).unwrap();
        let ch = read_chunk(
            &path,
            ChunkStart {
                offset: 0,
                resume: 0,
            },
            "x",
            &cluster,
            &crawl,
            &HashSet::new(),
            &AckedRanges::default(),
        )
        .unwrap();
        assert_eq!(ch.count, 4);
        assert_eq!(
            ch.settled,
            vec![
                places[0].start..places[1].end,
                places[3].start..places[4].end
            ]
        );
    }
}
