//! `archie`: history on request. Serves the history API and page; fetches segments
//! through a porter config (the archive first, the bucks for days not yet archived).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice_cli::serve::{self, HealthSource, MetricsSource};
use tokio_util::sync::CancellationToken;

/// Temporary search indexes over archived crawl logs.
#[derive(Parser)]
#[command(name = "archie", version)]
struct Args {
    /// Archie's TOML config (see docs/archie.md).
    #[arg(long, short)]
    config: PathBuf,
    /// The porter config to fetch segments with (its archive URL and cluster file).
    #[arg(long)]
    porter_config: PathBuf,
    /// HTTP address for the API and the history page.
    #[arg(long, default_value = "127.0.0.1:8090")]
    http: String,
    /// Without a command, archie serves; `build` makes one index and exits.
    #[command(subcommand)]
    command: Option<ArchieCommand>,
}

#[derive(Subcommand)]
enum ArchieCommand {
    /// Build the history index of a crawl's range in the config's work_dir and exit once
    /// it is ready (progress bar on stderr when a terminal). Archie started later over
    /// the same work_dir serves it until it expires; the work_dir must not be in use by
    /// a running archie. The same as `sluice reindex`; see docs/incident.md.
    Build {
        /// Range start, RFC 3339, inclusive.
        #[arg(long)]
        from: String,
        /// Range end, RFC 3339, exclusive.
        #[arg(long)]
        to: String,
        /// The crawl, or a pattern with `*`.
        crawl: String,
    },
}

fn main() -> ExitCode {
    sluice_cli::logging::init();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("archie: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn time(flag: &str, v: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| {
            anyhow::anyhow!("{flag} {v:?} is not an RFC 3339 time ({e}); e.g. 2026-11-21T00:00:00Z")
        })
}

fn run(args: Args) -> anyhow::Result<()> {
    let config = archie::ArchieConfig::load(&args.config)?;
    if let Some(ArchieCommand::Build { from, to, crawl }) = &args.command {
        let porter_config = porter::PorterConfig::load(&args.porter_config)?;
        let (from, to) = (time("--from", from)?, time("--to", to)?);
        let (record, reused) = sluice_cli::runtime()?.block_on(sluice_cli::reindex::build(
            config,
            porter_config,
            crawl,
            from,
            to,
        ))?;
        eprintln!("{}", sluice_cli::reindex::summary(&record, reused));
        println!("{}", serde_json::to_string(&record)?);
        return Ok(());
    }
    let http_limits = config.http.clone();
    let porter_config = porter::PorterConfig::load(&args.porter_config)?;
    // Pages of the cluster's bucks may use archie from a browser; others may not.
    let cluster_origins: Vec<String> = contracts::ClusterFile::load(&porter_config.cluster_file)
        .map(|c| {
            c.bucks
                .iter()
                .filter_map(|b| edge::browser_guard::origin_of(&b.http_url))
                .collect()
        })
        .unwrap_or_default();
    let guard = edge::browser_guard::BrowserGuard::new(
        Arc::new(move || cluster_origins.clone()),
        Vec::new(),
        Vec::new(),
    );
    let rt = sluice_cli::runtime()?;
    rt.block_on(async {
        let shutdown = CancellationToken::new();
        serve::cancel_on_signal(shutdown.clone());
        // Closed by default: off loopback, every route reads data, so a token is required.
        // Checked before binding (an address) and after (a host name that resolved).
        let no_token = |addr: std::net::SocketAddr| {
            anyhow::anyhow!(
                "{}: archie's HTTP address {addr} is not on loopback, so its history API needs a token: set api_token in the config (the bucks' api_token; make one with `sluice keygen --token`), or listen on 127.0.0.1",
                args.config.display()
            )
        };
        if let Ok(addr) = args.http.parse::<std::net::SocketAddr>()
            && !addr.ip().is_loopback()
            && config.api_token.is_none()
        {
            return Err(no_token(addr));
        }
        let http = tokio::net::TcpListener::bind(&args.http)
            .await
            .with_context(|| format!("binding {}", args.http))?;
        let bound = http.local_addr()?;
        if !bound.ip().is_loopback() && config.api_token.is_none() {
            return Err(no_token(bound));
        }
        tracing::info!(http = %http.local_addr()?, "archie listening");
        let work_dir = config.work_dir.clone();
        let started =
            sluice_cli::space_wait::start_when_space("archie", &work_dir, &shutdown, || {
                let (config, porter_config) = (config.clone(), porter_config.clone());
                let shutdown = shutdown.clone();
                async move {
                    archie::start(
                        config,
                        Arc::new(archie::PorterSource::new(porter_config)),
                        shutdown,
                    )
                    .await
                    .context("starting archie")
                }
            })
            .await?;
        let Some(handle) = started else {
            return Ok(());
        };
        let events = handle.events();
        let health: Vec<HealthSource> = {
            let events = events.clone();
            vec![Arc::new(move || {
                events.disk.reason().map(|r| format!("archie: {r}"))
            })]
        };
        let counted = guard.clone();
        let http_events = Arc::new(edge::EdgeEvents::default());
        let http_counted = http_events.clone();
        let metrics: Vec<MetricsSource> = vec![
            Arc::new(move |out: &mut String| http_counted.render_prometheus(out)),
            Arc::new(move |out: &mut String| out.push_str(&events.render_prometheus())),
            Arc::new(move |out: &mut String| counted.render_prometheus("sluice_http", out)),
        ];
        let router =
            serve::with_health_and_metrics(handle.router().merge(web::router()), metrics, health)
                .layer(axum::middleware::from_fn_with_state(
                    guard,
                    edge::browser_guard::check,
                ));
        let served = serve::serve(http, router, &http_limits, http_events, shutdown.clone()).await;
        shutdown.cancel();
        handle.join().await;
        served
    })
}
