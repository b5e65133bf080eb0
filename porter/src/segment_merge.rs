//! Merging the replicas of one segment into a single compacted SQLite file, and the
//! [`SegmentSummary`] (count, time range, ids hash, tailers) that goes into its manifest.
//!
//! When any replica is in segment schema version 2 (`contracts::segment_schema`), the
//! merge is version 2, compacted for the archive (contract 8): the union of the replicas'
//! `event` rows in time order (ties by id), `label` numbers remapped by their text, no
//! secondary index (a fetch makes them again: `contracts::segment_sql::create_indexes`),
//! the views last. A version-1 replica among them is first rewritten as version 2: its
//! lines are parsed again with the tailer's parser (`parsers`), so its rows become what a
//! version-2 buck would have written for the same events, and the ids hash is the same.
//!
//! Replicas that are all version 1 (what an older buck left) are merged as they always
//! were, into a version-1 file. That merge does not hard-code the buck's schema: it copies the first replica's schema,
//! then the union of every replica's rows with `INSERT OR IGNORE` (the unique event id
//! drops duplicates). Tables that point at `events` (by a foreign key, an
//! `event_id`/`event_rowid` column, or, as the buck's `crawled_url` does, by sharing the
//! event's rowid, which a view joining `events.rowid = <table>.rowid` declares) are
//! relinked: a row's event has a different rowid
//! in each replica and in the merge, so the link is followed through the event id. Views
//! and triggers are created after the data so that no trigger fires during the copy.
//! The result is written with `VACUUM INTO`, which also compacts it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use contracts::ids_digest::IdsDigest;
use contracts::segment_schema::{
    SEGMENT_SCHEMA_VERSION, SEGMENT_TABLES_V2_SQL, SEGMENT_VIEWS_V2_SQL,
};
use contracts::segment_sql::{self, Labels};
use contracts::{CrawlId, Event, EventFlags, EventId, Format};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::error::PorterError;

/// What the manifest records about a segment's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentSummary {
    /// Number of events.
    pub events: u64,
    /// Earliest `time_us`.
    pub first_time_us: Option<i64>,
    /// Latest `time_us`.
    pub last_time_us: Option<i64>,
    /// sha256 (hex) of the ids sorted bytewise, each followed by `\n`.
    pub ids_sha256: String,
    /// Tailer ids (the part of each id before the first `-`), sorted.
    pub tailers: Vec<String>,
}

/// Most replicas one merge attaches at once. The build raises SQLite's attach limit from
/// 10 to 125 (`SQLITE_MAX_ATTACHED` in .cargo/config.toml, the runtime limit's default);
/// the merge file itself takes no slot. A segment has its homes (2 by default) and any
/// stand-ins as replicas, so 100 leaves room for the largest outage.
pub const MAX_REPLICAS: usize = 100;

