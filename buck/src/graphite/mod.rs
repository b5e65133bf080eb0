//! The Graphite pusher: per-crawl counters in Graphite's plaintext protocol
//! (`path value timestamp\n` over TCP), one batch per `interval_secs`.
//!
//! What is pushed at the end of each interval, every count being what happened in that
//! interval (so Graphite's `sum`/`integral` add them up):
//!
//! - `<prefix>.<buck>.crawls.<crawl>.lines.<class>`: lines stored, `class` one of
//!   `1xx`..`5xx`, `failed` (negative Heritrix codes), `other` (other codes, and lines
//!   that are not crawl.log lines), as `contracts::status_class::StatusClass` (the crawl summaries'
//!   classes); only non-zero classes are sent;
//! - `<prefix>.<buck>.crawls.<crawl>.log_bytes`, `.fetched_bytes` (crawl.log `size`),
//!   `.hosts` (distinct website hosts of crawl.log URLs, see [`distinct_hosts`]);
//! - `<prefix>.<buck>.buck.<counter>`: the buck's ingest counters over the interval
//!   (`events_in`, `inserted`, `duplicates`, `bytes_written`, `frames_rejected`,
//!   `nacks`, `commits`, `subscriber_missed`) and two gauges (`connections_open`,
//!   `subscribers`).
//!
//! A crawl with no line in an interval sends nothing for it. Dots in crawl and buck ids
//! become `_` (a dot is Graphite's path separator).
//!
//! Ingest only ever touches the [`Tally`] (a short lock per committed batch). The pusher
//! is a task of its own: it keeps at most `max_buffered_lines` lines while the listener
//! is down (the oldest dropped and counted), reconnects with a doubling wait up to
//! `reconnect_max_secs`, and gives a write 10 s. A batch whose write failed is sent
//! again whole: Graphite keeps the last value per path and timestamp, so a repeat is
//! harmless.

pub mod config;
pub mod distinct_hosts;
pub mod tally;

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::events::{BuckCounters, BuckEvents};

pub use config::GraphiteConfig;
pub use tally::Tally;

