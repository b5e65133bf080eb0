//! `Discovery`: expands every source's pattern into the files that exist now.
//!
//! Only the directory named by a pattern's leading literal components is walked, and no
//! deeper than the pattern can match (any depth only with `**`). Symbolic links to
//! directories are not followed, so a link loop cannot trap the walk. A file whose crawl
//! component is invalid is reported (logged and counted) once, then skipped quietly.
//!
//! A pass lists only the directories that changed since they were last listed: creating,
//! removing or renaming an entry changes a directory's modification time, so a directory
//! whose time is the same holds the same names, and one `stat` stands in for listing it
//! and matching every name against the patterns again. With 20,000 files over 2,000
//! directories, that is the difference between matching 20,000 paths every discovery
//! interval and matching none. Two things keep it safe:
//! - a listing is trusted only once its directory's time is [`RACY_MARGIN`] older than the
//!   listing (a change within the same clock tick as the listing leaves the time as it
//!   was; such a directory is listed again until its time is old enough);
//! - every [`FULL_RESCAN_EVERY`], every directory is listed again whatever its time
//!   (clock steps, file systems with coarse or odd timestamps).
//!
//! Where notify watches a directory, even the `stat` is skipped: a [`DirWatch`] says
//! whether the directory has been watched since its listing was last confirmed and no
//! event named it or an entry in it since. 2,000 directories then cost no system call
//! at all in a pass where nothing was created, instead of 2,000 path lookups.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use contracts::CrawlId;

use crate::config::SourceConfig;
use crate::crawl_matcher::{CrawlMatcher, PathMatch};
use crate::error::TailerError;
use crate::events::TailerEvents;

/// How much older than its listing a directory's modification time must be for the
/// listing to be trusted while the time stays the same. Longer than the coarsest
/// timestamp granularity in common use (1 s, on some network file systems).
pub const RACY_MARGIN: Duration = Duration::from_secs(2);

/// How often every directory is listed again whatever its modification time.
pub const FULL_RESCAN_EVERY: Duration = Duration::from_secs(60);

/// A file to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its path.
    pub path: PathBuf,
    /// Index of the (first) source whose pattern matched it.
    pub source: usize,
    /// Its crawl.
    pub crawl: CrawlId,
}

/// One directory as last listed for one pattern.
#[derive(Debug)]
struct Listing {
    modified: SystemTime,
    /// Whether `modified` was [`RACY_MARGIN`] older than the listing.
    trusted: bool,
    /// When the names were last known to be these (taken before the `stat` that said so).
    confirmed: Instant,
    /// The pass that last reached it: a directory no pass reaches any more is dropped.
    pass: u64,
    subdirs: Vec<PathBuf>,
}

/// What a notify watch knows about directories, so that a pass can skip the `stat` of a
/// directory nothing happened in.
pub trait DirWatch {
    /// Whether `dir` was already watched at `since` and no event has named it or an entry
    /// in it since then (events not yet handed over count as not yet happened: the next
    /// pass sees them). When in doubt, false.
    fn unchanged_since(&self, dir: &Path, since: Instant) -> bool;
}

/// No watches: every directory is looked at.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoWatch;

impl DirWatch for NoWatch {
    fn unchanged_since(&self, _dir: &Path, _since: Instant) -> bool {
        false
    }
}

/// The compiled patterns of every source.
#[derive(Debug)]
pub struct Discovery {
    matchers: Vec<CrawlMatcher>,
    reported: HashSet<PathBuf>,
    /// Per pattern, its directories as last listed.
    /// Keyed by the path's bytes: hashing a `Path` walks its components, several
    /// times slower, and a pass looks up every directory several times.
    listings: Vec<HashMap<OsString, Listing>>,
    last_full: Option<Instant>,
    /// Numbers the passes (see `Listing::pass`).
    pass: u64,
}

impl Discovery {
    /// Compiles the sources' patterns.
    pub fn new(sources: &[SourceConfig]) -> Result<Discovery, TailerError> {
        let matchers: Vec<CrawlMatcher> = sources
            .iter()
            .map(CrawlMatcher::new)
            .collect::<Result<_, _>>()?;
        Ok(Discovery {
            listings: matchers.iter().map(|_| HashMap::new()).collect(),
            matchers,
            reported: HashSet::new(),
            last_full: None,
            pass: 0,
        })
    }

