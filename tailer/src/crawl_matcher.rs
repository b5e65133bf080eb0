//! `CrawlMatcher`: a source's `path` pattern compiled into a glob, the directory to walk
//! for it, and the rule that gives each matching file its crawl.
//!
//! The crawl is either fixed for the source (`crawl = "..."`) or taken from the path by a
//! `{crawl}` placeholder, which stands for (part of) one path component:
//! `/heritrix/jobs/{crawl}/**/logs/crawl.log` or `/logs/job-{crawl}/crawl.log`. The
//! placeholder may not follow a `**`, so it always names the same component. What it
//! captures is validated by `CrawlId::parse`: a file whose crawl is not a valid id (`..`,
//! spaces, a leading dot) is skipped with its reason, never shipped under a guessed name.

use std::path::{Path, PathBuf};

use contracts::CrawlId;
use globset::{Glob, GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};

use crate::config::SourceConfig;
use crate::error::TailerError;

const PLACEHOLDER: &str = "{crawl}";

/// A compiled source pattern.
#[derive(Debug, Clone)]
pub struct CrawlMatcher {
    pattern: String,
    glob: GlobMatcher,
    excludes: GlobSet,
    root: PathBuf,
    max_depth: Option<usize>,
    crawl: CrawlRule,
}

#[derive(Debug, Clone)]
enum CrawlRule {
    Fixed(CrawlId),
    /// The crawl is component `index` of the `/`-split path, between `prefix` and `suffix`.
    FromPath {
        index: usize,
        prefix: String,
        suffix: String,
    },
}

/// What a path is to a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// Not this source's file (no match, excluded, or a rotated copy).
    No,
    /// A file to follow, with its crawl.
    Crawl(CrawlId),
    /// A matching file whose crawl component is not a valid crawl id: skip it, say why.
    BadCrawl(String),
}

fn has_glob_chars(s: &str) -> bool {
    s.contains(['*', '?', '[', ']', '{', '}'])
}

impl CrawlMatcher {
    /// Compiles a source's `path`, `crawl` and `exclude`.
    pub fn new(source: &SourceConfig) -> Result<CrawlMatcher, TailerError> {
        let pattern = source.path.clone();
        let err = |message: String| TailerError::Pattern {
            pattern: pattern.clone(),
            message,
        };
        let parts: Vec<&str> = pattern.split('/').collect();
        let crawl = match &source.crawl {
            Some(c) => CrawlRule::Fixed(CrawlId::parse(c).map_err(|e| err(e.to_string()))?),
            None => {
                let mut found = parts
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.contains(PLACEHOLDER));
                let (index, part) = found.next().ok_or_else(|| {
                    err("no `{crawl}` placeholder and no fixed `crawl`: give one".into())
                })?;
                if found.next().is_some() || part.matches(PLACEHOLDER).count() > 1 {
                    return Err(err("`{crawl}` appears more than once: use it once".into()));
                }
                if parts[..index].iter().any(|p| p.contains("**")) {
                    return Err(err("`{crawl}` follows a `**`, so its place in the path is not fixed: move it before the `**`".into()));
                }
                let (prefix, suffix) = part.split_once(PLACEHOLDER).unwrap_or_default();
                if has_glob_chars(prefix) || has_glob_chars(suffix) {
                    return Err(err(format!(
                        "the component {part:?} mixes `{{crawl}}` with wildcards: keep only literal text beside it"
                    )));
                }
                CrawlRule::FromPath {
                    index,
                    prefix: prefix.into(),
                    suffix: suffix.into(),
                }
            }
        };
        let glob_text = pattern.replace(PLACEHOLDER, "*");
        let glob = compile(&glob_text)
            .map_err(|e| err(e.to_string()))?
            .compile_matcher();
        let mut excludes = GlobSetBuilder::new();
        for x in &source.exclude {
            excludes.add(compile(x).map_err(|e| err(format!("exclude {x:?}: {e}")))?);
        }
        let excludes = excludes.build().map_err(|e| err(e.to_string()))?;
        // Walk only the directory named by the leading literal components.
        let glob_parts: Vec<&str> = glob_text.split('/').collect();
        let literal = glob_parts.iter().take_while(|p| !has_glob_chars(p)).count();
        let (root, max_depth) = if literal == glob_parts.len() {
            let path = PathBuf::from(&glob_text);
            (
                path.parent().map(Path::to_path_buf).unwrap_or_default(),
                Some(1),
            )
        } else {
            let root = glob_parts[..literal].join("/");
            let root = if root.is_empty() && glob_text.starts_with('/') {
                "/".to_string()
            } else {
                root
            };
            let rest = &glob_parts[literal..];
            let depth = (!rest.iter().any(|p| p.contains("**"))).then_some(rest.len());
            (
                PathBuf::from(if root.is_empty() {
                    ".".to_string()
                } else {
                    root
                }),
                depth,
            )
        };
        Ok(CrawlMatcher {
            pattern,
            glob,
            excludes,
            root,
            max_depth,
            crawl,
        })
    }

    /// The pattern as configured.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The directory to walk to find this source's files.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How many levels below [`CrawlMatcher::root`] a match can be (`None`: any, with `**`).
    pub fn max_depth(&self) -> Option<usize> {
        self.max_depth
    }

    /// Whether `path` is one of this source's files, and its crawl.
    pub fn classify(&self, path: &Path) -> PathMatch {
        if !self.glob.is_match(path) || self.excludes.is_match(path) {
            return PathMatch::No;
        }
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(is_rotated_name)
        {
            return PathMatch::No;
        }
        match &self.crawl {
            CrawlRule::Fixed(c) => PathMatch::Crawl(c.clone()),
            CrawlRule::FromPath {
                index,
                prefix,
                suffix,
            } => {
                let Some(text) = path.to_str() else {
                    return PathMatch::BadCrawl("the path is not UTF-8".into());
                };
                let Some(part) = text.split('/').nth(*index) else {
                    return PathMatch::BadCrawl("the path has no crawl component".into());
                };
                let captured = part
                    .strip_prefix(prefix.as_str())
                    .and_then(|p| p.strip_suffix(suffix.as_str()));
                match captured.map(CrawlId::parse) {
                    Some(Ok(c)) => PathMatch::Crawl(c),
                    Some(Err(e)) => PathMatch::BadCrawl(e.to_string()),
                    None => PathMatch::BadCrawl(format!(
                        "component {part:?} does not fit {prefix}{{crawl}}{suffix}"
                    )),
                }
            }
        }
    }
}

