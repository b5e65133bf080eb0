//! The state machine driven by hand: no sockets, no files, time paused.

// A frame's place in a bucket file is one range, not a range of values.
#![allow(clippy::single_range_in_vec_init)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use contracts::frame::FrameReader;
use contracts::frame_stream::{FrameRead, FrameStreamReader, FrameStreamWriter};
use contracts::transport::Message;
use contracts::{BuckEntry, Event, EventFlags, Format};
use parsers::stream_events::decode_stream;

use super::*;
use crate::shipping::delivery::{BucketScan, Chunk};

const DAY: (i32, u32, u32) = (2026, 11, 22);
/// Where the first frame of a bucket file lies (after its header).
const FIRST_FRAME_AT: u64 = 16;

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(DAY.0, DAY.1, DAY.2).unwrap()
}

fn crawl() -> CrawlId {
    CrawlId::parse("crawl-a").unwrap()
}

fn bucket_on(day: NaiveDate, minute: u32) -> BucketKey {
    BucketKey {
        crawl: crawl(),
        start: Utc
            .from_utc_datetime(&day.and_hms_opt(1, minute, 0).unwrap())
            .to_utc(),
    }
}

fn bucket(minute: u32) -> BucketKey {
    bucket_on(day(), minute)
}

fn path_of(b: &BucketKey) -> PathBuf {
    PathBuf::from(format!(
        "/spool/{}/{}.b",
        b.crawl.as_str(),
        b.start.timestamp()
    ))
}

fn entry(id: &str, since: NaiveDate) -> BuckEntry {
    BuckEntry {
        id: id.into(),
        ingest: format!("{id}.invalid:1"),
        http_url: format!("http://{id}.invalid"),
        public_key: None,
        since,
    }
}

fn cluster_of(ids: &[&str]) -> ClusterFile {
    let since = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
    ClusterFile {
        replicas: 2,
        bucks: ids.iter().map(|id| entry(id, since)).collect(),
    }
}

fn policy() -> ShippingPolicy {
    ShippingPolicy {
        spool_dir: "/spool".into(),
        bucket_interval_secs: 60,
        packet_max_bytes: 64 * 1024,
        packet_max_delay: Duration::from_millis(10),
        compression_level: 1,
        inflight_max_bytes: 1024 * 1024,
        read_chunk_bytes: 64 * 1024,
        repair_delay: RepairDelay::exactly(REPAIR_DELAY),
    }
}

const REPAIR_DELAY: Duration = Duration::from_secs(5);

/// `n` events of `day`, with ids from `first`, and their frames.
fn events_on(day: NaiveDate, first: u64, n: u64) -> (Vec<Event>, Bytes) {
    let midnight: DateTime<Utc> = Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).unwrap());
    let events: Vec<Event> = (first..first + n)
        .map(|i| {
            let raw = format!("line {i}").into_bytes();
            Event {
                id: EventId {
                    tailer: 7,
                    file_seq: 1,
                    offset: i * 100,
                },
                time_us: midnight.timestamp_micros() + i as i64,
                flags: EventFlags::default(),
                original_len: raw.len() as u64,
                format: Format::Plain,
                crawl: crawl(),
                host: "crawler-1".into(),
                app: "heritrix".into(),
                fields: vec![],
                raw,
            }
        })
        .collect();
    let mut out = Vec::new();
    let mut writer = FrameStreamWriter::new();
    for e in &events {
        assert!(writer.push(&mut out, &e.view()));
    }
    (events, out.into())
}

/// A state over `cluster`, with what it tells the shell.
struct Harness {
    state: ShipperState,
    events: Arc<TailerEvents>,
    cluster: Arc<ClusterFile>,
}

impl Harness {
    fn new(cluster: ClusterFile, policy: ShippingPolicy) -> Harness {
        let events = Arc::new(TailerEvents::default());
        let cluster = Arc::new(cluster);
        let state = ShipperState::new(cluster.clone(), policy, events.clone());
        Harness {
            state,
            events,
            cluster,
        }
    }

    /// The homes and stand-ins of the crawl on `day`.
    fn routing(&self, day: NaiveDate) -> (Vec<String>, Vec<String>) {
        let h = self.cluster.home_bucks(&crawl(), day);
        (h.homes().to_vec(), h.stand_ins().to_vec())
    }

    fn commands(&mut self) -> Vec<Command> {
        self.state.take_commands()
    }

