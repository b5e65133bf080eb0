//! `ClusterView`: the cluster file as last read, re-read when it changes.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use contracts::{ClusterFile, CrawlId};
use durable_file::FileStamp;

use crate::error::ConfigError;

/// The cluster file, if configured.
pub struct ClusterView {
    path: Option<PathBuf>,
    // A std Mutex: held to compare a stamp and swap an Arc, never across an await.
    current: Mutex<(Option<FileStamp>, Option<Arc<ClusterFile>>)>,
}

impl ClusterView {
    /// Reads the cluster file now (it must be valid at start), or holds nothing.
    pub fn new(path: Option<PathBuf>) -> Result<ClusterView, ConfigError> {
        let current = match &path {
            Some(p) => (FileStamp::of(p), Some(Arc::new(ClusterFile::load(p)?))),
            None => (None, None),
        };
        Ok(ClusterView {
            path,
            current: Mutex::new(current),
        })
    }

    /// The cluster file as of now; a changed file is re-read, an invalid one is logged
    /// and the previous version kept.
    pub fn get(&self) -> Option<Arc<ClusterFile>> {
        let path = self.path.as_ref()?;
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let now = FileStamp::of(path);
        if now != cur.0 {
            match ClusterFile::load(path) {
                Ok(c) => {
                    tracing::info!(path = %path.display(), bucks = c.bucks.len(), "cluster file re-read");
                    *cur = (now, Some(Arc::new(c)));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cluster file changed but is unusable; keeping the previous version");
                    cur.0 = now;
                }
            }
        }
        cur.1.clone()
    }

    /// Where to send a query for `crawl` if this buck (`me`) is not one of its homes on
    /// `day`: the first home's `http_url`. `None` without a cluster file, or when `me` is
    /// a home.
    pub fn redirect_for(&self, me: &str, crawl: &CrawlId, day: NaiveDate) -> Option<String> {
        let cluster = self.get()?;
        let homes = cluster.home_bucks(crawl, day);
        if homes.is_home(me) {
            return None;
        }
        let first = homes.homes().first()?;
        cluster
            .buck(first)
            .map(|b| b.http_url.trim_end_matches('/').to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str) -> String {
        format!(
            "[[buck]]\nid = \"{id}\"\ningest = \"127.0.0.1:1\"\nhttp_url = \"http://{id}.example/\"\nsince = \"2020-01-01\"\n"
        )
    }

    #[test]
    fn redirects_follow_the_file_as_it_changes() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("cluster.toml");
        let day = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        let crawl = CrawlId::parse("c1").unwrap();
        std::fs::write(&path, entry("only")).unwrap();
        let view = ClusterView::new(Some(path.clone())).unwrap();
        assert_eq!(
            view.redirect_for("me", &crawl, day).as_deref(),
            Some("http://only.example")
        );
        assert_eq!(view.redirect_for("only", &crawl, day), None);
        // Now "me" is the only buck: it is home, no redirect.
        std::fs::write(&path, entry("me") + "\n").unwrap();
        assert_eq!(view.redirect_for("me", &crawl, day), None);
        // An invalid new version keeps the previous one.
        std::fs::write(&path, "not toml [").unwrap();
        assert_eq!(view.redirect_for("me", &crawl, day), None);
        assert!(view.get().is_some());
        assert!(
            ClusterView::new(None)
                .unwrap()
                .redirect_for("me", &crawl, day)
                .is_none()
        );
    }
}
