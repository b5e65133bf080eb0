//! Repair chunks compressed once, whatever the number of homes that are sent them.
//!
//! A sealed bucket that no home got whole live is repaired to every home, one chunk at a
//! time per home. Each home's chunk is read on its own (what a home already acked or may
//! not get differs), but when two homes' reads of the same place give the same frames,
//! the second reuses the first's compressed frames while the first is still held (sent
//! and not yet acked): only sealing is per connection. Held weakly, the cache costs no
//! memory of its own: a chunk no connection holds any more is simply compressed again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use contracts::transport::{PackedFrames, TransportError};

/// Compressed repair chunks still held by some connection, by bucket file and offset.
#[derive(Debug, Default)]
pub(crate) struct ChunkPacks {
    held: Mutex<HashMap<(PathBuf, u64), Weak<PackedFrames>>>,
}

impl ChunkPacks {
    /// The chunk of `frames`, read from byte `offset` of the bucket at `path`, compressed
    /// at zlib `level`: the held one if another home's read gave the same frames, else
    /// compressed now. Blocking (milliseconds for a full chunk).
    pub fn pack(
        &self,
        path: &Path,
        offset: u64,
        frames: &Bytes,
        level: u32,
    ) -> Result<Arc<PackedFrames>, TransportError> {
        let key = (path.to_path_buf(), offset);
        if let Some(held) = self.lock().get(&key).and_then(Weak::upgrade) {
            // Same place, but another home may be routed other frames: compare.
            if held.frames() == frames {
                return Ok(held);
            }
        }
        let packed = Arc::new(PackedFrames::new(frames.clone(), level)?);
        let mut held = self.lock();
        held.retain(|_, w| w.strong_count() > 0);
        held.insert(key, Arc::downgrade(&packed));
        Ok(packed)
    }

    /// Entries whose chunk some connection still holds.
    #[cfg(test)]
    fn live_entries(&self) -> usize {
        self.lock()
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(PathBuf, u64), Weak<PackedFrames>>> {
        // A panic elsewhere while holding the lock leaves only weak pointers behind,
        // never a half-made entry: the map is still sound.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_chunk_for_two_homes_is_compressed_once_while_held() {
        let packs = ChunkPacks::default();
        let path = Path::new("/spool/crawl/b.b");
        let frames = Bytes::from(b"\x00\x05hello".repeat(1000));
        let first = packs.pack(path, 64, &frames, 1).expect("packs");
        let second = packs.pack(path, 64, &frames, 1).expect("packs");
        assert!(
            Arc::ptr_eq(&first, &second),
            "the second home reuses the first's"
        );

        let other = Bytes::from(b"\x00\x05world".repeat(1000));
        let third = packs.pack(path, 64, &other, 1).expect("packs");
        assert!(
            !Arc::ptr_eq(&first, &third),
            "other frames are compressed anew"
        );
        assert_eq!(third.frames(), &other);

        drop((first, second, third));
        assert_eq!(
            packs.live_entries(),
            0,
            "nothing is kept once no one holds it"
        );
        let again = packs.pack(path, 64, &frames, 1).expect("packs");
        assert_eq!(again.frames(), &frames);
    }
}
