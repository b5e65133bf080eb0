//! Per-crawl summaries: for each hour of a segment, its lines, status classes, bytes,
//! distinct website hosts and top hosts ([`HourSummary`]), read from the segment in one
//! pass, and hours merged into the steps a request asks for ([`StepSummary`]).
//!
//! Hours are the unit of caching (`summary_cache`): an hour's summary is exact and
//! merges exactly, but for the top hosts of a step longer than an hour, which are merged
//! from each hour's [`TOP_HOSTS_KEPT`] and so exact unless a host is outside every hour's
//! list.

use std::collections::HashMap;
use std::hash::Hasher;
use std::path::Path;

use contracts::status_class::StatusClass;
use rusqlite::Connection;
use serde::Serialize;

use crate::error::SegmentError;

/// Hosts kept per hour, by count, for the top hosts of a step.
pub const TOP_HOSTS_KEPT: usize = 100;

/// Microseconds in an hour.
pub const HOUR_US: i64 = 3_600_000_000;

/// One hour of one segment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HourSummary {
    /// Events in the hour.
    pub lines: u64,
    /// Events per [`StatusClass`], by its index.
    pub status: [u64; 7],
    /// Sum of the crawl.log `size` column.
    pub bytes: u64,
    /// The website hosts seen, as sorted 64-bit hashes: exact distinct counts when hours
    /// are merged, at 8 bytes a host.
    pub host_hashes: Vec<u64>,
    /// The most frequent hosts, at most [`TOP_HOSTS_KEPT`], by count then name.
    pub top_hosts: Vec<(String, u64)>,
}

impl HourSummary {
    /// Roughly what it holds in memory, for the cache's budget.
    pub fn weight(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.host_hashes.len() * 8
            + self
                .top_hosts
                .iter()
                .map(|(h, _)| h.len() + 32)
                .sum::<usize>()
    }
}

/// A hash of a host name, the same for every summary of this process (fixed keys), so
/// hours cached at different times merge.
fn host_hash(host: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(host.as_bytes());
    h.finish()
}

/// Summaries of the hours `[first_hour, end_hour)` (hour numbers since the epoch) of the
/// segment open on `conn`, one per hour, empty hours included.
pub fn summarize_hours(
    conn: &Connection,
    path: &Path,
    first_hour: i64,
    end_hour: i64,
) -> Result<Vec<HourSummary>, SegmentError> {
    let v2 = contracts::segment_sql::schema_version(conn, "main")
        .map_err(SegmentError::sqlite(path))?
        >= 2;
    let sql = if v2 {
        format!(
            "SELECT e.time_us, e.status, e.size, CASE WHEN e.url IS NULL THEN NULL ELSE {} END \
             FROM event e WHERE e.time_us >= ?1 AND e.time_us < ?2",
            contracts::segment_schema::URL_HOST_SQL
        )
    } else {
        // Version 1: crawl.log columns in their own table, row for row beside `events`.
        "SELECT e.time_us, c.status_code, c.size, c.host FROM events e \
         LEFT JOIN crawled_url c ON c.rowid = e.rowid \
         WHERE e.time_us >= ?1 AND e.time_us < ?2"
            .to_owned()
    };
    let n = (end_hour - first_hour).max(0) as usize;
    let mut hours: Vec<(HourSummary, HashMap<String, u64>)> = vec![Default::default(); n];
    let mut stmt = conn.prepare(&sql).map_err(SegmentError::sqlite(path))?;
    let mut rows = stmt
        .query((first_hour * HOUR_US, end_hour * HOUR_US))
        .map_err(SegmentError::sqlite(path))?;
    while let Some(r) = rows.next().map_err(SegmentError::sqlite(path))? {
        let t: i64 = r.get(0).map_err(SegmentError::sqlite(path))?;
        let Some((s, hosts)) = usize::try_from(t.div_euclid(HOUR_US) - first_hour)
            .ok()
            .and_then(|i| hours.get_mut(i))
        else {
            continue;
        };
        let status: Option<i64> = r.get(1).map_err(SegmentError::sqlite(path))?;
        let size: Option<i64> = r.get(2).map_err(SegmentError::sqlite(path))?;
        s.lines += 1;
        s.status[StatusClass::of(status).index()] += 1;
        s.bytes += size.unwrap_or(0).max(0) as u64;
        if let Some(host) = r
            .get_ref(3)
            .map_err(SegmentError::sqlite(path))?
            .as_str_or_null()
            .ok()
            .flatten()
            && !host.is_empty()
        {
            match hosts.get_mut(host) {
                Some(c) => *c += 1,
                None => {
                    hosts.insert(host.to_owned(), 1);
                }
            }
        }
    }
    Ok(hours
        .into_iter()
        .map(|(mut s, hosts)| {
            s.host_hashes = hosts.keys().map(|h| host_hash(h)).collect();
            s.host_hashes.sort_unstable();
            s.top_hosts = top(hosts.into_iter(), TOP_HOSTS_KEPT);
            s
        })
        .collect())
}

