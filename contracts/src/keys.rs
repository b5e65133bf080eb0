//! X25519 key pairs for crypto_box, and their text form (base64 of the 32 bytes).

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use crypto_box::{PublicKey, SecretKey};
use durable_file::Durability;

/// Why a key could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The text is not base64 of 32 bytes.
    #[error("{what} is not a key: expected base64 of 32 bytes (as written by `sluice keygen`)")]
    Malformed {
        /// What was being read (a path or a field name).
        what: String,
    },
}

/// A secret key and its public key.
#[derive(Clone)]
pub struct KeyPair {
    secret: SecretKey,
    public: PublicKey,
}

impl KeyPair {
    /// A new random key pair.
    pub fn generate() -> KeyPair {
        let secret = SecretKey::generate(&mut crypto_box::aead::OsRng);
        let public = secret.public_key();
        KeyPair { secret, public }
    }

    /// The secret key.
    pub fn secret(&self) -> &SecretKey {
        &self.secret
    }

    /// The public key.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The public key as text.
    pub fn public_text(&self) -> String {
        STANDARD.encode(self.public.as_bytes())
    }

    /// Reads a secret key file written by [`KeyPair::save`].
    pub fn load(path: &Path) -> Result<KeyPair, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.into(),
            source,
        })?;
        let bytes = decode32(text.trim()).ok_or_else(|| KeyError::Malformed {
            what: path.display().to_string(),
        })?;
        let secret = SecretKey::from(bytes);
        let public = secret.public_key();
        Ok(KeyPair { secret, public })
    }

    /// Writes `<dir>/<name>.key` (secret, mode 0600) and `<dir>/<name>.pub`.
    pub fn save(&self, dir: &Path, name: &str) -> Result<(PathBuf, PathBuf), KeyError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| KeyError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let key = dir.join(format!("{name}.key"));
        let public = dir.join(format!("{name}.pub"));
        let text = format!("{}\n", STANDARD.encode(self.secret.to_bytes()));
        durable_file::replace_private(&key, text.as_bytes()).map_err(io(&key))?;
        let public_text = format!("{}\n", self.public_text());
        durable_file::replace(&public, public_text.as_bytes(), Durability::Synced)
            .map_err(io(&public))?;
        Ok((key, public))
    }

    /// Loads `path`, or creates a new pair there (and its `.pub` beside it) if it does not exist.
    pub fn load_or_create(path: &Path) -> Result<KeyPair, KeyError> {
        if path.exists() {
            return KeyPair::load(path);
        }
        let kp = KeyPair::generate();
        let dir = path.parent().unwrap_or(Path::new("."));
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("sluice");
        kp.save(dir, name)?;
        Ok(kp)
    }
}

fn decode32(s: &str) -> Option<[u8; 32]> {
    STANDARD.decode(s).ok()?.try_into().ok()
}

/// Parses a public key's text form; `what` names it in the error.
pub fn parse_public_key(text: &str, what: &str) -> Result<PublicKey, KeyError> {
    decode32(text.trim())
        .map(PublicKey::from)
        .ok_or_else(|| KeyError::Malformed { what: what.into() })
}

/// A public key's text form.
pub fn public_key_text(k: &PublicKey) -> String {
    STANDARD.encode(k.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let kp = KeyPair::generate();
        let (key, public) = kp.save(d.path(), "t").unwrap();
        let back = KeyPair::load(&key).unwrap();
        assert_eq!(back.public().as_bytes(), kp.public().as_bytes());
        let text = std::fs::read_to_string(public).unwrap();
        assert_eq!(
            parse_public_key(&text, "pub").unwrap().as_bytes(),
            kp.public().as_bytes()
        );
        assert!(
            parse_public_key("nope", "field public_key")
                .unwrap_err()
                .to_string()
                .contains("public_key")
        );
    }
}
