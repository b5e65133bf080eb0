//! Archie answers history on request: a request names a crawl (or a crawl pattern) and a
//! time range; archie fetches the covering SQLite segments through a [`SegmentSource`]
//! (porter's fetch in production), builds a temporary index (the events in time order,
//! posting lists of tokens for terms and of trigrams for substrings), reports progress while it
//! does, answers search by time, term, substring and regex, and read-only SQL, and
//! deletes the index when it expires (DESIGN.md, "archie"; docs/archie.md).
//!
//! # Layout
//!
//! - [`config`]: [`ArchieConfig`]. [`error`]: [`ArchieError`]. [`events`]: [`ArchieEvents`].
//! - [`segment_source`]: [`SegmentSource`], [`PorterSource`], [`LocalDirSource`].
//! - [`catalog`]: requests and their states, persisted in the work dir.
//! - [`history_service`]: [`HistoryService`]: requests, builds, reuse, the reaper.
//! - [`index_files`]: one index's files and schema. [`index_builder`]: building it.
//! - [`query_plan`]: term, substring, regex to a narrowing plus an exact verifier.
//! - [`posting_lists`]: per-batch posting lists, gathered by radix sort; over them
//!   [`token_postings`] (the term index) and [`trigram_postings`] (the substring index).
//! - [`index_reader`]: search, histogram, context. [`sql_api`]: read-only SQL.
//! - [`http_api`]: the routes. [`segment_fixture`]: segments for tests and the benchmark.
//!
//! # Example
//!
//! ```
//! use archie::{QueryPlan, SearchMode};
//!
//! // A substring narrows by trigrams, then every candidate line is checked exactly.
//! let plan = QueryPlan::new("robots.txt", SearchMode::Substring).unwrap();
//! assert!(plan.narrowing.is_some());
//! assert!(plan.verifier.matches("GET http://example.com/robots.txt 200"));
//! assert!(!plan.verifier.matches("GET http://example.com/ROBOTS.TXT 200"));
//! ```
#![deny(missing_docs)]

pub mod catalog;
pub mod config;
pub mod error;
pub mod events;
pub mod field_filter;
pub mod history_service;
pub mod http_api;
pub mod index_builder;
pub mod index_files;
pub mod index_reader;
pub mod posting_lists;
pub mod query_plan;
pub mod segment_fixture;
pub mod segment_source;
pub mod sql_api;
pub mod token_postings;
pub mod trigram_postings;

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use catalog::{RequestRecord, RequestState};
pub use config::ArchieConfig;
pub use error::ArchieError;
pub use events::ArchieEvents;
pub use history_service::HistoryService;
pub use query_plan::{QueryPlan, SearchMode};
pub use segment_source::{LocalDirSource, PorterSource, SegmentFile, SegmentSource};

/// A running archie: its router, counters, and the task to wait for after shutdown.
pub struct ArchieHandle {
    service: Arc<HistoryService>,
    reaper: JoinHandle<()>,
}

impl ArchieHandle {
    /// The HTTP routes (`/history...`); the binary adds `/healthz` and `/metrics`.
    pub fn router(&self) -> axum::Router {
        http_api::router(self.service.clone())
    }

    /// The counters, for `/metrics` ([`ArchieEvents::render_prometheus`]).
    pub fn events(&self) -> Arc<ArchieEvents> {
        self.service.events().clone()
    }

    /// The service, for callers that want requests without HTTP.
    pub fn service(&self) -> Arc<HistoryService> {
        self.service.clone()
    }

    /// Waits, after the shutdown token fires, for the reaper and every build to stop
    /// (builds stop at their next batch and are marked failed), then releases the work
    /// dir's lock.
    pub async fn join(self) {
        let _ = self.reaper.await;
        self.service.wait_builds().await;
        self.service.release_work_dir();
    }
}

/// Starts archie: opens the catalog in `config.work_dir` (failing builds a restart cut
/// short, deleting files no request owns), starts the reaper, and returns the handle.
/// Everything stops when `shutdown` is cancelled.
pub async fn start(
    config: ArchieConfig,
    source: Arc<dyn SegmentSource>,
    shutdown: CancellationToken,
) -> Result<ArchieHandle, ArchieError> {
    config.check().map_err(|message| ArchieError::ConfigParse {
        path: config.work_dir.clone(),
        message,
    })?;
    let events = Arc::new(ArchieEvents::default());
    let service =
        tokio::task::spawn_blocking(move || HistoryService::open(config, source, events, shutdown))
            .await
            .map_err(|e| ArchieError::Internal(format!("opening the catalog: {e}")))??;
    let reaper = tokio::spawn(service.clone().reaper());
    tracing::info!(work_dir = %service.config().work_dir.display(), "archie started");
    Ok(ArchieHandle { service, reaper })
}
