//! The ids digest: sha256 over a segment's event ids sorted bytewise, each followed by
//! `\n`, in hex (`docs/porter.md`, manifest field `ids_sha256`).
//!
//! It is a segment's identity across agents: the porter writes it into an archive
//! manifest and compares it with a manifest already in the archive, and the buck
//! recomputes it over its own copy before it prunes, trusting the archive only when both
//! match. Any difference in the bytes hashed (order, separator, id text) would make the
//! buck refuse every archived segment, so the hashing lives here, once.
//!
//! Ids are the text form of [`EventId`](crate::EventId). "Bytewise" is the order of
//! SQLite's `BINARY` collation (`ORDER BY id` on the `events` table) and of Rust's `str`
//! ordering: the two agree, so a reader may sort in either.

use sha2::{Digest, Sha256};

/// The ids digest computed one id at a time, for ids already in bytewise order (rows of
/// `SELECT id FROM events ORDER BY id`).
#[derive(Debug, Clone, Default)]
pub struct IdsDigest {
    hash: Sha256,
    rows: u64,
}

impl IdsDigest {
    /// An empty digest (of zero ids).
    pub fn new() -> IdsDigest {
        IdsDigest::default()
    }

    /// Adds the next id. The caller feeds ids in bytewise order: the digest cannot sort
    /// them without holding them all.
    pub fn push(&mut self, id: &str) {
        self.hash.update(id.as_bytes());
        self.hash.update(b"\n");
        self.rows += 1;
    }

    /// How many ids were added.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The digest in lowercase hex.
    pub fn finish(self) -> String {
        hex::encode(self.hash.finalize())
    }
}

/// The ids digest of `ids` in any order (a sorted copy is hashed).
pub fn ids_sha256<S: AsRef<str>>(ids: &[S]) -> String {
    let mut sorted: Vec<&str> = ids.iter().map(AsRef::as_ref).collect();
    sorted.sort_unstable();
    let mut digest = IdsDigest::new();
    for id in sorted {
        digest.push(id);
    }
    digest.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_sha256_of_sorted_ids_each_followed_by_a_newline() {
        // sha256 of the empty string: a segment without events.
        assert_eq!(
            IdsDigest::new().finish(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let want = hex::encode(Sha256::digest(b"0001-1-0\n0001-1-200\n"));
        assert_eq!(ids_sha256(&["0001-1-200", "0001-1-0"]), want);
        let mut d = IdsDigest::new();
        d.push("0001-1-0");
        d.push("0001-1-200");
        assert_eq!(d.rows(), 2);
        assert_eq!(d.finish(), want);
    }

    #[test]
    fn the_order_is_bytewise_as_sqlite_binary_collation() {
        // Uppercase sorts before lowercase and a shorter prefix first, as memcmp does.
        let ids = ["b", "B", "ab", "a"];
        let want = hex::encode(Sha256::digest(b"B\na\nab\nb\n"));
        assert_eq!(ids_sha256(&ids), want);
        let owned: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        assert_eq!(ids_sha256(&owned), want);
    }
}
