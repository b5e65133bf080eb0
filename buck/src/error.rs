//! The buck's errors: one enum for starting and stopping ([`BuckError`]), one for the
//! segment files ([`SegmentError`]), one for the config ([`ConfigError`]).

use std::path::PathBuf;

/// Why the buck could not start or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuckError {
    /// A directory under `data_dir` could not be created.
    #[error("cannot create directory {path}: {source}; check data_dir and its permissions")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The key file could not be read or created.
    #[error("buck key: {0}")]
    Key(#[from] contracts::keys::KeyError),
    /// The cluster file or the tailer allow-list could not be read at start.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The segment writer could not start or failed.
    #[error("segment writer: {0}")]
    Segment(#[from] SegmentError),
    /// The segment writer thread panicked.
    #[error("segment writer thread panicked; the last batch was not committed")]
    WriterPanicked,
}

/// Why a segment could not be opened, written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentError {
    /// SQLite failed on a segment file.
    #[error("segment {path}: {source}")]
    Sqlite {
        /// The segment file.
        path: PathBuf,
        /// The cause.
        source: rusqlite::Error,
    },
    /// A file-system operation on a segment failed.
    #[error("segment {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file was written by a newer (or foreign) schema.
    #[error(
        "segment {path} has schema version {found}, this build reads version {supported}; upgrade the buck"
    )]
    SchemaVersion {
        /// The segment file.
        path: PathBuf,
        /// The version found.
        found: String,
        /// The version this build writes.
        supported: i64,
    },
    /// The writer stopped (shutdown): the request was not stored.
    #[error("segment writer has stopped; the events were not stored")]
    WriterStopped,
    /// A batch failed; every request in it is refused and may be re-sent.
    #[error("batch not committed: {reason}")]
    BatchFailed {
        /// What failed, with the file.
        reason: String,
        /// Whether the cause looks temporary (disk full, I/O error, busy).
        transient: bool,
    },
}

impl SegmentError {
    pub(crate) fn sqlite(path: impl Into<PathBuf>) -> impl FnOnce(rusqlite::Error) -> SegmentError {
        let path = path.into();
        move |source| SegmentError::Sqlite { path, source }
    }

    /// Whether SQLite found the file corrupt or not a database at all.
    pub fn is_corruption(&self) -> bool {
        match self {
            SegmentError::Sqlite { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
            ),
            _ => false,
        }
    }

    /// The storage fault (disk full, read-only file system) behind this error and the
    /// file it hit, if it is one.
    pub fn storage_fault(&self) -> Option<(disk_space::StorageFault, &std::path::Path)> {
        use disk_space::StorageFault;
        match self {
            SegmentError::Sqlite { path, source } => {
                let fault = match source.sqlite_error_code()? {
                    rusqlite::ErrorCode::DiskFull => StorageFault::NoSpace,
                    rusqlite::ErrorCode::ReadOnly => StorageFault::ReadOnly,
                    _ => return None,
                };
                Some((fault, path.as_path()))
            }
            SegmentError::Io { path, source } => {
                StorageFault::of(source).map(|f| (f, path.as_path()))
            }
            _ => None,
        }
    }

    /// Whether the cause looks temporary (disk full, I/O error, a busy lock), so that a
    /// retry after a pause may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            SegmentError::Sqlite { source, .. } => is_transient_sqlite(source),
            SegmentError::Io { .. } | SegmentError::WriterStopped => true,
            SegmentError::BatchFailed { transient, .. } => *transient,
            SegmentError::SchemaVersion { .. } => false,
        }
    }
}

/// SQLITE_FULL, SQLITE_IOERR, SQLITE_BUSY/LOCKED and SQLITE_CANTOPEN go away by themselves
/// (space freed, a lock released); anything else is a bug or corruption.
pub(crate) fn is_transient_sqlite(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code() {
        Some(
            C::DiskFull | C::SystemIoFailure | C::DatabaseBusy | C::DatabaseLocked | C::CannotOpen,
        ) => true,
        Some(_) => false,
        None => false,
    }
}

/// Why the config file is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("buck config {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not valid TOML for a buck config (including unknown fields).
    #[error("buck config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("buck config {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The cluster file could not be read.
    #[error("{0}")]
    Cluster(#[from] contracts::cluster::ClusterError),
    /// The allowed tailers file could not be read.
    #[error("allowed tailers file {path}: {source}")]
    AllowList {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}
