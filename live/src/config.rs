//! `LiveConfig`: the broker's limits, as the buck's config file spells them.

use serde::{Deserialize, Serialize};

/// Limits of the live broker. Every limit is per buck; a browser that talks to several
/// bucks is counted once by each.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveConfig {
    /// Most socket.io clients connected at once; the next one is refused with a
    /// `connect_error` naming the limit. Default 200.
    #[serde(default = "default_max_clients")]
    pub max_clients: usize,
    /// Longest session, in seconds: then the client gets `capped` and is disconnected, so
    /// a forgotten tab does not hold a slot for ever. Default 3600.
    #[serde(default = "default_max_session_secs")]
    pub max_session_secs: u64,
    /// Most events sent to one client per second, after its filter; the excess is dropped
    /// for that client and reported in `dropped` with reason `rate`. Default 2000.
    #[serde(default = "default_max_events_per_sec")]
    pub max_events_per_sec: u64,
    /// Events waiting for one client, at most; past it the broker drops for that client
    /// only (reason `queue`) and never waits. Default 1024.
    #[serde(default = "default_client_queue")]
    pub client_queue: usize,
    /// Most events a client may ask for as backfill when it subscribes. Default 200.
    #[serde(default = "default_backfill_events")]
    pub backfill_events: usize,
    /// Oldest backfill, in seconds since the buck published it. Default 300.
    #[serde(default = "default_backfill_secs")]
    pub backfill_secs: u64,
    /// Events kept for backfill, in a ring, whatever their filter. Default 10000.
    #[serde(default = "default_ring_events")]
    pub ring_events: usize,
    /// Longest `regex` a client may send, in bytes. Default 1024. (The compiled program
    /// is bounded too, by `regex::RegexBuilder::size_limit`.)
    #[serde(default = "default_max_regex_bytes")]
    pub max_regex_bytes: usize,
    /// socket.io packets buffered per client between the broker and the socket (each
    /// packet is a batch of up to 256 events). When it is full, events wait in the
    /// client's queue instead, which `client_queue` bounds. Default 16.
    #[serde(default = "default_transport_packets")]
    pub transport_packets: usize,
    /// When set, clients must send `{ token: "..." }` as their socket.io auth payload.
    #[serde(default)]
    pub token: Option<String>,
}

fn default_max_clients() -> usize {
    200
}
fn default_max_session_secs() -> u64 {
    3600
}
fn default_max_events_per_sec() -> u64 {
    2000
}
fn default_client_queue() -> usize {
    1024
}
fn default_backfill_events() -> usize {
    200
}
fn default_backfill_secs() -> u64 {
    300
}
fn default_ring_events() -> usize {
    10_000
}
fn default_max_regex_bytes() -> usize {
    1024
}
fn default_transport_packets() -> usize {
    16
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            max_clients: default_max_clients(),
            max_session_secs: default_max_session_secs(),
            max_events_per_sec: default_max_events_per_sec(),
            client_queue: default_client_queue(),
            backfill_events: default_backfill_events(),
            backfill_secs: default_backfill_secs(),
            ring_events: default_ring_events(),
            max_regex_bytes: default_max_regex_bytes(),
            transport_packets: default_transport_packets(),
            token: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_config() {
        let c: LiveConfig = serde_json::from_str(r#"{"max_clients": 5, "token": "t"}"#).unwrap();
        assert_eq!(c.max_clients, 5);
        assert_eq!(c.token.as_deref(), Some("t"));
        assert_eq!(c.client_queue, 1024);
        let d: LiveConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(d, LiveConfig::default());
        let err = serde_json::from_str::<LiveConfig>(r#"{"max_client": 5}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }
}
