//! The buck receives events from tailers, stores them once each in per-crawl, per-day
//! SQLite segments, publishes what it newly stored on an in-process [`Bus`], and serves
//! the segments over a trough-compatible, read-only SQL API and a segment API for porter.
//!
//! [`start`] takes a [`BuckConfig`], a bound ingest listener and a shutdown token, and
//! returns a [`BuckHandle`]: its [`router`](BuckHandle::router) is the HTTP API (the
//! binary adds `/healthz` and `/metrics`), its [`events`](BuckHandle::events) the
//! counters, its [`bus`](BuckHandle::bus) the live events, and
//! [`join`](BuckHandle::join) waits for a clean stop after shutdown: the receiver stops
//! reading, sends the acks of what is being committed, then the writer commits what was
//! queued and closes its files.
//!
//! # Layout
//!
//! - [`config`]: `BuckConfig`, the TOML config.
//! - `receiver` (private): tailer connections, hello, sealed messages, acks.
//! - [`segment_writer`]: `SegmentWriter`, the writer thread: group commit, part files, closing.
//! - [`segment_schema`]: the segment file's schema, `meta`, durability settings.
//! - [`wal_checkpointer`]: the thread that folds busy segments' WAL into their files.
//! - [`segment_files`]: finding segment files on disk.
//! - [`pub_sub`]: `Bus`, the lossy live bus with explicit `Missed(n)`.
//! - [`sql_api`]: the read API (`POST /?segment=`, `POST /sql`).
//! - `export_api` (private): `GET /export`, original lines byte for byte.
//! - [`segment_api`]: `GET /segments`, segment copies, `archived` receipts.
//! - [`subscribe`]: `GET /subscribe`, the bus as NDJSON with the live view's filters.
//! - [`graphite`]: per-crawl counters pushed to Graphite; [`feed_events`]: their counters.
//! - [`live_feed`]: the bus subscriber that feeds the socket.io live broker, and `GET /api/bucks`.
//! - [`allow_list`], [`cluster_view`]: files re-read when they change.
//! - [`events`]: `BuckEvents`, every counter.
//! - [`error`]: `BuckError`, `SegmentError`, `ConfigError`.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = buck::BuckConfig::load(std::path::Path::new("buck.toml"))?;
//! let ingest = tokio::net::TcpListener::bind("127.0.0.1:7100").await?;
//! let http = tokio::net::TcpListener::bind("127.0.0.1:8100").await?;
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let buck = buck::start(config, ingest, shutdown.clone()).await?;
//! let server = axum::serve(http, buck.router()).with_graceful_shutdown(shutdown.clone().cancelled_owned());
//! tokio::spawn(async move { server.await });
//! shutdown.cancel();
//! buck.join().await?;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod allow_list;
mod api_state;
mod api_token;
mod batch_gathering;
pub mod cluster_view;
pub mod config;
mod crawl_api;
pub mod crawl_summary;
pub mod error;
pub mod events;
mod export_api;
pub mod feed_events;
pub mod graphite;
pub mod live_feed;
mod porter_token;
pub mod pub_sub;
mod receiver;
pub mod segment_api;
pub mod segment_files;
pub mod segment_schema;
pub mod segment_writer;
pub mod sql_api;
pub mod subscribe;
pub mod summary_cache;
pub mod wal_checkpointer;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use contracts::keys::KeyPair;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{BuckConfig, check_base_path};
pub use error::{BuckError, ConfigError, SegmentError};
pub use events::{BuckCounters, BuckEvents, ConnectionRejection};
pub use pub_sub::{Bus, BusItem, Published, Subscriber};
pub use segment_writer::{Origin, PreparedEvent, SegmentWriter, WriteOutcome, WriterOptions};

use crate::allow_list::AllowList;
use crate::api_state::ApiState;
use crate::cluster_view::ClusterView;
use crate::receiver::ReceiverContext;
use crate::segment_writer::WriterThread;

/// A running buck.
pub struct BuckHandle {
    api: Arc<ApiState>,
    browser: Arc<edge::browser_guard::BrowserGuard>,
    broker: live::LiveBroker,
    live_layer: socketioxide::layer::SocketIoLayer,
    bus: Bus,
    public_key: String,
    writer: SegmentWriter,
    writer_thread: WriterThread,
    tracker: TaskTracker,
}

