//! `Headroom`: how much free space a data directory's file system must keep.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Free space to keep on a data directory's file system. Work that needs space pauses
/// once the file system has less than either figure free, so what must not fail on a
/// nearly full disk (SQLite's checkpoint of its WAL, a state file written by rename, the
/// crawler beside the tailer) still has room.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Headroom {
    /// Bytes that must stay free.
    pub min_free_bytes: u64,
    /// Percent of the file system's size that must stay free (0 to 100).
    pub min_free_percent: f64,
}

/// What `statvfs` says of a file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeSpace {
    /// Bytes an unprivileged writer may still use.
    pub available: u64,
    /// The file system's size in bytes.
    pub total: u64,
}

/// A file system below its headroom.
#[derive(Debug, Clone, PartialEq)]
pub struct LowSpace {
    /// Bytes free.
    pub available: u64,
    /// Bytes the headroom asks for on this file system.
    pub wanted: u64,
}

impl std::fmt::Display for LowSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "below the {} bytes kept free (min_free_bytes / min_free_percent)",
            self.wanted
        )
    }
}

impl Headroom {
    /// No headroom: only a real ENOSPC pauses.
    pub const NONE: Headroom = Headroom {
        min_free_bytes: 0,
        min_free_percent: 0.0,
    };

    /// The bytes this headroom keeps free on a file system of `total` bytes.
    pub fn wanted(&self, total: u64) -> u64 {
        let percent = self.min_free_percent.clamp(0.0, 100.0);
        let by_percent = (total as f64 * percent / 100.0) as u64;
        self.min_free_bytes.max(by_percent)
    }

    /// Whether the file system holding `path` has the headroom. An unreadable file system
    /// counts as having it: a write would then fail and be handled as a fault, and a
    /// `statvfs` that fails must not stop an agent on its own.
    pub fn check(&self, path: &Path) -> Result<(), LowSpace> {
        if self.min_free_bytes == 0 && self.min_free_percent <= 0.0 {
            return Ok(());
        }
        let Ok(space) = free_space(path) else {
            return Ok(());
        };
        let wanted = self.wanted(space.total);
        if space.available < wanted {
            Err(LowSpace {
                available: space.available,
                wanted,
            })
        } else {
            Ok(())
        }
    }
}

/// `statvfs(2)` of the file system holding `path`.
#[allow(unsafe_code)]
pub fn free_space(path: &Path) -> std::io::Result<FreeSpace> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("path holds a NUL byte"))?;
    // SAFETY: `c` is a valid NUL-terminated string and `st` a zeroed statvfs that the
    // call fills; neither outlives this function.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let frag = st.f_frsize as u64;
    Ok(FreeSpace {
        available: (st.f_bavail as u64).saturating_mul(frag),
        total: (st.f_blocks as u64).saturating_mul(frag),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_larger_of_bytes_and_percent_is_kept_free() {
        let h = Headroom {
            min_free_bytes: 100,
            min_free_percent: 10.0,
        };
        assert_eq!(h.wanted(500), 100);
        assert_eq!(h.wanted(10_000), 1_000);
        assert_eq!(Headroom::NONE.wanted(10_000), 0);
    }

    #[test]
    fn a_real_file_system_is_measured_and_judged() {
        let d = tempfile::tempdir().unwrap();
        let s = free_space(d.path()).unwrap();
        assert!(s.total > 0 && s.available <= s.total);
        assert!(Headroom::NONE.check(d.path()).is_ok());
        let impossible = Headroom {
            min_free_bytes: u64::MAX,
            min_free_percent: 0.0,
        };
        let low = impossible.check(d.path()).unwrap_err();
        assert_eq!(low.available, s.available.min(low.available));
        assert!(low.to_string().starts_with("below the "), "{low}");
        assert!(free_space(&d.path().join("missing")).is_err());
    }
}
