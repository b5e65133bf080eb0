//! Running one agent from its config file: what `sluice tail`, `sluice buck` and the
//! `tailer` and `buck` binaries do.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tailer::{TailerConfig, TailerEvents};
use tokio_util::sync::CancellationToken;

use crate::runtime;
use crate::serve::{self, HealthSource, MetricsSource};
use crate::space_wait::start_when_space;

/// How to run a tailer besides its config: the flags `sluice tail` and the `tailer`
/// binary share.
#[derive(clap::Args, Debug)]
pub struct TailOptions {
    /// Print parsed events as JSON lines instead of shipping them (no buck needed).
    #[arg(long)]
    pub print: bool,
    /// With --print, keep following the files.
    #[arg(long, requires = "print")]
    pub follow: bool,
    /// Serve /metrics and /healthz on this address (e.g. 127.0.0.1:9464). Default: none.
    #[arg(long)]
    pub metrics: Option<String>,
    /// With --metrics, write the bound address as JSON here once listening.
    #[arg(long, requires = "metrics")]
    pub ready_file: Option<PathBuf>,
}

/// Where a buck listens: the flags `sluice buck` and the `buck` binary share.
#[derive(clap::Args, Debug)]
pub struct BuckOptions {
    /// Ingest address for tailers.
    #[arg(long, default_value = "127.0.0.1:7400")]
    pub ingest: String,
    /// HTTP address for the APIs.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: String,
    /// Write the bound addresses as JSON here once listening (for scripts and tests).
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
}

/// Runs a tailer from `config`, or prints its events as JSON lines with `--print`. With
/// `--metrics`, it also serves `/metrics` and `/healthz` there, and writes
/// `{"metrics": ADDR}` to `--ready-file` once bound.
pub fn tail(config: &Path, options: &TailOptions) -> anyhow::Result<()> {
    let TailOptions {
        print,
        follow,
        metrics,
        ready_file,
    } = options;
    let cfg = TailerConfig::load(config)?;
    if *print {
        let mut out = std::io::stdout().lock();
        let n = tailer::print::print_events(&cfg, *follow, &mut out)?;
        eprintln!("sluice tail --print: {n} events");
        return Ok(());
    }
    runtime()?.block_on(async {
        let shutdown = CancellationToken::new();
        serve::cancel_on_signal(shutdown.clone());
        let events = Arc::new(TailerEvents::default());
        let listener = match metrics.as_deref() {
            Some(addr) => {
                let (rendered, degraded) = (events.clone(), events.clone());
                let (bound, task) = serve::spawn_metrics_listener(
                    addr,
                    vec![Arc::new(move |out: &mut String| {
                        rendered.render_prometheus(out)
                    })],
                    vec![Arc::new(move || {
                        degraded.disk.reason().map(|r| format!("tailer: {r}"))
                    })],
                    shutdown.clone(),
                )
                .await?;
                if let Some(p) = ready_file {
                    write_ready_file(p, &serde_json::json!({ "metrics": bound }))?;
                }
                Some(task)
            }
            None => None,
        };
        // A tailer's run fails only at its start on a storage fault (later ones pause it).
        let dir = cfg.state_dir.clone();
        let ran = start_when_space("tailer", &dir, &shutdown, || {
            let run = tailer::run(cfg.clone(), shutdown.clone(), events.clone());
            async move { Ok(run.await?) }
        })
        .await
        .context("tailer");
        shutdown.cancel();
        if let Some(task) = listener {
            task.await.context("the metrics listener")??;
        }
        ran.map(|_| ())
    })
}

/// Runs a buck from `config`, taking tailers on `ingest` and serving its APIs on `http`.
/// Once both are bound, writes `{"ingest": ADDR, "http": ADDR}` to `ready_file` if given
/// (how scripts and tests learn ports chosen with port 0).
pub fn buck(config: &Path, options: &BuckOptions) -> anyhow::Result<()> {
    let BuckOptions {
        ingest,
        http,
        ready_file,
    } = options;
    let cfg = buck::BuckConfig::load(config)?;
    let base_path = cfg.base_path.clone();
    let http_limits = cfg.http.clone();
    runtime()?.block_on(async {
        let shutdown = CancellationToken::new();
        serve::cancel_on_signal(shutdown.clone());
        // Closed by default: off loopback, reading data takes a credential. Checked before
        // binding, so a misconfigured buck never opens the port.
        let off_loopback = |addr: std::net::SocketAddr| !addr.ip().is_loopback();
        let no_token = |addr: std::net::SocketAddr| {
            anyhow::anyhow!(
                "{}: the buck's HTTP address {addr} is not on loopback, so its SQL API and live stream need a token: set api_token in the config (make one with `sluice keygen --token`), or listen on 127.0.0.1",
                config.display()
            )
        };
        if let Ok(addr) = http.parse::<std::net::SocketAddr>()
            && off_loopback(addr)
            && cfg.api_token.is_none()
        {
            return Err(no_token(addr));
        }
        // The ports are bound again at each try: the buck's start takes its listener.
        let data_dir = cfg.data_dir.clone();
        let started = start_when_space("buck", &data_dir, &shutdown, || async {
            let ingest_l = tokio::net::TcpListener::bind(ingest)
                .await
                .with_context(|| format!("binding the ingest address {ingest}"))?;
            let http_l = tokio::net::TcpListener::bind(http)
                .await
                .with_context(|| format!("binding the http address {http}"))?;
            let (ingest_addr, http_addr) = (ingest_l.local_addr()?, http_l.local_addr()?);
            if off_loopback(http_addr) && cfg.api_token.is_none() {
                return Err(no_token(http_addr));
            }
            let handle = buck::start(cfg.clone(), ingest_l, shutdown.clone())
                .await
                .context("starting the buck")?;
            Ok((handle, http_l, ingest_addr, http_addr))
        })
        .await?;
        let Some((handle, http_l, ingest_addr, http_addr)) = started else {
            return Ok(());
        };
        tracing::info!(ingest = %ingest_addr, http = %http_addr, "buck listening");
        if let Some(p) = ready_file {
            write_ready_file(
                p,
                &serde_json::json!({"ingest": ingest_addr, "http": http_addr}),
            )?;
        }
        let events = handle.events();
        let live_events = handle.live().events();
        let health: Vec<HealthSource> = {
            let events = events.clone();
            vec![Arc::new(move || {
                events.disk.reason().map(|r| format!("buck: {r}"))
            })]
        };
        let guard = handle.browser_guard();
        let http_events = Arc::new(edge::EdgeEvents::default());
        let http_counted = http_events.clone();
        let metrics: Vec<MetricsSource> = vec![
            Arc::new(move |out: &mut String| http_counted.render_prometheus(out)),
            Arc::new(move |out: &mut String| events.render_prometheus(out)),
            Arc::new(move |out: &mut String| live_events.render_prometheus(out)),
            Arc::new(move |out: &mut String| guard.render_prometheus("sluice_http", out)),
        ];
        let router = serve::buck_site(&handle, axum::Router::new(), metrics, health, &base_path);
        let served = serve::serve(http_l, router, &http_limits, http_events, shutdown.clone()).await;
        shutdown.cancel();
        handle.join().await.context("buck")?;
        served
    })
}

/// Writes a ready file atomically (tmp, then rename) so a reader never sees half of it.
pub fn write_ready_file(path: &Path, value: &serde_json::Value) -> anyhow::Result<()> {
    durable_file::replace(
        path,
        value.to_string().as_bytes(),
        durable_file::Durability::Unsynced,
    )
    .with_context(|| format!("writing {}", path.display()))
}