    /// Every message queued for `buck`'s connection, as (seq, frames).
    fn sends(&mut self, buck: &str) -> Vec<(u64, Bytes)> {
        std::iter::from_fn(|| self.state.next_send(buck))
            .map(|m| match m {
                Outgoing::Live { seq, packed } | Outgoing::Chunk { seq, packed, .. } => {
                    (seq, packed.frames().clone())
                }
                Outgoing::Message(
                    Message::Live { seq, frames } | Message::BucketChunk { seq, frames, .. },
                ) => (seq, frames),
                Outgoing::Message(other) => panic!("not a data message: {other:?}"),
            })
            .collect()
    }

    fn up(&mut self, bucks: &[&str]) {
        for (i, b) in bucks.iter().enumerate() {
            self.state.on_link_up(b, 100 + i as u64);
        }
    }

    fn live(&mut self, bucket: &BucketKey, day: NaiveDate, frames: Bytes) {
        let len = frames.len() as u64;
        self.state.on_live(
            bucket.clone(),
            day,
            frames,
            vec![FIRST_FRAME_AT..FIRST_FRAME_AT + len],
            Instant::now(),
        );
    }

    /// Seals `bucket` and answers its scan with `expected` frames per home.
    fn seal(&mut self, bucket: &BucketKey, expected: &[(&str, u64)]) {
        self.state.on_sealed(bucket.clone(), path_of(bucket));
        let scans: Vec<_> = self
            .commands()
            .into_iter()
            .filter(|c| matches!(c, Command::ScanBucket { bucket: b, .. } if b == bucket))
            .collect();
        assert_eq!(scans.len(), 1, "one scan asked for {bucket:?}");
        let scan = BucketScan {
            expected: expected.iter().map(|(h, n)| (h.to_string(), *n)).collect(),
            ..BucketScan::default()
        };
        self.state.on_scanned(
            bucket.clone(),
            Ok(Scanned {
                scan,
                delivery: None,
                acked: AckedRecord::default(),
            }),
            Instant::now(),
        );
    }

    fn ack(&mut self, buck: &str, seq: u64) {
        self.state.on_ack(buck, seq, vec![]);
    }

    fn counter(&self, f: impl Fn(&TailerEvents) -> &std::sync::atomic::AtomicU64) -> u64 {
        f(&self.events).load(Ordering::Relaxed)
    }
}

/// The delivery records among `commands`, as (delivered homes, complete).
fn delivery_records(commands: &[Command]) -> Vec<(BTreeSet<String>, bool)> {
    commands
        .iter()
        .filter_map(|c| match c {
            Command::WriteRecord(SidecarWrite::Delivery {
                record, complete, ..
            }) => Some((record.delivered.clone(), *complete)),
            _ => None,
        })
        .collect()
}