fn top(hosts: impl Iterator<Item = (String, u64)>, n: usize) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = hosts.collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

/// One step of a summary reply.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StepSummary {
    /// The step's first instant (RFC 3339).
    pub start: String,
    /// Events in the step.
    pub lines: u64,
    /// Events per status class (`1xx` ... `5xx`, `failed`, `other`).
    pub status: std::collections::BTreeMap<&'static str, u64>,
    /// Sum of the crawl.log `size` column.
    pub bytes: u64,
    /// Distinct website hosts.
    pub distinct_hosts: u64,
    /// The busiest hosts, most lines first.
    pub top_hosts: Vec<TopHost>,
}

/// A host and its lines in a step.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TopHost {
    /// The website host.
    pub host: String,
    /// Its lines.
    pub lines: u64,
}

/// Merges hour summaries (of one step, from any number of segments) into one step.
pub fn merge_step<'a>(
    start: String,
    hours: impl Iterator<Item = &'a HourSummary>,
    top_n: usize,
) -> StepSummary {
    let mut lines = 0;
    let mut status = [0u64; 7];
    let mut bytes = 0;
    let mut hashes: Vec<u64> = Vec::new();
    let mut hosts: HashMap<&str, u64> = HashMap::new();
    for h in hours {
        lines += h.lines;
        bytes += h.bytes;
        for (a, b) in status.iter_mut().zip(h.status) {
            *a += b;
        }
        hashes.extend_from_slice(&h.host_hashes);
        for (host, c) in &h.top_hosts {
            *hosts.entry(host.as_str()).or_default() += c;
        }
    }
    hashes.sort_unstable();
    hashes.dedup();
    StepSummary {
        start,
        lines,
        status: StatusClass::ALL
            .iter()
            .map(|c| (c.name(), status[c.index()]))
            .collect(),
        bytes,
        distinct_hosts: hashes.len() as u64,
        top_hosts: top(hosts.into_iter().map(|(h, c)| (h.to_owned(), c)), top_n)
            .into_iter()
            .map(|(host, lines)| TopHost { host, lines })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hour(lines: u64, hosts: &[(&str, u64)]) -> HourSummary {
        let mut h = HourSummary {
            lines,
            ..Default::default()
        };
        h.status[StatusClass::Success.index()] = lines;
        h.host_hashes = hosts.iter().map(|(n, _)| host_hash(n)).collect();
        h.host_hashes.sort_unstable();
        h.top_hosts = hosts.iter().map(|(n, c)| (n.to_string(), *c)).collect();
        h
    }

    #[test]
    fn merged_hours_count_each_host_once_and_rank_by_lines() {
        let a = hour(5, &[("a.org", 3), ("b.org", 2)]);
        let b = hour(4, &[("b.org", 4)]);
        let s = merge_step("t".into(), [&a, &b].into_iter(), 10);
        assert_eq!(s.lines, 9);
        assert_eq!(s.status["2xx"], 9);
        assert_eq!(s.distinct_hosts, 2);
        assert_eq!(
            s.top_hosts,
            vec![
                TopHost {
                    host: "b.org".into(),
                    lines: 6
                },
                TopHost {
                    host: "a.org".into(),
                    lines: 3
                }
            ]
        );
    }
}
