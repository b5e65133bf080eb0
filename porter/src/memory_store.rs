//! [`MemoryStore`]: an in-memory [`ArchiveStore`] for unit tests, with a hook to corrupt
//! an object in place.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use bytes::Bytes;

use crate::archive_store::{ArchiveStore, ObjectMeta, temp_sibling};
use crate::error::{StoreError, StoreErrorKind};

/// Objects in a map behind a std mutex: every critical section is a map operation with no
/// await inside, so a std lock is cheaper than an async one and cannot be held across I/O.
#[derive(Debug, Default)]
pub struct MemoryStore {
    objects: Mutex<BTreeMap<String, Bytes>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Bytes>> {
        // A panic while holding the lock cannot leave the map half-updated (each critical
        // section is one map call), so a poisoned lock is still consistent.
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Flips one bit of byte `offset` of an object (tests of corruption detection).
    pub fn corrupt(&self, key: &str, offset: usize) -> bool {
        let mut map = self.map();
        match map.get(key) {
            Some(data) if offset < data.len() => {
                let mut v = data.to_vec();
                v[offset] ^= 0x01;
                map.insert(key.to_string(), Bytes::from(v));
                true
            }
            _ => false,
        }
    }
}

#[async_trait::async_trait]
impl ArchiveStore for MemoryStore {
    async fn put_file(&self, key: &str, source: &Path) -> Result<(), StoreError> {
        let data = tokio::fs::read(source)
            .await
            .map_err(|e| StoreError::io(source.display(), e))?;
        self.put_bytes(key, Bytes::from(data)).await
    }

    async fn put_bytes(&self, key: &str, data: Bytes) -> Result<(), StoreError> {
        let mut map = self.map();
        if map.contains_key(key) {
            return Err(StoreError::new(
                StoreErrorKind::AlreadyExists,
                format!("memory://{key} already exists"),
            ));
        }
        map.insert(key.to_string(), data);
        Ok(())
    }

    async fn get_bytes(&self, key: &str) -> Result<Bytes, StoreError> {
        self.map().get(key).cloned().ok_or_else(|| not_found(key))
    }

    async fn get_to_file(&self, key: &str, dest: &Path) -> Result<u64, StoreError> {
        let data = self.get_bytes(key).await?;
        let tmp = temp_sibling(dest);
        if let Err(e) = tokio::fs::write(&tmp, &data).await {
            // A write cut short (a full disk) leaves no partial temporary behind.
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(StoreError::io(tmp.display(), e));
        }
        tokio::fs::rename(&tmp, dest)
            .await
            .map_err(|e| StoreError::io(dest.display(), e))?;
        Ok(data.len() as u64)
    }

    async fn size(&self, key: &str) -> Result<u64, StoreError> {
        self.map()
            .get(key)
            .map(|d| d.len() as u64)
            .ok_or_else(|| not_found(key))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        Ok(self
            .map()
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| ObjectMeta {
                key: k.clone(),
                size: v.len() as u64,
            })
            .collect())
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.map().remove(key);
        Ok(())
    }

    fn describe(&self) -> String {
        "memory://".to_string()
    }
}

fn not_found(key: &str) -> StoreError {
    StoreError::new(
        StoreErrorKind::NotFound,
        format!("memory://{key} does not exist"),
    )
}
