//! The crawl id: the shard key, and a path component on every agent.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest crawl id accepted, in bytes.
pub const MAX_CRAWL_ID_BYTES: usize = 128;

/// A validated crawl id: `[A-Za-z0-9][A-Za-z0-9._-]{0,127}`.
///
/// Only [`CrawlId::parse`] makes one, so a value of this type is always safe to use as a
/// path component (no `/`, no `..`, no leading dot) and as a SQL identifier fragment.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CrawlId(String);

/// Why a string is not a crawl id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrawlIdError {
    /// The string is empty.
    #[error("crawl id is empty")]
    Empty,
    /// The string is longer than [`MAX_CRAWL_ID_BYTES`].
    #[error("crawl id is {len} bytes long; at most {MAX_CRAWL_ID_BYTES} are allowed")]
    TooLong {
        /// The length seen.
        len: usize,
    },
    /// A character outside the allowed set, or a first character that is not alphanumeric.
    #[error(
        "crawl id {shown:?} has {ch:?} at byte {at}: use letters, digits, '.', '_' and '-', starting with a letter or digit"
    )]
    BadChar {
        /// The id, shortened for display.
        shown: String,
        /// The offending character.
        ch: char,
        /// Its byte position.
        at: usize,
    },
}

impl CrawlId {
    /// Validates `s` as a crawl id.
    pub fn parse(s: &str) -> Result<CrawlId, CrawlIdError> {
        if s.is_empty() {
            return Err(CrawlIdError::Empty);
        }
        if s.len() > MAX_CRAWL_ID_BYTES {
            return Err(CrawlIdError::TooLong { len: s.len() });
        }
        for (at, ch) in s.char_indices() {
            let ok = if at == 0 {
                ch.is_ascii_alphanumeric()
            } else {
                ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-')
            };
            if !ok {
                let shown: String = s.chars().take(40).collect();
                return Err(CrawlIdError::BadChar { shown, ch, at });
            }
        }
        Ok(CrawlId(s.to_owned()))
    }

    /// Validates raw bytes (as they arrive off the wire) as a crawl id.
    pub fn parse_bytes(b: &[u8]) -> Result<CrawlId, CrawlIdError> {
        match std::str::from_utf8(b) {
            Ok(s) => CrawlId::parse(s),
            Err(e) => {
                let at = e.valid_up_to();
                Err(CrawlIdError::BadChar {
                    shown: String::from_utf8_lossy(&b[..b.len().min(40)]).into_owned(),
                    ch: char::REPLACEMENT_CHARACTER,
                    at,
                })
            }
        }
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CrawlId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CrawlId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CrawlId({:?})", self.0)
    }
}

impl std::str::FromStr for CrawlId {
    type Err = CrawlIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CrawlId::parse(s)
    }
}

impl AsRef<str> for CrawlId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for CrawlId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for CrawlId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CrawlId::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_ids() {
        for s in ["a", "crawl-2026.11_x", "0", &"a".repeat(128)] {
            assert!(CrawlId::parse(s).is_ok(), "{s}");
        }
    }

    #[test]
    fn rejects_hostile_ids() {
        for s in [
            "",
            "..",
            ".hidden",
            "-x",
            "_x",
            "a/b",
            "../etc",
            "a\\b",
            "a b",
            "a\0",
            "é",
            "a;DROP",
            "a'b",
            &"a".repeat(129),
        ] {
            assert!(CrawlId::parse(s).is_err(), "{s:?} should be rejected");
        }
        assert!(CrawlId::parse_bytes(b"ab\xff").is_err());
    }
}