fn q(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

struct Column {
    name: String,
    decl: String,
    pk: i64,
}

fn columns(conn: &Connection, schema: &str, table: &str) -> rusqlite::Result<Vec<Column>> {
    let mut stmt = conn.prepare("SELECT name, type, pk FROM pragma_table_info(?1, ?2)")?;
    let rows = stmt.query_map([table, schema], |r| {
        Ok(Column {
            name: r.get(0)?,
            decl: r.get::<_, String>(1)?.to_ascii_uppercase(),
            pk: r.get(2)?,
        })
    })?;
    rows.collect()
}

/// The INTEGER PRIMARY KEY column (a rowid alias) of a table, if it has one.
fn rowid_alias(cols: &[Column]) -> Option<&str> {
    let pks: Vec<&Column> = cols.iter().filter(|c| c.pk > 0).collect();
    match pks.as_slice() {
        [c] if c.decl == "INTEGER" => Some(&c.name),
        _ => None,
    }
}

/// How a table points at its events.
enum Link {
    /// The column holds the event's text id: copy as is.
    ById(String),
    /// The column holds the event's rowid (or rowid alias): remap through the id.
    ByRowid(String),
    /// The row's own rowid is its event's rowid (the buck's `crawled_url`): remap it.
    SameRowid,
}

fn link_of(
    conn: &Connection,
    table: &str,
    cols: &[Column],
    views_sql: &str,
) -> rusqlite::Result<Option<Link>> {
    let mut stmt =
        conn.prepare("SELECT \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?1, 'r0')")?;
    let fks: Vec<(String, String, Option<String>)> = stmt
        .query_map([table], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    if let Some((_, from, to)) = fks.into_iter().find(|(t, _, _)| t == "events") {
        return Ok(Some(match to.as_deref() {
            Some("id") => Link::ById(from),
            _ => Link::ByRowid(from),
        }));
    }
    for name in ["event_rowid", "event_id", "event"] {
        if let Some(c) = cols.iter().find(|c| c.name == name) {
            return Ok(Some(if c.decl.contains("INT") {
                Link::ByRowid(c.name.clone())
            } else {
                Link::ById(c.name.clone())
            }));
        }
    }
    // A view that joins on `events.rowid = <table>.rowid` declares that the two tables
    // share rowids.
    let t = table.to_ascii_lowercase();
    if views_sql.contains(&format!("events.rowid={t}.rowid"))
        || views_sql.contains(&format!("{t}.rowid=events.rowid"))
    {
        return Ok(Some(Link::SameRowid));
    }
    Ok(None)
}

/// Merges `replicas` (SQLite files of one segment) into `out` (which must not exist).
/// On failure nothing is left behind: neither `out` nor its scratch file (a fetch writes
/// them beside its results, where no attempt directory is removed as a whole). A full or
/// read-only file system is a [`PorterError::DiskFault`].
pub fn merge_replicas(
    segment: &str,
    replicas: &[PathBuf],
    out: &Path,
) -> Result<SegmentSummary, PorterError> {
    if replicas.is_empty() || replicas.len() > MAX_REPLICAS {
        return Err(PorterError::segment(
            segment,
            format!(
                "cannot merge {} replicas (1 to {MAX_REPLICAS})",
                replicas.len()
            ),
        ));
    }
    let scratch = out.with_extension("merging");
    let _ = std::fs::remove_file(&scratch);
    let _ = std::fs::remove_file(out);
    let result = merge_into(segment, replicas, &scratch, out);
    // The scratch file goes whatever happened, `out` too when the merge failed.
    let _ = std::fs::remove_file(&scratch);
    if result.is_err() {
        let _ = std::fs::remove_file(out);
    }
    result
}

/// Page size of a merged file: bigger pages hold more rows per page header and cell
/// array; past 16 KiB the last, part-empty page of each table costs more than that saves
/// on small segments (measured: `docs/benchmarks.md`, "Storage").
const MERGED_PAGE_SIZE: u32 = 16_384;

fn merge_into(
    segment: &str,
    replicas: &[PathBuf],
    scratch: &Path,
    out: &Path,
) -> Result<SegmentSummary, PorterError> {
    let mut versions = Vec::with_capacity(replicas.len());
    for r in replicas {
        let v = Connection::open_with_flags(r, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| segment_sql::schema_version(&c, "main"))
            .map_err(|e| {
                PorterError::segment(
                    segment,
                    format!("replica {} is not a readable sqlite file: {e}", r.display()),
                )
            })?;
        if !contracts::segment_schema::READABLE_VERSIONS.contains(&v) {
            return Err(PorterError::segment(
                segment,
                format!(
                    "replica {}: segment schema version {v} is not supported (this porter reads up to {SEGMENT_SCHEMA_VERSION}); upgrade the porter",
                    r.display()
                ),
            ));
        }
        versions.push(v);
    }
    if versions.iter().all(|&v| v == 1) {
        return merge_files(segment, replicas, scratch, out, merge_attached);
    }
    // Version-1 replicas rewritten as version 2, removed whatever happens.
    let mut upgraded = Vec::new();
    let mut inputs = Vec::with_capacity(replicas.len());
    let result = (|| {
        for (i, (r, v)) in replicas.iter().zip(&versions).enumerate() {
            if *v == 1 {
                let to = scratch.with_extension(format!("v1-{i}"));
                upgraded.push(to.clone());
                upgrade_v1(segment, r, &to)?;
                inputs.push(to);
            } else {
                inputs.push(r.clone());
            }
        }
        merge_files(segment, &inputs, scratch, out, merge_attached_v2)
    })();
    for f in upgraded {
        let _ = std::fs::remove_file(f);
    }
    result
}

fn merge_files(
    segment: &str,
    replicas: &[PathBuf],
    scratch: &Path,
    out: &Path,
    merge: fn(&Connection, usize) -> rusqlite::Result<SegmentSummary>,
) -> Result<SegmentSummary, PorterError> {
    let what = format!("merge into {}", out.display());
    let err = |e: rusqlite::Error| PorterError::sqlite(segment, scratch, &what, e);
    let conn = Connection::open_with_flags(
        scratch,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    )
    .map_err(err)?;
    // The scratch file is thrown away on any failure, so it needs no journal.
    // secure_delete makes SQLite zero the unused bytes of every page it writes (VACUUM
    // INTO takes the setting along): otherwise they hold whatever its page buffers held
    // before, which zlib cannot compress (16 KB of a 40 KB object on the real samples).
    conn.execute_batch(&format!(
        "PRAGMA page_size={MERGED_PAGE_SIZE}; PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA secure_delete=ON;"
    ))
    .map_err(err)?;
    for (i, r) in replicas.iter().enumerate() {
        conn.execute(
            &format!("ATTACH DATABASE ?1 AS r{i}"),
            [r.to_string_lossy().as_ref()],
        )
        .map_err(|e| {
            PorterError::segment(
                segment,
                format!("replica {} is not a readable sqlite file: {e}", r.display()),
            )
        })?;
    }
    let summary = merge(&conn, replicas.len()).map_err(err)?;
    for i in 0..replicas.len() {
        conn.execute_batch(&format!("DETACH DATABASE r{i}"))
            .map_err(err)?;
    }
    conn.execute("VACUUM INTO ?1", [out.to_string_lossy().as_ref()])
        .map_err(|e| PorterError::sqlite(segment, out, &what, e))?;
    Ok(summary)
}

/// The columns of version 2's `event` besides `n` and the three `label` numbers.
const V2_PLAIN_COLUMNS: [&str; 25] = [
    "tailer",
    "file_seq",
    "file_offset",
    "time_us",
    "flags",
    "original_len",
    "line",
    "raw",
    "fields",
    "log_time",
    "status",
    "size",
    "url",
    "hop_path",
    "via",
    "mimetype",
    "thread",
    "fetch_time",
    "fetch_start_ago_ms",
    "fetch_duration_ms",
    "digest",
    "source_tag",
    "annotations",
    "extra",
    "url_host",
];

fn merge_attached_v2(conn: &Connection, n: usize) -> rusqlite::Result<SegmentSummary> {
    conn.execute_batch(SEGMENT_TABLES_V2_SQL)?;
    // The unique id drops the copies of an event the replicas share; the archived copy
    // goes without it (and without the other indexes) once the rows are in.
    conn.execute_batch(
        "CREATE UNIQUE INDEX merge_event_id ON event(tailer, file_seq, file_offset)",
    )?;
    for i in 0..n {
        conn.execute_batch(&format!(
            "INSERT OR IGNORE INTO main.meta (key, value) SELECT key, value FROM r{i}.meta;
             INSERT OR IGNORE INTO main.label (text) SELECT text FROM r{i}.label ORDER BY n;"
        ))?;
    }
    conn.execute(
        "INSERT OR REPLACE INTO main.meta (key, value) VALUES ('schema_version', ?1)",
        [SEGMENT_SCHEMA_VERSION.to_string()],
    )?;
    let plain: Vec<String> = V2_PLAIN_COLUMNS.iter().map(|c| format!("e.{c}")).collect();
    let plain = plain.join(", ");
    let arms: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "SELECT {plain}, mh.n AS host, ma.n AS app, mf.n AS format FROM r{i}.event e \
                 JOIN r{i}.label h ON h.n = e.host JOIN main.label mh ON mh.text = h.text \
                 JOIN r{i}.label a ON a.n = e.app JOIN main.label ma ON ma.text = a.text \
                 JOIN r{i}.label f ON f.n = e.format JOIN main.label mf ON mf.text = f.text"
            )
        })
        .collect();
    let cols = V2_PLAIN_COLUMNS.join(", ");
    conn.execute_batch(&format!(
        "INSERT OR IGNORE INTO main.event ({cols}, host, app, format) \
         SELECT {cols}, host, app, format FROM ({}) ORDER BY time_us, tailer, file_seq, file_offset",
        arms.join(" UNION ALL ")
    ))?;
    conn.execute_batch("DROP INDEX merge_event_id")?;
    conn.execute_batch(SEGMENT_VIEWS_V2_SQL)?;
    summarize_conn(conn, "main")
}

