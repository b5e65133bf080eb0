//! Live packets: frames from the reader gathered per (crawl, day), cut at
//! `packet_max_bytes` or sent when `packet_max_delay` passes, to the homes or a stand-in.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use chrono::NaiveDate;
use contracts::CrawlId;
use contracts::frame::FrameReader;
use contracts::frame_stream::{FrameRead, FrameStreamReader, TAG_CONTEXT};
use contracts::transport::{Message, PackedFrames};
use tokio::time::Instant;

use super::{BucketShare, InFlight, Sent, ShipperState, Status};
use crate::pipeline::BucketKey;
use crate::shipping::buck_connection::Outgoing;

/// Events gathered for one (crawl, day) route, as a frame stream of their own.
pub(super) struct PacketBuilder {
    frames: Vec<u8>,
    /// Events (context frames are not counted).
    count: u32,
    buckets: Vec<BucketShare>,
    pub(super) deadline: Instant,
}

impl ShipperState {
    /// Whether some buck that is (or is about to be) up could not take all the live
    /// packets of one more input from the reader without passing its in-flight limit.
    /// One input is at most a read chunk of lines, which framing can grow; twice the
    /// chunk plus a packet's slack bounds it.
    pub fn live_saturated(&self) -> bool {
        let input_max = self
            .policy
            .read_chunk_bytes
            .saturating_mul(2)
            .saturating_add(self.policy.packet_max_bytes);
        let room = self.policy.inflight_max_bytes.saturating_sub(input_max);
        self.bucks
            .values()
            .any(|b| matches!(b.status, Status::Up | Status::Connecting) && b.live_bytes > room)
    }

    /// Frames just appended to `bucket`, all of events on `day`, lying at `ranges` of its
    /// file: their events are added to the route's packet, which is sent when full.
    ///
    /// The input is a frame stream (it starts with a context frame). Its event frames are
    /// copied into the packet as they are; where the packet's stream would not read them
    /// as the input's does (a new packet, a context or a bad frame in the input), a
    /// context frame of the reader's state goes first, so a packet reads on its own.
    /// Context frames are not copied, but their places in the file are settled with the
    /// events after them, so the ranges a home acks stay whole.
    pub fn on_live(
        &mut self,
        bucket: BucketKey,
        day: NaiveDate,
        frames: Bytes,
        ranges: Vec<Range<u64>>,
        now: Instant,
    ) {
        let max = self.policy.packet_max_bytes;
        let route = (bucket.crawl.clone(), day);
        let mut places = FilePlaces::new(ranges);
        let mut reader = FrameStreamReader::new();
        // The route's packet is taken out of the map for the whole input: the route is
        // hashed and cloned once per packet, not once per frame.
        let mut packet = self.packets.remove(&route);
        // Whether the packet's stream reads the input's next frame as the input does.
        let mut in_step = false;
        // Places of context frames not yet given to a packet's share.
        let mut contexts = BucketShare::new(bucket.clone());
        for item in FrameReader::new(&frames) {
            let (at, payload) = match item {
                Ok(frame) => frame,
                Err(e) => {
                    tracing::error!(bucket = ?bucket, "live frames from the reader are malformed ({e}); the rest are left to the repair send");
                    break;
                }
            };
            let frame = &frames[at..at + 2 + payload.len()];
            let place = places.next(frame.len() as u64);
            if payload.first() == Some(&TAG_CONTEXT) {
                match reader.read(payload) {
                    FrameRead::BadContext(e) => {
                        tracing::error!(bucket = ?bucket, at, "a live context frame from the reader does not decode ({e}); the repair send leaves its events out too");
                    }
                    _ => contexts.settle(place),
                }
                in_step = false;
                continue;
            }
            // A full packet is sent without this event, which opens the next one.
            if packet
                .as_ref()
                .is_some_and(|p| p.count > 0 && p.frames.len() + frame.len() > max)
                && let Some(full) = packet.take()
            {
                self.send_packet(&route, full);
            }
            let p = packet.get_or_insert_with(|| {
                in_step = false;
                self.new_packet(frames.len() - at, now)
            });
            let before = p.frames.len();
            if !in_step {
                // Nothing to resume (no context yet, or a frame that did not decode):
                // the read below refuses a compact event too.
                reader.put_resume_context(&mut p.frames);
            }
            match reader.read(payload) {
                FrameRead::Event(_) => {
                    p.frames.extend_from_slice(frame);
                    in_step = true;
                }
                other => {
                    if let FrameRead::BadContext(e) | FrameRead::BadEvent { error: e, .. } = other {
                        tracing::error!(bucket = ?bucket, at, "a live frame from the reader does not decode ({e}); the repair send leaves it out too");
                    }
                    p.frames.truncate(before);
                    in_step = false;
                    continue;
                }
            }
            add_to_share(p, &bucket, &mut contexts, place);
            if p.frames.len() >= max
                && let Some(full) = packet.take()
            {
                self.send_packet(&route, full);
            }
        }
        if let Some(mut p) = packet {
            if !contexts.ranges.is_empty() {
                add_context_places(&mut p, &bucket, &mut contexts);
            }
            if p.count > 0 {
                self.packets.insert(route, p);
            }
        }
    }

