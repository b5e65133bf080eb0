//! Test support: the one archive store test suite, a fault-injecting store, a WebHDFS
//! server, test bucks, and the S3 test server.

pub mod s3_server;
pub mod test_buck;
pub mod webhdfs_server;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::archive_store::{ArchiveStore, ObjectMeta};
use crate::error::{StoreError, StoreErrorKind};

/// Bytes that do not compress (xorshift), so sizes are real.
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The contract of [`ArchiveStore`], checked the same way on every backend. `big` is the
/// size of the large object (above the S3 multipart threshold when testing S3).
pub async fn archive_store_test_suite(store: Arc<dyn ArchiveStore>, big: usize) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let name = store.describe();

    assert_eq!(
        store.list("suite/").await.expect("list empty"),
        vec![],
        "{name}: fresh store lists nothing"
    );

    // put / get / size
    store
        .put_bytes("suite/a/1.json", Bytes::from_static(b"{\"v\":1}"))
        .await
        .expect("put small");
    assert_eq!(
        store.get_bytes("suite/a/1.json").await.expect("get"),
        Bytes::from_static(b"{\"v\":1}")
    );
    assert_eq!(store.size("suite/a/1.json").await.expect("size"), 7);

    // create-only
    let e = store
        .put_bytes("suite/a/1.json", Bytes::from_static(b"other"))
        .await
        .expect_err("second put must fail");
    assert_eq!(e.kind, StoreErrorKind::AlreadyExists, "{name}: {e}");
    assert_eq!(
        store.get_bytes("suite/a/1.json").await.expect("get"),
        Bytes::from_static(b"{\"v\":1}"),
        "{name}: object untouched"
    );

    // a large object from a file (multipart on S3), read back to a file with its checksum
    let data = noise(big, 7);
    let src = tmp.path().join("big");
    std::fs::write(&src, &data).expect("write big");
    store
        .put_file("suite/a/big.z", &src)
        .await
        .expect("put big");
    let e = store
        .put_file("suite/a/big.z", &src)
        .await
        .expect_err("second put of big must fail");
    assert_eq!(e.kind, StoreErrorKind::AlreadyExists, "{name}: {e}");
    let dest = tmp.path().join("back");
    std::fs::write(&dest, b"stale").expect("write stale dest");
    let n = store
        .get_to_file("suite/a/big.z", &dest)
        .await
        .expect("get big");
    assert_eq!(n, big as u64);
    let back = std::fs::read(&dest).expect("read back");
    assert_eq!(
        Sha256::digest(&back),
        Sha256::digest(&data),
        "{name}: checksum of the big object"
    );
    assert_eq!(
        store.size("suite/a/big.z").await.expect("size big"),
        big as u64
    );
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        2,
        "{name}: get_to_file leaves no temporary: {leftovers:?}"
    );

    // list by prefix: sorted, sizes, no temporaries, string prefixes
    store
        .put_bytes("suite/b", Bytes::from_static(b"b"))
        .await
        .expect("put b");
    let all = store.list("suite/").await.expect("list");
    assert_eq!(
        all,
        vec![
            ObjectMeta {
                key: "suite/a/1.json".into(),
                size: 7
            },
            ObjectMeta {
                key: "suite/a/big.z".into(),
                size: big as u64
            },
            ObjectMeta {
                key: "suite/b".into(),
                size: 1
            },
        ],
        "{name}"
    );
    let keys = |v: Vec<ObjectMeta>| v.into_iter().map(|o| o.key).collect::<Vec<_>>();
    assert_eq!(
        keys(store.list("suite/a/b").await.expect("list")),
        vec!["suite/a/big.z"],
        "{name}"
    );
    assert_eq!(
        keys(store.list("suite/a").await.expect("list")),
        vec!["suite/a/1.json", "suite/a/big.z"],
        "{name}"
    );
    assert!(
        store.list("suite/zz").await.expect("list").is_empty(),
        "{name}"
    );

    // missing objects
    for e in [
        store
            .get_bytes("suite/missing")
            .await
            .expect_err("get missing"),
        store.size("suite/missing").await.expect_err("size missing"),
        store
            .get_to_file("suite/missing", &tmp.path().join("m"))
            .await
            .expect_err("get_to_file missing"),
    ] {
        assert_eq!(e.kind, StoreErrorKind::NotFound, "{name}: {e}");
    }
    assert!(
        !tmp.path().join("m").exists(),
        "{name}: a failed get leaves no file"
    );

    // delete, and delete of a missing object
    store.delete("suite/b").await.expect("delete");
    assert_eq!(
        store.get_bytes("suite/b").await.expect_err("deleted").kind,
        StoreErrorKind::NotFound
    );
    store.delete("suite/b").await.expect("delete missing is ok");

    // two racing creates: exactly one winner, whose bytes stay
    let (s1, s2) = (store.clone(), store.clone());
    let (r1, r2) = tokio::join!(
        s1.put_bytes("suite/race", Bytes::from_static(b"one")),
        s2.put_bytes("suite/race", Bytes::from_static(b"two")),
    );
    let winner: &[u8] = match (&r1, &r2) {
        (Ok(()), Err(e)) if e.kind == StoreErrorKind::AlreadyExists => b"one",
        (Err(e), Ok(())) if e.kind == StoreErrorKind::AlreadyExists => b"two",
        other => panic!("{name}: racing puts gave {other:?}"),
    };
    assert_eq!(
        store.get_bytes("suite/race").await.expect("get race"),
        Bytes::from(winner)
    );
}

/// Where [`FaultStore`] stops, as a porter killed at that moment would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangAt {
    /// In the middle of uploading the segment object (nothing visible yet).
    ObjectUpload,
    /// After the object is stored, before its manifest.
    AfterObject,
    /// After the manifest, before the bucks are told.
    AfterManifest,
}

/// A store that passes calls through until it reaches `hang_at`, then reports it and
/// never returns: the test aborts the task there, which is what SIGKILL does to a porter.
#[derive(Debug)]
pub struct FaultStore {
    pub inner: Arc<dyn ArchiveStore>,
    pub hang_at: HangAt,
    pub reached: mpsc::UnboundedSender<()>,
}

impl FaultStore {
    async fn hang(&self) -> ! {
        let _ = self.reached.send(());
        std::future::pending::<()>().await;
        unreachable!("pending never resolves")
    }
}

#[async_trait::async_trait]
impl ArchiveStore for FaultStore {
    async fn put_file(&self, key: &str, source: &Path) -> Result<(), StoreError> {
        if key.ends_with(".sqlite.z") {
            match self.hang_at {
                HangAt::ObjectUpload => self.hang().await,
                HangAt::AfterObject => {
                    self.inner.put_file(key, source).await?;
                    self.hang().await
                }
                HangAt::AfterManifest => {}
            }
        }
        self.inner.put_file(key, source).await
    }
    async fn put_bytes(&self, key: &str, data: Bytes) -> Result<(), StoreError> {
        if key.ends_with(".json") && self.hang_at == HangAt::AfterManifest {
            self.inner.put_bytes(key, data).await?;
            self.hang().await
        }
        self.inner.put_bytes(key, data).await
    }
    async fn get_bytes(&self, key: &str) -> Result<Bytes, StoreError> {
        self.inner.get_bytes(key).await
    }
    async fn get_to_file(&self, key: &str, dest: &Path) -> Result<u64, StoreError> {
        self.inner.get_to_file(key, dest).await
    }
    async fn size(&self, key: &str) -> Result<u64, StoreError> {
        self.inner.size(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
    fn describe(&self) -> String {
        format!("fault({})", self.inner.describe())
    }
}
