//! The segment schema (DESIGN.md contract 6): what every segment file holds, shared by the
//! buck that writes segments and by the agents and tests that read or make them.
//!
//! Every version answers the same names: `events` (`id, time, time_us, host, app, format,
//! flags, original_len, line, raw, fields`), `crawled_url` (the trough feed's columns) and
//! `crawled_urls` (`id` then the `crawled_url` columns), so that readers, the SQL API's
//! `UNION ALL` over files of mixed versions, and this query from the design run unchanged:
//! `SELECT count(id) FROM crawled_urls WHERE host = "www.example.com" GROUP BY status_code;`.
//! `meta` holds the schema version, crawl, day, part and state.
//!
//! # Version 2 (written since issue 13)
//!
//! One table, `event`, one row per event, and `label`, the few host, app and format names.
//! The crawl.log fields are typed columns of `event`, and a line the columns rebuild byte
//! for byte (`printf` in [`CRAWL_LINE_SQL`], the same in Rust in
//! [`crate::segment_row`]) is not stored: `line` is NULL, and so is `fields`, which the
//! views derive. Everything else keeps its line, as version 1 did. `events`,
//! `crawled_url` and `crawled_urls` are views. Why each choice, with the figures:
//! `docs/formats.md`, "Segment".
//!
//! # Version 1
//!
//! [`SEGMENT_SCHEMA_V1_SQL`]: `events` and `crawled_url` tables sharing rowids, the line
//! stored in `line`, its parsed fields as JSON in `fields`, the trough columns again in
//! `crawled_url`. Still read everywhere, and still written into a file that was created
//! as version 1 (a buck upgraded mid-day keeps its open segments' version).

/// Version of the segment schema written by this build (`meta.schema_version`).
pub const SEGMENT_SCHEMA_VERSION: i64 = 2;

/// Every version this build reads.
pub const READABLE_VERSIONS: [i64; 2] = [1, 2];

/// The trough feed's `host`: `url_host`, else derived from the URL. `$e` is the table
/// alias with its dot (`"e."`), or `""` in the index.
macro_rules! url_host_sql {
    ($e:literal) => {
        concat!(
            "coalesce(",
            $e,
            "url_host, CASE WHEN ",
            $e,
            "url GLOB 'dns:*' THEN lower(substr(",
            $e,
            "url, 5)) ELSE lower(substr(substr(",
            $e,
            "url, instr(",
            $e,
            "url, '://') + 3), 1, instr(substr(",
            $e,
            "url, instr(",
            $e,
            "url, '://') + 3) || '/', '/') - 1)) END)"
        )
    };
}

/// The fetch time as Heritrix writes it (`20181126142745781+41`): `fetch_time`, else
/// made of the two integers.
macro_rules! fetch_time_sql {
    () => {
        "coalesce(e.fetch_time, strftime('%Y%m%d%H%M%S', ((e.time_us - ((e.time_us % 1000) + 1000) % 1000) / 1000 - e.fetch_start_ago_ms) / 1000, 'unixepoch') || printf('%03d+%d', ((e.time_us - ((e.time_us % 1000) + 1000) % 1000) / 1000 - e.fetch_start_ago_ms) % 1000, e.fetch_duration_ms))"
    };
}

/// The DDL of a version-1 segment, idempotent (`IF NOT EXISTS`).
pub const SEGMENT_SCHEMA_V1_SQL: &str = "
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

macro_rules! tables_v2_sql {
    () => {
        "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS label (n INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS event (
    n INTEGER PRIMARY KEY,
    tailer INTEGER NOT NULL,
    file_seq INTEGER NOT NULL,
    file_offset INTEGER NOT NULL,
    time_us INTEGER NOT NULL,
    host INTEGER NOT NULL,
    app INTEGER NOT NULL,
    format INTEGER NOT NULL,
    flags INTEGER NOT NULL,
    original_len INTEGER,
    line TEXT,
    raw BLOB,
    fields TEXT,
    log_time TEXT,
    status INTEGER,
    size INTEGER,
    url TEXT,
    hop_path TEXT,
    via TEXT,
    mimetype TEXT,
    thread TEXT,
    fetch_time TEXT,
    fetch_start_ago_ms INTEGER,
    fetch_duration_ms INTEGER,
    digest TEXT,
    source_tag TEXT,
    annotations TEXT,
    extra TEXT,
    url_host TEXT
);
"
    };
}

