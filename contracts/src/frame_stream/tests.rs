use proptest::prelude::*;

use super::*;
use crate::event::tests::arb_event;
use crate::frame::{FrameReader, put_event_frame};
use crate::{Event, EventFlags, EventId, FieldSpan};

fn write_all(events: &[Event]) -> Vec<u8> {
    let mut w = FrameStreamWriter::new();
    let mut out = Vec::new();
    for e in events {
        assert!(w.push(&mut out, &e.view()));
    }
    out
}

/// Reads every frame of `buf`; events come back with the frame's own spans, or none.
fn read_all(buf: &[u8]) -> Vec<Result<Event, String>> {
    let mut r = FrameStreamReader::new();
    let mut out = Vec::new();
    for item in FrameReader::new(buf) {
        let (_, payload) = item.expect("whole frames");
        match r.read(payload) {
            FrameRead::Context => {}
            FrameRead::Event(e) => {
                assert_eq!(e.index as usize, out.len());
                out.push(Ok(e.to_event(e.fields.unwrap_or_default())));
            }
            FrameRead::BadEvent { index, error } => {
                assert_eq!(index as usize, out.len());
                out.push(Err(error.to_string()));
            }
            FrameRead::BadContext(_) => {}
        }
    }
    out
}

/// What a compact frame keeps of an event: spans only for a cut line.
fn as_sent(e: &Event) -> Event {
    let mut e = e.clone();
    if !e.flags.has(EventFlags::TRUNCATED) {
        e.fields.clear();
    }
    e
}

fn line(offset: u64, time_us: i64, raw: &str) -> Event {
    let mut e = crate::event::tests::small_event();
    e.id.offset = offset;
    e.time_us = time_us;
    e.raw = raw.as_bytes().to_vec();
    e.original_len = raw.len() as u64;
    e.host = "crawler-07.example.org".into();
    e.app = "heritrix".into();
    e
}

#[test]
fn lines_of_one_file_cost_a_few_bytes_each() {
    let raw = "2026-12-04T10:00:00.123Z   200      12345 https://example.com/a/b/c.html LLE https://example.com/ text/html #042 20261204095959999+120 sha1:ABCDEFGHIJKLMNOPQRSTUVWXYZ234567 - -";
    let events: Vec<Event> = (0..1000)
        .map(|i| {
            line(
                i * (raw.len() as u64 + 1),
                1_795_255_200_000_000 + i as i64 * 7_000,
                raw,
            )
        })
        .collect();
    let buf = write_all(&events);
    let lines: usize = events.iter().map(|e| e.raw.len()).sum();
    // Per event: 2 length bytes, the tag, a one-byte gap, a two-byte time delta; one
    // context frame for the whole file.
    assert!(
        buf.len() <= lines + 1000 * 6 + 64,
        "{} bytes for {lines}",
        buf.len()
    );
    let back: Vec<Event> = read_all(&buf)
        .into_iter()
        .map(|e| e.expect("decodes"))
        .collect();
    let sent: Vec<Event> = events.iter().map(as_sent).collect();
    assert_eq!(back, sent);
}

#[test]
fn a_new_file_host_or_crawl_gets_a_context_and_a_restart_repeats_it() {
    let mut a = line(0, 10, "one");
    let mut b = line(4, 20, "two");
    b.id.file_seq = 9;
    let mut c = line(8, 30, "three");
    c.id.file_seq = 9;
    c.host = "other".into();
    a.format = crate::Format::CrawlLog;
    let mut w = FrameStreamWriter::new();
    let mut out = Vec::new();
    for e in [&a, &b, &c] {
        assert!(w.push(&mut out, &e.view()));
    }
    w.restart();
    assert!(w.push(&mut out, &c.view()));
    let contexts = FrameReader::new(&out)
        .filter(|f| f.as_ref().expect("whole").1[0] == TAG_CONTEXT)
        .count();
    assert_eq!(contexts, 4);
    let back: Vec<Event> = read_all(&out)
        .into_iter()
        .map(|e| e.expect("decodes"))
        .collect();
    assert_eq!(
        back,
        vec![as_sent(&a), as_sent(&b), as_sent(&c), as_sent(&c)]
    );
}

