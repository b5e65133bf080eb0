//! The porter's errors: [`StoreError`] for the archive backends, [`PorterError`] for
//! everything the porter does on top of them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use disk_space::StorageFault;

/// What went wrong in an [`crate::ArchiveStore`] call, coarse enough for a caller to decide
/// what to do next (retry, give up, alert).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The object does not exist.
    NotFound,
    /// A create-only put found an object already at the key.
    AlreadyExists,
    /// The backend refused our credentials or permissions: fix the config.
    Unauthorized,
    /// The call did not finish in time: retry.
    Timeout,
    /// The backend answered with a transient failure (5xx, throttling, a reset
    /// connection): retry.
    Service,
    /// A local file could not be read or written.
    Io,
    /// The URL or settings of the store are wrong: fix the config.
    Config,
    /// The backend answered something we cannot understand.
    Protocol,
}

/// An error from an archive store: a kind, a message that names the object, and, for
/// throttling, how long the backend asked us to wait.
#[derive(Debug, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct StoreError {
    /// What kind of failure this is.
    pub kind: StoreErrorKind,
    /// What happened, to which object (lowercase, no final period).
    pub message: String,
    /// The wait the backend asked for, if it did.
    pub retry_after: Option<Duration>,
    /// A local write met a full or read-only file system, at this path: the porter waits
    /// for space instead of counting the segment as failed.
    pub fault: Option<(StorageFault, PathBuf)>,
}

impl StoreError {
    /// Builds an error of `kind` with a message.
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> StoreError {
        StoreError {
            kind,
            message: message.into(),
            retry_after: None,
            fault: None,
        }
    }

    /// Wraps a local I/O error on `what` (a local path: an ENOSPC, EDQUOT or EROFS names
    /// it as the place that is full).
    pub fn io(what: impl std::fmt::Display, err: std::io::Error) -> StoreError {
        let kind = match err.kind() {
            std::io::ErrorKind::NotFound => StoreErrorKind::NotFound,
            std::io::ErrorKind::AlreadyExists => StoreErrorKind::AlreadyExists,
            std::io::ErrorKind::PermissionDenied => StoreErrorKind::Unauthorized,
            std::io::ErrorKind::TimedOut => StoreErrorKind::Timeout,
            _ => StoreErrorKind::Io,
        };
        let fault = StorageFault::of(&err).map(|f| (f, PathBuf::from(what.to_string())));
        StoreError {
            fault,
            ..StoreError::new(kind, format!("{what}: {err}"))
        }
    }

    /// True when the same call may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, StoreErrorKind::Timeout | StoreErrorKind::Service)
    }
}

/// An error from a porter operation (archive run, fetch, config).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PorterError {
    /// The config file could not be read.
    #[error("porter config {path}: {source}")]
    ConfigRead {
        /// The config file.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The config text is not a valid porter config.
    #[error("porter config {path}: {message}; see docs/porter.md for the fields")]
    ConfigParse {
        /// The config file (or `<string>`).
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The cluster file could not be loaded.
    #[error("cluster file: {0}")]
    Cluster(#[from] contracts::cluster::ClusterError),
    /// An archive store call failed.
    #[error("archive store: {0}")]
    Store(#[from] StoreError),
    /// A buck did not answer or answered something wrong.
    #[error("buck {url}: {message}")]
    Buck {
        /// The buck's base URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// Merging, compacting or reading a segment with SQLite failed.
    #[error("segment {segment}: {message}")]
    Segment {
        /// `<crawl>/<name>`.
        segment: String,
        /// What went wrong.
        message: String,
    },
    /// An archived object does not match its manifest (corrupt or truncated).
    #[error(
        "archived object {key} is corrupt: {message}; delete it and re-archive from the bucks, or restore it from a copy"
    )]
    Corrupt {
        /// The object's key in the archive.
        key: String,
        /// What does not match.
        message: String,
    },
    /// An archived segment a fetch needs is missing from the archive and from every buck.
    #[error("segment {segment} is missing: {message}")]
    Missing {
        /// `<crawl>/<name>`.
        segment: String,
        /// Where it was looked for.
        message: String,
    },
    /// The archive already holds a different segment under this key: never overwritten.
    #[error(
        "archive conflict at {key}: it holds ids hash {existing}, the bucks give {ours}; not overwritten, investigate before deleting either"
    )]
    Conflict {
        /// The manifest's key.
        key: String,
        /// The ids hash already archived.
        existing: String,
        /// The ids hash merged from the bucks.
        ours: String,
    },
    /// A local file under the work or output directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// `work_dir`'s file system has less free space than `min_free_bytes` /
    /// `min_free_percent` ask for: the run (or the segment) waits for the next run.
    #[error("{low} at {path}: archiving waits until space returns")]
    LowSpace {
        /// The directory measured (`work_dir`).
        path: PathBuf,
        /// How much is free and how much is kept.
        low: disk_space::LowSpace,
    },
    /// SQLite met a full or read-only file system while writing a temporary file (I/O
    /// errors keep their own variant and are recognised from their errno).
    #[error("{} at {path}: {message}", .fault.name())]
    DiskFault {
        /// No space, or read-only.
        fault: StorageFault,
        /// The file being written.
        path: PathBuf,
        /// SQLite's message.
        message: String,
    },
    /// Some segments of an archive run failed; the others were archived.
    #[error("{failed} of {total} segments failed to archive; first error: {first}")]
    Partial {
        /// How many failed.
        failed: usize,
        /// How many were tried.
        total: usize,
        /// The first failure's message.
        first: String,
    },
}

