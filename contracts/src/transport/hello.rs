//! The two plain messages that open a connection, and what they agree on.
//!
//! The tailer offers a range of protocol versions; the buck answers with the newest both
//! speak. The version fixes the cipher: version 1 seals with `SalsaBox`
//! (X25519 + XSalsa20-Poly1305), versions 2 and 3 with `ChaChaBox` (X25519 +
//! XChaCha20-Poly1305, which has SIMD backends). Version 3 adds frame streams to Live and
//! BucketChunk messages (`crate::frame_stream`). A version-2 answer names its cipher and the buck's newest
//! version, and from version 2 on every sealed message authenticates both hellos as they
//! were sent (see [`transcript`]; it takes the salt's place in the nonces): a hello altered on the way, to strip an offer and force
//! the older cipher, makes the first message fail authentication. The hello layouts are
//! those of version 1, so an old buck reads a new tailer's hello and answers version 1,
//! and an old tailer gets a version-1 answer from a new buck.

use sha2::{Digest, Sha256};

use crate::DecodeError;
use crate::varint::{self, Reader};

use super::{PROTOCOL_MAX, PROTOCOL_MIN};

/// How a connection's messages are sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cipher {
    /// X25519 + XSalsa20-Poly1305 (`crypto_box::SalsaBox`): protocol version 1.
    SalsaBox,
    /// X25519 + XChaCha20-Poly1305 (`crypto_box::ChaChaBox`): protocol version 2 and later.
    ChaChaBox,
}

impl Cipher {
    /// The cipher protocol `version` seals with.
    pub fn of_version(version: u8) -> Cipher {
        if version >= 2 {
            Cipher::ChaChaBox
        } else {
            Cipher::SalsaBox
        }
    }

    /// Its name in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Cipher::SalsaBox => "xsalsa20poly1305",
            Cipher::ChaChaBox => "xchacha20poly1305",
        }
    }

    fn code(self) -> u8 {
        match self {
            Cipher::SalsaBox => 1,
            Cipher::ChaChaBox => 2,
        }
    }

    fn from_code(code: u8) -> Option<Cipher> {
        match code {
            1 => Some(Cipher::SalsaBox),
            2 => Some(Cipher::ChaChaBox),
            _ => None,
        }
    }
}

/// Why a tailer refuses a buck's acceptance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The buck chose a version the tailer did not offer.
    #[error("buck chose protocol version {got}, outside the {min}..={max} this tailer offered")]
    Version {
        /// The version chosen.
        got: u8,
        /// The oldest the tailer offered.
        min: u8,
        /// The newest the tailer offered.
        max: u8,
    },
    /// The buck named a cipher its version does not seal with.
    #[error("buck chose protocol version {version} but named cipher {}; refusing a mismatched answer", cipher.name())]
    CipherMismatch {
        /// The version chosen.
        version: u8,
        /// The cipher named.
        cipher: Cipher,
    },
    /// Both sides speak a newer version than the one chosen: an altered hello, or a
    /// broken buck.
    #[error(
        "buck chose protocol version {chosen} although both sides speak {both}: refusing the downgrade"
    )]
    Downgrade {
        /// The version chosen.
        chosen: u8,
        /// The newest version both speak.
        both: u8,
    },
}

const HELLO_MAGIC: &[u8; 4] = b"SLTH";

/// The tailer's first message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    /// Oldest protocol version the tailer speaks.
    pub min_version: u8,
    /// Newest protocol version the tailer speaks.
    pub max_version: u8,
    /// The tailer's id (its event ids' first part).
    pub tailer_id: u64,
    /// The tailer's X25519 public key.
    pub public_key: [u8; 32],
    /// Whether the tailer wants sealed messages. Off only when configured so explicitly.
    pub encrypted: bool,
    /// The host the tailer runs on, for logs.
    pub host: String,
}

