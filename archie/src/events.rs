//! [`ArchieEvents`]: archie's counters, the only place they change, rendered for
//! Prometheus as `sluice_archie_*`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Archie's counters and gauges.
#[derive(Debug, Default)]
pub struct ArchieEvents {
    /// Full, read-only or low-space episodes of `work_dir`'s file system, rendered as
    /// `sluice_archie_disk_full` and `_disk_full_episodes_total`, named in health.
    pub disk: disk_space::DiskEpisodes,
    requests: AtomicU64,
    requests_reused: AtomicU64,
    requests_rejected: AtomicU64,
    builds_started: AtomicU64,
    builds_ready: AtomicU64,
    builds_failed: AtomicU64,
    builds_running: AtomicU64,
    segments_fetched: AtomicU64,
    bytes_fetched: AtomicU64,
    events_indexed: AtomicU64,
    searches: AtomicU64,
    search_rows_scanned: AtomicU64,
    sql_queries: AtomicU64,
    sql_refused: AtomicU64,
    token_refused: AtomicU64,
    indexes_expired: AtomicU64,
    indexes_evicted: AtomicU64,
    index_bytes: AtomicU64,
}

impl ArchieEvents {
    /// A request was accepted (`reused`: an existing index answers it).
    pub fn request(&self, reused: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if reused {
            self.requests_reused.fetch_add(1, Ordering::Relaxed);
        }
    }
    /// A request came without the token, or with a wrong one (401).
    pub fn token_refused(&self) {
        self.token_refused.fetch_add(1, Ordering::Relaxed);
    }
    /// A request was refused as invalid.
    pub fn request_rejected(&self) {
        self.requests_rejected.fetch_add(1, Ordering::Relaxed);
    }
    /// A build took a slot.
    pub fn build_started(&self) {
        self.builds_started.fetch_add(1, Ordering::Relaxed);
        self.builds_running.fetch_add(1, Ordering::Relaxed);
    }
    /// A build ended, ready or failed.
    pub fn build_finished(&self, ok: bool, events: u64) {
        self.builds_running.fetch_sub(1, Ordering::Relaxed);
        if ok {
            self.builds_ready.fetch_add(1, Ordering::Relaxed);
            self.events_indexed.fetch_add(events, Ordering::Relaxed);
        } else {
            self.builds_failed.fetch_add(1, Ordering::Relaxed);
        }
    }
    /// Segments fetched for a build.
    pub fn fetched(&self, segments: u64, bytes: u64) {
        self.segments_fetched.fetch_add(segments, Ordering::Relaxed);
        self.bytes_fetched.fetch_add(bytes, Ordering::Relaxed);
    }
    /// A search or histogram ran.
    pub fn search(&self, rows_scanned: u64) {
        self.searches.fetch_add(1, Ordering::Relaxed);
        self.search_rows_scanned
            .fetch_add(rows_scanned, Ordering::Relaxed);
    }
    /// A SQL statement ran (`refused`: it was not allowed or failed).
    pub fn sql(&self, refused: bool) {
        self.sql_queries.fetch_add(1, Ordering::Relaxed);
        if refused {
            self.sql_refused.fetch_add(1, Ordering::Relaxed);
        }
    }
    /// An index expired (`evicted`: for the disk budget).
    pub fn expired(&self, evicted: bool) {
        if evicted {
            self.indexes_evicted.fetch_add(1, Ordering::Relaxed);
        } else {
            self.indexes_expired.fetch_add(1, Ordering::Relaxed);
        }
    }
    /// Bytes of every index on disk now.
    pub fn set_index_bytes(&self, bytes: u64) {
        self.index_bytes.store(bytes, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every counter.
    pub fn render_prometheus(&self) -> String {
        let rows: [(&str, &str, &str, &AtomicU64); 18] = [
            (
                "requests_total",
                "counter",
                "history requests accepted",
                &self.requests,
            ),
            (
                "requests_reused_total",
                "counter",
                "requests answered by an existing index",
                &self.requests_reused,
            ),
            (
                "requests_rejected_total",
                "counter",
                "requests refused as invalid",
                &self.requests_rejected,
            ),
            (
                "builds_started_total",
                "counter",
                "index builds started",
                &self.builds_started,
            ),
            (
                "builds_ready_total",
                "counter",
                "index builds that finished",
                &self.builds_ready,
            ),
            (
                "builds_failed_total",
                "counter",
                "index builds that failed",
                &self.builds_failed,
            ),
            (
                "builds_running",
                "gauge",
                "index builds running now",
                &self.builds_running,
            ),
            (
                "segments_fetched_total",
                "counter",
                "segments fetched",
                &self.segments_fetched,
            ),
            (
                "bytes_fetched_total",
                "counter",
                "bytes of segments fetched",
                &self.bytes_fetched,
            ),
            (
                "events_indexed_total",
                "counter",
                "events indexed by finished builds",
                &self.events_indexed,
            ),
            (
                "searches_total",
                "counter",
                "searches and histograms",
                &self.searches,
            ),
            (
                "search_rows_scanned_total",
                "counter",
                "rows tested by searches",
                &self.search_rows_scanned,
            ),
            (
                "sql_queries_total",
                "counter",
                "sql statements received",
                &self.sql_queries,
            ),
            (
                "sql_refused_total",
                "counter",
                "sql statements refused or failed",
                &self.sql_refused,
            ),
            (
                "token_refused_total",
                "counter",
                "requests refused for a missing or wrong api_token (401)",
                &self.token_refused,
            ),
            (
                "indexes_expired_total",
                "counter",
                "indexes deleted at expiry",
                &self.indexes_expired,
            ),
            (
                "indexes_evicted_total",
                "counter",
                "indexes deleted for the disk budget",
                &self.indexes_evicted,
            ),
            (
                "index_bytes",
                "gauge",
                "bytes of all indexes on disk",
                &self.index_bytes,
            ),
        ];
        let mut out = String::new();
        let mut e = metric_text::Exposition::new(&mut out, "sluice_archie");
        let disk = [
            (
                "disk_full_episodes_total",
                "counter",
                "times builds waited or failed because the work directory's disk was full, read-only or below its headroom",
                self.disk.count(),
            ),
            (
                "disk_full",
                "gauge",
                "1 while requests wait for space on a full, read-only or low work directory disk",
                self.disk.active(),
            ),
        ];
        let values = rows
            .iter()
            .map(|(name, kind, help, v)| (*name, *kind, *help, v.load(Ordering::Relaxed)));
        for (name, kind, help, v) in values.chain(disk) {
            if kind == "counter" {
                e.counter(name, help, v);
            } else {
                e.gauge(name, help, v);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_disk_gauge_and_episodes() {
        let e = ArchieEvents::default();
        assert!(
            e.render_prometheus()
                .contains("\nsluice_archie_disk_full 0\n")
        );
        let d = tempfile::tempdir().unwrap();
        e.disk.paused("archie", d.path(), "disk full");
        let out = e.render_prometheus();
        assert!(
            out.contains("# TYPE sluice_archie_disk_full gauge\nsluice_archie_disk_full 1\n"),
            "{out}"
        );
        assert!(
            out.contains("sluice_archie_disk_full_episodes_total 1\n"),
            "{out}"
        );
    }
}