/// Starts a buck: reads (or creates) its key, reads its allow-list and cluster file,
/// starts the segment writer, and accepts tailers on `ingest` until `shutdown`.
pub async fn start(
    config: BuckConfig,
    ingest: TcpListener,
    shutdown: CancellationToken,
) -> Result<BuckHandle, BuckError> {
    config.validate(std::path::Path::new("buck config"))?;
    let config = Arc::new(config);
    for dir in [
        config.data_dir.clone(),
        config.segments_dir(),
        config.data_dir.join("tmp"),
    ] {
        std::fs::create_dir_all(&dir).map_err(|source| BuckError::DataDir {
            path: dir.clone(),
            source,
        })?;
    }
    let key = KeyPair::load_or_create(&config.key_path())?;
    let events = Arc::new(BuckEvents::default());
    let tally = config
        .graphite
        .as_ref()
        .map(|_| Arc::new(graphite::Tally::default()));
    if config.bus_capacity < config.writer_max_batch_events {
        tracing::warn!(
            bus_capacity = config.bus_capacity,
            writer_max_batch_events = config.writer_max_batch_events,
            "bus_capacity is below writer_max_batch_events: one large commit can overflow the live bus, and every live view then reports missed events; raise bus_capacity"
        );
    }
    let bus = Bus::new(config.bus_capacity, events.clone()).counting(tally.clone());
    let allow = AllowList::new(&config)?;
    let cluster = Arc::new(ClusterView::new(config.cluster_file.clone())?);
    if let Some(c) = cluster.get()
        && c.buck(&config.id).is_none()
    {
        tracing::warn!(id = %config.id, "this buck's id is not in the cluster file: it is nobody's home");
    }
    let (writer, writer_thread) = SegmentWriter::spawn(
        WriterOptions::from_config(&config),
        bus.clone(),
        events.clone(),
    )?;
    let public_key = key.public_text();
    let ctx = Arc::new(ReceiverContext {
        config: config.clone(),
        key,
        allow,
        writer: writer.clone(),
        events: events.clone(),
    });
    let tracker = TaskTracker::new();
    // One read credential: the live stream takes the API token unless it has its own.
    let mut live_config = config.live.clone();
    if live_config.token.is_none() {
        live_config.token = config.api_token.clone();
    }
    let (broker, live_layer) = live::LiveBroker::new(live_config, config.id.clone());
    tracker.spawn(live_feed::feed(
        bus.subscribe(),
        broker.clone(),
        shutdown.clone(),
    ));
    if let (Some(g), Some(tally)) = (config.graphite.clone(), tally) {
        tracing::info!(address = %g.address, interval_secs = g.interval_secs, "pushing counters to graphite");
        tracker.spawn(graphite::run(
            g,
            config.id.clone(),
            tally,
            events.clone(),
            shutdown.clone(),
        ));
    }
    let receiver_shutdown = shutdown.clone();
    tracing::info!(id = %config.id, public_key = %public_key, "buck started");
    let api = Arc::new(ApiState {
        segment_downloads: Arc::new(tokio::sync::Semaphore::new(config.segment_downloads_max)),
        sql_queries: Arc::new(tokio::sync::Semaphore::new(config.sql_max_concurrent)),
        subscribers: Arc::new(tokio::sync::Semaphore::new(
            config.subscribe.max_subscribers,
        )),
        bus: bus.clone(),
        shutdown: shutdown.clone(),
        summaries: summary_cache::SummaryCache::new(config.summary_cache_bytes),
        config,
        events,
        cluster,
    });
    tracker.spawn(crawl_api::warm_summaries(api.clone(), shutdown));
    tracker.spawn(receiver::run(
        ingest,
        ctx,
        receiver_shutdown,
        tracker.clone(),
    ));
    let browser = {
        let cluster = api.cluster.clone();
        edge::browser_guard::BrowserGuard::new(
            Arc::new(move || {
                cluster
                    .get()
                    .map(|c| {
                        c.bucks
                            .iter()
                            .filter_map(|b| edge::browser_guard::origin_of(&b.http_url))
                            .collect()
                    })
                    .unwrap_or_default()
            }),
            api.config.allowed_origins.clone(),
            api.config.allowed_hosts.clone(),
        )
    };
    Ok(BuckHandle {
        api,
        browser,
        broker,
        live_layer,
        bus,
        public_key,
        writer,
        writer_thread,
        tracker,
    })
}

