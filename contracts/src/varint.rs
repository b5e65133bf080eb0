//! LEB128 unsigned varints and zigzag signed ones, for the compact binary contracts.

use crate::DecodeError;

/// Appends `v` as a LEB128 varint.
pub fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` zigzag-encoded.
pub fn put_i64(out: &mut Vec<u8>, v: i64) {
    put_u64(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// Number of bytes `put_u64(v)` writes.
pub fn len_u64(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// A bounds-checked reader over a byte slice; every method fails instead of panicking.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// Reads `buf`, naming `what` in errors.
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    /// Current position.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    fn short(&self, need: usize) -> DecodeError {
        DecodeError::Truncated {
            what: self.what,
            at: self.pos,
            need,
        }
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or_else(|| self.short(1))?;
        self.pos += 1;
        Ok(b)
    }

    /// `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or_else(|| self.short(n))?;
        let s = self.buf.get(self.pos..end).ok_or_else(|| self.short(n))?;
        self.pos = end;
        Ok(s)
    }

    /// A fixed-size array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.bytes(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// A big-endian u64.
    pub fn u64_be(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array::<8>()?))
    }

    /// A big-endian u32.
    pub fn u32_be(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array::<4>()?))
    }

    /// A LEB128 varint of at most 10 bytes.
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8()?;
            let part = u64::from(b & 0x7f);
            if i == 9 && b > 1 {
                return Err(DecodeError::Invalid {
                    what: self.what,
                    at: self.pos,
                    reason: "varint overflows 64 bits".into(),
                });
            }
            v |= part << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::Invalid {
            what: self.what,
            at: self.pos,
            reason: "varint longer than 10 bytes".into(),
        })
    }

    /// A zigzag varint.
    pub fn varint_i64(&mut self) -> Result<i64, DecodeError> {
        let u = self.varint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// A varint that must fit `usize` and be at most `max`.
    pub fn len(&mut self, max: usize) -> Result<usize, DecodeError> {
        let at = self.pos;
        let v = self.varint()?;
        if v > max as u64 {
            return Err(DecodeError::Invalid {
                what: self.what,
                at,
                reason: format!("length {v} exceeds the maximum {max}"),
            });
        }
        Ok(v as usize)
    }

    /// A length-prefixed byte string.
    pub fn blob(&mut self, max: usize) -> Result<&'a [u8], DecodeError> {
        let n = self.len(max)?;
        self.bytes(n)
    }

    /// A length-prefixed UTF-8 string.
    pub fn str(&mut self, max: usize) -> Result<&'a str, DecodeError> {
        let at = self.pos;
        let b = self.blob(max)?;
        std::str::from_utf8(b).map_err(|_| DecodeError::Invalid {
            what: self.what,
            at,
            reason: "string is not UTF-8".into(),
        })
    }

    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.pos != self.buf.len() {
            return Err(DecodeError::Invalid {
                what: self.what,
                at: self.pos,
                reason: format!("{} trailing bytes", self.buf.len() - self.pos),
            });
        }
        Ok(())
    }
}

/// Appends a length-prefixed byte string.
pub fn put_blob(out: &mut Vec<u8>, b: &[u8]) {
    put_u64(out, b.len() as u64);
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varints_round_trip(v: u64, s: i64) {
            let mut out = Vec::new();
            put_u64(&mut out, v);
            prop_assert_eq!(out.len(), len_u64(v));
            put_i64(&mut out, s);
            let mut r = Reader::new(&out, "test");
            prop_assert_eq!(r.varint()?, v);
            prop_assert_eq!(r.varint_i64()?, s);
            r.finish()?;
        }

        #[test]
        fn garbage_never_panics(b: Vec<u8>) {
            let mut r = Reader::new(&b, "test");
            let _ = r.varint();
            let _ = r.str(100);
            let _ = r.u64_be();
        }
    }
}
