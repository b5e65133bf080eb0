//! `Tally`: per-crawl counters of what the buck stored in the current interval, fed by
//! the bus's publisher (every newly inserted event, live or late) and emptied by the
//! Graphite pusher at each interval's end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use contracts::event::{Field, Format};
use contracts::status_class::StatusClass;

use super::distinct_hosts::DistinctHosts;
use crate::pub_sub::Published;

/// One crawl's counts over one interval.
#[derive(Debug, Default, Clone)]
pub struct CrawlCounts {
    /// Lines by class, indexed by `StatusClass::index` (the classes the crawl summaries
    /// count, so a chart and a Graphite series agree): crawl.log lines by status class,
    /// negative Heritrix codes `failed`; other codes and every line that is not a
    /// crawl.log line `other`.
    pub lines: [u64; StatusClass::ALL.len()],
    /// Bytes of the lines as logged (their original length).
    pub log_bytes: u64,
    /// Bytes fetched, the crawl.log `size` field summed.
    pub fetched_bytes: u64,
    /// Website hosts of crawl.log URLs.
    pub hosts: DistinctHosts,
}

/// The current interval's counts, per crawl.
#[derive(Debug, Default)]
pub struct Tally {
    /// A std mutex: the writer thread holds it for one batch's arithmetic, the pusher
    /// for a swap, never across an await.
    crawls: Mutex<HashMap<String, CrawlCounts>>,
}

impl Tally {
    /// Counts a batch of newly stored events.
    pub fn record(&self, items: &[Arc<Published>]) {
        let mut crawls = self.crawls.lock().unwrap_or_else(|p| p.into_inner());
        for p in items {
            let e = &p.event;
            let c = match crawls.get_mut(e.crawl.as_str()) {
                Some(c) => c,
                None => crawls.entry(e.crawl.as_str().to_owned()).or_default(),
            };
            c.log_bytes += e.original_len;
            if e.format != Format::CrawlLog {
                c.lines[StatusClass::Other.index()] += 1;
                continue;
            }
            let status = e
                .field_str(Field::Status)
                .and_then(|s| s.trim().parse::<i64>().ok());
            c.lines[StatusClass::of(status).index()] += 1;
            if let Some(size) = e
                .field_str(Field::Size)
                .and_then(|s| s.trim().parse::<u64>().ok())
            {
                c.fetched_bytes += size;
            }
            if let Some(url) = e.field_str(Field::Url) {
                let host = contracts::crawled_url::url_host(&url);
                if !host.is_empty() {
                    c.hosts.insert(&host);
                }
            }
        }
    }

    /// The interval's counts, leaving an empty tally for the next one.
    pub fn take(&self) -> HashMap<String, CrawlCounts> {
        std::mem::take(&mut *self.crawls.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
