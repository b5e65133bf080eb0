//! `Fingerprint`: a hash of a span of a file's bytes, used to recognise a file after it
//! was renamed, compressed or truncated, where device and inode no longer help.
//!
//! Two spans are kept per file: the first up-to-[`FINGERPRINT_BYTES`] bytes (its *head*,
//! which says which file a rotated copy is) and the up-to-[`FINGERPRINT_BYTES`] bytes just
//! before the checkpointed offset (its *tail*, which says whether the bytes already read are
//! still there). A file shorter than 256 bytes has a shorter head: the length is part of the
//! fingerprint, and a candidate is compared over the same length. Small files are common
//! (under 100 bytes) and their head alone is weak, which is why device and inode decide
//! first and the tail confirms.

use std::io::Read;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Most bytes hashed for a head or tail fingerprint.
pub const FINGERPRINT_BYTES: usize = 256;

/// The hash of `len` bytes of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Fingerprint {
    /// How many bytes were hashed (0 to [`FINGERPRINT_BYTES`]).
    pub len: u16,
    /// The first 8 bytes of their SHA-256, big-endian.
    pub hash: u64,
}

impl Fingerprint {
    /// The fingerprint of `bytes` (at most [`FINGERPRINT_BYTES`] of them are used).
    pub fn of(bytes: &[u8]) -> Fingerprint {
        let bytes = &bytes[..bytes.len().min(FINGERPRINT_BYTES)];
        let digest = Sha256::digest(bytes);
        let mut h = [0u8; 8];
        h.copy_from_slice(&digest[..8]);
        Fingerprint {
            len: bytes.len() as u16,
            hash: u64::from_be_bytes(h),
        }
    }

    /// Whether the head of `reader` has this fingerprint: reads exactly `self.len` bytes.
    pub fn matches_head(&self, reader: &mut dyn Read) -> std::io::Result<bool> {
        let mut buf = vec![0u8; usize::from(self.len)];
        let got = read_full(reader, &mut buf)?;
        Ok(got == buf.len() && Fingerprint::of(&buf) == *self)
    }
}

/// Reads until `buf` is full or the reader ends; returns how many bytes were read.
pub fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Reads the head of an open file without moving its stream position.
pub fn head_of(file: &std::fs::File) -> std::io::Result<Fingerprint> {
    span_of(file, 0, FINGERPRINT_BYTES as u64)
}

/// The fingerprint of the up-to-256 bytes before `offset`, read without moving the
/// stream position. `None` when the file is shorter than `offset`.
pub fn tail_of(file: &std::fs::File, offset: u64) -> std::io::Result<Option<Fingerprint>> {
    let len = offset.min(FINGERPRINT_BYTES as u64);
    let start = offset - len;
    let fp = span_of(file, start, len)?;
    Ok((u64::from(fp.len) == len).then_some(fp))
}

/// Whether an open file still starts with the bytes `head` was taken from (read without
/// moving the stream position).
pub fn head_matches(file: &std::fs::File, head: &Fingerprint) -> std::io::Result<bool> {
    Ok(span_of(file, 0, u64::from(head.len))? == *head)
}

/// The first `len` bytes of an open file (fewer if it is shorter), read without moving
/// the stream position.
pub fn read_head(file: &std::fs::File, len: u64) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len.min(FINGERPRINT_BYTES as u64) as usize];
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

fn span_of(file: &std::fs::File, start: u64, len: u64) -> std::io::Result<Fingerprint> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len as usize];
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], start + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Fingerprint::of(&buf[..got]))
}

/// Keeps the last up-to-256 bytes seen while skipping through a stream, so the tail
/// fingerprint at an offset can be checked in a compressed copy, which cannot seek.
#[derive(Debug, Default)]
pub struct TailWindow {
    buf: Vec<u8>,
}

impl TailWindow {
    /// Adds bytes just read.
    pub fn push(&mut self, bytes: &[u8]) {
        let take = bytes.len().min(FINGERPRINT_BYTES);
        self.buf.extend_from_slice(&bytes[bytes.len() - take..]);
        if self.buf.len() > FINGERPRINT_BYTES {
            self.buf.drain(..self.buf.len() - FINGERPRINT_BYTES);
        }
    }

    /// The fingerprint of the last bytes seen.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn head_of_small_and_large_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"short\n").unwrap();
        let f = std::fs::File::open(&p).unwrap();
        let small = head_of(&f).unwrap();
        assert_eq!(small.len, 6);
        assert!(small.matches_head(&mut &b"short\nand more"[..]).unwrap());
        assert!(!small.matches_head(&mut &b"shorT\n"[..]).unwrap());
        assert!(
            !small.matches_head(&mut &b"sho"[..]).unwrap(),
            "a shorter candidate cannot match"
        );
        let mut w = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        w.write_all(&[b'x'; 1000]).unwrap();
        let big = head_of(&f).unwrap();
        assert_eq!(usize::from(big.len), FINGERPRINT_BYTES);
        assert_ne!(big, small);
    }

    #[test]
    fn tail_window_agrees_with_tail_of() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data: Vec<u8> = (0..2000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let f = std::fs::File::open(&p).unwrap();
        for offset in [0usize, 10, 256, 1000, 2000] {
            let mut w = TailWindow::default();
            for chunk in data[..offset].chunks(97) {
                w.push(chunk);
            }
            assert_eq!(
                Some(w.fingerprint()),
                tail_of(&f, offset as u64).unwrap(),
                "offset {offset}"
            );
        }
        assert_eq!(tail_of(&f, 2001).unwrap(), None);
    }
}
