#![no_main]
//! Frame streams on arbitrary bytes: the stream reader and the buck's decoder (which
//! parses the fields compact events leave out) never panic, the rewrite to version-1
//! frames keeps one frame per event, and every event read back is written again to the
//! same event.
use contracts::frame::{FrameReader, decode_frames};
use contracts::frame_stream::{FrameRead, FrameStreamReader, FrameStreamWriter};
use libfuzzer_sys::fuzz_target;
use parsers::stream_events::{decode_stream, to_version1_frames};

fuzz_target!(|data: &[u8]| {
    let (events, framing) = decode_stream(data);
    let mut v1 = Vec::new();
    match to_version1_frames(data, &mut v1) {
        Ok(n) => {
            assert!(framing.is_none());
            assert_eq!(n as usize, events.len());
            let (again, framing) = decode_frames(&v1);
            assert!(framing.is_none());
            assert_eq!(again.len(), events.len());
        }
        Err(_) => assert!(framing.is_some() && v1.is_empty()),
    }
    // Re-encode what decoded and read it back: the same events, spans aside.
    let mut reader = FrameStreamReader::new();
    let mut writer = FrameStreamWriter::new();
    let mut out = Vec::new();
    let mut kept = Vec::new();
    for item in FrameReader::new(data) {
        let Ok((_, payload)) = item else { break };
        if let FrameRead::Event(e) = reader.read(payload) {
            let fields = e.fields.unwrap_or_default();
            let event = e.to_event(fields);
            if writer.push(&mut out, &event.view()) {
                kept.push((event.id, event.time_us, event.raw));
            }
        }
    }
    let mut reader = FrameStreamReader::new();
    let mut back = Vec::new();
    for item in FrameReader::new(&out) {
        let (_, payload) = item.expect("the writer writes whole frames");
        match reader.read(payload) {
            FrameRead::Event(e) => back.push((e.id, e.time_us, e.raw.to_vec())),
            FrameRead::Context => {}
            other => panic!("the writer wrote a frame that does not decode: {other:?}"),
        }
    }
    assert_eq!(back, kept);
});