/// Time a connection attempt or one write may take.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A path component from an id: `.` (the separator) and anything unusual become `_`.
fn component(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The lines of one interval.
fn lines(
    cfg: &GraphiteConfig,
    buck_id: &str,
    tally: &Tally,
    now: &BuckCounters,
    before: &BuckCounters,
    subscribers: u64,
    at_secs: i64,
) -> Vec<String> {
    let base = format!("{}.{}", cfg.prefix, component(buck_id));
    let mut out = Vec::new();
    let mut crawls: Vec<_> = tally.take().into_iter().collect();
    crawls.sort_by(|a, b| a.0.cmp(&b.0));
    for (crawl, c) in crawls {
        let p = format!("{base}.crawls.{}", component(&crawl));
        for (class, n) in contracts::status_class::StatusClass::ALL
            .iter()
            .zip(c.lines)
        {
            if n > 0 {
                out.push(format!("{p}.lines.{} {n} {at_secs}", class.name()));
            }
        }
        out.push(format!("{p}.log_bytes {} {at_secs}", c.log_bytes));
        out.push(format!("{p}.fetched_bytes {} {at_secs}", c.fetched_bytes));
        out.push(format!("{p}.hosts {} {at_secs}", c.hosts.count()));
    }
    let d = |a: u64, b: u64| a.saturating_sub(b);
    for (name, v) in [
        ("events_in", d(now.events_in, before.events_in)),
        ("inserted", d(now.inserted, before.inserted)),
        ("duplicates", d(now.duplicates, before.duplicates)),
        ("bytes_written", d(now.bytes_written, before.bytes_written)),
        (
            "frames_rejected",
            d(now.frames_rejected, before.frames_rejected),
        ),
        ("nacks", d(now.nacks, before.nacks)),
        ("commits", d(now.commits, before.commits)),
        (
            "subscriber_missed",
            d(now.subscriber_missed, before.subscriber_missed),
        ),
        ("connections_open", now.connections_open),
        ("subscribers", subscribers),
    ] {
        out.push(format!("{base}.buck.{name} {v} {at_secs}"));
    }
    out
}

/// The connection and the lines waiting for it.
struct Outbox {
    pending: VecDeque<String>,
    conn: Option<TcpStream>,
    /// Next connection attempt not before this.
    retry_at: tokio::time::Instant,
    backoff: Duration,
}

impl Outbox {
    fn push(&mut self, lines: Vec<String>, cfg: &GraphiteConfig, events: &BuckEvents) {
        self.pending.extend(lines);
        let over = self.pending.len().saturating_sub(cfg.max_buffered_lines);
        if over > 0 {
            self.pending.drain(..over);
            events.feeds.graphite_dropped(over as u64);
            tracing::warn!(
                lines = over,
                address = %cfg.address,
                "graphite: listener unreachable and max_buffered_lines reached; dropped the oldest lines"
            );
        }
    }

    async fn flush(&mut self, cfg: &GraphiteConfig, events: &BuckEvents) {
        if self.pending.is_empty() {
            return;
        }
        if self.conn.is_none() {
            if tokio::time::Instant::now() < self.retry_at {
                return;
            }
            match tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(&cfg.address)).await {
                Ok(Ok(s)) => {
                    tracing::info!(address = %cfg.address, "graphite: connected");
                    self.conn = Some(s);
                    self.backoff = Duration::from_secs(1);
                    events.feeds.graphite_connection(true);
                }
                Ok(Err(e)) => return self.failed(cfg, events, &e.to_string()),
                Err(_) => return self.failed(cfg, events, "connection timed out"),
            }
        }
        let mut text = String::new();
        for l in &self.pending {
            let _ = writeln!(text, "{l}");
        }
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        match tokio::time::timeout(IO_TIMEOUT, conn.write_all(text.as_bytes())).await {
            Ok(Ok(())) => {
                events.feeds.graphite_sent(self.pending.len() as u64);
                self.pending.clear();
            }
            Ok(Err(e)) => self.failed(cfg, events, &e.to_string()),
            Err(_) => self.failed(cfg, events, "write timed out"),
        }
    }

    fn failed(&mut self, cfg: &GraphiteConfig, events: &BuckEvents, why: &str) {
        if self.conn.take().is_some() {
            events.feeds.graphite_connection(false);
        }
        events.feeds.graphite_connect_failed();
        tracing::warn!(
            address = %cfg.address,
            retry_in_secs = self.backoff.as_secs(),
            lines_waiting = self.pending.len(),
            "graphite: cannot send: {why}"
        );
        self.retry_at = tokio::time::Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(Duration::from_secs(cfg.reconnect_max_secs));
    }
}

/// Pushes an interval's lines at the end of each interval until `shutdown`, then the
/// last partial interval once (if the listener takes it).
pub(crate) async fn run(
    cfg: GraphiteConfig,
    buck_id: String,
    tally: Arc<Tally>,
    events: Arc<BuckEvents>,
    shutdown: CancellationToken,
) {
    let interval = Duration::from_secs(cfg.interval_secs);
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut before = events.snapshot();
    let mut out = Outbox {
        pending: VecDeque::new(),
        conn: None,
        retry_at: tokio::time::Instant::now(),
        backoff: Duration::from_secs(1),
    };
    // Between ticks, a reconnection attempt when one is due.
    let retry = Duration::from_millis(250);
    loop {
        let last = tokio::select! {
            _ = shutdown.cancelled() => true,
            _ = ticks.tick() => false,
            _ = tokio::time::sleep(retry), if !out.pending.is_empty() => {
                out.flush(&cfg, &events).await;
                continue;
            }
        };
        let now = events.snapshot();
        let at = chrono::Utc::now().timestamp();
        let batch = lines(
            &cfg,
            &buck_id,
            &tally,
            &now,
            &before,
            events.feeds.subscribers(),
            at,
        );
        before = now;
        out.push(batch, &cfg, &events);
        if last {
            // One attempt, without waiting out a backoff: the process is stopping.
            out.retry_at = tokio::time::Instant::now();
            out.flush(&cfg, &events).await;
            if !out.pending.is_empty() {
                events.feeds.graphite_dropped(out.pending.len() as u64);
            }
            return;
        }
        out.flush(&cfg, &events).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_one_component() {
        assert_eq!(component("crawl.2026-12_a"), "crawl_2026-12_a");
        assert_eq!(component("buck 1/x"), "buck_1_x");
    }
}
