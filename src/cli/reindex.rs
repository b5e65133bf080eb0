//! `sluice reindex` and `archie build`: build a history index for a crawl and range on
//! this machine, in an archie work dir, and exit once it is ready. An archie (or `sluice
//! up`) started over the same work dir then serves it like any other history request
//! (`/history/<id>/search`, until it expires): more history machines during an incident,
//! without waiting for a request to build on each.
//!
//! It runs archie's own service, so the index is archie's format and the catalog entry
//! is the one a request would have made. The work dir is locked while it runs: an archie
//! already serving that dir is refused (ask it with `POST /history` instead).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use archie::{RequestRecord, RequestState};
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

/// How often the progress is looked at.
const POLL: Duration = Duration::from_millis(100);

/// Builds the index of `crawl` (a crawl id or a `*` pattern) over `[from, to)` in
/// `config.work_dir`, fetching through `porter_config` (the archive first, then the bucks
/// of its cluster file). Draws a progress bar on stderr when it is a terminal. Returns
/// the request once ready (or the live request that already covered the range).
pub async fn build(
    config: archie::ArchieConfig,
    porter_config: porter::PorterConfig,
    crawl: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> anyhow::Result<(RequestRecord, bool)> {
    let work_dir = config.work_dir.clone();
    let shutdown = CancellationToken::new();
    let handle = archie::start(
        config,
        Arc::new(archie::PorterSource::new(porter_config)),
        shutdown.clone(),
    )
    .await
    .with_context(|| format!("opening the archie work dir {}", work_dir.display()))?;
    let service = handle.service();
    let (record, reused) = match service.submit(crawl, from, to) {
        Ok(r) => r,
        Err(e) => {
            shutdown.cancel();
            handle.join().await;
            return Err(e.into());
        }
    };
    let result = async {
        let bar = progress_bar();
        let outcome = loop {
            let r = service.status(&record.id)?;
            if let Some(b) = &bar {
                show(b, &r);
            }
            match &r.state {
                RequestState::Ready => break Ok(r),
                RequestState::Failed { reason } => {
                    break Err(anyhow::anyhow!(
                        "building the index of {crawl} from {from} to {to} failed: {reason}"
                    ));
                }
                RequestState::Expired { reason } => {
                    break Err(anyhow::anyhow!(
                        "the index of {crawl} from {from} to {to} expired while building: {reason}"
                    ));
                }
                _ => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = tokio::signal::ctrl_c() => {
                    break Err(anyhow::anyhow!("interrupted: the partial index is removed"));
                }
            }
        };
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        outcome
    }
    .await;
    // A failed or interrupted build leaves nothing behind; an index that was already
    // there is not ours to delete.
    if result.is_err() && !reused {
        let _ = service.delete(&record.id);
    }
    shutdown.cancel();
    handle.join().await;
    Ok((result?, reused))
}

fn progress_bar() -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(1000);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("reindexing [{bar:30}] {msg} {elapsed}")
    {
        bar.set_style(style);
    }
    Some(bar)
}

fn show(bar: &indicatif::ProgressBar, r: &RequestRecord) {
    match &r.state {
        RequestState::Queued => bar.set_message("queued"),
        RequestState::Fetching { done, total, bytes } => {
            if *total > 0 {
                bar.set_position((*done as u64 * 500) / *total as u64);
            }
            bar.set_message(format!(
                "fetching {done}/{total} segments, {} MiB",
                bytes >> 20
            ));
        }
        RequestState::Indexing {
            percent,
            events_total,
        } => {
            bar.set_position(500 + (*percent * 5.0) as u64);
            bar.set_message(format!("indexing {percent:.1}% of {events_total} events"));
        }
        _ => bar.set_position(1000),
    }
}

/// The one-line summary printed when the index is ready.
pub fn summary(r: &RequestRecord, reused: bool) -> String {
    format!(
        "index {} ({}) {}: {} events, {} bytes, expires {}{}",
        r.id,
        r.name,
        if reused {
            "was already there"
        } else {
            "is ready"
        },
        r.events_indexed,
        r.index_bytes,
        r.expires_at
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "never".into()),
        r.message
            .as_deref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default()
    )
}
