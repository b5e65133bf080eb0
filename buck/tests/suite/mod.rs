//! One module per topic.

/// The live bus: lagging subscribers, late events.
mod bus;
/// Faults under a running buck: segment files deleted or corrupt.
mod faults;
/// Monitoring feeds: `GET /subscribe` limits and token, Graphite counts and reconnects.
mod feeds;
/// Hostile connections: garbage, forged, replayed, wrong key, bad version.
mod hostile;
/// Ingest: exactly once, acks after commit, pipelining, shutdown.
mod ingest;
/// Segment lifecycle: closing and part files.
mod parts;
/// Real Heritrix crawl logs: counts by status and host.
mod real_logs;
/// Segments of schema version 1 (committed fixtures) beside version 2.
mod schema_versions;
/// The segment API for porter.
mod segments;
/// The SQL read API: the trough query, attacks, limits, redirects.
mod sql;
/// Per-crawl summaries and the crawls list.
mod summaries;
