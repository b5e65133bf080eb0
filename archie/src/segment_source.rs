//! [`SegmentSource`]: where a request's SQLite segments come from. [`PorterSource`] is the
//! production one (porter's fetch: the archive first, the bucks for days not archived
//! yet); [`LocalDirSource`] copies segment files from a directory laid out as the buck's
//! (`<dir>/<crawl>/<YYYY-MM-DD>[.pN].sqlite`), for tests and the benchmark.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use contracts::CrawlId;
use contracts::segment_path::parse_segment_file_name;

use crate::error::ArchieError;

/// One segment file fetched into a request's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    /// Its crawl.
    pub crawl: CrawlId,
    /// Its UTC day.
    pub day: NaiveDate,
    /// 0, or N for part `.pN`.
    pub part: u32,
    /// The plain SQLite file written.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
}

/// Progress of one fetch: segments done of the total, bytes so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SourceProgress {
    /// Segments done.
    pub done: usize,
    /// Segments to fetch in all for this crawl.
    pub total: usize,
    /// Bytes written so far.
    pub bytes: u64,
}

/// A progress callback; it must return quickly.
pub type SourceProgressFn = dyn Fn(SourceProgress) + Send + Sync;

/// Where segments come from.
#[async_trait]
pub trait SegmentSource: Send + Sync {
    /// Every crawl the source holds any segment of, to resolve crawl patterns.
    async fn crawls(&self) -> Result<Vec<CrawlId>, ArchieError>;

    /// Writes every segment of `crawl` whose UTC day meets `[from, to)` into `dir` as plain
    /// SQLite files, and lists them sorted by (day, part). No segment is `Ok(vec![])`.
    async fn fetch(
        &self,
        crawl: &CrawlId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        dir: &Path,
        progress: &SourceProgressFn,
    ) -> Result<Vec<SegmentFile>, ArchieError>;

    /// Where this source points, for messages.
    fn describe(&self) -> String;
}

/// The days `[from, to)` meets.
fn day_range(from: DateTime<Utc>, to: DateTime<Utc>) -> Option<(NaiveDate, NaiveDate)> {
    if to <= from {
        return None;
    }
    let last = (to - chrono::Duration::microseconds(1)).date_naive();
    Some((from.date_naive(), last))
}

/// Copies segments from a directory in the buck's layout (tests, benchmark, and any
/// deployment that keeps plain segment files on a shared disk).
#[derive(Debug, Clone)]
pub struct LocalDirSource {
    root: PathBuf,
}

impl LocalDirSource {
    /// A source over `root/<crawl>/<day>[.pN].sqlite`.
    pub fn new(root: impl Into<PathBuf>) -> LocalDirSource {
        LocalDirSource { root: root.into() }
    }
}

