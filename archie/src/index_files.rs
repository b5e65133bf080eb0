//! [`IndexFiles`]: the files of one request's index and their schema.
//!
//! ```text
//! <work_dir>/<id>/segments/<crawl>/<day>[.pN].sqlite   fetched, deleted once indexed
//! <work_dir>/<id>/index/events.sqlite                  events, seq = time order
//! <work_dir>/<id>/index/shard-<k>.sqlite               FTS5 terms + trigram postings, k < index_threads
//! ```
//!
//! `events.seq` is the rowid, assigned in time order, so a time range is a seq range
//! (found by bisection) and every search walks seqs up or down. The FTS5 `terms` table is
//! contentless (`content=''`) with `detail=none`: the line is stored once, in `events`, and
//! the index holds only which seqs have which tokens (positions would cost space and the
//! verifier rechecks every candidate anyway). Substrings use
//! [`crate::trigram_postings`], measured several times faster to build than FTS5's
//! trigram tokenizer. Batch `b` of the build goes to shard `b % index_threads`, so the
//! shards are built on separate threads (SQLite writes one transaction per file at a time)
//! and a search merges their seq streams.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use crate::error::ArchieError;

/// Version of the index layout (`meta.index_version`).
pub const INDEX_VERSION: i64 = 1;

const EVENTS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    crawl TEXT NOT NULL,
    time_us INTEGER NOT NULL,
    host TEXT NOT NULL,
    app TEXT NOT NULL,
    format TEXT NOT NULL,
    flags INTEGER NOT NULL,
    line TEXT NOT NULL
);
";

const SHARD_SCHEMA: &str = "
CREATE VIRTUAL TABLE IF NOT EXISTS terms USING fts5(
    line, content='', detail=none, tokenize='unicode61');
";

/// FTS5 settings for the build (measured: docs/archie.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FtsTuning {
    /// FTS5 `pgsz`: bytes per leaf page of the index b-tree.
    pub pgsz: u32,
    /// FTS5 `automerge`: segments per level before background merging (0 = off).
    pub automerge: u32,
    /// FTS5 `crisismerge`: segments per level that force a merge.
    pub crisismerge: u32,
}

impl Default for FtsTuning {
    fn default() -> FtsTuning {
        FtsTuning {
            pgsz: 4050,
            automerge: 8,
            crisismerge: 32,
        }
    }
}

/// The paths of one request's index.
#[derive(Debug, Clone)]
pub struct IndexFiles {
    dir: PathBuf,
    shards: usize,
}

impl IndexFiles {
    /// The index in `dir` with `shards` full-text shards.
    pub fn new(dir: impl Into<PathBuf>, shards: usize) -> IndexFiles {
        IndexFiles {
            dir: dir.into(),
            shards,
        }
    }

    /// The index directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many shards.
    pub fn shard_count(&self) -> usize {
        self.shards
    }

    /// `events.sqlite`.
    pub fn events_path(&self) -> PathBuf {
        self.dir.join("events.sqlite")
    }

    /// `shard-<k>.sqlite`.
    pub fn shard_path(&self, k: usize) -> PathBuf {
        self.dir.join(format!("shard-{k}.sqlite"))
    }

    /// Creates `events.sqlite` for the builder. `synchronous=OFF`: the index is a
    /// temporary copy, and a build cut short by a crash is failed at restart, not resumed.
    pub fn create_events(&self) -> Result<Connection, ArchieError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| ArchieError::io(&self.dir, e))?;
        let path = self.events_path();
        let err = ArchieError::sqlite(&path);
        let conn = Connection::open(&path).map_err(&err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; PRAGMA cache_size=-32768;",
        )
        .map_err(&err)?;
        conn.execute_batch(EVENTS_SCHEMA).map_err(&err)?;
        conn.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('index_version', ?1)",
            [INDEX_VERSION.to_string()],
        )
        .map_err(&err)?;
        Ok(conn)
    }

    /// Creates shard `k` for its builder thread.
    pub fn create_shard(&self, k: usize, tuning: FtsTuning) -> Result<Connection, ArchieError> {
        let path = self.shard_path(k);
        let err = ArchieError::sqlite(&path);
        let conn = Connection::open(&path).map_err(&err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; PRAGMA cache_size=-65536;",
        )
        .map_err(&err)?;
        conn.execute_batch(SHARD_SCHEMA).map_err(&err)?;
        conn.execute_batch(crate::trigram_postings::SCHEMA)
            .map_err(&err)?;
        for table in ["terms"] {
            for (key, value) in [
                ("pgsz", tuning.pgsz),
                ("automerge", tuning.automerge),
                ("crisismerge", tuning.crisismerge),
            ] {
                conn.execute(
                    &format!("INSERT INTO {table}({table}, rank) VALUES (?1, ?2)"),
                    rusqlite::params![key, value],
                )
                .map_err(&err)?;
            }
        }
        Ok(conn)
    }

    /// A read-only connection to `events.sqlite` with every shard attached as
    /// `shard<k>`, for searches and SQL. Attaching happens here, before any authorizer.
    pub fn open_reader(&self) -> Result<Connection, ArchieError> {
        let path = self.events_path();
        let err = ArchieError::sqlite(&path);
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(&err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(&err)?;
        for k in 0..self.shards {
            let shard = self.shard_path(k);
            if !shard.exists() {
                continue;
            }
            conn.execute(
                &format!("ATTACH DATABASE ?1 AS shard{k}"),
                [format!("file:{}?mode=ro", shard.display())],
            )
            .map_err(ArchieError::sqlite(&shard))?;
        }
        Ok(conn)
    }

    /// Bytes on disk (every file in the directory, WAL included).
    pub fn disk_bytes(&self) -> u64 {
        dir_bytes(&self.dir)
    }
}

/// Bytes of every file under `dir`, recursively; 0 for a missing directory.
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
