//! Archie's errors: [`ArchieError`] for everything the library does, and how each maps
//! to an HTTP status.

use std::path::PathBuf;

use axum::http::StatusCode;
use disk_space::StorageFault;

/// An error from archie.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchieError {
    /// The config file could not be read.
    #[error("archie config {path}: {source}")]
    ConfigRead {
        /// The config file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid: fix the named field.
    #[error("archie config {path}: {message}")]
    ConfigParse {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// SQLite failed on a file (a segment, an index, the catalog).
    #[error("{path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: rusqlite::Error,
    },
    /// A segment is not one archie can read (wrong schema, not a database).
    #[error("segment {path}: {message}")]
    BadSegment {
        /// The segment file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The segment source (porter, a local directory) failed.
    #[error("fetching {crawl}: {message}")]
    Fetch {
        /// The crawl being fetched.
        crawl: String,
        /// What failed.
        message: String,
    },
    /// A write under `work_dir` (a fetched segment, an index file) met a full or read-only
    /// file system: the build fails with this reason and its partial files are removed.
    #[error("{} at {path}: {message}", .fault.name())]
    Disk {
        /// No space, or read-only.
        fault: StorageFault,
        /// The file or directory being written.
        path: PathBuf,
        /// What was being done.
        message: String,
    },
    /// The request is not valid: the message says which part to fix.
    #[error("{0}")]
    BadRequest(String),
    /// No history request has this id (or it expired and was forgotten).
    #[error("no history request {0}")]
    NotFound(String),
    /// Too many requests are queued or building (`max_pending_requests`): retry later.
    #[error("{0}")]
    Busy(String),
    /// The index cannot answer yet (still fetching) or any more (failed, expired).
    #[error("{0}")]
    NotSearchable(String),
    /// A SQL statement was refused or failed: the message says why.
    #[error("{0}")]
    Sql(String),
    /// A reply would pass its size limit (`sql_max_bytes`, `sql_max_value_bytes`).
    #[error("{0}")]
    TooLarge(String),
    /// Another process (an archie, `sluice up`, `sluice reindex`) holds the work dir: two
    /// would delete each other's indexes and overwrite each other's catalog.
    #[error(
        "work dir {path} is in use by another archie, `sluice up` or `sluice reindex`: stop it, or give this one its own work_dir"
    )]
    WorkDirBusy {
        /// The work dir.
        path: PathBuf,
    },
    /// A background task died unexpectedly.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ArchieError {
    /// Wraps an I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> ArchieError {
        ArchieError::Io {
            path: path.into(),
            source,
        }
    }

    /// A closure that wraps a SQLite error on `path`, for `map_err`.
    pub fn sqlite(path: &std::path::Path) -> impl Fn(rusqlite::Error) -> ArchieError + '_ {
        move |source| ArchieError::Sqlite {
            path: path.to_path_buf(),
            source,
        }
    }

    /// The full or read-only file system behind this error, and where, if that is what it
    /// is: an I/O error with ENOSPC, EDQUOT or EROFS, SQLite's "database or disk is full"
    /// or "attempt to write a readonly database", or [`ArchieError::Disk`].
    pub fn storage_fault(&self) -> Option<(StorageFault, PathBuf)> {
        match self {
            ArchieError::Disk { fault, path, .. } => Some((*fault, path.clone())),
            ArchieError::Io { path, source } => StorageFault::of(source).map(|f| (f, path.clone())),
            ArchieError::Sqlite { path, source } => match source.sqlite_error_code() {
                Some(rusqlite::ErrorCode::DiskFull) => Some((StorageFault::NoSpace, path.clone())),
                Some(rusqlite::ErrorCode::ReadOnly) => Some((StorageFault::ReadOnly, path.clone())),
                _ => None,
            },
            _ => None,
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ArchieError::BadRequest(_) | ArchieError::Sql(_) => StatusCode::BAD_REQUEST,
            ArchieError::NotFound(_) => StatusCode::NOT_FOUND,
            ArchieError::NotSearchable(_) => StatusCode::CONFLICT,
            ArchieError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ArchieError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_and_read_only_disks_are_recognised_in_io_and_sqlite_errors() {
        let os = std::io::Error::from_raw_os_error;
        let e = ArchieError::io("/w/1/segments/a.sqlite", os(libc::ENOSPC));
        assert_eq!(
            e.storage_fault(),
            Some((StorageFault::NoSpace, "/w/1/segments/a.sqlite".into()))
        );
        let e = ArchieError::io("/w/1", os(libc::EROFS));
        assert_eq!(e.storage_fault().map(|f| f.0), Some(StorageFault::ReadOnly));
        assert_eq!(
            ArchieError::io("/w", os(libc::ENOENT)).storage_fault(),
            None
        );
        let sqlite = |code| ArchieError::Sqlite {
            path: "/w/1/index/events.sqlite".into(),
            source: rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None),
        };
        assert_eq!(
            sqlite(rusqlite::ffi::SQLITE_FULL)
                .storage_fault()
                .map(|f| f.0),
            Some(StorageFault::NoSpace)
        );
        assert_eq!(sqlite(rusqlite::ffi::SQLITE_CORRUPT).storage_fault(), None);
        let d = ArchieError::Disk {
            fault: StorageFault::NoSpace,
            path: "/w/1/segments".into(),
            message: "fetching crawl-1".into(),
        };
        assert_eq!(
            d.to_string(),
            "disk full at /w/1/segments: fetching crawl-1"
        );
        assert_eq!(ArchieError::BadRequest("x".into()).storage_fault(), None);
    }
}
