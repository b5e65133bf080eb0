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
//! Between two such saves, changes go to `checkpoints.journal`: a first line naming the
//! state file's `generation`, then one JSON line per save with only what changed (files
//! set, files gone, `next_seq`), appended and fdatasync'ed. Rewriting the whole state for
//! every checkpoint costs as much as the files followed: with 20,000 files, 3 MB of JSON
//! written and fsynced each `fsync_interval_ms` was most of the tailer's CPU while 1% of
//! the files were being written. The state file is rewritten whole (compaction, with the
//! next generation) when the journal outgrows it, at the first save after a start, and at
//! a clean stop. Loading reads the state file, then the journal's lines if its
//! generation is the state file's, up to the first line that does not parse (a torn
//! append): a crash between a compaction's rename and the journal's reset leaves a journal
//! of the old generation, which is ignored, as the state file already holds all of it.
//!
//! What an offset means is the reader's business (see `read_scheduler.rs`): it is saved only once
//! every event before it is fsynced in the spool, and a seq is saved before its first use.

// Keyed by seq, looked up for every file each checkpoint interval (20,000 a second):
// SipHash was a tenth of a 20,000-file tailer's CPU.
use foldhash::{HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use contracts::CrawlId;
use serde::{Deserialize, Serialize};

use crate::error::TailerError;
use crate::fingerprint::Fingerprint;

/// Version of the state file written by this build.
pub const STATE_VERSION: u32 = 1;
/// Name of the state file inside the state directory.
pub const STATE_FILE: &str = "checkpoints.json";
/// Name of the journal of changes since the state file was written.
pub const JOURNAL_FILE: &str = "checkpoints.journal";
/// The journal is folded into the state file once it is larger than the state file and
/// than this.
const JOURNAL_MIN_COMPACT_BYTES: u64 = 1 << 20;

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
    /// Which journal continues this file: its lines count only under the same
    /// generation. Absent (0) in files written before the journal existed.
    #[serde(default)]
    pub generation: u64,
}

/// One journal line: what changed since the line before (or the state file).
#[derive(Debug, Serialize, Deserialize)]
struct JournalRecord {
    next_seq: u64,
    /// Files new or changed, whole.
    #[serde(default)]
    set: Vec<FileCheckpoint>,
    /// Seqs of files no longer kept.
    #[serde(default)]
    gone: Vec<u64>,
}

/// The journal's first line.
#[derive(Debug, Serialize, Deserialize)]
struct JournalHeader {
    generation: u64,
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

/// Reads and writes the state file and its journal.
#[derive(Debug)]
pub struct Checkpointer {
    path: PathBuf,
    tmp: PathBuf,
    journal_path: PathBuf,
    /// The state as last saved, by seq, to say what changed; `None` until the first
    /// save, which writes the state file whole.
    last: Option<Saved>,
    /// The generation of the state loaded at start: the first compaction takes the next.
    loaded_generation: u64,
}

#[derive(Debug)]
struct Saved {
    generation: u64,
    next_seq: u64,
    files: HashMap<u64, FileCheckpoint>,
    /// Bytes of the state file and of the journal.
    state_bytes: u64,
    journal_bytes: u64,
    journal: std::fs::File,
}

impl Checkpointer {
    /// The checkpointer of `state_dir` (created if missing).
    pub fn new(state_dir: &Path) -> Result<Checkpointer, TailerError> {
        std::fs::create_dir_all(state_dir)
            .map_err(|e| TailerError::io("creating state directory", state_dir, e))?;
        let path = state_dir.join(STATE_FILE);
        Ok(Checkpointer {
            tmp: durable_file::temp_path(&path),
            journal_path: state_dir.join(JOURNAL_FILE),
            path,
            last: None,
            loaded_generation: 0,
        })
    }

    /// The state file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the state: `None` on first start. A whole tmp file left by an interrupted
    /// save wins over the state file; the journal's changes of the same generation are
    /// applied on top.
    pub fn load(&mut self) -> Result<Option<State>, TailerError> {
        let Some(mut state) = self.load_state_file()? else {
            return Ok(None);
        };
        self.loaded_generation = state.generation;
        self.apply_journal(&mut state)?;
        Ok(Some(state))
    }

