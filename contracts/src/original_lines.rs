//! The original lines of a crawl's day back out of its segment files, byte for byte, in
//! the order they were written: what the buck's `GET /export` and `sluice export` stream.
//!
//! # Which bytes
//!
//! A line comes back as the tailer read it: `raw` when the line was not UTF-8 (the
//! segment keeps those bytes, and a lossy text only for SQL), else the stored `line`, else
//! (schema version 2) the crawl.log line rebuilt from its columns, which the writer stored
//! that way only because the rebuild gives back its exact bytes
//! ([`crate::segment_row::rebuild_crawl_line`]). A multi-line record is one event whose
//! bytes hold its inner newlines. Each line is followed by `\n`. A line cut to fit one
//! frame (`truncated`, `original_len` > its bytes) comes back cut: the rest never reached
//! the buck.
//!
//! # In what order
//!
//! An event's id is (tailer, file seq, offset); a (tailer, file seq) is one source file
//! (a rotated copy keeps its seq). Within a source file, lines come in offset order: the
//! order they were written, whatever their times. Between source files, the next line is
//! the one, among each file's next line, with the earliest event time, ties broken by
//! (tailer, file seq): a merge by time that never reorders one file. One call covers one
//! day's files (the segment and its part files `.pN`, in which a late event of a file can
//! sit); callers go day by day. The same id in two files (a late duplicate) comes once.
//!
//! Memory stays bounded: each (file, source file) cursor reads a page of lines at a time
//! by keyset (`file_offset > last`), over the segment's unique id index.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::path::{Path, PathBuf};

use rusqlite::functions::FunctionFlags;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OpenFlags};

use crate::EventId;
use crate::segment_schema::{READABLE_VERSIONS, SEGMENT_SCHEMA_VERSION, URL_HOST_SQL};
use crate::segment_sql::{crawl_columns_sql, rebuild_stored_line, schema_version};
use crate::status_filter::StatusFilter;

/// Lines held per cursor page, before dividing by the number of cursors.
const PAGE_LINES_BUDGET: usize = 64 * 1024;

/// Which lines to write. Both filters apply to crawl.log lines only (the trough feed's
/// `host` and `status_code`, as `crawled_urls` answers them); another line never passes
/// a filter that is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineFilter {
    /// The crawled URL's host (`crawled_urls.host`), case-insensitive.
    pub url_host: Option<String>,
    /// The fetch status ([`crate::status_filter`]).
    pub status: Option<StatusFilter>,
}

/// Why lines could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum OriginalLinesError {
    /// A segment file could not be opened or read.
    #[error("segment {path}: {source}")]
    Segment {
        /// The file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A segment of a schema version this build does not read.
    #[error(
        "segment {path}: schema version {version} is not supported (this build reads up to {SEGMENT_SCHEMA_VERSION}); upgrade sluice"
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// Its version.
        version: i64,
    },
    /// A stored row whose line cannot be made again.
    #[error(
        "segment {path}: event at file offset {offset} has neither a line nor the columns that rebuild it; the file is damaged"
    )]
    Damaged {
        /// The file.
        path: PathBuf,
        /// The event's offset.
        offset: i64,
    },
    /// The sink refused the bytes (client gone, a limit reached, disk full).
    #[error("writing the lines: {0}")]
    Sink(#[source] std::io::Error),
}

/// A SQLite URI opening `path` read-only, reserved characters percent-encoded.
pub fn read_only_uri(path: &Path) -> String {
    let mut out = String::from("file:");
    for b in path.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'-' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.push_str("?mode=ro");
    out
}

struct SegmentInput {
    path: PathBuf,
    version: i64,
    page_sql: String,
}

struct Line {
    offset: i64,
    time_us: i64,
    bytes: Vec<u8>,
}

struct Cursor {
    file: usize,
    buf: VecDeque<Line>,
    after: i64,
    done: bool,
}

struct SourceFile {
    tailer: i64,
    file_seq: i64,
    cursors: Vec<Cursor>,
}

struct Reader {
    conn: Connection,
    inputs: Vec<SegmentInput>,
    from_us: i64,
    to_us: i64,
    host: Option<String>,
    page: usize,
}

/// Part `n` (0 tailer, 1 file seq, 2 offset) of a version-1 text id, as SQLite's signed
/// integer, as version 2 stores it.
fn id_part(id: &str, n: usize) -> Option<i64> {
    let id: EventId = id.parse().ok()?;
    Some(match n {
        0 => id.tailer,
        1 => id.file_seq,
        _ => id.offset,
    } as i64)
}