/// The buck's answer to a hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerHello {
    /// The connection is accepted.
    Accept {
        /// The protocol version both speak.
        version: u8,
        /// The buck's id, as in the cluster file.
        buck_id: String,
        /// Random salt for this connection's nonces.
        salt: [u8; 16],
        /// Whether messages are sealed.
        encrypted: bool,
        /// The buck's newest protocol version (sent from version 2 on; a version-1 answer
        /// reads as 1).
        max_version: u8,
        /// The cipher messages are sealed with (sent from version 2 on; a version-1 answer
        /// reads as `SalsaBox`).
        cipher: Cipher,
    },
    /// The connection is refused, and why; the buck closes it.
    Reject {
        /// A message for the tailer's operator.
        reason: String,
    },
}

impl ClientHello {
    /// A hello offering every protocol version this build speaks
    /// ([`PROTOCOL_MIN`]`..=`[`PROTOCOL_MAX`]).
    pub fn new(tailer_id: u64, public_key: [u8; 32], encrypted: bool, host: String) -> ClientHello {
        ClientHello {
            min_version: PROTOCOL_MIN,
            max_version: PROTOCOL_MAX,
            tailer_id,
            public_key,
            encrypted,
            host,
        }
    }

    /// Encodes the hello.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = HELLO_MAGIC.to_vec();
        out.push(0); // kind: client hello
        out.push(self.min_version);
        out.push(self.max_version);
        out.extend_from_slice(&self.tailer_id.to_be_bytes());
        out.extend_from_slice(&self.public_key);
        out.push(u8::from(self.encrypted));
        varint::put_blob(&mut out, self.host.as_bytes());
        out
    }

    /// Decodes a hello.
    pub fn decode(buf: &[u8]) -> Result<ClientHello, DecodeError> {
        let mut r = Reader::new(buf, "client hello");
        check_magic(&mut r, 0)?;
        let min_version = r.u8()?;
        let max_version = r.u8()?;
        let tailer_id = r.u64_be()?;
        let public_key = r.array::<32>()?;
        let encrypted = decode_bool(&mut r)?;
        let host = r.str(255)?.to_owned();
        r.finish()?;
        Ok(ClientHello {
            min_version,
            max_version,
            tailer_id,
            public_key,
            encrypted,
            host,
        })
    }

    /// The version to speak with a peer that speaks `min..=max`, if any.
    pub fn negotiate(&self, min: u8, max: u8) -> Option<u8> {
        let v = self.max_version.min(max);
        (v >= self.min_version.max(min)).then_some(v)
    }

    /// The buck's acceptance checked against this hello: the version is one offered, the
    /// cipher is the version's, and no newer version both sides speak was passed over.
    /// Returns the cipher to seal with.
    pub fn check_accept(
        &self,
        version: u8,
        buck_max_version: u8,
        cipher: Cipher,
    ) -> Result<Cipher, HandshakeError> {
        if !(self.min_version..=self.max_version).contains(&version) {
            return Err(HandshakeError::Version {
                got: version,
                min: self.min_version,
                max: self.max_version,
            });
        }
        if cipher != Cipher::of_version(version) {
            return Err(HandshakeError::CipherMismatch { version, cipher });
        }
        let both = self.max_version.min(buck_max_version);
        if both > version {
            return Err(HandshakeError::Downgrade {
                chosen: version,
                both,
            });
        }
        Ok(cipher)
    }
}

/// What every sealed message of a version-2 connection is bound to besides its body:
/// a SHA-256 over both hellos exactly as they were sent. Version 1 authenticates nothing
/// more (`None`), as old peers do not.
pub fn transcript(version: u8, client_hello: &[u8], server_hello: &[u8]) -> Option<[u8; 32]> {
    if version < 2 {
        return None;
    }
    let mut h = Sha256::new();
    h.update(b"sluice transcript v2\0");
    h.update((client_hello.len() as u64).to_be_bytes());
    h.update(client_hello);
    h.update((server_hello.len() as u64).to_be_bytes());
    h.update(server_hello);
    Some(h.finalize().into())
}

