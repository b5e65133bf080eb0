//! Sidecars: the small versioned JSON records kept beside a spool bucket
//! (`<bucket>.delivered`, `<bucket>.acked`), how they are named, read and replaced.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// The sidecar of `bucket` with suffix `suffix` (e.g. `.delivered`).
pub(crate) fn sidecar_path(bucket: &Path, suffix: &str) -> PathBuf {
    let mut s = OsString::from(bucket.as_os_str());
    s.push(suffix);
    PathBuf::from(s)
}

/// The temporary file a sidecar at `path` is written through.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    sidecar_path(path, ".tmp")
}

/// An error about the sidecar at `path`.
pub(crate) fn invalid(path: &Path, message: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{}: {message}", path.display()),
    )
}

/// Reads the JSON sidecar at `path` (`Ok(None)` when there is none), refusing one whose
/// `version_of` is not `version`: `what` names the record in that error.
pub(crate) fn read_versioned<T: DeserializeOwned>(
    path: &Path,
    what: &str,
    versions: std::ops::RangeInclusive<u32>,
    version_of: impl FnOnce(&T) -> u32,
) -> std::io::Result<Option<T>> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let record: T = serde_json::from_slice(&text).map_err(|e| invalid(path, e))?;
    let found = version_of(&record);
    if !versions.contains(&found) {
        return Err(invalid(
            path,
            format!(
                "version {found} is not supported for {what} (this build reads versions {} to {})",
                versions.start(),
                versions.end()
            ),
        ));
    }
    Ok(Some(record))
}

/// Whether a sidecar write must reach the disk before it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// fsync of the file before the rename and of the directory after: a crash leaves
    /// the old content or the new, never a torn file.
    Synced,
    /// Rename only: a reader never sees a half-written file while the machine runs, but
    /// a crash may leave an empty or torn one. For records whose loss only costs work.
    Unsynced,
}

/// Writes a sidecar at `path` through its temporary file and a rename.
pub(crate) fn write_by_rename(
    path: &Path,
    bytes: &[u8],
    durability: Durability,
) -> std::io::Result<()> {
    let tmp = tmp_path(path);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    if durability == Durability::Synced {
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if durability == Durability::Synced
        && let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}
