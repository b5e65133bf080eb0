//! `BuckConfig`: the buck's TOML config, documented field by field (unit and default).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::ConfigError;

/// The buck's configuration, read from TOML.
///
/// ```toml
/// id = "buck-1"
/// data_dir = "/var/lib/sluice/buck"
/// cluster_file = "/etc/sluice/cluster.toml"
/// allowed_tailers_file = "/etc/sluice/tailers.pub"
/// ```
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BuckConfig {
    /// This buck's id in the cluster file. Required.
    pub id: String,
    /// Where segments live: `<data_dir>/segments/<crawl>/<YYYY-MM-DD>[.pN].sqlite`.
    /// Temporary copies for `GET /segments/..` go to `<data_dir>/tmp`. Required.
    pub data_dir: PathBuf,
    /// The cluster file (DESIGN.md contract 5). Optional: without it the buck redirects no
    /// query. Re-read when its modification time or size changes.
    #[serde(default)]
    pub cluster_file: Option<PathBuf>,
    /// The buck's secret key (base64), created with its `.pub` beside it if missing.
    /// Default `<data_dir>/buck.key`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Public keys (base64) of the tailers allowed to connect. Default empty.
    #[serde(default)]
    pub allowed_tailers: Vec<String>,
    /// A file of allowed tailer public keys, one per line, `#` starts a comment. Re-read
    /// when it changes; a bad line is logged and skipped. Default none.
    #[serde(default)]
    pub allowed_tailers_file: Option<PathBuf>,
    /// Whether tailers must seal their messages. A tailer asking for plain messages is
    /// refused unless this is false. Default true.
    #[serde(default = "default_true")]
    pub encryption: bool,
    /// The newest transport protocol version to accept: 2 seals with XChaCha20-Poly1305
    /// (`ChaChaBox`), 1 with XSalsa20-Poly1305 (`SalsaBox`). Tailers are answered with the
    /// newest version both speak. Lower it only to try an old peer's side. Default: the
    /// newest this build speaks (2).
    #[serde(default = "default_max_protocol_version")]
    pub max_protocol_version: u8,
    /// Seconds after the end of a UTC day at which that day's segment closes (and a part
    /// file this long after its creation). Default 3600.
    #[serde(default = "default_day_close_grace_secs")]
    pub day_close_grace_secs: u64,
    /// How often the writer looks for segments to close, in milliseconds. Default 1000.
    #[serde(default = "default_close_check_interval_ms")]
    pub close_check_interval_ms: u64,
    /// Time limit of one SQL query, in milliseconds. Default 10000.
    #[serde(default = "default_sql_timeout_ms")]
    pub sql_timeout_ms: u64,
    /// Most rows one SQL reply carries; more end the reply with a truncation marker.
    /// Default 100000.
    #[serde(default = "default_sql_max_rows")]
    pub sql_max_rows: u64,
    /// Most bytes of JSON one SQL reply carries; more end it with a truncation marker.
    /// Default 67108864 (64 MiB).
    #[serde(default = "default_sql_max_bytes")]
    pub sql_max_bytes: u64,
    /// Largest single value a query may make or read, in bytes (SQLite's
    /// `SQLITE_LIMIT_LENGTH` on query connections): a bigger one fails the query with a
    /// 4xx instead of being built in memory (`zeroblob`, `printf`, `group_concat`).
    /// Default 4,194,304 (4 MiB).
    #[serde(default = "default_sql_max_value_bytes")]
    pub sql_max_value_bytes: u64,
    /// Most columns a query's result may have (SQLite's `SQLITE_LIMIT_COLUMN` on query
    /// connections). Default 256.
    #[serde(default = "default_sql_max_columns")]
    pub sql_max_columns: u32,
    /// Queries run at once; each holds a blocking thread and a read transaction. Past it:
    /// 503 with `Retry-After`. Default 4.
    #[serde(default = "default_sql_max_concurrent")]
    pub sql_max_concurrent: usize,
    /// Longest wait for a client to take the next part of a reply, in milliseconds: a
    /// client that reads slower is cut off and its query's read transaction ends, so it
    /// cannot hold the WAL from being checkpointed. Default 10,000.
    #[serde(default = "default_sql_send_timeout_ms")]
    pub sql_send_timeout_ms: u64,
    /// Longest time one `GET /export` stream may take, in seconds: past it the stream is
    /// cut (the client sees an incomplete body and says so). Exports share the SQL API's
    /// `sql_max_concurrent` slots and `sql_send_timeout_ms`. Default 600.
    #[serde(default = "default_export_timeout_secs")]
    pub export_timeout_secs: u64,
    /// Most bytes of lines one `GET /export` stream carries; past it the stream is cut.
    /// `sluice export` asks for one day per request. Default 4,294,967,296 (4 GiB).
    #[serde(default = "default_export_max_bytes")]
    pub export_max_bytes: u64,
    /// Events the live bus holds for its slowest subscriber before that subscriber is told
    /// it missed some. Keep it above `writer_max_batch_events`: one commit's events are
    /// published at once. Default 32768.
    #[serde(default = "default_bus_capacity")]
    pub bus_capacity: usize,
    /// Write requests (one per received message) queued for the segment writer; a full
    /// queue makes connections wait (backpressure). Default 64.
    #[serde(default = "default_writer_queue")]
    pub writer_queue: usize,
    /// Most events committed in one transaction (group commit). Default 20000.
    #[serde(default = "default_writer_max_batch_events")]
    pub writer_max_batch_events: usize,
    /// How long the writer waits for the next request before committing a batch, in
    /// milliseconds: a batch grows while requests keep coming within this of each other.
    /// 0 commits whatever is queued at once. Default 10.
    #[serde(default = "default_writer_max_delay_ms")]
    pub writer_max_delay_ms: u64,
    /// Longest a batch keeps growing after its first request while requests keep coming
    /// (a backlog), in milliseconds: the most an ack (and the live view) waits for the
    /// batch to fill. Larger batches rewrite fewer index pages per event. Default 50.
    #[serde(default = "default_writer_max_batch_ms")]
    pub writer_max_batch_ms: u64,
    /// Segment files kept open by the writer at once (least recently used are closed).
    /// Default 64.
    #[serde(default = "default_max_open_segments")]
    pub max_open_segments: usize,
    /// Tailer connections served at once; more wait in the listen backlog. Default 1024.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Messages of one connection being committed at once (pipelining). Under a backlog
    /// the writer commits what is queued in one transaction, so this bounds how large
    /// a transaction one tailer can fill. Default 64.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Bytes of messages (as received: sealed and compressed) of one connection being
    /// committed at once; the next message waits past it, except that one is always let
    /// in when none is pending. Default 16 MiB (what 8 messages of the 2 MiB maximum
    /// held before `max_in_flight` became 64).
    #[serde(default = "default_max_in_flight_bytes")]
    pub max_in_flight_bytes: usize,
    /// Time a new connection has to send its hello, in milliseconds. Default 10000.
    #[serde(default = "default_hello_timeout_ms")]
    pub hello_timeout_ms: u64,
    /// Connections accepted but not past their hello yet; more wait in the listen
    /// backlog. With `hello_timeout_ms`, it bounds what a client that connects and sends
    /// nothing (or a byte at a time) can hold, apart from the `max_connections` slots of
    /// tailers that said hello. Default 64.
    #[serde(default = "default_max_pending_hellos")]
    pub max_pending_hellos: usize,
    /// Connections from one IP address at once (hello or not); more are closed at once.
    /// Default 16.
    #[serde(default = "default_max_connections_per_address")]
    pub max_connections_per_address: usize,
    /// A tailer connection that sends nothing (not even a ping: tailers ping every 5 s)
    /// for this long is closed, in milliseconds. Default 60,000.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Delay a nacked tailer waits before re-sending, in milliseconds. Default 5000.
    #[serde(default = "default_nack_retry_after_ms")]
    pub nack_retry_after_ms: u32,
    /// Bytes to keep free on the segments' file system: below it the buck stops
    /// committing (tailers are nacked and keep their spools; SQL and the live view go on),
    /// so SQLite still has room to checkpoint its WAL and to close a day. Default
    /// 536,870,912 (512 MiB).
    #[serde(default = "default_min_free_bytes")]
    pub min_free_bytes: u64,
    /// Percent of that file system to keep free, as `min_free_bytes` (the larger applies).
    /// Default 0.
    #[serde(default)]
    pub min_free_percent: f64,
    /// The live stream to browsers (socket.io): caps, backfill, token. A `[live]` table;
    /// see docs/live.md. Default: every default of `live::LiveConfig`.
    #[serde(default)]
    pub live: live::LiveConfig,
    /// How long a closed segment stays here after its day ends, in seconds: then, and only
    /// if a porter has archived it and it has not changed since, it is deleted. Default
    /// 604,800 (7 days).
    #[serde(default = "default_retention_secs")]
    pub retention_secs: u64,
    /// When set, the read API (SQL, exports, summaries, `/subscribe`) answers only
    /// requests that carry it as `Authorization: Bearer <token>` (never in a URL), and the
    /// live stream takes it too unless `[live] token` sets its own. Required off loopback
    /// (the buck refuses to start without it). Default: none.
    #[serde(default)]
    pub api_token: Option<String>,
    /// The porter's credential for the segment API (`GET /segments`, segment copies,
    /// `POST .../archived`), sent as `Authorization: Bearer <token>`; the same value as
    /// `buck_token` in each porter's config. Without it the segment API refuses every
    /// request: an `archived` receipt lets the buck prune a segment, so it must come from
    /// a porter. `sluice up` makes one. At least 16 characters. Default: none (closed).
    #[serde(default)]
    pub porter_token: Option<String>,
    /// Origins (`https://host[:port]`) of pages, besides the cluster's bucks, that may use
    /// this buck's API and live stream from a browser. Default: none.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Names this buck is reached by that are neither IP addresses, `localhost`, nor the
    /// host of a cluster `http_url` (a reverse proxy's name, say): requests naming any
    /// other `Host` are refused, which stops DNS rebinding. Default: none.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// The HTTP listener's bounds: `[http]` with `header_read_timeout_ms` (10,000),
    /// `idle_timeout_secs` (60), `max_connections` (1,024), `max_connections_per_address`
    /// (64). See docs/security.md.
    #[serde(default)]
    pub http: edge::EdgeConfig,
    /// Segment copies served at once (`GET /segments/{crawl}/{name}`): each holds a
    /// blocking thread and a temporary file as big as the segment. Past it: 503 with
    /// `Retry-After`. Default 2.
    #[serde(default = "default_segment_downloads_max")]
    pub segment_downloads_max: usize,
    /// How often to look for segments past their retention, in milliseconds. Default 60,000.
    #[serde(default = "default_prune_check_interval_ms")]
    pub prune_check_interval_ms: u64,
    /// A path prefix every HTTP route is served under (web app, APIs, live stream,
    /// `/healthz`), for a reverse proxy that does not strip its prefix: `/sluice/buck-a`.
    /// The cluster file's `http_url` must then end with it. Default: none (served at `/`).
    #[serde(default)]
    pub base_path: String,
    /// `GET /subscribe`, the NDJSON stream for scripts: a `[subscribe]` table with
    /// `max_subscribers` (32), `client_queue` (4,096 records), `max_duration_secs` (0: no
    /// limit), `keepalive_secs` (20). See docs/monitoring.md.
    #[serde(default)]
    pub subscribe: crate::subscribe::SubscribeConfig,
    /// Per-crawl counters pushed to Graphite: a `[graphite]` table with `address`
    /// (required), `prefix` ("sluice"), `interval_secs` (60), `max_buffered_lines`
    /// (100,000), `reconnect_max_secs` (60). Default: none (nothing is pushed).
    #[serde(default)]
    pub graphite: Option<crate::graphite::GraphiteConfig>,
    /// Memory for the hour summaries of closed segments that `GET /crawls/{crawl}/summary`
    /// merges (least recently used evicted), in bytes. Default 64 MiB.
    #[serde(default = "default_summary_cache_bytes")]
    pub summary_cache_bytes: usize,
    /// Steps one summary request may ask for (`(to - from) / step`); more is a 400.
    /// Default 744 (31 days of hours).
    #[serde(default = "default_summary_max_steps")]
    pub summary_max_steps: u64,
}

