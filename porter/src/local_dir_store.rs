//! [`LocalDirStore`]: an archive in a local directory (`file:///path`), the embedded
//! default. Keys are relative paths under the root.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::archive_store::{ArchiveStore, ObjectMeta, temp_sibling};
use crate::error::{StoreError, StoreErrorKind};

/// An archive in a directory. A put writes a hidden temporary file beside the target,
/// fsyncs it, hard-links it to the final name (a link never replaces an existing file:
/// that is the create-only guarantee, with exactly one winner in a race), removes the
/// temporary and fsyncs the directory, so a crash leaves either the whole object or
/// none (plus, at worst, a hidden temporary that listings skip).
///
/// Not `durable_file::replace`: its rename replaces an existing object (a check before it
/// would leave a race), it holds the whole object in memory (segments are streamed from
/// a file) and its fixed `<name>.tmp` is neither hidden from listings nor unique per put.
/// Only the directory fsync is shared.
#[derive(Debug, Clone)]
pub struct LocalDirStore {
    root: PathBuf,
}

impl LocalDirStore {
    /// A store rooted at `root` (created if missing).
    pub fn new(root: impl Into<PathBuf>) -> Result<LocalDirStore, StoreError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|e| StoreError::io(root.display(), e))?;
        Ok(LocalDirStore { root })
    }

    /// The file that holds `key`, refusing keys that could leave the root.
    pub fn path_of(&self, key: &str) -> Result<PathBuf, StoreError> {
        let bad = key.is_empty()
            || key.starts_with('/')
            || key
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == ".." || c.starts_with('.'));
        if bad {
            return Err(StoreError::new(
                StoreErrorKind::Config,
                format!("key {key:?} is not a relative path of plain components"),
            ));
        }
        Ok(self.root.join(key))
    }

    fn put_blocking(
        &self,
        key: &str,
        write: impl FnOnce(&mut File) -> io::Result<()>,
    ) -> Result<(), StoreError> {
        let dest = self.path_of(key)?;
        let dir = dest.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| StoreError::io(dir.display(), e))?;
        let tmp = temp_sibling(&dest);
        let result = (|| {
            let mut f = File::create(&tmp).map_err(|e| StoreError::io(tmp.display(), e))?;
            write(&mut f).map_err(|e| StoreError::io(tmp.display(), e))?;
            f.sync_all().map_err(|e| StoreError::io(tmp.display(), e))?;
            fs::hard_link(&tmp, &dest).map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    StoreError::new(
                        StoreErrorKind::AlreadyExists,
                        format!("{} already exists", dest.display()),
                    )
                } else {
                    StoreError::io(dest.display(), e)
                }
            })
        })();
        // The temporary goes whatever happened; failing to remove it only leaves litter.
        let _ = fs::remove_file(&tmp);
        result?;
        durable_file::sync_dir(&dir).map_err(|e| StoreError::io(dir.display(), e))
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        StoreError::new(
            StoreErrorKind::Io,
            format!("blocking file task failed: {e}"),
        )
    })?
}

#[async_trait::async_trait]
impl ArchiveStore for LocalDirStore {
    async fn put_file(&self, key: &str, source: &Path) -> Result<(), StoreError> {
        let (this, key, source) = (self.clone(), key.to_string(), source.to_path_buf());
        blocking(move || {
            this.put_blocking(&key, |f| {
                let mut src = File::open(&source)?;
                io::copy(&mut src, f).map(|_| ())
            })
        })
        .await
    }

    async fn put_bytes(&self, key: &str, data: Bytes) -> Result<(), StoreError> {
        let (this, key) = (self.clone(), key.to_string());
        blocking(move || this.put_blocking(&key, |f| f.write_all(&data))).await
    }

    async fn get_bytes(&self, key: &str) -> Result<Bytes, StoreError> {
        let path = self.path_of(key)?;
        tokio::fs::read(&path)
            .await
            .map(Bytes::from)
            .map_err(|e| StoreError::io(path.display(), e))
    }

    async fn get_to_file(&self, key: &str, dest: &Path) -> Result<u64, StoreError> {
        let path = self.path_of(key)?;
        let dest = dest.to_path_buf();
        blocking(move || {
            let tmp = temp_sibling(&dest);
            let n = fs::copy(&path, &tmp).map_err(|e| {
                let _ = fs::remove_file(&tmp);
                // A full or read-only disk is the destination's (reads meet neither):
                // name it, so the porter knows which file system to wait for.
                if disk_space::StorageFault::of(&e).is_some() {
                    StoreError::io(tmp.display(), e)
                } else {
                    StoreError::io(path.display(), e)
                }
            })?;
            fs::rename(&tmp, &dest).map_err(|e| StoreError::io(dest.display(), e))?;
            Ok(n)
        })
        .await
    }

    async fn size(&self, key: &str) -> Result<u64, StoreError> {
        let path = self.path_of(key)?;
        let meta = tokio::fs::metadata(&path)
            .await
            .map_err(|e| StoreError::io(path.display(), e))?;
        Ok(meta.len())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        blocking(move || {
            // Walk only the directory the prefix is in: `crawl/2026-11` lists `crawl/`.
            let dir_part = prefix.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            let start = if dir_part.is_empty() {
                root.clone()
            } else {
                root.join(dir_part)
            };
            let mut out = Vec::new();
            walk(&root, &start, &prefix, &mut out)?;
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(path.display(), e)),
        }
    }

    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }
}

fn walk(
    root: &Path,
    dir: &Path,
    prefix: &str,
    out: &mut Vec<ObjectMeta>,
) -> Result<(), StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io(dir.display(), e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(dir.display(), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue; // temporaries
        }
        let path = entry.path();
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        let key = rel
            .to_string_lossy()
            .replace(std::path::MAIN_SEPARATOR, "/");
        let ft = entry
            .file_type()
            .map_err(|e| StoreError::io(path.display(), e))?;
        if ft.is_dir() {
            if prefix.starts_with(&format!("{key}/"))
                || key.starts_with(prefix)
                || prefix.is_empty()
            {
                walk(root, &path, prefix, out)?;
            }
        } else if key.starts_with(prefix) {
            let size = entry
                .metadata()
                .map_err(|e| StoreError::io(path.display(), e))?
                .len();
            out.push(ObjectMeta { key, size });
        }
    }
    Ok(())
}
