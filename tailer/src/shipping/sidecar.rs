//! Sidecars: the small versioned JSON records kept beside a spool bucket
//! (`<bucket>.delivered`, `<bucket>.acked`), how they are named, read and replaced.

use std::ffi::OsString;
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
    durable_file::temp_path(path)
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

pub(crate) use durable_file::Durability;

/// Writes a sidecar at `path` through its temporary file and a rename.
pub(crate) fn write_by_rename(
    path: &Path,
    bytes: &[u8],
    durability: Durability,
) -> std::io::Result<()> {
    durable_file::replace(path, bytes, durability)
}
