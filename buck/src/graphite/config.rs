//! `GraphiteConfig`: the buck's `[graphite]` table.

use serde::Deserialize;

/// Where and how often the buck pushes its per-crawl counters, in Graphite's plaintext
/// protocol (`path value timestamp\n` over TCP).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphiteConfig {
    /// The listener, `host:port` (carbon's plaintext port is 2003). Required.
    pub address: String,
    /// First component of every path. Default `sluice`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Seconds per interval: counters are summed over one interval and pushed at its
    /// end. Default 60.
    #[serde(default = "default_interval_secs")]
    pub interval_secs: u64,
    /// Lines kept while the listener is down or slow; past it the oldest are dropped and
    /// counted (`sluice_buck_graphite_lines_dropped_total`). Default 100,000.
    #[serde(default = "default_max_buffered_lines")]
    pub max_buffered_lines: usize,
    /// Longest wait between reconnection attempts, in seconds (the wait starts at 1 s and
    /// doubles). Default 60.
    #[serde(default = "default_reconnect_max_secs")]
    pub reconnect_max_secs: u64,
}

fn default_prefix() -> String {
    "sluice".into()
}
fn default_interval_secs() -> u64 {
    60
}
fn default_max_buffered_lines() -> usize {
    100_000
}
fn default_reconnect_max_secs() -> u64 {
    60
}

impl GraphiteConfig {
    /// A config with every default, for `address`.
    pub fn new(address: impl Into<String>) -> GraphiteConfig {
        GraphiteConfig {
            address: address.into(),
            prefix: default_prefix(),
            interval_secs: default_interval_secs(),
            max_buffered_lines: default_max_buffered_lines(),
            reconnect_max_secs: default_reconnect_max_secs(),
        }
    }

    /// What is wrong with the values, if anything.
    pub fn problem(&self) -> Option<String> {
        if self.address.trim().is_empty() {
            return Some(
                "[graphite] address is empty: give host:port (carbon's plaintext port is 2003)"
                    .into(),
            );
        }
        if self.interval_secs == 0 || self.reconnect_max_secs == 0 || self.max_buffered_lines == 0 {
            return Some("[graphite] interval_secs, reconnect_max_secs and max_buffered_lines must be at least 1".into());
        }
        let ok = |c: char| c.is_ascii_alphanumeric() || "_-.".contains(c);
        if self.prefix.is_empty()
            || !self.prefix.chars().all(ok)
            || self.prefix.starts_with('.')
            || self.prefix.ends_with('.')
        {
            return Some(format!(
                "[graphite] prefix {:?}: use letters, digits, '_', '-' and inner dots (e.g. \"sluice\" or \"ops.sluice\")",
                self.prefix
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_config() {
        let c: GraphiteConfig =
            toml::from_str("address = \"carbon:2003\"\ninterval_secs = 10\n").unwrap();
        assert_eq!(c.address, "carbon:2003");
        assert_eq!(c.prefix, "sluice");
        assert_eq!(c.interval_secs, 10);
        assert_eq!(c.problem(), None);
        assert!(toml::from_str::<GraphiteConfig>("prefix = \"x\"\n").is_err());
        assert!(toml::from_str::<GraphiteConfig>("address = \"a:1\"\nport = 1\n").is_err());
        let bad: GraphiteConfig = toml::from_str("address = \"a:1\"\nprefix = \"a b\"\n").unwrap();
        assert!(bad.problem().unwrap().contains("prefix"));
    }
}