/// Rewrites the version-1 segment `from` as a version-2 file `to`: each row becomes the
/// event it was (its line parsed again with the crawl.log parser when it is one) and is
/// written as a version-2 buck writes it. A row's fields JSON is kept as it was where the
/// version-2 row still stores one.
fn upgrade_v1(segment: &str, from: &Path, to: &Path) -> Result<(), PorterError> {
    let _ = std::fs::remove_file(to);
    let what = format!("rewrite {} as schema version 2", from.display());
    let err = |e: rusqlite::Error| PorterError::sqlite(segment, to, &what, e);
    let src = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| PorterError::sqlite(segment, from, &what, e))?;
    let dst = Connection::open(to).map_err(err)?;
    dst.execute_batch("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; BEGIN;")
        .map_err(err)?;
    dst.execute_batch(SEGMENT_TABLES_V2_SQL).map_err(err)?;
    dst.execute_batch(
        "CREATE UNIQUE INDEX IF NOT EXISTS event_id ON event(tailer, file_seq, file_offset)",
    )
    .map_err(err)?;
    let has_meta = src
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
            [],
            |_| Ok(()),
        )
        .optional()
        .map_err(err)?
        .is_some();
    if has_meta {
        let mut stmt = src.prepare("SELECT key, value FROM meta").map_err(err)?;
        let meta: Vec<(String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(err)?;
        for (k, v) in meta {
            dst.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
                (k, v),
            )
            .map_err(err)?;
        }
    }
    // The crawl is not stored per row; any valid id does for building the event.
    let crawl =
        CrawlId::parse("segment").map_err(|e| PorterError::segment(segment, e.to_string()))?;
    let mut labels = Labels::new();
    let mut stmt = src
        .prepare("SELECT id, time_us, host, app, format, flags, original_len, line, raw, fields FROM events ORDER BY rowid")
        .map_err(err)?;
    let mut rows = stmt.query([]).map_err(err)?;
    while let Some(r) = rows.next().map_err(err)? {
        let id: String = r.get(0).map_err(err)?;
        let id: EventId = id
            .parse()
            .map_err(|e| PorterError::segment(segment, format!("{}: {e}", from.display())))?;
        let time_us: i64 = r.get(1).map_err(err)?;
        let format: String = r.get(4).map_err(err)?;
        let line: String = r.get(7).map_err(err)?;
        let raw: Option<Vec<u8>> = r.get(8).map_err(err)?;
        let fields_json: Option<String> = r.get(9).map_err(err)?;
        let raw = raw.unwrap_or_else(|| line.into_bytes());
        let format = Format::from_name(&format).unwrap_or(Format::Plain);
        let fields = if format == Format::CrawlLog {
            let p = parsers::parse_line(parsers::SourceFormat::CrawlLog, &raw, time_us);
            if p.format == Format::CrawlLog && !p.failed {
                p.fields
            } else {
                Vec::new()
            }
        } else {
            Vec::new()
        };
        let ev = Event {
            id,
            time_us,
            flags: EventFlags(r.get::<_, i64>(5).map_err(err)? as u8),
            original_len: r.get::<_, i64>(6).map_err(err)?.max(0) as u64,
            format,
            crawl: crawl.clone(),
            host: r.get(2).map_err(err)?,
            app: r.get(3).map_err(err)?,
            fields,
            raw,
        };
        let row = contracts::segment_row::SegmentRow::of(&ev, fields_json.as_deref());
        segment_sql::insert_row(&dst, &mut labels, &row).map_err(err)?;
    }
    dst.execute_batch("COMMIT").map_err(err)?;
    Ok(())
}

