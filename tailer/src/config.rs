//! The tailer's TOML config, documented field by field (the operator's reference is
//! `docs/config.md`).

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// How a source's lines are parsed: the parsers' own type, so a config name and the parser
/// it picks cannot drift apart.
pub use parsers::SourceFormat;

/// The whole tailer config.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TailerConfig {
    /// The log sources to follow, one `[[source]]` table each.
    #[serde(rename = "source", default)]
    pub sources: Vec<SourceConfig>,
    /// Directory of the time-bucket spool. Default `/var/lib/sluice/spool`.
    #[serde(default = "default_spool_dir")]
    pub spool_dir: PathBuf,
    /// Directory of the tailer's state: its id, offsets (checkpoints). Default `/var/lib/sluice/tailer`.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Length of a spool bucket, in seconds. Default 60.
    #[serde(default = "default_bucket_interval_secs")]
    pub bucket_interval_secs: u64,
    /// Largest total size of the spool, in bytes. When reached, reading pauses (nothing is
    /// dropped) until delivered buckets can be pruned. Default 1 GiB.
    #[serde(default = "default_spool_max_bytes")]
    pub spool_max_bytes: u64,
    /// Bytes to keep free on the file systems of `spool_dir` and `state_dir`: below it,
    /// reading pauses (offsets kept, nothing lost) and delivered buckets are pruned early,
    /// so the crawler beside the tailer, and a buck on the same disk, keep room.
    /// Default 268,435,456 (256 MiB).
    #[serde(default = "default_min_free_bytes")]
    pub min_free_bytes: u64,
    /// Percent of those file systems to keep free, as `min_free_bytes` (the larger
    /// applies). Default 0.
    #[serde(default)]
    pub min_free_percent: f64,
    /// Delivered buckets older than this are deleted, in seconds. Default 86,400 (one day).
    #[serde(default = "default_spool_max_age_secs")]
    pub spool_max_age_secs: u64,
    /// When to fsync the current bucket file. Default `interval`.
    #[serde(default)]
    pub fsync: FsyncPolicy,
    /// Longest wait between fsyncs under `fsync = "interval"`, in milliseconds. Default 1000.
    #[serde(default = "default_fsync_interval_ms")]
    pub fsync_interval_ms: u64,
    /// How often the byte ranges each home acked are saved beside their bucket
    /// (`<bucket>.b.acked`), in milliseconds. After a SIGKILL the tailer re-sends what was
    /// acked in the last such interval, besides what it re-reads from its last checkpoint.
    /// Default 250.
    #[serde(default = "default_acked_save_ms")]
    pub acked_save_ms: u64,
    /// The cluster file listing the bucks. Required unless only `--print` is used.
    #[serde(default)]
    pub cluster_file: Option<PathBuf>,
    /// The tailer's secret key file, written by `sluice keygen`. Created if missing.
    /// Default `<state_dir>/tailer.key`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Seal messages with crypto_box. Turning it off must be explicit. Default true.
    #[serde(default = "default_true")]
    pub encryption: bool,
    /// The newest transport protocol version to offer: 2 seals with XChaCha20-Poly1305
    /// (`ChaChaBox`), 1 with XSalsa20-Poly1305 (`SalsaBox`). A buck answers with the newest
    /// version both speak, so an old buck still gets version 1. Lower it only to try an
    /// old peer's side. Default: the newest this build speaks (2).
    #[serde(default = "default_max_protocol_version")]
    pub max_protocol_version: u8,
    /// zlib level of packets, 0-9. Default 1.
    #[serde(default = "default_compression_level")]
    pub compression_level: u32,
    /// A live packet is sent when it reaches this many bytes of frames... Default 65,536.
    #[serde(default = "default_packet_max_bytes")]
    pub packet_max_bytes: usize,
    /// ...or when its oldest frame has waited this long, in milliseconds. Default 100.
    #[serde(default = "default_packet_max_delay_ms")]
    pub packet_max_delay_ms: u64,
    /// After a bucket is sealed, the repair send waits a random delay up to this, in
    /// seconds, so a fleet of tailers does not send at once. Default 10.
    #[serde(default = "default_repair_delay_max_secs")]
    pub repair_delay_max_secs: u64,
    /// First wait before re-connecting to a buck after a failure, in milliseconds; it
    /// doubles per failure (with random jitter) up to `connect_backoff_max_ms`. Default 200.
    #[serde(default = "default_connect_backoff_min_ms")]
    pub connect_backoff_min_ms: u64,
    /// Longest wait between connection attempts to a buck, in milliseconds. Default 30,000.
    #[serde(default = "default_connect_backoff_max_ms")]
    pub connect_backoff_max_ms: u64,
    /// Longest a TCP connect plus the hello exchange may take, in milliseconds. Default 5,000.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// How often a connection sends a keep-alive ping, in milliseconds. Default 5,000.
    #[serde(default = "default_ping_interval_ms")]
    pub ping_interval_ms: u64,
    /// A connection that receives nothing (not even a pong) for this long is closed and
    /// re-opened, in milliseconds. Default 20,000.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Most bytes of unacknowledged live packets kept per buck, in bytes (also while it is
    /// down, for re-sending on reconnect). While a buck that is up could not take one more
    /// read chunk (`2 * read_chunk_bytes + packet_max_bytes`) under this limit, the
    /// shipper takes no more live frames and the reader waits (see `live_wait_ms`); for a
    /// buck that is down, the live copy past the limit is dropped (counted) and the sealed
    /// bucket's repair send delivers those frames. Default 4 MiB.
    #[serde(default = "default_inflight_max_bytes")]
    pub inflight_max_bytes: usize,
    /// Longest the reader waits for the shipper to take a live copy, in milliseconds. A
    /// shipper that is merely busy (a backlog being read faster than it compresses) paces
    /// the reader, so the file, not the spool, holds the backlog and nothing is sent twice;
    /// one that stays stuck this long is skipped (counted) until it catches up, and the
    /// repair send covers the skipped frames. 0: never wait. Default 1,000.
    #[serde(default = "default_live_wait_ms")]
    pub live_wait_ms: u64,
    /// How often the cluster file's modification time is checked, in milliseconds. Default 2,000.
    #[serde(default = "default_cluster_poll_ms")]
    pub cluster_poll_ms: u64,
    /// How often the spool is re-scanned for its size and pruned, in milliseconds. Default 5,000.
    #[serde(default = "default_janitor_interval_ms")]
    pub janitor_interval_ms: u64,
    /// How often files are re-scanned and polled when notify is unavailable, in
    /// milliseconds. Default 250.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Shortest time between two reading cycles when the previous one found nothing more
    /// to read, in milliseconds: a writer appending one line at a time then costs one
    /// cycle per pause, not one per line. Adds at most this much latency. Default 100.
    #[serde(default = "default_read_coalesce_ms")]
    pub read_coalesce_ms: u64,
    /// How often the globs are re-expanded to find new files, in milliseconds. Default 1000.
    #[serde(default = "default_discovery_interval_ms")]
    pub discovery_interval_ms: u64,
    /// Most files held open at once; idle ones are closed and re-opened on change. Default 1024.
    #[serde(default = "default_max_open_files")]
    pub max_open_files: usize,
    /// A file unchanged for this long is closed (it stays followed), in seconds. Default 300.
    #[serde(default = "default_idle_close_secs")]
    pub idle_close_secs: u64,
    /// The host name put on every event. Default: the machine's host name.
    #[serde(default)]
    pub host: Option<String>,
    /// Niceness the tailer sets on itself at start (0 to leave it). Default 10.
    #[serde(default = "default_nice")]
    pub nice: i32,
    /// Longest line kept, in bytes; longer lines are cut (and marked truncated) to fit one
    /// frame. At most 65,000. Default 65,000.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// A rotated or deleted file is read to its end, then kept open until it has been
    /// unchanged for this long (a writer may not have reopened its log yet), then closed,
    /// in milliseconds. Default 5000.
    #[serde(default = "default_rotated_linger_ms")]
    pub rotated_linger_ms: u64,
    /// Most bytes read from one file before the reader moves on to the next, so one busy
    /// file does not starve the others, in bytes. Default 1 MiB.
    #[serde(default = "default_read_chunk_bytes")]
    pub read_chunk_bytes: usize,
    /// A multi-line record (stack trace) still open when its file has been quiet for this
    /// long is emitted as it is, in milliseconds. Every line waits this long when it is the
    /// last one written, so it bounds the live view's latency; loggers write a stack trace
    /// in one go, so a short wait loses no continuation lines. Default 100.
    #[serde(default = "default_multiline_flush_ms")]
    pub multiline_flush_ms: u64,
    /// Wake up on inotify events (via `notify`) as well as every `poll_interval_ms`. Turn
    /// off where inotify does not see changes (NFS and other network file systems) to save
    /// the watches. Default true.
    #[serde(default = "default_true")]
    pub use_notify: bool,
}

