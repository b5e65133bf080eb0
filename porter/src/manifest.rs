//! [`Manifest`]: the JSON document archived beside each segment object (contract 8). It is
//! written last, so its presence means the object beside it is complete and verified.

use chrono::NaiveDate;
use contracts::CrawlId;
use contracts::segment_path::segment_file_name;
use serde::{Deserialize, Serialize};

/// The manifest format this porter writes and the only one it reads.
pub const MANIFEST_VERSION: u32 = 1;

/// The suffix of an archived segment object: zlib of the compacted SQLite file.
pub const OBJECT_SUFFIX: &str = ".z";

/// The suffix of a manifest, after the object's name.
pub const MANIFEST_SUFFIX: &str = ".json";

/// The archive key of a segment object: `<crawl>/<YYYY-MM-DD>[.pN].sqlite.z`.
pub fn object_key(crawl: &CrawlId, day: NaiveDate, part: u32) -> String {
    format!(
        "{}/{}{OBJECT_SUFFIX}",
        crawl.as_str(),
        segment_file_name(day, part)
    )
}

/// The archive key of a segment's manifest: `<crawl>/<YYYY-MM-DD>[.pN].sqlite.z.json`.
pub fn manifest_key(crawl: &CrawlId, day: NaiveDate, part: u32) -> String {
    format!("{}{MANIFEST_SUFFIX}", object_key(crawl, day, part))
}

/// Everything needed to trust, find and compare an archived segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`MANIFEST_VERSION`].
    pub version: u32,
    /// The crawl.
    pub crawl: String,
    /// The UTC day.
    pub day: NaiveDate,
    /// 0 for the day's segment, N for part file `.pN`.
    pub part: u32,
    /// Number of events.
    pub events: u64,
    /// Earliest event time, microseconds since the epoch (None when empty).
    pub first_time_us: Option<i64>,
    /// Latest event time, microseconds since the epoch (None when empty).
    pub last_time_us: Option<i64>,
    /// sha256 (hex) of the event ids sorted bytewise, each followed by `\n`: the identity
    /// of the segment's content, equal for any two merges of the same events.
    pub ids_sha256: String,
    /// sha256 (hex) of the uncompressed, compacted SQLite file.
    pub file_sha256: String,
    /// Size of the uncompressed SQLite file in bytes.
    pub file_bytes: u64,
    /// The object's key.
    pub object_key: String,
    /// sha256 (hex) of the object (the compressed bytes).
    pub object_sha256: String,
    /// Size of the object in bytes.
    pub object_bytes: u64,
    /// How the object is encoded: `zlib`.
    pub compression: String,
    /// The tailer ids (hex) that appear in the event ids, sorted.
    pub tailers: Vec<String>,
    /// The buck ids whose replicas were merged, sorted.
    pub replicas: Vec<String>,
    /// When the manifest was written (RFC 3339, UTC).
    pub archived_at: String,
}

impl Manifest {
    /// The manifest of segment (`crawl`, `day`, `part`) merged into what `summary`
    /// describes and packed into `packed`, from the `replicas` merged (sorted here),
    /// written at `archived_at` (RFC 3339, UTC).
    pub fn of_packed_segment(
        crawl: &CrawlId,
        day: NaiveDate,
        part: u32,
        summary: &crate::segment_merge::SegmentSummary,
        packed: crate::object_codec::Packed,
        mut replicas: Vec<String>,
        archived_at: String,
    ) -> Manifest {
        replicas.sort();
        Manifest {
            version: MANIFEST_VERSION,
            crawl: crawl.as_str().to_string(),
            day,
            part,
            events: summary.events,
            first_time_us: summary.first_time_us,
            last_time_us: summary.last_time_us,
            ids_sha256: summary.ids_sha256.clone(),
            file_sha256: packed.file_sha256,
            file_bytes: packed.file_bytes,
            object_key: object_key(crawl, day, part),
            object_sha256: packed.object_sha256,
            object_bytes: packed.object_bytes,
            compression: "zlib".into(),
            tailers: summary.tailers.clone(),
            replicas,
            archived_at,
        }
    }

    /// Parses a manifest, refusing versions this porter does not know.
    pub fn from_json(key: &str, data: &[u8]) -> Result<Manifest, String> {
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let v: Version = serde_json::from_slice(data)
            .map_err(|e| format!("manifest {key} is not json with a version: {e}"))?;
        if v.version != MANIFEST_VERSION {
            return Err(format!(
                "manifest {key}: version {} is not supported (this porter reads version {MANIFEST_VERSION}); upgrade the porter",
                v.version
            ));
        }
        serde_json::from_slice(data).map_err(|e| format!("manifest {key}: {e}"))
    }

    /// The manifest as pretty JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing a struct of strings and integers cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_contract_8() {
        let crawl = CrawlId::parse("crawl-1").expect("valid crawl");
        let d = NaiveDate::from_ymd_opt(2026, 11, 2).expect("valid day");
        assert_eq!(object_key(&crawl, d, 0), "crawl-1/2026-11-02.sqlite.z");
        assert_eq!(
            manifest_key(&crawl, d, 3),
            "crawl-1/2026-11-02.p3.sqlite.z.json"
        );
    }

    #[test]
    fn unknown_version_is_refused_by_name() {
        let e = Manifest::from_json("k", br#"{"version": 9}"#).unwrap_err();
        assert!(e.contains("version 9 is not supported"), "{e}");
    }
}