fn merge_attached(conn: &Connection, n: usize) -> rusqlite::Result<SegmentSummary> {
    let schema: Vec<(String, String, String)> = conn
        .prepare("SELECT type, name, sql FROM r0.sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY rowid")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut tables = Vec::new();
    for (kind, name, sql) in &schema {
        if kind == "table" || kind == "index" {
            conn.execute_batch(sql)?;
            if kind == "table" {
                tables.push(name.clone());
            }
        }
    }
    let views_sql: String = schema
        .iter()
        .filter(|(kind, _, _)| kind == "view")
        .map(|(_, _, sql)| {
            sql.to_ascii_lowercase()
                .split_whitespace()
                .collect::<String>()
        })
        .collect();
    let ev_cols = columns(conn, "r0", "events")?;
    if !ev_cols.iter().any(|c| c.name == "id") {
        return Err(rusqlite::Error::InvalidColumnName("events.id".into()));
    }
    let ev_key = rowid_alias(&ev_cols)
        .map(q)
        .unwrap_or_else(|| "rowid".to_string());
    // Events first, in time order across all replicas, so the merged file reads in order
    // and two porters merging the same replicas build the same rows.
    let copy: Vec<String> = ev_cols
        .iter()
        .filter(|c| Some(c.name.as_str()) != rowid_alias(&ev_cols))
        .map(|c| q(&c.name))
        .collect();
    let copy = copy.join(", ");
    let union: Vec<String> = (0..n)
        .map(|i| format!("SELECT {copy} FROM r{i}.events"))
        .collect();
    let order = if ev_cols.iter().any(|c| c.name == "time_us") {
        "time_us, id"
    } else {
        "id"
    };
    conn.execute_batch(&format!(
        "INSERT OR IGNORE INTO main.events ({copy}) SELECT {copy} FROM ({}) ORDER BY {order}",
        union.join(" UNION ALL ")
    ))?;
    for table in tables.iter().filter(|t| t.as_str() != "events") {
        let cols = columns(conn, "r0", table)?;
        let own_key = rowid_alias(&cols).map(str::to_string);
        match link_of(conn, table, &cols, &views_sql)? {
            Some(link) => {
                let link_col = match &link {
                    Link::ById(c) | Link::ByRowid(c) => c.clone(),
                    Link::SameRowid => "rowid".to_string(),
                };
                let others: Vec<&Column> = cols
                    .iter()
                    .filter(|c| c.name != link_col && Some(&c.name) != own_key.as_ref())
                    .collect();
                let other_names: String =
                    others.iter().map(|c| format!(", {}", q(&c.name))).collect();
                let other_src: String = others
                    .iter()
                    .map(|c| format!(", c.{}", q(&c.name)))
                    .collect();
                let l = if link_col == "rowid" {
                    link_col.clone()
                } else {
                    q(&link_col)
                };
                let idx = q(&format!("porter_merge_{table}"));
                if !matches!(link, Link::SameRowid) {
                    conn.execute_batch(&format!("CREATE INDEX {idx} ON {}({l})", q(table)))?;
                }
                for i in 0..n {
                    // Rows of an event come whole from the first replica that has any:
                    // copying them from a second replica too would double them.
                    let sql = match &link {
                        Link::ById(_) => format!(
                            "INSERT OR IGNORE INTO main.{t} ({l}{other_names}) SELECT c.{l}{other_src} FROM r{i}.{t} c \
                             WHERE NOT EXISTS (SELECT 1 FROM main.{t} x WHERE x.{l} = c.{l})",
                            t = q(table),
                        ),
                        Link::ByRowid(_) | Link::SameRowid => format!(
                            "INSERT OR IGNORE INTO main.{t} ({l}{other_names}) SELECT m.{ek}{other_src} FROM r{i}.{t} c \
                             JOIN r{i}.events e ON e.{ek} = c.{l} JOIN main.events m ON m.id = e.id \
                             WHERE NOT EXISTS (SELECT 1 FROM main.{t} x WHERE x.{l} = m.{ek})",
                            t = q(table),
                            ek = ev_key
                        ),
                    };
                    conn.execute_batch(&sql)?;
                }
                if !matches!(link, Link::SameRowid) {
                    conn.execute_batch(&format!("DROP INDEX {idx}"))?;
                }
            }
            None => {
                let names: Vec<String> = cols
                    .iter()
                    .filter(|c| Some(&c.name) != own_key.as_ref())
                    .map(|c| q(&c.name))
                    .collect();
                let names = names.join(", ");
                for i in 0..n {
                    conn.execute_batch(&format!(
                        "INSERT OR IGNORE INTO main.{t} ({names}) SELECT {names} FROM r{i}.{t}",
                        t = q(table)
                    ))?;
                }
            }
        }
    }
    for (kind, _, sql) in &schema {
        if kind == "view" || kind == "trigger" {
            conn.execute_batch(sql)?;
        }
    }
    summarize_conn(conn, "main")
}