impl BuckHandle {
    /// The HTTP API: `POST /?segment=`, `POST /sql`, `GET /export`, `GET /subscribe`, `GET /segments`,
    /// `GET /segments/{crawl}/{name}`, `POST /segments/{crawl}/{name}/archived`.
    /// No `/healthz` or `/metrics`: the binary adds those once.
    pub fn router(&self) -> Router {
        let sql = Router::new()
            .route("/", post(sql_api::trough_query))
            .route("/sql", post(sql_api::range_query))
            .route("/export", get(export_api::export))
            .route("/subscribe", get(subscribe::subscribe))
            .route("/crawls", get(crawl_api::list))
            .route("/crawls/{crawl}/summary", get(crawl_api::summary))
            .route_layer(axum::middleware::from_fn_with_state(
                self.api.clone(),
                api_token::require,
            ));
        // The porter's routes: a receipt here lets the buck prune, so only a porter's
        // credential opens them.
        let listing = Router::new()
            .route("/segments", get(segment_api::list))
            .route_layer(axum::middleware::from_fn_with_state(
                self.api.clone(),
                porter_token::require_for_listing,
            ));
        let segments = Router::new()
            .route("/segments/{crawl}/{name}", get(segment_api::download))
            .route(
                "/segments/{crawl}/{name}/archived",
                post(segment_api::archived),
            )
            .route_layer(axum::middleware::from_fn_with_state(
                self.api.clone(),
                porter_token::require,
            ));
        Router::new()
            .merge(sql)
            .merge(segments)
            .merge(listing)
            .route("/api/bucks", get(live_feed::bucks))
            .with_state(self.api.clone())
    }

    /// Wraps the process's whole router (this buck's, merged with the web app's and any
    /// other agent's) with the socket.io live stream and CORS. Call it last: socket.io
    /// answers paths no route matches, and axum drops a layer on the fallback when
    /// routers are merged after it.
    pub fn serve_live(&self, router: Router) -> Router {
        router
            .layer(self.live_layer.clone())
            // Outermost, so socket.io is guarded too: Host and Origin checks, CORS for the
            // cluster's bucks only (the live view connects from one buck's page to all of
            // them), and the security headers of every page.
            .layer(axum::middleware::from_fn_with_state(
                self.browser.clone(),
                edge::browser_guard::check,
            ))
    }

    /// The browser guard of [`serve_live`](Self::serve_live), for its refusal counter.
    pub fn browser_guard(&self) -> Arc<edge::browser_guard::BrowserGuard> {
        self.browser.clone()
    }

    /// The live broker: its counters render as `sluice_live_*`.
    pub fn live(&self) -> &live::LiveBroker {
        &self.broker
    }

    /// The counters.
    pub fn events(&self) -> Arc<BuckEvents> {
        self.api.events.clone()
    }

    /// The live bus: subscribe to events as they are stored.
    pub fn bus(&self) -> Bus {
        self.bus.clone()
    }

    /// The buck's public key (base64), for the cluster file and tailers.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// A handle to the segment writer, for in-process producers (and benchmarks).
    pub fn writer(&self) -> SegmentWriter {
        self.writer.clone()
    }

    /// Waits, after shutdown was signalled, for the receiver to stop (acks of in-flight
    /// messages sent) and then for the writer to commit what was queued and stop. Call it
    /// after cancelling the shutdown token: until then it waits. Clones of the
    /// [`SegmentWriter`] handed out by [`writer`](BuckHandle::writer) must be dropped too.
    pub async fn join(self) -> Result<(), BuckError> {
        let BuckHandle {
            writer,
            writer_thread,
            tracker,
            ..
        } = self;
        tracker.close();
        tracker.wait().await;
        drop(writer);
        tokio::task::spawn_blocking(move || writer_thread.join())
            .await
            .map_err(|_| BuckError::WriterPanicked)?
    }
}
