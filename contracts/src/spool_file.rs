//! The spool bucket file: one crawl's frames for one time interval, in arrival order.
//!
//! Layout: an 8-byte header (the magic `SLUICSB`, then a version byte; see `docs/formats.md`), then
//! frames: version-1 events only in a version-1 file, a frame stream (context frames,
//! compact events, and version-1 events too) in a version-2 file. Writers only append, so after a crash only the last frame can be torn;
//! [`recover`] finds the end of the last whole, decodable frame so the writer can cut
//! the file there.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Timelike, Utc};

use crate::frame::{FrameError, FrameReader};
use crate::frame_stream::{FrameRead, FrameStreamReader};
use crate::{CrawlId, DecodeError};

/// Magic bytes at the start of every spool bucket file.
pub const SPOOL_MAGIC: &[u8; 7] = b"SLUICSB";
/// Spool bucket format version written by this build: 2, a frame stream.
pub const SPOOL_VERSION: u8 = 2;
/// Oldest spool bucket format version this build reads: 1, version-1 events only.
pub const SPOOL_MIN_VERSION: u8 = 1;
/// Where the version byte is: a writer that appends a frame stream to a version-1 file
/// (one left by the build before an upgrade) sets it to [`SPOOL_VERSION`] first.
pub const SPOOL_VERSION_AT: usize = 7;
/// Length of the header.
pub const SPOOL_HEADER_LEN: usize = 8;

/// The header bytes for a new bucket file.
pub fn spool_header() -> [u8; SPOOL_HEADER_LEN] {
    let mut h = [0u8; SPOOL_HEADER_LEN];
    h[..7].copy_from_slice(SPOOL_MAGIC);
    h[7] = SPOOL_VERSION;
    h
}

/// Checks a bucket file's header and returns its version.
pub fn check_spool_header(buf: &[u8]) -> Result<u8, DecodeError> {
    const WHAT: &str = "spool bucket";
    if buf.len() < SPOOL_HEADER_LEN {
        return Err(DecodeError::Truncated {
            what: WHAT,
            at: buf.len(),
            need: SPOOL_HEADER_LEN - buf.len(),
        });
    }
    if &buf[..7] != SPOOL_MAGIC {
        return Err(DecodeError::invalid(
            WHAT,
            0,
            "not a spool bucket file (bad magic)",
        ));
    }
    let version = buf[SPOOL_VERSION_AT];
    if !(SPOOL_MIN_VERSION..=SPOOL_VERSION).contains(&version) {
        return Err(DecodeError::Version {
            what: WHAT,
            found: version.into(),
            min: SPOOL_MIN_VERSION.into(),
            max: SPOOL_VERSION.into(),
        });
    }
    Ok(version)
}

/// What recovery found in a bucket file's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Byte length of the header plus every whole, decodable frame: where the file must be cut.
    pub good_len: usize,
    /// Number of whole frames (context frames included).
    pub frames: usize,
    /// Number of events in them.
    pub events: usize,
    /// The file's format version.
    pub version: u8,
    /// Why the rest (if any) was cut: a torn frame, or a frame that does not decode.
    pub cut_reason: Option<String>,
}

/// Walks a bucket file's bytes (header included) and says where its good part ends.
pub fn recover(buf: &[u8]) -> Result<Recovered, DecodeError> {
    let version = check_spool_header(buf)?;
    let body = &buf[SPOOL_HEADER_LEN..];
    let mut frames = 0;
    let mut events = 0;
    let mut good = 0;
    let mut cut_reason = None;
    let mut reader = FrameStreamReader::new();
    for item in FrameReader::new(body) {
        match item {
            Ok((at, payload)) => {
                let error = match reader.read(payload) {
                    FrameRead::Context => None,
                    FrameRead::Event(_) => {
                        events += 1;
                        None
                    }
                    FrameRead::BadContext(e) | FrameRead::BadEvent { error: e, .. } => Some(e),
                };
                if let Some(e) = error {
                    cut_reason = Some(format!(
                        "frame at byte {} does not decode: {e}",
                        at + SPOOL_HEADER_LEN
                    ));
                    break;
                }
                frames += 1;
                good = at + 2 + payload.len();
            }
            Err(e @ (FrameError::Incomplete { .. } | FrameError::Empty { .. })) => {
                cut_reason = Some(format!("torn frame: {e}"));
                break;
            }
        }
    }
    Ok(Recovered {
        good_len: SPOOL_HEADER_LEN + good,
        frames,
        events,
        version,
        cut_reason,
    })
}

/// Where a bucket starting at `start` lives: `<spool>/<crawl>/YYYY/MM/DD/HH/MM.b`, or
/// `MM.SS.b` when the interval is not a whole number of minutes (tests use 1 s buckets).
pub fn spool_bucket_path(
    spool: &Path,
    crawl: &CrawlId,
    start: DateTime<Utc>,
    interval_secs: u64,
) -> PathBuf {
    let name = if interval_secs.is_multiple_of(60) {
        format!("{:02}.b", start.minute())
    } else {
        format!("{:02}.{:02}.b", start.minute(), start.second())
    };
    spool
        .join(crawl.as_str())
        .join(format!("{:04}", start.year()))
        .join(format!("{:02}", start.month()))
        .join(format!("{:02}", start.day()))
        .join(format!("{:02}", start.hour()))
        .join(name)
}

