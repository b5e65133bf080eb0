//! The cluster file and the routing rule: which bucks are a crawl's homes on a day.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use crypto_box::PublicKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::CrawlId;
use crate::keys::parse_public_key;

/// Default number of home bucks per (crawl, day).
pub const DEFAULT_REPLICAS: usize = 2;

/// The cluster file: every buck, shared by all agents.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// Home bucks per (crawl, day). Default 2.
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// The bucks, one `[[buck]]` table each.
    #[serde(rename = "buck", default)]
    pub bucks: Vec<BuckEntry>,
}

fn default_replicas() -> usize {
    DEFAULT_REPLICAS
}

/// One buck in the cluster file.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BuckEntry {
    /// Stable id, used in routing: renaming a buck moves its crawls.
    pub id: String,
    /// Ingest address (`host:port`) that tailers connect to.
    pub ingest: String,
    /// Base URL of the buck's HTTP API as browsers and porters reach it.
    pub http_url: String,
    /// The buck's public key (base64), as printed by `sluice keygen`. Required unless
    /// every tailer runs with encryption explicitly off.
    #[serde(default)]
    pub public_key: Option<String>,
    /// First UTC day the buck takes crawls: a buck added today takes crawls from tomorrow.
    pub since: NaiveDate,
}

/// Why a cluster file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Unreadable.
    #[error("cluster file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not valid TOML for a cluster file.
    #[error("cluster file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// Valid TOML with a wrong value.
    #[error("cluster file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
}

impl ClusterFile {
    /// Reads and validates a cluster file.
    pub fn load(path: &Path) -> Result<ClusterFile, ClusterError> {
        let text = std::fs::read_to_string(path).map_err(|source| ClusterError::Io {
            path: path.into(),
            source,
        })?;
        ClusterFile::parse(&text, path)
    }

    /// The file's text, as `parse` reads it back.
    pub fn to_toml(&self) -> Result<String, ClusterError> {
        toml::to_string(self).map_err(|e| ClusterError::Parse {
            path: "(cluster file being written)".into(),
            message: e.to_string(),
        })
    }

    /// Parses and validates cluster file text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<ClusterFile, ClusterError> {
        let c: ClusterFile = toml::from_str(text).map_err(|e| ClusterError::Parse {
            path: path.into(),
            message: e.to_string(),
        })?;
        let invalid = |message: String| ClusterError::Invalid {
            path: path.into(),
            message,
        };
        if c.bucks.is_empty() {
            return Err(invalid(
                "no [[buck]] entries: list at least one buck".into(),
            ));
        }
        if c.replicas == 0 {
            return Err(invalid("replicas must be at least 1".into()));
        }
        let mut ids = std::collections::HashSet::new();
        for b in &c.bucks {
            if b.id.is_empty() || !ids.insert(b.id.as_str()) {
                return Err(invalid(format!(
                    "buck id {:?} is empty or listed twice",
                    b.id
                )));
            }
            if let Some(k) = &b.public_key {
                parse_public_key(k, &format!("public_key of buck {:?}", b.id))
                    .map_err(|e| invalid(e.to_string()))?;
            }
        }
        Ok(c)
    }

    /// The buck with `id`.
    pub fn buck(&self, id: &str) -> Option<&BuckEntry> {
        self.bucks.iter().find(|b| b.id == id)
    }

    /// The routing order of `crawl` on `day`.
    pub fn home_bucks(&self, crawl: &CrawlId, day: NaiveDate) -> HomeBucks {
        HomeBucks::compute(self, crawl, day)
    }
}

impl BuckEntry {
    /// The buck's public key, if listed.
    pub fn public_key(&self) -> Option<PublicKey> {
        self.public_key
            .as_deref()
            .and_then(|k| parse_public_key(k, "public_key").ok())
    }
}

