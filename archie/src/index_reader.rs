//! [`IndexReader`]: search, histogram and context over one index, on a read-only
//! connection, never past the build's watermark.
//!
//! A search walks seqs (time order) up or down from a time bound or a cursor. With a
//! narrowing plan it visits the posting batches of every shard in seq order, takes each
//! batch's candidates from its lists (already in seq order) and reads each candidate's
//! row by seq; without one it reads the rows of the seq range in order. Either way every row passes the
//! verifier, the host and the exact time range, and stops at the limit or the deadline.

use std::time::Instant;

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use crate::error::ArchieError;
use crate::index_files::IndexFiles;
use crate::posting_lists::{self, PostingIndex};
use crate::query_plan::{Narrowing, QueryPlan};

/// Time order of a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Oldest first (the default).
    #[default]
    Asc,
    /// Newest first.
    Desc,
}

/// One line of the index, as the API returns it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EventRow {
    /// The event id (contract 1).
    pub event: String,
    /// Its position in the index's time order (what cursors count).
    pub seq: i64,
    /// Its crawl.
    pub crawl: String,
    /// Event time, RFC 3339 UTC with microseconds.
    pub time: String,
    /// Event time in microseconds since the epoch.
    pub time_us: i64,
    /// Host it was read on.
    pub host: String,
    /// App that wrote it.
    pub app: String,
    /// Format (`crawl_log`, `syslog`, ...).
    pub format: String,
    /// Event flags (contract 1).
    pub flags: i64,
    /// The line.
    pub line: String,
}

/// What a walk over candidates saw.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct WalkStats {
    /// Rows read and tested.
    pub rows_scanned: u64,
    /// Whether the deadline cut the walk short.
    pub timed_out: bool,
    /// The last seq tested (where a continuation starts).
    #[serde(skip)]
    pub last_seq: Option<i64>,
}

/// The filters of a walk.
#[derive(Debug, Clone)]
pub struct WalkFilter<'a> {
    /// Query plan.
    pub plan: &'a QueryPlan,
    /// Inclusive lower time bound, microseconds.
    pub from_us: i64,
    /// Exclusive upper time bound, microseconds.
    pub to_us: i64,
    /// Only this host.
    pub host: Option<&'a str>,
    /// Only crawl.log lines of these sites and statuses.
    pub fields: Option<&'a crate::field_filter::FieldFilter>,
    /// Seqs after this one (asc) or before it (desc): the cursor.
    pub after_seq: Option<i64>,
    /// Direction.
    pub order: Order,
    /// Stop when this passes.
    pub deadline: Instant,
}

const ROW_COLUMNS: &str = "seq, id, crawl, time_us, host, app, format, flags, line";

/// A read-only view of one index.
pub struct IndexReader {
    conn: Connection,
    files: IndexFiles,
    upto: i64,
}

impl IndexReader {
    /// Opens `files`, seeing seqs up to `upto` (the build's watermark).
    pub fn open(files: &IndexFiles, upto: i64) -> Result<IndexReader, ArchieError> {
        Ok(IndexReader {
            conn: files.open_reader()?,
            files: files.clone(),
            upto,
        })
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> ArchieError + '_ {
        move |source| ArchieError::Sqlite {
            path: self.files.events_path(),
            source,
        }
    }

