//! Fetching a crawl's segments for a time range into a directory, for history: archived
//! segments from the archive (verified against their manifests), the rest from the bucks.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use contracts::segment_path::{parse_segment_file_name, segment_file_name};
use contracts::{ClusterFile, CrawlId};
use futures::StreamExt;

use crate::archive_store::{ArchiveStore, temp_sibling};
use crate::buck_client::BuckClient;
use crate::config::PorterConfig;
use crate::error::{PorterError, StoreErrorKind};
use crate::events::PorterEvents;
use crate::manifest::{MANIFEST_SUFFIX, Manifest, OBJECT_SUFFIX};
use crate::{object_codec, segment_merge};

/// Where a fetched segment came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchSource {
    /// The archive, verified against its manifest.
    Archive,
    /// The bucks (not archived yet): their replicas, merged.
    Bucks,
}

/// One segment written by [`fetch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedSegment {
    /// Its UTC day.
    pub day: NaiveDate,
    /// 0, or N for part `.pN`.
    pub part: u32,
    /// The file written: `<dir>/<day>[.pN].sqlite`.
    pub path: PathBuf,
    /// Where it came from.
    pub source: FetchSource,
    /// Its size in bytes.
    pub bytes: u64,
}

/// What [`fetch`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchReport {
    /// The segments written, sorted by (day, part).
    pub segments: Vec<FetchedSegment>,
    /// Bytes transferred (compressed objects, and segment copies from bucks).
    pub bytes_transferred: u64,
    /// Bucks that did not answer (segments only they hold may be missing).
    pub unreachable_bucks: Vec<String>,
}

/// Progress of a fetch, reported after each segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchProgress {
    /// Segments done so far.
    pub done: usize,
    /// Segments to fetch in all.
    pub total: usize,
    /// Bytes transferred so far.
    pub bytes: u64,
    /// The segment just finished (`<crawl>/<day>[.pN]`).
    pub segment: String,
}

/// A progress callback; it must return quickly (it runs on the fetch's tasks).
pub type ProgressFn<'a> = dyn Fn(&FetchProgress) + Send + Sync + 'a;

enum Job {
    Archived {
        day: NaiveDate,
        part: u32,
        manifest_key: String,
    },
    FromBucks {
        day: NaiveDate,
        part: u32,
        name: String,
        replicas: Vec<BuckClient>,
    },
}

/// Fetches every segment of `crawl` whose day meets `[from, to)` into `dir`, as
/// `<day>[.pN].sqlite`, with the store `config.archive` names.
pub async fn fetch(
    config: &PorterConfig,
    crawl: &CrawlId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    dir: &Path,
    progress: &ProgressFn<'_>,
) -> Result<FetchReport, PorterError> {
    let store = crate::open_store(&config.archive, config)?;
    fetch_with_store(
        config,
        store,
        Arc::new(PorterEvents::default()),
        crawl,
        from,
        to,
        dir,
        progress,
    )
    .await
}

