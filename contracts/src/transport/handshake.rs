//! Both sides of the hello exchange, from the hellos' bytes to an established [`Session`],
//! so that the buck, the tailer and every test client derive the same session the same way.

use crypto_box::{PublicKey, SecretKey};

use crate::DecodeError;

use super::hello::{Cipher, ClientHello, HandshakeError, ServerHello, transcript};
use super::session::{Direction, Session, random_salt};

/// The buck's answer to an accepted hello, and its side of the session.
pub struct Accepted {
    /// The encoded `ServerHello::Accept` to send.
    pub answer: Vec<u8>,
    /// The buck's session.
    pub session: Session,
    /// The cipher messages are sealed with (when sealed).
    pub cipher: Cipher,
}

/// Accepts `hello` (received as `hello_bytes`) at `version` (from
/// [`ClientHello::negotiate`]), for buck `buck_id` speaking up to `max_version`. `keys`
/// (the buck's secret, the tailer's public) seal the session; `None` leaves it plain.
pub fn accept(
    hello_bytes: &[u8],
    version: u8,
    max_version: u8,
    buck_id: &str,
    keys: Option<(&SecretKey, &PublicKey)>,
) -> Accepted {
    let cipher = Cipher::of_version(version);
    let salt = random_salt();
    let answer = ServerHello::Accept {
        version,
        buck_id: buck_id.to_owned(),
        salt,
        encrypted: keys.is_some(),
        max_version,
        cipher,
    }
    .encode();
    let session = Session::negotiated(
        keys,
        salt,
        Direction::BuckToTailer,
        cipher,
        transcript(version, hello_bytes, &answer),
    );
    Accepted {
        answer,
        session,
        cipher,
    }
}

/// What the tailer learns from an accepting answer.
#[derive(Debug)]
pub struct Joined {
    /// The tailer's session.
    pub session: Session,
    /// The buck's id, as it names itself.
    pub buck_id: String,
    /// The version spoken.
    pub version: u8,
    /// The cipher messages are sealed with (when sealed).
    pub cipher: Cipher,
    /// Whether the buck seals.
    pub encrypted: bool,
}

/// Why a tailer cannot go on after its hello.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The answer does not decode.
    #[error("bad hello from the buck: {0}")]
    Decode(#[from] DecodeError),
    /// The buck refused, and why.
    #[error("the buck refused the connection: {0}")]
    Refused(String),
    /// The answer does not fit what was offered.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
}

/// The tailer's side: `answer` checked against `hello` (sent as `hello_bytes`), and the
/// session it implies, sealed with `keys` (the tailer's secret, the buck's public) when
/// the buck seals.
pub fn join(
    hello: &ClientHello,
    hello_bytes: &[u8],
    answer: &[u8],
    keys: Option<(&SecretKey, &PublicKey)>,
) -> Result<Joined, JoinError> {
    match ServerHello::decode(answer)? {
        ServerHello::Reject { reason } => Err(JoinError::Refused(reason)),
        ServerHello::Accept {
            version,
            buck_id,
            salt,
            encrypted,
            max_version,
            cipher,
        } => {
            let cipher = hello.check_accept(version, max_version, cipher)?;
            let session = Session::negotiated(
                keys.filter(|_| encrypted),
                salt,
                Direction::TailerToBuck,
                cipher,
                transcript(version, hello_bytes, answer),
            );
            Ok(Joined {
                session,
                buck_id,
                version,
                cipher,
                encrypted,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyPair;
    use crate::transport::Message;

    fn exchange(tailer_max: u8, buck_max: u8) -> (Joined, Accepted) {
        let t = KeyPair::generate();
        let b = KeyPair::generate();
        let mut hello = ClientHello::new(9, *t.public().as_bytes(), true, "h".into());
        hello.max_version = tailer_max;
        let hello_bytes = hello.encode();
        let received = ClientHello::decode(&hello_bytes).unwrap();
        let version = received.negotiate(1, buck_max).unwrap();
        let tailer_key = PublicKey::from(received.public_key);
        let accepted = accept(
            &hello_bytes,
            version,
            buck_max,
            "b1",
            Some((b.secret(), &tailer_key)),
        );
        let joined = join(
            &hello,
            &hello_bytes,
            &accepted.answer,
            Some((t.secret(), b.public())),
        )
        .unwrap();
        (joined, accepted)
    }

    #[test]
    fn new_and_old_sides_agree_on_the_newest_cipher_both_speak() {
        for (tailer_max, buck_max, want) in [
            (2, 2, Cipher::ChaChaBox),
            (1, 2, Cipher::SalsaBox),
            (2, 1, Cipher::SalsaBox),
            (1, 1, Cipher::SalsaBox),
        ] {
            let (mut joined, mut accepted) = exchange(tailer_max, buck_max);
            assert_eq!((joined.cipher, accepted.cipher), (want, want));
            assert_eq!(joined.buck_id, "b1");
            let ping = Message::Ping { token: 5 };
            let wire = joined.session.seal(&ping).unwrap();
            assert_eq!(accepted.session.open(&wire).unwrap(), ping);
            let pong = Message::Pong { token: 5 };
            let wire = accepted.session.seal(&pong).unwrap();
            assert_eq!(joined.session.open(&wire).unwrap(), pong);
        }
    }

    /// A go-between that rewrites the tailer's hello to offer only version 1 gets the
    /// buck to answer version 1 without a version-2 answer's fields; but a buck that
    /// speaks 2 answering 1 while saying so, or a session built on an altered hello,
    /// does not get past the tailer.
    #[test]
    fn an_altered_hello_is_refused_or_fails_the_first_message() {
        let t = KeyPair::generate();
        let b = KeyPair::generate();
        let hello = ClientHello::new(9, *t.public().as_bytes(), true, "h".into());
        let sent = hello.encode();
        // The buck sees a hello with one more byte of host name: the same offer, other
        // bytes. It answers version 2 over what it saw.
        let mut seen_hello = hello.clone();
        seen_hello.host.push('x');
        let seen = seen_hello.encode();
        let tailer_key = PublicKey::from(hello.public_key);
        let mut accepted = accept(&seen, 2, 2, "b1", Some((b.secret(), &tailer_key)));
        let mut joined = join(
            &hello,
            &sent,
            &accepted.answer,
            Some((t.secret(), b.public())),
        )
        .unwrap();
        let wire = joined.session.seal(&Message::Ping { token: 1 }).unwrap();
        assert!(accepted.session.open(&wire).is_err());

        // A buck that speaks 2 but chose 1 is refused outright.
        let downgraded = ServerHello::Accept {
            version: 2,
            buck_id: "b1".into(),
            salt: [0; 16],
            encrypted: true,
            max_version: 2,
            cipher: Cipher::SalsaBox,
        }
        .encode();
        assert!(matches!(
            join(&hello, &sent, &downgraded, Some((t.secret(), b.public()))),
            Err(JoinError::Handshake(HandshakeError::CipherMismatch { .. }))
        ));
    }
}
