//! `FrameBatch`: the frames of one read of one file, encoded as the reader builds their
//! events, with each event's day.
//!
//! The reader encodes every event straight into one buffer (no `Event` is ever owned on
//! this path) as a frame stream (`contracts::frame_stream`): a context frame says what the
//! events share, then each event is a compact frame. The spool writer appends that buffer
//! to the bucket file as it is, and the live copy for the shipper is the same buffer,
//! handed over without a copy when all its events share a day (the common case); only a
//! batch that spans days is split per day. So that each piece reads on its own, a batch
//! starts with a context frame, and so does every run of one day.

use std::ops::Range;

use bytes::Bytes;
use chrono::NaiveDate;
use contracts::EventRef;
use contracts::frame_stream::FrameStreamWriter;

/// Microseconds in a day.
const DAY_US: i64 = 86_400_000_000;

/// Consecutive events that fall on the same UTC day: a frame stream of its own (it
/// starts with a context frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayRun {
    /// The UTC day of their event times.
    pub day: NaiveDate,
    /// Where they are in [`FrameBatch::bytes`].
    pub bytes: Range<usize>,
    /// How many events (context frames are not counted).
    pub count: u32,
}

/// Frames of one crawl, in read order, with their days.
#[derive(Debug, Default)]
pub struct FrameBatch {
    frames: Vec<u8>,
    writer: FrameStreamWriter,
    runs: Vec<DayRun>,
    /// Events (context frames are not counted).
    count: usize,
    /// The last day computed, by day number: consecutive lines nearly always share it, and
    /// a comparison is cheaper than a calendar conversion.
    last_day: Option<(i64, NaiveDate)>,
}

impl FrameBatch {
    /// An empty batch.
    pub fn new() -> FrameBatch {
        FrameBatch::default()
    }

    /// Appends the frame of `event` (after a context frame when it starts the batch, a
    /// day, or a new context). Returns false, and appends nothing, when it does not fit a
    /// frame (events cut by `EventRef::fit` always do).
    pub fn push(&mut self, event: &EventRef<'_>) -> bool {
        let at = self.frames.len();
        let key = event.time_us.div_euclid(DAY_US);
        let day = match self.last_day {
            Some((k, day)) if k == key => day,
            _ => {
                let day = event.day();
                self.last_day = Some((key, day));
                day
            }
        };
        if self.runs.last().is_none_or(|run| run.day != day) {
            self.writer.restart();
        }
        if !self.writer.push(&mut self.frames, event) {
            return false;
        }
        let end = self.frames.len();
        match self.runs.last_mut() {
            Some(run) if run.day == day => {
                run.bytes.end = end;
                run.count += 1;
            }
            _ => self.runs.push(DayRun {
                day,
                bytes: at..end,
                count: 1,
            }),
        }
        self.count += 1;
        true
    }

    /// Whether there are no events.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Number of events (context frames are not counted).
    pub fn len(&self) -> usize {
        self.count
    }

    /// The frames, concatenated.
    pub fn bytes(&self) -> &[u8] {
        &self.frames
    }

    /// The frames' days, as runs in order (a day may come back after another).
    pub fn runs(&self) -> &[DayRun] {
        &self.runs
    }

    /// The day of every event, if they all share one.
    pub fn single_day(&self) -> Option<NaiveDate> {
        let first = self.runs.first()?.day;
        self.runs.iter().all(|r| r.day == first).then_some(first)
    }

    /// Takes the frames without copying them and empties the batch. The next batch gets a
    /// buffer of the same capacity, so that it does not grow by doubling all over again.
    pub fn take_bytes(&mut self) -> Bytes {
        let capacity = self.frames.capacity();
        let frames = std::mem::replace(&mut self.frames, Vec::with_capacity(capacity));
        self.clear();
        Bytes::from(frames)
    }

