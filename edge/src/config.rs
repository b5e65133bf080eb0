//! `EdgeConfig`: the `[http]` table of an agent's config, the bounds of its HTTP listener.

use serde::Deserialize;

/// How an agent's HTTP listener bounds connections: the `[http]` table of the buck's and
/// archie's configs (`sluice up` uses the defaults).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeConfig {
    /// Milliseconds a client has to send a whole request head (line and headers) once a
    /// connection waits for one. Past it the connection is closed: a slowloris client that
    /// dribbles header bytes holds a socket at most this long. Default 10000: a real
    /// client on a bad link sends a few hundred bytes of head well within that.
    pub header_read_timeout_ms: u64,
    /// Seconds a connection may carry no bytes either way before it is closed: idle
    /// keep-alive connections stop holding sockets. Default 60, above socket.io's 25 s ping
    /// and long-poll interval so the live view's connections never look idle.
    pub idle_timeout_secs: u64,
    /// Connections open at once, all clients together (HTTP, socket.io polling and
    /// websockets alike). A new connection past it is closed at once. Default 1024.
    pub max_connections: usize,
    /// Connections open at once from one source address. Default 64: a browser opens at
    /// most 6 per origin, a page of the live view one per buck, so 64 leaves room for a
    /// NAT of several users while one address cannot take the whole listener.
    pub max_connections_per_address: usize,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig {
            header_read_timeout_ms: 10_000,
            idle_timeout_secs: 60,
            max_connections: 1024,
            max_connections_per_address: 64,
        }
    }
}
