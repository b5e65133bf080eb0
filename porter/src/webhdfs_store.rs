//! [`WebHdfsStore`]: an archive in HDFS through the WebHDFS REST API
//! (`webhdfs://namenode:port/path`), over plain HTTP with reqwest.
//!
//! Operations used, as the WebHDFS spec defines them: `CREATE` in two steps (the namenode
//! answers `307` with a datanode `Location`, the data goes there, `201 Created`), `OPEN`
//! (a `307` to a datanode, then the bytes), `GETFILESTATUS`, `LISTSTATUS`, `RENAME`
//! (`{"boolean": ...}`) and `DELETE`. Errors come as `{"RemoteException": {"exception",
//! "javaClassName", "message"}}` and are mapped by exception name.
//!
//! A put creates a hidden temporary with `overwrite=false`, then renames it to the key:
//! HDFS's rename never replaces an existing file, so the key appears whole or not at all,
//! and of two racing porters exactly one rename wins.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use reqwest::{Method, StatusCode};
use serde::Deserialize;

use crate::archive_store::{ArchiveStore, ObjectMeta, PartialDownload, temp_sibling};
use crate::error::{StoreError, StoreErrorKind};

/// How long to wait for a TCP connection to a namenode or datanode.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An archive under one HDFS directory.
#[derive(Debug, Clone)]
pub struct WebHdfsStore {
    http: reqwest::Client,
    /// `http://namenode:port`
    base: String,
    /// The archive's root directory, absolute, without a trailing slash (`/sluice`).
    root: String,
    user: Option<String>,
}

#[derive(Deserialize)]
struct RemoteExceptionBody {
    #[serde(rename = "RemoteException")]
    remote_exception: RemoteException,
}

#[derive(Deserialize)]
struct RemoteException {
    exception: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct BooleanBody {
    boolean: bool,
}

#[derive(Deserialize)]
struct FileStatusBody {
    #[serde(rename = "FileStatus")]
    file_status: FileStatus,
}

#[derive(Deserialize)]
struct FileStatusesBody {
    #[serde(rename = "FileStatuses")]
    file_statuses: FileStatuses,
}

#[derive(Deserialize)]
struct FileStatuses {
    #[serde(rename = "FileStatus")]
    file_status: Vec<FileStatus>,
}

#[derive(Deserialize)]
struct FileStatus {
    #[serde(rename = "pathSuffix", default)]
    path_suffix: String,
    #[serde(rename = "type")]
    kind: String,
    length: u64,
}

impl WebHdfsStore {
    /// A store on the namenode at `authority` (`host:port`), rooted at `path`, acting as
    /// `user` (the `user.name` parameter of simple authentication) when given.
    pub fn new(
        authority: &str,
        path: &str,
        user: Option<&str>,
    ) -> Result<WebHdfsStore, StoreError> {
        // Redirects are followed by hand: the CREATE redirect must not carry the body to
        // the namenode, and a datanode URL is only ever taken from a namenode's answer.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| StoreError::new(StoreErrorKind::Config, format!("webhdfs client: {e}")))?;
        let root = format!("/{}", path.trim_matches('/'));
        Ok(WebHdfsStore {
            http,
            base: format!("http://{authority}"),
            root: root.trim_end_matches('/').to_string(),
            user: user.map(str::to_string),
        })
    }

    fn hdfs_path(&self, key: &str) -> String {
        format!("{}/{}", self.root, key.trim_start_matches('/'))
    }

    fn url(&self, hdfs_path: &str, op: &str, extra: &[(&str, &str)]) -> reqwest::Url {
        let mut url = reqwest::Url::parse(&format!("{}/webhdfs/v1{}", self.base, hdfs_path))
            .unwrap_or_else(|_| reqwest::Url::parse("http://invalid/").expect("static url"));
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("op", op);
            if let Some(u) = &self.user {
                q.append_pair("user.name", u);
            }
            for (k, v) in extra {
                q.append_pair(k, v);
            }
        }
        url
    }