/// One log source.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Files to follow: a glob (`/var/log/syslog`, `/heritrix/jobs/*/**/logs/crawl.log`),
    /// or a crawl pattern with a `{crawl}` placeholder that captures the crawl id from the
    /// path (`/heritrix/jobs/{crawl}/**/logs/crawl.log`).
    pub path: String,
    /// How lines are parsed. Default `auto`.
    #[serde(default)]
    pub format: SourceFormat,
    /// A fixed crawl id for every file of this source (when `path` has no `{crawl}`).
    #[serde(default)]
    pub crawl: Option<String>,
    /// The application name put on events. Default: `heritrix` for crawl logs, else the
    /// file's name without extension.
    #[serde(default)]
    pub app: Option<String>,
    /// Globs of paths to leave out (e.g. `*.gz`, rotated copies are found by themselves).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Join continuation lines (indented, `Caused by:`, `... N more`) of Java stack traces
    /// into the event before them. Default true.
    #[serde(default = "default_true")]
    pub multiline: bool,
    /// Where to start a file seen for the first time: `beginning` or `end`. Default `beginning`.
    #[serde(default)]
    pub start_at: StartAt,
}

/// Where a new file is first read from.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    /// From byte 0.
    #[default]
    Beginning,
    /// From its size when first seen.
    End,
}

