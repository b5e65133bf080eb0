//! [`IndexBuilder`]: turns a request's fetched segments into its index.
//!
//! One thread (the caller's, run under `spawn_blocking`) reads the segments of each day
//! together, merging them by time, and appends the events to `events.sqlite` in batches
//! of `index_batch_events`, one transaction each. After each commit it hands the batch's
//! lines to the builder thread of shard `batch % index_threads` through a bounded channel
//! of [`SHARD_QUEUE_BATCHES`], so reading never runs far ahead of indexing (memory stays
//! near `index_threads * (SHARD_QUEUE_BATCHES + 1)` batches). A batch is searchable once it
//! and every batch before it are committed in their shards: [`BuildProgress::indexed_upto`]
//! is that watermark, and searches never look past it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use chrono::NaiveDate;
use rusqlite::{Connection, OpenFlags};
use tokio_util::sync::CancellationToken;

use crate::error::ArchieError;
use crate::index_files::IndexFiles;
use crate::posting_lists;
use crate::segment_source::SegmentFile;
use crate::token_postings::TokenPostings;
use crate::trigram_postings::TrigramPostings;

/// Batches waiting per shard thread. 2: one being indexed, one ready, so the reader
/// neither stalls the shard nor piles up lines in memory.
pub const SHARD_QUEUE_BATCHES: usize = 2;

/// Live counters of a build, read by the status and search handlers.
#[derive(Debug, Default)]
pub struct BuildProgress {
    /// Events in the segments within the range (known once the segments are opened).
    pub total: AtomicU64,
    /// Events written to `events.sqlite`.
    pub inserted: AtomicU64,
    /// Highest seq such that every seq up to it is committed in `events` and its shard:
    /// what searches may see. 0 before the first batch.
    pub indexed_upto: AtomicI64,
}

/// The build settings.
#[derive(Debug, Clone, Copy)]
pub struct BuildSettings {
    /// Shards (threads).
    pub threads: usize,
    /// Events per batch (transaction).
    pub batch_events: usize,
}

/// What a build did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildReport {
    /// Events indexed.
    pub events: u64,
}

/// One event read from a segment (any schema version).
type SourceRow = contracts::segment_sql::EventLine;

struct Batch {
    index: u64,
    rows: Vec<(i64, String)>,
}

/// Builds one index.
pub struct IndexBuilder<'a> {
    files: &'a IndexFiles,
    settings: BuildSettings,
    progress: Arc<BuildProgress>,
    cancel: CancellationToken,
}

