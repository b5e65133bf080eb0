//! `ApiState`: what the HTTP handlers share.

use std::sync::Arc;

use crate::cluster_view::ClusterView;
use crate::config::BuckConfig;
use crate::events::BuckEvents;
use crate::summary_cache::SummaryCache;

/// Shared by every HTTP handler.
pub(crate) struct ApiState {
    pub config: Arc<BuckConfig>,
    pub events: Arc<BuckEvents>,
    pub cluster: Arc<ClusterView>,
    /// Permits for queries in progress (`sql_max_concurrent`).
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
