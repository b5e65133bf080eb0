//! [`Catalog`]: every history request and its state, persisted as `catalog.json` in the
//! work dir so that expiry and the disk budget survive a restart.
//!
//! The file is tagged by `version` and written to a temporary file, fsynced and renamed,
//! then the directory is fsynced: a crash leaves the old catalog or the new one, never a
//! torn one. Progress counters are not persisted (only state changes are), so a restart
//! finds builds in `queued`, `fetching` or `indexing` and fails them: their files are
//! partial.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::ArchieError;

/// Where a request is in its life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum RequestState {
    /// Waiting for a build slot (`concurrent_builds`).
    Queued,
    /// Fetching segments.
    Fetching {
        /// Segments fetched.
        done: usize,
        /// Segments to fetch (grows as each crawl of a pattern is listed).
        total: usize,
        /// Bytes fetched.
        bytes: u64,
    },
    /// Building the index; what is indexed so far is searchable.
    Indexing {
        /// Percent of the events indexed.
        percent: f64,
        /// Events in the range.
        events_total: u64,
    },
    /// Built; searchable until `expires_at`.
    Ready,
    /// Failed; `reason` says why and what to do.
    Failed {
        /// Why.
        reason: String,
    },
    /// Expired or evicted: its files are gone.
    Expired {
        /// Why (expiry, disk budget, deleted).
        reason: String,
    },
}

impl RequestState {
    /// Whether the index exists or is being made (a new request may reuse it).
    pub fn is_live(&self) -> bool {
        !matches!(
            self,
            RequestState::Failed { .. } | RequestState::Expired { .. }
        )
    }

    /// Whether the build has not finished (neither ready nor failed nor expired).
    pub fn is_building(&self) -> bool {
        matches!(
            self,
            RequestState::Queued | RequestState::Fetching { .. } | RequestState::Indexing { .. }
        )
    }
}

/// One history request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Its id (16 hex digits), the index's name in URLs.
    pub id: String,
    /// A human name: crawl and range.
    pub name: String,
    /// The crawl or crawl pattern asked for.
    pub crawl: String,
    /// The crawls it resolved to (once fetching started).
    #[serde(default)]
    pub crawls: Vec<String>,
    /// Range start (inclusive).
    pub start: DateTime<Utc>,
    /// Range end (exclusive).
    pub end: DateTime<Utc>,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// Its state, flattened into the record (`"state": "ready"`, plus that state's fields).
    #[serde(flatten)]
    pub state: RequestState,
    /// When its files are deleted (set once ready or failed).
    pub expires_at: Option<DateTime<Utc>>,
    /// Events indexed (searchable) so far.
    pub events_indexed: u64,
    /// A note for the user (e.g. that no segment covers the range).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Bytes of its index on disk (when ready).
    #[serde(default)]
    pub index_bytes: u64,
}

impl RequestRecord {
    /// Whether this request's crawl spec is `crawl` and its range covers `[start, end)`.
    pub fn covers(&self, crawl: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
        self.crawl == crawl && self.start <= start && self.end >= end && self.state.is_live()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "version")]
enum CatalogFile {
    #[serde(rename = "1")]
    V1 { requests: Vec<RequestRecord> },
}

/// The persisted list of requests.
#[derive(Debug)]
pub struct Catalog {
    path: PathBuf,
}

impl Catalog {
    /// The catalog in `work_dir`.
    pub fn new(work_dir: &Path) -> Catalog {
        Catalog {
            path: work_dir.join("catalog.json"),
        }
    }

    /// Reads the catalog; a missing file is an empty one.
    pub fn load(&self) -> Result<Vec<RequestRecord>, ArchieError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ArchieError::io(&self.path, e)),
        };
        let file: CatalogFile =
            serde_json::from_slice(&bytes).map_err(|e| ArchieError::ConfigParse {
                path: self.path.clone(),
                message: format!(
                    "catalog is not readable ({e}); move it away to start with an empty one"
                ),
            })?;
        let CatalogFile::V1 { requests } = file;
        Ok(requests)
    }

    /// Replaces the catalog with `requests`, atomically.
    pub fn save(&self, requests: &[RequestRecord]) -> Result<(), ArchieError> {
        let body = serde_json::to_vec_pretty(&CatalogFile::V1 {
            requests: requests.to_vec(),
        })
        .map_err(|e| ArchieError::Internal(format!("encoding the catalog: {e}")))?;
        durable_file::replace(&self.path, &body, durable_file::Durability::Synced)
            .map_err(|e| ArchieError::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_flattened_state() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::new(dir.path());
        assert!(c.load().unwrap().is_empty());
        let t = DateTime::parse_from_rfc3339("2026-11-20T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let r = RequestRecord {
            id: "00ff".into(),
            name: "n".into(),
            crawl: "c-*".into(),
            crawls: vec!["c-1".into()],
            start: t,
            end: t + chrono::Duration::hours(1),
            created_at: t,
            state: RequestState::Failed {
                reason: "no".into(),
            },
            expires_at: Some(t),
            events_indexed: 3,
            message: None,
            index_bytes: 0,
        };
        c.save(std::slice::from_ref(&r)).unwrap();
        assert_eq!(c.load().unwrap(), vec![r]);
        let text = std::fs::read_to_string(dir.path().join("catalog.json")).unwrap();
        assert!(
            text.contains("\"version\": \"1\"") && text.contains("\"state\": \"failed\""),
            "{text}"
        );
    }
}
