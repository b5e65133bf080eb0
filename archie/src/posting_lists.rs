//! [`PostingGatherer`]: the inverted indexes of a shard, one posting list per (key,
//! batch), for both kinds of key: byte trigrams ([`crate::trigram_postings`], substrings
//! and regexes) and token hashes ([`crate::token_postings`], terms).
//!
//! A batch covers a contiguous seq range, so a search visits the batches in time order (up
//! or down), intersects the few lists its query needs within each batch (stopping when
//! empty), and gets its candidates already in seq order. A list is a
//! delta-varint run of the seqs' offsets from the batch's first seq.
//!
//! Lists are stored in blocks: one row `(block, batch, first_key, lists)` holds the lists of
//! consecutive keys, up to about [`BLOCK_BYTES`], each as `varint(key - previous key),
//! varint(n), varint(bytes), bytes` (a list longer than a block gets a block of its own).
//! A lookup reads the block with the greatest `first_key` at or below the key and scans it.
//! Why blocks: a crawl.log line has about five tokens found nowhere else in its batch
//! (digests, offsets, timestamps), so one row per (key, batch) made 5.3 rows per event,
//! and SQLite's per-row insert cost was then most of the build. The table is keyed by
//! (batch, first_key) (packed in the rowid `block`): batches are numbered in the order they are written and each one's
//! keys come sorted, so every insert appends to the b-tree (keyed by key first, each batch
//! dirtied pages all over the tree: measured 2x slower). [`BATCHES`] holds each batch's seq
//! range.
//!
//! Why a radix sort instead of a hash map of growing lists: a 280-byte line has about 200
//! distinct trigrams, so a 50,000-line batch makes 10 million (key, offset) pairs. Pushing
//! each onto its key's list in a hash map is a cache miss per pair (measured: a quarter of
//! the build's CPU). Appending the pairs to 256 vectors by the key's top byte is a
//! sequential write, and sorting each vector by the rest of the key (stable counting
//! passes of 8 bits, which keep the offsets in order) reads and writes memory in order
//! too. The lists then come out sorted by key, as the blocks need.

use rusqlite::{Connection, OptionalExtension};

/// The per-batch seq ranges, shared by both kinds of postings in a shard.
pub const BATCHES: &str = "
CREATE TABLE IF NOT EXISTS batches (
    batch INTEGER PRIMARY KEY, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL);
";

/// The two inverted indexes of a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostingIndex {
    /// `grams`: ASCII-lowercased byte trigrams (24-bit keys).
    Grams,
    /// `tokens`: hashes of lowercased tokens (32-bit keys).
    Tokens,
}

impl PostingIndex {
    /// The table's name in a shard.
    pub fn table(self) -> &'static str {
        match self {
            PostingIndex::Grams => "grams",
            PostingIndex::Tokens => "tokens",
        }
    }

    /// Significant bits of a key: they decide how many sorting passes a batch needs.
    fn key_bits(self) -> u32 {
        match self {
            PostingIndex::Grams => 24,
            PostingIndex::Tokens => 32,
        }
    }

    /// The table's schema. `block` is `batch << 32 | first_key`, the one rowid that orders
    /// blocks by batch, then key: a rowid table keeps a row of up to about 4,000 bytes on
    /// its leaf page, where a `WITHOUT ROWID` table (an index b-tree) spills anything over
    /// about 1,000 bytes to overflow pages (measured: the rare-substring search took 3x as
    /// long). `batch` and `first_key` are repeated for SQL readers.
    pub fn schema(self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {} (
                block INTEGER PRIMARY KEY, batch INTEGER NOT NULL,
                first_key INTEGER NOT NULL, lists BLOB NOT NULL);",
            self.table()
        )
    }
}

/// Bytes of lists a block gathers before the next list would pass it and starts a new
/// one. Just under a page: a rowid table keeps a row of up to 4,061 bytes (with its ~20
/// bytes of header) on a 4,096-byte leaf, and a page holds one block, so smaller blocks
/// leave the rest of their page empty (3,000 bytes: 28% of the shards was slack). A
/// lookup scans half a block on average, a few hundred entries at most.
pub const BLOCK_BYTES: usize = 4000;