impl PorterError {
    pub(crate) fn segment(segment: impl Into<String>, message: impl std::fmt::Display) -> Self {
        PorterError::Segment {
            segment: segment.into(),
            message: message.to_string(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        PorterError::Io {
            path: path.into(),
            source,
        }
    }

    /// A SQLite error on `path` (a temporary file being written) for `segment`: a full or
    /// read-only file system becomes [`PorterError::DiskFault`], anything else
    /// [`PorterError::Segment`] with `what` before SQLite's message.
    pub(crate) fn sqlite(segment: &str, path: &Path, what: &str, e: rusqlite::Error) -> Self {
        let fault = match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => Some(StorageFault::NoSpace),
            Some(rusqlite::ErrorCode::ReadOnly) => Some(StorageFault::ReadOnly),
            _ => None,
        };
        match fault {
            Some(fault) => PorterError::DiskFault {
                fault,
                path: path.to_path_buf(),
                message: format!("{what}: {e}"),
            },
            None => PorterError::segment(segment, format!("{what}: {e}")),
        }
    }

    /// The full or read-only file system a write met, and where, if that is what this
    /// error is (not a headroom breach: see [`disk_full`](Self::disk_full)).
    pub fn storage_fault(&self) -> Option<(StorageFault, PathBuf)> {
        match self {
            PorterError::DiskFault { fault, path, .. } => Some((*fault, path.clone())),
            PorterError::Io { path, source } => StorageFault::of(source).map(|f| (f, path.clone())),
            PorterError::Store(e) => e.fault.clone(),
            _ => None,
        }
    }

    /// The full, read-only or low disk behind this error, if that is what it is: the path
    /// and why (`disk full`, `file system read-only`, or the headroom it is below), as
    /// [`disk_space::DiskEpisodes::paused`] takes them. Such an error defers the work to
    /// the next run instead of failing it; `None` for every other error.
    pub fn disk_full(&self) -> Option<(PathBuf, String)> {
        match self {
            PorterError::LowSpace { path, low } => Some((path.clone(), low.to_string())),
            _ => self
                .storage_fault()
                .map(|(f, path)| (path, f.name().to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_read_only_and_low_disks_are_told_apart_from_other_errors() {
        let os = std::io::Error::from_raw_os_error;
        let io = |errno| PorterError::io("/w/x", os(errno));
        assert_eq!(
            io(libc::ENOSPC).disk_full(),
            Some(("/w/x".into(), "disk full".into()))
        );
        assert_eq!(
            io(libc::EDQUOT).disk_full(),
            Some(("/w/x".into(), "disk full".into()))
        );
        assert_eq!(
            io(libc::EROFS).disk_full(),
            Some(("/w/x".into(), "file system read-only".into()))
        );
        assert_eq!(io(libc::EACCES).disk_full(), None);
        let store = PorterError::Store(StoreError::io("/w/y.tmp", os(libc::ENOSPC)));
        assert_eq!(
            store.disk_full(),
            Some(("/w/y.tmp".into(), "disk full".into()))
        );
        let other = PorterError::Store(StoreError::new(StoreErrorKind::Service, "503"));
        assert_eq!(other.disk_full(), None);
        let low = PorterError::LowSpace {
            path: "/w".into(),
            low: disk_space::LowSpace {
                available: 1,
                wanted: 10,
            },
        };
        let (path, why) = low.disk_full().expect("low space defers");
        assert_eq!(path, PathBuf::from("/w"));
        assert!(why.starts_with("below the 10 bytes kept free"), "{why}");
        assert!(low.to_string().contains("at /w"), "{low}");
        let full = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        );
        let e = PorterError::sqlite("c/d", Path::new("/w/m.sqlite"), "merge", full);
        assert_eq!(
            e.disk_full(),
            Some(("/w/m.sqlite".into(), "disk full".into()))
        );
        assert!(e.to_string().starts_with("disk full at /w/m.sqlite"), "{e}");
        let corrupt = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            None,
        );
        let e = PorterError::sqlite("c/d", Path::new("/w/m.sqlite"), "merge", corrupt);
        assert!(matches!(e, PorterError::Segment { .. }) && e.disk_full().is_none());
        assert_eq!(
            PorterError::segment("c/d", "not a database").disk_full(),
            None
        );
    }
}