impl<'a> IndexBuilder<'a> {
    /// A builder writing `files`, reporting to `progress`, stopping (with an error) when
    /// `cancel` fires.
    pub fn new(
        files: &'a IndexFiles,
        settings: BuildSettings,
        progress: Arc<BuildProgress>,
        cancel: CancellationToken,
    ) -> IndexBuilder<'a> {
        IndexBuilder {
            files,
            settings,
            progress,
            cancel,
        }
    }

    /// Builds the index of the events of `segments` with `from_us <= time_us < to_us`.
    pub fn build(
        &self,
        segments: &[SegmentFile],
        from_us: i64,
        to_us: i64,
    ) -> Result<BuildReport, ArchieError> {
        // Open and count first: a bad segment fails the request before anything is
        // written, and the count gives the percentage.
        let mut opened = Vec::with_capacity(segments.len());
        let mut total = 0u64;
        for s in segments {
            let conn = open_segment(&s.path)?;
            total += contracts::segment_sql::count_in_range(&conn, from_us, to_us)
                .map_err(|e| bad_segment(&s.path, e))?;
            opened.push((s, conn));
        }
        self.progress.total.store(total, Ordering::Relaxed);

        let events = self.files.create_events()?;
        let threads = self.settings.threads.max(1);
        let watermark = Arc::new(Mutex::new(Watermark::default()));
        let mut senders = Vec::with_capacity(threads);
        let mut workers = Vec::with_capacity(threads);
        for k in 0..threads {
            let shard = self.files.create_shard(k)?;
            let (tx, rx) = mpsc::sync_channel::<Batch>(SHARD_QUEUE_BATCHES);
            senders.push(tx);
            let path = self.files.shard_path(k);
            let (wm, progress) = (watermark.clone(), self.progress.clone());
            let handle = std::thread::Builder::new()
                .name(format!("archie-shard-{k}"))
                .spawn(move || shard_worker(shard, &path, rx, &wm, &progress))
                .map_err(|e| ArchieError::Internal(format!("spawning a shard thread: {e}")))?;
            workers.push(handle);
        }

        let read_result = self.read_all(&events, &opened, from_us, to_us, &senders);
        drop(senders);
        let mut worker_error = None;
        for w in workers {
            match w.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => worker_error = worker_error.or(Some(e)),
                Err(_) => {
                    worker_error = worker_error.or(Some(ArchieError::Internal(
                        "a shard thread panicked".into(),
                    )))
                }
            }
        }
        // A shard that failed (a full disk, say) makes the reader fail with "stopped
        // early": the shard's error is the one that says why.
        if matches!(read_result, Err(ArchieError::Internal(_)))
            && let Some(e) = worker_error.take()
        {
            return Err(e);
        }
        let inserted = read_result?;
        if let Some(e) = worker_error {
            return Err(e);
        }
        Ok(BuildReport { events: inserted })
    }

    /// Reads every segment (a day at a time, merged by time) into `events` and the shards.
    fn read_all(
        &self,
        events: &Connection,
        opened: &[(&SegmentFile, Connection)],
        from_us: i64,
        to_us: i64,
        senders: &[mpsc::SyncSender<Batch>],
    ) -> Result<u64, ArchieError> {
        let events_path = self.files.events_path();
        let err = ArchieError::sqlite(&events_path);
        let mut days: BTreeMap<NaiveDate, Vec<usize>> = BTreeMap::new();
        for (i, (s, _)) in opened.iter().enumerate() {
            days.entry(s.day).or_default().push(i);
        }
        let mut seq: i64 = 0;
        let mut batch_index: u64 = 0;
        let mut batch: Vec<(i64, String)> = Vec::with_capacity(self.settings.batch_events);
        events.execute_batch("BEGIN").map_err(&err)?;
        let mut insert = events
            .prepare(
                "INSERT INTO events(seq, id, crawl, time_us, host, app, format, flags, line)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .map_err(&err)?;
        for group in days.values() {
            let mut stmts = Vec::with_capacity(group.len());
            for &i in group {
                let (s, conn) = &opened[i];
                let reader = contracts::segment_sql::EventLines::new(conn)
                    .map_err(|e| bad_segment(&s.path, e))?;
                let stmt = conn
                    .prepare(reader.sql())
                    .map_err(|e| bad_segment(&s.path, e))?;
                stmts.push((i, stmt, reader));
            }
            let mut cursors = Vec::with_capacity(stmts.len());
            for (i, stmt, reader) in stmts.iter_mut() {
                let rows = stmt
                    .query((from_us, to_us))
                    .map_err(|e| bad_segment(&opened[*i].0.path, e))?;
                cursors.push((*i, rows, &*reader));
            }
            // Merge the day's segments (parts, and crawls of a pattern) by time; ties go to
            // the earlier segment, so the order is the same on every build.
            let mut heads: Vec<Option<SourceRow>> = Vec::with_capacity(cursors.len());
            let mut heap = BinaryHeap::new();
            for (c, (i, rows, reader)) in cursors.iter_mut().enumerate() {
                let head = next_row(rows, reader, &opened[*i].0.path)?;
                if let Some(h) = &head {
                    heap.push(Reverse((h.time_us, c)));
                }
                heads.push(head);
            }
            while let Some(Reverse((_, c))) = heap.pop() {
                let (i, rows, reader) = &mut cursors[c];
                let seg = opened[*i].0;
                let next = next_row(rows, reader, &seg.path)?;
                if let Some(h) = &next {
                    heap.push(Reverse((h.time_us, c)));
                }
                let Some(row) = std::mem::replace(&mut heads[c], next) else {
                    continue;
                };
                seq += 1;
                insert
                    .execute(rusqlite::params![
                        seq,
                        row.id,
                        seg.crawl.as_str(),
                        row.time_us,
                        row.host,
                        row.app,
                        row.format,
                        row.flags,
                        row.line
                    ])
                    .map_err(&err)?;
                batch.push((seq, row.line));
                if batch.len() >= self.settings.batch_events {
                    self.flush(events, &mut batch, &mut batch_index, senders)?;
                    events.execute_batch("BEGIN").map_err(&err)?;
                }
            }
        }
        drop(insert);
        if batch.is_empty() {
            events.execute_batch("COMMIT").map_err(&err)?;
        } else {
            self.flush(events, &mut batch, &mut batch_index, senders)?;
        }
        // The id index serves `context`; building it once at the end is cheaper than
        // keeping it up to date row by row (context scans until then).
        events
            .execute_batch("CREATE INDEX IF NOT EXISTS events_id ON events(id)")
            .map_err(&err)?;
        truncate_wal(events);
        Ok(seq as u64)
    }

    /// Commits the open `events` transaction and hands the batch to its shard.
    fn flush(
        &self,
        events: &Connection,
        batch: &mut Vec<(i64, String)>,
        batch_index: &mut u64,
        senders: &[mpsc::SyncSender<Batch>],
    ) -> Result<(), ArchieError> {
        if self.cancel.is_cancelled() {
            let _ = events.execute_batch("ROLLBACK");
            return Err(ArchieError::Internal("build cancelled".into()));
        }
        events
            .execute_batch("COMMIT")
            .map_err(ArchieError::sqlite(&self.files.events_path()))?;
        self.progress
            .inserted
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        let rows = std::mem::replace(batch, Vec::with_capacity(self.settings.batch_events));
        let k = (*batch_index % senders.len() as u64) as usize;
        senders[k]
            .send(Batch {
                index: *batch_index,
                rows,
            })
            .map_err(|_| ArchieError::Internal(format!("shard {k} stopped early")))?;
        *batch_index += 1;
        Ok(())
    }
}

