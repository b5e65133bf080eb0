//! Segment rows through rusqlite (feature `sqlite`): inserting an event into a segment of
//! either version, and what every reader needs whatever the version (ids digest, count and
//! time range, looking up one id, the indexes an archived copy leaves out).
//!
//! Queries that only read go through the `events` and `crawled_url` names, which every
//! version answers; what would be slow through version 2's views (a count, a lookup by
//! id, every id) reads the `event` table directly.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, Statement, params};

use crate::crawled_url::CrawledUrl;
use crate::ids_digest::IdsDigest;
use crate::segment_row::SegmentRow;
use crate::segment_schema::{SEGMENT_INDEX_NAMES_V2, SEGMENT_INDEXES_V2_SQL};
use crate::{Event, EventId};

/// The schema version of the segment attached as `schema` (`main` for the file itself):
/// `meta.schema_version`, or, in a file without one, 2 if it has version 2's `event`
/// table and 1 otherwise. A version that is not a number is an error naming it.
pub fn schema_version(conn: &Connection, schema: &str) -> rusqlite::Result<i64> {
    let has = |name: &str| -> rusqlite::Result<bool> {
        conn.query_row(
            &format!("SELECT 1 FROM {schema}.sqlite_master WHERE type = 'table' AND name = ?1"),
            [name],
            |_| Ok(()),
        )
        .optional()
        .map(|r| r.is_some())
    };
    let value: Option<String> = if has("meta")? {
        conn.query_row(
            &format!("SELECT value FROM {schema}.meta WHERE key = 'schema_version'"),
            [],
            |r| r.get(0),
        )
        .optional()?
    } else {
        None
    };
    match value {
        Some(v) => v.trim().parse().map_err(|_| {
            rusqlite::Error::InvalidParameterName(format!(
                "segment schema version {v:?} is not a number"
            ))
        }),
        None if has("event")? => Ok(2),
        None => Ok(1),
    }
}

/// `label` numbers of one segment file, cached: a crawl has a handful of hosts, apps and
/// formats, so after the first rows every lookup is a hash hit. Belongs to one
/// connection, and must be dropped with it when a transaction rolls back (its new labels
/// are then gone from the file).
#[derive(Debug, Default)]
pub struct Labels {
    known: HashMap<String, i64>,
    /// The labels found last, compared before hashing: a row's host, app and format are
    /// nearly always those of the row before, and hashing them was 2% of the writer.
    recent: Vec<(String, i64)>,
}

/// How many labels [`Labels`] compares before hashing.
const RECENT_LABELS: usize = 4;

impl Labels {
    /// An empty cache.
    pub fn new() -> Labels {
        Labels::default()
    }

    /// The number of `text` in the `label` table of `conn`'s main database, added if new.
    pub fn number(&mut self, conn: &Connection, text: &str) -> rusqlite::Result<i64> {
        if let Some((_, n)) = self.recent.iter().find(|(t, _)| t == text) {
            return Ok(*n);
        }
        if let Some(&n) = self.known.get(text) {
            self.remember(text, n);
            return Ok(n);
        }
        conn.prepare_cached("INSERT OR IGNORE INTO label(text) VALUES (?1)")?
            .execute([text])?;
        let n: i64 = conn
            .prepare_cached("SELECT n FROM label WHERE text = ?1")?
            .query_row([text], |r| r.get(0))?;
        self.known.insert(text.to_owned(), n);
        self.remember(text, n);
        Ok(n)
    }

    fn remember(&mut self, text: &str, n: i64) {
        if self.recent.len() == RECENT_LABELS {
            self.recent.remove(0);
        }
        self.recent.push((text.to_owned(), n));
    }
}

/// The statement that inserts a row into a version-2 segment, for
/// [`insert_row_with`]; a row whose id is already there is ignored.
pub const INSERT_ROW_SQL: &str = "INSERT OR IGNORE INTO event(tailer, file_seq, file_offset, time_us, host, app, format, flags, original_len,
    line, raw, fields, log_time, status, size, url, hop_path, via, mimetype, thread, fetch_time,
    fetch_start_ago_ms, fetch_duration_ms, digest, source_tag, annotations, extra, url_host)
 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
    ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28)";

