#![no_main]
//! Spool recovery on arbitrary bytes (after a valid header, most of the time): never
//! panics, and the good part it reports re-recovers to itself with nothing cut.
use contracts::spool_file::{recover, spool_header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = recover(data);
    let mut buf = spool_header().to_vec();
    buf.extend_from_slice(data);
    if let Ok(r) = recover(&buf) {
        assert!(r.good_len <= buf.len());
        let again = recover(&buf[..r.good_len]).expect("the good part has a valid header");
        assert_eq!(again.good_len, r.good_len);
        assert!(again.cut_reason.is_none());
    }
});