    /// The first seq whose time is at or after `t_us` (`upto + 1` if none): seqs are in
    /// time order, so bisection finds it in about 20 row reads for a million events.
    pub fn first_seq_at(&self, t_us: i64) -> Result<i64, ArchieError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT time_us FROM events WHERE seq = ?1")
            .map_err(self.err())?;
        let (mut lo, mut hi) = (1i64, self.upto + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let t: Option<i64> = stmt
                .query_row([mid], |r| r.get(0))
                .optional()
                .map_err(self.err())?;
            match t {
                Some(t) if t < t_us => lo = mid + 1,
                _ => hi = mid,
            }
        }
        Ok(lo)
    }

    /// Calls `f` with each matching row, in order, until it returns false, the range
    /// ends, or the deadline passes.
    pub fn walk(
        &self,
        filter: &WalkFilter<'_>,
        mut f: impl FnMut(EventRow) -> bool,
    ) -> Result<WalkStats, ArchieError> {
        let mut stats = WalkStats::default();
        let mut lo = self.first_seq_at(filter.from_us)?;
        let mut hi = self.first_seq_at(filter.to_us)? - 1;
        match (filter.order, filter.after_seq) {
            (Order::Asc, Some(c)) => lo = lo.max(c + 1),
            (Order::Desc, Some(c)) => hi = hi.min(c - 1),
            _ => {}
        }
        if lo > hi {
            return Ok(stats);
        }
        let desc = filter.order == Order::Desc;
        let dir = if desc { "DESC" } else { "ASC" };
        let mut test = |row: EventRow, stats: &mut WalkStats| -> bool {
            stats.rows_scanned += 1;
            stats.last_seq = Some(row.seq);
            let ok = row.time_us >= filter.from_us
                && row.time_us < filter.to_us
                && filter.host.is_none_or(|h| h == row.host)
                && filter
                    .fields
                    .is_none_or(|f| f.matches(&row.format, &row.line))
                && filter.plan.verifier.matches(&row.line);
            if ok { f(row) } else { true }
        };
        let timed_out = |stats: &WalkStats| {
            stats.rows_scanned.is_multiple_of(256) && Instant::now() > filter.deadline
        };

        let (index, sets) = match &filter.plan.narrowing {
            Some(Narrowing::Terms(keys)) => (PostingIndex::Tokens, std::slice::from_ref(keys)),
            Some(Narrowing::Trigrams(sets)) => (PostingIndex::Grams, sets.as_slice()),
            None => {
                let mut stmt = self
                .conn
                .prepare(&format!(
                    "SELECT {ROW_COLUMNS} FROM events WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq {dir}"
                ))
                .map_err(self.err())?;
                let mut rows = stmt.query((lo, hi)).map_err(self.err())?;
                while let Some(r) = rows.next().map_err(self.err())? {
                    if !test(event_row(r).map_err(self.err())?, &mut stats) {
                        break;
                    }
                    if timed_out(&stats) {
                        stats.timed_out = true;
                        break;
                    }
                }
                return Ok(stats);
            }
        };
        self.walk_postings(
            index,
            sets,
            (lo, hi),
            desc,
            filter.deadline,
            &mut stats,
            test,
            timed_out,
        )
    }

    /// The narrowed path: batches in order, each one's candidates from its posting lists.
    #[allow(clippy::too_many_arguments)]
    fn walk_postings(
        &self,
        index: PostingIndex,
        sets: &[Vec<u32>],
        (lo, hi): (i64, i64),
        desc: bool,
        deadline: Instant,
        stats: &mut WalkStats,
        mut test: impl FnMut(EventRow, &mut WalkStats) -> bool,
        timed_out: impl Fn(&WalkStats) -> bool,
    ) -> Result<WalkStats, ArchieError> {
        let mut batches = posting_lists::batches(&self.conn, self.files.shard_count(), lo, hi)
            .map_err(self.err())?;
        if desc {
            batches.reverse();
        }
        let mut by_seq = self
            .conn
            .prepare_cached(&format!("SELECT {ROW_COLUMNS} FROM events WHERE seq = ?1"))
            .map_err(self.err())?;
        for b in &batches {
            let mut seqs =
                posting_lists::candidates(&self.conn, index, b, sets).map_err(self.err())?;
            seqs.retain(|s| (lo..=hi).contains(s));
            if desc {
                seqs.reverse();
            }
            for seq in seqs {
                let row = by_seq
                    .query_row([seq], event_row)
                    .optional()
                    .map_err(self.err())?;
                let Some(row) = row else { continue };
                if !test(row, stats) {
                    return Ok(*stats);
                }
                if timed_out(stats) {
                    stats.timed_out = true;
                    return Ok(*stats);
                }
            }
            // A batch without candidates still counts towards the deadline; a cursor then
            // resumes after it.
            if Instant::now() > deadline {
                stats.last_seq = Some(if desc {
                    b.first_seq.max(lo)
                } else {
                    b.last_seq.min(hi)
                });
                stats.timed_out = true;
                return Ok(*stats);
            }
        }
        Ok(*stats)
    }

    /// The rows around `event`: up to `before` earlier and `after` later ones, in order.
    /// `None` when no visible row has that id.
    pub fn context(
        &self,
        event: &str,
        before: i64,
        after: i64,
    ) -> Result<Option<(i64, Vec<EventRow>)>, ArchieError> {
        let seq: Option<i64> = self
            .conn
            .query_row(
                "SELECT seq FROM events WHERE id = ?1 AND seq <= ?2 ORDER BY seq LIMIT 1",
                rusqlite::params![event, self.upto],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err())?;
        let Some(seq) = seq else { return Ok(None) };
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {ROW_COLUMNS} FROM events WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq"
            ))
            .map_err(self.err())?;
        let rows = stmt
            .query_map(
                ((seq - before).max(1), (seq + after).min(self.upto)),
                event_row,
            )
            .map_err(self.err())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err())?;
        Ok(Some((seq, rows)))
    }

    /// Counts of every row in `[from_us, to_us)` per bucket, by plain SQL (no query, no
    /// host: the histogram of everything needs no verifier).
    pub fn count_by_bucket(
        &self,
        from_us: i64,
        to_us: i64,
        bucket_us: i64,
        counts: &mut [u64],
    ) -> Result<u64, ArchieError> {
        let lo = self.first_seq_at(from_us)?;
        let hi = self.first_seq_at(to_us)? - 1;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT (time_us - ?1) / ?2 AS b, count(*) FROM events
                 WHERE seq BETWEEN ?3 AND ?4 AND time_us >= ?1 AND time_us < ?5 GROUP BY b",
            )
            .map_err(self.err())?;
        let mut rows = stmt
            .query(rusqlite::params![from_us, bucket_us, lo, hi, to_us])
            .map_err(self.err())?;
        let mut scanned = 0;
        while let Some(r) = rows.next().map_err(self.err())? {
            let (b, n): (i64, i64) = (r.get(0).map_err(self.err())?, r.get(1).map_err(self.err())?);
            if let Some(c) = counts.get_mut(b as usize) {
                *c += n as u64;
            }
            scanned += n as u64;
        }
        Ok(scanned)
    }
}

fn event_row(r: &rusqlite::Row<'_>) -> Result<EventRow, rusqlite::Error> {
    let time_us: i64 = r.get(3)?;
    Ok(EventRow {
        seq: r.get(0)?,
        event: r.get(1)?,
        crawl: r.get(2)?,
        time: format_time(time_us),
        time_us,
        host: r.get(4)?,
        app: r.get(5)?,
        format: r.get(6)?,
        flags: r.get(7)?,
        line: r.get(8)?,
    })
}

/// RFC 3339 UTC with microseconds.
pub fn format_time(time_us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(time_us)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        .unwrap_or_else(|| time_us.to_string())
}
