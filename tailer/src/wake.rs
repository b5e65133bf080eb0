//! `Wake`: what ends the reader's wait between cycles, and which paths changed meanwhile.
//!
//! inotify, read on the reader's own thread. Events that come while the reader reads or
//! coalesces wait in the kernel's queue, which keeps one copy of an event repeated back to
//! back, so a file appended to a hundred times a second costs one read of the queue per
//! cycle. (The `notify` crate, used before, woke a thread of its own for every write and
//! handed each event over through a lock and a channel: a third of the tailer's CPU at a
//! steady 5,000 lines/s once reading was coalesced.) Without inotify (turned off, not
//! available, or out of watches) polling alone covers every file, as before.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use tokio_util::sync::CancellationToken;

/// Paths kept between two looks before the report counts as an overflow.
const CHANGED_PATHS_MAX: usize = 100_000;

/// Bytes read from the queue at a time: room for a few hundred events with names.
const EVENT_BUFFER_BYTES: usize = 64 * 1024;

/// What a watch reports: writes, truncation and metadata, and entries created, removed or
/// renamed in the directory or the directory itself going. Not opens, reads or closes:
/// the reader's own opens and directory listings would report them.
fn watch_mask() -> WatchMask {
    WatchMask::MODIFY
        | WatchMask::ATTRIB
        | WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
}

/// What the watches reported since the reader last asked.
#[derive(Default)]
pub(crate) struct ChangedPaths {
    /// Every path an event named: files to look at.
    pub paths: HashSet<PathBuf>,
    /// Of those, the paths named by a removal or a rename, or a watched directory whose
    /// watch went: a watched directory among them may have lost its watch.
    pub moved: HashSet<PathBuf>,
    /// Of those, the paths named by anything but a write: an entry made, removed or
    /// renamed, or changed metadata. Only these can mean a directory holds a file not
    /// found yet; a write to a file does not, and listing the directory of every written
    /// file (200 a second among 20,000) was the largest cost of a busy tailer.
    pub entries: HashSet<PathBuf>,
    /// Events were lost (the kernel's queue overflowed, or too many paths to keep):
    /// everything must be looked at.
    pub overflow: bool,
}

impl ChangedPaths {
    fn is_empty(&self) -> bool {
        self.paths.is_empty() && self.moved.is_empty() && !self.overflow
    }
}

/// Wakes the reader when a watched directory changes. If inotify cannot start, or cannot
/// watch a directory (the watch limit), that is logged once and polling alone covers it.
pub(crate) struct Wake {
    inotify: Option<Inotify>,
    /// The directory of each watch, to name the paths its events are about.
    dirs: HashMap<WatchDescriptor, PathBuf>,
    /// Directories a watch was asked for (whether or not it took).
    watched: HashSet<OsString>,
    /// Directories whose watch took, and since when: their events name what changes in
    /// them. Both keyed by the path's bytes (a `Path`'s hash walks its components).
    pub(crate) watching: HashMap<OsString, Instant>,
    changed: ChangedPaths,
    buffer: Vec<u8>,
    warned: bool,
}

impl Wake {
    pub(crate) fn new(use_notify: bool) -> Wake {
        let inotify = if use_notify {
            match Inotify::init() {
                Ok(i) => Some(i),
                Err(e) => {
                    tracing::warn!(error = %e, "inotify is unavailable: following files by polling only");
                    None
                }
            }
        } else {
            tracing::info!(
                "notify turned off (use_notify = false): following files by polling only"
            );
            None
        };
        Wake {
            warned: inotify.is_none(),
            inotify,
            dirs: HashMap::new(),
            watched: HashSet::new(),
            watching: HashMap::new(),
            changed: ChangedPaths::default(),
            buffer: vec![0u8; EVENT_BUFFER_BYTES],
        }
    }

    /// Whether events report changes to `path` (its directory is watched).
    pub(crate) fn covers(&self, path: &Path) -> bool {
        path.parent()
            .is_some_and(|d| self.watching.contains_key(d.as_os_str()))
    }

    /// What the watches reported since the last call: the paths named, the moved ones and
    /// those with new or changed entries among them, and whether some were lost.
    pub(crate) fn take_changed(&mut self) -> ChangedPaths {
        self.drain();
        std::mem::take(&mut self.changed)
    }

    /// A watched directory that a removal or rename names may have been deleted, renamed
    /// or replaced: its watch may be dead, so it counts as unwatched (polled, `stat`ed)
    /// until a file found in it watches it again. Returns whether any was forgotten.
    pub(crate) fn forget_named_dirs(&mut self, named: &HashSet<PathBuf>) -> bool {
        let mut forgot = false;
        if self.watching.is_empty() {
            return forgot;
        }
        for p in named {
            if self.watching.remove(p.as_os_str()).is_some() {
                self.watched.remove(p.as_os_str());
                forgot = true;
                tracing::debug!(dir = %p.display(), "an event named a watched directory: watching it again when a file in it is found");
            }
        }
        forgot
    }

    pub(crate) fn watch_parent(&mut self, path: &Path) {
        if let Some(dir) = path.parent() {
            self.watch(dir);
        }
    }