    /// Empties the batch, keeping its buffer. The next batch starts with a context frame.
    pub fn clear(&mut self) {
        self.frames.clear();
        self.runs.clear();
        self.count = 0;
        self.writer.restart();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::frame::MAX_FRAME_PAYLOAD;
    use contracts::{CrawlId, Event, EventFlags, EventId, Format};
    use parsers::stream_events::decode_stream;

    fn decoded(frames: &[u8]) -> Vec<Event> {
        let (got, torn) = decode_stream(frames);
        assert!(torn.is_none());
        got.into_iter().map(|e| e.expect("decodes")).collect()
    }

    fn event(offset: u64, time_us: i64, raw: &[u8]) -> Event {
        Event {
            id: EventId {
                tailer: 1,
                file_seq: 2,
                offset,
            },
            time_us,
            flags: EventFlags::default(),
            original_len: raw.len() as u64,
            format: Format::Plain,
            crawl: CrawlId::parse("c1").expect("valid crawl id"),
            host: "h".into(),
            app: "a".into(),
            fields: vec![],
            raw: raw.to_vec(),
        }
    }

    #[test]
    fn frames_decode_back_and_days_run_in_order() {
        let day = 1_795_219_200_000_000; // 2026-11-21T00:00:00Z
        let events = [
            event(0, day - 1, b"last of the 20th"),
            event(10, day, b"first of the 21st"),
            event(20, day + 5, b"21st"),
            event(30, day - 7, b"20th again"),
        ];
        let mut b = FrameBatch::new();
        for e in &events {
            assert!(b.push(&e.view()));
        }
        assert_eq!(b.len(), 4);
        assert_eq!(decoded(b.bytes()), events);
        // Each day's run reads on its own (the spool writer sends runs apart).
        let mut at = 0;
        for r in b.runs() {
            let run = decoded(&b.bytes()[r.bytes.clone()]);
            assert_eq!(run, events[at..at + r.count as usize]);
            at += r.count as usize;
        }
        let days: Vec<(NaiveDate, u32)> = b.runs().iter().map(|r| (r.day, r.count)).collect();
        assert_eq!(
            days,
            [
                (events[0].day(), 1),
                (events[1].day(), 2),
                (events[0].day(), 1)
            ]
        );
        let mut whole = Vec::new();
        for r in b.runs() {
            whole.extend_from_slice(&b.bytes()[r.bytes.clone()]);
        }
        assert_eq!(whole, b.bytes());
        assert_eq!(b.single_day(), None);
    }

    #[test]
    fn a_one_day_batch_is_taken_whole_and_the_batch_starts_over() {
        let mut b = FrameBatch::new();
        assert_eq!(b.single_day(), None);
        let t = 1_795_255_200_000_000;
        b.push(&event(0, t, b"a").view());
        b.push(&event(2, t + 1, b"b").view());
        assert_eq!(b.single_day(), Some(event(0, t, b"").day()));
        let want = b.bytes().to_vec();
        let taken = b.take_bytes();
        assert_eq!(&taken[..], &want[..]);
        assert!(b.is_empty() && b.bytes().is_empty() && b.runs().is_empty());
        b.push(&event(4, t, b"c").view());
        assert_eq!(b.len(), 1);
        assert_eq!(b.runs()[0].bytes, 0..b.bytes().len());
        // A new batch starts with its own context.
        assert_eq!(decoded(b.bytes()), [event(4, t, b"c")]);
    }

    #[test]
    fn frames_are_near_the_size_of_the_lines() {
        let lines: Vec<Vec<u8>> = (0..100)
            .map(|i| format!("2026-11-21T00:00:{:02}.000Z   200  1234 http://example.com/{i} L http://example.com/ text/html #001 20261121000000000+12 sha1:ABC - -", i % 60).into_bytes())
            .collect();
        let mut b = FrameBatch::new();
        let mut offset = 0;
        for (i, l) in lines.iter().enumerate() {
            assert!(b.push(&event(offset, 1_795_219_200_000_000 + i as i64 * 1000, l).view()));
            offset += l.len() as u64 + 1;
        }
        let raw: usize = lines.iter().map(Vec::len).sum();
        // One context frame, then a line's two length bytes, its tag, a one-byte offset gap
        // and a two-byte time delta (a millisecond).
        assert!(
            b.bytes().len() <= raw + 6 * lines.len() + 64,
            "{} for {raw}",
            b.bytes().len()
        );
    }

    #[test]
    fn an_event_too_large_is_refused_and_leaves_the_batch_as_it_was() {
        let mut b = FrameBatch::new();
        b.push(&event(0, 0, b"kept").view());
        let before = b.bytes().to_vec();
        let big = event(5, 0, &vec![b'x'; MAX_FRAME_PAYLOAD]);
        assert!(!b.push(&big.view()));
        assert_eq!((b.bytes(), b.len(), b.runs().len()), (&before[..], 1, 1));
    }
}