    /// Applies the journal's lines of `state`'s generation, up to a torn last line.
    fn apply_journal(&self, state: &mut State) -> Result<(), TailerError> {
        let bytes = match std::fs::read(&self.journal_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(TailerError::io(
                    "reading checkpoint journal",
                    self.journal_path.clone(),
                    e,
                ));
            }
        };
        let mut lines = bytes.split(|b| *b == b'\n');
        let header: Option<JournalHeader> =
            lines.next().and_then(|l| serde_json::from_slice(l).ok());
        if header.is_none_or(|h| h.generation != state.generation) {
            return Ok(());
        }
        let mut by_seq: HashMap<u64, FileCheckpoint> =
            state.files.drain(..).map(|f| (f.seq, f)).collect();
        let mut applied = 0usize;
        for line in lines {
            // Only a line ended by its newline was appended whole.
            let Ok(record) = serde_json::from_slice::<JournalRecord>(line) else {
                break;
            };
            for seq in record.gone {
                by_seq.remove(&seq);
            }
            for f in record.set {
                by_seq.insert(f.seq, f);
            }
            state.next_seq = state.next_seq.max(record.next_seq);
            applied += 1;
        }
        state.files = by_seq.into_values().collect();
        state
            .files
            .sort_by(|a, b| (a.seq, &a.path).cmp(&(b.seq, &b.path)));
        tracing::debug!(records = applied, "applied the checkpoint journal");
        Ok(())
    }