fn compile(text: &str) -> Result<Glob, globset::Error> {
    // `*` stops at `/`, as in a shell; `**` crosses directories.
    GlobBuilder::new(text).literal_separator(true).build()
}

/// Whether a file name looks like a rotated copy (`x.log.1`, `x.log.2.gz`, `x.log.gz`,
/// `x.log-20261121`): such files are found through the checkpoint of the file they were
/// rotated from, never followed as new files (that would read their lines twice).
pub fn is_rotated_name(name: &str) -> bool {
    let mut stem = name;
    for ext in [".gz", ".bz2", ".xz", ".zst"] {
        if let Some(s) = stem.strip_suffix(ext) {
            if !s.is_empty() {
                return true;
            }
            stem = s;
        }
    }
    let numbered = |sep: char| {
        stem.rsplit_once(sep).is_some_and(|(head, n)| {
            !head.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
        })
    };
    numbered('.')
        || stem.rsplit_once('-').is_some_and(|(h, d)| {
            !h.is_empty() && d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit())
        })
}

/// Names in `dir` that may be rotated copies of `name`, i.e. `name` followed by `.` or `-`.
pub fn rotated_copies_of(dir: &Path, name: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let n = e.file_name().into_string().ok()?;
            let rest = n.strip_prefix(name)?;
            (rest.starts_with('.') || rest.starts_with('-')).then(|| e.path())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SourceFormat, StartAt};

    fn source(path: &str, crawl: Option<&str>, exclude: &[&str]) -> SourceConfig {
        SourceConfig {
            path: path.into(),
            format: SourceFormat::Auto,
            crawl: crawl.map(Into::into),
            app: None,
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            multiline: true,
            start_at: StartAt::Beginning,
        }
    }

    #[test]
    fn crawl_from_path() {
        let m = CrawlMatcher::new(&source(
            "/heritrix/jobs/{crawl}/**/logs/crawl.log",
            None,
            &[],
        ))
        .unwrap();
        assert_eq!(m.root(), Path::new("/heritrix/jobs"));
        assert_eq!(m.max_depth(), None);
        assert_eq!(
            m.classify(Path::new(
                "/heritrix/jobs/wide-2026/20261121/logs/crawl.log"
            )),
            PathMatch::Crawl(CrawlId::parse("wide-2026").unwrap())
        );
        assert_eq!(
            m.classify(Path::new("/heritrix/jobs/wide/logs/crawl.log.1")),
            PathMatch::No
        );
        assert_eq!(
            m.classify(Path::new("/heritrix/jobs/wide/logs/other.log")),
            PathMatch::No
        );
        match m.classify(Path::new("/heritrix/jobs/.hidden/logs/crawl.log")) {
            PathMatch::BadCrawl(why) => assert!(why.contains("crawl id"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn prefix_suffix_fixed_and_excludes() {
        let m = CrawlMatcher::new(&source(
            "/logs/job-{crawl}.d/*.log",
            None,
            &["**/debug.log"],
        ))
        .unwrap();
        assert_eq!(m.root(), Path::new("/logs"));
        assert_eq!(m.max_depth(), Some(2));
        assert_eq!(
            m.classify(Path::new("/logs/job-c1.d/a.log")),
            PathMatch::Crawl(CrawlId::parse("c1").unwrap())
        );
        assert_eq!(
            m.classify(Path::new("/logs/job-c1.d/debug.log")),
            PathMatch::No
        );
        assert_eq!(
            m.classify(Path::new("/logs/job-c1.d/sub/a.log")),
            PathMatch::No,
            "* does not cross /"
        );
        let f = CrawlMatcher::new(&source("/var/log/syslog", Some("hosts"), &[])).unwrap();
        assert_eq!(f.root(), Path::new("/var/log"));
        assert_eq!(
            f.classify(Path::new("/var/log/syslog")),
            PathMatch::Crawl(CrawlId::parse("hosts").unwrap())
        );
    }

    #[test]
    fn bad_patterns_say_how_to_fix() {
        for (p, needle) in [
            ("/a/**/{crawl}/x.log", "before the `**`"),
            ("/a/{crawl}/{crawl}/x", "more than once"),
            ("/a/x*{crawl}/x", "literal text"),
        ] {
            let e = CrawlMatcher::new(&source(p, None, &[]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{p}: {e}");
        }
    }

    #[test]
    fn rotated_names() {
        for n in [
            "crawl.log.1",
            "crawl.log.1.gz",
            "crawl.log.gz",
            "syslog-20261121",
            "syslog-20261121.gz",
        ] {
            assert!(is_rotated_name(n), "{n}");
        }
        for n in ["crawl.log", "syslog", "app-v2.log", "2026.log", "log.txt"] {
            assert!(!is_rotated_name(n), "{n}");
        }
    }
}