/// When the current bucket file is fsynced. Offsets are checkpointed only after.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// At seal, and at most once per `fsync_interval_ms`.
    #[default]
    Interval,
    /// After every batch of appended frames (slow, safest).
    Always,
    /// Only at seal (fastest; a crash re-reads more).
    Seal,
}

fn default_spool_dir() -> PathBuf {
    "/var/lib/sluice/spool".into()
}
fn default_state_dir() -> PathBuf {
    "/var/lib/sluice/tailer".into()
}
fn default_bucket_interval_secs() -> u64 {
    60
}
fn default_min_free_bytes() -> u64 {
    256 << 20
}
fn default_spool_max_bytes() -> u64 {
    1 << 30
}
fn default_spool_max_age_secs() -> u64 {
    86_400
}
fn default_fsync_interval_ms() -> u64 {
    1000
}
fn default_acked_save_ms() -> u64 {
    250
}
fn default_true() -> bool {
    true
}
fn default_max_protocol_version() -> u8 {
    contracts::transport::PROTOCOL_MAX
}
fn default_compression_level() -> u32 {
    1
}
fn default_packet_max_bytes() -> usize {
    64 * 1024
}
fn default_packet_max_delay_ms() -> u64 {
    100
}
fn default_repair_delay_max_secs() -> u64 {
    10
}
fn default_connect_backoff_min_ms() -> u64 {
    200
}
fn default_connect_backoff_max_ms() -> u64 {
    30_000
}
fn default_connect_timeout_ms() -> u64 {
    5_000
}
fn default_ping_interval_ms() -> u64 {
    5_000
}
fn default_idle_timeout_ms() -> u64 {
    20_000
}
fn default_inflight_max_bytes() -> usize {
    4 << 20
}
fn default_read_coalesce_ms() -> u64 {
    100
}
fn default_live_wait_ms() -> u64 {
    1_000
}
fn default_cluster_poll_ms() -> u64 {
    2_000
}
fn default_janitor_interval_ms() -> u64 {
    5_000
}
fn default_poll_interval_ms() -> u64 {
    250
}
fn default_discovery_interval_ms() -> u64 {
    1000
}
fn default_max_open_files() -> usize {
    1024
}
fn default_idle_close_secs() -> u64 {
    300
}
fn default_nice() -> i32 {
    10
}
fn default_max_line_bytes() -> usize {
    65_000
}
fn default_rotated_linger_ms() -> u64 {
    5000
}
fn default_read_chunk_bytes() -> usize {
    1 << 20
}
fn default_multiline_flush_ms() -> u64 {
    100
}

