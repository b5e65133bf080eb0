//! [`ArchieConfig`]: archie's settings, as a TOML file or embedded by `sluice up`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::ArchieError;

/// Archie's settings. Every field but `work_dir` has a default; times are in seconds and
/// sizes in bytes, as their names say.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ArchieConfig {
    /// Directory for the catalog (`catalog.json`) and one sub-directory per request
    /// (fetched segments, then the index). Created if missing.
    pub work_dir: PathBuf,
    /// Longest time range one request may cover, in seconds. Default 2,678,400 (31 days).
    #[serde(default = "default_max_range_secs")]
    pub max_range_secs: u64,
    /// Disk budget for all indexes together, in bytes: when the ready indexes pass it, the
    /// oldest are evicted (their files deleted, state `expired`). Default 20 GiB.
    #[serde(default = "default_disk_budget_bytes")]
    pub disk_budget_bytes: u64,
    /// Most bytes of segments one request may fetch; past it the request fails and says
    /// so (narrow the range or the crawl pattern). Checked after each segment, so a
    /// request may pass it by one segment. Default 4294967296 (4 GiB).
    #[serde(default = "default_max_fetch_bytes")]
    pub max_fetch_bytes: u64,
    /// Most crawls a crawl pattern (`crawl-*`) may match in one request; more fail the
    /// request. Default 64.
    #[serde(default = "default_max_crawls_per_request")]
    pub max_crawls_per_request: usize,
    /// How many requests fetch and build at once; the others wait in state `queued`.
    /// Default 1 (a build already uses `index_threads` cores).
    #[serde(default = "default_concurrent_builds")]
    pub concurrent_builds: usize,
    /// How long an index lives after it is ready (or a request after it failed), in
    /// seconds. Default 86,400 (24 h).
    #[serde(default = "default_expiry_secs")]
    pub expiry_secs: u64,
    /// How often the reaper looks for expired indexes and the disk budget, in seconds.
    /// Default 60.
    #[serde(default = "default_reap_interval_secs")]
    pub reap_interval_secs: u64,
    /// Threads that build the full-text indexes of one request; each builds its own
    /// shard (every other batch of events). Default 2.
    #[serde(default = "default_index_threads")]
    pub index_threads: usize,
    /// Events per batch: each batch is one transaction in the events table and in its
    /// shard, and becomes searchable when it and every batch before it are committed.
    /// Default 50,000.
    #[serde(default = "default_index_batch_events")]
    pub index_batch_events: usize,
    /// Time limit of one `POST /history/{id}/sql` statement, in seconds. Default 10.
    #[serde(default = "default_sql_time_limit_secs")]
    pub sql_time_limit_secs: u64,
    /// Most rows one SQL statement returns (the reply says when it was cut). Default 10,000.
    #[serde(default = "default_sql_row_limit")]
    pub sql_row_limit: usize,
    /// Most bytes of JSON one SQL reply carries; more end it early (the reply says it
    /// was cut). A reply is built in memory before it is sent. Default 16777216 (16 MiB).
    #[serde(default = "default_sql_max_bytes")]
    pub sql_max_bytes: u64,
    /// Largest single value a statement may make or read, in bytes
    /// (`SQLITE_LIMIT_LENGTH`): a bigger one fails it. Default 4194304 (4 MiB).
    #[serde(default = "default_sql_max_value_bytes")]
    pub sql_max_value_bytes: u64,
    /// Most columns a statement's result may have (`SQLITE_LIMIT_COLUMN`). Default 256.
    #[serde(default = "default_sql_max_columns")]
    pub sql_max_columns: u32,
    /// Statements run at once; each holds a blocking thread and up to `sql_max_bytes` of
    /// reply. Past it: 503 with `Retry-After`. Default 4.
    #[serde(default = "default_sql_max_concurrent")]
    pub sql_max_concurrent: usize,
    /// Time limit of one search or histogram, in seconds: a search that hits it returns
    /// what it found with a cursor to go on. Default 10.
    #[serde(default = "default_search_time_limit_secs")]
    pub search_time_limit_secs: u64,
    /// Largest `limit` a search accepts. Default 1,000.
    #[serde(default = "default_max_search_limit")]
    pub max_search_limit: usize,
    /// Requests queued or building at once: each may fetch up to `max_range_secs` of
    /// archive and fill the disk, so past it a new request is answered 503 with
    /// `Retry-After` instead of queued. Default 8.
    #[serde(default = "default_max_pending_requests")]
    pub max_pending_requests: usize,
    /// Bytes to keep free on `work_dir`'s file system: below it a request is not started
    /// (it stays `queued` and is tried again, see `disk_retry_max_secs`), so fetched
    /// segments and indexes never take the last space of the disk. Default 268,435,456
    /// (256 MiB).
    #[serde(default = "default_min_free_bytes")]
    pub min_free_bytes: u64,
    /// Percent of that file system to keep free, as `min_free_bytes` (the larger applies).
    /// Default 0.
    #[serde(default)]
    pub min_free_percent: f64,
    /// Longest wait, in seconds, between two checks of the free space for a request
    /// queued below the headroom: waits start at 1 s and double up to it. Default 60.
    #[serde(default = "default_disk_retry_max_secs")]
    pub disk_retry_max_secs: u64,
    /// The token every route needs, as `Authorization: Bearer <token>` (the bucks'
    /// `api_token`; `sluice up` sets it whenever it listens off loopback). Default: none
    /// (open: keep archie on loopback or behind a proxy that authenticates).
    #[serde(default)]
    pub api_token: Option<String>,
    /// The HTTP listener's bounds (`[http]`), as the buck's. Default: `EdgeConfig`'s.
    #[serde(default)]
    pub http: edge::EdgeConfig,
}

