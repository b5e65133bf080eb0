//! Where a (crawl, day) segment lives, in a buck's data directory and in the archive.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use crate::CrawlId;

/// `<segments>/<crawl>/<YYYY-MM-DD>.sqlite`, or `<YYYY-MM-DD>.pN.sqlite` for part `N`
/// (events that arrived after the day's segment closed).
pub fn segment_path(segments: &Path, crawl: &CrawlId, day: NaiveDate, part: u32) -> PathBuf {
    segments
        .join(crawl.as_str())
        .join(segment_file_name(day, part))
}

/// The file name of a segment.
pub fn segment_file_name(day: NaiveDate, part: u32) -> String {
    if part == 0 {
        format!("{}.sqlite", day.format("%Y-%m-%d"))
    } else {
        format!("{}.p{part}.sqlite", day.format("%Y-%m-%d"))
    }
}

/// Parses a segment file name back into (day, part).
pub fn parse_segment_file_name(name: &str) -> Option<(NaiveDate, u32)> {
    let stem = name.strip_suffix(".sqlite")?;
    let (day, part) = match stem.split_once(".p") {
        Some((d, p)) => (d, p.parse().ok().filter(|&p| p > 0)?),
        None => (stem, 0),
    };
    Some((NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?, part))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 2).unwrap();
        assert_eq!(segment_file_name(d, 0), "2026-11-02.sqlite");
        assert_eq!(segment_file_name(d, 3), "2026-11-02.p3.sqlite");
        assert_eq!(
            parse_segment_file_name("2026-11-02.p3.sqlite"),
            Some((d, 3))
        );
        assert_eq!(parse_segment_file_name("2026-11-02.sqlite"), Some((d, 0)));
        assert_eq!(parse_segment_file_name("2026-11-02.p0.sqlite"), None);
        assert_eq!(parse_segment_file_name("x.sqlite"), None);
    }
}