    fn load_state_file(&self) -> Result<Option<State>, TailerError> {
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

    /// Saves `state` crash-safely: what changed since the last save, appended to the
    /// journal, or the whole state file (the first save, or when the journal has outgrown
    /// it). Returns whether anything was written.
    pub fn save(&mut self, state: &State) -> Result<bool, TailerError> {
        self.save_files(
            state.tailer_id,
            state.next_seq,
            state.files.iter().map(|f| (f, false)),
        )
    }

    /// [`Checkpointer::save`] of the state made of `tailer_id`, `next_seq` and `files`,
    /// borrowed: only what changed is copied (the reader's state is mostly closed files
    /// whose entries do not move). Each entry comes with whether the caller knows it is
    /// unchanged since it was last saved (a closed file's entry does not move): such an
    /// entry is only looked up by seq, not compared field by field.
    pub fn save_files<'a>(
        &mut self,
        tailer_id: u64,
        next_seq: u64,
        files: impl Iterator<Item = (&'a FileCheckpoint, bool)> + Clone,
    ) -> Result<bool, TailerError> {
        let compact = self
            .last
            .as_ref()
            .is_none_or(|l| l.journal_bytes > l.state_bytes.max(JOURNAL_MIN_COMPACT_BYTES));
        if compact {
            let mut files: Vec<FileCheckpoint> = files.map(|(f, _)| f.clone()).collect();
            files.sort_by(|a, b| (a.seq, &a.path).cmp(&(b.seq, &b.path)));
            self.compact(&State {
                version: STATE_VERSION,
                tailer_id,
                next_seq,
                files,
                generation: 0,
            })?;
            return Ok(true);
        }
        let Some(last) = self.last.as_mut() else {
            return Ok(false);
        };
        let mut record = JournalRecord {
            next_seq,
            set: Vec::new(),
            gone: Vec::new(),
        };
        // Seqs are unique in a state, so when every saved seq is still there, nothing is
        // gone, and the set of kept seqs (20,000 of them, each checkpoint interval) need
        // not be built.
        let mut still_there = 0usize;
        for (f, unchanged) in files.clone() {
            match last.files.get(&f.seq) {
                Some(saved) => {
                    still_there += 1;
                    if !unchanged && saved != f {
                        record.set.push(f.clone());
                    }
                }
                None => record.set.push(f.clone()),
            }
        }
        if still_there < last.files.len() {
            let kept: HashSet<u64> = files.map(|(f, _)| f.seq).collect();
            record.gone = last
                .files
                .keys()
                .filter(|seq| !kept.contains(seq))
                .copied()
                .collect();
        }
        if record.set.is_empty() && record.gone.is_empty() && record.next_seq == last.next_seq {
            return Ok(false);
        }
        let mut line = serde_json::to_vec(&record).map_err(|e| TailerError::State {
            path: self.journal_path.clone(),
            message: e.to_string(),
        })?;
        line.push(b'\n');
        let io = |e| {
            TailerError::io(
                "appending to checkpoint journal",
                self.journal_path.clone(),
                e,
            )
        };
        last.journal.write_all(&line).map_err(io)?;
        last.journal.sync_data().map_err(io)?;
        last.journal_bytes += line.len() as u64;
        for seq in &record.gone {
            last.files.remove(seq);
        }
        for f in record.set {
            last.files.insert(f.seq, f);
        }
        last.next_seq = record.next_seq;
        Ok(true)
    }

    /// Writes `state` whole as the next generation's state file, then starts that
    /// generation's journal. Also what a clean stop does, so that the state file alone is
    /// complete afterwards.
    pub fn compact(&mut self, state: &State) -> Result<(), TailerError> {
        let generation = self
            .last
            .as_ref()
            .map_or(self.loaded_generation, |l| l.generation)
            + 1;
        let state = State {
            generation,
            ..state.clone()
        };
        let bytes = serde_json::to_vec(&state).map_err(|e| TailerError::State {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        // `durable_file` writes through `checkpoints.json.tmp`, the file `load` recovers.
        durable_file::replace(&self.path, &bytes, durable_file::Durability::Synced)
            .map_err(|e| TailerError::io("saving state file", self.path.clone(), e))?;
        let mut header =
            serde_json::to_vec(&JournalHeader { generation }).map_err(|e| TailerError::State {
                path: self.journal_path.clone(),
                message: e.to_string(),
            })?;
        header.push(b'\n');
        // A crash before this lands leaves the old generation's journal, which `load`
        // ignores: the state file just written already holds all of it.
        durable_file::replace(
            &self.journal_path,
            &header,
            durable_file::Durability::Synced,
        )
        .map_err(|e| {
            TailerError::io("starting checkpoint journal", self.journal_path.clone(), e)
        })?;
        let journal = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.journal_path)
            .map_err(|e| {
                TailerError::io("opening checkpoint journal", self.journal_path.clone(), e)
            })?;
        self.last = Some(Saved {
            generation,
            next_seq: state.next_seq,
            files: state.files.into_iter().map(|f| (f.seq, f)).collect(),
            state_bytes: bytes.len() as u64,
            journal_bytes: header.len() as u64,
            journal,
        });
        Ok(())
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
            generation: 0,
        }
    }

    /// `state` as loaded: the same but for the generation the checkpointer gave it.
    fn loaded(c: &mut Checkpointer) -> Option<State> {
        c.load().unwrap().map(|s| State { generation: 0, ..s })
    }

    #[test]
    fn save_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Checkpointer::new(dir.path()).unwrap();
        assert_eq!(c.load().unwrap(), None);
        c.save(&state(5)).unwrap();
        assert_eq!(loaded(&mut c), Some(state(5)));
        assert!(!dir.path().join("checkpoints.json.tmp").exists());
    }

