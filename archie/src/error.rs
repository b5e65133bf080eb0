//! Archie's errors: [`ArchieError`] for everything the library does, and how each maps
//! to an HTTP status.

use std::path::PathBuf;

use axum::http::StatusCode;

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
