//! Serving an agent's router on one listener, with `/healthz` and `/metrics` added once.

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

/// Something that renders Prometheus text: each agent's counters.
pub type MetricsSource = Arc<dyn Fn(&mut String) + Send + Sync>;

/// Something that says why an agent is degraded (a full disk, ...), or `None` when it
/// is not.
pub type HealthSource = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// Adds `/healthz` and `/metrics` (rendered from every source) to `router`. `/healthz`
/// answers 200 while the process serves: `ok`, or `degraded: <reason>; ...` while some
/// agent works with a handicap (it still answers what needs no space, so a load balancer
/// should keep it, and monitoring should alert on the word).
pub fn with_health_and_metrics(
    router: Router,
    sources: Vec<MetricsSource>,
    health: Vec<HealthSource>,
) -> Router {
    let sources = Arc::new(sources);
    let health = Arc::new(health);
    router
        .route(
            "/healthz",
            get(move || {
                let health = health.clone();
                async move {
                    let reasons: Vec<String> = health.iter().filter_map(|h| h()).collect();
                    if reasons.is_empty() {
                        "ok\n".to_owned()
                    } else {
                        format!("degraded: {}\n", reasons.join("; "))
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let sources = sources.clone();
                async move {
                    let mut out = String::new();
                    for s in sources.iter() {
                        s(&mut out);
                    }
                    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
                }
            }),
        )
}

/// A buck's whole site: its APIs and live stream, `more` routes (archie's in `sluice up`),
/// the web pages, `/healthz` and `/metrics`, all under `base_path`. The one place a buck's
/// router is put together, for `sluice up` and the `buck` binary alike.
pub fn buck_site(
    buck: &buck::BuckHandle,
    more: Router,
    metrics: Vec<MetricsSource>,
    health: Vec<HealthSource>,
    base_path: &str,
) -> Router {
    under_base_path(
        buck.serve_live(with_health_and_metrics(
            buck.router().merge(more).merge(web::router()),
            metrics,
            health,
        )),
        base_path,
    )
}

/// Serves `router` under the path prefix `base` (checked by `buck::check_base_path`; empty
/// for none): `/base/x` reaches the route `/x`, anything outside `/base` is a 404. For a
/// reverse proxy that forwards its prefix. Apply it last, around the live layer, so the
/// socket.io path moves with the rest.
pub fn under_base_path(router: Router, base: &str) -> Router {
    if base.is_empty() {
        router
    } else {
        Router::new().nest_service(base, router)
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled, with the connection
/// bounds of `limits` (request-head and idle timeouts, total and per-address caps),
/// counted in `events`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: &edge::EdgeConfig,
    events: Arc<edge::EdgeEvents>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    edge::listener::serve(listener, router, limits, events, shutdown)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Cancels `token` on SIGINT or SIGTERM.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = match tokio::signal::unix::signal(
                tokio::signal::unix::SignalKind::terminate(),
            ) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the process cleanly");
                    let _ = ctrl_c.await;
                    token.cancel();
                    return;
                }
            };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down");
        token.cancel();
    });
}

/// A listener with only `/healthz` and `/metrics`, for the agents that serve nothing else
/// (the `tailer` and `porter` binaries, `--metrics ADDR`). Bound before this returns, so
/// the address is known; it serves until `shutdown`.
pub async fn spawn_metrics_listener(
    addr: &str,
    sources: Vec<MetricsSource>,
    health: Vec<HealthSource>,
    shutdown: CancellationToken,
) -> anyhow::Result<(
    std::net::SocketAddr,
    tokio::task::JoinHandle<anyhow::Result<()>>,
)> {
    use anyhow::Context;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics address {addr}"))?;
    let bound = listener.local_addr()?;
    let http_events = Arc::new(edge::EdgeEvents::default());
    let counted = http_events.clone();
    let mut sources = sources;
    sources.push(Arc::new(move |out: &mut String| {
        counted.render_prometheus(out)
    }));
    let router = with_health_and_metrics(Router::new(), sources, health);
    let task = tokio::spawn(async move {
        serve(
            listener,
            router,
            &edge::EdgeConfig::default(),
            http_events,
            shutdown,
        )
        .await
    });
    tracing::info!(addr = %bound, "serving /metrics and /healthz");
    Ok((bound, task))
}