/// Why a config is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unreadable file.
    #[error("tailer config {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Bad TOML or a bad value.
    #[error("tailer config {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl TailerConfig {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<TailerConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.into(),
            source,
        })?;
        TailerConfig::parse(&text, path)
    }

    /// Parses and validates config text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<TailerConfig, ConfigError> {
        let c: TailerConfig = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: path.into(),
            message: e.to_string(),
        })?;
        c.validate(path)?;
        Ok(c)
    }

    /// A config following `sources` with every other setting at its default (the same
    /// defaults a config file gets), for embedding (`sluice up`) and tests.
    pub fn new(sources: Vec<SourceConfig>) -> TailerConfig {
        let mut c: TailerConfig = toml::from_str("")
            .unwrap_or_else(|e| unreachable!("every tailer setting has a default: {e}"));
        c.sources = sources;
        c
    }

    /// The host name put on events and sent in the hello to bucks: `host` if configured,
    /// else the machine's host name, else `localhost` (an event must name some host).
    pub fn host_name(&self) -> String {
        self.host
            .clone()
            .or_else(machine_host_name)
            .unwrap_or_else(|| "localhost".into())
    }

    /// Checks ranges and sources; `path` names the config in errors.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.into(),
            message,
        };
        let c = self;
        if c.sources.is_empty() {
            return Err(invalid(
                "no [[source]] tables: add one with a `path`".into(),
            ));
        }
        if c.bucket_interval_secs == 0
            || (c.bucket_interval_secs >= 60 && !c.bucket_interval_secs.is_multiple_of(60))
        {
            return Err(invalid(format!(
                "bucket_interval_secs = {}: use a whole number of minutes (60, 120, ...) or, for tests, 1 to 59",
                c.bucket_interval_secs
            )));
        }
        if let Some(problem) = contracts::transport::max_version_problem(c.max_protocol_version) {
            return Err(invalid(problem));
        }
        if c.max_line_bytes == 0 || c.max_line_bytes > 65_000 {
            return Err(invalid(format!(
                "max_line_bytes = {}: use 1 to 65000",
                c.max_line_bytes
            )));
        }
        if !(0.0..=100.0).contains(&c.min_free_percent) {
            return Err(invalid(format!(
                "min_free_percent = {}: use 0 to 100",
                c.min_free_percent
            )));
        }
        for s in &c.sources {
            let has_pattern = s.path.contains("{crawl}");
            if has_pattern == s.crawl.is_some() {
                return Err(invalid(format!(
                    "source {:?}: give the crawl either as `{{crawl}}` in the path or as `crawl = \"...\"`, exactly one",
                    s.path
                )));
            }
            if let Some(crawl) = &s.crawl {
                contracts::CrawlId::parse(crawl)
                    .map_err(|e| invalid(format!("source {:?}: {e}", s.path)))?;
            }
        }
        Ok(())
    }

    /// The free space kept on the spool's and state's file systems.
    pub fn headroom(&self) -> disk_space::Headroom {
        disk_space::Headroom {
            min_free_bytes: self.min_free_bytes,
            min_free_percent: self.min_free_percent,
        }
    }

    /// The key file path, defaulted.
    pub fn key_file(&self) -> PathBuf {
        self.key_file
            .clone()
            .unwrap_or_else(|| self.state_dir.join("tailer.key"))
    }
}