#[async_trait]
impl SegmentSource for LocalDirSource {
    async fn crawls(&self) -> Result<Vec<CrawlId>, ArchieError> {
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(ArchieError::io(&self.root, e)),
        };
        for entry in rd {
            let entry = entry.map_err(|e| ArchieError::io(&self.root, e))?;
            if let Some(c) = entry
                .file_name()
                .to_str()
                .and_then(|n| CrawlId::parse(n).ok())
            {
                out.push(c);
            }
        }
        out.sort();
        Ok(out)
    }

    async fn fetch(
        &self,
        crawl: &CrawlId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        dir: &Path,
        progress: &SourceProgressFn,
    ) -> Result<Vec<SegmentFile>, ArchieError> {
        let Some((first, last)) = day_range(from, to) else {
            return Ok(Vec::new());
        };
        let src_dir = self.root.join(crawl.as_str());
        let mut wanted = Vec::new();
        match std::fs::read_dir(&src_dir) {
            Ok(rd) => {
                for entry in rd {
                    let entry = entry.map_err(|e| ArchieError::io(&src_dir, e))?;
                    let name = entry.file_name();
                    let Some((day, part)) = name.to_str().and_then(parse_segment_file_name) else {
                        continue;
                    };
                    if day >= first && day <= last {
                        wanted.push((day, part, entry.path(), name));
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ArchieError::io(&src_dir, e)),
        }
        wanted.sort();
        std::fs::create_dir_all(dir).map_err(|e| ArchieError::io(dir, e))?;
        let mut out = Vec::new();
        let mut p = SourceProgress {
            total: wanted.len(),
            ..Default::default()
        };
        for (day, part, src, name) in wanted {
            let dest = dir.join(name);
            let bytes = tokio::fs::copy(&src, &dest).await.map_err(|e| {
                // A full or read-only disk is the copy's (reads meet neither): name it.
                if disk_space::StorageFault::of(&e).is_some() {
                    ArchieError::io(&dest, e)
                } else {
                    ArchieError::io(&src, e)
                }
            })?;
            p.done += 1;
            p.bytes += bytes;
            progress(p);
            out.push(SegmentFile {
                crawl: crawl.clone(),
                day,
                part,
                path: dest,
                bytes,
            });
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        format!("segment directory {}", self.root.display())
    }
}

/// The production source: porter's [`porter::fetch`] (archived segments verified against
/// their manifests, the bucks' replicas merged for days not archived yet).
pub struct PorterSource {
    config: porter::PorterConfig,
}

impl PorterSource {
    /// A source that fetches with `config` (its `archive` URL and `cluster_file`).
    pub fn new(config: porter::PorterConfig) -> PorterSource {
        PorterSource { config }
    }
}

#[async_trait]
impl SegmentSource for PorterSource {
    async fn crawls(&self) -> Result<Vec<CrawlId>, ArchieError> {
        let fail = |message: String| ArchieError::Fetch {
            crawl: "*".into(),
            message,
        };
        let mut out = BTreeSet::new();
        let store = porter::open_store(&self.config.archive, &self.config)
            .map_err(|e| fail(format!("opening the archive: {e}")))?;
        for obj in store
            .list("")
            .await
            .map_err(|e| fail(format!("listing {}: {e}", store.describe())))?
        {
            if let Some(c) = obj
                .key
                .split('/')
                .next()
                .and_then(|c| CrawlId::parse(c).ok())
            {
                out.insert(c);
            }
        }
        // Days not archived yet live only on the bucks; an unreachable buck is skipped, as
        // porter's fetch does.
        if let Ok(cluster) = contracts::ClusterFile::load(&self.config.cluster_file) {
            let timeout = Duration::from_secs(self.config.buck_timeout_secs);
            for b in &cluster.bucks {
                let Ok(client) = porter::buck_client::BuckClient::new(
                    &b.id,
                    &b.http_url,
                    timeout,
                    self.config.buck_token.as_deref(),
                ) else {
                    continue;
                };
                match client.list_segments().await {
                    Ok(list) => {
                        out.extend(list.iter().filter_map(|s| CrawlId::parse(&s.crawl).ok()))
                    }
                    Err(e) => {
                        tracing::warn!(buck = %b.id, error = %e, "buck did not list its segments")
                    }
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    async fn fetch(
        &self,
        crawl: &CrawlId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        dir: &Path,
        progress: &SourceProgressFn,
    ) -> Result<Vec<SegmentFile>, ArchieError> {
        let cb = |p: &porter::FetchProgress| {
            progress(SourceProgress {
                done: p.done,
                total: p.total,
                bytes: p.bytes,
            })
        };
        let report = porter::fetch(&self.config, crawl, from, to, dir, &cb)
            .await
            .map_err(|e| match e.storage_fault() {
                // Archie's own disk, not the archive or the bucks: said as such.
                Some((fault, path)) => ArchieError::Disk {
                    fault,
                    path,
                    message: format!("fetching {crawl}: {e}"),
                },
                None => ArchieError::Fetch {
                    crawl: crawl.to_string(),
                    message: e.to_string(),
                },
            })?;
        if !report.unreachable_bucks.is_empty() {
            tracing::warn!(crawl = %crawl, bucks = ?report.unreachable_bucks, "bucks unreachable during fetch; days only they hold may be missing");
        }
        Ok(report
            .segments
            .into_iter()
            .map(|s| SegmentFile {
                crawl: crawl.clone(),
                day: s.day,
                part: s.part,
                path: s.path,
                bytes: s.bytes,
            })
            .collect())
    }

    fn describe(&self) -> String {
        format!("porter archive {}", self.config.archive)
    }
}