/// Gathers one batch's (key, offset) pairs of one index, then writes its lists.
pub struct PostingGatherer {
    index: PostingIndex,
    /// Pairs `key << 32 | offset`, by the key's top byte. Emptied after each batch with
    /// their capacity kept, so later batches reuse the memory.
    parts: Vec<Vec<u64>>,
    /// Sorting buffer, as long as the largest part.
    scratch: Vec<u64>,
}

impl PostingGatherer {
    /// An empty gatherer for `index`.
    pub fn new(index: PostingIndex) -> PostingGatherer {
        PostingGatherer {
            index,
            parts: (0..256).map(|_| Vec::new()).collect(),
            scratch: Vec::new(),
        }
    }

    /// Records that the line at `offset` (from the batch's first seq) holds `key`.
    /// Offsets must not decrease; the same pair twice is stored once.
    #[inline]
    pub fn add(&mut self, key: u32, offset: u32) {
        let top = (key >> (self.index.key_bits() - 8)) as usize & 0xFF;
        self.parts[top].push(((key as u64) << 32) | offset as u64);
    }

    /// Writes the batch's lists as batch `batch` (inside the caller's transaction) and
    /// empties the gatherer.
    pub fn write(&mut self, conn: &Connection, batch: u64) -> rusqlite::Result<()> {
        let mut stmt = conn.prepare_cached(&format!(
            "INSERT INTO {}(block, batch, first_key, lists) VALUES (?1, ?2, ?3, ?4)",
            self.index.table()
        ))?;
        let low_bits = self.index.key_bits() - 8;
        let mut block = Vec::with_capacity(2 * BLOCK_BYTES);
        let mut list = Vec::new();
        // The block's first key and the last key in it.
        let mut block_keys: Option<(u32, u32)> = None;
        for part in self.parts.iter_mut() {
            if part.is_empty() {
                continue;
            }
            sort_by_key_bits(part, &mut self.scratch, low_bits);
            let mut i = 0;
            while i < part.len() {
                let key = (part[i] >> 32) as u32;
                list.clear();
                let (mut n, mut prev) = (0u32, None::<u32>);
                while i < part.len() && (part[i] >> 32) as u32 == key {
                    let off = part[i] as u32;
                    i += 1;
                    match prev {
                        Some(p) if p == off => continue,
                        Some(p) => put_varint(&mut list, off - p),
                        None => put_varint(&mut list, off),
                    }
                    prev = Some(off);
                    n += 1;
                }
                if let Some((first, _)) = block_keys
                    && block.len() + list.len() > BLOCK_BYTES
                {
                    insert_block(&mut stmt, batch, first, &block)?;
                    block.clear();
                    block_keys = None;
                }
                let (first, last) = *block_keys.get_or_insert((key, key));
                put_varint(&mut block, key - last);
                put_varint(&mut block, n);
                put_varint(&mut block, list.len() as u32);
                block.extend_from_slice(&list);
                block_keys = Some((first, key));
            }
            part.clear();
        }
        if let Some((first, _)) = block_keys {
            insert_block(&mut stmt, batch, first, &block)?;
        }
        Ok(())
    }
}

/// Stores one block of batch `batch` whose first key is `first`.
fn insert_block(
    stmt: &mut rusqlite::CachedStatement<'_>,
    batch: u64,
    first: u32,
    block: &[u8],
) -> rusqlite::Result<()> {
    stmt.execute(rusqlite::params![
        block_id(batch, first),
        batch as i64,
        first as i64,
        block
    ])
    .map(|_| ())
}

/// The rowid of batch `batch`'s block starting at `first_key`.
fn block_id(batch: u64, first_key: u32) -> i64 {
    ((batch as i64) << 32) | first_key as i64
}

