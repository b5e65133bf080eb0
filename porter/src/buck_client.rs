//! [`BuckClient`]: the three buck HTTP endpoints the porter uses. Every JSON field name of
//! the buck's segment API lives in this file, so adjusting to the buck is one edit.
//!
//! - `GET /segments` lists a buck's segments ([`SegmentListing`]);
//! - `GET /segments/{crawl}/{name}` streams a consistent SQLite copy of one segment;
//! - `POST /segments/{crawl}/{name}/archived` with [`ArchivedNotice`] lets the buck prune
//!   the segment after its retention if it has not changed since.

use std::path::Path;
use std::time::Duration;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::archive_store::temp_sibling;
use crate::error::PorterError;

/// A segment's state as its buck reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SegmentState {
    /// Still written to.
    Open,
    /// Immutable, not yet archived.
    Closed,
    /// The buck was told it is archived.
    Archived,
}

/// One entry of `GET /segments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentListing {
    /// The crawl id.
    pub crawl: String,
    /// The UTC day.
    pub day: NaiveDate,
    /// 0 for the day's segment, N for part `.pN`.
    #[serde(default)]
    pub part: u32,
    /// `YYYY-MM-DD` or `YYYY-MM-DD.pN`: the name in the segment URLs.
    pub name: String,
    /// Rows in `events`.
    #[serde(default)]
    pub rows: u64,
    /// File size in bytes.
    #[serde(default)]
    pub bytes: u64,
    /// Earliest event time (RFC 3339), if any.
    #[serde(default, alias = "first_event")]
    pub first_time: Option<String>,
    /// Latest event time (RFC 3339), if any.
    #[serde(default, alias = "last_event")]
    pub last_time: Option<String>,
    /// Open, closed or archived.
    pub state: SegmentState,
}

/// The body of `POST /segments/{crawl}/{name}/archived`.
///
/// The archive holds the union of every replica, which differs from a buck's own copy
/// when the replicas had different gaps. So `ids_sha256` and `rows` describe the copy
/// this buck served, as the porter downloaded it (the buck prunes only if its segment
/// still hashes so: everything it holds is then in the archive), and `archive_*` the
/// archived union.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedNotice {
    /// sha256 of the sorted ids (each followed by `\n`) of this buck's copy.
    pub ids_sha256: String,
    /// Events in this buck's copy.
    pub rows: u64,
    /// The object's key in the archive.
    pub archive_key: String,
    /// The manifest's `ids_sha256`: the archived union.
    pub archive_ids_sha256: String,
    /// Events archived (the union).
    pub archive_rows: u64,
}

/// The buck's answer to an [`ArchivedNotice`].
#[derive(Debug, Clone, Default, Deserialize)]
struct ArchivedReply {
    /// False when the buck's segment no longer matches the copy we archived.
    #[serde(default)]
    unchanged: Option<bool>,
}

/// A client for one buck.
#[derive(Debug, Clone)]
pub struct BuckClient {
    http: reqwest::Client,
    /// The buck's id in the cluster file.
    pub id: String,
    /// Its base URL, without a trailing slash.
    pub url: String,
}

impl BuckClient {
    /// A client for the buck `id` at `url` (its `http_url`), with a per-request timeout,
    /// sending `token` (the bucks' `porter_token`) as the porter's credential.
    pub fn new(
        id: &str,
        url: &str,
        timeout: Duration,
        token: Option<&str>,
    ) -> Result<BuckClient, PorterError> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(t) = token {
            let mut v =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| {
                    PorterError::Buck {
                        url: url.to_string(),
                        message: "buck_token holds characters a header cannot carry".into(),
                    }
                })?;
            v.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| PorterError::Buck {
                url: url.to_string(),
                message: format!("http client: {e}"),
            })?;
        Ok(BuckClient {
            http,
            id: id.to_string(),
            url: url.trim_end_matches('/').to_string(),
        })
    }

    fn fail(&self, message: impl std::fmt::Display) -> PorterError {
        PorterError::Buck {
            url: self.url.clone(),
            message: message.to_string(),
        }
    }

    /// `GET /segments`.
    pub async fn list_segments(&self) -> Result<Vec<SegmentListing>, PorterError> {
        let resp = self
            .http
            .get(format!("{}/segments", self.url))
            .send()
            .await
            .map_err(|e| self.fail(format!("list segments: {e}")))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            return Err(self.fail(format!(
                "list segments: http {status}: {}",
                body.trim().chars().take(300).collect::<String>()
            )));
        }
        resp.json()
            .await
            .map_err(|e| self.fail(format!("list segments: unexpected answer: {e}")))
    }

    /// `GET /segments/{crawl}/{name}` into `dest` (temporary file, then rename); returns
    /// the bytes written.
    pub async fn download(&self, crawl: &str, name: &str, dest: &Path) -> Result<u64, PorterError> {
        let what = format!("download segment {crawl}/{name}");
        let mut resp = self
            .http
            .get(format!("{}/segments/{crawl}/{name}", self.url))
            .send()
            .await
            .map_err(|e| self.fail(format!("{what}: {e}")))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            return Err(self.fail(format!(
                "{what}: http {status}: {}",
                body.trim().chars().take(300).collect::<String>()
            )));
        }
        let tmp = temp_sibling(dest);
        let result = async {
            let mut file = tokio::fs::File::create(&tmp)
                .await
                .map_err(|e| PorterError::io(&tmp, e))?;
            let mut n = 0u64;
            while let Some(chunk) = resp
                .chunk()
                .await
                .map_err(|e| self.fail(format!("{what}: {e}")))?
            {
                file.write_all(&chunk)
                    .await
                    .map_err(|e| PorterError::io(&tmp, e))?;
                n += chunk.len() as u64;
            }
            file.flush().await.map_err(|e| PorterError::io(&tmp, e))?;
            tokio::fs::rename(&tmp, dest)
                .await
                .map_err(|e| PorterError::io(dest, e))?;
            Ok(n)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    /// `POST /segments/{crawl}/{name}/archived`.
    pub async fn mark_archived(
        &self,
        crawl: &str,
        name: &str,
        notice: &ArchivedNotice,
    ) -> Result<(), PorterError> {
        let resp = self
            .http
            .post(format!("{}/segments/{crawl}/{name}/archived", self.url))
            .json(notice)
            .send()
            .await
            .map_err(|e| self.fail(format!("mark {crawl}/{name} archived: {e}")))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            return Err(self.fail(format!(
                "mark {crawl}/{name} archived: http {status}: {}",
                body.chars().take(200).collect::<String>()
            )));
        }
        let body = resp.bytes().await.unwrap_or_default();
        let reply: ArchivedReply = serde_json::from_slice(&body).unwrap_or_default();
        if reply.unchanged == Some(false) {
            return Err(self.fail(format!(
                "mark {crawl}/{name} archived: the buck's copy changed since it was downloaded; it keeps the segment and the next run archives it again"
            )));
        }
        Ok(())
    }
}