fn default_max_pending_requests() -> usize {
    8
}
fn default_min_free_bytes() -> u64 {
    256 << 20
}
fn default_disk_retry_max_secs() -> u64 {
    60
}

fn default_max_range_secs() -> u64 {
    31 * 86_400
}
fn default_disk_budget_bytes() -> u64 {
    20 << 30
}
fn default_max_fetch_bytes() -> u64 {
    4 << 30
}
fn default_max_crawls_per_request() -> usize {
    64
}
fn default_concurrent_builds() -> usize {
    1
}
fn default_expiry_secs() -> u64 {
    86_400
}
fn default_reap_interval_secs() -> u64 {
    60
}
fn default_index_threads() -> usize {
    2
}
fn default_index_batch_events() -> usize {
    50_000
}
fn default_sql_time_limit_secs() -> u64 {
    10
}
fn default_sql_row_limit() -> usize {
    10_000
}
fn default_sql_max_bytes() -> u64 {
    16 << 20
}
fn default_sql_max_value_bytes() -> u64 {
    4 << 20
}
fn default_sql_max_columns() -> u32 {
    256
}
fn default_sql_max_concurrent() -> usize {
    4
}
fn default_search_time_limit_secs() -> u64 {
    10
}
fn default_max_search_limit() -> usize {
    1_000
}

impl ArchieConfig {
    /// A config with every default, for embedding (`sluice up`).
    pub fn new(work_dir: impl Into<PathBuf>) -> ArchieConfig {
        ArchieConfig {
            work_dir: work_dir.into(),
            max_range_secs: default_max_range_secs(),
            disk_budget_bytes: default_disk_budget_bytes(),
            max_fetch_bytes: default_max_fetch_bytes(),
            max_crawls_per_request: default_max_crawls_per_request(),
            concurrent_builds: default_concurrent_builds(),
            expiry_secs: default_expiry_secs(),
            reap_interval_secs: default_reap_interval_secs(),
            index_threads: default_index_threads(),
            index_batch_events: default_index_batch_events(),
            sql_time_limit_secs: default_sql_time_limit_secs(),
            sql_row_limit: default_sql_row_limit(),
            sql_max_bytes: default_sql_max_bytes(),
            sql_max_value_bytes: default_sql_max_value_bytes(),
            sql_max_columns: default_sql_max_columns(),
            sql_max_concurrent: default_sql_max_concurrent(),
            search_time_limit_secs: default_search_time_limit_secs(),
            max_search_limit: default_max_search_limit(),
            max_pending_requests: default_max_pending_requests(),
            min_free_bytes: default_min_free_bytes(),
            min_free_percent: 0.0,
            disk_retry_max_secs: default_disk_retry_max_secs(),
            api_token: None,
            http: edge::EdgeConfig::default(),
        }
    }

    /// Reads and parses a TOML config file.
    pub fn load(path: &Path) -> Result<ArchieConfig, ArchieError> {
        let text = std::fs::read_to_string(path).map_err(|source| ArchieError::ConfigRead {
            path: path.to_path_buf(),
            source,
        })?;
        ArchieConfig::parse(&text, path)
    }

