//! What zlib and crypto_box alone cost on the frames the tailer spooled, on one thread:
//! the floor under the tailer's CPU-seconds per GiB that no change to our own code can
//! lower, measured with the very functions the shipper calls.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use contracts::CrawlId;
use contracts::frame::FrameReader;
use contracts::keys::KeyPair;
use contracts::spool_file::SPOOL_HEADER_LEN;
use contracts::transport::{
    ChunkHead, Cipher, Direction, MAX_CHUNK_BYTES, Message, PackedFrames, Session,
};

/// CPU seconds of each stage over all the frames.
pub struct StageCosts {
    /// Bytes of frames (what the tailer compresses), and the packets they made.
    pub frame_bytes: u64,
    pub packets: u64,
    /// zlib at the tailer's level, once per packet (`PackedFrames::new`).
    pub deflate_secs: f64,
    /// Compressed bytes out of zlib.
    pub deflated_bytes: u64,
    /// Wrapping, Adler-32 and crypto_box sealing of each packed packet (`seal_live`),
    /// with `SalsaBox` (protocol version 1).
    pub seal_secs: f64,
    /// The same with `ChaChaBox` (protocol version 2, what two current sides use).
    pub seal_chacha_secs: f64,
    /// The frames cut into repair chunks (`MAX_CHUNK_BYTES`) sent to two homes with
    /// `ChaChaBox`: each connection compressing and sealing its own (`Session::seal`, as
    /// before), and compressed once then sealed per home (`PackedFrames::new` and
    /// `Session::seal_chunk`, as now).
    pub repair_two_homes_per_connection_secs: f64,
    pub repair_two_homes_once_secs: f64,
}

/// Cuts the bucket files under `spool` into live-sized packets of whole frames and runs
/// them through compression and sealing as the shipper does for one home.
pub fn measure(spool: &Path, packet_max: usize, level: u32) -> anyhow::Result<StageCosts> {
    let mut buckets = Vec::new();
    collect_buckets(spool, &mut buckets)?;
    buckets.sort();
    let mut packets: Vec<Bytes> = Vec::new();
    let mut frame_bytes = 0u64;
    for path in &buckets {
        let data = std::fs::read(path)?;
        let body = data.get(SPOOL_HEADER_LEN..).unwrap_or_default();
        let mut start = 0;
        let mut end = 0;
        for item in FrameReader::new(body) {
            let Ok((at, payload)) = item else { break };
            let next = at + 2 + payload.len();
            if next - start > packet_max && end > start {
                packets.push(Bytes::copy_from_slice(&body[start..end]));
                start = end;
            }
            end = next;
        }
        if end > start {
            packets.push(Bytes::copy_from_slice(&body[start..end]));
        }
        frame_bytes += end as u64;
    }
    anyhow::ensure!(!packets.is_empty(), "no frames under {}", spool.display());

    let cpu0 = thread_cpu();
    let mut packed = Vec::with_capacity(packets.len());
    for p in &packets {
        packed.push(PackedFrames::new(p.clone(), level)?);
    }
    let deflate_secs = (thread_cpu() - cpu0).as_secs_f64();
    let deflated_bytes = packed
        .iter()
        .map(|p| (p.held_bytes() - p.frames().len()) as u64)
        .sum();

    let (tailer, buck) = (KeyPair::generate(), KeyPair::generate());
    let seal_with = |cipher: Cipher| -> anyhow::Result<f64> {
        let mut session = Session::negotiated(
            Some((tailer.secret(), buck.public())),
            [7; 16],
            Direction::TailerToBuck,
            cipher,
            None,
        );
        let cpu0 = thread_cpu();
        let mut sealed = 0usize;
        for (seq, p) in packed.iter().enumerate() {
            sealed += session.seal_live(seq as u64, p)?.len();
        }
        anyhow::ensure!(sealed > 0, "nothing sealed");
        Ok((thread_cpu() - cpu0).as_secs_f64())
    };
    let seal_secs = seal_with(Cipher::SalsaBox)?;
    let seal_chacha_secs = seal_with(Cipher::ChaChaBox)?;
    drop(packed);
    let (repair_two_homes_per_connection_secs, repair_two_homes_once_secs) =
        repair_two_homes(&packets, level, &tailer, &buck)?;
    Ok(StageCosts {
        frame_bytes,
        packets: packets.len() as u64,
        deflate_secs,
        deflated_bytes,
        seal_secs,
        seal_chacha_secs,
        repair_two_homes_per_connection_secs,
        repair_two_homes_once_secs,
    })
}

/// CPU seconds to send `packets`' frames, cut into repair chunks, to two homes: each
/// connection compressing its own chunk, then each chunk compressed once.
fn repair_two_homes(
    packets: &[Bytes],
    level: u32,
    tailer: &KeyPair,
    buck: &KeyPair,
) -> anyhow::Result<(f64, f64)> {
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut chunk = Vec::with_capacity(MAX_CHUNK_BYTES);
    for p in packets {
        if chunk.len() + p.len() > MAX_CHUNK_BYTES && !chunk.is_empty() {
            chunks.push(Bytes::from(std::mem::take(&mut chunk)));
        }
        chunk.extend_from_slice(p);
    }
    if !chunk.is_empty() {
        chunks.push(Bytes::from(chunk));
    }
    let crawl = CrawlId::parse("bench-crawl")?;
    let sessions = || {
        [0u8, 1].map(|salt| {
            Session::negotiated(
                Some((tailer.secret(), buck.public())),
                [salt; 16],
                Direction::TailerToBuck,
                Cipher::ChaChaBox,
                None,
            )
            .with_compression(level)
        })
    };
    let mut homes = sessions();
    let cpu0 = thread_cpu();
    let mut sealed = 0usize;
    for (n, frames) in chunks.iter().enumerate() {
        let msg = Message::BucketChunk {
            seq: n as u64,
            crawl: crawl.clone(),
            bucket_start: 0,
            chunk: n as u32,
            last: n + 1 == chunks.len(),
            frames: frames.clone(),
        };
        for home in &mut homes {
            sealed += home.seal(&msg)?.len();
        }
    }
    let per_connection = (thread_cpu() - cpu0).as_secs_f64();

    let mut homes = sessions();
    let cpu0 = thread_cpu();
    for (n, frames) in chunks.iter().enumerate() {
        let packed = PackedFrames::new(frames.clone(), level)?;
        let head = ChunkHead {
            seq: n as u64,
            crawl: &crawl,
            bucket_start: 0,
            chunk: n as u32,
            last: n + 1 == chunks.len(),
        };
        for home in &mut homes {
            sealed += home.seal_chunk(&head, &packed)?.len();
        }
    }
    let once = (thread_cpu() - cpu0).as_secs_f64();
    anyhow::ensure!(sealed > 0, "nothing sealed");
    Ok((per_connection, once))
}

fn collect_buckets(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let path = e.path();
        if e.file_type()?.is_dir() {
            collect_buckets(&path, out)?;
        } else if path.extension().is_some_and(|x| x == "b") {
            out.push(path);
        }
    }
    Ok(())
}

/// CPU time of the calling thread.
#[allow(unsafe_code)]
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