fn default_summary_cache_bytes() -> usize {
    64 << 20
}
fn default_summary_max_steps() -> u64 {
    744
}

fn default_true() -> bool {
    true
}
fn default_day_close_grace_secs() -> u64 {
    3600
}
fn default_close_check_interval_ms() -> u64 {
    1000
}
fn default_sql_timeout_ms() -> u64 {
    10_000
}
fn default_sql_max_rows() -> u64 {
    100_000
}
fn default_sql_max_bytes() -> u64 {
    64 * 1024 * 1024
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
fn default_sql_send_timeout_ms() -> u64 {
    10_000
}
fn default_export_timeout_secs() -> u64 {
    600
}
fn default_export_max_bytes() -> u64 {
    4 << 30
}
fn default_bus_capacity() -> usize {
    // Above `writer_max_batch_events` (20,000): the writer publishes a commit's events
    // at once, so a bus smaller than a batch loses events for every subscriber however
    // fast it reads. At 4096, a live view missed about 20% of a steady 50,000 lines/s
    // (docs/benchmarks.md, "The live bus"). A subscriber that lags pins at most this many
    // events (about 20 MB of crawl.log lines).
    32_768
}
fn default_writer_queue() -> usize {
    64
}
fn default_writer_max_batch_events() -> usize {
    20_000
}
fn default_writer_max_delay_ms() -> u64 {
    // 2 ms made a commit of nearly every packet of a steady 50,000 lines/s, and the writer
    // then spent twice the CPU per line it spends in larger commits (docs/benchmarks.md,
    // "Buck, final figures").
    10
}
fn default_writer_max_batch_ms() -> u64 {
    50
}
fn default_max_open_segments() -> usize {
    64
}
fn default_max_protocol_version() -> u8 {
    contracts::transport::PROTOCOL_MAX
}
fn default_max_connections() -> usize {
    1024
}
fn default_max_in_flight() -> usize {
    64
}
fn default_max_in_flight_bytes() -> usize {
    16 << 20
}
fn default_max_pending_hellos() -> usize {
    64
}
fn default_max_connections_per_address() -> usize {
    16
}
fn default_idle_timeout_ms() -> u64 {
    60_000
}
fn default_hello_timeout_ms() -> u64 {
    10_000
}
fn default_nack_retry_after_ms() -> u32 {
    5000
}
fn default_segment_downloads_max() -> usize {
    2
}
fn default_min_free_bytes() -> u64 {
    512 << 20
}

/// Checks an HTTP path prefix: empty, or `/` followed by segments of letters, digits and
/// `-._~` (no `.` or `..` segment, no trailing `/`).
pub fn check_base_path(base: &str) -> Result<(), String> {
    if base.is_empty() {
        return Ok(());
    }
    let Some(rest) = base.strip_prefix('/') else {
        return Err(format!("{base:?} must start with '/' (e.g. \"/sluice\")"));
    };
    for seg in rest.split('/') {
        let ok = !seg.is_empty()
            && seg != "."
            && seg != ".."
            && seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        if !ok {
            return Err(format!(
                "{base:?} is not a plain path: use segments of letters, digits and -._~, no trailing '/'"
            ));
        }
    }
    Ok(())
}

impl BuckConfig {
    /// A config with every default, for `id` and `data_dir` (what `sluice up` and tests use).
    pub fn new(id: impl Into<String>, data_dir: impl Into<PathBuf>) -> BuckConfig {
        BuckConfig {
            id: id.into(),
            data_dir: data_dir.into(),
            cluster_file: None,
            key_file: None,
            allowed_tailers: Vec::new(),
            allowed_tailers_file: None,
            encryption: true,
            max_protocol_version: default_max_protocol_version(),
            day_close_grace_secs: default_day_close_grace_secs(),
            close_check_interval_ms: default_close_check_interval_ms(),
            sql_timeout_ms: default_sql_timeout_ms(),
            sql_max_value_bytes: default_sql_max_value_bytes(),
            sql_max_columns: default_sql_max_columns(),
            sql_max_concurrent: default_sql_max_concurrent(),
            sql_send_timeout_ms: default_sql_send_timeout_ms(),
            export_timeout_secs: default_export_timeout_secs(),
            export_max_bytes: default_export_max_bytes(),
            sql_max_rows: default_sql_max_rows(),
            sql_max_bytes: default_sql_max_bytes(),
            bus_capacity: default_bus_capacity(),
            writer_queue: default_writer_queue(),
            writer_max_batch_events: default_writer_max_batch_events(),
            writer_max_delay_ms: default_writer_max_delay_ms(),
            writer_max_batch_ms: default_writer_max_batch_ms(),
            max_open_segments: default_max_open_segments(),
            max_connections: default_max_connections(),
            max_in_flight: default_max_in_flight(),
            max_in_flight_bytes: default_max_in_flight_bytes(),
            hello_timeout_ms: default_hello_timeout_ms(),
            max_pending_hellos: default_max_pending_hellos(),
            max_connections_per_address: default_max_connections_per_address(),
            idle_timeout_ms: default_idle_timeout_ms(),
            nack_retry_after_ms: default_nack_retry_after_ms(),
            min_free_bytes: default_min_free_bytes(),
            min_free_percent: 0.0,
            live: live::LiveConfig::default(),
            retention_secs: default_retention_secs(),
            prune_check_interval_ms: default_prune_check_interval_ms(),
            api_token: None,
            porter_token: None,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            http: edge::EdgeConfig::default(),
            segment_downloads_max: default_segment_downloads_max(),
            base_path: String::new(),
            subscribe: crate::subscribe::SubscribeConfig::default(),
            graphite: None,
            summary_cache_bytes: default_summary_cache_bytes(),
            summary_max_steps: default_summary_max_steps(),
        }
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<BuckConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.into(),
            source,
        })?;
        BuckConfig::parse(&text, path)
    }

    /// Parses and validates config text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<BuckConfig, ConfigError> {
        let c: BuckConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        })?;
        c.validate(path)?;
        Ok(c)
    }

    /// Checks ranges and keys; `path` names the config in errors.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.into(),
            message,
        };
        if self.id.trim().is_empty() {
            return Err(invalid(
                "id is empty: set it to this buck's id in the cluster file".into(),
            ));
        }
        if self
            .porter_token
            .as_ref()
            .is_some_and(|t| t.trim().len() < 16)
        {
            return Err(invalid(
                "porter_token is shorter than 16 characters: use a random one (`sluice keygen --token` prints one)".into(),
            ));
        }
        if let Some(problem) = contracts::transport::max_version_problem(self.max_protocol_version)
        {
            return Err(invalid(problem));
        }
        if self.sql_max_concurrent == 0 {
            return Err(invalid(
                "sql_max_concurrent = 0 would refuse every query: use 1 or more".into(),
            ));
        }
        if self.segment_downloads_max == 0 {
            return Err(invalid(
                "segment_downloads_max = 0 would refuse every segment copy: use 1 or more".into(),
            ));
        }
        if !(0.0..=100.0).contains(&self.min_free_percent) {
            return Err(invalid(format!(
                "min_free_percent = {}: use 0 to 100",
                self.min_free_percent
            )));
        }
        for (name, v) in [
            ("bus_capacity", self.bus_capacity),
            ("writer_queue", self.writer_queue),
            ("writer_max_batch_events", self.writer_max_batch_events),
            ("max_open_segments", self.max_open_segments),
            ("max_connections", self.max_connections),
            ("max_pending_hellos", self.max_pending_hellos),
            (
                "max_connections_per_address",
                self.max_connections_per_address,
            ),
            ("max_in_flight", self.max_in_flight),
            ("max_in_flight_bytes", self.max_in_flight_bytes),
        ] {
            if v == 0 {
                return Err(invalid(format!("{name} must be at least 1")));
            }
        }
        if self.sql_max_rows == 0 || self.sql_max_bytes == 0 || self.sql_timeout_ms == 0 {
            return Err(invalid(
                "sql_max_rows, sql_max_bytes and sql_timeout_ms must be at least 1".into(),
            ));
        }
        if self.close_check_interval_ms == 0 {
            return Err(invalid("close_check_interval_ms must be at least 1".into()));
        }
        for (i, k) in self.allowed_tailers.iter().enumerate() {
            contracts::keys::parse_public_key(k, &format!("allowed_tailers[{i}]"))
                .map_err(|e| invalid(e.to_string()))?;
        }
        check_base_path(&self.base_path).map_err(|e| invalid(format!("base_path: {e}")))?;
        if let Some(problem) = self.subscribe.problem() {
            return Err(invalid(problem));
        }
        if let Some(problem) = self.graphite.as_ref().and_then(|g| g.problem()) {
            return Err(invalid(problem));
        }
        Ok(())
    }

    /// `<data_dir>/segments`.
    pub fn segments_dir(&self) -> PathBuf {
        self.data_dir.join("segments")
    }

    /// The key file, defaulting to `<data_dir>/buck.key`.
    pub fn key_path(&self) -> PathBuf {
        self.key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("buck.key"))
    }

    pub(crate) fn sql_timeout(&self) -> Duration {
        Duration::from_millis(self.sql_timeout_ms)
    }
}