impl ServerHello {
    /// Encodes the answer.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = HELLO_MAGIC.to_vec();
        out.push(1); // kind: server hello
        match self {
            ServerHello::Accept {
                version,
                buck_id,
                salt,
                encrypted,
                max_version,
                cipher,
            } => {
                out.push(0);
                out.push(*version);
                varint::put_blob(&mut out, buck_id.as_bytes());
                out.extend_from_slice(salt);
                out.push(u8::from(*encrypted));
                // Version 1's layout ends here: an old tailer reads it as it always did.
                if *version >= 2 {
                    out.push(*max_version);
                    out.push(cipher.code());
                }
            }
            ServerHello::Reject { reason } => {
                out.push(1);
                varint::put_blob(&mut out, reason.as_bytes());
            }
        }
        out
    }

    /// Decodes an answer.
    pub fn decode(buf: &[u8]) -> Result<ServerHello, DecodeError> {
        let mut r = Reader::new(buf, "server hello");
        check_magic(&mut r, 1)?;
        let at = r.pos();
        let h = match r.u8()? {
            0 => {
                let version = r.u8()?;
                let buck_id = r.str(255)?.to_owned();
                let salt = r.array::<16>()?;
                let encrypted = decode_bool(&mut r)?;
                let (max_version, cipher) = if version >= 2 {
                    let max_version = r.u8()?;
                    let at = r.pos();
                    let code = r.u8()?;
                    let cipher = Cipher::from_code(code).ok_or_else(|| {
                        DecodeError::invalid("server hello", at, format!("unknown cipher {code}"))
                    })?;
                    (max_version, cipher)
                } else {
                    (version, Cipher::SalsaBox)
                };
                ServerHello::Accept {
                    version,
                    buck_id,
                    salt,
                    encrypted,
                    max_version,
                    cipher,
                }
            }
            1 => ServerHello::Reject {
                reason: r.str(4096)?.to_owned(),
            },
            k => {
                return Err(DecodeError::invalid(
                    "server hello",
                    at,
                    format!("unknown status {k}"),
                ));
            }
        };
        r.finish()?;
        Ok(h)
    }
}

fn check_magic(r: &mut Reader<'_>, kind: u8) -> Result<(), DecodeError> {
    let m = r.array::<4>()?;
    if &m != HELLO_MAGIC {
        return Err(DecodeError::invalid(
            "hello",
            0,
            "not a sluice hello (bad magic): is this a sluice tailer/buck?",
        ));
    }
    let at = r.pos();
    let k = r.u8()?;
    if k != kind {
        return Err(DecodeError::invalid(
            "hello",
            at,
            format!("expected hello kind {kind}, got {k}"),
        ));
    }
    Ok(())
}

