//! The tailer's id: a random u64 kept as 16 lowercase hex digits in `<state_dir>/tailer.id`.
//!
//! It is the first part of every event id (DESIGN.md contract 1), so it must never change
//! for a state directory: both the reading side and the shipping side call
//! [`load_or_create`], and whichever runs first creates the file. Creation writes a
//! uniquely named temporary file and hard-links it into place, which fails if the file
//! already exists, so two callers racing at start-up still agree on one id.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The file's name inside the state directory.
pub const TAILER_ID_FILE: &str = "tailer.id";

/// Why the tailer id could not be read or created.
#[derive(Debug, thiserror::Error)]
pub enum TailerIdError {
    /// The file or its directory could not be read or written.
    #[error("tailer id file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file holds something else than 16 hex digits.
    #[error(
        "tailer id file {path} holds {found:?}, not 16 hex digits: restore it from a backup (event ids depend on it) or remove it to start a new tailer identity"
    )]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What it holds (cut short).
        found: String,
    },
}

/// Reads `<state_dir>/tailer.id`, creating it with a new random id if it does not exist.
pub fn load_or_create(state_dir: &Path) -> Result<u64, TailerIdError> {
    let path = state_dir.join(TAILER_ID_FILE);
    match read(&path) {
        Err(TailerIdError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
        other => return other,
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TailerIdError::Io { path, source }
    };
    std::fs::create_dir_all(state_dir).map_err(io(state_dir))?;
    let id: u64 = rand::random();
    let tmp = state_dir.join(format!(
        ".{TAILER_ID_FILE}.{}.{:016x}.tmp",
        std::process::id(),
        rand::random::<u64>()
    ));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(f, "{id:016x}")?;
        f.sync_all()
    })();
    if let Err(source) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(TailerIdError::Io { path: tmp, source });
    }
    // A hard link never replaces an existing file: if another caller won the race, its
    // id stands and is read back below.
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            if let Ok(dir) = std::fs::File::open(state_dir) {
                let _ = dir.sync_all();
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => return Err(TailerIdError::Io { path, source }),
    }
    read(&path)
}

fn read(path: &Path) -> Result<u64, TailerIdError> {
    let text = std::fs::read_to_string(path).map_err(|source| TailerIdError::Io {
        path: path.into(),
        source,
    })?;
    let t = text.trim();
    if t.len() != 16 {
        return Err(TailerIdError::Malformed {
            path: path.into(),
            found: t.chars().take(40).collect(),
        });
    }
    u64::from_str_radix(t, 16).map_err(|_| TailerIdError::Malformed {
        path: path.into(),
        found: t.chars().take(40).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_stable() {
        let d = tempfile::tempdir().unwrap();
        let state = d.path().join("state");
        let a = load_or_create(&state).unwrap();
        let b = load_or_create(&state).unwrap();
        assert_eq!(a, b);
        let text = std::fs::read_to_string(state.join(TAILER_ID_FILE)).unwrap();
        assert_eq!(text.trim(), format!("{a:016x}"));
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(&state).unwrap().count(), 1);
    }

    #[test]
    fn racing_callers_agree() {
        let d = tempfile::tempdir().unwrap();
        let state = d.path().to_path_buf();
        let ids: Vec<u64> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| s.spawn(|| load_or_create(&state).unwrap()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(ids.iter().all(|&i| i == ids[0]), "{ids:?}");
    }

    #[test]
    fn malformed_file_is_named() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(TAILER_ID_FILE), "zz\n").unwrap();
        let e = load_or_create(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("tailer.id") && e.contains("16 hex digits"),
            "{e}"
        );
    }
}