/// Sorts `v` by bits `32..32 + bits` (the key below its top byte), stably, so pairs of a
/// key keep their offsets in the order they were added. Least significant digit first,
/// 8 bits a pass; a pass where every pair has the same digit is skipped.
fn sort_by_key_bits(v: &mut Vec<u64>, scratch: &mut Vec<u64>, bits: u32) {
    scratch.clear();
    scratch.resize(v.len(), 0);
    let mut shift = 32;
    while shift < 32 + bits {
        let mut counts = [0usize; 256];
        for &x in v.iter() {
            counts[((x >> shift) & 0xFF) as usize] += 1;
        }
        if counts.contains(&v.len()) {
            shift += 8;
            continue;
        }
        let mut pos = [0usize; 256];
        let mut sum = 0;
        for (p, c) in pos.iter_mut().zip(counts) {
            *p = sum;
            sum += c;
        }
        for &x in v.iter() {
            let d = ((x >> shift) & 0xFF) as usize;
            scratch[pos[d]] = x;
            pos[d] += 1;
        }
        std::mem::swap(v, scratch);
        shift += 8;
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint at `*pos`, advancing it; `None` at the end or on a malformed one.
fn get_varint(buf: &[u8], pos: &mut usize) -> Option<u32> {
    let mut v = 0u32;
    for shift in (0..35).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= ((b & 0x7F) as u32).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The list of `key` in a block whose first key is `first_key`: its length and bytes, or
/// `None` when the block does not hold it (or is malformed from there on).
pub fn list_in_block(block: &[u8], first_key: u32, key: u32) -> Option<(u32, &[u8])> {
    let (mut pos, mut k) = (0usize, first_key);
    while pos < block.len() {
        k = k.checked_add(get_varint(block, &mut pos)?)?;
        let n = get_varint(block, &mut pos)?;
        let len = get_varint(block, &mut pos)? as usize;
        let list = block.get(pos..pos.checked_add(len)?)?;
        pos += len;
        if k == key {
            return Some((n, list));
        }
        if k > key {
            return None;
        }
    }
    None
}

/// Decodes a list into seqs (ascending), given the batch's first seq. A list that ends
/// inside a varint yields the seqs before it.
pub fn decode(blob: &[u8], first_seq: i64, out: &mut Vec<i64>) {
    out.clear();
    let (mut acc, mut shift, mut prev) = (0u32, 0u32, 0u32);
    let mut first = true;
    for &b in blob {
        acc |= ((b & 0x7F) as u32).checked_shl(shift).unwrap_or(0);
        if b & 0x80 != 0 {
            shift += 7;
            continue;
        }
        let v = if first { acc } else { prev.wrapping_add(acc) };
        first = false;
        prev = v;
        out.push(first_seq + v as i64);
        acc = 0;
        shift = 0;
    }
}

/// Records batch `batch`'s seq range (inside the caller's transaction).
pub fn write_batch(
    conn: &Connection,
    batch: u64,
    first_seq: i64,
    last_seq: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO batches(batch, first_seq, last_seq) VALUES (?1, ?2, ?3)")?
        .execute((batch as i64, first_seq, last_seq))?;
    Ok(())
}

/// One batch of a shard: its seq range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostingBatch {
    /// Shard number.
    pub shard: usize,
    /// Batch number.
    pub batch: i64,
    /// First seq.
    pub first_seq: i64,
    /// Last seq.
    pub last_seq: i64,
}

/// The batches of every shard that meet `[lo, hi]`, sorted by first seq.
pub fn batches(
    conn: &Connection,
    shards: usize,
    lo: i64,
    hi: i64,
) -> rusqlite::Result<Vec<PostingBatch>> {
    let mut out = Vec::new();
    for k in 0..shards {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT batch, first_seq, last_seq FROM shard{k}.batches WHERE last_seq >= ?1 AND first_seq <= ?2"
        ))?;
        let rows = stmt.query_map((lo, hi), |r| {
            Ok(PostingBatch {
                shard: k,
                batch: r.get(0)?,
                first_seq: r.get(1)?,
                last_seq: r.get(2)?,
            })
        })?;
        for r in rows {
            out.push(r?);
        }
    }
    out.sort_by_key(|b| b.first_seq);
    Ok(out)
}