#[test]
fn a_format_other_than_the_contexts_rides_in_the_tag() {
    let a = line(0, 10, "plain");
    let mut b = line(6, 10, "crawl");
    b.format = crate::Format::CrawlLog;
    let buf = write_all(&[a.clone(), b.clone(), a.clone()]);
    let contexts = FrameReader::new(&buf)
        .filter(|f| f.as_ref().expect("whole").1[0] == TAG_CONTEXT)
        .count();
    assert_eq!(contexts, 1);
    let back: Vec<Event> = read_all(&buf)
        .into_iter()
        .map(|e| e.expect("decodes"))
        .collect();
    assert_eq!(back, vec![as_sent(&a), as_sent(&b), as_sent(&a)]);
}

#[test]
fn a_cut_line_keeps_its_spans_and_original_length() {
    let mut e = line(100, 5, "GET /index.html");
    e.flags.set(EventFlags::TRUNCATED);
    e.original_len = 70_000;
    e.fields = vec![FieldSpan {
        field: crate::Field::Url,
        start: 4,
        len: 11,
    }];
    let back = read_all(&write_all(std::slice::from_ref(&e)));
    assert_eq!(back, vec![Ok(e)]);
}

#[test]
fn version_1_frames_read_beside_compact_ones() {
    let old = line(0, 1, "old");
    let new = line(4, 2, "new");
    let mut buf = Vec::new();
    assert!(put_event_frame(&mut buf, &old));
    let mut w = FrameStreamWriter::new();
    assert!(w.push(&mut buf, &new.view()));
    let back = read_all(&buf);
    assert_eq!(back, vec![Ok(old), Ok(as_sent(&new))]);
}

#[test]
fn after_an_event_that_does_not_decode_no_id_is_guessed_until_the_next_context() {
    let events: Vec<Event> = (0..4).map(|i| line(i * 10, i as i64, "abc")).collect();
    let mut w = FrameStreamWriter::new();
    let mut buf = Vec::new();
    for e in &events[..3] {
        assert!(w.push(&mut buf, &e.view()));
    }
    w.restart();
    assert!(w.push(&mut buf, &events[3].view()));
    // Damage the second event's tag: an unknown extension bit.
    let frames: Vec<usize> = FrameReader::new(&buf)
        .map(|f| f.expect("whole").0)
        .collect();
    buf[frames[2] + 2] |= TAG_EXTENDED;
    buf.insert(frames[2] + 3, 0x80);
    let len = u16::from_be_bytes([buf[frames[2]], buf[frames[2] + 1]]) + 1;
    buf[frames[2]..frames[2] + 2].copy_from_slice(&len.to_be_bytes());
    let back = read_all(&buf);
    assert_eq!(back.len(), 4);
    assert_eq!(back[0], Ok(as_sent(&events[0])));
    assert!(
        back[1].as_ref().is_err_and(|e| e.contains("extension")),
        "{back:?}"
    );
    assert!(
        back[2]
            .as_ref()
            .is_err_and(|e| e.contains("did not decode")),
        "{back:?}"
    );
    assert_eq!(back[3], Ok(as_sent(&events[3])));
}

#[test]
fn a_compact_event_without_a_context_is_refused() {
    let buf = write_all(&[line(0, 1, "a"), line(2, 2, "b")]);
    let second = FrameReader::new(&buf)
        .nth(2)
        .expect("three frames")
        .expect("whole")
        .0;
    let back = read_all(&buf[second..]);
    assert_eq!(back.len(), 1);
    assert!(
        back[0]
            .as_ref()
            .is_err_and(|e| e.contains("before any context"))
    );
}