    /// An empty packet for an input with `left` bytes still to go.
    fn new_packet(&self, left: usize, now: Instant) -> PacketBuilder {
        // Room for what this input can still add, up to a full packet (and its last frame
        // unless a huge one): growing by doubling copied each packet once more.
        let room = left.min(self.policy.packet_max_bytes + 4096);
        PacketBuilder {
            frames: Vec::with_capacity(room),
            count: 0,
            buckets: Vec::new(),
            deadline: now + self.policy.packet_max_delay,
        }
    }

    /// `bucket` is sealed at `path`: every frame of it is sent before deciding what to
    /// repair. A bucket already tracked is not tracked twice.
    pub fn on_sealed(&mut self, bucket: BucketKey, path: std::path::PathBuf) {
        let routes: Vec<_> = self
            .packets
            .keys()
            .filter(|(c, _)| *c == bucket.crawl)
            .cloned()
            .collect();
        for r in routes {
            self.flush(&r);
        }
        self.track_sealed(bucket, path);
    }

    pub(super) fn flush_due(&mut self, now: Instant) {
        let due: Vec<_> = self
            .packets
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for r in due {
            self.flush(&r);
        }
    }

    /// Sends the packet of `route`, if any.
    fn flush(&mut self, route: &(CrawlId, NaiveDate)) {
        if let Some(p) = self.packets.remove(route) {
            self.send_packet(route, p);
        }
    }

    /// Sends packet `p` of `route` to the homes of (crawl, day), or to a stand-in.
    fn send_packet(&mut self, route: &(CrawlId, NaiveDate), p: PacketBuilder) {
        if p.count == 0 {
            return;
        }
        let frames = Bytes::from(p.frames);
        // Compressed once here for every home, rather than once per connection.
        let packed = match PackedFrames::new(frames.clone(), self.policy.compression_level) {
            Ok(packed) => Some(Arc::new(packed)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot compress a live packet once for all homes; each connection compresses it");
                None
            }
        };
        let order = self.cluster.home_bucks(&route.0, route.1);
        let homes = order.homes();
        if homes.is_empty() {
            tracing::warn!(crawl = %route.0.as_str(), day = %route.1, "no buck takes this crawl on this day (see `since` in the cluster file); the live copy is dropped, the spool keeps it");
            self.events.live_dropped(p.count.into());
            return;
        }
        let all_down = homes
            .iter()
            .all(|h| self.bucks.get(h).is_none_or(|b| b.status == Status::Down));
        if all_down
            && let Some(stand_in) = order
                .stand_ins()
                .iter()
                .find(|s| self.bucks.get(*s).is_some_and(|b| b.status == Status::Up))
        {
            let stand_in = stand_in.clone();
            self.enqueue_live(&stand_in, frames, packed, p.count, p.buckets, false);
            return;
        }
        for h in homes {
            self.enqueue_live(
                h,
                frames.clone(),
                packed.clone(),
                p.count,
                p.buckets.clone(),
                true,
            );
        }
    }

