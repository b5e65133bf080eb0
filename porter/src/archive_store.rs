//! The [`ArchiveStore`] trait: the few operations the porter needs from an object store,
//! each with a written contract that every backend honours, and [`open_store`], which
//! picks a backend from the archive URL.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use crate::config::PorterConfig;
use crate::error::{StoreError, StoreErrorKind};
use crate::local_dir_store::LocalDirStore;
use crate::retry_store::RetryStore;
use crate::s3_store::S3Store;
use crate::webhdfs_store::WebHdfsStore;

/// One object as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The key, relative to the store's root (`crawl/2026-11-02.sqlite.z`).
    pub key: String,
    /// The object's size in bytes.
    pub size: u64,
}

/// An archive: a flat namespace of immutable objects named by `/`-separated keys.
///
/// Contracts every implementation keeps (checked by the shared test suite):
///
/// - **Create-only puts.** `put_file` and `put_bytes` never replace an object: when the key
///   exists they fail with [`StoreErrorKind::AlreadyExists`] and leave it untouched. Two
///   racing puts of one key have exactly one winner.
/// - **Atomic visibility.** A reader sees a whole object or none: a put that is killed
///   midway leaves no object at its key (at most an invisible temporary).
/// - **`get_to_file`** writes a temporary file beside `dest`, then renames it over `dest`,
///   so `dest` is never half-written.
/// - **`size`** fails with [`StoreErrorKind::NotFound`] for a missing key.
/// - **`list`** returns every object whose key starts with `prefix` (a plain string
///   prefix), sorted by key, and never a temporary.
/// - **`delete`** of a missing key is `Ok(())`.
#[async_trait::async_trait]
pub trait ArchiveStore: Send + Sync + fmt::Debug {
    /// Creates `key` with the contents of the local file `source`.
    async fn put_file(&self, key: &str, source: &Path) -> Result<(), StoreError>;

    /// Creates `key` with `data`.
    async fn put_bytes(&self, key: &str, data: Bytes) -> Result<(), StoreError>;

    /// Reads a whole object into memory (for small objects such as manifests).
    async fn get_bytes(&self, key: &str) -> Result<Bytes, StoreError>;

    /// Downloads an object to `dest` (temporary file, then rename); returns its size.
    async fn get_to_file(&self, key: &str, dest: &Path) -> Result<u64, StoreError>;

    /// The object's size in bytes.
    async fn size(&self, key: &str) -> Result<u64, StoreError>;

    /// Every object whose key starts with `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError>;

    /// Deletes an object; a missing one is `Ok(())`.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Where this store points, for messages (`s3://bucket/prefix`).
    fn describe(&self) -> String;
}

/// Opens the archive store that `url` names, wrapped in the retry and timeout policy of
/// `config`:
///
/// - `file:///path`: a local directory ([`LocalDirStore`]), the embedded default;
/// - `s3://bucket/prefix`: S3 or an S3-compatible server ([`S3Store`], settings in
///   `config.s3`);
/// - `webhdfs://host:port/path`: HDFS through its WebHDFS REST API ([`WebHdfsStore`]).
pub fn open_store(url: &str, config: &PorterConfig) -> Result<Arc<dyn ArchiveStore>, StoreError> {
    let inner: Arc<dyn ArchiveStore> = if let Some(path) = url.strip_prefix("file://") {
        if path.is_empty() || !path.starts_with('/') {
            return Err(StoreError::new(
                StoreErrorKind::Config,
                format!(
                    "archive url {url:?}: a file url needs an absolute path (file:///var/lib/sluice/archive)"
                ),
            ));
        }
        Arc::new(LocalDirStore::new(path)?)
    } else if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(StoreError::new(
                StoreErrorKind::Config,
                format!("archive url {url:?}: no bucket (s3://bucket/prefix)"),
            ));
        }
        Arc::new(S3Store::new(
            bucket,
            prefix,
            &config.s3,
            config.multipart_threshold_bytes,
            config.multipart_part_bytes,
        )?)
    } else if let Some(rest) = url.strip_prefix("webhdfs://") {
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() {
            return Err(StoreError::new(
                StoreErrorKind::Config,
                format!(
                    "archive url {url:?}: no namenode host:port (webhdfs://namenode:9870/path)"
                ),
            ));
        }
        Arc::new(WebHdfsStore::new(
            authority,
            path,
            config.webhdfs.user.as_deref(),
        )?)
    } else {
        return Err(StoreError::new(
            StoreErrorKind::Config,
            format!(
                "archive url {url:?}: unknown scheme; use file:///path, s3://bucket/prefix or webhdfs://host:port/path"
            ),
        ));
    };
    Ok(Arc::new(RetryStore::new(
        inner,
        config.retry_attempts,
        std::time::Duration::from_millis(config.retry_base_delay_ms),
        std::time::Duration::from_secs(config.request_timeout_secs),
    )))
}

/// Joins a store prefix and a key with exactly one `/`.
pub(crate) fn join_key(prefix: &str, key: &str) -> String {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}/{key}")
    }
}

/// A fresh temporary name beside `dest` (same directory, so a rename is atomic), hidden
/// with a leading dot so listings skip it.
pub fn temp_sibling(dest: &Path) -> std::path::PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tag: u64 = rand::random();
    dest.with_file_name(format!(".{name}.tmp-{tag:016x}"))
}

/// A download on its way to `dest`: chunks go to a temporary sibling that is renamed into
/// place only when the whole object has arrived, so `dest` is whole or absent. A download
/// that fails half way (the network, a full disk) leaves no partial file behind.
pub(crate) struct PartialDownload {
    tmp: std::path::PathBuf,
    file: tokio::fs::File,
    bytes: u64,
}

impl PartialDownload {
    /// Starts a download to `dest`.
    pub(crate) async fn create(dest: &Path) -> Result<PartialDownload, StoreError> {
        let tmp = temp_sibling(dest);
        let file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| StoreError::io(tmp.display(), e))?;
        Ok(PartialDownload {
            tmp,
            file,
            bytes: 0,
        })
    }

    /// Appends one chunk.
    pub(crate) async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        use tokio::io::AsyncWriteExt;
        self.file
            .write_all(chunk)
            .await
            .map_err(|e| StoreError::io(self.tmp.display(), e))?;
        self.bytes += chunk.len() as u64;
        Ok(())
    }

    /// Ends the download with how the transfer went: on success the file takes its place
    /// at `dest` and the bytes written are returned; on failure (the transfer's or the
    /// rename's) the temporary file is removed and the error returned.
    pub(crate) async fn finish(
        mut self,
        dest: &Path,
        transfer: Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        use tokio::io::AsyncWriteExt;
        let done = match transfer {
            Ok(()) => match self.file.flush().await {
                Ok(()) => tokio::fs::rename(&self.tmp, dest)
                    .await
                    .map_err(|e| StoreError::io(dest.display(), e)),
                Err(e) => Err(StoreError::io(self.tmp.display(), e)),
            },
            Err(e) => Err(e),
        };
        if done.is_err() {
            let _ = tokio::fs::remove_file(&self.tmp).await;
        }
        done.map(|()| self.bytes)
    }
}