    /// Parses TOML text and checks it; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<ArchieConfig, ArchieError> {
        let config: ArchieConfig = toml::from_str(text).map_err(|e| ArchieError::ConfigParse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        config.check().map_err(|message| ArchieError::ConfigParse {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(config)
    }

    /// The free space kept on `work_dir`'s file system (`min_free_bytes`,
    /// `min_free_percent`).
    pub fn headroom(&self) -> disk_space::Headroom {
        disk_space::Headroom {
            min_free_bytes: self.min_free_bytes,
            min_free_percent: self.min_free_percent,
        }
    }

    /// The checks `parse` makes, for configs built in code.
    pub fn check(&self) -> Result<(), String> {
        let positive = [
            ("max_range_secs", self.max_range_secs),
            ("concurrent_builds", self.concurrent_builds as u64),
            ("max_fetch_bytes", self.max_fetch_bytes),
            ("max_crawls_per_request", self.max_crawls_per_request as u64),
            ("reap_interval_secs", self.reap_interval_secs),
            ("index_threads", self.index_threads as u64),
            ("index_batch_events", self.index_batch_events as u64),
            ("sql_time_limit_secs", self.sql_time_limit_secs),
            ("sql_row_limit", self.sql_row_limit as u64),
            ("sql_max_bytes", self.sql_max_bytes),
            ("sql_max_value_bytes", self.sql_max_value_bytes),
            ("sql_max_columns", u64::from(self.sql_max_columns)),
            ("sql_max_concurrent", self.sql_max_concurrent as u64),
            ("search_time_limit_secs", self.search_time_limit_secs),
            ("max_search_limit", self.max_search_limit as u64),
            ("disk_retry_max_secs", self.disk_retry_max_secs),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        if !(0.0..=100.0).contains(&self.min_free_percent) {
            return Err(format!(
                "min_free_percent = {}: use 0 to 100",
                self.min_free_percent
            ));
        }
        if self.index_threads > 16 {
            return Err("index_threads must be at most 16 (one attached shard each)".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_config() {
        let text = r#"
            work_dir = "/var/lib/sluice/archie"
            max_range_secs = 86400
            disk_budget_bytes = 1000000
            concurrent_builds = 2
            expiry_secs = 3600
            reap_interval_secs = 5
            index_threads = 1
            index_batch_events = 1000
            sql_time_limit_secs = 3
            sql_row_limit = 50
            search_time_limit_secs = 4
            max_search_limit = 200
        "#;
        let c = ArchieConfig::parse(text, Path::new("a.toml")).unwrap();
        assert_eq!(c.work_dir, PathBuf::from("/var/lib/sluice/archie"));
        assert_eq!(c.max_range_secs, 86400);
        assert_eq!(c.disk_budget_bytes, 1_000_000);
        assert_eq!(c.concurrent_builds, 2);
        assert_eq!(c.expiry_secs, 3600);
        assert_eq!(c.reap_interval_secs, 5);
        assert_eq!(c.index_threads, 1);
        assert_eq!(c.index_batch_events, 1000);
        assert_eq!(c.sql_time_limit_secs, 3);
        assert_eq!(c.sql_row_limit, 50);
        assert_eq!(c.search_time_limit_secs, 4);
        assert_eq!(c.max_search_limit, 200);

        let d = ArchieConfig::parse("work_dir = \"/w\"", Path::new("b.toml")).unwrap();
        assert_eq!(d, ArchieConfig::new("/w"));
        assert_eq!(d.expiry_secs, 86_400);
        assert_eq!(d.max_range_secs, 31 * 86_400);

        let e = ArchieConfig::parse("work_dir = \"/w\"\nexpiry = 3", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.toml") && e.contains("expiry"), "{e}");
        let e = ArchieConfig::parse("work_dir = \"/w\"\nindex_threads = 0", Path::new("d.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("index_threads must be at least 1"), "{e}");
        assert!(ArchieConfig::parse("", Path::new("e.toml")).is_err());
        assert_eq!(d.headroom().min_free_bytes, 256 << 20);
        assert_eq!(d.disk_retry_max_secs, 60);
        let h = ArchieConfig::parse(
            "work_dir = \"/w\"\nmin_free_bytes = 5\nmin_free_percent = 1.5\ndisk_retry_max_secs = 2",
            Path::new("f.toml"),
        )
        .unwrap();
        assert_eq!((h.headroom().wanted(1000), h.disk_retry_max_secs), (15, 2));
        for bad in ["min_free_percent = 100.5", "disk_retry_max_secs = 0"] {
            let e = ArchieConfig::parse(&format!("work_dir = \"/w\"\n{bad}"), Path::new("g.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(bad.split(' ').next().unwrap()), "{e}");
        }
    }
}
