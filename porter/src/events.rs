//! [`PorterEvents`]: the porter's counters, the only place they change, rendered for
//! Prometheus as `sluice_porter_*`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shared by every task of a porter.
#[derive(Debug, Default)]
pub struct PorterEvents {
    /// Full, read-only or low-space episodes of `work_dir`'s file system, rendered as
    /// `sluice_porter_disk_full` and `_disk_full_episodes_total`, named in health.
    pub disk: disk_space::DiskEpisodes,
    runs: AtomicU64,
    runs_failed: AtomicU64,
    segments_archived: AtomicU64,
    segments_already_archived: AtomicU64,
    segments_failed: AtomicU64,
    segments_postponed: AtomicU64,
    segments_deferred: AtomicU64,
    conflicts: AtomicU64,
    events_archived: AtomicU64,
    segment_bytes_archived: AtomicU64,
    object_bytes_uploaded: AtomicU64,
    buck_errors: AtomicU64,
    bucks_notified: AtomicU64,
    segments_fetched: AtomicU64,
    object_bytes_fetched: AtomicU64,
    corrupt_objects: AtomicU64,
}

fn inc(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl PorterEvents {
    /// An archive run finished (`ok` false if any segment failed).
    pub fn run_finished(&self, ok: bool) {
        inc(&self.runs, 1);
        if !ok {
            inc(&self.runs_failed, 1);
        }
    }
    /// A segment was archived by this porter: its events, file and object sizes.
    pub fn segment_archived(&self, events: u64, file_bytes: u64, object_bytes: u64) {
        inc(&self.segments_archived, 1);
        inc(&self.events_archived, events);
        inc(&self.segment_bytes_archived, file_bytes);
        inc(&self.object_bytes_uploaded, object_bytes);
    }
    /// A segment was found already archived with the same ids hash.
    pub fn segment_already_archived(&self) {
        inc(&self.segments_already_archived, 1);
    }
    /// A segment failed to archive this run (it is tried again next run).
    pub fn segment_failed(&self) {
        inc(&self.segments_failed, 1);
    }
    /// Segments left for a later run because a buck did not answer.
    pub fn segments_postponed(&self, n: u64) {
        inc(&self.segments_postponed, n);
    }
    /// Segments left for a later run because `work_dir`'s disk was full, read-only or
    /// below its headroom.
    pub fn segments_deferred(&self, n: u64) {
        inc(&self.segments_deferred, n);
    }
    /// The archive holds a different segment under the same key: an alert.
    pub fn conflict(&self) {
        inc(&self.conflicts, 1);
    }
    /// A buck request failed.
    pub fn buck_error(&self) {
        inc(&self.buck_errors, 1);
    }
    /// A buck accepted an "archived" notice.
    pub fn buck_notified(&self) {
        inc(&self.bucks_notified, 1);
    }
    /// A segment was fetched, with its object's size.
    pub fn segment_fetched(&self, object_bytes: u64) {
        inc(&self.segments_fetched, 1);
        inc(&self.object_bytes_fetched, object_bytes);
    }
    /// An archived object did not match its manifest.
    pub fn corrupt_object(&self) {
        inc(&self.corrupt_objects, 1);
    }

    /// Current value of a counter by its metric name (tests, status pages).
    pub fn get(&self, name: &str) -> Option<u64> {
        self.counters()
            .into_iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, _, v)| v)
    }

    fn counters(&self) -> Vec<(&'static str, &'static str, u64)> {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            (
                "sluice_porter_runs_total",
                "archive runs finished",
                g(&self.runs),
            ),
            (
                "sluice_porter_runs_failed_total",
                "archive runs in which some segment failed",
                g(&self.runs_failed),
            ),
            (
                "sluice_porter_segments_archived_total",
                "segments archived by this porter",
                g(&self.segments_archived),
            ),
            (
                "sluice_porter_segments_already_archived_total",
                "segments found archived with the same ids hash",
                g(&self.segments_already_archived),
            ),
            (
                "sluice_porter_segments_failed_total",
                "segment archive attempts that failed",
                g(&self.segments_failed),
            ),
            (
                "sluice_porter_segments_postponed_total",
                "segments left for a later run because a buck did not answer",
                g(&self.segments_postponed),
            ),
            (
                "sluice_porter_segments_deferred_total",
                "segments left for a later run because the work directory's disk was full, read-only or below its headroom",
                g(&self.segments_deferred),
            ),
            (
                "sluice_porter_disk_full_episodes_total",
                "times archiving paused because the work directory's disk was full, read-only or below its headroom",
                self.disk.count(),
            ),
            (
                "sluice_porter_conflicts_total",
                "archive keys holding a different segment (alert)",
                g(&self.conflicts),
            ),
            (
                "sluice_porter_events_archived_total",
                "events in segments archived",
                g(&self.events_archived),
            ),
            (
                "sluice_porter_segment_bytes_archived_total",
                "uncompressed bytes of segments archived",
                g(&self.segment_bytes_archived),
            ),
            (
                "sluice_porter_object_bytes_uploaded_total",
                "compressed bytes uploaded",
                g(&self.object_bytes_uploaded),
            ),
            (
                "sluice_porter_buck_errors_total",
                "buck requests that failed",
                g(&self.buck_errors),
            ),
            (
                "sluice_porter_bucks_notified_total",
                "archived notices accepted by bucks",
                g(&self.bucks_notified),
            ),
            (
                "sluice_porter_segments_fetched_total",
                "segments fetched for history",
                g(&self.segments_fetched),
            ),
            (
                "sluice_porter_object_bytes_fetched_total",
                "compressed bytes fetched",
                g(&self.object_bytes_fetched),
            ),
            (
                "sluice_porter_corrupt_objects_total",
                "archived objects that did not match their manifest",
                g(&self.corrupt_objects),
            ),
        ]
    }

    /// Appends every counter, and the `disk_full` gauge, in the Prometheus text format.
    pub fn render_prometheus(&self, out: &mut String) {
        let mut e = metric_text::Exposition::new(out, "");
        for (name, help, value) in self.counters() {
            e.counter(name, help, value);
        }
        e.gauge(
            "sluice_porter_disk_full",
            "1 while archiving is paused for a full, read-only or low work directory disk",
            self.disk.active(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters() {
        let e = PorterEvents::default();
        e.segment_archived(10, 1000, 100);
        e.conflict();
        let mut out = String::new();
        e.render_prometheus(&mut out);
        assert!(
            out.contains("sluice_porter_events_archived_total 10\n"),
            "{out}"
        );
        assert!(out.contains("sluice_porter_conflicts_total 1\n"), "{out}");
        assert!(
            out.contains("# TYPE sluice_porter_runs_total counter\n"),
            "{out}"
        );
        assert_eq!(
            e.get("sluice_porter_object_bytes_uploaded_total"),
            Some(100)
        );
        assert!(
            out.contains("# TYPE sluice_porter_disk_full gauge\nsluice_porter_disk_full 0\n"),
            "{out}"
        );
        let d = tempfile::tempdir().expect("tempdir");
        e.disk.paused("porter", d.path(), "disk full");
        e.segments_deferred(2);
        let mut out = String::new();
        e.render_prometheus(&mut out);
        assert!(out.contains("sluice_porter_disk_full 1\n"), "{out}");
        assert!(
            out.contains("sluice_porter_disk_full_episodes_total 1\n"),
            "{out}"
        );
        assert_eq!(e.get("sluice_porter_segments_deferred_total"), Some(2));
    }
}
