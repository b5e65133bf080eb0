//! `DiskEpisodes`: a full (or read-only) disk logged once per episode, counted, and named
//! in health until it ends.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::fault::StorageFault;
use crate::headroom::free_space;

/// One agent's storage episodes. An episode starts at the first fault (or headroom
/// breach) and ends when a write that needs space succeeds again; in between the agent
/// logs nothing more about it, so a pause of hours is one warning and one info line.
#[derive(Debug, Default)]
pub struct DiskEpisodes {
    episodes: AtomicU64,
    current: Mutex<Option<String>>,
}

impl DiskEpisodes {
    /// Notes that work on `path` is paused for `why`. Logs and counts only when this
    /// starts an episode; returns whether it did.
    pub fn paused(&self, agent: &str, path: &Path, why: &str) -> bool {
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if cur.is_some() {
            return false;
        }
        let free = free_space(path)
            .map(|s| format!("{} bytes free of {}", s.available, s.total))
            .unwrap_or_else(|e| format!("free space unknown: {e}"));
        let reason = format!("{why} at {} ({free})", path.display());
        let advice = if why == StorageFault::ReadOnly.name() {
            "work that writes is paused and retried; a file system goes read-only after an I/O error: read the kernel log (dmesg), stop the agent, repair (fsck) and mount it read-write, then start the agent again (it resumes from its last saved state, nothing is lost)"
        } else {
            "work that needs space is paused and retried until space returns; free space on that file system, or grow it"
        };
        tracing::warn!(agent, path = %path.display(), "{reason}: {advice}");
        self.episodes.fetch_add(1, Ordering::Relaxed);
        *cur = Some(reason);
        true
    }

    /// Notes a storage fault from a write to `path`; see [`paused`](Self::paused).
    pub fn fault(&self, agent: &str, path: &Path, fault: StorageFault) -> bool {
        self.paused(agent, path, fault.name())
    }

    /// Notes that work needing space succeeded: ends the episode, if one was running.
    pub fn resumed(&self, agent: &str) {
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(reason) = cur.take() {
            tracing::info!(agent, "space is back ({reason} is over): work resumed");
        }
    }

    /// The running episode, for health: `None` when there is none.
    pub fn reason(&self) -> Option<String> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Episodes started so far.
    pub fn count(&self) -> u64 {
        self.episodes.load(Ordering::Relaxed)
    }

    /// 1 while an episode runs, else 0.
    pub fn active(&self) -> u64 {
        u64::from(self.reason().is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_episode_is_counted_once_and_ends_on_resume() {
        let d = tempfile::tempdir().unwrap();
        let e = DiskEpisodes::default();
        assert_eq!((e.count(), e.active()), (0, 0));
        assert!(e.fault("tailer", d.path(), StorageFault::NoSpace));
        assert!(!e.fault("tailer", d.path(), StorageFault::NoSpace));
        assert!(!e.paused("tailer", d.path(), "below headroom"));
        assert_eq!((e.count(), e.active()), (1, 1));
        let r = e.reason().unwrap();
        assert!(
            r.starts_with("disk full at ") && r.contains("bytes free"),
            "{r}"
        );
        e.resumed("tailer");
        assert_eq!((e.count(), e.active()), (1, 0));
        assert!(e.fault("tailer", d.path(), StorageFault::ReadOnly));
        assert_eq!(e.count(), 2);
    }
}
