//! [`PorterConfig`]: the porter's settings, as a TOML file documents them.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::PorterError;

/// The porter's configuration (TOML). Every time threshold is in seconds so that tests
/// can use past-dated data; see docs/porter.md for an example file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PorterConfig {
    /// Where archives go: `file:///path`, `s3://bucket/prefix` or
    /// `webhdfs://namenode:port/path`. Required.
    pub archive: String,
    /// The cluster file (TOML, contract 5) that lists the bucks; re-read on every run.
    /// Required.
    pub cluster_file: PathBuf,
    /// A scratch directory for replica downloads, merges and compressed objects (needs
    /// about three times the largest segment). Required.
    pub work_dir: PathBuf,
    /// A closed segment is archived once its day ended more than this many seconds ago.
    /// Default 172800 (48 h).
    #[serde(default = "default_archive_age_secs")]
    pub archive_age_secs: u64,
    /// Seconds between two archive runs of the daemon. Default 3600.
    #[serde(default = "default_interval_secs")]
    pub interval_secs: u64,
    /// Segments archived (or fetched) at once. Default 2.
    #[serde(default = "default_parallelism")]
    pub parallelism: usize,
    /// Objects larger than this many bytes go up as S3 multipart uploads. Default
    /// 67108864 (64 MiB).
    #[serde(default = "default_multipart_threshold_bytes")]
    pub multipart_threshold_bytes: u64,
    /// Size of each multipart part in bytes (at least 5 MiB, S3's minimum). Default
    /// 16777216 (16 MiB).
    #[serde(default = "default_multipart_part_bytes")]
    pub multipart_part_bytes: u64,
    /// Tries per archive store call, the first included. Default 5.
    #[serde(default = "default_retry_attempts")]
    pub retry_attempts: u32,
    /// First delay between tries, in milliseconds; doubles each time, capped at 30 s.
    /// Default 200.
    #[serde(default = "default_retry_base_delay_ms")]
    pub retry_base_delay_ms: u64,
    /// Longest time one archive store call (a whole upload or download) may take, in
    /// seconds. Default 900.
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: u64,
    /// Longest time one buck request may take, in seconds (segment downloads included).
    /// Default 600.
    #[serde(default = "default_buck_timeout_secs")]
    pub buck_timeout_secs: u64,
    /// Bytes to keep free on `work_dir`'s file system: below it an archive run defers
    /// (nothing is downloaded or uploaded, no segment counts as failed) and the next run
    /// tries again, so the porter's temporary copies never take the last space of a disk
    /// it may share with a buck or a tailer. Checked before a run and before each step
    /// that writes a temporary file. Default 268,435,456 (256 MiB).
    #[serde(default = "default_min_free_bytes")]
    pub min_free_bytes: u64,
    /// Percent of that file system to keep free, as `min_free_bytes` (the larger applies).
    /// Default 0.
    #[serde(default)]
    pub min_free_percent: f64,
    /// The bucks' `porter_token`, sent as `Authorization: Bearer` on every segment API
    /// request: bucks refuse their segment API without it (401). Default: none.
    #[serde(default)]
    pub buck_token: Option<String>,
    /// S3 settings, used when `archive` is an `s3://` URL.
    #[serde(default)]
    pub s3: S3Settings,
    /// WebHDFS settings, used when `archive` is a `webhdfs://` URL.
    #[serde(default)]
    pub webhdfs: WebHdfsSettings,
}

/// S3 client settings. Credentials come from here when both keys are set, otherwise from
/// the usual AWS chain (`AWS_ACCESS_KEY_ID`, profiles, instance metadata).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    /// Endpoint URL of an S3-compatible server (`http://127.0.0.1:8333`). Default: AWS.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Region. Default `us-east-1`.
    #[serde(default = "default_region")]
    pub region: String,
    /// Address buckets as `endpoint/bucket` rather than `bucket.endpoint` (needed by most
    /// S3-compatible servers). Default false.
    #[serde(default, alias = "force_path_style")]
    pub path_style: bool,
    /// Access key id. Default: from the AWS chain.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Secret access key. Default: from the AWS chain.
    #[serde(default)]
    pub secret_access_key: Option<String>,
}

/// WebHDFS settings.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebHdfsSettings {
    /// The `user.name` sent with each request (simple authentication). Default: none.
    #[serde(default)]
    pub user: Option<String>,
}

impl Default for S3Settings {
    fn default() -> Self {
        S3Settings {
            endpoint: None,
            region: default_region(),
            path_style: false,
            access_key_id: None,
            secret_access_key: None,
        }
    }
}

fn default_region() -> String {
    "us-east-1".to_string()
}
fn default_archive_age_secs() -> u64 {
    172_800
}
fn default_interval_secs() -> u64 {
    3600
}
fn default_parallelism() -> usize {
    2
}
fn default_multipart_threshold_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_multipart_part_bytes() -> u64 {
    16 * 1024 * 1024
}
fn default_retry_attempts() -> u32 {
    5
}
fn default_retry_base_delay_ms() -> u64 {
    200
}
fn default_request_timeout_secs() -> u64 {
    900
}
fn default_buck_timeout_secs() -> u64 {
    600
}
fn default_min_free_bytes() -> u64 {
    256 << 20
}

