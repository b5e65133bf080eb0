//! `Discovery`: expands every source's pattern into the files that exist now.
//!
//! Only the directory named by a pattern's leading literal components is walked, and no
//! deeper than the pattern can match (any depth only with `**`). Symbolic links to
//! directories are not followed, so a link loop cannot trap the walk. A file whose crawl
//! component is invalid is reported (logged and counted) once, then skipped quietly.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use contracts::CrawlId;

use crate::config::SourceConfig;
use crate::crawl_matcher::{CrawlMatcher, PathMatch};
use crate::error::TailerError;
use crate::events::TailerEvents;

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

/// The compiled patterns of every source.
#[derive(Debug)]
pub struct Discovery {
    matchers: Vec<CrawlMatcher>,
    reported: HashSet<PathBuf>,
}

impl Discovery {
    /// Compiles the sources' patterns.
    pub fn new(sources: &[SourceConfig]) -> Result<Discovery, TailerError> {
        let matchers = sources
            .iter()
            .map(CrawlMatcher::new)
            .collect::<Result<_, _>>()?;
        Ok(Discovery {
            matchers,
            reported: HashSet::new(),
        })
    }

    /// The compiled patterns, in source order.
    pub fn matchers(&self) -> &[CrawlMatcher] {
        &self.matchers
    }

    /// Every matching file now, each once (the first source that matches it wins).
    pub fn scan(&mut self, events: &TailerEvents) -> Vec<Found> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for (source, m) in self.matchers.iter().enumerate() {
            let mut paths = Vec::new();
            walk(m.root(), m.max_depth(), 1, &mut paths);
            for path in paths {
                match m.classify(&path) {
                    PathMatch::No => {}
                    PathMatch::Crawl(crawl) => {
                        if seen.insert(path.clone()) {
                            out.push(Found {
                                path,
                                source,
                                crawl,
                            });
                        }
                    }
                    PathMatch::BadCrawl(why) => {
                        if self.reported.insert(path.clone()) {
                            tracing::warn!(path = %path.display(), source = m.pattern(), reason = %why, "skipping a file whose crawl is not a valid crawl id");
                            events.crawl_rejected();
                        }
                    }
                }
            }
        }
        // A stable order, so new files get their seqs the same way every run. Byte order:
        // comparing paths component by component costs several times more, which shows
        // when tens of thousands of files are listed every discovery interval.
        out.sort_unstable_by(|a, b| a.path.as_os_str().cmp(b.path.as_os_str()));
        out
    }
}

fn walk(dir: &Path, max_depth: Option<usize>, depth: usize, out: &mut Vec<PathBuf>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            tracing::debug!(dir = %dir.display(), error = %e, "cannot list directory");
            return;
        }
    };
    for entry in entries.filter_map(Result::ok) {
        let Ok(ft) = entry.file_type() else { continue };
        let path = entry.path();
        if ft.is_dir() {
            if max_depth.is_none_or(|m| depth < m) {
                walk(&path, max_depth, depth + 1, out);
            }
        } else if ft.is_file() || (ft.is_symlink() && path.is_file()) {
            out.push(path);
        }
    }
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
            let p = root.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "x\n").unwrap();
        }
        let source = SourceConfig {
            path: format!("{}/jobs/{{crawl}}/**/logs/crawl.log", root.display()),
            format: SourceFormat::Auto,
            crawl: None,
            app: None,
            exclude: vec![],
            multiline: true,
            start_at: StartAt::Beginning,
        };
        let mut d = Discovery::new(&[source]).unwrap();
        let events = TailerEvents::default();
        let found = d.scan(&events);
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
        d.scan(&events);
        assert_eq!(
            events
                .crawl_rejected_total
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }
}
