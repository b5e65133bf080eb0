//! The zlib pieces sealing needs beyond flate2: whole-stream deflate and a bounded
//! inflate with reused state, and a stream spliced from a stored head and blocks
//! compressed elsewhere.

use flate2::{Compress, Decompress, FlushCompress, FlushDecompress, Status};

use super::session::TransportError;

/// A zlib header: deflate, 32 KiB window, no preset dictionary, check bits valid.
pub(super) const ZLIB_HEADER: [u8; 2] = [0x78, 0x01];

/// Appends `head` as one stored (uncompressed) deflate block, not the final one. A stored
/// block ends byte-aligned and refers to nothing, so another compressor's blocks may
/// follow it in the same stream; a message head of a few bytes gains nothing from
/// compression, and no compressor has to be reset (clearing its tables) per message.
pub(super) fn stored_block(head: &[u8], out: &mut Vec<u8>) -> Result<(), TransportError> {
    let len = u16::try_from(head.len())
        .map_err(|_| TransportError::Inflate("message head too long for a stored block".into()))?;
    // BFINAL = 0, BTYPE = 00 (stored), then padding to the byte boundary.
    out.push(0);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(head);
    Ok(())
}

/// Adler-32 of `data` (RFC 1950), for the short message heads `seal_live` stores.
pub(super) fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &x in chunk {
            a += u32::from(x);
            b += a;
        }
        a %= ADLER_BASE;
        b %= ADLER_BASE;
    }
    (b << 16) | a
}

const ADLER_BASE: u32 = 65_521;

/// The Adler-32 of `A || B` from those of `A` and `B` and the length of `B`, as zlib's
/// `adler32_combine` computes it.
pub(super) fn adler32_combine(adler_a: u32, adler_b: u32, len_b: u64) -> u32 {
    let base = u64::from(ADLER_BASE);
    let rem = len_b % base;
    let a1 = u64::from(adler_a & 0xffff);
    let b1 = u64::from(adler_a >> 16);
    let a2 = u64::from(adler_b & 0xffff);
    let b2 = u64::from(adler_b >> 16);
    let a = (a1 + a2 + base - 1) % base;
    let b = (rem * a1 % base + b1 + b2 + base - rem) % base;
    ((b as u32) << 16) | a as u32
}

/// Compresses `input` as one whole zlib stream with a reused (reset) compressor,
/// appending it to `out`.
pub(super) fn deflate_into(
    z: &mut Compress,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), TransportError> {
    z.reset();
    loop {
        let read = z.total_in() as usize;
        if out.len() == out.capacity() {
            out.reserve(out.capacity().max(64));
        }
        let status = z
            .compress_vec(&input[read.min(input.len())..], out, FlushCompress::Finish)
            .map_err(|e| TransportError::Inflate(format!("deflate: {e}")))?;
        if status == Status::StreamEnd {
            return Ok(());
        }
    }
}

/// Inflates one whole zlib stream with a reused (reset) decompressor, refusing output
/// past `limit` bytes (a zlib bomb) and input that ends before its stream does.
pub(super) fn inflate_at_most(
    z: &mut Decompress,
    input: &[u8],
    limit: usize,
) -> Result<Vec<u8>, TransportError> {
    z.reset(true);
    let mut out = Vec::with_capacity((input.len() * 4).clamp(256, limit + 1));
    loop {
        let read = (z.total_in() as usize).min(input.len());
        if out.len() == out.capacity() {
            if out.len() > limit {
                return Err(TransportError::Inflate(format!(
                    "inflates past {limit} bytes"
                )));
            }
            let grow = out.capacity().min(limit + 1 - out.len()).max(1);
            out.reserve_exact(grow);
        }
        let before = (z.total_in(), z.total_out());
        let status = z
            .decompress_vec(&input[read..], &mut out, FlushDecompress::Finish)
            .map_err(|e| TransportError::Inflate(e.to_string()))?;
        if out.len() > limit {
            return Err(TransportError::Inflate(format!(
                "inflates past {limit} bytes"
            )));
        }
        match status {
            Status::StreamEnd => return Ok(out),
            _ if (z.total_in(), z.total_out()) == before && out.len() < out.capacity() => {
                return Err(TransportError::Inflate(
                    "the zlib stream is cut short".into(),
                ));
            }
            _ => {}
        }
    }
}