fn default_retention_secs() -> u64 {
    604_800
}

fn default_prune_check_interval_ms() -> u64 {
    60_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_paths() {
        for ok in ["", "/sluice", "/a/b-c_d.e~f"] {
            assert_eq!(check_base_path(ok), Ok(()), "{ok}");
        }
        for bad in [
            "sluice", "/", "/a/", "/a//b", "/../x", "/a/./b", "/a b", "/a?b",
        ] {
            assert!(check_base_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parse_config() {
        let key = contracts::keys::KeyPair::generate().public_text();
        let text = format!(
            "id = \"b1\"\ndata_dir = \"/tmp/x\"\nallowed_tailers = [\"{key}\"]\nencryption = false\nday_close_grace_secs = 5\nsql_max_rows = 10\nexport_max_bytes = 1000\n"
        );
        let c = BuckConfig::parse(&text, Path::new("buck.toml")).unwrap();
        assert_eq!(c.id, "b1");
        assert!(!c.encryption);
        assert_eq!(c.day_close_grace_secs, 5);
        assert_eq!(c.sql_max_rows, 10);
        assert_eq!(c.sql_timeout_ms, 10_000);
        assert_eq!(c.sql_max_bytes, 64 * 1024 * 1024);
        assert_eq!((c.export_max_bytes, c.export_timeout_secs), (1000, 600));
        assert_eq!(c.key_path(), Path::new("/tmp/x/buck.key"));
        let mut expected = BuckConfig::new("b1", "/tmp/x");
        expected.allowed_tailers = vec![key];
        expected.encryption = false;
        expected.day_close_grace_secs = 5;
        expected.sql_max_rows = 10;
        expected.export_max_bytes = 1000;
        assert_eq!(c, expected);

        let e = BuckConfig::parse(
            "id=\"b\"\ndata_dir=\"d\"\nbogus=1\n",
            Path::new("buck.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("buck.toml") && e.contains("unknown field"),
            "{e}"
        );
        let e = BuckConfig::parse("data_dir=\"d\"\n", Path::new("buck.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing field `id`"), "{e}");
        let e = BuckConfig::parse(
            "id=\"b\"\ndata_dir=\"d\"\nallowed_tailers=[\"nope\"]\n",
            Path::new("buck.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("allowed_tailers[0]"), "{e}");
        let e = BuckConfig::parse(
            "id=\"b\"\ndata_dir=\"d\"\nbus_capacity=0\n",
            Path::new("buck.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("bus_capacity"), "{e}");
    }
}
