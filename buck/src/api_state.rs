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
    /// Hour summaries and figures of closed segments (`GET /crawls...`).
    pub summaries: SummaryCache,
}