/// Inserts `row` into a version-2 segment; `false` when its id is already there.
pub fn insert_row(
    conn: &Connection,
    labels: &mut Labels,
    row: &SegmentRow<'_>,
) -> rusqlite::Result<bool> {
    insert_row_with(
        &mut *conn.prepare_cached(INSERT_ROW_SQL)?,
        conn,
        labels,
        row,
    )
}

/// Binds `value` to parameter `i` when there is one; the parameter stays NULL otherwise.
fn bind_set<T: rusqlite::ToSql>(
    stmt: &mut Statement<'_>,
    i: usize,
    value: Option<T>,
) -> rusqlite::Result<()> {
    match value {
        Some(v) => stmt.raw_bind_parameter(i, v),
        None => Ok(()),
    }
}

/// [`insert_row`] with `stmt`, [`INSERT_ROW_SQL`] prepared on `conn`: a writer inserting
/// many rows holds one statement for all of them instead of finding it again by its text
/// for each, and binds only the columns the row sets (the rest are cleared to NULL).
pub fn insert_row_with(
    stmt: &mut Statement<'_>,
    conn: &Connection,
    labels: &mut Labels,
    row: &SegmentRow<'_>,
) -> rusqlite::Result<bool> {
    let host = labels.number(conn, row.host)?;
    let app = labels.number(conn, row.app)?;
    let format = labels.number(conn, row.format)?;
    stmt.clear_bindings();
    stmt.raw_bind_parameter(1, row.tailer)?;
    stmt.raw_bind_parameter(2, row.file_seq)?;
    stmt.raw_bind_parameter(3, row.file_offset)?;
    stmt.raw_bind_parameter(4, row.time_us)?;
    stmt.raw_bind_parameter(5, host)?;
    stmt.raw_bind_parameter(6, app)?;
    stmt.raw_bind_parameter(7, format)?;
    stmt.raw_bind_parameter(8, row.flags)?;
    bind_set(stmt, 9, row.original_len)?;
    bind_set(stmt, 10, row.line.as_deref())?;
    bind_set(stmt, 11, row.raw)?;
    bind_set(stmt, 12, row.fields.as_deref())?;
    if let Some(c) = &row.crawl {
        bind_set(stmt, 13, c.log_time.as_deref())?;
        stmt.raw_bind_parameter(14, c.status)?;
        bind_set(stmt, 15, c.size)?;
        stmt.raw_bind_parameter(16, c.url.as_ref())?;
        bind_set(stmt, 17, c.hop_path.as_deref())?;
        bind_set(stmt, 18, c.via.as_deref())?;
        bind_set(stmt, 19, c.mimetype.as_deref())?;
        bind_set(stmt, 20, c.thread.as_deref())?;
        match c.fetch_parts {
            Some((ago, duration)) => {
                stmt.raw_bind_parameter(22, ago)?;
                stmt.raw_bind_parameter(23, duration)?;
            }
            None => bind_set(stmt, 21, c.fetch_time.as_deref())?,
        }
        bind_set(stmt, 24, c.digest.as_deref())?;
        bind_set(stmt, 25, c.source_tag.as_deref())?;
        bind_set(stmt, 26, c.annotations.as_deref())?;
        bind_set(stmt, 27, c.extra.as_deref())?;
        bind_set(stmt, 28, c.url_host.as_deref())?;
    }
    Ok(stmt.raw_execute()? > 0)
}

/// Inserts `ev` into a version-2 segment; `false` when its id is already there.
pub fn insert_event(conn: &Connection, labels: &mut Labels, ev: &Event) -> rusqlite::Result<bool> {
    insert_row(conn, labels, &SegmentRow::of(ev, None))
}

