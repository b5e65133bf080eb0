#![no_main]
//! The frame reader on arbitrary bytes: never panics, never reads past the buffer.
use contracts::frame::{FrameReader, decode_frames};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut end = 0;
    for item in FrameReader::new(data) {
        match item {
            Ok((at, payload)) => {
                assert_eq!(at, end);
                end = at + 2 + payload.len();
                assert!(end <= data.len());
            }
            Err(_) => break,
        }
    }
    let _ = decode_frames(data);
});
