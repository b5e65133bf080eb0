//! `BuckEvents`: every counter the buck keeps, and the only place they change. Each
//! observable event is one method; `render_prometheus` writes them as `sluice_buck_*`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Why a connection was closed or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionRejection {
    /// The tailer's key is not on the allow-list, or a message failed authentication.
    Auth,
    /// A message's counter was not the next one: replayed or reordered.
    Replay,
    /// Bytes that are not a hello or a message (including an oversized frame).
    Garbage,
    /// No protocol version in common.
    Version,
    /// The tailer asked for plain messages while this buck requires encryption.
    Encryption,
    /// No hello within `hello_timeout_ms`.
    HelloTimeout,
    /// The tailer's key was removed from the allow-list while it was connected.
    Revoked,
    /// Too many connections: from one address (`max_connections_per_address`), or
    /// tailers past their hello (`max_connections`).
    TooMany,
    /// Nothing received for `idle_timeout_ms`.
    Idle,
}

impl ConnectionRejection {
    /// Every reason, in rendering order.
    pub const ALL: [ConnectionRejection; 9] = [
        ConnectionRejection::Auth,
        ConnectionRejection::Replay,
        ConnectionRejection::Garbage,
        ConnectionRejection::Version,
        ConnectionRejection::Encryption,
        ConnectionRejection::HelloTimeout,
        ConnectionRejection::Revoked,
        ConnectionRejection::TooMany,
        ConnectionRejection::Idle,
    ];

    /// The label value in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            ConnectionRejection::Auth => "auth",
            ConnectionRejection::Replay => "replay",
            ConnectionRejection::Garbage => "garbage",
            ConnectionRejection::Version => "version",
            ConnectionRejection::Encryption => "encryption",
            ConnectionRejection::HelloTimeout => "hello_timeout",
            ConnectionRejection::Revoked => "revoked",
            ConnectionRejection::TooMany => "too_many",
            ConnectionRejection::Idle => "idle",
        }
    }
}

/// The buck's counters. Cheap to update from any thread (relaxed atomics).
#[derive(Debug, Default)]
pub struct BuckEvents {
    /// Full, read-only or low-space episodes of the segments' disk: logged once each,
    /// rendered as `disk_full_episodes_total` and `disk_full`, named in health.
    pub disk: disk_space::DiskEpisodes,
    connections_accepted: AtomicU64,
    segments_vanished: AtomicU64,
    porter_refused: AtomicU64,
    api_refused: AtomicU64,
    sql_busy: AtomicU64,
    foreign_ids: AtomicU64,
    sql_send_timeouts: AtomicU64,
    segment_downloads_busy: AtomicU64,
    segments_quarantined: AtomicU64,
    connections_open: AtomicU64,
    rejections: [AtomicU64; 9],
    messages_in: AtomicU64,
    events_in: AtomicU64,
    frames_rejected: AtomicU64,
    nacks: AtomicU64,
    inserted: AtomicU64,
    duplicates: AtomicU64,
    bytes_written: AtomicU64,
    published: AtomicU64,
    published_late: AtomicU64,
    subscriber_missed: AtomicU64,
    commits: AtomicU64,
    commit_micros: AtomicU64,
    commit_failures: AtomicU64,
    segments_open: AtomicU64,
    segments_closed: AtomicU64,
    segments_pruned: AtomicU64,
    sql_queries: AtomicU64,
    sql_errors: AtomicU64,
    sql_timeouts: AtomicU64,
    sql_truncated: AtomicU64,
}

/// A snapshot of the counters, for tests and status pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[allow(missing_docs)]
pub struct BuckCounters {
    pub connections_accepted: u64,
    pub connections_open: u64,
    pub rejected_auth: u64,
    pub rejected_replay: u64,
    pub rejected_garbage: u64,
    pub rejected_version: u64,
    pub rejected_encryption: u64,
    pub rejected_hello_timeout: u64,
    pub messages_in: u64,
    pub events_in: u64,
    pub frames_rejected: u64,
    pub nacks: u64,
    pub inserted: u64,
    pub duplicates: u64,
    pub bytes_written: u64,
    pub published: u64,
    pub published_late: u64,
    pub subscriber_missed: u64,
    pub commits: u64,
    pub commit_failures: u64,
    pub segments_open: u64,
    pub segments_closed: u64,
    /// Segments deleted after retention (archived and unchanged).
    pub segments_pruned: u64,
    pub sql_queries: u64,
    pub sql_errors: u64,
    pub sql_timeouts: u64,
    pub sql_truncated: u64,
}

