//! [`IndexFiles`]: the files of one request's index and their schema.
//!
//! ```text
//! <work_dir>/<id>/segments/<crawl>/<day>[.pN].sqlite   fetched, deleted once indexed
//! <work_dir>/<id>/index/events.sqlite                  events, seq = time order
//! <work_dir>/<id>/index/shard-<k>.sqlite               token + trigram postings, k < index_threads
//! ```
//!
//! `events.seq` is the rowid, assigned in time order, so a time range is a seq range
//! (found by bisection) and every search walks seqs up or down. The line is stored once,
//! in `events`; the shards hold only which seqs have which tokens
//! ([`crate::token_postings`]) and trigrams ([`crate::trigram_postings`]), per batch
//! ([`crate::posting_lists`]), since the verifier rechecks every candidate anyway. Batch
//! `b` of the build goes to shard `b % index_threads`, so the shards are built on
//! separate threads (SQLite writes one transaction per file at a time) and a search
//! visits the batches of every shard in seq order.

use std::path::{Path, PathBuf};

use rusqlite::functions::FunctionFlags;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::error::ArchieError;
use crate::posting_lists::{self, PostingIndex};
use crate::token_postings;

/// Version of the index layout (`meta.index_version`). 2: token postings replaced the
/// FTS5 `terms` table and `batches` replaced `gram_batches`.
pub const INDEX_VERSION: i64 = 2;

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
    pub fn create_shard(&self, k: usize) -> Result<Connection, ArchieError> {
        let path = self.shard_path(k);
        let err = ArchieError::sqlite(&path);
        let conn = Connection::open(&path).map_err(&err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; PRAGMA cache_size=-65536;",
        )
        .map_err(&err)?;
        for sql in [
            posting_lists::BATCHES.to_owned(),
            PostingIndex::Tokens.schema(),
            PostingIndex::Grams.schema(),
        ] {
            conn.execute_batch(&sql).map_err(&err)?;
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
        let version: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'index_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(&err)?;
        if version.as_deref() != Some(INDEX_VERSION.to_string().as_str()) {
            return Err(ArchieError::NotSearchable(format!(
                "{}: index version {} but this archie reads version {INDEX_VERSION}; request the range again",
                path.display(),
                version.as_deref().unwrap_or("(none)")
            )));
        }
        add_sql_functions(&conn).map_err(&err)?;
        Ok(conn)
    }

    /// Bytes on disk (every file in the directory, WAL included).
    pub fn disk_bytes(&self) -> u64 {
        dir_bytes(&self.dir)
    }
}

/// The functions that make the postings readable from SQL (`docs/archie.md`):
/// `archie_token(text)`, the key of a token in `tokens`, and
/// `archie_postings(lists, first_key, key, first_seq)`, the seqs of `key` in one block as
/// a JSON array (empty when the block does not hold it), for `json_each`.
fn add_sql_functions(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("archie_token", 1, flags, |ctx| {
        let token: String = ctx.get(0)?;
        Ok(token_postings::token_key(&token) as i64)
    })?;
    conn.create_scalar_function("archie_postings", 4, flags, |ctx| {
        let block = match ctx.get_raw(0) {
            ValueRef::Blob(b) => b,
            _ => &[][..],
        };
        let (first_key, key, first_seq): (i64, i64, i64) = (ctx.get(1)?, ctx.get(2)?, ctx.get(3)?);
        let mut seqs = Vec::new();
        if let (Ok(first_key), Ok(key)) = (u32::try_from(first_key), u32::try_from(key))
            && let Some((_, list)) = posting_lists::list_in_block(block, first_key, key)
        {
            posting_lists::decode(list, first_seq, &mut seqs);
        }
        Ok(serde_json::to_string(&seqs).unwrap_or_else(|_| "[]".into()))
    })?;
    Ok(())
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
