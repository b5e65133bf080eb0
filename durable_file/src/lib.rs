//! Small state files (keys, tokens, checkpoints, records, catalogs) replaced whole, so a
//! reader, a crash or a full disk never leaves one torn.
//!
//! A write goes to `<name>.tmp` beside the file, is fsynced, renamed over the file (the
//! rename is the commit) and the directory is fsynced so the rename itself survives a
//! crash. A write that fails (a full disk, a read-only file system) removes its temporary
//! file, giving back the space, and leaves the old content in place. Every agent writes
//! its small files this way; this crate is the one place the steps live.
//!
//! The other side of the same files: a reader that loaded one (the cluster file, an
//! allow-list) and must follow its changes compares its [`FileStamp`] on each use.

#![deny(missing_docs)]

mod file_stamp;

pub use file_stamp::FileStamp;

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Whether a replacement must reach the disk before it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync of the file before the rename and of the directory after: a crash leaves
    /// the old content or the new, never a torn file.
    Synced,
    /// Rename only: a reader never sees a half-written file while the machine runs, but
    /// a crash may leave an empty or torn one. For records whose loss only costs work.
    Unsynced,
}

/// The temporary file a replacement of `path` writes first: `<name>.tmp` beside it.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(OsString::from).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Replaces `path` with `bytes` (see the crate doc).
pub fn replace(path: &Path, bytes: &[u8], durability: Durability) -> std::io::Result<()> {
    write_then_rename(path, bytes, durability, None)
}

/// Replaces `path` with `bytes`, readable only by its owner (mode 0600 from the first
/// byte: a secret is never readable by others, not even while it is written).
pub fn replace_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_then_rename(path, bytes, Durability::Synced, Some(0o600))
}

/// Fsyncs a directory, making a rename or a new file in it durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn write_then_rename(
    path: &Path,
    bytes: &[u8],
    durability: Durability,
    mode: Option<u32>,
) -> std::io::Result<()> {
    let tmp = temp_path(path);
    let written = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        if let Some(mode) = mode {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(mode);
        }
        #[cfg(not(unix))]
        let _ = mode;
        let mut f = options.open(&tmp)?;
        f.write_all(bytes)?;
        if durability == Durability::Synced {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if durability == Durability::Synced
        && let Some(dir) = path.parent()
    {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacement_is_whole_and_leaves_no_temporary_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        replace(&p, b"one", Durability::Synced).unwrap();
        replace(&p, b"two, longer", Durability::Unsynced).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two, longer");
        assert!(!temp_path(&p).exists());
        assert_eq!(temp_path(&p), d.path().join("state.json.tmp"));
    }

    #[cfg(unix)]
    #[test]
    fn a_private_file_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("secret.key");
        replace_private(&p, b"k").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_failed_write_keeps_the_old_content_and_removes_its_temporary_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        replace(&p, b"old", Durability::Synced).unwrap();
        // The rename fails: a directory stands where the file would go.
        let blocked = d.path().join("blocked");
        std::fs::create_dir_all(blocked.join("x")).unwrap();
        assert!(replace(&blocked, b"new", Durability::Synced).is_err());
        assert!(!temp_path(&blocked).exists());
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
    }
}