    /// The compiled patterns, in source order.
    pub fn matchers(&self) -> &[CrawlMatcher] {
        &self.matchers
    }

    /// The matching files (each once; the first source that matches it wins) in every
    /// directory listed in this pass: those that changed since they were last listed, all
    /// of them in the first pass and every [`FULL_RESCAN_EVERY`]. A file in a directory
    /// that did not change was returned before; one the caller could not take then must
    /// be handed to [`Discovery::revisit`] to be returned again.
    ///
    /// `watch` says which directories notify watches and nothing happened in: those are
    /// not even `stat`ed (except in a full pass).
    pub fn scan(&mut self, events: &TailerEvents, watch: &dyn DirWatch) -> Vec<Found> {
        let full = self
            .last_full
            .is_none_or(|t| t.elapsed() >= FULL_RESCAN_EVERY);
        if full {
            self.last_full = Some(Instant::now());
        }
        self.pass += 1;
        let pass = self.pass;
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for source in 0..self.matchers.len() {
            let mut changed = Vec::new();
            let root = self.matchers[source].root().to_path_buf();
            let walk = Walk {
                source,
                full,
                pass,
                watch,
                events,
            };
            self.walk(&walk, &root, 1, &mut changed);
            self.listings[source].retain(|_, l| l.pass == pass);
            for (path, crawl) in changed {
                // An earlier pattern matching it takes it, whether or not its own
                // directory listing changed in this pass.
                let earlier = self.matchers[..source]
                    .iter()
                    .any(|m| matches!(m.classify(&path), PathMatch::Crawl(_)));
                if !earlier && seen.insert(path.clone()) {
                    out.push(Found {
                        path,
                        source,
                        crawl,
                    });
                }
            }
        }
        // A stable order, so new files get their seqs the same way every run. Byte order:
        // comparing paths component by component costs several times more, which shows
        // when tens of thousands of files are listed at once.
        out.sort_unstable_by(|a, b| a.path.as_os_str().cmp(b.path.as_os_str()));
        out
    }

    /// Lists `path`'s directory again in the next pass, so that `path` is returned again
    /// (the caller could not open it, or had no descriptor to spare).
    pub fn revisit(&mut self, path: &Path) {
        if let Some(dir) = path.parent() {
            for listings in &mut self.listings {
                listings.remove(dir.as_os_str());
            }
        }
    }

    fn walk(
        &mut self,
        w: &Walk<'_>,
        dir: &Path,
        depth: usize,
        changed: &mut Vec<(PathBuf, CrawlId)>,
    ) {
        let source = w.source;
        // Quiet under a watch since its listing was confirmed: the same names, no `stat`.
        let quiet = !w.full
            && self.listings[source]
                .get(dir.as_os_str())
                .is_some_and(|l| l.trusted && w.watch.unchanged_since(dir, l.confirmed));
        if !quiet {
            let looked_at = Instant::now();
            let Ok(modified) = std::fs::metadata(dir).and_then(|m| m.modified()) else {
                return;
            };
            let unchanged = !w.full
                && self.listings[source]
                    .get(dir.as_os_str())
                    .is_some_and(|l| l.trusted && l.modified == modified);
            if unchanged {
                if let Some(l) = self.listings[source].get_mut(dir.as_os_str()) {
                    l.confirmed = looked_at;
                }
            } else {
                let listed_at = SystemTime::now();
                let (subdirs, files) = self.list(source, dir, depth, w.events);
                changed.extend(files);
                let trusted = listed_at
                    .duration_since(modified)
                    .is_ok_and(|age| age >= RACY_MARGIN);
                self.listings[source].insert(
                    dir.as_os_str().to_owned(),
                    Listing {
                        modified,
                        trusted,
                        confirmed: looked_at,
                        pass: w.pass,
                        subdirs,
                    },
                );
            }
        }
        // The subdirectories are lent out while they are walked (no copy per pass), and
        // put back after: a walk below never reaches this directory again (symbolic
        // links to directories are not followed).
        let subdirs = match self.listings[source].get_mut(dir.as_os_str()) {
            Some(l) => {
                l.pass = w.pass;
                std::mem::take(&mut l.subdirs)
            }
            None => return,
        };
        for sub in &subdirs {
            self.walk(w, sub, depth + 1, changed);
        }
        if let Some(l) = self.listings[source].get_mut(dir.as_os_str()) {
            l.subdirs = subdirs;
        }
    }