/// Inserts `ev` (and its `crawled_url` row) into a version-1 segment, as the buck did
/// before version 2: a buck upgraded mid-day goes on filling its open version-1 files.
pub fn insert_event_v1(conn: &Connection, ev: &Event) -> rusqlite::Result<bool> {
    let id = ev.id.to_string();
    let time = ev
        .time()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let (line, raw) = match std::str::from_utf8(&ev.raw) {
        Ok(s) => (std::borrow::Cow::Borrowed(s), None),
        Err(_) => (String::from_utf8_lossy(&ev.raw), Some(ev.raw.as_slice())),
    };
    let fields = crate::segment_row::fields_json(ev);
    let n = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO events(id, time, time_us, host, app, format, flags, original_len, line, raw, fields)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?
        .execute(params![
            id,
            time,
            ev.time_us,
            ev.host,
            ev.app,
            ev.format.name(),
            ev.flags.0,
            ev.original_len as i64,
            line,
            raw,
            fields
        ])?;
    if n == 0 {
        return Ok(false);
    }
    if let Some(c) = CrawledUrl::from_event(ev) {
        let rowid = conn.last_insert_rowid();
        conn.prepare_cached(
            "INSERT INTO crawled_url(rowid, timestamp, status_code, size, payload_size, url, hop_path, is_seed_redirect, via,
                mimetype, content_digest, seed, is_duplicate, warc_filename, warc_offset, warc_content_bytes, host)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        )?
        .execute(params![
            rowid,
            c.timestamp,
            c.status_code,
            c.size,
            c.payload_size,
            c.url,
            c.hop_path,
            c.is_seed_redirect,
            c.via,
            c.mimetype,
            c.content_digest,
            c.seed,
            c.is_duplicate,
            c.warc_filename,
            c.warc_offset,
            c.warc_content_bytes,
            c.host
        ])?;
    }
    Ok(true)
}

/// Inserts `ev` into a segment of `version` (1 or 2).
pub fn insert_any(
    conn: &Connection,
    version: i64,
    labels: &mut Labels,
    ev: &Event,
) -> rusqlite::Result<bool> {
    if version == 1 {
        insert_event_v1(conn, ev)
    } else {
        insert_event(conn, labels, ev)
    }
}

