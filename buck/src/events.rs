//! `BuckEvents`: every counter the buck keeps, and the only place they change. Each
//! observable event is one method; `render_prometheus` writes them as `sluice_buck_*`.

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
    /// The monitoring feeds' counters (`GET /subscribe`, Graphite).
    pub feeds: crate::feed_events::FeedEvents,
    connections_accepted: AtomicU64,
    /// Sessions started, by cipher: `none`, SalsaBox (version 1), ChaChaBox (version 2).
    sessions_by_cipher: [AtomicU64; 3],
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
    commit_latency: metric_text::Histogram,
    sql_latency: metric_text::Histogram,
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
    /// A tailer got past its hello; `cipher` is what its messages are sealed with.
    pub(crate) fn session_started(&self, cipher: &str) {
        let i = SESSION_CIPHERS
            .iter()
            .position(|c| *c == cipher)
            .unwrap_or(0);
        self.sessions_by_cipher[i].fetch_add(1, Relaxed);
    }

    /// Sessions started with `cipher` (`none`, `xsalsa20poly1305`, `xchacha20poly1305`).
    pub fn sessions_with(&self, cipher: &str) -> u64 {
        SESSION_CIPHERS
            .iter()
            .position(|c| *c == cipher)
            .map_or(0, |i| self.sessions_by_cipher[i].load(Relaxed))
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
        self.commit_latency.observe(took);
    }
    /// A SQL query ended (last row sent, or its error) `took` after it started.
    pub(crate) fn sql_query_took(&self, took: Duration) {
        self.sql_latency.observe(took);
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
        let mut e = metric_text::Exposition::new(out, "sluice_buck");
        e.counter(
            "connections_total",
            "tailer connections accepted",
            c.connections_accepted,
        );
        e.gauge(
            "connections_open",
            "tailer connections open now",
            c.connections_open,
        );
        e.counter(
            "messages_total",
            "messages received from tailers",
            c.messages_in,
        );
        e.counter(
            "events_in_total",
            "events received (valid frames)",
            c.events_in,
        );
        e.counter(
            "frames_rejected_total",
            "frames rejected for good (undecodable, invalid crawl id)",
            c.frames_rejected,
        );
        e.counter(
            "nacks_total",
            "messages refused with a retry-after (storage failure)",
            c.nacks,
        );
        e.counter(
            "inserted_total",
            "events newly inserted into segments",
            c.inserted,
        );
        e.counter(
            "duplicates_total",
            "events already stored (ignored)",
            c.duplicates,
        );
        e.counter(
            "bytes_written_total",
            "bytes of event lines inserted",
            c.bytes_written,
        );
        e.counter(
            "published_total",
            "events published on the live bus",
            c.published,
        );
        e.counter(
            "published_late_total",
            "events published marked late (repair path)",
            c.published_late,
        );
        e.counter(
            "missed_total",
            "events missed by lagging bus subscribers",
            c.subscriber_missed,
        );
        e.counter("commits_total", "segment transactions committed", c.commits);
        e.counter(
            "commit_failures_total",
            "batches that failed to commit",
            c.commit_failures,
        );
        e.gauge("segments_open", "segments not yet closed", c.segments_open);
        e.counter(
            "segments_closed_total",
            "segments closed by this process",
            c.segments_closed,
        );
        e.counter(
            "segments_pruned_total",
            "segments deleted after retention (archived, verified unchanged)",
            c.segments_pruned,
        );
        e.counter("sql_queries_total", "SQL queries received", c.sql_queries);
        e.counter(
            "sql_errors_total",
            "SQL queries answered with an error",
            c.sql_errors,
        );
        e.counter(
            "sql_timeouts_total",
            "SQL queries stopped by sql_timeout_ms",
            c.sql_timeouts,
        );
        e.counter(
            "sql_truncated_total",
            "SQL replies cut by sql_max_rows or sql_max_bytes",
            c.sql_truncated,
        );
        e.counter(
            "foreign_tailer_frames_total",
            "frames refused for good because their event id names another tailer than the connection's hello",
            self.foreign_ids.load(Relaxed),
        );
        e.counter(
            "sql_busy_total",
            "queries refused because sql_max_concurrent were running (503)",
            self.sql_busy.load(Relaxed),
        );
        e.counter(
            "sql_send_timeouts_total",
            "replies cut off because the client read slower than sql_send_timeout_ms",
            self.sql_send_timeouts.load(Relaxed),
        );
        e.counter(
            "api_refused_total",
            "SQL API requests refused for a missing or wrong api_token (401)",
            self.api_refused.load(Relaxed),
        );
        e.counter(
            "porter_refused_total",
            "segment API requests refused for a missing or wrong porter token (401)",
            self.porter_refused.load(Relaxed),
        );
        e.counter(
            "segment_downloads_busy_total",
            "segment copies refused because segment_downloads_max were in progress (503)",
            self.segment_downloads_busy.load(Relaxed),
        );
        e.counter(
            "segments_vanished_total",
            "segment files found deleted or replaced under the running buck (a new file was started)",
            self.segments_vanished.load(Relaxed),
        );
        e.counter(
            "segments_quarantined_total",
            "corrupt segment files moved to <data_dir>/quarantine (a new file was started)",
            self.segments_quarantined.load(Relaxed),
        );
        e.counter(
            "disk_full_episodes_total",
            "times committing paused because the segments' disk was full, read-only or below its headroom",
            self.disk.count(),
        );
        e.gauge(
            "disk_full",
            "1 while committing is paused for a full, read-only or low disk",
            self.disk.active(),
        );
        e.histogram(
            "commit_seconds",
            "time spent committing batches",
            &self.commit_latency,
        );
        e.histogram(
            "sql_query_seconds",
            "time from the start of a SQL query to its last row (or its error)",
            &self.sql_latency,
        );
        let rejections: Vec<(&str, u64)> = ConnectionRejection::ALL
            .iter()
            .zip(&self.rejections)
            .map(|(r, n)| (r.name(), n.load(Relaxed)))
            .collect();
        e.counter_by(
            "rejections_total",
            "connections closed or refused, by reason",
            "reason",
            &rejections,
        );
        let sessions: Vec<(&str, u64)> = SESSION_CIPHERS
            .iter()
            .zip(&self.sessions_by_cipher)
            .map(|(c, n)| (*c, n.load(Relaxed)))
            .collect();
        e.counter_by(
            "sessions_total",
            "tailer sessions started, by the cipher sealing them",
            "cipher",
            &sessions,
        );
        self.feeds.render(&mut e);
    }
}

/// The `cipher` label values of `sessions_total`.
const SESSION_CIPHERS: [&str; 3] = ["none", "xsalsa20poly1305", "xchacha20poly1305"];

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
