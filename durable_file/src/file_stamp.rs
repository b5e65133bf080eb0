//! [`FileStamp`]: how a reader notices that a file it loaded has changed.

use std::path::Path;
use std::time::SystemTime;

/// A file's modification time, size and identity (device and inode on Unix): a change
/// in any of them means "read it again".
///
/// The size catches an edit within one mtime tick (coarse on some file systems); the
/// inode catches a file replaced whole by a rename (as [`replace`](crate::replace)
/// does, and as editors and config tools do) with the same size in the same tick.
/// Comparing stamps is a `stat`, cheap enough to do on every use of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    modified: SystemTime,
    len: u64,
    /// (device, inode); `(0, 0)` where the platform has none.
    identity: (u64, u64),
}

impl FileStamp {
    /// The stamp of `path` now; `None` if it cannot be read (missing, not permitted, or
    /// no modification time on this platform), which differs from any stamp of a
    /// readable file, so a file that comes back is read again.
    pub fn of(path: &Path) -> Option<FileStamp> {
        let m = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            modified: m.modified().ok()?,
            len: m.len(),
            identity: identity(&m),
        })
    }
}

#[cfg(unix)]
fn identity(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

#[cfg(not(unix))]
fn identity(_: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Durability, replace};

    #[test]
    fn a_stamp_changes_with_the_size_and_with_a_replacement() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("cluster.toml");
        assert_eq!(FileStamp::of(&p), None);
        std::fs::write(&p, b"one").unwrap();
        let first = FileStamp::of(&p);
        assert!(first.is_some());
        assert_eq!(
            FileStamp::of(&p),
            first,
            "an unchanged file keeps its stamp"
        );
        // Same mtime tick, other size.
        std::fs::write(&p, b"three").unwrap();
        let second = FileStamp::of(&p);
        assert_ne!(second, first);
        // Same size, possibly the same mtime tick: the rename gives a new inode. The old
        // inode is kept alive by a link so that the new file cannot reuse its number.
        let keep = d.path().join("old");
        std::fs::hard_link(&p, &keep).unwrap();
        replace(&p, b"THREE", Durability::Unsynced).unwrap();
        if cfg!(unix) {
            assert_ne!(FileStamp::of(&p), second);
        }
        std::fs::remove_file(&p).unwrap();
        assert_eq!(FileStamp::of(&p), None);
    }
}
