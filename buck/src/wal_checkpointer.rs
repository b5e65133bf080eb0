//! `WalCheckpointer`: copies segments' WAL into their files on a thread of its own, so
//! the segment writer only appends.
//!
//! With SQLite's automatic checkpoint, the commit that takes a WAL past 1,000 pages
//! copies them into the file and fsyncs both, on the writer thread: a fifth of the
//! writer's time went there, and each fsync stalled every ack waiting on that commit.
//! Here the writer's connection counts its WAL pages (a WAL hook, which also turns the
//! automatic checkpoint off) and, past [`BACKGROUND_BYTES`], hands the segment to this
//! thread, which runs a `PASSIVE` checkpoint (it never waits for the writer or for
//! readers) on a second connection to the same file.
//!
//! A checkpoint that runs while the writer appends copies what was committed when it
//! began, so under a steady load the log may never be wholly copied at the moment the
//! writer starts its next transaction, which is when SQLite starts the log over. Past
//! [`INLINE_BYTES`] the writer therefore checkpoints itself, as before: by then most
//! frames are copied, so that costs little, and the WAL stays bounded.
//!
//! The second connection must never be the last one open on its file: SQLite removes
//! the WAL by name when its last connection closes, and the name may by then belong to a
//! new file (after a quarantine). So the writer closes it, under its lock, before its
//! own ([`SegmentCheckpoint::close`]), and the thread only uses it under that lock.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

/// WAL bytes after which a commit asks for a background checkpoint: SQLite's own
/// automatic checkpoint cadence (1,000 pages of 4 KiB).
pub const BACKGROUND_BYTES: i64 = 4 << 20;

/// WAL bytes after which the writer checkpoints on its own thread: the bound on a WAL
/// under a load that never leaves the background checkpoint a quiet moment.
pub const INLINE_BYTES: i64 = 64 << 20;

/// Segments waiting for the checkpoint thread; a full queue just leaves the request to
/// the next commit.
const QUEUE: usize = 64;

/// One segment as the checkpoint thread sees it.
pub struct SegmentCheckpoint {
    path: PathBuf,
    /// The second connection; `None` once the writer closed the segment.
    conn: Mutex<Option<Connection>>,
    /// Frames in the WAL after the last commit (set by the writer connection's WAL hook).
    wal_pages: Arc<AtomicI32>,
    /// Queued for the thread and not yet done.
    queued: AtomicBool,
    /// The file's page size, in bytes (a WAL frame holds one page).
    page_bytes: i64,
}

impl SegmentCheckpoint {
    /// Opens the second connection to `path` (which must exist) and installs the WAL hook
    /// on `writer`, which turns its automatic checkpoint off. `None` (and `writer`
    /// untouched, so it checkpoints by itself as SQLite does by default) if either fails.
    pub fn attach(writer: &mut Connection, path: &Path) -> Option<Arc<SegmentCheckpoint>> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|c| c.busy_timeout(std::time::Duration::ZERO).map(|()| c));
        let conn = match conn {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "no checkpoint connection; the writer checkpoints this segment itself");
                return None;
            }
        };
        let page_bytes: i64 = match writer.query_row("PRAGMA page_size", [], |r| r.get(0)) {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "no page size; the writer checkpoints this segment itself");
                return None;
            }
        };
        let wal_pages = Arc::new(AtomicI32::new(0));
        let counter = wal_pages.clone();
        let hooked = writer.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages| {
            counter.store(pages, Ordering::Relaxed);
            Ok(())
        }));
        if let Err(e) = hooked {
            tracing::debug!(path = %path.display(), error = %e, "no WAL hook; the writer checkpoints this segment itself");
            return None;
        }
        Some(Arc::new(SegmentCheckpoint {
            path: path.to_path_buf(),
            conn: Mutex::new(Some(conn)),
            wal_pages,
            queued: AtomicBool::new(false),
            page_bytes: page_bytes.max(512),
        }))
    }

    /// Bytes of pages in the WAL after the last commit.
    pub fn wal_bytes(&self) -> i64 {
        i64::from(self.wal_pages.load(Ordering::Relaxed)) * self.page_bytes
    }

    /// Closes the second connection, waiting for a checkpoint in progress. The writer
    /// calls this before closing its own connection.
    pub fn close(&self) {
        let mut conn = match self.conn.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        conn.take();
    }

    fn run(&self) {
        self.queued.store(false, Ordering::Relaxed);
        let conn = match self.conn.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let Some(conn) = conn.as_ref() else { return };
        // BUSY (the writer checkpointing inline, or a reader holding the lock another
        // checkpoint needs) is not an error: the next commit asks again.
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            && e.sqlite_error_code() != Some(rusqlite::ErrorCode::DatabaseBusy)
        {
            tracing::warn!(path = %self.path.display(), error = %e, "background WAL checkpoint failed; the writer checkpoints past its limit");
        }
    }
}

/// The sending side, held by the segment writer.
pub struct WalCheckpointer {
    tx: SyncSender<Arc<SegmentCheckpoint>>,
    background_bytes: i64,
    inline_bytes: i64,
}

/// The checkpoint thread, to join at shutdown (after the writer dropped its sender).
pub struct CheckpointThread {
    handle: std::thread::JoinHandle<()>,
}