/// [`fetch`] against a given store and counters.
#[allow(clippy::too_many_arguments)]
pub async fn fetch_with_store(
    config: &PorterConfig,
    store: Arc<dyn ArchiveStore>,
    events: Arc<PorterEvents>,
    crawl: &CrawlId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    dir: &Path,
    progress: &ProgressFn<'_>,
) -> Result<FetchReport, PorterError> {
    let mut report = FetchReport::default();
    if to <= from {
        return Ok(report);
    }
    let days = days_of(from, to);
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| PorterError::io(dir, e))?;

    let mut jobs = Vec::new();
    let mut archived = BTreeSet::new();
    for (day, part, manifest_key) in list_archived(store.as_ref(), crawl, from, to).await? {
        archived.insert((day, part));
        jobs.push(Job::Archived {
            day,
            part,
            manifest_key,
        });
    }

    // Days not archived yet come from the bucks that list them.
    let cluster = ClusterFile::load(&config.cluster_file)?;
    let timeout = Duration::from_secs(config.buck_timeout_secs);
    let mut from_bucks: std::collections::BTreeMap<(NaiveDate, u32), (String, Vec<BuckClient>)> =
        Default::default();
    for b in &cluster.bucks {
        let client = BuckClient::new(&b.id, &b.http_url, timeout, config.buck_token.as_deref())?;
        match client.list_segments().await {
            Ok(list) => {
                for s in list {
                    if s.crawl == crawl.as_str()
                        && days.contains(&s.day)
                        && !archived.contains(&(s.day, s.part))
                    {
                        from_bucks
                            .entry((s.day, s.part))
                            .or_insert_with(|| (s.name.clone(), Vec::new()))
                            .1
                            .push(client.clone());
                    }
                }
            }
            Err(e) => {
                events.buck_error();
                tracing::warn!(buck = %b.id, error = %e, "buck did not list its segments; fetch goes on without it");
                report.unreachable_bucks.push(b.id.clone());
            }
        }
    }
    for ((day, part), (name, replicas)) in from_bucks {
        jobs.push(Job::FromBucks {
            day,
            part,
            name,
            replicas,
        });
    }

    let total = jobs.len();
    let done = AtomicUsize::new(0);
    let bytes = AtomicU64::new(0);
    let results: Vec<Result<(FetchedSegment, u64), PorterError>> = futures::stream::iter(jobs)
        .map(|job| {
            let (store, events, done, bytes) = (store.clone(), events.clone(), &done, &bytes);
            async move {
                let r = match job {
                    Job::Archived {
                        day,
                        part,
                        manifest_key,
                    } => {
                        fetch_one_archived(
                            store.as_ref(),
                            &events,
                            crawl,
                            day,
                            part,
                            &manifest_key,
                            dir,
                        )
                        .await
                    }
                    Job::FromBucks {
                        day,
                        part,
                        name,
                        replicas,
                    } => fetch_from_bucks(&events, crawl, day, part, &name, &replicas, dir).await,
                };
                if let Ok((seg, n)) = &r {
                    let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                    let b = bytes.fetch_add(*n, Ordering::Relaxed) + n;
                    let name = segment_file_name(seg.day, seg.part);
                    progress(&FetchProgress {
                        done: d,
                        total,
                        bytes: b,
                        segment: format!("{}/{}", crawl.as_str(), name.trim_end_matches(".sqlite")),
                    });
                }
                r
            }
        })
        .buffer_unordered(config.parallelism.max(1))
        .collect()
        .await;
    for r in results {
        let (seg, n) = r?;
        report.bytes_transferred += n;
        report.segments.push(seg);
    }
    report.segments.sort_by_key(|s| (s.day, s.part));
    Ok(report)
}

/// The UTC days the half-open range `[from, to)` meets (`to > from`).
fn days_of(from: DateTime<Utc>, to: DateTime<Utc>) -> std::ops::RangeInclusive<NaiveDate> {
    from.date_naive()..=(to - chrono::Duration::microseconds(1)).date_naive()
}