/// Makes the secondary indexes a merged or archived copy goes without (contract 8: "rebuilt
/// on fetch"), so a fetched segment answers time ranges and the trough query as the
/// buck's own does. A version-1 file keeps its indexes through a merge: nothing to do.
pub fn make_indexes(segment: &str, path: &Path) -> Result<(), PorterError> {
    let what = "rebuild indexes";
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|e| PorterError::sqlite(segment, path, what, e))?;
    segment_sql::create_indexes(&conn).map_err(|e| PorterError::sqlite(segment, path, what, e))
}

/// Summarizes a segment file (used on files from the archive or a single buck).
pub fn summarize(segment: &str, path: &Path) -> Result<SegmentSummary, PorterError> {
    // Read-write without create: a WAL-mode copy may need its -shm made to be read.
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|e| PorterError::segment(segment, format!("{}: {e}", path.display())))?;
    summarize_conn(&conn, "main")
        .map_err(|e| PorterError::segment(segment, format!("{}: {e}", path.display())))
}

fn summarize_conn(conn: &Connection, schema: &str) -> rusqlite::Result<SegmentSummary> {
    if segment_sql::schema_version(conn, schema)? >= 2 {
        let (ids_sha256, events) = segment_sql::ids_digest(conn, schema)?;
        let (_, first_time_us, last_time_us) = segment_sql::event_stats(conn, schema)?;
        let tailers: Vec<String> = conn
            .prepare(&format!(
                "SELECT DISTINCT printf('%016x', tailer) AS t FROM {schema}.event ORDER BY t"
            ))?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        return Ok(SegmentSummary {
            events,
            first_time_us,
            last_time_us,
            ids_sha256,
            tailers,
        });
    }
    let mut digest = IdsDigest::new();
    let mut tailers = BTreeSet::new();
    // BINARY collation: bytewise order, the same on every machine and the order the ids
    // digest is defined in.
    let mut stmt = conn.prepare(&format!(
        "SELECT id FROM {schema}.events ORDER BY id COLLATE BINARY"
    ))?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let id: String = row.get(0)?;
        digest.push(&id);
        let tailer = id.split('-').next().unwrap_or_default();
        if !tailers.contains(tailer) {
            tailers.insert(tailer.to_string());
        }
    }
    let has_time = columns(conn, schema, "events")?
        .iter()
        .any(|c| c.name == "time_us");
    let (first_time_us, last_time_us) = if has_time {
        conn.query_row(
            &format!("SELECT min(time_us), max(time_us) FROM {schema}.events"),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
    } else {
        (None, None)
    };
    Ok(SegmentSummary {
        events: digest.rows(),
        first_time_us,
        last_time_us,
        ids_sha256: digest.finish(),
        tailers: tailers.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replicas whose link tables point at events by an `event_rowid` column and by an
    /// `event_id` text column; each holds some events the other lacks, in its own order.
    fn replica(path: &Path, ids: &[u32]) {
        let conn = Connection::open(path).expect("open");
        conn.execute_batch(
            "CREATE TABLE events (id TEXT NOT NULL UNIQUE, time_us INTEGER NOT NULL);
             CREATE TABLE crawled_url (event_rowid INTEGER NOT NULL, url TEXT);
             CREATE TABLE notes (event_id TEXT NOT NULL, note TEXT);",
        )
        .expect("schema");
        for i in ids {
            let id = format!("00000000000000aa-1-{i}");
            conn.execute(
                "INSERT INTO events VALUES (?1, ?2)",
                rusqlite::params![id, i],
            )
            .expect("event");
            let rowid = conn.last_insert_rowid();
            // Two rows for even events: a link table may hold several rows per event.
            for k in 0..(1 + (i % 2 == 0) as u32) {
                conn.execute(
                    "INSERT INTO crawled_url VALUES (?1, ?2)",
                    rusqlite::params![rowid, format!("u{i}.{k}")],
                )
                .expect("crawled_url");
            }
            conn.execute(
                "INSERT INTO notes VALUES (?1, ?2)",
                rusqlite::params![id, format!("n{i}")],
            )
            .expect("note");
        }
    }

    /// More replicas than SQLite's default attach limit (10): a crawl whose homes were
    /// down while stand-ins took its lines in turn.
    #[test]
    fn twelve_replicas_merge_into_their_union() {
        let dir = tempfile::tempdir().expect("tempdir");
        let replicas: Vec<PathBuf> = (0..12u32)
            .map(|i| {
                let p = dir.path().join(format!("r{i}"));
                replica(&p, &[i, i + 1]);
                p
            })
            .collect();
        let summary = merge_replicas("t/x", &replicas, &dir.path().join("m")).expect("merge");
        assert_eq!(summary.events, 13);
        assert_eq!(
            (summary.first_time_us, summary.last_time_us),
            (Some(0), Some(12))
        );
    }

    #[test]
    fn link_columns_by_rowid_and_by_id_are_relinked_without_doubling() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b, out) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("m"),
        );
        replica(&a, &[1, 2, 3, 4, 5, 6]);
        replica(&b, &[8, 7, 6, 5, 4, 3, 0]);
        let summary = merge_replicas("t/x", &[a, b], &out).expect("merge");
        assert_eq!(summary.events, 9);
        assert_eq!(
            (summary.first_time_us, summary.last_time_us),
            (Some(0), Some(8))
        );
        let conn = Connection::open(&out).expect("open merged");
        let urls: Vec<(i64, String)> = conn
            .prepare("SELECT e.time_us, c.url FROM crawled_url c JOIN events e ON e.rowid = c.event_rowid ORDER BY 1, 2")
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .map(|r| r.expect("row"))
            .collect();
        let want: Vec<(i64, String)> = (0..=8)
            .flat_map(|i| (0..(1 + (i % 2 == 0) as i64)).map(move |k| (i, format!("u{i}.{k}"))))
            .collect();
        assert_eq!(urls, want);
        let notes: i64 = conn
            .query_row(
                "SELECT count(*) FROM notes n JOIN events e ON e.id = n.event_id",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(notes, 9);
    }
}
