//! The segment file: its schema (version [`SCHEMA_VERSION`], in
//! [`contracts::segment_schema`]), its `meta` table, and how a segment is opened for
//! writing or reading.
//!
//! A new file is made in the current version; a file made by an older buck keeps its
//! version and is written as it was (`contracts::segment_sql::insert_any`), so an upgrade
//! never mixes two layouts in one file. Segments are never VACUUMed (that could renumber
//! rowids); copies are made with the backup API, which keeps pages as they are.

use std::path::Path;

use chrono::NaiveDate;
use contracts::CrawlId;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::error::SegmentError;

/// Page cache of each segment the writer holds open, in KiB (SQLite's default is 2 MiB).
pub const WRITER_CACHE_KIB: u32 = 32 * 1024;

/// Page size of a new segment file, in bytes (SQLite's default is 4096). With 16 KiB
/// pages the writer thread spent 10-15% less CPU per event (`cargo bench --bench
/// ingest`, docs/benchmarks.md, issue 14): fewer B-tree pages to split and fewer WAL
/// frames per commit. A file keeps the page size it was made with.
pub const PAGE_SIZE_BYTES: u32 = 16 * 1024;

/// Version of the segment schema written by this build (`meta.schema_version`).
pub const SCHEMA_VERSION: i64 = contracts::segment_schema::SEGMENT_SCHEMA_VERSION;

const SCHEMA: &str = contracts::segment_schema::SEGMENT_SCHEMA_SQL;
const SCHEMA_V1: &str = contracts::segment_schema::SEGMENT_SCHEMA_V1_SQL;

/// Meta keys. `state` is `open` or `closed`; the `archived_*` keys are written by
/// `POST /segments/../archived`. Pruning after retention will add its own keys.
pub(crate) mod meta {
    pub const SCHEMA_VERSION: &str = "schema_version";
    pub const CRAWL: &str = "crawl";
    pub const DAY: &str = "day";
    pub const PART: &str = "part";
    pub const STATE: &str = "state";
    pub const CREATED_US: &str = "created_us";
    pub const CLOSED_US: &str = "closed_us";
    pub const ARCHIVED_IDS_SHA256: &str = "archived_ids_sha256";
    pub const ARCHIVED_ROWS: &str = "archived_rows";
    pub const ARCHIVED_US: &str = "archived_us";
    pub const ARCHIVED_UNCHANGED: &str = "archived_unchanged";
}

/// Whether a segment still takes events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentState {
    /// Takes events.
    Open,
    /// Immutable: its day (or, for a part, its grace) is over.
    Closed,
    /// Deleted after its retention, once archived and verified unchanged; only a
    /// tombstone (`<name>.sqlite.pruned`) remains, so the name is never reused.
    Pruned,
}

/// Suffix of a pruned segment's tombstone, after the segment's file name.
pub const TOMBSTONE_SUFFIX: &str = ".pruned";

/// Opens (creating if needed) a segment for writing: WAL, `synchronous=NORMAL`.
///
/// Durability: in WAL mode with `synchronous=NORMAL` a commit is atomic and survives a
/// crash of the process (the WAL is written before the commit returns); only a power loss
/// or kernel crash can lose the last commits, since the WAL is fsynced at checkpoints,
/// not at every commit. Acks are sent after commit, so a killed buck never loses acked
/// events. `FULL` would fsync each commit and cut the group-commit rate several-fold for
/// power-loss safety the tailer's spool already gives (a buck that loses acked rows is
/// repaired by the re-sent buckets only while they are still spooled).
pub fn open_for_write(
    path: &Path,
    crawl: &CrawlId,
    day: NaiveDate,
    part: u32,
    now_us: i64,
) -> Result<Connection, SegmentError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| SegmentError::Io {
            path: dir.into(),
            source,
        })?;
    }
    if !path.exists() {
        create_whole(path, crawl, day, part, now_us)?;
    }
    open_existing(path, crawl, day, part, now_us)
}