impl CheckpointThread {
    /// Waits for the thread to finish the checkpoint in progress.
    pub fn join(self) {
        let _ = self.handle.join();
    }
}

impl WalCheckpointer {
    /// Starts the checkpoint thread, with the limits [`BACKGROUND_BYTES`] and
    /// [`INLINE_BYTES`].
    pub fn spawn() -> std::io::Result<(WalCheckpointer, CheckpointThread)> {
        WalCheckpointer::with_limits(BACKGROUND_BYTES, INLINE_BYTES)
    }

    fn with_limits(
        background_bytes: i64,
        inline_bytes: i64,
    ) -> std::io::Result<(WalCheckpointer, CheckpointThread)> {
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let handle = std::thread::Builder::new()
            .name("wal-checkpoint".into())
            .spawn(move || serve(rx))?;
        Ok((
            WalCheckpointer {
                tx,
                background_bytes,
                inline_bytes,
            },
            CheckpointThread { handle },
        ))
    }

    /// After a commit on `writer`: asks for a background checkpoint of `seg` if its WAL
    /// is past the background limit and none is queued; past the inline limit, waits for
    /// the one in progress and checkpoints on `writer` itself, which copies what the
    /// background ones left and lets the next transaction start the log over.
    pub fn after_commit(
        &self,
        seg: &Arc<SegmentCheckpoint>,
        writer: &Connection,
    ) -> rusqlite::Result<()> {
        let bytes = seg.wal_bytes();
        if bytes >= self.inline_bytes {
            let _in_progress = match seg.conn.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            writer.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
            return Ok(());
        }
        if bytes >= self.background_bytes && !seg.queued.swap(true, Ordering::Relaxed) {
            match self.tx.try_send(seg.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(s) | TrySendError::Disconnected(s)) => {
                    s.queued.store(false, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }
}

fn serve(rx: Receiver<Arc<SegmentCheckpoint>>) {
    while let Ok(seg) = rx.recv() {
        seg.run();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_file_len(path: &Path) -> u64 {
        let mut p = path.as_os_str().to_owned();
        p.push("-wal");
        std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
    }

    fn writer_with_checkpoint(path: &Path) -> (Connection, Arc<SegmentCheckpoint>) {
        let mut writer = Connection::open(path).unwrap();
        writer.pragma_update(None, "journal_mode", "WAL").unwrap();
        writer.execute_batch("CREATE TABLE t (v BLOB)").unwrap();
        let seg = SegmentCheckpoint::attach(&mut writer, path).unwrap();
        (writer, seg)
    }

    /// Commits `n` transactions of 25 rows of 3,000 bytes (about 20 pages each).
    fn commit(writer: &Connection, ckpt: &WalCheckpointer, seg: &Arc<SegmentCheckpoint>, n: usize) {
        let blob = vec![7u8; 3000];
        for _ in 0..n {
            writer.execute_batch("BEGIN").unwrap();
            for _ in 0..25 {
                writer
                    .execute("INSERT INTO t VALUES (?1)", [&blob])
                    .unwrap();
            }
            writer.execute_batch("COMMIT").unwrap();
            ckpt.after_commit(seg, writer).unwrap();
        }
    }

    /// Commits reach the database file through the thread alone: the writer, whose
    /// automatic checkpoint the hook turned off, never copies them itself here.
    #[test]
    fn the_thread_copies_commits_into_the_file() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("s.sqlite");
        let (writer, seg) = writer_with_checkpoint(&path);
        let (ckpt, thread) = WalCheckpointer::with_limits(100 * 4096, i64::MAX).unwrap();
        commit(&writer, &ckpt, &seg, 20);
        let file_len = || std::fs::metadata(&path).unwrap().len();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while file_len() < 300 * 4096 && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert!(file_len() >= 300 * 4096, "file is {} bytes", file_len());
        drop(ckpt);
        thread.join();
        seg.close();
    }

    /// Under a load that leaves the background checkpoint no quiet moment, the WAL
    /// stays within the inline limit plus one commit, and every row is kept.
    #[test]
    fn the_wal_stays_bounded_and_keeps_every_row() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("s.sqlite");
        let (writer, seg) = writer_with_checkpoint(&path);
        let (ckpt, thread) = WalCheckpointer::with_limits(100 * 4096, 800 * 4096).unwrap();
        // 300 commits: 22 MiB, 5,600 pages, through a WAL limited to 800.
        commit(&writer, &ckpt, &seg, 300);
        let limit = (800 + 30) * (4096 + 24) + 32;
        assert!(
            wal_file_len(&path) <= limit,
            "WAL grew to {} bytes",
            wal_file_len(&path)
        );
        drop(ckpt);
        thread.join();
        seg.close();
        drop(writer);
        let n: i64 = Connection::open(&path)
            .unwrap()
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 7_500);
    }

    /// Closing the second connection first leaves the writer's the last one, which
    /// folds the WAL into the file and removes it, as without the thread.
    #[test]
    fn closing_in_order_removes_the_wal() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("s.sqlite");
        let (writer, seg) = writer_with_checkpoint(&path);
        writer.execute("INSERT INTO t VALUES (1)", []).unwrap();
        seg.close();
        drop(writer);
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        assert!(!Path::new(&wal).exists());
    }
}