/// The kernel's host name (`gethostname`), if it has a non-empty one.
#[allow(unsafe_code)]
fn machine_host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length; gethostname writes at most that.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    // A name that fills the buffer may come without its NUL: take it all then.
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).trim().to_owned();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_has_the_defaults_of_a_file() {
        let sources = vec![SourceConfig {
            crawl: Some("c".into()),
            ..toml::from_str("path = \"/x\"").unwrap()
        }];
        let from_file =
            TailerConfig::parse("[[source]]\npath = \"/x\"\ncrawl = \"c\"\n", Path::new("t"))
                .unwrap();
        assert_eq!(TailerConfig::new(sources), from_file);
    }

    #[test]
    fn host_name_is_the_configured_one_else_the_machines() {
        let mut c = TailerConfig::new(vec![]);
        c.host = Some("crawler-07".into());
        assert_eq!(c.host_name(), "crawler-07");
        c.host = None;
        let machine = c.host_name();
        assert!(!machine.is_empty());
        #[cfg(target_os = "linux")]
        if let Ok(proc_name) = std::fs::read_to_string("/proc/sys/kernel/hostname")
            && !proc_name.trim().is_empty()
        {
            assert_eq!(machine, proc_name.trim());
        }
    }

    #[test]
    fn parse_config() {
        let c = TailerConfig::parse(
            r#"
            spool_dir = "/tmp/sp"
            cluster_file = "/etc/sluice/cluster.toml"
            [[source]]
            path = "/heritrix/jobs/{crawl}/**/logs/crawl.log"
            format = "crawl_log"
            [[source]]
            path = "/var/log/syslog"
            format = "syslog"
            crawl = "host-logs"
            "#,
            Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(c.bucket_interval_secs, 60);
        assert_eq!(c.sources[0].format, SourceFormat::CrawlLog);
        assert_eq!(c.sources[1].crawl.as_deref(), Some("host-logs"));
        assert!(c.encryption);
        assert_eq!(
            c.key_file(),
            PathBuf::from("/var/lib/sluice/tailer/tailer.key")
        );
    }

    #[test]
    fn reading_settings_default_and_parse() {
        let base = "[[source]]\npath = \"/x\"\ncrawl = \"c\"\n";
        let c = TailerConfig::parse(base, Path::new("t.toml")).unwrap();
        assert_eq!(
            (
                c.rotated_linger_ms,
                c.read_chunk_bytes,
                c.multiline_flush_ms,
                c.use_notify
            ),
            (5000, 1 << 20, 100, true)
        );
        let text = format!(
            "rotated_linger_ms = 7\nread_chunk_bytes = 9\nmultiline_flush_ms = 11\nuse_notify = false\n{base}"
        );
        let c = TailerConfig::parse(&text, Path::new("t.toml")).unwrap();
        assert_eq!(
            (
                c.rotated_linger_ms,
                c.read_chunk_bytes,
                c.multiline_flush_ms,
                c.use_notify
            ),
            (7, 9, 11, false)
        );
    }

    #[test]
    fn rejects_mistakes_clearly() {
        for (text, needle) in [
            ("", "no [[source]]"),
            ("[[source]]\npath=\"/x\"\n", "exactly one"),
            ("[[source]]\npath=\"/x\"\ncrawl=\"../etc\"\n", "crawl id"),
            (
                "bogus=1\n[[source]]\npath=\"/x\"\ncrawl=\"c\"\n",
                "unknown field",
            ),
            (
                "bucket_interval_secs=90\n[[source]]\npath=\"/x\"\ncrawl=\"c\"\n",
                "whole number of minutes",
            ),
        ] {
            let e = TailerConfig::parse(text, Path::new("t.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn parse_shipping_settings() {
        let c = TailerConfig::parse(
            "[[source]]\npath=\"/x\"\ncrawl=\"c\"\n",
            Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(
            (
                c.connect_backoff_min_ms,
                c.connect_backoff_max_ms,
                c.connect_timeout_ms
            ),
            (200, 30_000, 5_000)
        );
        assert_eq!((c.ping_interval_ms, c.idle_timeout_ms), (5_000, 20_000));
        assert_eq!(c.inflight_max_bytes, 4 << 20);
        assert_eq!((c.cluster_poll_ms, c.janitor_interval_ms), (2_000, 5_000));
        let c = TailerConfig::parse(
            "connect_backoff_min_ms = 5\nconnect_backoff_max_ms = 50\nconnect_timeout_ms = 7\n\
             ping_interval_ms = 9\nidle_timeout_ms = 11\ninflight_max_bytes = 13\n\
             cluster_poll_ms = 15\njanitor_interval_ms = 17\n[[source]]\npath=\"/x\"\ncrawl=\"c\"\n",
            Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(
            (
                c.connect_backoff_min_ms,
                c.connect_backoff_max_ms,
                c.connect_timeout_ms
            ),
            (5, 50, 7)
        );
        assert_eq!(
            (c.ping_interval_ms, c.idle_timeout_ms, c.inflight_max_bytes),
            (9, 11, 13)
        );
        assert_eq!((c.cluster_poll_ms, c.janitor_interval_ms), (15, 17));
    }
}