impl BuckEvents {
    pub(crate) fn connection_accepted(&self) {
        self.connections_accepted.fetch_add(1, Relaxed);
        self.connections_open.fetch_add(1, Relaxed);
    }
    pub(crate) fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Relaxed);
    }
    pub(crate) fn connection_rejected(&self, why: ConnectionRejection) {
        let i = ConnectionRejection::ALL
            .iter()
            .position(|r| *r == why)
            .unwrap_or(0);
        self.rejections[i].fetch_add(1, Relaxed);
    }
    pub(crate) fn message_received(&self, events: usize, rejected_frames: usize) {
        self.messages_in.fetch_add(1, Relaxed);
        self.events_in.fetch_add(events as u64, Relaxed);
        self.frames_rejected
            .fetch_add(rejected_frames as u64, Relaxed);
    }
    pub(crate) fn nacked(&self) {
        self.nacks.fetch_add(1, Relaxed);
    }
    /// Frames refused because their event id names another tailer than the connection's.
    pub(crate) fn foreign_ids(&self, n: usize) {
        self.foreign_ids.fetch_add(n as u64, Relaxed);
    }

    /// A query was refused: `sql_max_concurrent` were running.
    pub(crate) fn sql_busy(&self) {
        self.sql_busy.fetch_add(1, Relaxed);
    }

    /// A client read a reply too slowly and was cut off (`sql_send_timeout_ms`).
    pub(crate) fn sql_send_timeout(&self) {
        self.sql_send_timeouts.fetch_add(1, Relaxed);
    }

    /// A SQL API request came without the `api_token`, or with a wrong one.
    pub(crate) fn api_refused(&self) {
        self.api_refused.fetch_add(1, Relaxed);
    }

    /// A segment API request came without the porter's credential.
    pub(crate) fn porter_refused(&self) {
        self.porter_refused.fetch_add(1, Relaxed);
    }

    /// A segment copy was refused: `segment_downloads_max` copies were in progress.
    pub(crate) fn segment_download_busy(&self) {
        self.segment_downloads_busy.fetch_add(1, Relaxed);
    }

    /// A segment file was deleted or replaced under the running buck.
    pub(crate) fn segment_vanished(&self) {
        self.segments_vanished.fetch_add(1, Relaxed);
    }

    /// A corrupt segment file was moved to the quarantine directory.
    pub(crate) fn segment_quarantined(&self) {
        self.segments_quarantined.fetch_add(1, Relaxed);
    }

    pub(crate) fn committed(&self, inserted: usize, duplicates: usize, bytes: u64, took: Duration) {
        self.inserted.fetch_add(inserted as u64, Relaxed);
        self.duplicates.fetch_add(duplicates as u64, Relaxed);
        self.bytes_written.fetch_add(bytes, Relaxed);
        self.commits.fetch_add(1, Relaxed);
        self.commit_micros
            .fetch_add(took.as_micros() as u64, Relaxed);
    }
    pub(crate) fn commit_failed(&self) {
        self.commit_failures.fetch_add(1, Relaxed);
    }
    pub(crate) fn published(&self, n: usize, late: bool) {
        self.published.fetch_add(n as u64, Relaxed);
        if late {
            self.published_late.fetch_add(n as u64, Relaxed);
        }
    }
    pub(crate) fn subscriber_missed(&self, n: u64) {
        self.subscriber_missed.fetch_add(n, Relaxed);
    }
    pub(crate) fn segments_open_now(&self, n: usize) {
        self.segments_open.store(n as u64, Relaxed);
    }
    pub(crate) fn segment_closed(&self) {
        self.segments_closed.fetch_add(1, Relaxed);
    }
    pub(crate) fn segment_pruned(&self) {
        self.segments_pruned.fetch_add(1, Relaxed);
    }
    pub(crate) fn sql_query(&self) {
        self.sql_queries.fetch_add(1, Relaxed);
    }
    pub(crate) fn sql_error(&self) {
        self.sql_errors.fetch_add(1, Relaxed);
    }
    pub(crate) fn sql_timeout(&self) {
        self.sql_timeouts.fetch_add(1, Relaxed);
    }
    pub(crate) fn sql_truncated(&self) {
        self.sql_truncated.fetch_add(1, Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> BuckCounters {
        let r = |w: ConnectionRejection| {
            let i = ConnectionRejection::ALL
                .iter()
                .position(|r| *r == w)
                .unwrap_or(0);
            self.rejections[i].load(Relaxed)
        };
        BuckCounters {
            connections_accepted: self.connections_accepted.load(Relaxed),
            connections_open: self.connections_open.load(Relaxed),
            rejected_auth: r(ConnectionRejection::Auth),
            rejected_replay: r(ConnectionRejection::Replay),
            rejected_garbage: r(ConnectionRejection::Garbage),
            rejected_version: r(ConnectionRejection::Version),
            rejected_encryption: r(ConnectionRejection::Encryption),
            rejected_hello_timeout: r(ConnectionRejection::HelloTimeout),
            messages_in: self.messages_in.load(Relaxed),
            events_in: self.events_in.load(Relaxed),
            frames_rejected: self.frames_rejected.load(Relaxed),
            nacks: self.nacks.load(Relaxed),
            inserted: self.inserted.load(Relaxed),
            duplicates: self.duplicates.load(Relaxed),
            bytes_written: self.bytes_written.load(Relaxed),
            published: self.published.load(Relaxed),
            published_late: self.published_late.load(Relaxed),
            subscriber_missed: self.subscriber_missed.load(Relaxed),
            commits: self.commits.load(Relaxed),
            commit_failures: self.commit_failures.load(Relaxed),
            segments_open: self.segments_open.load(Relaxed),
            segments_closed: self.segments_closed.load(Relaxed),
            segments_pruned: self.segments_pruned.load(Relaxed),
            sql_queries: self.sql_queries.load(Relaxed),
            sql_errors: self.sql_errors.load(Relaxed),
            sql_timeouts: self.sql_timeouts.load(Relaxed),
            sql_truncated: self.sql_truncated.load(Relaxed),
        }
    }

    /// Appends the counters in the Prometheus text format, names `sluice_buck_*`.
    pub fn render_prometheus(&self, out: &mut String) {
        let c = self.snapshot();
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP sluice_buck_{name} {help}\n# TYPE sluice_buck_{name} {kind}\nsluice_buck_{name} {value}"
            );
        };
        metric(
            "connections_total",
            "counter",
            "tailer connections accepted",
            c.connections_accepted,
        );
        metric(
            "connections_open",
            "gauge",
            "tailer connections open now",
            c.connections_open,
        );
        metric(
            "messages_total",
            "counter",
            "messages received from tailers",
            c.messages_in,
        );
        metric(
            "events_in_total",
            "counter",
            "events received (valid frames)",
            c.events_in,
        );
        metric(
            "frames_rejected_total",
            "counter",
            "frames rejected for good (undecodable, invalid crawl id)",
            c.frames_rejected,
        );
        metric(
            "nacks_total",
            "counter",
            "messages refused with a retry-after (storage failure)",
            c.nacks,
        );
        metric(
            "inserted_total",
            "counter",
            "events newly inserted into segments",
            c.inserted,
        );
        metric(
            "duplicates_total",
            "counter",
            "events already stored (ignored)",
            c.duplicates,
        );
        metric(
            "bytes_written_total",
            "counter",
            "bytes of event lines inserted",
            c.bytes_written,
        );
        metric(
            "published_total",
            "counter",
            "events published on the live bus",
            c.published,
        );
        metric(
            "published_late_total",
            "counter",
            "events published marked late (repair path)",
            c.published_late,
        );
        metric(
            "missed_total",
            "counter",
            "events missed by lagging bus subscribers",
            c.subscriber_missed,
        );
        metric(
            "commits_total",
            "counter",
            "segment transactions committed",
            c.commits,
        );
        metric(
            "commit_failures_total",
            "counter",
            "batches that failed to commit",
            c.commit_failures,
        );
        metric(
            "segments_open",
            "gauge",
            "segments not yet closed",
            c.segments_open,
        );
        metric(
            "segments_closed_total",
            "counter",
            "segments closed by this process",
            c.segments_closed,
        );
        metric(
            "segments_pruned_total",
            "counter",
            "segments deleted after retention (archived, verified unchanged)",
            c.segments_pruned,
        );
        metric(
            "sql_queries_total",
            "counter",
            "SQL queries received",
            c.sql_queries,
        );
        metric(
            "sql_errors_total",
            "counter",
            "SQL queries answered with an error",
            c.sql_errors,
        );
        metric(
            "sql_timeouts_total",
            "counter",
            "SQL queries stopped by sql_timeout_ms",
            c.sql_timeouts,
        );
        metric(
            "sql_truncated_total",
            "counter",
            "SQL replies cut by sql_max_rows or sql_max_bytes",
            c.sql_truncated,
        );
        metric(
            "foreign_tailer_frames_total",
            "counter",
            "frames refused for good because their event id names another tailer than the connection's hello",
            self.foreign_ids.load(Relaxed),
        );
        metric(
            "sql_busy_total",
            "counter",
            "queries refused because sql_max_concurrent were running (503)",
            self.sql_busy.load(Relaxed),
        );
        metric(
            "sql_send_timeouts_total",
            "counter",
            "replies cut off because the client read slower than sql_send_timeout_ms",
            self.sql_send_timeouts.load(Relaxed),
        );
        metric(
            "api_refused_total",
            "counter",
            "SQL API requests refused for a missing or wrong api_token (401)",
            self.api_refused.load(Relaxed),
        );
        metric(
            "porter_refused_total",
            "counter",
            "segment API requests refused for a missing or wrong porter token (401)",
            self.porter_refused.load(Relaxed),
        );
        metric(
            "segment_downloads_busy_total",
            "counter",
            "segment copies refused because segment_downloads_max were in progress (503)",
            self.segment_downloads_busy.load(Relaxed),
        );
        metric(
            "segments_vanished_total",
            "counter",
            "segment files found deleted or replaced under the running buck (a new file was started)",
            self.segments_vanished.load(Relaxed),
        );
        metric(
            "segments_quarantined_total",
            "counter",
            "corrupt segment files moved to <data_dir>/quarantine (a new file was started)",
            self.segments_quarantined.load(Relaxed),
        );
        metric(
            "disk_full_episodes_total",
            "counter",
            "times committing paused because the segments' disk was full, read-only or below its headroom",
            self.disk.count(),
        );
        metric(
            "disk_full",
            "gauge",
            "1 while committing is paused for a full, read-only or low disk",
            self.disk.active(),
        );
        let _ = writeln!(
            out,
            "# HELP sluice_buck_commit_seconds time spent committing batches\n# TYPE sluice_buck_commit_seconds summary\nsluice_buck_commit_seconds_sum {}\nsluice_buck_commit_seconds_count {}",
            self.commit_micros.load(Relaxed) as f64 / 1e6,
            c.commits
        );
        let _ = writeln!(
            out,
            "# HELP sluice_buck_rejections_total connections closed or refused, by reason\n# TYPE sluice_buck_rejections_total counter"
        );
        for r in ConnectionRejection::ALL {
            let i = ConnectionRejection::ALL
                .iter()
                .position(|x| *x == r)
                .unwrap_or(0);
            let _ = writeln!(
                out,
                "sluice_buck_rejections_total{{reason=\"{}\"}} {}",
                r.name(),
                self.rejections[i].load(Relaxed)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_counter_once() {
        let e = BuckEvents::default();
        e.connection_rejected(ConnectionRejection::Replay);
        e.committed(3, 2, 100, Duration::from_millis(1));
        let mut out = String::new();
        e.render_prometheus(&mut out);
        assert!(
            out.contains("sluice_buck_rejections_total{reason=\"replay\"} 1"),
            "{out}"
        );
        assert!(out.contains("sluice_buck_inserted_total 3"));
        assert!(out.contains("sluice_buck_duplicates_total 2"));
        assert_eq!(out.matches("# TYPE sluice_buck_inserted_total").count(), 1);
    }
}
