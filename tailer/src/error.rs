//! `TailerError`: why the tailer stopped, with the file or directory involved and what to
//! do about it.

use std::path::PathBuf;

/// Why the tailer (or one of its parts) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TailerError {
    /// A file system operation failed on `path`.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("creating spool bucket", "reading state file", ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The state file exists but cannot be used.
    #[error(
        "state file {path}: {message}; fix or move it away (the tailer then re-reads every file)"
    )]
    State {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A source's `path` or `exclude` pattern does not compile.
    #[error("source {pattern:?}: {message}")]
    Pattern {
        /// The pattern as configured.
        pattern: String,
        /// What is wrong and how to write it instead.
        message: String,
    },
    /// A spool bucket file cannot be read back.
    #[error("spool bucket {path}: {message}; move it out of the spool to continue")]
    Spool {
        /// The bucket file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The tailer id file cannot be read or created.
    #[error(transparent)]
    TailerId(#[from] crate::tailer_id::TailerIdError),
    /// The reader thread panicked or the shipper task failed.
    #[error("{0}")]
    Task(String),
}

impl TailerError {
    /// Wraps an I/O error with what was being done and to which path.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> TailerError {
        TailerError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// Whether this is an I/O error for lack of file descriptors (EMFILE, ENFILE): the
    /// tailer retries rather than stops.
    pub fn out_of_descriptors(&self) -> bool {
        match self {
            TailerError::Io { source, .. } => {
                matches!(source.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
            }
            _ => false,
        }
    }

    /// The storage fault (disk full, read-only file system) behind this error and the path
    /// it hit, if it is one: the tailer then pauses and retries instead of stopping.
    pub fn storage_fault(&self) -> Option<(disk_space::StorageFault, &std::path::Path)> {
        match self {
            TailerError::Io { path, source, .. } => {
                disk_space::StorageFault::of(source).map(|f| (f, path.as_path()))
            }
            _ => None,
        }
    }
}