impl PorterConfig {
    /// A config with every default, for embedding (`sluice up` uses a `file://` archive).
    pub fn new(
        archive: impl Into<String>,
        cluster_file: impl Into<PathBuf>,
        work_dir: impl Into<PathBuf>,
    ) -> PorterConfig {
        PorterConfig {
            archive: archive.into(),
            cluster_file: cluster_file.into(),
            work_dir: work_dir.into(),
            archive_age_secs: default_archive_age_secs(),
            interval_secs: default_interval_secs(),
            parallelism: default_parallelism(),
            multipart_threshold_bytes: default_multipart_threshold_bytes(),
            multipart_part_bytes: default_multipart_part_bytes(),
            retry_attempts: default_retry_attempts(),
            retry_base_delay_ms: default_retry_base_delay_ms(),
            request_timeout_secs: default_request_timeout_secs(),
            buck_timeout_secs: default_buck_timeout_secs(),
            min_free_bytes: default_min_free_bytes(),
            min_free_percent: 0.0,
            buck_token: None,
            s3: S3Settings::default(),
            webhdfs: WebHdfsSettings::default(),
        }
    }

    /// Reads and parses a TOML config file.
    pub fn load(path: &Path) -> Result<PorterConfig, PorterError> {
        let text = std::fs::read_to_string(path).map_err(|source| PorterError::ConfigRead {
            path: path.to_path_buf(),
            source,
        })?;
        PorterConfig::parse(&text, path)
    }

    /// Parses TOML text; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<PorterConfig, PorterError> {
        let config: PorterConfig = toml::from_str(text).map_err(|e| PorterError::ConfigParse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if config.parallelism == 0 {
            return Err(PorterError::ConfigParse {
                path: path.to_path_buf(),
                message: "parallelism must be at least 1".into(),
            });
        }
        if !(0.0..=100.0).contains(&config.min_free_percent) {
            return Err(PorterError::ConfigParse {
                path: path.to_path_buf(),
                message: format!(
                    "min_free_percent = {}: use 0 to 100",
                    config.min_free_percent
                ),
            });
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_config() {
        let text = r#"
            archive = "s3://sluice-archive/prod"
            cluster_file = "/etc/sluice/cluster.toml"
            work_dir = "/var/lib/sluice/porter"
            archive_age_secs = 3600
            parallelism = 4
            [s3]
            endpoint = "http://127.0.0.1:8333"
            path_style = true
            access_key_id = "k"
            secret_access_key = "s"
        "#;
        let c = PorterConfig::parse(text, Path::new("porter.toml")).expect("valid config");
        assert_eq!(c.archive, "s3://sluice-archive/prod");
        assert_eq!(c.archive_age_secs, 3600);
        assert_eq!(c.parallelism, 4);
        assert_eq!(c.interval_secs, 3600);
        assert_eq!(c.multipart_threshold_bytes, 64 * 1024 * 1024);
        assert_eq!(c.s3.region, "us-east-1");
        assert!(c.s3.path_style);
        assert_eq!(c.s3.access_key_id.as_deref(), Some("k"));
        assert_eq!(c.webhdfs, WebHdfsSettings::default());
    }

    #[test]
    fn force_path_style_is_path_style_under_the_sdk_s_name() {
        let text = "archive = \"s3://b/p\"\ncluster_file = \"c.toml\"\nwork_dir = \"w\"\n[s3]\nforce_path_style = true\n";
        let c = PorterConfig::parse(text, Path::new("porter.toml")).expect("valid config");
        assert!(c.s3.path_style);
        let text = text.replace("force_path_style = true", "");
        let c = PorterConfig::parse(&text, Path::new("porter.toml")).expect("valid config");
        assert!(!c.s3.path_style, "off unless asked for");
    }

    #[test]
    fn unknown_fields_and_zero_parallelism_are_rejected() {
        let base = "archive = \"file:///a\"\ncluster_file = \"c\"\nwork_dir = \"w\"\n";
        let e = PorterConfig::parse(&format!("{base}archive_age = 1\n"), Path::new("p.toml"))
            .unwrap_err();
        assert!(e.to_string().contains("archive_age"), "{e}");
        let e = PorterConfig::parse(&format!("{base}parallelism = 0\n"), Path::new("p.toml"))
            .unwrap_err();
        assert!(e.to_string().contains("parallelism"), "{e}");
        let e = PorterConfig::parse(
            &format!("{base}min_free_percent = 101\n"),
            Path::new("p.toml"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("min_free_percent"), "{e}");
        let c = PorterConfig::parse(base, Path::new("p.toml")).expect("minimal config");
        assert_eq!(c, PorterConfig::new("file:///a", "c", "w"));
        assert_eq!(c.headroom().min_free_bytes, 256 << 20);
        assert_eq!(c.headroom().min_free_percent, 0.0);
        let c = PorterConfig::parse(
            &format!("{base}min_free_bytes = 1000\nmin_free_percent = 5\n"),
            Path::new("p.toml"),
        )
        .expect("headroom settings");
        assert_eq!(c.headroom().wanted(100_000), 5_000);
    }
}
