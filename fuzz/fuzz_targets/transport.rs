#![no_main]
//! Every transport decoder on arbitrary bytes: hellos, message bodies, and sealed
//! messages opened by a plain and an encrypted session. Never panics.
use std::sync::OnceLock;

use contracts::keys::KeyPair;
use contracts::transport::{
    Cipher, ClientHello, Direction, Message, ServerHello, Session, join, transcript,
};
use libfuzzer_sys::fuzz_target;

// Key generation is slow next to decoding: made once, so the fuzzer spends its time on
// the decoders.
static KEYS: OnceLock<(KeyPair, KeyPair)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let _ = ClientHello::decode(data);
    let _ = ServerHello::decode(data);
    if let Ok(m) = Message::decode(data) {
        let mut out = Vec::new();
        m.encode(&mut out);
        assert_eq!(Message::decode(&out).expect("re-encoded message decodes"), m);
    }
    let mut plain = Session::new(None, [7; 16], Direction::BuckToTailer);
    let _ = plain.open(data);
    let (a, b) = KEYS.get_or_init(|| (KeyPair::generate(), KeyPair::generate()));
    let mut sealed = Session::new(Some((a.secret(), b.public())), [7; 16], Direction::BuckToTailer);
    let _ = sealed.open(data);
    let mut chacha = Session::negotiated(
        Some((a.secret(), b.public())),
        [7; 16],
        Direction::BuckToTailer,
        Cipher::ChaChaBox,
        transcript(2, b"client", b"server"),
    );
    let _ = chacha.open(data);
    // A tailer reading any answer to its hello.
    let hello = ClientHello::new(1, [0; 32], true, "h".into());
    let _ = join(&hello, b"hello", data, Some((a.secret(), b.public())));
});