/// The start of the interval that holds `t`.
pub fn bucket_start(t: DateTime<Utc>, interval_secs: u64) -> DateTime<Utc> {
    let interval = interval_secs.max(1) as i64;
    let s = t.timestamp();
    let start = s - s.rem_euclid(interval);
    DateTime::from_timestamp(start, 0).unwrap_or(t)
}

/// Parses a bucket file's path (relative to the spool) back into its crawl and start.
pub fn parse_spool_bucket_path(spool: &Path, path: &Path) -> Option<(CrawlId, DateTime<Utc>)> {
    let rel = path.strip_prefix(spool).ok()?;
    let parts: Vec<&str> = rel.iter().map(|c| c.to_str()).collect::<Option<_>>()?;
    let [crawl, y, mo, d, h, name] = parts.as_slice() else {
        return None;
    };
    let crawl = CrawlId::parse(crawl).ok()?;
    let stem = name.strip_suffix(".b")?;
    let (mi, se) = match stem.split_once('.') {
        Some((m, s)) => (m.parse().ok()?, s.parse().ok()?),
        None => (stem.parse().ok()?, 0),
    };
    let date = chrono::NaiveDate::from_ymd_opt(y.parse().ok()?, mo.parse().ok()?, d.parse().ok()?)?;
    let t = date.and_hms_opt(h.parse().ok()?, mi, se)?;
    Some((crawl, t.and_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::arb_event;
    use crate::frame::put_event_frame;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn torn_tail_is_cut_at_a_frame_boundary(events in prop::collection::vec(arb_event(), 1..5), cut in any::<prop::sample::Index>()) {
            let mut buf = spool_header().to_vec();
            let mut ends = vec![buf.len()];
            for e in &events {
                put_event_frame(&mut buf, e);
                ends.push(buf.len());
            }
            let cut = SPOOL_HEADER_LEN + cut.index(buf.len() - SPOOL_HEADER_LEN + 1);
            let r = recover(&buf[..cut])?;
            prop_assert!(ends.contains(&r.good_len));
            prop_assert!(r.good_len <= cut);
            prop_assert_eq!(r.cut_reason.is_some(), r.good_len != cut);
            prop_assert_eq!(r.frames, ends.iter().position(|&e| e == r.good_len).unwrap_or(0));
        }
    }

    proptest! {
        #[test]
        fn a_torn_frame_stream_is_cut_at_a_frame_boundary(events in prop::collection::vec(arb_event(), 1..5), cut in any::<prop::sample::Index>()) {
            let mut buf = spool_header().to_vec();
            let mut ends = vec![buf.len()];
            let mut w = crate::frame_stream::FrameStreamWriter::new();
            for e in &events {
                let before = buf.len();
                w.push(&mut buf, &e.view());
                // A context frame and its event are two ends.
                if let Some(Ok((at, _))) = FrameReader::new(&buf[before..]).nth(1) {
                    ends.push(before + at);
                }
                ends.push(buf.len());
            }
            let cut = SPOOL_HEADER_LEN + cut.index(buf.len() - SPOOL_HEADER_LEN + 1);
            let r = recover(&buf[..cut])?;
            prop_assert!(ends.contains(&r.good_len));
            prop_assert_eq!(r.cut_reason.is_some(), r.good_len != cut);
            prop_assert_eq!(r.version, SPOOL_VERSION);
            prop_assert!(r.events <= events.len());
        }
    }

    #[test]
    fn a_version_1_file_is_still_read() {
        let mut buf = spool_header().to_vec();
        buf[SPOOL_VERSION_AT] = 1;
        put_event_frame(&mut buf, &crate::event::tests::small_event());
        let r = recover(&buf).unwrap();
        assert_eq!((r.version, r.events, r.good_len), (1, 1, buf.len()));
    }

    #[test]
    fn path_round_trips() {
        let crawl = CrawlId::parse("c1").unwrap();
        let t = DateTime::parse_from_rfc3339("2026-11-21T10:07:42Z")
            .unwrap()
            .with_timezone(&Utc);
        let s = bucket_start(t, 60);
        let p = spool_bucket_path(Path::new("/sp"), &crawl, s, 60);
        assert_eq!(p, Path::new("/sp/c1/2026/11/21/10/07.b"));
        assert_eq!(
            parse_spool_bucket_path(Path::new("/sp"), &p),
            Some((crawl.clone(), s))
        );
        let s = bucket_start(t, 5);
        let p = spool_bucket_path(Path::new("/sp"), &crawl, s, 5);
        assert_eq!(p, Path::new("/sp/c1/2026/11/21/10/07.40.b"));
        assert_eq!(
            parse_spool_bucket_path(Path::new("/sp"), &p),
            Some((crawl, s))
        );
    }

    #[test]
    fn bad_headers_are_named() {
        assert!(recover(b"SLUI").is_err());
        let mut h = spool_header();
        h[7] = 9;
        let e = recover(&h).unwrap_err().to_string();
        assert!(
            e.contains("version 9 is not supported for spool bucket"),
            "{e}"
        );
    }
}