/// Writes, to `sink`, every line of the day segment files `files` (a day's segment and
/// its part files, any schema version) with `from_us <= time_us < to_us` that passes
/// `filter`, each followed by `\n`, in the order the module doc describes. Returns the
/// number of lines written. Files are opened read-only.
pub fn write_day_lines(
    files: &[PathBuf],
    from_us: i64,
    to_us: i64,
    filter: &LineFilter,
    sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<u64, OriginalLinesError> {
    if files.is_empty() || to_us <= from_us {
        return Ok(0);
    }
    let mut reader = Reader::open(files, from_us, to_us, filter)?;
    let mut sources = reader.source_files()?;
    let cursors: usize = sources.iter().map(|s| s.cursors.len()).sum();
    reader.page = (PAGE_LINES_BUDGET / cursors.max(1)).clamp(16, 1024);
    // Heads of every source file, earliest time first (ties by id): a min-heap.
    let mut heap = BinaryHeap::new();
    for (i, s) in sources.iter_mut().enumerate() {
        if let Some(t) = reader.head_time(s)? {
            heap.push(Reverse((t, s.tailer, s.file_seq, i)));
        }
    }
    let mut n = 0u64;
    while let Some(Reverse((_, _, _, i))) = heap.pop() {
        let s = &mut sources[i];
        if let Some(line) = reader.pop_head(s)? {
            sink(&line.bytes).map_err(OriginalLinesError::Sink)?;
            n += 1;
        }
        if let Some(t) = reader.head_time(s)? {
            heap.push(Reverse((t, s.tailer, s.file_seq, i)));
        }
    }
    Ok(n)
}

impl Reader {
    fn open(
        files: &[PathBuf],
        from_us: i64,
        to_us: i64,
        filter: &LineFilter,
    ) -> Result<Reader, OriginalLinesError> {
        let at = |path: &Path| {
            let path = path.to_path_buf();
            move |source| OriginalLinesError::Segment { path, source }
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(":memory:", flags).map_err(at(&files[0]))?;
        conn.set_prepared_statement_cache_capacity(files.len() * 2 + 8);
        conn.create_scalar_function(
            "sluice_id_part",
            2,
            FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
            |ctx| {
                let id: String = ctx.get(0)?;
                let n: i64 = ctx.get(1)?;
                Ok(id_part(&id, n as usize))
            },
        )
        .map_err(at(&files[0]))?;
        let mut inputs = Vec::with_capacity(files.len());
        for (i, path) in files.iter().enumerate() {
            conn.execute(
                &format!("ATTACH DATABASE ?1 AS s{i}"),
                [read_only_uri(path)],
            )
            .map_err(at(path))?;
            let version = schema_version(&conn, &format!("s{i}")).map_err(at(path))?;
            if !READABLE_VERSIONS.contains(&version) {
                return Err(OriginalLinesError::Version {
                    path: path.clone(),
                    version,
                });
            }
            let page_sql = if version == 1 {
                // Version 1 keeps the id as text: its integer parts, for the rows in
                // range, go to a temporary table keyed like version 2's id index.
                conn.execute_batch(&format!(
                    "CREATE TEMP TABLE k{i}(tailer INTEGER NOT NULL, file_seq INTEGER NOT NULL, file_offset INTEGER NOT NULL, r INTEGER NOT NULL, PRIMARY KEY (tailer, file_seq, file_offset)) WITHOUT ROWID"
                ))
                .map_err(at(path))?;
                conn.execute(
                    &format!(
                        "INSERT OR IGNORE INTO temp.k{i} SELECT sluice_id_part(id, 0), sluice_id_part(id, 1), sluice_id_part(id, 2), rowid FROM s{i}.events
                         WHERE time_us >= ?1 AND time_us < ?2 AND sluice_id_part(id, 2) IS NOT NULL"
                    ),
                    (from_us, to_us),
                )
                .map_err(at(path))?;
                let mut where_ = String::new();
                if filter.url_host.is_some() {
                    where_.push_str(" AND c.host = ?7");
                }
                if let Some(s) = &filter.status {
                    where_.push_str(" AND ");
                    where_.push_str(&s.sql("c.status_code"));
                }
                let join = if where_.is_empty() {
                    String::new()
                } else {
                    format!(" JOIN s{i}.crawled_url c ON c.rowid = e.rowid")
                };
                format!(
                    "SELECT k.file_offset, e.time_us, e.raw, e.line FROM temp.k{i} k JOIN s{i}.events e ON e.rowid = k.r{join}
                     WHERE k.tailer = ?1 AND k.file_seq = ?2 AND k.file_offset > ?3 AND e.time_us >= ?4 AND e.time_us < ?5{where_}
                     ORDER BY k.file_offset LIMIT ?6"
                )
            } else {
                let mut where_ = String::new();
                if filter.url_host.is_some() {
                    where_.push_str(&format!(" AND {URL_HOST_SQL} = ?7"));
                }
                if let Some(s) = &filter.status {
                    where_.push_str(" AND ");
                    where_.push_str(&s.sql("e.status"));
                }
                format!(
                    "SELECT e.file_offset, e.time_us, e.raw, e.line, {}
                     FROM s{i}.event e
                     WHERE e.tailer = ?1 AND e.file_seq = ?2 AND e.file_offset > ?3 AND e.time_us >= ?4 AND e.time_us < ?5{where_}
                     ORDER BY e.file_offset LIMIT ?6",
                    crawl_columns_sql!()
                )
            };
            inputs.push(SegmentInput {
                path: path.clone(),
                version,
                page_sql,
            });
        }
        Ok(Reader {
            conn,
            inputs,
            from_us,
            to_us,
            host: filter.url_host.as_ref().map(|h| h.to_ascii_lowercase()),
            page: 256,
        })
    }

    fn err(&self, file: usize) -> impl Fn(rusqlite::Error) -> OriginalLinesError + '_ {
        move |source| OriginalLinesError::Segment {
            path: self.inputs[file].path.clone(),
            source,
        }
    }

    /// Every (tailer, file seq) with a row in range, in any file, with a cursor per file
    /// that holds it.
    fn source_files(&self) -> Result<Vec<SourceFile>, OriginalLinesError> {
        let mut map: std::collections::BTreeMap<(i64, i64), Vec<Cursor>> = Default::default();
        for (i, input) in self.inputs.iter().enumerate() {
            let sql = if input.version == 1 {
                format!(
                    "SELECT DISTINCT k.tailer, k.file_seq FROM temp.k{i} k JOIN s{i}.events e ON e.rowid = k.r WHERE e.time_us >= ?1 AND e.time_us < ?2"
                )
            } else {
                format!(
                    "SELECT DISTINCT e.tailer, e.file_seq FROM s{i}.event e WHERE e.time_us >= ?1 AND e.time_us < ?2"
                )
            };
            let mut stmt = self.conn.prepare(&sql).map_err(self.err(i))?;
            let mut rows = stmt
                .query((self.from_us, self.to_us))
                .map_err(self.err(i))?;
            while let Some(r) = rows.next().map_err(self.err(i))? {
                let key = (
                    r.get::<_, i64>(0).map_err(self.err(i))?,
                    r.get::<_, i64>(1).map_err(self.err(i))?,
                );
                map.entry(key).or_default().push(Cursor {
                    file: i,
                    buf: VecDeque::new(),
                    after: -1,
                    done: false,
                });
            }
        }
        Ok(map
            .into_iter()
            .map(|((tailer, file_seq), cursors)| SourceFile {
                tailer,
                file_seq,
                cursors,
            })
            .collect())
    }

    /// Reads the next page of `c` when its buffer is empty.
    fn fill(&self, tailer: i64, file_seq: i64, c: &mut Cursor) -> Result<(), OriginalLinesError> {
        if !c.buf.is_empty() || c.done {
            return Ok(());
        }
        let input = &self.inputs[c.file];
        let err = self.err(c.file);
        let mut stmt = self.conn.prepare_cached(&input.page_sql).map_err(&err)?;
        let mut params: Vec<Value> = vec![
            Value::Integer(tailer),
            Value::Integer(file_seq),
            Value::Integer(c.after),
            Value::Integer(self.from_us),
            Value::Integer(self.to_us),
            Value::Integer(self.page as i64),
        ];
        if let Some(h) = &self.host {
            params.push(Value::Text(h.clone()));
        }
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params))
            .map_err(&err)?;
        let mut got = 0;
        while let Some(r) = rows.next().map_err(&err)? {
            got += 1;
            let offset: i64 = r.get(0).map_err(&err)?;
            let time_us: i64 = r.get(1).map_err(&err)?;
            let mut bytes = match (r.get_ref(2).map_err(&err)?, r.get_ref(3).map_err(&err)?) {
                (ValueRef::Blob(b) | ValueRef::Text(b), _) => b.to_vec(),
                (_, ValueRef::Text(t) | ValueRef::Blob(t)) => t.to_vec(),
                _ => rebuild_stored_line(r, 4, time_us)
                    .map_err(&err)?
                    .ok_or_else(|| OriginalLinesError::Damaged {
                        path: input.path.clone(),
                        offset,
                    })?
                    .into_bytes(),
            };
            bytes.push(b'\n');
            c.after = offset;
            c.buf.push_back(Line {
                offset,
                time_us,
                bytes,
            });
        }
        if got < self.page {
            c.done = true;
        }
        Ok(())
    }

    /// The time of the next line of `s` (its lowest offset over its cursors).
    fn head_time(&self, s: &mut SourceFile) -> Result<Option<i64>, OriginalLinesError> {
        let mut best: Option<(i64, i64)> = None;
        for c in &mut s.cursors {
            self.fill(s.tailer, s.file_seq, c)?;
            if let Some(l) = c.buf.front()
                && best.is_none_or(|(o, _)| l.offset < o)
            {
                best = Some((l.offset, l.time_us));
            }
        }
        Ok(best.map(|(_, t)| t))
    }

    /// Takes the next line of `s`, dropping the same offset from its other cursors.
    fn pop_head(&self, s: &mut SourceFile) -> Result<Option<Line>, OriginalLinesError> {
        let Some(offset) = s
            .cursors
            .iter()
            .filter_map(|c| c.buf.front().map(|l| l.offset))
            .min()
        else {
            return Ok(None);
        };
        let mut taken = None;
        for c in &mut s.cursors {
            if c.buf.front().is_some_and(|l| l.offset == offset) {
                let l = c.buf.pop_front();
                if taken.is_none() {
                    taken = l;
                }
            }
        }
        Ok(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment_schema::{SEGMENT_SCHEMA_SQL, SEGMENT_SCHEMA_V1_SQL};
    use crate::segment_sql::{Labels, insert_event, insert_event_v1};
    use crate::{CrawlId, Event, EventFlags, EventId, Format};

    fn event(tailer: u64, seq: u64, offset: u64, time_s: i64, raw: &[u8]) -> Event {
        Event {
            id: EventId {
                tailer,
                file_seq: seq,
                offset,
            },
            time_us: 1_795_254_400_000_000 + time_s * 1_000_000,
            flags: EventFlags::default(),
            original_len: raw.len() as u64,
            format: Format::Plain,
            crawl: CrawlId::parse("c").unwrap(),
            host: "h".into(),
            app: "a".into(),
            fields: vec![],
            raw: raw.to_vec(),
        }
    }

    fn crawl_event(offset: u64, line: &str, time_us: i64) -> Event {
        let mut e = crate::test_events::crawl_event(line, time_us);
        e.id = EventId {
            tailer: 7,
            file_seq: 1,
            offset,
        };
        e
    }

    fn segment(dir: &Path, name: &str, version: i64, events: &[Event]) -> PathBuf {
        let path = dir.join(name);
        let conn = Connection::open(&path).unwrap();
        if version == 1 {
            conn.execute_batch(SEGMENT_SCHEMA_V1_SQL).unwrap();
        } else {
            conn.execute_batch(SEGMENT_SCHEMA_SQL).unwrap();
        }
        conn.execute(
            "INSERT INTO meta VALUES ('schema_version', ?1)",
            [version.to_string()],
        )
        .unwrap();
        let mut labels = Labels::new();
        for e in events {
            if version == 1 {
                insert_event_v1(&conn, e).unwrap();
            } else {
                insert_event(&conn, &mut labels, e).unwrap();
            }
        }
        path
    }

    fn export(files: &[PathBuf], filter: &LineFilter) -> Vec<u8> {
        let mut out = Vec::new();
        write_day_lines(files, i64::MIN, i64::MAX, filter, &mut |b| {
            out.extend_from_slice(b);
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn one_file_comes_back_in_offset_order_whatever_its_times() {
        let d = tempfile::tempdir().unwrap();
        for version in [1, 2] {
            // Offsets 9 and 10 sort as text "10" < "9"; times go backwards.
            let evs = [
                event(1, 1, 10, 5, b"second"),
                event(1, 1, 9, 6, b"first"),
                event(1, 1, 100, 1, b"caf\xe9 third"),
            ];
            let f = segment(d.path(), &format!("v{version}.sqlite"), version, &evs);
            assert_eq!(
                export(&[f], &LineFilter::default()),
                b"first\nsecond\ncaf\xe9 third\n",
                "version {version}"
            );
        }
    }

    #[test]
    fn source_files_interleave_by_time_and_parts_merge_without_duplicates() {
        let d = tempfile::tempdir().unwrap();
        let day = segment(
            d.path(),
            "day.sqlite",
            2,
            &[
                event(1, 1, 0, 1, b"a0"),
                event(1, 1, 3, 4, b"a3"),
                event(2, 1, 0, 2, b"b0"),
                event(2, 1, 3, 3, b"b3"),
            ],
        );
        // The part holds a late line of file (1,1) between the two above, and a
        // duplicate of one of them.
        let part = segment(
            d.path(),
            "day.p1.sqlite",
            1,
            &[event(1, 1, 2, 9, b"a2 late"), event(1, 1, 3, 4, b"a3")],
        );
        assert_eq!(
            String::from_utf8(export(&[day, part], &LineFilter::default())).unwrap(),
            "a0\nb0\nb3\na2 late\na3\n"
        );
    }

    #[test]
    fn rebuilt_crawl_lines_are_byte_exact_and_filters_match_like_grep() {
        let d = tempfile::tempdir().unwrap();
        let t = |ms: i64| 1_543_242_468_000_000 + ms * 1000;
        let lines = [
            "2018-11-26T14:27:48.282Z   404        233 http://Acid.example.com/robots.txt P http://acid.example.com/ text/html #002 20181126142747555+280 sha1:YQG6T7YOWGUK3NUNZVZGNUXFZDZWCDUM - ip:172.19.0.6",
            "2018-11-26T14:27:48.290Z   200       1000 http://other.example.org/ - - text/html #003 20181126142747555+280 - - -",
            "2018-11-26T14:27:48.300Z   -5003          - http://acid.example.com/x LL - unknown #004 - - - -",
        ];
        let evs = [
            crawl_event(0, lines[0], t(282)),
            crawl_event(300, lines[1], t(290)),
            crawl_event(600, lines[2], t(300)),
        ];
        for version in [1, 2] {
            let f = segment(d.path(), &format!("c{version}.sqlite"), version, &evs);
            if version == 2 {
                let rebuilt: i64 = Connection::open(&f)
                    .unwrap()
                    .query_row("SELECT count(*) FROM event WHERE line IS NULL", [], |r| {
                        r.get(0)
                    })
                    .unwrap();
                assert!(rebuilt >= 1, "no line was stored as columns");
            }
            let all = export(std::slice::from_ref(&f), &LineFilter::default());
            assert_eq!(all, format!("{}\n", lines.join("\n")).into_bytes());
            let host = LineFilter {
                url_host: Some("ACID.example.com".into()),
                status: None,
            };
            assert_eq!(
                export(std::slice::from_ref(&f), &host),
                format!("{}\n{}\n", lines[0], lines[2]).into_bytes(),
                "version {version}"
            );
            let status = LineFilter {
                url_host: None,
                status: Some(StatusFilter::parse("4xx,-5003").unwrap()),
            };
            assert_eq!(
                export(std::slice::from_ref(&f), &status),
                format!("{}\n{}\n", lines[0], lines[2]).into_bytes()
            );
        }
    }

    #[test]
    fn uris_escape_reserved_characters() {
        assert_eq!(
            read_only_uri(Path::new("/a b/c?#%.sqlite")),
            "file:/a%20b/c%3F%23%25.sqlite?mode=ro"
        );
    }

    #[test]
    fn a_range_keeps_only_its_lines() {
        let d = tempfile::tempdir().unwrap();
        let f = segment(
            d.path(),
            "r.sqlite",
            2,
            &[event(1, 1, 0, 0, b"before"), event(1, 1, 1, 10, b"inside")],
        );
        let mut out = Vec::new();
        let t0 = 1_795_254_400_000_000;
        let n = write_day_lines(
            &[f],
            t0 + 1,
            t0 + 11_000_000,
            &LineFilter::default(),
            &mut |b| {
                out.extend_from_slice(b);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!((n, out), (1, b"inside\n".to_vec()));
    }
}