    #[test]
    fn interrupted_save_recovers_whole_tmp_and_ignores_torn_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Checkpointer::new(dir.path()).unwrap();
        c.save(&state(5)).unwrap();
        // Crash after the tmp file was fsynced, before the rename: the newer state wins.
        let newer = serde_json::to_vec(&state(9)).unwrap();
        std::fs::write(dir.path().join("checkpoints.json.tmp"), &newer).unwrap();
        assert_eq!(loaded(&mut c), Some(state(9)));
        // Crash in the middle of writing the tmp file: the last complete save wins.
        std::fs::write(
            dir.path().join("checkpoints.json.tmp"),
            &newer[..newer.len() / 2],
        )
        .unwrap();
        assert_eq!(loaded(&mut c), Some(state(5)));
        // The next save replaces the torn tmp file.
        c.compact(&state(11)).unwrap();
        assert_eq!(loaded(&mut c), Some(state(11)));
    }

    fn with_offset(mut s: State, offset: u64) -> State {
        s.files[0].offset = offset;
        s
    }

    /// Entries the caller vouches for as unchanged are only looked up by seq: one that is
    /// new is still written, and one that went away is still recorded as gone.
    #[test]
    fn entries_known_unchanged_are_not_compared_but_new_and_gone_ones_are_saved() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Checkpointer::new(dir.path()).unwrap();
        let first = state(5);
        let other = FileCheckpoint {
            seq: 6,
            path: "/x/other.log".into(),
            ..first.files[0].clone()
        };
        assert!(c.save(&first).unwrap());
        // A new entry vouched for as unchanged is not in the saved state: it is written.
        let files = [first.files[0].clone(), other.clone()];
        assert!(
            c.save_files(first.tailer_id, 7, files.iter().map(|f| (f, true)))
                .unwrap()
        );
        // Vouched for and saved: nothing to write.
        assert!(
            !c.save_files(first.tailer_id, 7, files.iter().map(|f| (f, true)))
                .unwrap()
        );
        // The first goes; the other stays, vouched for.
        assert!(
            c.save_files(first.tailer_id, 7, std::iter::once((&other, true)))
                .unwrap()
        );
        let mut again = Checkpointer::new(dir.path()).unwrap();
        let want = State {
            version: STATE_VERSION,
            tailer_id: first.tailer_id,
            next_seq: 7,
            files: vec![other],
            generation: 0,
        };
        assert_eq!(loaded(&mut again), Some(want));
    }

    #[test]
    fn later_saves_append_what_changed_and_load_applies_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Checkpointer::new(dir.path()).unwrap();
        let first = state(5);
        assert!(c.save(&first).unwrap());
        let state_file = std::fs::read(dir.path().join(STATE_FILE)).unwrap();
        // The offset moves, a second file appears, then the first goes.
        let moved = with_offset(state(5), 900);
        assert!(c.save(&moved).unwrap());
        assert!(!c.save(&moved).unwrap(), "nothing changed, nothing written");
        let mut two = moved.clone();
        two.next_seq = 7;
        two.files.push(FileCheckpoint {
            seq: 6,
            path: "/x/other.log".into(),
            ..moved.files[0].clone()
        });
        assert!(c.save(&two).unwrap());
        let mut second_only = two.clone();
        second_only.files.remove(0);
        assert!(c.save(&second_only).unwrap());
        assert_eq!(
            std::fs::read(dir.path().join(STATE_FILE)).unwrap(),
            state_file,
            "the state file is not rewritten for each save"
        );
        let mut again = Checkpointer::new(dir.path()).unwrap();
        assert_eq!(loaded(&mut again), Some(second_only.clone()));

        // A torn last line (a crash mid-append) is ignored: the saves before it stand.
        let journal = dir.path().join(JOURNAL_FILE);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&journal)
            .unwrap();
        f.write_all(br#"{"next_seq":99,"set":[{"pa"#).unwrap();
        assert_eq!(loaded(&mut again), Some(second_only));
    }

    #[test]
    fn a_journal_of_an_older_generation_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Checkpointer::new(dir.path()).unwrap();
        c.save(&state(5)).unwrap();
        c.save(&with_offset(state(5), 100)).unwrap();
        let old_journal = std::fs::read(dir.path().join(JOURNAL_FILE)).unwrap();
        // Folded into a new state file; then a crash is simulated before the journal was
        // reset, leaving the older generation's journal beside the newer state file.
        c.compact(&with_offset(state(5), 300)).unwrap();
        std::fs::write(dir.path().join(JOURNAL_FILE), old_journal).unwrap();
        let mut again = Checkpointer::new(dir.path()).unwrap();
        assert_eq!(loaded(&mut again), Some(with_offset(state(5), 300)));
        // The first save after that start writes a newer generation still.
        again.save(&with_offset(state(5), 400)).unwrap();
        again.save(&with_offset(state(5), 500)).unwrap();
        let mut third = Checkpointer::new(dir.path()).unwrap();
        assert_eq!(loaded(&mut third), Some(with_offset(state(5), 500)));
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