/// The archived segments of `crawl` whose day meets `[from, to)`, as (day, part,
/// manifest key), sorted by (day, part).
pub async fn list_archived(
    store: &dyn ArchiveStore,
    crawl: &CrawlId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(NaiveDate, u32, String)>, PorterError> {
    let mut out = Vec::new();
    if to <= from {
        return Ok(out);
    }
    let days = days_of(from, to);
    let manifest_tail = format!(".sqlite{OBJECT_SUFFIX}{MANIFEST_SUFFIX}");
    for obj in store.list(&format!("{}/", crawl.as_str())).await? {
        let Some(name) = obj
            .key
            .rsplit('/')
            .next()
            .and_then(|n| n.strip_suffix(&manifest_tail))
        else {
            continue;
        };
        if let Some((day, part)) = parse_segment_file_name(&format!("{name}.sqlite"))
            && days.contains(&day)
        {
            out.push((day, part, obj.key.clone()));
        }
    }
    out.sort();
    Ok(out)
}

/// Fetches one archived segment (named by its manifest) into `dir` as
/// `<day>[.pN].sqlite`, verified against the manifest and with its indexes made again.
/// Returns it and the bytes transferred.
pub async fn fetch_one_archived(
    store: &dyn ArchiveStore,
    events: &PorterEvents,
    crawl: &CrawlId,
    day: NaiveDate,
    part: u32,
    manifest_key: &str,
    dir: &Path,
) -> Result<(FetchedSegment, u64), PorterError> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| PorterError::io(dir, e))?;
    let data = store.get_bytes(manifest_key).await?;
    let manifest =
        Manifest::from_json(manifest_key, &data).map_err(|message| PorterError::Corrupt {
            key: manifest_key.to_string(),
            message,
        })?;
    let key = manifest.object_key.clone();
    let dest = dir.join(segment_file_name(day, part));
    let z = temp_sibling(&dest.with_extension("sqlite.z"));
    let n = match store.get_to_file(&key, &z).await {
        Ok(n) => n,
        Err(e) if e.kind == StoreErrorKind::NotFound => {
            return Err(PorterError::Missing {
                segment: format!("{}/{}", crawl.as_str(), segment_file_name(day, part)),
                message: format!(
                    "object {key} named by manifest {manifest_key} is not in the archive"
                ),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let unpacked = temp_sibling(&dest);
    let (z2, u2, m2) = (z.clone(), unpacked.clone(), manifest.clone());
    let checked = tokio::task::spawn_blocking(move || {
        let (sha, size) = object_codec::sha256_file(&z2).map_err(|e| PorterError::io(&z2, e))?;
        if sha != m2.object_sha256 || size != m2.object_bytes {
            return Err(PorterError::Corrupt {
                key: m2.object_key.clone(),
                message: format!(
                    "sha256 {sha} ({size} bytes), manifest says {} ({} bytes)",
                    m2.object_sha256, m2.object_bytes
                ),
            });
        }
        let (sha, size) = object_codec::inflate(&z2, &u2).map_err(|e| {
            // A full or read-only disk under the inflated file is not the object's fault.
            if disk_space::StorageFault::of(&e).is_some() {
                PorterError::io(&u2, e)
            } else {
                PorterError::Corrupt {
                    key: m2.object_key.clone(),
                    message: format!("does not inflate: {e}"),
                }
            }
        })?;
        if sha != m2.file_sha256 || size != m2.file_bytes {
            return Err(PorterError::Corrupt {
                key: m2.object_key.clone(),
                message: format!(
                    "inflated file sha256 {sha} ({size} bytes), manifest says {} ({} bytes)",
                    m2.file_sha256, m2.file_bytes
                ),
            });
        }
        // Verified as archived; only now is it changed, by the indexes it was archived
        // without.
        segment_merge::make_indexes(&m2.object_key, &u2)?;
        Ok(std::fs::metadata(&u2).map_or(size, |m| m.len()))
    })
    .await
    .map_err(|e| PorterError::segment(&key, format!("unpack task failed: {e}")))?;
    let _ = tokio::fs::remove_file(&z).await;
    let size = match checked {
        Ok(s) => s,
        Err(e) => {
            let _ = tokio::fs::remove_file(&unpacked).await;
            if matches!(e, PorterError::Corrupt { .. }) {
                events.corrupt_object();
            }
            return Err(e);
        }
    };
    tokio::fs::rename(&unpacked, &dest)
        .await
        .map_err(|e| PorterError::io(&dest, e))?;
    events.segment_fetched(n);
    Ok((
        FetchedSegment {
            day,
            part,
            path: dest,
            source: FetchSource::Archive,
            bytes: size,
        },
        n,
    ))
}

async fn fetch_from_bucks(
    events: &PorterEvents,
    crawl: &CrawlId,
    day: NaiveDate,
    part: u32,
    name: &str,
    replicas: &[BuckClient],
    dir: &Path,
) -> Result<(FetchedSegment, u64), PorterError> {
    let label = format!("{}/{name}", crawl.as_str());
    let dest = dir.join(segment_file_name(day, part));
    let mut files = Vec::new();
    let mut transferred = 0;
    // Merge what every replica that answers has: more complete than any one copy.
    for (i, b) in replicas.iter().enumerate() {
        let path = temp_sibling(&dest.with_extension(format!("replica{i}")));
        match b.download(crawl.as_str(), name, &path).await {
            Ok(n) => {
                transferred += n;
                files.push(path);
            }
            // Our disk, not the buck: another replica would meet it too, and "no buck
            // answered" would hide the reason.
            Err(e) if e.disk_full().is_some() => {
                for f in &files {
                    let _ = tokio::fs::remove_file(f).await;
                }
                return Err(e);
            }
            Err(e) => {
                events.buck_error();
                tracing::warn!(buck = %b.id, segment = %label, error = %e, "replica not fetched; using the others");
            }
        }
    }
    if files.is_empty() {
        return Err(PorterError::Missing {
            segment: label,
            message: "not archived, and no buck that lists it answered".into(),
        });
    }
    let merged = temp_sibling(&dest);
    let (l2, f2, m2) = (label.clone(), files.clone(), merged.clone());
    let r = tokio::task::spawn_blocking(move || {
        segment_merge::merge_replicas(&l2, &f2, &m2)?;
        segment_merge::make_indexes(&l2, &m2)
    })
    .await
    .map_err(|e| PorterError::segment(&label, format!("merge task failed: {e}")));
    for f in &files {
        let _ = tokio::fs::remove_file(f).await;
    }
    if let Err(e) = r.and_then(|r| r) {
        let _ = tokio::fs::remove_file(&merged).await;
        return Err(e);
    }
    let size = tokio::fs::metadata(&merged)
        .await
        .map_err(|e| PorterError::io(&merged, e))?
        .len();
    tokio::fs::rename(&merged, &dest)
        .await
        .map_err(|e| PorterError::io(&dest, e))?;
    events.segment_fetched(transferred);
    Ok((
        FetchedSegment {
            day,
            part,
            path: dest,
            source: FetchSource::Bucks,
            bytes: size,
        },
        transferred,
    ))
}
