//! `ApiState`: what the HTTP handlers share.

use std::path::Path;
use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use contracts::CrawlId;
use tokio::sync::OwnedSemaphorePermit;

use crate::cluster_view::ClusterView;
use crate::config::BuckConfig;
use crate::events::BuckEvents;
use crate::segment_files::{SegmentFile, list_crawl};
use crate::sql_api::error;
use crate::summary_cache::SummaryCache;

/// Shared by every HTTP handler.
pub(crate) struct ApiState {
    pub config: Arc<BuckConfig>,
    pub events: Arc<BuckEvents>,
    pub cluster: Arc<ClusterView>,
    /// Permits for queries in progress (`sql_max_concurrent`); take one with
    /// [`ApiState::sql_slot`].
    pub sql_queries: Arc<tokio::sync::Semaphore>,
    /// Permits for segment copies in progress (`segment_downloads_max`).
    pub segment_downloads: Arc<tokio::sync::Semaphore>,
    /// Slots of `GET /subscribe` streams (`[subscribe] max_subscribers`).
    pub subscribers: Arc<tokio::sync::Semaphore>,
    /// The live bus, for `GET /subscribe`.
    pub bus: crate::pub_sub::Bus,
    /// The buck's shutdown: ends every subscriber's stream.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Hour summaries and figures of closed segments (`GET /crawls...`).
    pub summaries: SummaryCache,
}

impl ApiState {
    /// Takes one of the `sql_max_concurrent` slots that SQL queries, exports and crawl
    /// summaries share, or says they are all taken. Each holds a blocking thread and read
    /// transactions: a bounded number run, the rest are told to come back rather than
    /// queued where they would pin memory. The slot is free again when the permit drops.
    pub(crate) fn sql_slot(&self) -> Result<OwnedSemaphorePermit, SqlSlotsBusy> {
        self.sql_queries.clone().try_acquire_owned().map_err(|_| {
            self.events.sql_busy();
            SqlSlotsBusy(format!(
                "buck {} already runs {} SQL queries, exports or summaries (sql_max_concurrent): retry in a moment",
                self.config.id, self.config.sql_max_concurrent
            ))
        })
    }

    /// Lists the segment files of `crawl` on a blocking thread, with what `beside` reads
    /// in the segments directory on the same trip (`|_, _| ()` for nothing more). A
    /// listing that fails is answered as a 500 that names the crawl and the directory.
    pub(crate) async fn crawl_segments<T: Send + 'static>(
        &self,
        crawl: &CrawlId,
        beside: fn(&Path, &CrawlId) -> T,
    ) -> Result<(Vec<SegmentFile>, T), Response> {
        let dir = self.config.segments_dir();
        let listed = {
            let (dir, crawl) = (dir.clone(), crawl.clone());
            tokio::task::spawn_blocking(move || {
                list_crawl(&dir, &crawl).map(|files| (files, beside(&dir, &crawl)))
            })
            .await
        };
        match listed {
            Ok(Ok(listing)) => Ok(listing),
            Ok(Err(e)) => Err(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "cannot list the segments of crawl {crawl} in {}: {e}; check that the buck's user can read its data_dir",
                    dir.display()
                ),
            )),
            Err(e) => Err(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("listing the segments of crawl {crawl} failed: {e}"),
            )),
        }
    }
}

/// Every `sql_max_concurrent` slot is taken; answered as a 503 with `Retry-After` and
/// this message.
#[derive(Debug)]
pub(crate) struct SqlSlotsBusy(String);

impl IntoResponse for SqlSlotsBusy {
    fn into_response(self) -> Response {
        let mut busy = error(StatusCode::SERVICE_UNAVAILABLE, self.0);
        busy.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        busy
    }
}