fn chunk_reads(commands: Vec<Command>) -> Vec<ChunkRequest> {
    commands
        .into_iter()
        .filter_map(|c| match c {
            Command::ReadChunk(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn whole_chunk(frames: Bytes, count: u32) -> Chunk {
    let end = FIRST_FRAME_AT + frames.len() as u64;
    Chunk {
        frames,
        count,
        next_offset: end,
        next_resume: FIRST_FRAME_AT,
        settled: vec![FIRST_FRAME_AT..end],
        last: true,
        packed: None,
    }
}

async fn pass(d: Duration) -> Instant {
    tokio::time::advance(d).await;
    Instant::now()
}

#[tokio::test(start_paused = true)]
async fn a_bucket_is_recorded_delivered_only_once_every_home_acked_all_of_it() {
    let mut h = Harness::new(cluster_of(&["b0", "b1", "b2"]), policy());
    let connects = h
        .commands()
        .into_iter()
        .filter(|c| matches!(c, Command::Connect(_)))
        .count();
    assert_eq!(connects, 3, "a connection per buck");
    let (homes, _) = h.routing(day());
    h.up(&["b0", "b1", "b2"]);
    let b = bucket(0);
    let (_, frames) = events_on(day(), 0, 3);
    h.live(&b, day(), frames.clone());
    assert!(h.sends(&homes[0]).is_empty(), "not before the packet delay");
    let now = pass(Duration::from_millis(10)).await;
    h.state.on_tick(now);
    let to_first = h.sends(&homes[0]);
    let to_second = h.sends(&homes[1]);
    assert_eq!(to_first, vec![(0, frames.clone())]);
    assert_eq!(to_second, vec![(0, frames)]);
    h.seal(&b, &[(&homes[0], 3), (&homes[1], 3)]);

    h.ack(&homes[0], 0);
    let records = delivery_records(&h.commands());
    assert!(
        records.iter().all(|(_, complete)| !complete),
        "one home acked: not complete yet: {records:?}"
    );
    assert_eq!(h.counter(|e| &e.buckets_delivered_total), 0);

    h.ack(&homes[1], 0);
    let records = delivery_records(&h.commands());
    let all: BTreeSet<String> = homes.iter().cloned().collect();
    assert_eq!(records, vec![(all, true)]);
    assert_eq!(h.counter(|e| &e.buckets_delivered_total), 1);
    assert_eq!(h.counter(|e| &e.buckets_pending), 0);
}

#[tokio::test(start_paused = true)]
async fn a_home_that_was_down_is_sent_its_unacked_packets_when_it_returns() {
    let mut h = Harness::new(cluster_of(&["b0", "b1", "b2"]), policy());
    let (homes, _) = h.routing(day());
    h.up(&[&homes[0]]);
    h.state.on_link_down(&homes[1], 0);
    let (_, frames) = events_on(day(), 0, 2);
    h.live(&bucket(0), day(), frames.clone());
    h.state.on_sealed(bucket(0), path_of(&bucket(0)));
    assert_eq!(h.sends(&homes[0]).len(), 1);
    assert!(
        h.sends(&homes[1]).is_empty(),
        "nothing goes to a home that is down"
    );
    assert_eq!(h.state.in_flight(&homes[1]), vec![0], "kept for its return");

    h.state.on_link_up(&homes[1], 9);
    assert_eq!(h.sends(&homes[1]), vec![(0, frames)]);
}

#[tokio::test(start_paused = true)]
async fn a_home_down_at_the_seal_gets_the_bucket_by_repair_when_it_returns_after_the_delay() {
    let mut h = Harness::new(cluster_of(&["b0", "b1", "b2"]), policy());
    let (homes, _) = h.routing(day());
    let (up, down) = (homes[0].clone(), homes[1].clone());
    h.up(&[&up]);
    h.state.on_link_down(&down, 0);
    // Left by an earlier run: no live copy reached any home.
    let b = bucket(0);
    let (_, frames) = events_on(day(), 0, 4);
    h.seal(&b, &[(&up, 4), (&down, 4)]);

    let now = pass(REPAIR_DELAY - Duration::from_millis(1)).await;
    h.state.on_tick(now);
    assert!(
        chunk_reads(h.commands()).is_empty(),
        "no repair before the delay"
    );
    let now = pass(Duration::from_millis(1)).await;
    h.state.on_tick(now);
    let reads = chunk_reads(h.commands());
    assert_eq!(reads.len(), 1, "a repair for the home that is up only");
    assert_eq!(
        (reads[0].home.as_str(), reads[0].start.offset),
        (up.as_str(), 0)
    );
    h.state
        .on_chunk_read(reads[0].job, Ok(whole_chunk(frames.clone(), 4)));
    let sent = h.sends(&up);
    assert_eq!(sent.len(), 1);
    h.ack(&up, sent[0].0);
    let records = delivery_records(&h.commands());
    assert!(
        records.iter().all(|(_, complete)| !complete),
        "one home of two has it: {records:?}"
    );

    h.state.on_link_up(&down, 5);
    let reads = chunk_reads(h.commands());
    assert_eq!(reads.len(), 1, "re-offered when it returns");
    assert_eq!(reads[0].home, down);
    h.state
        .on_chunk_read(reads[0].job, Ok(whole_chunk(frames.clone(), 4)));
    let sent = h.sends(&down);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1, frames);
    h.ack(&down, sent[0].0);
    let records = delivery_records(&h.commands());
    assert_eq!(records.len(), 1);
    assert!(records[0].1, "both homes have it: {records:?}");
    assert_eq!(h.counter(|e| &e.repair_buckets_total), 2);
}

#[tokio::test(start_paused = true)]
async fn a_nacked_packet_is_sent_again_only_once_its_retry_after_has_passed() {
    let mut h = Harness::new(cluster_of(&["b0", "b1"]), policy());
    h.up(&["b0", "b1"]);
    let (_, frames) = events_on(day(), 0, 2);
    h.live(&bucket(0), day(), frames.clone());
    h.state.on_sealed(bucket(0), path_of(&bucket(0)));
    assert_eq!(h.sends("b0").len(), 1);
    assert_eq!(h.sends("b1").len(), 1);

    h.state.on_nack("b0", 0, 500, "disk full", Instant::now());
    assert_eq!(h.counter(|e| &e.nacks_total), 1);
    let now = pass(Duration::from_millis(499)).await;
    h.state.on_tick(now);
    assert!(
        h.sends("b0").is_empty(),
        "no re-send before the retry-after"
    );
    let now = pass(Duration::from_millis(1)).await;
    h.state.on_tick(now);
    assert_eq!(h.sends("b0"), vec![(0, frames)]);
    assert!(
        h.sends("b1").is_empty(),
        "the other home acked nothing wrong"
    );
}

#[tokio::test(start_paused = true)]
async fn a_nack_delay_is_held_between_one_millisecond_and_one_minute() {
    let mut h = Harness::new(cluster_of(&["b0", "b1"]), policy());
    h.up(&["b0", "b1"]);
    let (_, frames) = events_on(day(), 0, 1);
    h.live(&bucket(0), day(), frames);
    h.state.on_sealed(bucket(0), path_of(&bucket(0)));
    h.sends("b0");

    h.state.on_nack("b0", 0, u32::MAX, "busy", Instant::now());
    let now = pass(Duration::from_millis(MAX_RETRY_AFTER_MS - 1)).await;
    h.state.on_tick(now);
    assert!(h.sends("b0").is_empty());
    let now = pass(Duration::from_millis(1)).await;
    h.state.on_tick(now);
    assert_eq!(
        h.sends("b0").len(),
        1,
        "a huge retry-after is cut to a minute"
    );

    h.state.on_nack("b0", 0, 0, "busy", Instant::now());
    assert_eq!(
        h.state.next_deadline(),
        Some(Instant::now() + Duration::from_millis(1))
    );
    h.state.on_tick(Instant::now());
    assert!(h.sends("b0").is_empty(), "a zero retry-after still waits");
    let now = pass(Duration::from_millis(1)).await;
    h.state.on_tick(now);
    assert_eq!(h.sends("b0").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_retry_for_a_connection_that_ended_is_dropped_and_the_next_one_resends_all() {
    let mut h = Harness::new(cluster_of(&["b0", "b1"]), policy());
    h.state.on_link_up("b0", 1);
    h.state.on_link_up("b1", 2);
    let (_, frames) = events_on(day(), 0, 1);
    h.live(&bucket(0), day(), frames);
    h.state.on_sealed(bucket(0), path_of(&bucket(0)));
    h.sends("b0");
    h.state.on_nack("b0", 0, 100, "busy", Instant::now());
    // A report of an older connection changes nothing.
    h.state.on_link_down("b0", 7);
    assert!(h.state.is_up("b0"));
    h.state.on_link_down("b0", 1);
    h.state.on_link_up("b0", 3);
    assert_eq!(
        h.sends("b0").len(),
        1,
        "the new connection gets what is unacked"
    );
    let now = pass(Duration::from_millis(100)).await;
    h.state.on_tick(now);
    assert!(
        h.sends("b0").is_empty(),
        "the old connection's retry is void"
    );
}

#[tokio::test(start_paused = true)]
async fn a_rejected_frame_is_counted_and_left_out_of_every_later_send() {
    let mut h = Harness::new(cluster_of(&["b0", "b1"]), policy());
    h.up(&["b0", "b1"]);
    let b = bucket(0);
    let (events, frames) = events_on(day(), 0, 3);
    h.live(&b, day(), frames);
    h.state.on_sealed(b.clone(), path_of(&b));
    h.commands();
    assert_eq!(h.sends("b0").len(), 1);
    assert_eq!(h.sends("b1").len(), 1);
    h.state.on_ack(
        "b0",
        0,
        vec![RejectedFrame {
            index: 1,
            reason: "invalid crawl id".into(),
        }],
    );
    h.ack("b1", 0);
    assert_eq!(h.counter(|e| &e.frames_rejected_total), 1);
    assert_eq!(h.counter(|e| &e.frames_acked_total), 5);
    assert!(h.state.in_flight("b0").is_empty(), "the packet is settled");

    // The bucket holds three more frames no home got live: b0 is repaired, without the
    // rejected one.
    h.state.on_scanned(
        b.clone(),
        Ok(Scanned {
            scan: BucketScan {
                expected: BTreeMap::from([("b0".into(), 6), ("b1".into(), 6)]),
                ..BucketScan::default()
            },
            delivery: None,
            acked: AckedRecord::default(),
        }),
        Instant::now(),
    );
    let now = pass(REPAIR_DELAY).await;
    h.state.on_tick(now);
    let reads = chunk_reads(h.commands());
    assert_eq!(reads.len(), 2);
    for r in &reads {
        assert_eq!(r.skip, HashSet::from([events[1].id]), "for {}", r.home);
    }
    assert!(h.sends("b0").is_empty() && h.sends("b1").is_empty());
}

#[tokio::test(start_paused = true)]
async fn while_every_home_is_down_a_stand_in_takes_the_live_packets() {
    let mut h = Harness::new(cluster_of(&["b0", "b1", "b2", "b3"]), policy());
    let (homes, stand_ins) = h.routing(day());
    let (first, second) = (stand_ins[0].clone(), stand_ins[1].clone());
    h.up(&[&first, &second]);
    h.state.on_link_down(&homes[0], 0);
    let b = bucket(0);
    let (_, frames) = events_on(day(), 0, 2);

    // One home is still connecting: it may come up, so no stand-in yet.
    h.live(&b, day(), frames.clone());
    h.state.on_tick(pass(Duration::from_millis(10)).await);
    assert!(h.sends(&first).is_empty());
    assert_eq!(h.state.in_flight(&homes[1]), vec![0]);

    h.state.on_link_down(&homes[1], 0);
    h.live(&b, day(), frames.clone());
    h.state.on_tick(pass(Duration::from_millis(10)).await);
    assert_eq!(
        h.sends(&first),
        vec![(0, frames)],
        "the first stand-in that is up"
    );
    assert!(h.sends(&second).is_empty());
    assert_eq!(
        h.state.in_flight(&homes[0]),
        vec![0],
        "only the first packet"
    );
    assert_eq!(h.counter(|e| &e.stand_in_packets_total), 1);

    // A stand-in's ack is an extra copy, not delivery.
    h.seal(&b, &[(&homes[0], 4), (&homes[1], 4)]);
    h.ack(&first, 0);
    assert!(delivery_records(&h.commands()).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_cluster_change_moves_homes_for_later_days_only() {
    let today = day();
    let tomorrow = today.succ_opt().unwrap();
    let old = cluster_of(&["b0", "b1", "b2"]);
    let mut new = old.clone();
    let added: Vec<String> = (0..20).map(|i| format!("n{i}")).collect();
    for id in &added {
        new.bucks.push(entry(id, tomorrow));
    }
    let old_homes = old.home_bucks(&crawl(), today).homes().to_vec();
    let new_homes = new.home_bucks(&crawl(), tomorrow).homes().to_vec();
    assert!(
        new_homes.iter().any(|h| h.starts_with('n')),
        "the test needs a new buck among tomorrow's homes: {new_homes:?}"
    );

    let mut h = Harness::new(old, policy());
    h.up(&["b0", "b1", "b2"]);
    h.commands();
    h.state.on_cluster(Arc::new(new));
    let commands = h.commands();
    assert!(
        commands
            .iter()
            .all(|c| matches!(c, Command::Connect(e) if e.id.starts_with('n'))),
        "only the new bucks are connected, none closed: {commands:?}"
    );
    assert_eq!(commands.len(), added.len());
    let added: Vec<&str> = added.iter().map(String::as_str).collect();
    h.up(&added);

    let (_, frames) = events_on(today, 0, 1);
    h.live(&bucket_on(today, 0), today, frames);
    let (_, later) = events_on(tomorrow, 10, 1);
    h.live(&bucket_on(tomorrow, 0), tomorrow, later);
    h.state.on_tick(pass(Duration::from_millis(10)).await);
    let mut got_today = Vec::new();
    let mut got_tomorrow = Vec::new();
    for buck in ["b0", "b1", "b2"].iter().chain(&added) {
        for (_, f) in h.sends(buck) {
            let (events, torn) = decode_stream(&f);
            assert!(torn.is_none());
            for event in events {
                match event.unwrap().day() == today {
                    true => got_today.push(buck.to_owned()),
                    false => got_tomorrow.push(buck.to_owned()),
                }
            }
        }
    }
    got_today.sort();
    got_tomorrow.sort();
    let (mut want_today, mut want_tomorrow) = (old_homes, new_homes);
    want_today.sort();
    want_tomorrow.sort();
    assert_eq!(got_today, want_today, "today keeps its homes");
    assert_eq!(
        got_tomorrow, want_tomorrow,
        "tomorrow goes to the new routing"
    );
}

#[tokio::test(start_paused = true)]
async fn a_buck_that_leaves_the_cluster_is_closed_and_a_changed_one_reconnected() {
    let mut h = Harness::new(cluster_of(&["b0", "b1", "b2"]), policy());
    h.up(&["b0", "b1", "b2"]);
    h.commands();
    let mut next = cluster_of(&["b0", "b1"]);
    next.bucks[1].ingest = "elsewhere.invalid:2".into();
    h.state.on_cluster(Arc::new(next));
    let commands: Vec<String> = h
        .commands()
        .iter()
        .map(|c| match c {
            Command::Connect(e) => format!("connect {}", e.id),
            Command::Disconnect { buck } => format!("disconnect {buck}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        commands,
        ["disconnect b2", "disconnect b1", "connect b1"],
        "b2 left, b1 moved"
    );
    assert!(!h.state.is_up("b1"), "reconnecting");
}

#[tokio::test(start_paused = true)]
async fn past_the_in_flight_limit_the_live_copy_is_dropped_and_input_paused() {
    let mut p = policy();
    let (events, frames) = events_on(day(), 0, 20);
    assert_eq!(events.len(), 20);
    // Each packet is a stream of its own: a context frame of the reader's state before
    // its event, then the event's frame as the reader spooled it.
    let mut reader = FrameStreamReader::new();
    let mut limit = 0;
    for item in FrameReader::new(&frames) {
        let (_, payload) = item.expect("whole frames");
        let mut context = Vec::new();
        reader.put_resume_context(&mut context);
        if let FrameRead::Event(_) = reader.read(payload) {
            limit += context.len() + 2 + payload.len();
        }
    }
    p.inflight_max_bytes = limit;
    p.read_chunk_bytes = 0;
    p.packet_max_bytes = 1;
    let mut h = Harness::new(cluster_of(&["b0", "b1"]), p);
    assert!(!h.state.live_saturated());
    h.up(&["b0", "b1"]);
    h.live(&bucket(0), day(), frames.clone());
    assert_eq!(h.sends("b0").len(), 20, "one frame per packet");
    assert!(h.state.live_saturated(), "no room for another input");
    h.live(&bucket(0), day(), frames);
    assert!(h.sends("b0").is_empty());
    assert_eq!(
        h.counter(|e| &e.live_dropped_total),
        40,
        "20 frames, two homes"
    );
    h.ack("b0", 0);
    h.ack("b1", 0);
    assert!(!h.state.live_saturated(), "an ack makes room");
}

#[tokio::test(start_paused = true)]
async fn packets_are_cut_at_their_size_limit_and_a_duplicate_ack_counts_once() {
    let mut p = policy();
    let (events, frames) = events_on(day(), 0, 10);
    p.packet_max_bytes = frames.len() / 2;
    let mut h = Harness::new(cluster_of(&["b0", "b1"]), p);
    h.up(&["b0", "b1"]);
    h.live(&bucket(0), day(), frames.clone());
    let full: Vec<_> = h.sends("b0");
    assert!(!full.is_empty());
    assert!(full.iter().all(|(_, f)| f.len() <= frames.len() / 2));
    h.state.on_sealed(bucket(0), path_of(&bucket(0)));
    let all: Vec<_> = full.into_iter().chain(h.sends("b0")).collect();
    // Each packet is a stream of its own (it starts with a context frame).
    let joined: Vec<Event> = all
        .iter()
        .flat_map(|(_, f)| decode_stream(f).0)
        .map(|e| e.expect("decodes"))
        .collect();
    assert_eq!(joined, events, "every event once, in order");

    h.ack("b0", 0);
    h.ack("b0", 0);
    let acked = h.counter(|e| &e.frames_acked_total);
    let first = all[0].1.len();
    assert!(
        acked > 0 && acked < 10,
        "{acked} frames counted for a {first}-byte packet"
    );
}