    pub(crate) fn watch(&mut self, dir: &Path) {
        let Some(inotify) = self.inotify.as_mut() else {
            return;
        };
        if self.watched.contains(dir.as_os_str()) {
            return;
        }
        self.watched.insert(dir.as_os_str().to_owned());
        match inotify.watches().add(dir, watch_mask()) {
            Ok(wd) => {
                // The kernel hands out the same descriptor for the same directory, and a
                // new one once a removed directory's path is made again.
                self.dirs.insert(wd, dir.to_path_buf());
                self.watching
                    .insert(dir.as_os_str().to_owned(), Instant::now());
            }
            Err(e) => {
                if !self.warned {
                    self.warned = true;
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot watch a directory (inotify watch limit?): it and any others that fail are followed by polling");
                }
            }
        }
    }

    /// Waits for an event, `timeout`, or `shutdown`, whichever comes first. The wait is cut
    /// in slices so a stop is seen within `STOP_CHECK` even under a long poll interval.
    pub(crate) fn wait(&mut self, timeout: Duration, shutdown: &CancellationToken) {
        const STOP_CHECK: Duration = Duration::from_millis(50);
        let deadline = Instant::now() + timeout;
        loop {
            if !self.changed.is_empty() {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || shutdown.is_cancelled() {
                return;
            }
            let slice = left.min(STOP_CHECK);
            match &self.inotify {
                Some(inotify) => {
                    if readable_within(inotify.as_raw_fd(), slice) {
                        self.drain();
                    }
                }
                None => std::thread::sleep(slice),
            }
        }
    }

    /// Reads every queued event into `changed`, without waiting.
    fn drain(&mut self) {
        let Some(inotify) = self.inotify.as_mut() else {
            return;
        };
        loop {
            let events = match inotify.read_events(&mut self.buffer) {
                Ok(events) => events,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Nothing is known about what changed: every file is looked at.
                    tracing::warn!(error = %e, "cannot read inotify events: looking at every file");
                    self.changed.overflow = true;
                    return;
                }
            };
            let mut any = false;
            for event in events {
                any = true;
                let c = &mut self.changed;
                if event.mask.contains(EventMask::Q_OVERFLOW) {
                    c.overflow = true;
                    continue;
                }
                let Some(dir) = self.dirs.get(&event.wd) else {
                    continue;
                };
                let path = match event.name {
                    Some(name) => dir.join(name),
                    None => dir.clone(),
                };
                let moved = event.mask.intersects(
                    EventMask::DELETE
                        | EventMask::MOVED_FROM
                        | EventMask::MOVED_TO
                        | EventMask::DELETE_SELF
                        | EventMask::MOVE_SELF
                        | EventMask::IGNORED,
                );
                if event.mask.contains(EventMask::IGNORED) {
                    // The watch is gone (its directory deleted, or on a file system
                    // unmounted): the descriptor may be handed out again.
                    self.dirs.remove(&event.wd);
                }
                if c.paths.len() >= CHANGED_PATHS_MAX {
                    c.overflow = true;
                    continue;
                }
                if moved {
                    c.moved.insert(path.clone());
                }
                if event.mask.intersects(!EventMask::MODIFY) {
                    c.entries.insert(path.clone());
                }
                c.paths.insert(path);
            }
            if !any {
                return;
            }
        }
    }
}

/// Whether `fd` becomes readable within `timeout`.
#[allow(unsafe_code)]
fn readable_within(fd: std::os::fd::RawFd, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd, and its count is 1; `fd` stays open (the `Inotify` owning
    // it is borrowed by the caller for the call).
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    rc > 0 && pfd.revents & libc::POLLIN != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits (bounded) until the watch has reported `path`.
    fn take_once_named(wake: &mut Wake, path: &Path) -> ChangedPaths {
        let shutdown = CancellationToken::new();
        let mut all = ChangedPaths::default();
        for _ in 0..100 {
            wake.wait(Duration::from_millis(100), &shutdown);
            let c = wake.take_changed();
            all.paths.extend(c.paths);
            all.moved.extend(c.moved);
            all.entries.extend(c.entries);
            all.overflow |= c.overflow;
            if all.paths.contains(path) {
                break;
            }
        }
        all
    }

    #[test]
    fn a_write_names_the_file_but_not_a_new_entry_and_a_creation_names_both() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.log");
        std::fs::write(&old, b"first\n").unwrap();
        let mut wake = Wake::new(true);
        wake.watch(dir.path());
        assert!(wake.covers(&old), "inotify is available in tests");

        let mut f = std::fs::OpenOptions::new().append(true).open(&old).unwrap();
        std::io::Write::write_all(&mut f, b"second\n").unwrap();
        let c = take_once_named(&mut wake, &old);
        assert!(c.paths.contains(&old), "the written file is named");
        assert!(
            !c.entries.contains(&old),
            "a write is no reason to list the directory again"
        );

        let new = dir.path().join("new.log");
        std::fs::write(&new, b"line\n").unwrap();
        let c = take_once_named(&mut wake, &new);
        assert!(c.paths.contains(&new));
        assert!(c.entries.contains(&new), "a new entry lists its directory");
    }
}
