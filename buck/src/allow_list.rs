//! `AllowList`: the tailer public keys this buck accepts, from the config and from a file
//! that is re-read when it changes (checked at each hello: one `stat`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use contracts::keys::parse_public_key;
use durable_file::FileStamp;

use crate::config::BuckConfig;
use crate::error::ConfigError;

/// The accepted tailer keys.
pub struct AllowList {
    fixed: HashSet<[u8; 32]>,
    file: Option<PathBuf>,
    // A std Mutex: held only to compare a stamp and swap a set, never across an await.
    loaded: Mutex<Loaded>,
}

#[derive(Default)]
struct Loaded {
    stamp: Option<FileStamp>,
    keys: HashSet<[u8; 32]>,
}

impl AllowList {
    /// Builds the list; the file, if configured, must be readable now.
    pub fn new(config: &BuckConfig) -> Result<AllowList, ConfigError> {
        let mut fixed = HashSet::new();
        for (i, k) in config.allowed_tailers.iter().enumerate() {
            let key = parse_public_key(k, &format!("allowed_tailers[{i}]")).map_err(|e| {
                ConfigError::Invalid {
                    path: "allowed_tailers".into(),
                    message: e.to_string(),
                }
            })?;
            fixed.insert(*key.as_bytes());
        }
        let list = AllowList {
            fixed,
            file: config.allowed_tailers_file.clone(),
            loaded: Mutex::new(Loaded::default()),
        };
        if let Some(path) = &list.file {
            let keys = read_keys(path).map_err(|source| ConfigError::AllowList {
                path: path.clone(),
                source,
            })?;
            let mut l = list.loaded.lock().unwrap_or_else(|p| p.into_inner());
            l.stamp = FileStamp::of(path);
            l.keys = keys;
        }
        if list.fixed.is_empty() && list.file.is_none() {
            tracing::warn!(
                "no allowed_tailers or allowed_tailers_file: every tailer will be refused"
            );
        }
        Ok(list)
    }

    /// Whether `key` may connect. Re-reads the file first if it changed; an unreadable
    /// file keeps the previous keys (and is logged).
    pub fn allows(&self, key: &[u8; 32]) -> bool {
        if self.fixed.contains(key) {
            return true;
        }
        let Some(path) = &self.file else { return false };
        let mut l = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        let now = FileStamp::of(path);
        if now != l.stamp {
            match read_keys(path) {
                Ok(keys) => {
                    tracing::info!(path = %path.display(), keys = keys.len(), "allowed tailers file re-read");
                    l.keys = keys;
                    l.stamp = now;
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "allowed tailers file unreadable; keeping the previous keys")
                }
            }
        }
        l.keys.contains(key)
    }
}

fn read_keys(path: &Path) -> std::io::Result<HashSet<[u8; 32]>> {
    let text = std::fs::read_to_string(path)?;
    let mut keys = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        match parse_public_key(line, &format!("{} line {}", path.display(), n + 1)) {
            Ok(k) => {
                keys.insert(*k.as_bytes());
            }
            Err(e) => tracing::warn!(error = %e, "skipping a bad line of the allowed tailers file"),
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::keys::KeyPair;

    #[test]
    fn file_is_re_read_when_it_changes() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("tailers.pub");
        let (a, b) = (KeyPair::generate(), KeyPair::generate());
        std::fs::write(
            &path,
            format!("# fleet\n{}  # host a\nnot-a-key\n", a.public_text()),
        )
        .unwrap();
        let mut c = BuckConfig::new("b", d.path());
        c.allowed_tailers_file = Some(path.clone());
        let list = AllowList::new(&c).unwrap();
        assert!(list.allows(a.public().as_bytes()));
        assert!(!list.allows(b.public().as_bytes()));
        // A different size is enough to notice the change even within one mtime tick.
        std::fs::write(&path, format!("{}\n{}\n", a.public_text(), b.public_text())).unwrap();
        assert!(list.allows(b.public().as_bytes()));
    }
}
