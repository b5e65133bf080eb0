//! [`TrigramPostings`]: archie's substring index: for each byte trigram, the lines of
//! each batch that hold it ([`crate::posting_lists`], table `grams`).
//!
//! Why not FTS5's `trigram` tokenizer: measured here on 280-byte crawl.log lines it
//! indexes about 10,000 lines/s per core (detail=none), a fifth of the 50,000 events/s
//! target on two cores, because every trigram of every line goes through FTS5's
//! per-token hash and segment merging. This index computes a line's distinct trigrams in
//! Rust (ASCII case-folded bytes, so a case-sensitive substring's candidates are a
//! superset of its matches, as with `case_sensitive 0`) and hands them to a
//! [`PostingGatherer`], which writes each trigram's list once per batch.

use rusqlite::Connection;

use crate::posting_lists::{PostingGatherer, PostingIndex};

/// The distinct trigrams of `line` (ASCII-lowercased bytes, packed into a u32), sorted.
pub fn grams(line: &[u8], out: &mut Vec<u32>) {
    out.clear();
    if line.len() < 3 {
        return;
    }
    let lower = |b: u8| b.to_ascii_lowercase() as u32;
    let mut g = (lower(line[0]) << 8) | lower(line[1]);
    for &b in &line[2..] {
        g = ((g << 8) | lower(b)) & 0x00FF_FFFF;
        out.push(g);
    }
    out.sort_unstable();
    out.dedup();
}

/// Gathers one batch's trigram postings, then writes them.
pub struct TrigramPostings {
    gatherer: PostingGatherer,
    /// One bit per possible gram (2^24 bits, 2 MiB): which grams the current line has,
    /// so a line's repeated grams are dropped before they cost a place in the sort.
    seen: Vec<u64>,
    scratch: Vec<u32>,
}

impl Default for TrigramPostings {
    fn default() -> TrigramPostings {
        TrigramPostings {
            gatherer: PostingGatherer::new(PostingIndex::Grams),
            seen: vec![0; (1 << 24) / 64],
            scratch: Vec::new(),
        }
    }
}

impl TrigramPostings {
    /// Adds `line`, at `offset` from its batch's first seq (offsets must not decrease).
    pub fn add(&mut self, offset: u32, line: &str) {
        let bytes = line.as_bytes();
        if bytes.len() < 3 {
            return;
        }
        self.scratch.clear();
        let lower = |b: u8| b.to_ascii_lowercase() as u32;
        let mut g = (lower(bytes[0]) << 8) | lower(bytes[1]);
        for &b in &bytes[2..] {
            g = ((g << 8) | lower(b)) & 0x00FF_FFFF;
            let (word, bit) = ((g >> 6) as usize, 1u64 << (g & 63));
            if self.seen[word] & bit == 0 {
                self.seen[word] |= bit;
                self.scratch.push(g);
            }
        }
        for &g in &self.scratch {
            self.seen[(g >> 6) as usize] = 0;
            self.gatherer.add(g, offset);
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
    use crate::posting_lists::{BATCHES, batches, candidates, write_batch};

    #[test]
    fn grams_fold_case_and_find_their_lines() {
        let mut a = Vec::new();
        grams(b"AbCd", &mut a);
        let mut b = Vec::new();
        grams(b"abcd", &mut b);
        assert_eq!(a, b);
        assert_eq!(a.len(), 2);
        grams(b"ab", &mut a);
        assert!(a.is_empty());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shard-0.sqlite");
        let writer = Connection::open(&path).unwrap();
        writer.execute_batch(BATCHES).unwrap();
        writer.execute_batch(&PostingIndex::Grams.schema()).unwrap();
        let mut p = TrigramPostings::default();
        let lines = [
            "hello world",
            "say hello hello",
            "HELLO there",
            "nothing",
            "worldly",
        ];
        for (i, l) in lines.iter().enumerate() {
            p.add(i as u32, l);
        }
        write_batch(&writer, 0, 100, 104).unwrap();
        p.write(&writer, 0).unwrap();
        let conn = Connection::open_in_memory().unwrap();
        conn.execute("ATTACH DATABASE ?1 AS shard0", [path.to_str().unwrap()])
            .unwrap();
        let bs = batches(&conn, 1, 0, 1000).unwrap();
        assert_eq!(bs.len(), 1);
        let set = |s: &[u8]| {
            let mut g = Vec::new();
            grams(s, &mut g);
            g
        };
        let cand =
            |alts: &[Vec<u32>]| candidates(&conn, PostingIndex::Grams, &bs[0], alts).unwrap();
        assert_eq!(cand(&[set(b"hello")]), vec![100, 101, 102]);
        assert_eq!(
            cand(&[set(b"hello"), set(b"world")]),
            vec![100, 101, 102, 104]
        );
        assert!(cand(&[set(b"zzz")]).is_empty());
    }
}
