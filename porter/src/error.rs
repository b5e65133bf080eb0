//! The porter's errors: [`StoreError`] for the archive backends, [`PorterError`] for
//! everything the porter does on top of them.

use std::path::PathBuf;
use std::time::Duration;

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
}

impl StoreError {
    /// Builds an error of `kind` with a message.
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> StoreError {
        StoreError {
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Wraps a local I/O error on `what` (a key or a path).
    pub fn io(what: impl std::fmt::Display, err: std::io::Error) -> StoreError {
        let kind = match err.kind() {
            std::io::ErrorKind::NotFound => StoreErrorKind::NotFound,
            std::io::ErrorKind::AlreadyExists => StoreErrorKind::AlreadyExists,
            std::io::ErrorKind::PermissionDenied => StoreErrorKind::Unauthorized,
            std::io::ErrorKind::TimedOut => StoreErrorKind::Timeout,
            _ => StoreErrorKind::Io,
        };
        StoreError::new(kind, format!("{what}: {err}"))
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
}
