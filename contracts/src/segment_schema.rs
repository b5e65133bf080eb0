//! The segment schema (DESIGN.md contract 6): what every segment file holds, shared by the
//! buck that writes segments and by the agents and tests that read or make them.
//!
//! `events` holds every event once (unique on `id`, the text form of `EventId`);
//! `crawled_url` holds the trough feed's columns for crawl.log events, sharing its event's
//! rowid; the `crawled_urls` view adds the event `id`, so the design's query
//! `SELECT count(id) FROM crawled_urls WHERE host = "www.example.com" GROUP BY status_code;`
//! runs as written. `meta` holds the schema version, crawl, day, part and state.

/// Version of the segment schema (`meta.schema_version`).
pub const SEGMENT_SCHEMA_VERSION: i64 = 1;

/// The DDL of a segment, idempotent (`IF NOT EXISTS`).
pub const SEGMENT_SCHEMA_SQL: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    id TEXT NOT NULL UNIQUE,
    time TEXT NOT NULL,
    time_us INTEGER NOT NULL,
    host TEXT NOT NULL,
    app TEXT NOT NULL,
    format TEXT NOT NULL,
    flags INTEGER NOT NULL,
    original_len INTEGER NOT NULL,
    line TEXT NOT NULL,
    raw BLOB,
    fields TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_time_us ON events(time_us);
CREATE INDEX IF NOT EXISTS events_host ON events(host, time_us);
CREATE TABLE IF NOT EXISTS crawled_url (
    timestamp TEXT,
    status_code INTEGER,
    size INTEGER,
    payload_size INTEGER,
    url TEXT,
    hop_path TEXT,
    is_seed_redirect INTEGER,
    via TEXT,
    mimetype TEXT,
    content_digest TEXT,
    seed TEXT,
    is_duplicate INTEGER,
    warc_filename TEXT,
    warc_offset INTEGER,
    warc_content_bytes INTEGER,
    host TEXT
);
CREATE INDEX IF NOT EXISTS crawled_url_host ON crawled_url(host);
CREATE INDEX IF NOT EXISTS crawled_url_timestamp ON crawled_url(timestamp);
CREATE VIEW IF NOT EXISTS crawled_urls AS
    SELECT events.id AS id, crawled_url.* FROM crawled_url JOIN events ON events.rowid = crawled_url.rowid;
";