/// Rendezvous weight of a buck for a crawl: `u64::from_be_bytes(sha256(crawl || 0 || buck id)[..8])`.
pub fn rendezvous_weight(crawl: &CrawlId, buck_id: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(crawl.as_str().as_bytes());
    h.update([0u8]);
    h.update(buck_id.as_bytes());
    let d = h.finalize();
    let mut w = [0u8; 8];
    w.copy_from_slice(&d[..8]);
    u64::from_be_bytes(w)
}

/// The bucks of a (crawl, day) in routing order: the first `replicas` are its homes, the
/// rest stand in, in order, only while every home is down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeBucks {
    order: Vec<String>,
    replicas: usize,
}

impl HomeBucks {
    /// Orders the bucks eligible on `day` (`since <= day`) by descending weight.
    pub fn compute(cluster: &ClusterFile, crawl: &CrawlId, day: NaiveDate) -> HomeBucks {
        let mut w: Vec<(u64, &str)> = cluster
            .bucks
            .iter()
            .filter(|b| b.since <= day)
            .map(|b| (rendezvous_weight(crawl, &b.id), b.id.as_str()))
            .collect();
        // Ties (astronomically unlikely) break by id so every agent agrees.
        w.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        HomeBucks {
            order: w.into_iter().map(|(_, id)| id.to_owned()).collect(),
            replicas: cluster.replicas,
        }
    }

    /// The home bucks' ids.
    pub fn homes(&self) -> &[String] {
        &self.order[..self.replicas.min(self.order.len())]
    }

    /// The stand-ins' ids, in the order they are tried.
    pub fn stand_ins(&self) -> &[String] {
        &self.order[self.replicas.min(self.order.len())..]
    }

    /// Whether `id` is a home.
    pub fn is_home(&self, id: &str) -> bool {
        self.homes().iter().any(|h| h == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(n: usize) -> ClusterFile {
        let mut t = String::new();
        for i in 0..n {
            t.push_str(&format!(
                "[[buck]]\nid = \"b{i}\"\ningest = \"127.0.0.1:{}\"\nhttp_url = \"http://127.0.0.1:{}\"\nsince = \"2026-01-0{}\"\n",
                7000 + i,
                8000 + i,
                1 + i % 3
            ));
        }
        ClusterFile::parse(&t, Path::new("c.toml")).unwrap()
    }

    #[test]
    fn parse_config() {
        let c = cluster(3);
        assert_eq!(c.replicas, 2);
        assert_eq!(c.bucks[1].ingest, "127.0.0.1:7001");
        let e = ClusterFile::parse("[[buck]]\nid=\"a\"\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.toml") && e.contains("missing field"), "{e}");
        let e = ClusterFile::parse(
            "[[buck]]\nid=\"a\"\ningest=\"x\"\nhttp_url=\"y\"\nsince=\"2026-01-01\"\nbogus=1\n",
            Path::new("c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn homes_are_stable_and_respect_since() {
        let c = cluster(6);
        let crawl = CrawlId::parse("crawl-a").unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
        let h = c.home_bucks(&crawl, day);
        assert_eq!(h.homes().len(), 2);
        assert_eq!(h.stand_ins().len(), 4);
        assert_eq!(h, c.home_bucks(&crawl, day));
        // On Jan 1 only bucks with since = Jan 1 (b0, b3) are eligible.
        let early = c.home_bucks(&crawl, NaiveDate::from_ymd_opt(2026, 1, 1).unwrap());
        let mut homes = early.homes().to_vec();
        homes.sort();
        assert_eq!(homes, vec!["b0", "b3"]);
        assert!(early.stand_ins().is_empty());
    }

    #[test]
    fn crawls_spread_over_bucks() {
        let c = cluster(3);
        let day = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
        let mut seen = std::collections::HashMap::new();
        for i in 0..300 {
            let h = c.home_bucks(&CrawlId::parse(&format!("c{i}")).unwrap(), day);
            for id in h.homes() {
                *seen.entry(id.clone()).or_insert(0) += 1;
            }
        }
        for (_, n) in seen {
            assert!((150..=250).contains(&n), "uneven spread {n}");
        }
    }
}