    /// Lists `dir`: the subdirectories to walk (within the pattern's depth) and the files
    /// the pattern matches.
    fn list(
        &mut self,
        source: usize,
        dir: &Path,
        depth: usize,
        events: &TailerEvents,
    ) -> (Vec<PathBuf>, Vec<(PathBuf, CrawlId)>) {
        let m = &self.matchers[source];
        let mut subdirs = Vec::new();
        let mut files = Vec::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!(dir = %dir.display(), error = %e, "cannot list directory");
                return (subdirs, files);
            }
        };
        for entry in entries.filter_map(Result::ok) {
            let Ok(ft) = entry.file_type() else { continue };
            let path = entry.path();
            if ft.is_dir() {
                if m.max_depth().is_none_or(|max| depth < max) {
                    subdirs.push(path);
                }
                continue;
            }
            if !(ft.is_file() || (ft.is_symlink() && path.is_file())) {
                continue;
            }
            match m.classify(&path) {
                PathMatch::No => {}
                PathMatch::Crawl(crawl) => files.push((path, crawl)),
                PathMatch::BadCrawl(why) => {
                    if self.reported.insert(path.clone()) {
                        tracing::warn!(path = %path.display(), source = m.pattern(), reason = %why, "skipping a file whose crawl is not a valid crawl id");
                        events.crawl_rejected();
                    }
                }
            }
        }
        (subdirs, files)
    }
}