macro_rules! indexes_v2_sql {
    () => {
        concat!(
            "
CREATE UNIQUE INDEX IF NOT EXISTS event_id ON event(tailer, file_seq, file_offset);
CREATE INDEX IF NOT EXISTS event_time ON event(time_us);
CREATE INDEX IF NOT EXISTS event_url_host ON event(",
            url_host_sql!(""),
            ");
"
        )
    };
}

/// The tables of a version-2 segment, idempotent.
///
/// - `n` is the rowid: arrival order in a buck's segment, time order in an archived copy.
/// - The id is three integers (`tailer` is the tailer id's 64 bits as a signed integer).
/// - `host`, `app` and `format` are `label.n`: a crawl has a handful of each.
/// - `original_len` is NULL when it is the stored or rebuilt line's length in bytes.
/// - `line` is NULL when the crawl.log columns rebuild it byte for byte; `raw` holds the
///   bytes of a line that is not UTF-8 (`line` is then its lossy text), as in version 1.
/// - `fields` is NULL when the crawl.log columns give it; otherwise it is version 1's JSON.
/// - The crawl.log columns are set for every event that has a `crawled_url` row
///   (`status` is not NULL exactly then); `log_time` is NULL when it is `time_us` written
///   as Heritrix writes it, `size` NULL for `-`; `thread` and the fetch time only when the
///   line is rebuilt. The fetch time (`20181126142745781+41`) is two integers,
///   `fetch_start_ago_ms` (the event time minus the fetch start) and
///   `fetch_duration_ms`, with `fetch_time` NULL, whenever they write it back exactly.
/// - `url_host` is the trough feed's `host`, NULL when [`URL_HOST_SQL`] finds it in the
///   URL (lowercased name after `://` up to the first `/`, or after `dns:`); the index on
///   that expression serves the seed query.
pub const SEGMENT_TABLES_V2_SQL: &str = tables_v2_sql!();

/// The secondary indexes of a version-2 segment, idempotent: the unique id (which is what
/// makes a duplicate an ignored insert), time (archie's range reads, `/sql?from=..`), and
/// the trough feed's `host` (the seed query). An archived copy has none of them; a fetch
/// makes them again ([`SEGMENT_INDEXES_V2_SQL`] run on the fetched file).
pub const SEGMENT_INDEXES_V2_SQL: &str = indexes_v2_sql!();

/// Names of the indexes in [`SEGMENT_INDEXES_V2_SQL`], which an archived copy drops.
pub const SEGMENT_INDEX_NAMES_V2: [&str; 3] = ["event_id", "event_time", "event_url_host"];

/// The log time as Heritrix writes it (`2018-11-26T14:27:46.376Z`), from `e.time_us`
/// (whole milliseconds; [`crate::segment_row`] stores `log_time` otherwise).
macro_rules! heritrix_time_sql {
    () => {
        "(strftime('%Y-%m-%dT%H:%M:%S', (e.time_us - ((e.time_us % 1000000) + 1000000) % 1000000) / 1000000, 'unixepoch') || printf('.%03dZ', (((e.time_us % 1000000) + 1000000) % 1000000) / 1000))"
    };
}

/// The crawl.log line rebuilt from the columns: Heritrix's own layout (status right-aligned
/// in 5, size in 10, single spaces, the JSON extra field last when logged).
macro_rules! crawl_line_sql {
    () => {
        concat!(
            "printf('%s %5s %10s %s %s %s %s %s %s %s %s %s', coalesce(e.log_time, ",
            heritrix_time_sql!(),
            "), e.status, coalesce(e.size, '-'), e.url, e.hop_path, e.via, e.mimetype, e.thread, ",
            fetch_time_sql!(),
            ", e.digest, e.source_tag, e.annotations) || coalesce(' ' || e.extra, '')"
        )
    };
}

/// `events.id`: `TAILERHEX-SEQ-OFFSET`, as [`crate::EventId`] displays it.
macro_rules! id_sql {
    () => {
        "printf('%016x-%d-%d', e.tailer, e.file_seq, e.file_offset)"
    };
}

/// Extracts `$.key` from the extra JSON when it is valid JSON and the value has `ty`
/// (`json_extract` raises an error on invalid JSON, and version 1 took only integers and
/// strings): what `CrawledUrl::from_event` does with serde_json.
macro_rules! extra_sql {
    ($key:literal, $ty:literal) => {
        concat!(
            "CASE WHEN json_valid(e.extra) AND json_type(e.extra, '$.",
            $key,
            "') = '",
            $ty,
            "' THEN json_extract(e.extra, '$.",
            $key,
            "') END"
        )
    };
}

/// The `crawled_url` columns, in the trough feed's order.
macro_rules! crawled_url_columns_sql {
    () => {
        concat!(
            "coalesce(e.log_time, ",
            heritrix_time_sql!(),
            ") AS timestamp, e.status AS status_code, coalesce(",
            extra_sql!("contentSize", "integer"),
            ", e.size) AS size, e.size AS payload_size, e.url AS url, e.hop_path AS hop_path, ",
            "coalesce(e.hop_path = 'R', 0) AS is_seed_redirect, nullif(nullif(e.via, '-'), '') AS via, ",
            "nullif(nullif(e.mimetype, '-'), '') AS mimetype, nullif(nullif(e.digest, '-'), '') AS content_digest, ",
            "nullif(nullif(e.source_tag, '-'), '') AS seed, ",
            "coalesce((',' || e.annotations) GLOB '*,duplicate:*' OR (',' || e.annotations || ',') GLOB '*,warcRevisit,*', 0) AS is_duplicate, ",
            extra_sql!("warcFilename", "text"),
            " AS warc_filename, ",
            extra_sql!("warcFileOffset", "integer"),
            " AS warc_offset, ",
            extra_sql!("warcFileRecordLength", "integer"),
            " AS warc_content_bytes, ",
            url_host_sql!("e."),
            " AS host"
        )
    };
}

/// The trough feed's `host` of a version-2 row (SQL over the alias `e` of `event`);
/// [`crate::segment_row::sql_url_host`] is the same in Rust.
pub const URL_HOST_SQL: &str = url_host_sql!("e.");

/// A version-2 crawl.log line rebuilt from its columns (SQL over the alias `e` of
/// `event`); [`crate::segment_row::rebuild_crawl_line`] is the same in Rust.
pub const CRAWL_LINE_SQL: &str = crawl_line_sql!();

/// The fields of a rebuilt crawl.log line as version 1's JSON (keys in span order).
macro_rules! crawl_fields_sql {
    () => {
        concat!(
            "'log_time', coalesce(e.log_time, ",
            heritrix_time_sql!(),
            "), 'status', CAST(e.status AS TEXT), 'size', coalesce(CAST(e.size AS TEXT), '-'), 'url', e.url, 'hop_path', e.hop_path, ",
            "'via', e.via, 'mimetype', e.mimetype, 'thread', e.thread, 'fetch_time', ",
            fetch_time_sql!(),
            ", 'digest', e.digest, ",
            "'source_tag', e.source_tag, 'annotations', e.annotations"
        )
    };
}

macro_rules! views_v2_sql {
    () => {
        concat!(
            "CREATE VIEW IF NOT EXISTS events AS SELECT ",
            id_sql!(),
            " AS id, strftime('%Y-%m-%dT%H:%M:%S', (e.time_us - ((e.time_us % 1000000) + 1000000) % 1000000) / 1000000, 'unixepoch') || printf('.%06dZ', ((e.time_us % 1000000) + 1000000) % 1000000) AS time, ",
            "e.time_us AS time_us, h.text AS host, a.text AS app, f.text AS format, e.flags AS flags, ",
            "coalesce(e.original_len, length(CAST(coalesce(e.raw, e.line, ",
            crawl_line_sql!(),
            ") AS BLOB))) AS original_len, coalesce(e.line, ",
            crawl_line_sql!(),
            ") AS line, e.raw AS raw, coalesce(e.fields, CASE WHEN e.extra IS NULL THEN json_object(",
            crawl_fields_sql!(),
            ") ELSE json_object(",
            crawl_fields_sql!(),
            ", 'extra', e.extra) END) AS fields ",
            "FROM event e JOIN label h ON h.n = e.host JOIN label a ON a.n = e.app JOIN label f ON f.n = e.format;\n",
            "CREATE VIEW IF NOT EXISTS crawled_url AS SELECT ",
            crawled_url_columns_sql!(),
            " FROM event e WHERE e.status IS NOT NULL;\n",
            "CREATE VIEW IF NOT EXISTS crawled_urls AS SELECT ",
            id_sql!(),
            " AS id, ",
            crawled_url_columns_sql!(),
            " FROM event e WHERE e.status IS NOT NULL;\n"
        )
    };
}

/// The views of a version-2 segment, idempotent: the names and columns of version 1.
pub const SEGMENT_VIEWS_V2_SQL: &str = views_v2_sql!();

/// The DDL of a version-2 segment as the buck writes it: tables, indexes, views.
pub const SEGMENT_SCHEMA_SQL: &str = concat!(tables_v2_sql!(), indexes_v2_sql!(), views_v2_sql!());
