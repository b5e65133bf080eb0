//! The porter archives closed (crawl, day) SQLite segments from the bucks to S3, HDFS
//! (WebHDFS) or a local directory, and fetches them back for history.
//!
//! An archive run lists the segments of every buck in the cluster file, picks those that
//! are closed and whose day ended more than `archive_age_secs` ago, downloads every
//! replica, merges them with de-duplication by event id, compacts and compresses the
//! result, uploads it with a [`Manifest`] through an [`ArchiveStore`], reads it back, and
//! only then tells each buck it may prune. [`fetch`] brings a time range back as plain
//! SQLite files. Every step is idempotent, so any number of porters may run (DESIGN.md,
//! contract 8; docs/porter.md).
//!
//! # Layout
//!
//! - [`archive_store`]: the [`ArchiveStore`] trait, its contracts, and [`open_store`].
//! - [`memory_store`], [`local_dir_store`], [`s3_store`], [`webhdfs_store`]: backends.
//! - [`retry_store`]: retries and timeouts, as a wrapper around any backend.
//! - [`manifest`]: the archive layout (keys) and the [`Manifest`].
//! - [`segment_merge`]: merging replicas into one compacted SQLite file.
//! - [`object_codec`]: zlib with checksums of both sides.
//! - [`buck_client`]: the buck's segment endpoints.
//! - [`archiver`]: the archive run ([`archive_once`]).
//! - [`fetcher`]: [`fetch`] for history.
//! - [`config`]: [`PorterConfig`]. [`events`]: [`PorterEvents`] counters. [`error`].
//!
//! # Example
//!
//! ```
//! use porter::{ArchiveStore, MemoryStore};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! store.put_bytes("crawl-1/a", "x".into()).await.unwrap();
//! // Puts are create-only: a second put of the same key fails and changes nothing.
//! assert!(store.put_bytes("crawl-1/a", "y".into()).await.is_err());
//! assert_eq!(store.get_bytes("crawl-1/a").await.unwrap(), "x");
//! # });
//! ```
#![deny(missing_docs)]

pub mod archive_store;
pub mod archiver;
pub mod buck_client;
pub mod config;
pub mod error;
pub mod events;
pub mod fetcher;
pub mod local_dir_store;
pub mod manifest;
pub mod memory_store;
pub mod object_codec;
pub mod retry_store;
pub mod s3_store;
pub mod segment_merge;
pub mod webhdfs_store;

// Shared with other crates' tests (archie's tests run against the same S3 server and
// test bucks) through the `test-support` feature; not part of the porter's API.
#[cfg(any(test, feature = "test-support"))]
#[doc(hidden)]
#[allow(missing_docs)]
pub mod test_support;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use archive_store::{ArchiveStore, ObjectMeta, open_store};
pub use archiver::{ArchiveReport, archive_once, archive_with_store};
pub use config::{PorterConfig, S3Settings, WebHdfsSettings};
pub use disk_space::Headroom;
pub use error::{PorterError, StoreError, StoreErrorKind};
pub use events::PorterEvents;
pub use fetcher::{
    FetchProgress, FetchReport, FetchSource, FetchedSegment, fetch, fetch_with_store,
};
pub use local_dir_store::LocalDirStore;
pub use manifest::Manifest;
pub use memory_store::MemoryStore;
pub use retry_store::RetryStore;
pub use s3_store::S3Store;
pub use webhdfs_store::WebHdfsStore;

/// The first wait before a deferred run is tried again; each deferral in a row doubles
/// it, up to `interval_secs`. A retry that finds the disk still short costs one `statvfs`
/// (and a listing of the bucks); one that meets ENOSPC again (no headroom) downloads its
/// replicas again, which the doubling keeps rare.
pub const DEFERRED_RETRY_FIRST: Duration = Duration::from_secs(60);

/// How long the daemon waits before its next run: `interval`, or after `deferred` runs
/// in a row that waited for disk space, [`DEFERRED_RETRY_FIRST`] doubled each time and
/// never more than `interval`, so archiving resumes soon after space returns.
pub fn next_run_in(interval: Duration, deferred: u32) -> Duration {
    if deferred == 0 {
        return interval;
    }
    let factor = 1u32 << (deferred - 1).min(16);
    DEFERRED_RETRY_FIRST.saturating_mul(factor).min(interval)
}

/// Runs the porter as a daemon: an archive run every `interval_secs` until `shutdown` is
/// cancelled. A failed run is logged and counted, and the next one tries again; a run
/// deferred for a full work directory disk is tried again sooner ([`next_run_in`]).
/// Stopping mid-run is safe (every step is idempotent). Fails only if the archive store
/// cannot be opened.
pub async fn run(
    config: PorterConfig,
    shutdown: CancellationToken,
    events: Arc<PorterEvents>,
) -> Result<(), PorterError> {
    let store = open_store(&config.archive, &config)?;
    tracing::info!(archive = %store.describe(), interval_secs = config.interval_secs, "porter started");
    let mut deferred = 0u32;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            r = archive_with_store(&config, store.clone(), false, events.clone()) => {
                match r {
                    Ok(report) if report.deferred.is_some() => deferred = deferred.saturating_add(1),
                    Ok(_) => deferred = 0,
                    Err(e) => {
                        deferred = 0;
                        events.run_finished(false);
                        tracing::error!(error = %e, "archive run failed; trying again next interval");
                    }
                }
            }
        }
        let wait = next_run_in(Duration::from_secs(config.interval_secs), deferred);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    tracing::info!("porter stopped");
    Ok(())
}