    /// Puts a live packet in `buck`'s in-flight table and queues it if the buck is up.
    /// Past the in-flight limit the live copy is dropped: the repair send covers it.
    fn enqueue_live(
        &mut self,
        buck: &str,
        frames: Bytes,
        packed: Option<Arc<PackedFrames>>,
        count: u32,
        buckets: Vec<BucketShare>,
        home: bool,
    ) {
        let Some(b) = self.bucks.get_mut(buck) else {
            return;
        };
        let bytes = frames.len();
        if b.live_bytes + bytes > self.policy.inflight_max_bytes {
            self.events.live_dropped(count.into());
            tracing::debug!(buck = %buck, "in-flight limit reached; live copy dropped, the repair send covers it");
            return;
        }
        let seq = b.take_seq();
        if home {
            for share in &buckets {
                *self
                    .live_pending
                    .entry(share.key.clone())
                    .or_default()
                    .entry(buck.to_owned())
                    .or_default() += u64::from(share.frames);
            }
        }
        let message = match packed {
            Some(packed) => Outgoing::Live { seq, packed },
            None => Outgoing::Message(Message::Live { seq, frames }),
        };
        b.inflight.insert(
            seq,
            InFlight {
                message,
                frames: count,
                what: Sent::Live {
                    buckets,
                    home,
                    bytes,
                },
                queued: false,
            },
        );
        b.transmit(seq);
        b.live_bytes += bytes;
        self.events.live_packet_sent(count, !home);
    }

    /// A home acked a live packet holding `buckets`' frames: they count as delivered
    /// (a frame rejected for good is settled too: it is never sent again).
    pub(super) fn on_live_acked(&mut self, buck: &str, buckets: Vec<BucketShare>) {
        for share in buckets {
            let (key, n) = (&share.key, share.frames);
            if let Some(p) = self.live_pending.get_mut(key).and_then(|h| h.get_mut(buck)) {
                *p = p.saturating_sub(n.into());
            }
            *self
                .live_acked
                .entry(key.clone())
                .or_default()
                .entry(buck.to_owned())
                .or_default() += u64::from(n);
            self.ledger.record(key, buck, share.ranges.iter().cloned());
            if self.sealed.contains_key(key) {
                self.evaluate(key);
            }
        }
    }
}

/// Counts one more event in `p`, at `place` in `bucket`'s file, after the places of the
/// context frames read since the last event.
fn add_to_share(
    p: &mut PacketBuilder,
    bucket: &BucketKey,
    contexts: &mut BucketShare,
    place: Option<Range<u64>>,
) {
    p.count += 1;
    add_context_places(p, bucket, contexts);
    if let Some(share) = p.buckets.last_mut() {
        share.add(place);
    }
}

/// Moves the places in `contexts` to `p`'s share of `bucket` (a new share if its last is
/// another bucket's).
fn add_context_places(p: &mut PacketBuilder, bucket: &BucketKey, contexts: &mut BucketShare) {
    if p.buckets.last().is_none_or(|share| share.key != *bucket) {
        p.buckets.push(BucketShare::new(bucket.clone()));
    }
    if let Some(share) = p.buckets.last_mut() {
        for r in contexts.ranges.drain(..) {
            share.settle(Some(r));
        }
    }
}

/// Walks the file ranges of a live input alongside its frames: each frame's place in the
/// bucket file, or `None` when the ranges do not account for it.
struct FilePlaces {
    ranges: std::vec::IntoIter<Range<u64>>,
    current: Option<Range<u64>>,
}

impl FilePlaces {
    fn new(ranges: Vec<Range<u64>>) -> FilePlaces {
        let mut ranges = ranges.into_iter();
        let current = ranges.next();
        FilePlaces { ranges, current }
    }

    /// The place of the next frame, `len` bytes long. Ranges that do not split into the
    /// frames exactly end the walk: a wrong place would record acks for other frames.
    fn next(&mut self, len: u64) -> Option<Range<u64>> {
        loop {
            let r = self.current.as_mut()?;
            if r.start == r.end {
                self.current = self.ranges.next();
                continue;
            }
            if r.end - r.start < len {
                self.current = None;
                return None;
            }
            let place = r.start..r.start + len;
            r.start += len;
            return Some(place);
        }
    }
}