/// Makes a new segment under a temporary name and renames it into place, so a reader
/// that lists the directory never attaches a file without its tables (a query over the
/// crawl failed with "no such table" for the moment between create and schema).
fn create_whole(
    path: &Path,
    crawl: &CrawlId,
    day: NaiveDate,
    part: u32,
    now_us: i64,
) -> Result<(), SegmentError> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".new");
    let temp = path.with_file_name(name);
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| SegmentError::Io { path: p, source }
    };
    // Left over from a crash between create and rename: it never held an event.
    for leftover in ["", "-wal", "-shm", "-journal"] {
        let mut n = temp.as_os_str().to_os_string();
        n.push(leftover);
        match std::fs::remove_file(&n) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(Path::new(&n))(e)),
        }
    }
    let conn = open_existing(&temp, crawl, day, part, now_us)?;
    // Closing the last connection checkpoints the WAL into the file and removes it.
    conn.close()
        .map_err(|(_, e)| SegmentError::sqlite(&temp)(e))?;
    std::fs::File::open(&temp)
        .and_then(|f| f.sync_all())
        .map_err(io(&temp))?;
    std::fs::rename(&temp, path).map_err(io(path))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(io(dir))?;
    }
    Ok(())
}

/// Opens a segment file for writing, creating its tables and `meta` rows if missing.
fn open_existing(
    path: &Path,
    crawl: &CrawlId,
    day: NaiveDate,
    part: u32,
    now_us: i64,
) -> Result<Connection, SegmentError> {
    let err = SegmentError::sqlite;
    let conn = Connection::open(path).map_err(err(path))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(err(path))?;
    // Only a new, empty file takes it (and only before it is in WAL mode); for any other
    // it changes nothing.
    conn.pragma_update(None, "page_size", PAGE_SIZE_BYTES)
        .map_err(err(path))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(err(path))?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(err(path))?;
    // The id index takes inserts in no particular order; a page cache that holds it
    // avoids re-reading index pages from the OS on every insert.
    conn.pragma_update(None, "cache_size", -(WRITER_CACHE_KIB as i64))
        .map_err(err(path))?;
    // A file that already has tables keeps the version it was made in.
    let version = check_version(&conn, path)?;
    let ddl = if version == Some(1) {
        SCHEMA_V1
    } else {
        SCHEMA
    };
    conn.execute_batch(ddl).map_err(err(path))?;
    let day_text = day.format("%Y-%m-%d").to_string();
    let initial = [
        (meta::SCHEMA_VERSION, SCHEMA_VERSION.to_string()),
        (meta::CRAWL, crawl.to_string()),
        (meta::DAY, day_text),
        (meta::PART, part.to_string()),
        (meta::STATE, "open".to_owned()),
        (meta::CREATED_US, now_us.to_string()),
    ];
    for (k, v) in initial {
        conn.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES (?1, ?2)",
            (k, v),
        )
        .map_err(err(path))?;
    }
    Ok(conn)
}

/// Opens an existing segment read-only.
pub fn open_read_only(path: &Path) -> Result<Connection, SegmentError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(SegmentError::sqlite(path))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(SegmentError::sqlite(path))?;
    Ok(conn)
}

/// The version of a file that has tables (`None` for a new, empty one); an error for a
/// version this build cannot read.
fn check_version(conn: &Connection, path: &Path) -> Result<Option<i64>, SegmentError> {
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .map_err(SegmentError::sqlite(path))?;
    if tables == 0 {
        return Ok(None);
    }
    let unsupported = |found: String| SegmentError::SchemaVersion {
        path: path.into(),
        found,
        supported: SCHEMA_VERSION,
    };
    let v = contracts::segment_sql::schema_version(conn, "main")
        .map_err(|e| unsupported(e.to_string()))?;
    if !contracts::segment_schema::READABLE_VERSIONS.contains(&v) {
        return Err(unsupported(v.to_string()));
    }
    Ok(Some(v))
}

/// The schema version of an open segment.
pub fn version(conn: &Connection, path: &Path) -> Result<i64, SegmentError> {
    Ok(check_version(conn, path)?.unwrap_or(SCHEMA_VERSION))
}

/// A meta value.
pub fn get_meta(conn: &Connection, path: &Path, key: &str) -> Result<Option<String>, SegmentError> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
        .map_err(SegmentError::sqlite(path))
}

