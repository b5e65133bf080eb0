//! `LiveEvents`: the broker's counters, the only place they change, rendered for
//! Prometheus as `sluice_live_*`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters of one broker. All are totals since start except `clients`, a gauge.
#[derive(Debug, Default)]
pub struct LiveEvents {
    clients: AtomicU64,
    connections: AtomicU64,
    refused_token: AtomicU64,
    refused_clients: AtomicU64,
    subscriptions: AtomicU64,
    bad_subscriptions: AtomicU64,
    published: AtomicU64,
    sent: AtomicU64,
    backfilled: AtomicU64,
    batches: AtomicU64,
    dropped_queue: AtomicU64,
    dropped_rate: AtomicU64,
    bus_missed: AtomicU64,
    sessions_capped: AtomicU64,
}

/// A plain copy of the counters, for tests and reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveCounts {
    /// Clients connected now.
    pub clients: u64,
    /// Connections accepted.
    pub connections: u64,
    /// Connections refused for a missing or wrong token.
    pub refused_token: u64,
    /// Connections refused because `max_clients` were connected.
    pub refused_clients: u64,
    /// Accepted `subscribe`s.
    pub subscriptions: u64,
    /// Refused `subscribe`s (bad filter).
    pub bad_subscriptions: u64,
    /// Events the buck published.
    pub published: u64,
    /// Events sent to clients (one per client it went to), backfill excluded.
    pub sent: u64,
    /// Events sent as backfill.
    pub backfilled: u64,
    /// `events` packets emitted.
    pub batches: u64,
    /// Events dropped for a client whose queue was full.
    pub dropped_queue: u64,
    /// Events dropped for a client over `max_events_per_sec`.
    pub dropped_rate: u64,
    /// Events the buck's bus skipped before the broker saw them.
    pub bus_missed: u64,
    /// Sessions ended by `max_session_secs`.
    pub sessions_capped: u64,
}

impl LiveEvents {
    pub(crate) fn connected(&self) {
        self.connections.fetch_add(1, Relaxed);
        self.clients.fetch_add(1, Relaxed);
    }
    pub(crate) fn disconnected(&self) {
        self.clients.fetch_sub(1, Relaxed);
    }
    pub(crate) fn refused_token(&self) {
        self.refused_token.fetch_add(1, Relaxed);
    }
    pub(crate) fn refused_clients(&self) {
        self.refused_clients.fetch_add(1, Relaxed);
    }
    pub(crate) fn subscribed(&self, ok: bool) {
        if ok {
            &self.subscriptions
        } else {
            &self.bad_subscriptions
        }
        .fetch_add(1, Relaxed);
    }
    pub(crate) fn published(&self) {
        self.published.fetch_add(1, Relaxed);
    }
    pub(crate) fn batch_sent(&self, n: usize, backfill: bool) {
        self.batches.fetch_add(1, Relaxed);
        if backfill {
            &self.backfilled
        } else {
            &self.sent
        }
        .fetch_add(n as u64, Relaxed);
    }
    pub(crate) fn dropped_queue(&self, n: u64) {
        self.dropped_queue.fetch_add(n, Relaxed);
    }
    pub(crate) fn dropped_rate(&self, n: u64) {
        self.dropped_rate.fetch_add(n, Relaxed);
    }
    pub(crate) fn bus_missed(&self, n: u64) {
        self.bus_missed.fetch_add(n, Relaxed);
    }
    pub(crate) fn session_capped(&self) {
        self.sessions_capped.fetch_add(1, Relaxed);
    }

    /// A snapshot of every counter.
    pub fn counts(&self) -> LiveCounts {
        LiveCounts {
            clients: self.clients.load(Relaxed),
            connections: self.connections.load(Relaxed),
            refused_token: self.refused_token.load(Relaxed),
            refused_clients: self.refused_clients.load(Relaxed),
            subscriptions: self.subscriptions.load(Relaxed),
            bad_subscriptions: self.bad_subscriptions.load(Relaxed),
            published: self.published.load(Relaxed),
            sent: self.sent.load(Relaxed),
            backfilled: self.backfilled.load(Relaxed),
            batches: self.batches.load(Relaxed),
            dropped_queue: self.dropped_queue.load(Relaxed),
            dropped_rate: self.dropped_rate.load(Relaxed),
            bus_missed: self.bus_missed.load(Relaxed),
            sessions_capped: self.sessions_capped.load(Relaxed),
        }
    }

    /// Appends the counters in Prometheus text format.
    pub fn render_prometheus(&self, out: &mut String) {
        let c = self.counts();
        let mut e = metric_text::Exposition::new(out, "sluice_live");
        e.gauge("clients", "Live view clients connected now.", c.clients);
        e.counter(
            "connections_total",
            "Live view connections accepted.",
            c.connections,
        );
        e.counter_by(
            "refused_total",
            "Live view connections refused.",
            "reason",
            &[
                ("token", c.refused_token),
                ("max_clients", c.refused_clients),
            ],
        );
        e.counter_by(
            "subscriptions_total",
            "Subscribe requests, by outcome.",
            "outcome",
            &[("ok", c.subscriptions), ("bad_filter", c.bad_subscriptions)],
        );
        e.counter(
            "published_total",
            "Events published to the broker.",
            c.published,
        );
        e.counter_by(
            "sent_total",
            "Events sent to clients, once per client.",
            "kind",
            &[("live", c.sent), ("backfill", c.backfilled)],
        );
        e.counter("batches_total", "Event batches emitted.", c.batches);
        e.counter_by(
            "dropped_total",
            "Events dropped for one client.",
            "reason",
            &[("queue", c.dropped_queue), ("rate", c.dropped_rate)],
        );
        e.counter(
            "bus_missed_total",
            "Events the buck's bus skipped before the broker.",
            c.bus_missed,
        );
        e.counter(
            "sessions_capped_total",
            "Sessions ended by max_session_secs.",
            c.sessions_capped,
        );
    }
}