/// The seqs of `b` that hold every key of at least one of `alternatives` in `index`,
/// ascending. An empty alternative holds nothing.
pub fn candidates(
    conn: &Connection,
    index: PostingIndex,
    b: &PostingBatch,
    alternatives: &[Vec<u32>],
) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT first_key, lists FROM shard{}.{} WHERE block BETWEEN ?1 AND ?2
         ORDER BY block DESC LIMIT 1",
        b.shard,
        index.table(),
    ))?;
    let mut out: Vec<i64> = Vec::new();
    let mut list = Vec::new();
    for alt in alternatives {
        // Intersect list by list and stop at the first empty result: a rare literal's
        // lines are usually gone from a batch after two or three of its keys, so most
        // of its lookups are never made (rarest first would need every list's size, that
        // is every lookup, before the first intersection).
        let mut acc: Option<Vec<i64>> = None;
        for &key in alt {
            let found = stmt
                .query_row((b.batch << 32, (b.batch << 32) | key as i64), |r| {
                    let first_key: i64 = r.get(0)?;
                    let block = r.get_ref(1)?.as_blob()?;
                    let hit = u32::try_from(first_key)
                        .ok()
                        .and_then(|f| list_in_block(block, f, key));
                    if let Some((_, l)) = hit {
                        decode(l, b.first_seq, &mut list);
                    }
                    Ok(hit.is_some())
                })
                .optional()?
                .unwrap_or(false);
            if !found {
                acc = Some(Vec::new());
                break;
            }
            match acc.as_mut() {
                None => acc = Some(std::mem::take(&mut list)),
                Some(acc) => {
                    let mut j = 0;
                    acc.retain(|s| {
                        while j < list.len() && list[j] < *s {
                            j += 1;
                        }
                        j < list.len() && list[j] == *s
                    });
                }
            }
            if acc.as_ref().is_some_and(Vec::is_empty) {
                break;
            }
        }
        out.extend(acc.unwrap_or_default());
    }
    if alternatives.len() > 1 {
        out.sort_unstable();
        out.dedup();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shard file written by one connection and attached as `shard0` by another, as
    /// the builder and the reader do.
    struct Shard {
        _dir: tempfile::TempDir,
        writer: Connection,
        reader: Connection,
    }

    fn shard() -> Shard {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shard-0.sqlite");
        let writer = Connection::open(&path).unwrap();
        for sql in [
            BATCHES.to_owned(),
            PostingIndex::Grams.schema(),
            PostingIndex::Tokens.schema(),
        ] {
            writer.execute_batch(&sql).unwrap();
        }
        let reader = Connection::open_in_memory().unwrap();
        reader
            .execute("ATTACH DATABASE ?1 AS shard0", [path.to_str().unwrap()])
            .unwrap();
        Shard {
            _dir: dir,
            writer,
            reader,
        }
    }

    #[test]
    fn lists_come_back_in_seq_order_without_duplicates() {
        let s = shard();
        let mut g = PostingGatherer::new(PostingIndex::Tokens);
        // Keys that share a top byte and differ in every lower byte, added out of key
        // order, one twice on the same line.
        let (a, b, c) = (0x7F00_0001u32, 0x7F01_0000u32, 0x0000_00FFu32);
        for (off, keys) in [
            (0u32, vec![b, a, a]),
            (1, vec![c]),
            (300, vec![a, c]),
            (70_000, vec![b, a]),
        ] {
            for k in keys {
                g.add(k, off);
            }
        }
        write_batch(&s.writer, 0, 1000, 71_000).unwrap();
        g.write(&s.writer, 0).unwrap();
        let bs = batches(&s.reader, 1, 0, i64::MAX).unwrap();
        assert_eq!(bs.len(), 1);
        let cand = |alts: &[Vec<u32>]| candidates(&s.reader, PostingIndex::Tokens, &bs[0], alts);
        assert_eq!(cand(&[vec![a]]).unwrap(), vec![1000, 1300, 71_000]);
        assert_eq!(cand(&[vec![a, b]]).unwrap(), vec![1000, 71_000]);
        assert_eq!(
            cand(&[vec![c], vec![b]]).unwrap(),
            vec![1000, 1001, 1300, 71_000]
        );
        assert!(cand(&[vec![a, 12345]]).unwrap().is_empty());
        // The gatherer is empty again: a second batch holds only its own pairs.
        g.add(c, 5);
        g.write(&s.writer, 1).unwrap();
        write_batch(&s.writer, 1, 71_001, 71_010).unwrap();
        let bs = batches(&s.reader, 1, 0, i64::MAX).unwrap();
        assert_eq!(bs.len(), 2);
        let cand = |alts: &[Vec<u32>]| candidates(&s.reader, PostingIndex::Tokens, &bs[1], alts);
        assert_eq!(cand(&[vec![c]]).unwrap(), vec![71_006]);
        assert!(cand(&[vec![a]]).unwrap().is_empty());
    }

    #[test]
    fn lists_spread_over_blocks_are_all_found() {
        let s = shard();
        let mut g = PostingGatherer::new(PostingIndex::Grams);
        // 20,000 keys of one line each, and one key on every line: several blocks, and
        // a list bigger than a block.
        let keys: Vec<u32> = (0..20_000u32).map(|i| (i * 838) & 0x00FF_FFFF).collect();
        for (off, &k) in keys.iter().enumerate() {
            g.add(k, off as u32);
            g.add(0x00AB_CDEF, off as u32);
        }
        write_batch(&s.writer, 0, 1, 20_000).unwrap();
        g.write(&s.writer, 0).unwrap();
        let blocks: i64 = s
            .reader
            .query_row("SELECT count(*) FROM shard0.grams", [], |r| r.get(0))
            .unwrap();
        assert!(blocks > 10, "{blocks} blocks");
        let bs = batches(&s.reader, 1, 0, i64::MAX).unwrap();
        for (off, &k) in keys.iter().enumerate().step_by(97) {
            let got = candidates(&s.reader, PostingIndex::Grams, &bs[0], &[vec![k]]).unwrap();
            assert_eq!(got, vec![off as i64 + 1], "key {k:#x}");
        }
        let all = candidates(&s.reader, PostingIndex::Grams, &bs[0], &[vec![0x00AB_CDEF]]).unwrap();
        assert_eq!(all, (1..=20_000).collect::<Vec<i64>>());
        assert!(
            candidates(&s.reader, PostingIndex::Grams, &bs[0], &[vec![1]])
                .unwrap()
                .is_empty()
        );
        // A key past the last one, and one before the first block.
        assert!(
            candidates(&s.reader, PostingIndex::Grams, &bs[0], &[vec![0x00FF_FFFF]])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn sort_is_by_key_then_insertion_order() {
        let mut v: Vec<u64> = Vec::new();
        let mut want = Vec::new();
        // A pseudo-random key sequence; offsets increase as they are added.
        let mut x = 12345u32;
        for off in 0..5000u32 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let key = x & 0x00FF_FFFF;
            v.push(((key as u64) << 32) | off as u64);
            want.push((key, off));
        }
        want.sort();
        let mut scratch = Vec::new();
        sort_by_key_bits(&mut v, &mut scratch, 24);
        let got: Vec<(u32, u32)> = v.iter().map(|&p| ((p >> 32) as u32, p as u32)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn blocks_survive_garbage() {
        assert!(list_in_block(&[0xFF; 8], 0, 5).is_none());
        // Key 0 with n = 1 and a list of 200 bytes, but only 2 there.
        assert!(list_in_block(&[0, 1, 0xC8, 0x01, 7, 7], 0, 0).is_none());
        assert_eq!(list_in_block(&[0, 1, 1, 7], 9, 9), Some((1, &[7u8][..])));
        assert!(list_in_block(&[0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 1, 1, 7], u32::MAX, 0).is_none());
    }

    #[test]
    fn decode_survives_garbage() {
        let mut out = Vec::new();
        decode(&[0xFF; 12], 1, &mut out);
        assert!(out.is_empty());
        decode(&[3, 0x80, 0x01, 0xFF], 10, &mut out);
        assert_eq!(out, vec![13, 13 + 128]);
    }
}