/// Whether the segment (of `version`) holds the event `id`.
pub fn contains_id(conn: &Connection, version: i64, id: &EventId) -> rusqlite::Result<bool> {
    if version != 1 {
        return contains_id_with(&mut *conn.prepare_cached(CONTAINS_ID_SQL)?, id);
    }
    Ok(conn
        .prepare_cached("SELECT 1 FROM events WHERE id = ?1")?
        .query_row([id.to_string()], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The statement that looks an id up in a version-2 segment, for [`contains_id_with`].
pub const CONTAINS_ID_SQL: &str =
    "SELECT 1 FROM event WHERE tailer = ?1 AND file_seq = ?2 AND file_offset = ?3";

/// Whether a version-2 segment holds the event `id`, with `stmt`, [`CONTAINS_ID_SQL`]
/// prepared on its connection and held for many lookups.
pub fn contains_id_with(stmt: &mut Statement<'_>, id: &EventId) -> rusqlite::Result<bool> {
    Ok(stmt
        .query_row(
            params![id.tailer as i64, id.file_seq as i64, id.offset as i64],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// The ids digest ([`crate::ids_digest`]) of the segment attached as `schema`, and its
/// number of events. The same events give the same digest in every version: it is over
/// the ids' text, sorted bytewise.
pub fn ids_digest(conn: &Connection, schema: &str) -> rusqlite::Result<(String, u64)> {
    let mut digest = IdsDigest::new();
    if schema_version(conn, schema)? == 1 {
        // BINARY collation: bytewise, the order the digest is defined in.
        let mut stmt = conn.prepare(&format!(
            "SELECT id FROM {schema}.events ORDER BY id COLLATE BINARY"
        ))?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            digest.push(r.get_ref(0)?.as_str()?);
        }
    } else {
        let mut ids: Vec<String> = conn
            .prepare(&format!(
                "SELECT tailer, file_seq, file_offset FROM {schema}.event"
            ))?
            .query_map([], |r| {
                Ok(EventId {
                    tailer: r.get::<_, i64>(0)? as u64,
                    file_seq: r.get::<_, i64>(1)? as u64,
                    offset: r.get::<_, i64>(2)? as u64,
                }
                .to_string())
            })?
            .collect::<rusqlite::Result<_>>()?;
        ids.sort_unstable();
        for id in &ids {
            digest.push(id);
        }
    }
    let n = digest.rows();
    Ok((digest.finish(), n))
}

/// Number of events and their earliest and latest `time_us`.
pub fn event_stats(
    conn: &Connection,
    schema: &str,
) -> rusqlite::Result<(u64, Option<i64>, Option<i64>)> {
    let table = if schema_version(conn, schema)? == 1 {
        "events"
    } else {
        "event"
    };
    conn.query_row(
        &format!("SELECT count(*), min(time_us), max(time_us) FROM {schema}.{table}"),
        [],
        |r| Ok((r.get::<_, i64>(0)?.max(0) as u64, r.get(1)?, r.get(2)?)),
    )
}

/// Number of events with `from_us <= time_us < to_us`.
pub fn count_in_range(conn: &Connection, from_us: i64, to_us: i64) -> rusqlite::Result<u64> {
    let table = if schema_version(conn, "main")? == 1 {
        "events"
    } else {
        "event"
    };
    conn.query_row(
        &format!("SELECT count(*) FROM {table} WHERE time_us >= ?1 AND time_us < ?2"),
        (from_us, to_us),
        |r| Ok(r.get::<_, i64>(0)?.max(0) as u64),
    )
}

/// Makes the secondary indexes of a version-2 segment that lacks them (an archived,
/// compacted copy); does nothing to a version-1 one, whose copies keep theirs.
pub fn create_indexes(conn: &Connection) -> rusqlite::Result<()> {
    if schema_version(conn, "main")? >= 2 {
        conn.execute_batch(SEGMENT_INDEXES_V2_SQL)?;
    }
    Ok(())
}

/// Drops the secondary indexes of a version-2 segment (for an archived copy: smaller, and
/// cheaper to make again on fetch than to store).
pub fn drop_indexes(conn: &Connection) -> rusqlite::Result<()> {
    for name in SEGMENT_INDEX_NAMES_V2 {
        conn.execute_batch(&format!("DROP INDEX IF EXISTS {name}"))?;
    }
    Ok(())
}

/// One event as a bulk reader (archie's index) takes it: what the `events` view gives,
/// without `raw` and `fields`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLine {
    /// Event time.
    pub time_us: i64,
    /// `TAILERHEX-SEQ-OFFSET`.
    pub id: String,
    /// Host name (shared: a segment has a handful).
    pub host: Arc<str>,
    /// App name.
    pub app: Arc<str>,
    /// Format name.
    pub format: Arc<str>,
    /// Flag bits.
    pub flags: i64,
    /// The line (lossy text when not UTF-8, as `events.line`).
    pub line: String,
}

/// Reads the events of a segment with `from_us <= time_us < to_us` in time order (ties in
/// row order), whatever its version. On version 2 it reads the `event` table and rebuilds
/// lines in Rust ([`crate::segment_row::rebuild_crawl_line`], the same layout as the
/// views' SQL, which costs several times more per row).
#[derive(Debug)]
pub struct EventLines {
    version: i64,
    labels: HashMap<i64, Arc<str>>,
}

const RANGE_V1_SQL: &str = "SELECT time_us, id, host, app, format, flags, line FROM events \
     WHERE time_us >= ?1 AND time_us < ?2 ORDER BY time_us";

/// The columns of a version-2 `event` row (alias `e`) that a crawl.log line is rebuilt
/// from, in the order [`rebuild_stored_line`] reads them. A macro, so that a query can
/// `concat!` it.
macro_rules! crawl_columns_sql {
    () => {
        "e.log_time, e.status, e.size, e.url, e.hop_path, e.via, e.mimetype, e.thread, \
         e.fetch_time, e.fetch_start_ago_ms, e.fetch_duration_ms, e.digest, e.source_tag, \
         e.annotations, e.extra"
    };
}
pub(crate) use crawl_columns_sql;

/// How many columns [`crawl_columns_sql`] selects.
const CRAWL_COLUMNS: usize = 15;

/// The crawl.log line of a version-2 row stored as columns (its `line` is NULL): the
/// [`crawl_columns_sql`] columns, selected from column `first` on, made into the line the
/// views make ([`crate::segment_row::rebuild_crawl_line`]). `None` when the row has no
/// status or URL (it was not stored as columns) or lacks a field the layout needs.
pub(crate) fn rebuild_stored_line(
    r: &rusqlite::Row<'_>,
    first: usize,
    time_us: i64,
) -> rusqlite::Result<Option<String>> {
    if r.as_ref().column_count() < first + CRAWL_COLUMNS {
        return Ok(None);
    }
    let s = |i: usize| -> rusqlite::Result<Option<std::borrow::Cow<'_, str>>> {
        Ok(r.get_ref(first + i)?
            .as_str_or_null()?
            .map(std::borrow::Cow::Borrowed))
    };
    let Some(status) = r.get::<_, Option<i64>>(first + 1)? else {
        return Ok(None);
    };
    let Some(url) = s(3)? else {
        return Ok(None);
    };
    let fetch_parts = match (
        r.get::<_, Option<i64>>(first + 9)?,
        r.get::<_, Option<i64>>(first + 10)?,
    ) {
        (Some(ago), Some(duration)) => Some((ago, duration)),
        _ => None,
    };
    let c = crate::segment_row::CrawlColumns {
        log_time: s(0)?,
        status,
        size: r.get(first + 2)?,
        url,
        hop_path: s(4)?,
        via: s(5)?,
        mimetype: s(6)?,
        thread: s(7)?,
        fetch_time: s(8)?,
        fetch_parts,
        digest: s(11)?,
        source_tag: s(12)?,
        annotations: s(13)?,
        extra: s(14)?,
        url_host: None,
    };
    Ok(crate::segment_row::rebuild_crawl_line(&c, time_us))
}

const RANGE_V2_SQL: &str = concat!(
    "SELECT e.time_us, e.tailer, e.file_seq, e.file_offset, e.host, e.app, e.format, e.flags, e.line, ",
    crawl_columns_sql!(),
    " FROM event e WHERE e.time_us >= ?1 AND e.time_us < ?2 ORDER BY e.time_us"
);

impl EventLines {
    /// A reader of the segment open on `conn`.
    pub fn new(conn: &Connection) -> rusqlite::Result<EventLines> {
        let version = schema_version(conn, "main")?;
        if !crate::segment_schema::READABLE_VERSIONS.contains(&version) {
            return Err(rusqlite::Error::InvalidParameterName(format!(
                "segment schema version {version} is not supported (this build reads up to {}); upgrade it",
                crate::segment_schema::SEGMENT_SCHEMA_VERSION
            )));
        }
        let mut labels = HashMap::new();
        if version >= 2 {
            let mut stmt = conn.prepare("SELECT n, text FROM label")?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                labels.insert(r.get(0)?, Arc::from(r.get::<_, String>(1)?));
            }
        }
        Ok(EventLines { version, labels })
    }

    /// The query to run with `(from_us, to_us)`; its rows go to [`EventLines::read`].
    pub fn sql(&self) -> &'static str {
        if self.version == 1 {
            RANGE_V1_SQL
        } else {
            RANGE_V2_SQL
        }
    }

    /// One row of [`EventLines::sql`].
    pub fn read(&self, r: &rusqlite::Row<'_>) -> rusqlite::Result<EventLine> {
        let text = |i: usize| -> rusqlite::Result<String> {
            Ok(match r.get_ref(i)? {
                rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                    String::from_utf8_lossy(t).into_owned()
                }
                rusqlite::types::ValueRef::Null => String::new(),
                v => format!("{v:?}"),
            })
        };
        if self.version == 1 {
            return Ok(EventLine {
                time_us: r.get(0)?,
                id: text(1)?,
                host: Arc::from(text(2)?),
                app: Arc::from(text(3)?),
                format: Arc::from(text(4)?),
                flags: r.get::<_, Option<i64>>(5)?.unwrap_or(0),
                line: text(6)?,
            });
        }
        let time_us: i64 = r.get(0)?;
        let label = |i: usize| -> rusqlite::Result<Arc<str>> {
            let n: i64 = r.get(i)?;
            Ok(self
                .labels
                .get(&n)
                .cloned()
                .unwrap_or_else(|| Arc::from("")))
        };
        let line = match r.get_ref(8)? {
            rusqlite::types::ValueRef::Null => {
                rebuild_stored_line(r, 9, time_us)?.unwrap_or_default()
            }
            _ => text(8)?,
        };
        Ok(EventLine {
            time_us,
            id: EventId {
                tailer: r.get::<_, i64>(1)? as u64,
                file_seq: r.get::<_, i64>(2)? as u64,
                offset: r.get::<_, i64>(3)? as u64,
            }
            .to_string(),
            host: label(4)?,
            app: label(5)?,
            format: label(6)?,
            flags: r.get(7)?,
            line,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment_schema::{SEGMENT_SCHEMA_SQL, SEGMENT_SCHEMA_V1_SQL};
    use crate::{CrawlId, EventFlags, Format};

    fn event(offset: u64, format: Format, raw: &[u8]) -> Event {
        Event {
            id: EventId {
                tailer: 0xfeed_0000_0000_0001,
                file_seq: 1,
                offset,
            },
            time_us: 1_543_242_466_376_000,
            flags: EventFlags::default(),
            original_len: raw.len() as u64,
            format,
            crawl: CrawlId::parse("c").unwrap(),
            host: "crawler-1".into(),
            app: "app".into(),
            fields: vec![],
            raw: raw.to_vec(),
        }
    }

    #[test]
    fn both_versions_give_the_same_ids_digest_and_rows_through_events() {
        let v1 = Connection::open_in_memory().unwrap();
        v1.execute_batch(SEGMENT_SCHEMA_V1_SQL).unwrap();
        let v2 = Connection::open_in_memory().unwrap();
        v2.execute_batch(SEGMENT_SCHEMA_SQL).unwrap();
        v2.execute("INSERT INTO meta VALUES ('schema_version', '2')", [])
            .unwrap();
        let mut labels = Labels::new();
        // Offsets 9 and 10 sort as text "10" < "9": the digest must follow the text.
        let evs = [
            event(9, Format::Plain, b"nine"),
            event(10, Format::Plain, b"caf\xe9"),
            event(10, Format::Plain, b"duplicate id"),
        ];
        for e in &evs {
            insert_event_v1(&v1, e).unwrap();
            insert_event(&v2, &mut labels, e).unwrap();
        }
        assert_eq!(schema_version(&v1, "main").unwrap(), 1);
        assert_eq!(schema_version(&v2, "main").unwrap(), 2);
        let d1 = ids_digest(&v1, "main").unwrap();
        assert_eq!(d1, ids_digest(&v2, "main").unwrap());
        assert_eq!(d1.1, 2);
        let q = "SELECT id, time, time_us, host, app, format, flags, original_len, line, raw, fields FROM events ORDER BY id";
        let rows = |c: &Connection| -> Vec<Vec<rusqlite::types::Value>> {
            c.prepare(q)
                .unwrap()
                .query_map([], |r| (0..11).map(|i| r.get(i)).collect())
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        assert_eq!(rows(&v1), rows(&v2));
        for c in [&v1, &v2] {
            let reader = EventLines::new(c).unwrap();
            let mut stmt = c.prepare(reader.sql()).unwrap();
            let got: Vec<EventLine> = stmt
                .query_map((i64::MIN, i64::MAX), |r| reader.read(r))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert_eq!(got.len(), 2);
            assert_eq!(got[1].line, "caf\u{fffd}");
            assert_eq!(got[0].id, evs[0].id.to_string());
        }
        assert_eq!(event_stats(&v2, "main").unwrap().0, 2);
        assert!(contains_id(&v2, 2, &evs[0].id).unwrap());
        assert!(contains_id(&v1, 1, &evs[0].id).unwrap());
    }

    fn plan(conn: &Connection, sql: &str) -> String {
        conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The seed query finds its rows through the host index, through the views and
    /// through a `UNION ALL` as the SQL API builds it; a query over every `crawled_url`
    /// row scans the table instead of visiting it row by row through an index.
    #[test]
    fn the_seed_query_uses_the_host_index_and_a_full_scan_does_not() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("s.sqlite");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(SEGMENT_SCHEMA_SQL).unwrap();
        let seed = r#"SELECT count(id) FROM crawled_urls WHERE host = "www.example.com" GROUP BY status_code"#;
        assert!(
            plan(&conn, seed).contains("USING INDEX event_url_host"),
            "{}",
            plan(&conn, seed)
        );
        let all = "SELECT status_code, count(*) FROM crawled_urls GROUP BY status_code";
        assert!(
            !plan(&conn, all).contains("USING INDEX"),
            "{}",
            plan(&conn, all)
        );
        let q = Connection::open_in_memory().unwrap();
        q.execute(
            "ATTACH DATABASE ?1 AS s0",
            [path.to_string_lossy().as_ref()],
        )
        .unwrap();
        q.execute(
            "ATTACH DATABASE ?1 AS s1",
            [path.to_string_lossy().as_ref()],
        )
        .unwrap();
        q.execute_batch(
            "CREATE TEMP VIEW crawled_urls AS SELECT * FROM s0.crawled_urls UNION ALL SELECT * FROM s1.crawled_urls",
        )
        .unwrap();
        let p = plan(&q, seed);
        assert_eq!(p.matches("USING INDEX event_url_host").count(), 2, "{p}");
    }
}
