//! Live packets: frames from the reader gathered per (crawl, day), cut at
//! `packet_max_bytes` or sent when `packet_max_delay` passes, to the homes or a stand-in.

use std::ops::Range;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use chrono::NaiveDate;
use contracts::CrawlId;
use contracts::frame::{FrameError, FrameReader};
use contracts::transport::{Message, PackedFrames};
use tokio::time::Instant;

use super::{BucketShare, InFlight, Sent, ShipperState, Status};
use crate::pipeline::BucketKey;
use crate::shipping::buck_connection::Outgoing;

/// Frames gathered for one (crawl, day) route.
pub(super) struct PacketBuilder {
    frames: BytesMut,
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
    /// file: added to the route's packet, which is sent when full.
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
        let mut items = FrameReader::new(&frames).peekable();
        // One pass of the outer loop per packet: the route is hashed and cloned once per
        // packet, not once per frame.
        loop {
            let first_at = match items.peek() {
                None => break,
                Some(Ok((at, _))) => *at,
                Some(Err(e @ (FrameError::Incomplete { .. } | FrameError::Empty { .. }))) => {
                    tracing::error!(bucket = ?bucket, "live frames from the reader are malformed ({e}); the rest are left to the repair send");
                    break;
                }
            };
            let delay = self.policy.packet_max_delay;
            let p = self.packets.entry(route.clone()).or_insert_with(|| {
                // Room for what this input can still add, up to a full packet (and its
                // last frame unless a huge one): growing by doubling copied each packet
                // once more.
                let room = (frames.len() - first_at).min(max + 4096);
                PacketBuilder {
                    frames: BytesMut::with_capacity(room),
                    count: 0,
                    buckets: Vec::new(),
                    deadline: now + delay,
                }
            });
            let mut full = false;
            while let Some(Ok((at, payload))) = items.peek() {
                let frame = &frames[*at..*at + 2 + payload.len()];
                if p.count > 0 && p.frames.len() + frame.len() > max {
                    full = true;
                    break;
                }
                items.next();
                p.frames.extend_from_slice(frame);
                p.count += 1;
                let place = places.next(frame.len() as u64);
                match p.buckets.last_mut() {
                    Some(share) if share.key == bucket => share.add(place),
                    _ => {
                        let mut share = BucketShare::new(bucket.clone());
                        share.add(place);
                        p.buckets.push(share);
                    }
                }
                if p.frames.len() >= max {
                    full = true;
                    break;
                }
            }
            if full {
                self.flush(&route);
            }
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

    /// Sends the packet of `route` to the homes of (crawl, day), or to a stand-in.
    fn flush(&mut self, route: &(CrawlId, NaiveDate)) {
        let Some(p) = self.packets.remove(route) else {
            return;
        };
        if p.count == 0 {
            return;
        }
        let frames = p.frames.freeze();
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