    async fn send(
        &self,
        method: Method,
        url: reqwest::Url,
        body: Option<reqwest::Body>,
        what: &str,
    ) -> Result<reqwest::Response, StoreError> {
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(b);
        }
        req.send().await.map_err(|e| transport_err(what, e))
    }

    /// Follows the namenode's 307 to the datanode URL it names.
    fn location(resp: &reqwest::Response, what: &str) -> Result<reqwest::Url, StoreError> {
        let loc = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                StoreError::new(
                    StoreErrorKind::Protocol,
                    format!("webhdfs {what}: redirect without a location"),
                )
            })?;
        reqwest::Url::parse(loc).map_err(|e| {
            StoreError::new(
                StoreErrorKind::Protocol,
                format!("webhdfs {what}: bad location {loc:?}: {e}"),
            )
        })
    }

    async fn create(
        &self,
        hdfs_path: &str,
        body: impl Fn() -> reqwest::Body,
        what: &str,
    ) -> Result<(), StoreError> {
        let url = self.url(hdfs_path, "CREATE", &[("overwrite", "false")]);
        let resp = self.send(Method::PUT, url, None, what).await?;
        if resp.status() != StatusCode::TEMPORARY_REDIRECT {
            return Err(error_from(resp, what).await);
        }
        let datanode = Self::location(&resp, what)?;
        let resp = self.send(Method::PUT, datanode, Some(body()), what).await?;
        if resp.status() != StatusCode::CREATED {
            return Err(error_from(resp, what).await);
        }
        Ok(())
    }

    async fn rename(&self, from: &str, to: &str, what: &str) -> Result<bool, StoreError> {
        let url = self.url(from, "RENAME", &[("destination", to)]);
        let resp = self.send(Method::PUT, url, None, what).await?;
        if resp.status() != StatusCode::OK {
            return Err(error_from(resp, what).await);
        }
        Ok(json::<BooleanBody>(resp, what).await?.boolean)
    }

    async fn delete_path(&self, hdfs_path: &str, what: &str) -> Result<(), StoreError> {
        let url = self.url(hdfs_path, "DELETE", &[("recursive", "false")]);
        let resp = self.send(Method::DELETE, url, None, what).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(());
        }
        if resp.status() != StatusCode::OK {
            return Err(error_from(resp, what).await);
        }
        // `{"boolean": false}` means there was nothing to delete: fine by the contract.
        json::<BooleanBody>(resp, what).await.map(|_| ())
    }

    /// Writes through a hidden temporary and renames it into place (see the module doc).
    async fn put_via_temp(
        &self,
        key: &str,
        body: impl Fn() -> reqwest::Body,
    ) -> Result<(), StoreError> {
        let what = format!("put {key}");
        let dest = self.hdfs_path(key);
        let tmp = temp_sibling(Path::new(&dest))
            .to_string_lossy()
            .into_owned();
        self.create(&tmp, body, &what).await?;
        let renamed = self.rename(&tmp, &dest, &what).await;
        if !matches!(renamed, Ok(true)) {
            let _ = self.delete_path(&tmp, &what).await;
        }
        match renamed? {
            true => Ok(()),
            false => match self.size(key).await {
                Ok(_) => Err(StoreError::new(
                    StoreErrorKind::AlreadyExists,
                    format!("webhdfs {dest} already exists"),
                )),
                Err(e) => Err(StoreError::new(
                    StoreErrorKind::Protocol,
                    format!("webhdfs rename to {dest} refused and the file is not there: {e}"),
                )),
            },
        }
    }

    async fn open(&self, key: &str) -> Result<reqwest::Response, StoreError> {
        let what = format!("get {key}");
        let url = self.url(&self.hdfs_path(key), "OPEN", &[]);
        let resp = self.send(Method::GET, url, None, &what).await?;
        let resp = if resp.status() == StatusCode::TEMPORARY_REDIRECT {
            let datanode = Self::location(&resp, &what)?;
            self.send(Method::GET, datanode, None, &what).await?
        } else {
            resp
        };
        if resp.status() != StatusCode::OK {
            return Err(error_from(resp, &what).await);
        }
        Ok(resp)
    }

    async fn list_dir(
        &self,
        dir_key: &str,
        prefix: &str,
        out: &mut Vec<ObjectMeta>,
    ) -> Result<(), StoreError> {
        let what = format!("list {prefix}");
        let path = if dir_key.is_empty() {
            self.root.clone()
        } else {
            self.hdfs_path(dir_key)
        };
        let url = self.url(&path, "LISTSTATUS", &[]);
        let resp = self.send(Method::GET, url, None, &what).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(());
        }
        if resp.status() != StatusCode::OK {
            return Err(error_from(resp, &what).await);
        }
        let body: FileStatusesBody = json(resp, &what).await?;
        for st in body.file_statuses.file_status {
            if st.path_suffix.is_empty() || st.path_suffix.starts_with('.') {
                continue;
            }
            let key = if dir_key.is_empty() {
                st.path_suffix.clone()
            } else {
                format!("{dir_key}/{}", st.path_suffix)
            };
            if st.kind == "DIRECTORY" {
                if prefix.starts_with(&format!("{key}/")) || key.starts_with(prefix) {
                    Box::pin(self.list_dir(&key, prefix, out)).await?;
                }
            } else if key.starts_with(prefix) {
                out.push(ObjectMeta {
                    key,
                    size: st.length,
                });
            }
        }
        Ok(())
    }
}

