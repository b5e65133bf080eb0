//! `porter`: archives closed segments from the bucks to S3, HDFS or a directory, and
//! fetches them back.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

/// Archives closed (crawl, day) segments and fetches archived ones back.
#[derive(Parser)]
#[command(name = "porter", version)]
struct Args {
    /// The porter's TOML config (see docs/porter.md).
    #[arg(long, short)]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Archive on schedule until stopped (the default).
    Run {
        /// Serve /metrics and /healthz on this address (e.g. 127.0.0.1:9465). Default: none.
        #[arg(long)]
        metrics: Option<String>,
        /// With --metrics, write the bound address as JSON here once listening.
        #[arg(long, requires = "metrics")]
        ready_file: Option<PathBuf>,
    },
    /// One archive run: every candidate segment, oldest first, then exit.
    Archive {
        /// Required: one run, then exit (the daemon is `porter run`).
        #[arg(long)]
        once: bool,
    },
    /// Download, verify and unpack a crawl's segments covering [FROM, TO) into DIR.
    Fetch {
        /// The crawl.
        crawl: String,
        /// Start, RFC 3339 (e.g. 2026-11-01T00:00:00Z).
        from: String,
        /// End (exclusive), RFC 3339.
        to: String,
        /// Directory to unpack into.
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    sluice_cli::logging::init();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("porter: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn time(s: &str, what: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .with_context(|| {
            format!("{what} {s:?} is not an RFC 3339 time (e.g. 2026-11-01T00:00:00Z)")
        })
}

fn run(args: Args) -> anyhow::Result<()> {
    let config = porter::PorterConfig::load(&args.config)?;
    let rt = sluice_cli::runtime()?;
    let events = Arc::new(porter::PorterEvents::default());
    match args.command.unwrap_or(Cmd::Run {
        metrics: None,
        ready_file: None,
    }) {
        Cmd::Run {
            metrics,
            ready_file,
        } => rt.block_on(async {
            let shutdown = CancellationToken::new();
            sluice_cli::serve::cancel_on_signal(shutdown.clone());
            let listener = match metrics {
                Some(addr) => {
                    let (rendered, degraded) = (events.clone(), events.clone());
                    let (bound, task) = sluice_cli::serve::spawn_metrics_listener(
                        &addr,
                        vec![Arc::new(move |out: &mut String| {
                            rendered.render_prometheus(out)
                        })],
                        vec![Arc::new(move || {
                            degraded.disk.reason().map(|r| format!("porter: {r}"))
                        })],
                        shutdown.clone(),
                    )
                    .await?;
                    if let Some(p) = &ready_file {
                        sluice_cli::agents::write_ready_file(
                            p,
                            &serde_json::json!({ "metrics": bound }),
                        )?;
                    }
                    Some(task)
                }
                None => None,
            };
            let ran = porter::run(config, shutdown.clone(), events)
                .await
                .context("porter");
            shutdown.cancel();
            if let Some(task) = listener {
                task.await.context("the metrics listener")??;
            }
            ran
        }),
        Cmd::Archive { once } => {
            if !once {
                bail!("`porter archive` needs --once (the daemon is `porter run`)");
            }
            let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let report = rt.block_on(porter::archive_once(&config, tty, events))?;
            eprintln!(
                "porter: {} candidates, {} archived, {} already archived, {} events, {} -> {} bytes in {:.1} s",
                report.candidates,
                report.archived,
                report.already_archived,
                report.events,
                report.segment_bytes,
                report.object_bytes,
                report.elapsed.as_secs_f64()
            );
            for (seg, err) in &report.failed {
                eprintln!("porter: failed {seg}: {err}");
            }
            if !report.unreachable_bucks.is_empty() {
                eprintln!(
                    "porter: unreachable bucks (their segments wait for the next run): {}",
                    report.unreachable_bucks.join(", ")
                );
            }
            if let Some(why) = &report.deferred {
                eprintln!(
                    "porter: deferred {} segment(s) for disk space (none failed; run again once space returns): {why}",
                    report.segments_deferred
                );
            }
            if !report.failed.is_empty()
                || !report.unreachable_bucks.is_empty()
                || report.deferred.is_some()
            {
                bail!(
                    "{} segment(s) failed, {} buck(s) unreachable, {} segment(s) deferred for disk space",
                    report.failed.len(),
                    report.unreachable_bucks.len(),
                    report.segments_deferred
                );
            }
            Ok(())
        }
        Cmd::Fetch {
            crawl,
            from,
            to,
            dir,
        } => {
            let crawl = contracts::CrawlId::parse(&crawl)?;
            let (from, to) = (time(&from, "FROM")?, time(&to, "TO")?);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let progress = |p: &porter::FetchProgress| {
                eprintln!(
                    "porter: fetched {} of {} segments ({} bytes)",
                    p.done, p.total, p.bytes
                );
            };
            let report = rt.block_on(porter::fetch(&config, &crawl, from, to, &dir, &progress))?;
            for s in &report.segments {
                println!("{}", s.path.display());
            }
            eprintln!(
                "porter: {} segments, {} bytes transferred",
                report.segments.len(),
                report.bytes_transferred
            );
            if !report.unreachable_bucks.is_empty() {
                bail!(
                    "bucks unreachable, days they hold may be missing: {}",
                    report.unreachable_bucks.join(", ")
                );
            }
            Ok(())
        }
    }
}
