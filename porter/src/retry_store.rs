//! [`RetryStore`]: a wrapper that gives every call of an inner store a timeout and retries
//! the retryable failures with exponential backoff. Backends stay simple and honest about
//! each single attempt; the policy lives here, once.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::archive_store::{ArchiveStore, ObjectMeta};
use crate::error::{StoreError, StoreErrorKind};

/// Retries and timeouts around an inner store.
#[derive(Debug)]
pub struct RetryStore {
    inner: Arc<dyn ArchiveStore>,
    attempts: u32,
    base_delay: Duration,
    timeout: Duration,
}

/// The longest wait between two attempts, whatever the backoff or `retry_after` says.
const MAX_DELAY: Duration = Duration::from_secs(30);

impl RetryStore {
    /// Wraps `inner`: each call gets `timeout`, and up to `attempts` tries in all (at
    /// least one) with delays `base_delay`, `2 * base_delay`, ... capped at 30 s.
    pub fn new(
        inner: Arc<dyn ArchiveStore>,
        attempts: u32,
        base_delay: Duration,
        timeout: Duration,
    ) -> RetryStore {
        RetryStore {
            inner,
            attempts: attempts.max(1),
            base_delay,
            timeout,
        }
    }

    async fn call<T, F, Fut>(&self, what: &str, key: &str, mut f: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut attempt = 1;
        loop {
            let result = match tokio::time::timeout(self.timeout, f()).await {
                Ok(r) => r,
                Err(_) => Err(StoreError::new(
                    StoreErrorKind::Timeout,
                    format!(
                        "{what} {key} on {} took more than {:?}",
                        self.inner.describe(),
                        self.timeout
                    ),
                )),
            };
            match result {
                Err(e) if e.is_retryable() && attempt < self.attempts => {
                    let backoff = self.base_delay.saturating_mul(1 << (attempt - 1).min(16));
                    let delay = e.retry_after.unwrap_or(backoff).min(MAX_DELAY);
                    tracing::warn!(op = what, key, attempt, ?delay, error = %e, "archive store call failed; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

#[async_trait::async_trait]
impl ArchiveStore for RetryStore {
    async fn put_file(&self, key: &str, source: &Path) -> Result<(), StoreError> {
        self.call("put", key, || self.inner.put_file(key, source))
            .await
    }

    async fn put_bytes(&self, key: &str, data: Bytes) -> Result<(), StoreError> {
        self.call("put", key, || self.inner.put_bytes(key, data.clone()))
            .await
    }

    async fn get_bytes(&self, key: &str) -> Result<Bytes, StoreError> {
        self.call("get", key, || self.inner.get_bytes(key)).await
    }

    async fn get_to_file(&self, key: &str, dest: &Path) -> Result<u64, StoreError> {
        self.call("get", key, || self.inner.get_to_file(key, dest))
            .await
    }

    async fn size(&self, key: &str) -> Result<u64, StoreError> {
        self.call("head", key, || self.inner.size(key)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        self.call("list", prefix, || self.inner.list(prefix)).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.call("delete", key, || self.inner.delete(key)).await
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}
