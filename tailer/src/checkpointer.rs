//! `Checkpointer`: the tailer's crash-safe state file, `<state_dir>/checkpoints.json`.
//!
//! ```json
//! {"version":1,"tailer_id":123,"next_seq":7,"files":[{"path":"/x/crawl.log","dev":2049,
//!  "inode":131,"fingerprint":{"len":256,"hash":99},"tail":{"len":256,"hash":42},"seq":6,
//!  "offset":81920,"crawl":"c1","source":"/x/{crawl}.log","rotated":false}]}
//! ```
//!
//! A save writes `checkpoints.json.tmp`, fsyncs it, renames it over `checkpoints.json` and
//! fsyncs the directory: the rename is the commit. A crash between the fsync and the rename
//! leaves a whole tmp file that is newer than the state file, so loading reads the tmp file
//! first and falls back to the state file when the tmp file is torn.
//!
//! What an offset means is the reader's business (see `read_scheduler.rs`): it is saved only once
//! every event before it is fsynced in the spool, and a seq is saved before its first use.

use std::path::{Path, PathBuf};

use contracts::CrawlId;
use serde::{Deserialize, Serialize};

use crate::error::TailerError;
use crate::fingerprint::Fingerprint;

/// Version of the state file written by this build.
pub const STATE_VERSION: u32 = 1;
/// Name of the state file inside the state directory.
pub const STATE_FILE: &str = "checkpoints.json";

/// The whole state file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Always [`STATE_VERSION`].
    pub version: u32,
    /// The tailer id the seqs belong to.
    pub tailer_id: u64,
    /// The next file seq to hand out.
    pub next_seq: u64,
    /// One entry per file being followed or drained.
    pub files: Vec<FileCheckpoint>,
}

/// Where reading of one file (one seq) stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileCheckpoint {
    /// The path the file was found at (for a rotated file: the path it had before rotation).
    pub path: PathBuf,
    /// Device of the file.
    pub dev: u64,
    /// Inode of the file.
    pub inode: u64,
    /// Hash of its first bytes: finds it again among rotated (renamed, compressed) copies.
    pub fingerprint: Fingerprint,
    /// Hash of the bytes just before `offset`: says whether those bytes are still there.
    pub tail: Fingerprint,
    /// The seq its events carry.
    pub seq: u64,
    /// Every event before this offset is fsynced in the spool.
    pub offset: u64,
    /// Its crawl.
    pub crawl: CrawlId,
    /// The `path` pattern of the source that found it.
    pub source: String,
    /// Whether it was rotated away (renamed, truncated by copytruncate, deleted) and is
    /// only being read to its end.
    #[serde(default)]
    pub rotated: bool,
}

/// Reads and writes the state file.
#[derive(Debug, Clone)]
pub struct Checkpointer {
    path: PathBuf,
    tmp: PathBuf,
}

impl Checkpointer {
    /// The checkpointer of `state_dir` (created if missing).
    pub fn new(state_dir: &Path) -> Result<Checkpointer, TailerError> {
        std::fs::create_dir_all(state_dir)
            .map_err(|e| TailerError::io("creating state directory", state_dir, e))?;
        let path = state_dir.join(STATE_FILE);
        Ok(Checkpointer {
            tmp: durable_file::temp_path(&path),
            path,
        })
    }

    /// The state file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the state: `None` on first start. A whole tmp file left by an interrupted
    /// save wins over the state file.
    pub fn load(&self) -> Result<Option<State>, TailerError> {
        match std::fs::read(&self.tmp) {
            Ok(bytes) => match self.parse(&bytes, &self.tmp) {
                Ok(state) => {
                    tracing::info!(path = %self.tmp.display(), "recovered checkpoint data from an interrupted save");
                    return Ok(Some(state));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring a torn temporary state file; using the last complete save")
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(TailerError::io("reading state file", self.tmp.clone(), e)),
        }
        match std::fs::read(&self.path) {
            Ok(bytes) => self.parse(&bytes, &self.path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(TailerError::io("reading state file", self.path.clone(), e)),
        }
    }

    fn parse(&self, bytes: &[u8], path: &Path) -> Result<State, TailerError> {
        let bad = |message: String| TailerError::State {
            path: path.into(),
            message,
        };
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(STATE_VERSION) => {}
            Some(v) => {
                return Err(bad(format!(
                    "version {v} is not supported (this build reads version {STATE_VERSION})"
                )));
            }
            None => return Err(bad("no `version` field".into())),
        }
        serde_json::from_value(value).map_err(|e| bad(e.to_string()))
    }

    /// Saves `state` crash-safely (tmp, fsync, rename, fsync directory).
    pub fn save(&self, state: &State) -> Result<(), TailerError> {
        let bytes = serde_json::to_vec(state).map_err(|e| TailerError::State {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        // `durable_file` writes through `checkpoints.json.tmp`, the file `load` recovers.
        durable_file::replace(&self.path, &bytes, durable_file::Durability::Synced)
            .map_err(|e| TailerError::io("saving state file", self.path.clone(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(next_seq: u64) -> State {
        State {
            version: STATE_VERSION,
            tailer_id: u64::MAX - 1,
            next_seq,
            files: vec![FileCheckpoint {
                path: "/x/crawl.log".into(),
                dev: 1,
                inode: 2,
                fingerprint: Fingerprint::of(b"abc"),
                tail: Fingerprint::of(b"c"),
                seq: next_seq - 1,
                offset: 3,
                crawl: CrawlId::parse("c1").unwrap(),
                source: "/x/{crawl}.log".into(),
                rotated: false,
            }],
        }
    }

    #[test]
    fn save_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let c = Checkpointer::new(dir.path()).unwrap();
        assert_eq!(c.load().unwrap(), None);
        c.save(&state(5)).unwrap();
        assert_eq!(c.load().unwrap(), Some(state(5)));
        assert!(!dir.path().join("checkpoints.json.tmp").exists());
    }

    #[test]
    fn interrupted_save_recovers_whole_tmp_and_ignores_torn_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let c = Checkpointer::new(dir.path()).unwrap();
        c.save(&state(5)).unwrap();
        // Crash after the tmp file was fsynced, before the rename: the newer state wins.
        let newer = serde_json::to_vec(&state(9)).unwrap();
        std::fs::write(dir.path().join("checkpoints.json.tmp"), &newer).unwrap();
        assert_eq!(c.load().unwrap(), Some(state(9)));
        // Crash in the middle of writing the tmp file: the last complete save wins.
        std::fs::write(
            dir.path().join("checkpoints.json.tmp"),
            &newer[..newer.len() / 2],
        )
        .unwrap();
        assert_eq!(c.load().unwrap(), Some(state(5)));
        // The next save replaces the torn tmp file.
        c.save(&state(11)).unwrap();
        assert_eq!(c.load().unwrap(), Some(state(11)));
    }

    #[test]
    fn unknown_version_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(STATE_FILE), r#"{"version":3}"#).unwrap();
        let e = Checkpointer::new(dir.path())
            .unwrap()
            .load()
            .unwrap_err()
            .to_string();
        assert!(e.contains("version 3 is not supported"), "{e}");
    }
}
