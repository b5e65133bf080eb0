//! [`TokenPostings`]: archie's term index: for each token (as `contracts::tokenizer`
//! splits lines, case-folded), the lines of each batch that hold it
//! ([`crate::posting_lists`], table `tokens`).
//!
//! It replaced FTS5 `unicode61`, which took about 45% of the build's CPU (its per-token
//! hash, sort and segment merges) for an index whose only use is to narrow: a term query
//! needs the lines holding every word, and the verifier rechecks each one. A key is a
//! 32-bit hash of the lowercased token, so the lists stay small and fixed-width; two
//! tokens sharing a hash only add candidates that the verifier then drops.
//!
//! The keys are the tokenizer's own tokens, the same ones `has_token` compares, so a term
//! narrows exactly to its lines (FTS5's `unicode61` split `www.example.com` into three
//! tokens and a query had to ask for all three). Lowercasing is per character, as
//! `eq_token` compares, so tokens equal to it ignoring case share a key.

use rusqlite::Connection;

use crate::posting_lists::{PostingGatherer, PostingIndex};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The key of `token`: FNV-1a over the UTF-8 of its characters lowercased one by one,
/// folded to 32 bits. Stored in the index, so it must never change within an
/// `INDEX_VERSION`.
pub fn token_key(token: &str) -> u32 {
    let mut h = FNV_OFFSET;
    if token.is_ascii() {
        for b in token.bytes() {
            h = (h ^ b.to_ascii_lowercase() as u64).wrapping_mul(FNV_PRIME);
        }
    } else {
        let mut buf = [0u8; 4];
        for c in token.chars().flat_map(char::to_lowercase) {
            for &b in c.encode_utf8(&mut buf).as_bytes() {
                h = (h ^ b as u64).wrapping_mul(FNV_PRIME);
            }
        }
    }
    (h ^ (h >> 32)) as u32
}

/// The keys of `line`'s tokens, in line order (repeats included).
pub fn line_keys(line: &str, out: &mut Vec<u32>) {
    out.clear();
    if line.is_ascii() {
        ascii_line_keys(line.as_bytes(), out);
    } else {
        out.extend(contracts::tokenizer::tokens(line).map(token_key));
    }
}

/// [`line_keys`] for an ASCII line, one pass over the bytes: the same tokens as
/// `contracts::tokenizer::tokens` (runs of `[A-Za-z0-9._-]` with `._-` trimmed at both
/// ends), hashed as they are read. The tokenizer's char splitting and trimming cost more
/// than the rest of the term index.
fn ascii_line_keys(line: &[u8], out: &mut Vec<u32>) {
    let word = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    let mut i = 0;
    while i < line.len() {
        if !word(line[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < line.len() && word(line[i]) {
            i += 1;
        }
        let run = &line[start..i];
        let trimmed = match run.iter().position(|b| b.is_ascii_alphanumeric()) {
            Some(a) => {
                // An alphanumeric exists, so rposition finds one too.
                let z = run
                    .iter()
                    .rposition(|b| b.is_ascii_alphanumeric())
                    .unwrap_or(a);
                &run[a..=z]
            }
            None => continue,
        };
        let mut h = FNV_OFFSET;
        for &b in trimmed {
            h = (h ^ b.to_ascii_lowercase() as u64).wrapping_mul(FNV_PRIME);
        }
        out.push((h ^ (h >> 32)) as u32);
    }
}

/// Gathers one batch's token postings, then writes them.
pub struct TokenPostings {
    gatherer: PostingGatherer,
    scratch: Vec<u32>,
}

impl Default for TokenPostings {
    fn default() -> TokenPostings {
        TokenPostings {
            gatherer: PostingGatherer::new(PostingIndex::Tokens),
            scratch: Vec::new(),
        }
    }
}

impl TokenPostings {
    /// Adds `line`, at `offset` from its batch's first seq (offsets must not decrease).
    /// A token repeated on the line is stored once (the gatherer drops equal pairs).
    pub fn add(&mut self, offset: u32, line: &str) {
        line_keys(line, &mut self.scratch);
        for &k in &self.scratch {
            self.gatherer.add(k, offset);
        }
    }

    /// Writes the batch's postings as batch `batch` (inside the caller's transaction)
    /// and empties the builder.
    pub fn write(&mut self, conn: &Connection, batch: u64) -> rusqlite::Result<()> {
        self.gatherer.write(conn, batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slow_keys(line: &str) -> Vec<u32> {
        contracts::tokenizer::tokens(line).map(token_key).collect()
    }

    #[test]
    fn ascii_path_finds_the_tokenizers_tokens() {
        let lines = [
            "2026-11-21T10:00:00Z 200 http://www.Example.com/a.html?q=1 -- \"x\"",
            "--- ... _a_ .b. -c- ._-._ x",
            "",
            "-",
            "robots.txt ROBOTS.TXT Robots.Txt.",
            "2026-11-01T00:00:00.123Z   404      1234 https://host.example/x_y-z.png LLE text/html #012 20261101000000123+45 sha1:ABCDEFGHIJKLMNOPQRSTUVWXYZ234567 - -",
        ];
        for l in lines {
            let mut fast = Vec::new();
            line_keys(l, &mut fast);
            assert_eq!(fast, slow_keys(l), "{l:?}");
        }
        let mut k = Vec::new();
        line_keys("robots.txt ROBOTS.TXT Robots.Txt.", &mut k);
        assert!(k.iter().all(|&x| x == token_key("robots.txt")), "{k:?}");
    }

    #[test]
    fn case_folding_matches_eq_token_beyond_ascii() {
        // Tokens equal ignoring case (as eq_token compares them) share a key.
        for (a, b) in [
            ("Straße", "STRAßE"),
            ("ÉCOLE", "école"),
            ("ΣΊΣΥΦΟΣ", "σίσυφοσ"),
        ] {
            assert!(contracts::tokenizer::eq_token(a, b), "{a} {b}");
            assert_eq!(token_key(a), token_key(b), "{a} {b}");
        }
        let mut k = Vec::new();
        line_keys("à la Straße: école", &mut k);
        assert_eq!(k, slow_keys("à la Straße: école"));
        assert_eq!(k.len(), 4);
        assert_ne!(token_key("robots"), token_key("robots.txt"));
    }
}