#[test]
fn extreme_offsets_and_times_wrap_back_exactly() {
    let mut a = line(u64::MAX - 1, i64::MAX, "x");
    a.original_len = 1;
    let b = line(0, i64::MIN, "y");
    let back: Vec<Event> = read_all(&write_all(&[a.clone(), b.clone()]))
        .into_iter()
        .map(|e| e.expect("decodes"))
        .collect();
    assert_eq!(back, vec![as_sent(&a), as_sent(&b)]);
}

proptest! {
    #[test]
    fn any_events_round_trip(events in prop::collection::vec(arb_event(), 0..12)) {
        let back: Vec<Event> = read_all(&write_all(&events))
            .into_iter()
            .map(|e| e.expect("decodes"))
            .collect();
        let sent: Vec<Event> = events.iter().map(as_sent).collect();
        prop_assert_eq!(back, sent);
    }

    #[test]
    fn any_bytes_are_read_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let mut r = FrameStreamReader::new();
        for item in FrameReader::new(&bytes) {
            let Ok((_, payload)) = item else { break };
            let _ = r.read(payload);
        }
    }

    #[test]
    fn damaged_streams_never_panic(events in prop::collection::vec(arb_event(), 1..6), at in any::<prop::sample::Index>(), byte: u8) {
        let mut buf = write_all(&events);
        let i = at.index(buf.len());
        buf[i] = byte;
        let mut r = FrameStreamReader::new();
        let mut ids: Vec<EventId> = Vec::new();
        for item in FrameReader::new(&buf) {
            let Ok((_, payload)) = item else { break };
            if let FrameRead::Event(e) = r.read(payload) {
                ids.push(e.id);
            }
        }
        prop_assert!(ids.len() <= events.len() + 1);
    }
}

/// Cuts `buf` after its `cut`th frame: the rest, behind the reader's resume context,
/// must read as the same events.
fn resumed_after(buf: &[u8], cut: usize) -> Vec<Result<Event, String>> {
    let mut r = FrameStreamReader::new();
    let mut rest = Vec::new();
    for (i, item) in FrameReader::new(buf).enumerate() {
        let (at, payload) = item.expect("whole frames");
        if i < cut {
            let _ = r.read(payload);
            continue;
        }
        if i == cut {
            // A reader with nothing to resume (no context yet) writes nothing.
            r.put_resume_context(&mut rest);
        }
        rest.extend_from_slice(&buf[at..at + 2 + payload.len()]);
    }
    read_all(&rest)
}

proptest! {
    #[test]
    fn a_stream_cut_anywhere_resumes_behind_a_context_of_the_readers_state(
        events in prop::collection::vec(arb_event(), 1..10),
        cut in any::<prop::sample::Index>(),
    ) {
        let buf = write_all(&events);
        let frames = FrameReader::new(&buf).count();
        let cut = cut.index(frames + 1);
        let whole = read_all(&buf);
        // How many events the first `cut` frames hold.
        let before = read_all(&buf[..FrameReader::new(&buf)
            .take(cut)
            .map(|f| f.map(|(at, p)| at + 2 + p.len()).unwrap_or(0))
            .last()
            .unwrap_or(0)])
        .len();
        prop_assert_eq!(resumed_after(&buf, cut), whole[before..].to_vec());
    }
}

#[test]
fn no_resume_context_after_an_event_that_did_not_decode() {
    let a = line(0, 1_000, "first line");
    let b = line(11, 2_000, "second line");
    let mut buf = write_all(&[a, b]);
    // Damage the first event's tag (the frame after the context).
    let first_event = FrameReader::new(&buf)
        .nth(1)
        .expect("an event frame")
        .expect("whole")
        .0;
    buf[first_event + 2] = 0x7f;
    let mut r = FrameStreamReader::new();
    for item in FrameReader::new(&buf).take(2) {
        let _ = r.read(item.expect("whole").1);
    }
    let mut out = Vec::new();
    assert!(!r.put_resume_context(&mut out));
    assert!(out.is_empty());
}