/// Sets a meta value.
pub fn set_meta(
    conn: &Connection,
    path: &Path,
    key: &str,
    value: &str,
) -> Result<(), SegmentError> {
    conn.execute("INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))
        .map(|_| ())
        .map_err(SegmentError::sqlite(path))
}

/// The segment's state from its meta (a file without one counts as open).
pub fn read_state(conn: &Connection, path: &Path) -> Result<SegmentState, SegmentError> {
    Ok(match get_meta(conn, path, meta::STATE)?.as_deref() {
        Some("closed") => SegmentState::Closed,
        _ => SegmentState::Open,
    })
}

/// The segment's ids digest ([`contracts::ids_digest`]: what an archive manifest records
/// as `ids_sha256`) and its row count, so a buck can tell whether a segment changed since
/// it was archived. The same events give the same digest in either schema version.
pub fn ids_digest(conn: &Connection, path: &Path) -> Result<(String, u64), SegmentError> {
    contracts::segment_sql::ids_digest(conn, "main").map_err(SegmentError::sqlite(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that finds the file by its name must find its tables too: the file
    /// appears only once it is whole, and a half-made one left by a crash is replaced.
    #[test]
    fn a_new_segment_appears_whole_under_its_name() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("2026-11-21.sqlite");
        let leftover = d.path().join("2026-11-21.sqlite.new");
        std::fs::write(&leftover, b"half a file from a crash").unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        let writer = open_for_write(&path, &CrawlId::parse("c").unwrap(), day, 0, 7).unwrap();
        assert!(!leftover.exists(), "the temporary file stays behind");
        let names: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with("-wal") && !n.ends_with("-shm"))
            .collect();
        assert_eq!(names, vec!["2026-11-21.sqlite".to_owned()]);
        let reader = open_read_only(&path).unwrap();
        let n: i64 = reader
            .query_row("SELECT count(*) FROM crawled_url", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
        let state: String = reader
            .query_row("SELECT value FROM meta WHERE key = 'state'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(state, "open");
        let page: u32 = reader
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap();
        assert_eq!(page, PAGE_SIZE_BYTES);
        drop(writer);
    }

    #[test]
    fn trough_query_runs_as_written_with_double_quoted_literal() {
        // SQLITE_DQS is on in the bundled build, so "www.example.com" is a string here.
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("s.sqlite");
        let day = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        let conn = open_for_write(&path, &CrawlId::parse("c").unwrap(), day, 0, 0).unwrap();
        let mut b = parsers::EventBuilder::new(
            parsers::SourceFormat::CrawlLog,
            1,
            0,
            CrawlId::parse("c").unwrap(),
            "crawler-1".into(),
            "heritrix".into(),
            60_000,
        );
        let mut labels = contracts::segment_sql::Labels::new();
        for (i, (host, status)) in [
            ("www.example.com", 200),
            ("www.example.com", 200),
            ("www.example.com", 404),
            ("other.org", 200),
        ]
        .iter()
        .enumerate()
        {
            let line = format!(
                "2026-11-21T10:00:00.000Z {status:>5} 10 http://{host}/{i} L - text/html #001 20261121095959999+1 - - -"
            );
            let ev = b.build(
                parsers::RawRecord::line(i as u64 * 100, line.into_bytes()),
                1_795_262_400_000_000,
            );
            assert!(contracts::segment_sql::insert_event(&conn, &mut labels, &ev).unwrap());
        }
        let mut stmt = conn.prepare(r#"SELECT count(id) FROM crawled_urls WHERE host = "www.example.com" GROUP BY status_code;"#).unwrap();
        let counts: Vec<i64> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(counts, vec![2, 1]);
        assert_eq!(read_state(&conn, &path).unwrap(), SegmentState::Open);
        assert_eq!(
            get_meta(&conn, &path, meta::SCHEMA_VERSION)
                .unwrap()
                .as_deref(),
            Some("2")
        );
        let (digest, rows) = ids_digest(&conn, &path).unwrap();
        assert_eq!(rows, 4);
        assert_eq!(digest.len(), 64);
    }
}
