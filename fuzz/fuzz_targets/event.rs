#![no_main]
//! Event::decode on arbitrary bytes: never panics; what decodes re-encodes to the same bytes.
//! Event::peek_id_and_time never panics and agrees with a whole decode.
use contracts::Event;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let peeked = Event::peek_id_and_time(data);
    if let Ok(e) = Event::decode(data) {
        assert_eq!(peeked.ok(), Some((e.id, e.time_us)));
        let mut out = Vec::new();
        e.encode(&mut out);
        let back = Event::decode(&out).expect("a re-encoded event decodes");
        assert_eq!(back, e);
        let _ = e.to_json();
        let _ = contracts::crawled_url::CrawledUrl::from_event(&e);
    }
});
