//! `FeedEvents`: the counters of the monitoring feeds (`GET /subscribe` and the Graphite
//! pusher), rendered with the buck's as `sluice_buck_subscribe_*` and
//! `sluice_buck_graphite_*`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters of the subscriber API and the Graphite pusher.
#[derive(Debug, Default)]
pub struct FeedEvents {
    subscribers: AtomicU64,
    subscribe_accepted: AtomicU64,
    subscribe_busy: AtomicU64,
    subscribe_bad_filter: AtomicU64,
    subscribe_sent: AtomicU64,
    subscribe_dropped_queue: AtomicU64,
    subscribe_dropped_bus: AtomicU64,
    graphite_lines_sent: AtomicU64,
    graphite_lines_dropped: AtomicU64,
    graphite_connect_failures: AtomicU64,
    graphite_connected: AtomicU64,
}

impl FeedEvents {
    pub(crate) fn subscriber_started(&self) {
        self.subscribe_accepted.fetch_add(1, Relaxed);
        self.subscribers.fetch_add(1, Relaxed);
    }
    pub(crate) fn subscriber_ended(&self) {
        self.subscribers.fetch_sub(1, Relaxed);
    }
    pub(crate) fn subscriber_refused_busy(&self) {
        self.subscribe_busy.fetch_add(1, Relaxed);
    }
    pub(crate) fn subscriber_refused_filter(&self) {
        self.subscribe_bad_filter.fetch_add(1, Relaxed);
    }
    pub(crate) fn subscriber_sent(&self) {
        self.subscribe_sent.fetch_add(1, Relaxed);
    }
    pub(crate) fn subscriber_dropped_queue(&self, n: u64) {
        self.subscribe_dropped_queue.fetch_add(n, Relaxed);
    }
    pub(crate) fn subscriber_dropped_bus(&self, n: u64) {
        self.subscribe_dropped_bus.fetch_add(n, Relaxed);
    }
    pub(crate) fn graphite_sent(&self, lines: u64) {
        self.graphite_lines_sent.fetch_add(lines, Relaxed);
    }
    pub(crate) fn graphite_dropped(&self, lines: u64) {
        self.graphite_lines_dropped.fetch_add(lines, Relaxed);
    }
    pub(crate) fn graphite_connect_failed(&self) {
        self.graphite_connect_failures.fetch_add(1, Relaxed);
    }
    pub(crate) fn graphite_connection(&self, up: bool) {
        self.graphite_connected.store(u64::from(up), Relaxed);
    }

    /// Subscribers streaming now.
    pub fn subscribers(&self) -> u64 {
        self.subscribers.load(Relaxed)
    }

    /// Graphite lines written to the listener's socket so far.
    pub fn graphite_lines_sent(&self) -> u64 {
        self.graphite_lines_sent.load(Relaxed)
    }

    /// Graphite lines given up on (the listener was down and the buffer full).
    pub fn graphite_lines_dropped(&self) -> u64 {
        self.graphite_lines_dropped.load(Relaxed)
    }

    pub(crate) fn render(&self, e: &mut metric_text::Exposition<'_>) {
        e.gauge(
            "subscribers",
            "GET /subscribe streams open now",
            self.subscribers(),
        );
        e.counter_by(
            "subscriptions_total",
            "GET /subscribe requests, by outcome",
            "outcome",
            &[
                ("accepted", self.subscribe_accepted.load(Relaxed)),
                ("busy", self.subscribe_busy.load(Relaxed)),
                ("bad_filter", self.subscribe_bad_filter.load(Relaxed)),
            ],
        );
        e.counter(
            "subscribe_sent_total",
            "events queued for GET /subscribe streams",
            self.subscribe_sent.load(Relaxed),
        );
        e.counter_by(
            "subscribe_dropped_total",
            "events a subscriber lost and was told of in a dropped record: queue (its queue was full), bus (the bus skipped them)",
            "reason",
            &[
                ("queue", self.subscribe_dropped_queue.load(Relaxed)),
                ("bus", self.subscribe_dropped_bus.load(Relaxed)),
            ],
        );
        e.counter(
            "graphite_lines_sent_total",
            "Graphite plaintext lines written to the listener",
            self.graphite_lines_sent(),
        );
        e.counter(
            "graphite_lines_dropped_total",
            "Graphite lines given up on (listener down and buffer full, or a failed write)",
            self.graphite_lines_dropped(),
        );
        e.counter(
            "graphite_connect_failures_total",
            "failed connections to the Graphite listener",
            self.graphite_connect_failures.load(Relaxed),
        );
        e.gauge(
            "graphite_connected",
            "1 while connected to the Graphite listener",
            self.graphite_connected.load(Relaxed),
        );
    }
}
