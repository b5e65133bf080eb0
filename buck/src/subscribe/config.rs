//! `SubscribeConfig`: the limits of `GET /subscribe`, the buck's `[subscribe]` table.

use serde::Deserialize;

/// Limits of the subscriber API. Each subscriber holds a task, a bus receiver and a
/// queue of at most `client_queue` records, so these bound what subscribers can cost.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeConfig {
    /// Subscribers streaming at once; the next one gets 503 with `Retry-After`.
    /// Default 32.
    #[serde(default = "default_max_subscribers")]
    pub max_subscribers: usize,
    /// Records (matching events, `dropped` notices) waiting for one subscriber. When it
    /// is full the subscriber loses the next events and is told how many in a
    /// `{"dropped": N}` record; ingest never waits for it. Default 4096.
    #[serde(default = "default_client_queue")]
    pub client_queue: usize,
    /// Longest stream, in seconds: then the buck ends it with a `{"closed":
    /// "max_duration_secs"}` record, and the client reconnects if it wants more.
    /// 0 for no limit. Default 0.
    #[serde(default)]
    pub max_duration_secs: u64,
    /// A stream that had nothing to send for this long gets an empty line, so that
    /// proxies and the buck's own `[http] idle_timeout_secs` do not cut a quiet filter's
    /// connection. Keep it below that timeout. Default 20.
    #[serde(default = "default_keepalive_secs")]
    pub keepalive_secs: u64,
}

fn default_max_subscribers() -> usize {
    32
}
fn default_client_queue() -> usize {
    4096
}
fn default_keepalive_secs() -> u64 {
    20
}

impl Default for SubscribeConfig {
    fn default() -> Self {
        SubscribeConfig {
            max_subscribers: default_max_subscribers(),
            client_queue: default_client_queue(),
            max_duration_secs: 0,
            keepalive_secs: default_keepalive_secs(),
        }
    }
}

impl SubscribeConfig {
    /// What is wrong with the values, if anything.
    pub fn problem(&self) -> Option<String> {
        if self.client_queue == 0 {
            return Some("[subscribe] client_queue must be at least 1".into());
        }
        if self.keepalive_secs == 0 {
            return Some("[subscribe] keepalive_secs must be at least 1".into());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_config() {
        let c: SubscribeConfig =
            toml::from_str("max_subscribers = 2\nmax_duration_secs = 60\n").unwrap();
        assert_eq!(c.max_subscribers, 2);
        assert_eq!(c.max_duration_secs, 60);
        assert_eq!(c.client_queue, 4096);
        assert_eq!(
            toml::from_str::<SubscribeConfig>("").unwrap(),
            SubscribeConfig::default()
        );
        assert!(toml::from_str::<SubscribeConfig>("queue = 1\n").is_err());
        let zero: SubscribeConfig = toml::from_str("client_queue = 0\n").unwrap();
        assert!(zero.problem().unwrap().contains("client_queue"));
    }
}