fn decode_bool(r: &mut Reader<'_>) -> Result<bool, DecodeError> {
    let at = r.pos();
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        b => Err(DecodeError::invalid(
            "hello",
            at,
            format!("bad boolean {b}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hellos_round_trip_and_negotiate() {
        let h = ClientHello {
            min_version: 1,
            max_version: 3,
            tailer_id: 7,
            public_key: [9; 32],
            encrypted: true,
            host: "h".into(),
        };
        assert_eq!(ClientHello::decode(&h.encode()).unwrap(), h);
        assert_eq!(h.negotiate(1, 1), Some(1));
        assert_eq!(h.negotiate(1, 2), Some(2));
        assert_eq!(h.negotiate(4, 5), None);
        for s in [
            ServerHello::Accept {
                version: 1,
                buck_id: "b1".into(),
                salt: [3; 16],
                encrypted: false,
                max_version: 1,
                cipher: Cipher::SalsaBox,
            },
            ServerHello::Accept {
                version: 2,
                buck_id: "b1".into(),
                salt: [3; 16],
                encrypted: true,
                max_version: 5,
                cipher: Cipher::ChaChaBox,
            },
            ServerHello::Reject {
                reason: "key not on the allow-list".into(),
            },
        ] {
            assert_eq!(ServerHello::decode(&s.encode()).unwrap(), s);
        }
    }

    /// What an old (version 1) tailer's decoder accepts: the hello's fields in order and
    /// nothing after them. A new buck answering version 1 must send exactly that.
    #[test]
    fn a_version_1_answer_keeps_the_version_1_layout() {
        let v1 = ServerHello::Accept {
            version: 1,
            buck_id: "b1".into(),
            salt: [3; 16],
            encrypted: true,
            max_version: 2,
            cipher: Cipher::SalsaBox,
        };
        let mut want = b"SLTH".to_vec();
        want.extend_from_slice(&[1, 0, 1, 2, b'b', b'1']);
        want.extend_from_slice(&[3; 16]);
        want.push(1);
        assert_eq!(v1.encode(), want);
    }

    #[test]
    fn the_tailer_takes_the_newest_version_both_speak_and_refuses_less() {
        let new = ClientHello::new(1, [0; 32], true, "h".into());
        assert_eq!(new.max_version, 3);
        // A new buck: frame streams and ChaChaBox.
        assert_eq!(
            new.check_accept(3, 3, Cipher::ChaChaBox),
            Ok(Cipher::ChaChaBox)
        );
        // A buck of version 2: ChaChaBox, version-1 events.
        assert_eq!(
            new.check_accept(2, 2, Cipher::ChaChaBox),
            Ok(Cipher::ChaChaBox)
        );
        // Both speak 3 but 2 was chosen: refused.
        assert_eq!(
            new.check_accept(2, 3, Cipher::ChaChaBox),
            Err(HandshakeError::Downgrade { chosen: 2, both: 3 })
        );
        // An old buck answers version 1 in version 1's layout, which reads as max 1.
        assert_eq!(
            new.check_accept(1, 1, Cipher::SalsaBox),
            Ok(Cipher::SalsaBox)
        );
        // Both speak 2 but 1 was chosen: refused.
        assert_eq!(
            new.check_accept(1, 2, Cipher::SalsaBox),
            Err(HandshakeError::Downgrade { chosen: 1, both: 2 })
        );
        // Version 2 with the old cipher named: refused.
        assert_eq!(
            new.check_accept(2, 2, Cipher::SalsaBox),
            Err(HandshakeError::CipherMismatch {
                version: 2,
                cipher: Cipher::SalsaBox
            })
        );
        // A version not offered.
        assert!(matches!(
            new.check_accept(4, 4, Cipher::ChaChaBox),
            Err(HandshakeError::Version { got: 4, .. })
        ));
        // An old tailer (max 1) is content with version 1 whatever the buck speaks.
        let old = ClientHello {
            max_version: 1,
            ..new.clone()
        };
        assert_eq!(
            old.check_accept(1, 2, Cipher::SalsaBox),
            Ok(Cipher::SalsaBox)
        );
    }

    #[test]
    fn a_max_version_setting_outside_what_this_build_speaks_is_named() {
        use crate::transport::max_version_problem;
        assert_eq!(max_version_problem(1), None);
        assert_eq!(max_version_problem(PROTOCOL_MAX), None);
        let problem = max_version_problem(9).unwrap();
        assert!(problem.contains("max_protocol_version = 9"), "{problem}");
        assert!(max_version_problem(0).is_some());
    }

    #[test]
    fn the_transcript_covers_both_hellos_from_version_2_on() {
        assert_eq!(transcript(1, b"a", b"b"), None);
        let t = transcript(2, b"client", b"server").unwrap();
        assert_ne!(Some(t), transcript(2, b"client", b"serve"));
        assert_ne!(
            Some(t),
            transcript(2, b"clien", b"tserver"),
            "lengths are bound"
        );
        assert_eq!(Some(t), transcript(2, b"client", b"server"));
    }

    proptest::proptest! {
        #[test]
        fn server_hello_garbage_never_panics(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            let _ = ServerHello::decode(&b);
            let _ = ClientHello::decode(&b);
        }
    }
}