/// Which batches are committed in their shards, and the seq every search may go up to.
#[derive(Debug, Default)]
struct Watermark {
    /// Committed batches not yet contiguous with the watermark: index -> last seq.
    done: BTreeMap<u64, i64>,
    /// The next batch the watermark waits for.
    next: u64,
}

/// One shard's thread: indexes each batch in one transaction, then moves the watermark.
fn shard_worker(
    conn: Connection,
    path: &Path,
    rx: mpsc::Receiver<Batch>,
    watermark: &Mutex<Watermark>,
    progress: &BuildProgress,
) -> Result<(), ArchieError> {
    let err = ArchieError::sqlite(path);
    let mut tokens = TokenPostings::default();
    let mut grams = TrigramPostings::default();
    for batch in rx {
        // `flush` never sends an empty batch.
        let (Some(first), Some(last)) = (batch.rows.first(), batch.rows.last()) else {
            continue;
        };
        let (first, last) = (first.0, last.0);
        for (seq, line) in &batch.rows {
            // A batch's seqs are consecutive, so the offset fits: batches are at most
            // `index_batch_events` long.
            let offset = (seq - first) as u32;
            tokens.add(offset, line);
            grams.add(offset, line);
        }
        conn.execute_batch("BEGIN").map_err(&err)?;
        posting_lists::write_batch(&conn, batch.index, first, last).map_err(&err)?;
        tokens.write(&conn, batch.index).map_err(&err)?;
        grams.write(&conn, batch.index).map_err(&err)?;
        conn.execute_batch("COMMIT").map_err(&err)?;
        // A poisoned lock only means another shard thread panicked; its error is reported
        // by the join, and the watermark itself is still consistent.
        let mut wm = watermark.lock().unwrap_or_else(|p| p.into_inner());
        wm.done.insert(batch.index, last);
        loop {
            let next = wm.next;
            let Some(upto) = wm.done.remove(&next) else {
                break;
            };
            wm.next += 1;
            progress.indexed_upto.store(upto, Ordering::Release);
        }
    }
    truncate_wal(&conn);
    Ok(())
}

/// Copies a finished file's WAL into it and empties the WAL, so the index's size on disk
/// (what the disk budget counts) is its data. Best effort: a search holding an older
/// snapshot makes it a no-op, and the WAL then goes at the next checkpoint.
fn truncate_wal(conn: &Connection) {
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
}

fn open_segment(path: &Path) -> Result<Connection, ArchieError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| bad_segment(path, e))?;
    Ok(conn)
}

fn bad_segment(path: &Path, e: rusqlite::Error) -> ArchieError {
    ArchieError::BadSegment {
        path: path.to_path_buf(),
        message: format!(
            "{e}; the file is not a readable sluice segment (fetch it again, or leave its day out of the range)"
        ),
    }
}

fn next_row(
    rows: &mut rusqlite::Rows<'_>,
    reader: &contracts::segment_sql::EventLines,
    path: &Path,
) -> Result<Option<SourceRow>, ArchieError> {
    let Some(r) = rows.next().map_err(|e| bad_segment(path, e))? else {
        return Ok(None);
    };
    let row = reader.read(r).map_err(|e| bad_segment(path, e))?;
    Ok(Some(row))
}