fn transport_err(what: &str, e: reqwest::Error) -> StoreError {
    let kind = if e.is_timeout() {
        StoreErrorKind::Timeout
    } else {
        StoreErrorKind::Service
    };
    StoreError::new(kind, format!("webhdfs {what}: {e}"))
}

async fn json<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
    what: &str,
) -> Result<T, StoreError> {
    let body = resp.bytes().await.map_err(|e| transport_err(what, e))?;
    serde_json::from_slice(&body).map_err(|e| {
        StoreError::new(
            StoreErrorKind::Protocol,
            format!(
                "webhdfs {what}: unexpected answer {:?}: {e}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ),
        )
    })
}

/// Turns a non-success answer into an error, by the RemoteException's name when the body
/// has one and by the HTTP status otherwise.
async fn error_from(resp: reqwest::Response, what: &str) -> StoreError {
    let status = resp.status();
    let body = resp.bytes().await.unwrap_or_default();
    let remote = serde_json::from_slice::<RemoteExceptionBody>(&body)
        .ok()
        .map(|b| b.remote_exception);
    let kind = match remote.as_ref().map(|r| r.exception.as_str()) {
        Some("FileNotFoundException") => StoreErrorKind::NotFound,
        Some("FileAlreadyExistsException") => StoreErrorKind::AlreadyExists,
        Some("AccessControlException" | "SecurityException" | "AuthorizationException") => {
            StoreErrorKind::Unauthorized
        }
        Some("RetriableException" | "StandbyException" | "SafeModeException") => {
            StoreErrorKind::Service
        }
        _ => match status.as_u16() {
            404 => StoreErrorKind::NotFound,
            401 | 403 => StoreErrorKind::Unauthorized,
            408 => StoreErrorKind::Timeout,
            429 | 500..=599 => StoreErrorKind::Service,
            _ => StoreErrorKind::Protocol,
        },
    };
    let detail = match remote {
        Some(r) => format!("{}: {}", r.exception, r.message),
        None => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    };
    StoreError::new(
        kind,
        format!("webhdfs {what}: http {}: {detail}", status.as_u16()),
    )
}

#[async_trait::async_trait]
impl ArchiveStore for WebHdfsStore {
    async fn put_file(&self, key: &str, source: &Path) -> Result<(), StoreError> {
        // Read once; reqwest needs a fresh body per request and WebHDFS bodies are sent
        // once (the namenode step carries none). Archived segments are compressed and
        // fit in memory; streaming from the file would need the file reopened per try.
        let data = Bytes::from(
            tokio::fs::read(source)
                .await
                .map_err(|e| StoreError::io(source.display(), e))?,
        );
        self.put_via_temp(key, || reqwest::Body::from(data.clone()))
            .await
    }

    async fn put_bytes(&self, key: &str, data: Bytes) -> Result<(), StoreError> {
        self.put_via_temp(key, || reqwest::Body::from(data.clone()))
            .await
    }

    async fn get_bytes(&self, key: &str) -> Result<Bytes, StoreError> {
        let resp = self.open(key).await?;
        resp.bytes()
            .await
            .map_err(|e| transport_err(&format!("get {key}"), e))
    }

    async fn get_to_file(&self, key: &str, dest: &Path) -> Result<u64, StoreError> {
        let mut resp = self.open(key).await?;
        let mut download = PartialDownload::create(dest).await?;
        let transfer = async {
            while let Some(chunk) = resp
                .chunk()
                .await
                .map_err(|e| transport_err(&format!("get {key}"), e))?
            {
                download.write(&chunk).await?;
            }
            Ok(())
        }
        .await;
        download.finish(dest, transfer).await
    }

    async fn size(&self, key: &str) -> Result<u64, StoreError> {
        let what = format!("head {key}");
        let url = self.url(&self.hdfs_path(key), "GETFILESTATUS", &[]);
        let resp = self.send(Method::GET, url, None, &what).await?;
        if resp.status() != StatusCode::OK {
            return Err(error_from(resp, &what).await);
        }
        let st: FileStatusBody = json(resp, &what).await?;
        if st.file_status.kind != "FILE" {
            return Err(StoreError::new(
                StoreErrorKind::NotFound,
                format!("webhdfs {key} is a directory, not an object"),
            ));
        }
        Ok(st.file_status.length)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let dir = prefix.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let mut out = Vec::new();
        self.list_dir(dir, prefix, &mut out).await?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.delete_path(&self.hdfs_path(key), &format!("delete {key}"))
            .await
    }

    fn describe(&self) -> String {
        format!(
            "webhdfs://{}{}",
            self.base.trim_start_matches("http://"),
            self.root
        )
    }
}