/// What one pass over one source's directories is given.
struct Walk<'a> {
    source: usize,
    full: bool,
    pass: u64,
    watch: &'a dyn DirWatch,
    events: &'a TailerEvents,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SourceFormat, StartAt};

    #[test]
    fn finds_files_by_pattern_and_reports_bad_crawls_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for p in [
            "jobs/c1/a/logs/crawl.log",
            "jobs/c1/a/logs/crawl.log.1",
            "jobs/.x/logs/crawl.log",
            "jobs/c2/logs/crawl.log",
        ] {
            put(root, p, "x\n");
        }
        let source = source(format!(
            "{}/jobs/{{crawl}}/**/logs/crawl.log",
            root.display()
        ));
        let mut d = Discovery::new(&[source]).unwrap();
        let events = TailerEvents::default();
        let found = d.scan(&events, &NoWatch);
        let got: Vec<(String, String)> = found
            .iter()
            .map(|f| {
                (
                    f.path.strip_prefix(root).unwrap().display().to_string(),
                    f.crawl.to_string(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("jobs/c1/a/logs/crawl.log".into(), "c1".into()),
                ("jobs/c2/logs/crawl.log".into(), "c2".into())
            ]
        );
        d.scan(&events, &NoWatch);
        assert_eq!(
            events
                .crawl_rejected_total
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }

    /// A source of the files that match `path`, crawl taken from the path.
    fn source(path: String) -> SourceConfig {
        SourceConfig {
            path,
            format: SourceFormat::Auto,
            crawl: None,
            app: None,
            exclude: vec![],
            multiline: true,
            start_at: StartAt::Beginning,
        }
    }

    /// Every `crawl.log` under `<root>/jobs/<crawl>/`.
    fn crawl_log_source(root: &Path) -> SourceConfig {
        source(format!("{}/jobs/{{crawl}}/**/crawl.log", root.display()))
    }

    /// Sets a directory's modification time to a minute ago, as if nothing had changed in
    /// it for that long.
    fn age(dir: &Path) {
        let past = SystemTime::now() - Duration::from_secs(60);
        std::fs::File::open(dir)
            .unwrap()
            .set_modified(past)
            .unwrap();
    }

    /// Writes `text` to the file `rel` under `root`, making its directories.
    fn put(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// `jobs/c1/crawl.log` under `root` in directories unchanged for a minute, and a
    /// discovery of `crawl_log_source(root)` that has not scanned yet.
    fn quiet_job(root: &Path) -> Discovery {
        put(root, "jobs/c1/crawl.log", "x\n");
        age(&root.join("jobs"));
        age(&root.join("jobs/c1"));
        Discovery::new(&[crawl_log_source(root)]).unwrap()
    }

    fn names(found: &[Found], root: &Path) -> Vec<String> {
        found
            .iter()
            .map(|f| f.path.strip_prefix(root).unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn a_pass_lists_only_directories_that_changed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for c in ["c1", "c2"] {
            put(root, &format!("jobs/{c}/logs/crawl.log"), "x\n");
        }
        for d in ["jobs", "jobs/c1", "jobs/c1/logs", "jobs/c2", "jobs/c2/logs"] {
            age(&root.join(d));
        }
        let mut d = Discovery::new(&[crawl_log_source(root)]).unwrap();
        let events = TailerEvents::default();
        assert_eq!(
            names(&d.scan(&events, &NoWatch), root),
            ["jobs/c1/logs/crawl.log", "jobs/c2/logs/crawl.log"]
        );
        assert!(d.scan(&events, &NoWatch).is_empty(), "nothing changed");

        // A new file deep down: its directory changed, the others did not.
        put(root, "jobs/c2/logs/more/crawl.log", "y\n");
        assert_eq!(
            names(&d.scan(&events, &NoWatch), root),
            ["jobs/c2/logs/crawl.log", "jobs/c2/logs/more/crawl.log"],
            "the changed directory is listed whole"
        );
        // Both just changed: listed again until their times are old enough to trust.
        assert_eq!(
            names(&d.scan(&events, &NoWatch), root),
            ["jobs/c2/logs/crawl.log", "jobs/c2/logs/more/crawl.log"]
        );
        age(&root.join("jobs/c2/logs"));
        age(&root.join("jobs/c2/logs/more"));
        d.scan(&events, &NoWatch);
        assert!(d.scan(&events, &NoWatch).is_empty());

        // A file the caller could not take is returned again once revisited.
        d.revisit(&root.join("jobs/c1/logs/crawl.log"));
        assert_eq!(
            names(&d.scan(&events, &NoWatch), root),
            ["jobs/c1/logs/crawl.log"]
        );
        assert!(d.scan(&events, &NoWatch).is_empty());

        // A rotation (rename, then a new file) changes the directory.
        let log = root.join("jobs/c1/logs/crawl.log");
        std::fs::rename(&log, root.join("jobs/c1/logs/crawl.log.1")).unwrap();
        std::fs::write(&log, "z\n").unwrap();
        assert_eq!(
            names(&d.scan(&events, &NoWatch), root),
            ["jobs/c1/logs/crawl.log"]
        );
    }

    /// Notify's word for every directory: quiet, or named by an event.
    struct Told {
        quiet: bool,
    }

    impl DirWatch for Told {
        fn unchanged_since(&self, _dir: &Path, _since: Instant) -> bool {
            self.quiet
        }
    }

    /// A directory notify vouches for is not looked at, so a file created in it without
    /// an event naming it is not found; once an event names the directory, it is.
    #[test]
    fn a_watched_quiet_directory_is_not_looked_at_until_an_event_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut d = quiet_job(root);
        let events = TailerEvents::default();
        assert_eq!(
            names(&d.scan(&events, &Told { quiet: true }), root),
            ["jobs/c1/crawl.log"]
        );

        put(root, "jobs/c1/more/crawl.log", "y\n");
        assert!(
            d.scan(&events, &Told { quiet: true }).is_empty(),
            "a quiet watched directory costs no stat and no listing"
        );
        assert_eq!(
            names(&d.scan(&events, &Told { quiet: false }), root),
            ["jobs/c1/crawl.log", "jobs/c1/more/crawl.log"],
            "named by an event: looked at and listed"
        );
    }

    #[test]
    fn a_full_rescan_lists_every_directory_again() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut d = quiet_job(root);
        let events = TailerEvents::default();
        assert_eq!(d.scan(&events, &NoWatch).len(), 1);
        assert!(d.scan(&events, &NoWatch).is_empty());
        d.last_full = Some(Instant::now() - FULL_RESCAN_EVERY);
        assert_eq!(d.scan(&events, &NoWatch).len(), 1);
    }
}
