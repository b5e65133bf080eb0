//! `SegmentFile`: the segment files of a buck's data directory, found by listing it.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use contracts::CrawlId;
use contracts::segment_path::{parse_segment_file_name, segment_file_name, segment_path};

/// One segment file on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    /// Its crawl.
    pub crawl: CrawlId,
    /// Its UTC day.
    pub day: NaiveDate,
    /// 0 for the day's segment, N for part file `.pN`.
    pub part: u32,
    /// Where it is.
    pub path: PathBuf,
}

impl SegmentFile {
    /// The name used in URLs: `YYYY-MM-DD` or `YYYY-MM-DD.pN`.
    pub fn name(&self) -> String {
        segment_name(self.day, self.part)
    }
}

/// `YYYY-MM-DD` or `YYYY-MM-DD.pN`.
pub fn segment_name(day: NaiveDate, part: u32) -> String {
    segment_file_name(day, part)
        .trim_end_matches(".sqlite")
        .to_owned()
}

/// Parses a URL segment name (`YYYY-MM-DD` or `YYYY-MM-DD.pN`) into (day, part).
pub fn parse_segment_name(name: &str) -> Option<(NaiveDate, u32)> {
    parse_segment_file_name(&format!("{name}.sqlite"))
}

/// The path of a (crawl, name) segment, if the name is valid.
pub fn path_of(segments_dir: &Path, crawl: &CrawlId, name: &str) -> Option<PathBuf> {
    let (day, part) = parse_segment_name(name)?;
    Some(segment_path(segments_dir, crawl, day, part))
}

/// The segment files of one crawl, sorted by (day, part). A crawl without a directory
/// has none.
pub fn list_crawl(segments_dir: &Path, crawl: &CrawlId) -> std::io::Result<Vec<SegmentFile>> {
    let dir = segments_dir.join(crawl.as_str());
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for e in entries {
        let e = e?;
        if let Some((day, part)) = e.file_name().to_str().and_then(parse_segment_file_name) {
            out.push(SegmentFile {
                crawl: crawl.clone(),
                day,
                part,
                path: e.path(),
            });
        }
    }
    out.sort_by_key(|f| (f.day, f.part));
    Ok(out)
}

/// Every segment file, sorted by (crawl, day, part).
pub fn list_all(segments_dir: &Path) -> std::io::Result<Vec<SegmentFile>> {
    let entries = match std::fs::read_dir(segments_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut crawls: Vec<CrawlId> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| CrawlId::parse(s).ok()))
        .collect();
    crawls.sort();
    let mut out = Vec::new();
    for c in crawls {
        out.extend(list_crawl(segments_dir, &c)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 2).unwrap();
        assert_eq!(segment_name(d, 0), "2026-11-02");
        assert_eq!(segment_name(d, 2), "2026-11-02.p2");
        assert_eq!(parse_segment_name("2026-11-02.p2"), Some((d, 2)));
        assert_eq!(parse_segment_name("../x"), None);
    }
}
