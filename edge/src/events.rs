//! `EdgeEvents`: what the edge refused or closed, rendered in `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of the edge, shared by the accept loop and the request guard.
#[derive(Debug, Default)]
pub struct EdgeEvents {
    /// Connections closed at accept because `max_connections` were open.
    pub refused_total_cap: AtomicU64,
    /// Connections closed at accept because `max_connections_per_address` were open from
    /// the same address.
    pub refused_address_cap: AtomicU64,
    /// Connections closed after `idle_timeout_secs` without a byte.
    pub closed_idle: AtomicU64,
    /// Connections that ended with an error, a `header_read_timeout_ms` among them.
    pub connection_errors: AtomicU64,
}

impl EdgeEvents {
    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Appends the counters in Prometheus text format.
    pub fn render_prometheus(&self, out: &mut String) {
        let mut e = metric_text::Exposition::new(out, "sluice_http");
        let rows: [(&str, &str, &AtomicU64); 4] = [
            (
                "refused_connections_total_cap_total",
                "Connections closed at accept: max_connections open",
                &self.refused_total_cap,
            ),
            (
                "refused_connections_address_cap_total",
                "Connections closed at accept: max_connections_per_address open from that address",
                &self.refused_address_cap,
            ),
            (
                "closed_idle_connections_total",
                "Connections closed after idle_timeout_secs without traffic",
                &self.closed_idle,
            ),
            (
                "connection_errors_total",
                "Connections ended by an error, header_read_timeout_ms included",
                &self.connection_errors,
            ),
        ];
        for (name, help, v) in rows {
            e.counter(name, help, v.load(Ordering::Relaxed));
        }
    }
}
