//! The porter's tests: the store suite on every backend, then archive and fetch end to
//! end against test bucks (real SQLite files over real HTTP).

// A test crate: its helpers may unwrap (clippy.toml allows it only in #[test] fns).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, TimeZone, Utc};
use contracts::CrawlId;
use contracts::ids_digest::ids_sha256;
use sha2::{Digest, Sha256};

use porter::archive_store::ArchiveStore;
use porter::buck_client::SegmentState;
use porter::error::{PorterError, StoreError, StoreErrorKind};
use porter::test_support::test_buck::{
    TestBuck, crawled_urls, event_ids, events, name_of, write_cluster_file, write_segment,
};
use porter::test_support::webhdfs_server::WebHdfsServer;
use porter::test_support::{FaultStore, HangAt, archive_store_test_suite, s3_server};
use porter::{
    ArchiveReport, LocalDirStore, MemoryStore, PorterConfig, PorterEvents, RetryStore,
    archive_with_store, fetch_with_store,
};

const CRAWL: &str = "crawl-1";

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 2).expect("day")
}

fn day_start_us(d: NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        .timestamp_micros()
}

// ---- the store suite on every backend ----

#[tokio::test]
async fn memory_store_passes_the_suite() {
    archive_store_test_suite(Arc::new(MemoryStore::new()), 3 << 20).await;
}

#[tokio::test]
async fn local_dir_store_passes_the_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalDirStore::new(dir.path()).expect("store");
    // A temporary left by a killed put is never listed.
    std::fs::create_dir_all(dir.path().join("suite")).expect("mkdir");
    std::fs::write(dir.path().join("suite/.x.tmp-1"), b"partial").expect("write");
    archive_store_test_suite(Arc::new(store), 3 << 20).await;
}

#[tokio::test]
async fn s3_store_passes_the_suite_with_multipart() {
    // 12 MiB over a 5 MiB threshold: three parts.
    let store = s3_server::fresh_s3_store(5 << 20).await;
    archive_store_test_suite(Arc::new(store), 12 << 20).await;
}

#[tokio::test]
async fn webhdfs_store_passes_the_suite() {
    let server = WebHdfsServer::start().await;
    let store = porter::WebHdfsStore::new(&server.authority, "/sluice/archive", Some("porter"))
        .expect("store");
    archive_store_test_suite(Arc::new(store), 3 << 20).await;
}

#[tokio::test]
async fn retry_store_retries_only_retryable_errors() {
    #[derive(Debug)]
    struct Flaky {
        fails: std::sync::atomic::AtomicU32,
        kind: StoreErrorKind,
    }
    #[async_trait::async_trait]
    impl ArchiveStore for Flaky {
        async fn put_file(&self, _: &str, _: &Path) -> Result<(), StoreError> {
            unreachable!("not used")
        }
        async fn put_bytes(&self, _: &str, _: bytes::Bytes) -> Result<(), StoreError> {
            unreachable!("not used")
        }
        async fn get_bytes(&self, _: &str) -> Result<bytes::Bytes, StoreError> {
            if self.fails.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) > 0 {
                return Err(StoreError::new(self.kind, "injected"));
            }
            Ok(bytes::Bytes::from_static(b"ok"))
        }
        async fn get_to_file(&self, _: &str, _: &Path) -> Result<u64, StoreError> {
            unreachable!("not used")
        }
        async fn size(&self, _: &str) -> Result<u64, StoreError> {
            unreachable!("not used")
        }
        async fn list(&self, _: &str) -> Result<Vec<porter::ObjectMeta>, StoreError> {
            unreachable!("not used")
        }
        async fn delete(&self, _: &str) -> Result<(), StoreError> {
            unreachable!("not used")
        }
        fn describe(&self) -> String {
            "flaky".into()
        }
    }
    let flaky = |n: u32, kind| {
        Arc::new(Flaky {
            fails: n.into(),
            kind,
        })
    };
    let ms = Duration::from_millis(1);
    let r = RetryStore::new(
        flaky(2, StoreErrorKind::Service),
        3,
        ms,
        Duration::from_secs(5),
    );
    assert_eq!(r.get_bytes("k").await.expect("third try succeeds"), "ok");
    let r = RetryStore::new(
        flaky(3, StoreErrorKind::Service),
        3,
        ms,
        Duration::from_secs(5),
    );
    assert_eq!(
        r.get_bytes("k").await.expect_err("three failures").kind,
        StoreErrorKind::Service
    );
    let r = RetryStore::new(
        flaky(1, StoreErrorKind::Unauthorized),
        3,
        ms,
        Duration::from_secs(5),
    );
    assert_eq!(
        r.get_bytes("k").await.expect_err("not retried").kind,
        StoreErrorKind::Unauthorized
    );
}

#[tokio::test]
async fn open_store_picks_the_backend_by_url() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = PorterConfig::new("unused", "c", "w");
    let url = format!("file://{}", dir.path().display());
    let store = porter::open_store(&url, &config).expect("file store");
    assert_eq!(store.describe(), url);
    let e = porter::open_store("ftp://x/y", &config).expect_err("unknown scheme");
    assert_eq!(e.kind, StoreErrorKind::Config);
    assert!(e.message.contains("unknown scheme"), "{e}");
    let e = porter::open_store("file://relative", &config).expect_err("relative path");
    assert_eq!(e.kind, StoreErrorKind::Config);
}

// ---- archive and fetch against test bucks ----

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    config: PorterConfig,
    bucks: Vec<TestBuck>,
}

impl Fixture {
    async fn new(n_bucks: usize) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        let mut bucks = Vec::new();
        for i in 0..n_bucks {
            bucks.push(TestBuck::start(&format!("buck-{i}")).await);
        }
        let refs: Vec<&TestBuck> = bucks.iter().collect();
        write_cluster_file(&root.join("cluster.toml"), &refs);
        let mut config = PorterConfig::new(
            format!("file://{}/archive", root.display()),
            root.join("cluster.toml"),
            root.join("work"),
        );
        // One hour: a day in 2026-11 is long over, today is not.
        config.archive_age_secs = 3600;
        config.retry_base_delay_ms = 1;
        Fixture {
            _dir: dir,
            root,
            config,
            bucks,
        }
    }

    /// Writes a segment file for buck `b` and serves it.
    fn serve(
        &self,
        b: usize,
        d: NaiveDate,
        part: u32,
        evs: &[porter::test_support::test_buck::TestEvent],
        state: SegmentState,
    ) {
        let file = self
            .root
            .join(format!("buck{b}-{}.sqlite", name_of(d, part)));
        write_segment(&file, evs);
        self.bucks[b].serve(CRAWL, d, part, file, state);
    }

    async fn archive(
        &self,
        store: Arc<dyn ArchiveStore>,
        events: &Arc<PorterEvents>,
    ) -> ArchiveReport {
        archive_with_store(&self.config, store, false, events.clone())
            .await
            .expect("archive run")
    }

    async fn fetch(
        &self,
        store: Arc<dyn ArchiveStore>,
        from: NaiveDate,
        days: i64,
    ) -> Result<porter::FetchReport, PorterError> {
        let out = self
            .root
            .join(format!("fetched-{:x}", rand::random::<u32>()));
        let from_t = Utc.from_utc_datetime(&from.and_hms_opt(0, 0, 0).expect("midnight"));
        let to_t = from_t + chrono::Duration::days(days);
        let crawl = CrawlId::parse(CRAWL).expect("crawl");
        fetch_with_store(
            &self.config,
            store,
            Arc::new(PorterEvents::default()),
            &crawl,
            from_t,
            to_t,
            &out,
            &|_| {},
        )
        .await
    }
}

/// 100 events; buck 0 misses 10..20, buck 1 misses 50..60 and has them in reverse order
/// (so every rowid differs between the replicas).
fn two_gapped_replicas(fx: &Fixture) -> Vec<porter::test_support::test_buck::TestEvent> {
    let all = events(0xabc, 100, day_start_us(day()) + 3_600_000_000);
    let a: Vec<_> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| !(10..20).contains(i))
        .map(|(_, e)| e.clone())
        .collect();
    let mut b: Vec<_> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| !(50..60).contains(i))
        .map(|(_, e)| e.clone())
        .collect();
    b.reverse();
    fx.serve(0, day(), 0, &a, SegmentState::Closed);
    fx.serve(1, day(), 0, &b, SegmentState::Closed);
    all
}

#[tokio::test]
async fn a_segment_on_two_bucks_with_different_gaps_archives_as_their_exact_union() {
    let fx = Fixture::new(2).await;
    let all = two_gapped_replicas(&fx);
    let store: Arc<dyn ArchiveStore> = Arc::new(MemoryStore::new());
    let events = Arc::new(PorterEvents::default());
    let report = fx.archive(store.clone(), &events).await;
    assert_eq!(
        (report.candidates, report.archived, report.failed.len()),
        (1, 1, 0),
        "{report:?}"
    );
    assert_eq!(report.events, 100);

    let keys: Vec<String> = store
        .list("")
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(
        keys,
        vec![
            "crawl-1/2026-11-02.sqlite.z",
            "crawl-1/2026-11-02.sqlite.z.json"
        ]
    );
    let m = porter::Manifest::from_json(
        "m",
        &store
            .get_bytes("crawl-1/2026-11-02.sqlite.z.json")
            .await
            .expect("manifest"),
    )
    .expect("parse");
    let want_ids: Vec<String> = all.iter().map(|e| e.id.clone()).collect();
    assert_eq!(m.events, 100);
    assert_eq!(m.ids_sha256, ids_sha256(&want_ids));
    assert_eq!(m.tailers, vec![format!("{:016x}", 0xabc)]);
    assert_eq!(m.replicas, vec!["buck-0", "buck-1"]);
    assert_eq!(m.first_time_us, Some(all[0].time_us));
    assert_eq!(m.last_time_us, Some(all[99].time_us));

    // Both bucks were told: the archived union, and the hash of each one's own copy
    // (90 events, a different gap each), which is what it checks before pruning.
    for b in &fx.bucks {
        let n = b.notices();
        assert_eq!(n.len(), 1, "{}", b.id);
        assert_eq!(
            (n[0].2.archive_ids_sha256.as_str(), n[0].2.archive_rows),
            (m.ids_sha256.as_str(), 100)
        );
        assert_eq!(n[0].2.archive_key, "crawl-1/2026-11-02.sqlite.z");
        assert_eq!(n[0].2.rows, 90);
    }
    let own: Vec<String> = fx
        .bucks
        .iter()
        .map(|b| b.notices()[0].2.ids_sha256.clone())
        .collect();
    let ids_without = |r: std::ops::Range<usize>| -> Vec<String> {
        all.iter()
            .enumerate()
            .filter(|(i, _)| !r.contains(i))
            .map(|(_, e)| e.id.clone())
            .collect()
    };
    assert_eq!(
        own,
        vec![
            ids_sha256(&ids_without(10..20)),
            ids_sha256(&ids_without(50..60))
        ]
    );

    // Fetched back: every event, and every crawled_url row linked to its own event.
    let fetched = fx.fetch(store.clone(), day(), 1).await.expect("fetch");
    assert_eq!(fetched.segments.len(), 1);
    let path = &fetched.segments[0].path;
    assert_eq!(
        path.file_name().and_then(|n| n.to_str()),
        Some("2026-11-02.sqlite")
    );
    assert_eq!(event_ids(path), {
        let mut v = want_ids.clone();
        v.sort();
        v
    });
    let mut want_urls: Vec<(String, String)> =
        all.iter().map(|e| (e.id.clone(), e.url.clone())).collect();
    want_urls.sort();
    assert_eq!(crawled_urls(path), want_urls);

    // A second run finds nothing to do: the bucks now say archived.
    let again = fx.archive(store, &events).await;
    assert_eq!((again.candidates, again.archived), (0, 0), "{again:?}");
    // Each replica was downloaded once, by the first run; the fetch used the archive.
    assert!(fx.bucks.iter().all(|b| b.downloads() == 1));
    assert_eq!(events.get("sluice_porter_segments_archived_total"), Some(1));
}

#[tokio::test]
async fn only_closed_segments_past_the_archive_age_are_archived_and_parts_apart() {
    let fx = Fixture::new(1).await;
    let today = Utc::now().date_naive();
    let old_open = NaiveDate::from_ymd_opt(2026, 10, 30).expect("day");
    fx.serve(
        0,
        day(),
        0,
        &events(1, 5, day_start_us(day())),
        SegmentState::Closed,
    );
    fx.serve(
        0,
        day(),
        1,
        &events(2, 3, day_start_us(day()) + 5),
        SegmentState::Closed,
    );
    fx.serve(
        0,
        old_open,
        0,
        &events(3, 3, day_start_us(old_open)),
        SegmentState::Open,
    );
    fx.serve(
        0,
        today,
        0,
        &events(4, 3, day_start_us(today)),
        SegmentState::Closed,
    );
    let store: Arc<dyn ArchiveStore> = Arc::new(MemoryStore::new());
    let report = fx
        .archive(store.clone(), &Arc::new(PorterEvents::default()))
        .await;
    assert_eq!((report.candidates, report.archived), (2, 2), "{report:?}");
    let keys: Vec<String> = store
        .list("crawl-1/")
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(
        keys,
        vec![
            "crawl-1/2026-11-02.p1.sqlite.z",
            "crawl-1/2026-11-02.p1.sqlite.z.json",
            "crawl-1/2026-11-02.sqlite.z",
            "crawl-1/2026-11-02.sqlite.z.json"
        ]
    );
    // A day and its part come back together as two files.
    let fetched = fx.fetch(store, day(), 1).await.expect("fetch");
    let names: Vec<String> = fetched
        .segments
        .iter()
        .map(|s| {
            s.path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(names, vec!["2026-11-02.sqlite", "2026-11-02.p1.sqlite"]);
    assert_eq!(event_ids(&fetched.segments[1].path).len(), 3);
}

async fn archive_killed_at(hang_at: HangAt) {
    let fx = Fixture::new(2).await;
    two_gapped_replicas(&fx);
    let archive_dir = fx.root.join("archive");
    let store: Arc<dyn ArchiveStore> = Arc::new(LocalDirStore::new(&archive_dir).expect("store"));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let faulty: Arc<dyn ArchiveStore> = Arc::new(FaultStore {
        inner: store.clone(),
        hang_at,
        reached: tx,
    });
    let events = Arc::new(PorterEvents::default());
    let (config, ev) = (fx.config.clone(), events.clone());
    let task = tokio::spawn(async move { archive_with_store(&config, faulty, false, ev).await });
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("reached the kill point")
        .expect("signal");
    task.abort();
    let _ = task.await;
    let before: Vec<String> = store
        .list("")
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect();
    let expected_before: Vec<&str> = match hang_at {
        HangAt::ObjectUpload => vec![],
        HangAt::AfterObject => vec!["crawl-1/2026-11-02.sqlite.z"],
        HangAt::AfterManifest => vec![
            "crawl-1/2026-11-02.sqlite.z",
            "crawl-1/2026-11-02.sqlite.z.json",
        ],
    };
    assert_eq!(before, expected_before, "{hang_at:?}");
    assert!(
        fx.bucks.iter().all(|b| b.notices().is_empty()),
        "no buck is told before the archive is complete"
    );

    // Restart: the run completes, and the archive is what an uninterrupted run makes.
    let report = fx.archive(store.clone(), &events).await;
    assert!(report.failed.is_empty(), "{hang_at:?}: {report:?}");
    assert_eq!(report.archived + report.already_archived, 1, "{report:?}");
    let after: Vec<String> = store
        .list("")
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(
        after,
        vec![
            "crawl-1/2026-11-02.sqlite.z",
            "crawl-1/2026-11-02.sqlite.z.json"
        ]
    );
    let m = porter::Manifest::from_json(
        "m",
        &store
            .get_bytes("crawl-1/2026-11-02.sqlite.z.json")
            .await
            .expect("get"),
    )
    .expect("parse");

    let clean: Arc<dyn ArchiveStore> = Arc::new(MemoryStore::new());
    let fx2 = Fixture::new(2).await;
    two_gapped_replicas(&fx2);
    fx2.archive(clean.clone(), &Arc::new(PorterEvents::default()))
        .await;
    let m2 = porter::Manifest::from_json(
        "m",
        &clean
            .get_bytes("crawl-1/2026-11-02.sqlite.z.json")
            .await
            .expect("get"),
    )
    .expect("parse");
    assert_eq!(
        (m.events, &m.ids_sha256),
        (100, &m2.ids_sha256),
        "{hang_at:?}: nothing lost"
    );
    assert_eq!(
        m.object_sha256,
        store_sha(&store, "crawl-1/2026-11-02.sqlite.z").await,
        "manifest describes the stored object"
    );
    assert!(
        fx.bucks.iter().all(|b| b.notices().len() == 1),
        "every buck told once"
    );
    let fetched = fx.fetch(store, day(), 1).await.expect("fetch");
    assert_eq!(event_ids(&fetched.segments[0].path).len(), 100);
}

async fn store_sha(store: &Arc<dyn ArchiveStore>, key: &str) -> String {
    hex::encode(Sha256::digest(store.get_bytes(key).await.expect("get")))
}

#[tokio::test]
async fn killed_mid_upload_then_restarted_loses_nothing() {
    archive_killed_at(HangAt::ObjectUpload).await;
}

#[tokio::test]
async fn killed_between_object_and_manifest_then_restarted_loses_nothing() {
    archive_killed_at(HangAt::AfterObject).await;
}

#[tokio::test]
async fn killed_before_telling_the_bucks_then_restarted_tells_them() {
    archive_killed_at(HangAt::AfterManifest).await;
}

#[tokio::test]
async fn two_porters_at_once_archive_once() {
    let fx = Fixture::new(2).await;
    two_gapped_replicas(&fx);
    let store: Arc<dyn ArchiveStore> =
        Arc::new(LocalDirStore::new(fx.root.join("archive")).expect("store"));
    let (e1, e2) = (
        Arc::new(PorterEvents::default()),
        Arc::new(PorterEvents::default()),
    );
    let (r1, r2) = tokio::join!(
        fx.archive(store.clone(), &e1),
        fx.archive(store.clone(), &e2)
    );
    assert!(
        r1.failed.is_empty() && r2.failed.is_empty(),
        "{r1:?} {r2:?}"
    );
    assert_eq!(
        r1.archived + r2.archived + r1.already_archived + r2.already_archived,
        2,
        "{r1:?} {r2:?}"
    );
    assert!(r1.archived + r2.archived >= 1);
    assert_eq!(store.list("").await.expect("list").len(), 2);
}

#[tokio::test]
async fn a_different_existing_object_is_never_overwritten() {
    let fx = Fixture::new(1).await;
    let first = events(7, 10, day_start_us(day()));
    fx.serve(0, day(), 0, &first, SegmentState::Closed);
    let store: Arc<dyn ArchiveStore> = Arc::new(MemoryStore::new());
    let events_ = Arc::new(PorterEvents::default());
    fx.archive(store.clone(), &events_).await;
    let before = store_sha(&store, "crawl-1/2026-11-02.sqlite.z").await;

    // The buck now holds a different segment under the same name.
    fx.serve(
        0,
        day(),
        0,
        &events(7, 11, day_start_us(day())),
        SegmentState::Closed,
    );
    let report = fx.archive(store.clone(), &events_).await;
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(
        report.failed[0]
            .1
            .contains("archive conflict at crawl-1/2026-11-02.sqlite.z.json"),
        "{report:?}"
    );
    assert_eq!(events_.get("sluice_porter_conflicts_total"), Some(1));
    assert_eq!(
        store_sha(&store, "crawl-1/2026-11-02.sqlite.z").await,
        before,
        "object untouched"
    );

    // An orphan object (no manifest) with other content is an alert too.
    store
        .delete("crawl-1/2026-11-02.sqlite.z.json")
        .await
        .expect("delete manifest");
    let report = fx.archive(store.clone(), &events_).await;
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(
        report.failed[0]
            .1
            .contains("archive conflict at crawl-1/2026-11-02.sqlite.z"),
        "{report:?}"
    );
    assert_eq!(events_.get("sluice_porter_conflicts_total"), Some(2));
    assert_eq!(
        store_sha(&store, "crawl-1/2026-11-02.sqlite.z").await,
        before,
        "object untouched"
    );
}

#[tokio::test]
async fn a_corrupted_object_is_detected_on_fetch_by_name() {
    let fx = Fixture::new(1).await;
    fx.serve(
        0,
        day(),
        0,
        &events(9, 50, day_start_us(day())),
        SegmentState::Closed,
    );
    let mem = Arc::new(MemoryStore::new());
    let store: Arc<dyn ArchiveStore> = mem.clone();
    fx.archive(store.clone(), &Arc::new(PorterEvents::default()))
        .await;
    assert!(mem.corrupt("crawl-1/2026-11-02.sqlite.z", 100));
    let e = fx
        .fetch(store.clone(), day(), 1)
        .await
        .expect_err("corrupt object");
    assert!(matches!(e, PorterError::Corrupt { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("archived object crawl-1/2026-11-02.sqlite.z is corrupt"),
        "{e}"
    );

    // The same on disk, by flipping a byte in the archive directory.
    let fx = Fixture::new(1).await;
    fx.serve(
        0,
        day(),
        0,
        &events(9, 50, day_start_us(day())),
        SegmentState::Closed,
    );
    let dir = fx.root.join("archive");
    let store: Arc<dyn ArchiveStore> = Arc::new(LocalDirStore::new(&dir).expect("store"));
    fx.archive(store.clone(), &Arc::new(PorterEvents::default()))
        .await;
    let obj = dir.join("crawl-1/2026-11-02.sqlite.z");
    let mut data = std::fs::read(&obj).expect("read");
    let last = data.len() - 1;
    data[last] ^= 0x80;
    std::fs::write(&obj, data).expect("write");
    let e = fx
        .fetch(store.clone(), day(), 1)
        .await
        .expect_err("corrupt object");
    assert!(e.to_string().contains("crawl-1/2026-11-02.sqlite.z"), "{e}");

    // A missing object is named too.
    std::fs::remove_file(&obj).expect("rm");
    let e = fx.fetch(store, day(), 1).await.expect_err("missing object");
    assert!(matches!(e, PorterError::Missing { .. }), "{e}");
    assert!(
        e.to_string().contains("object crawl-1/2026-11-02.sqlite.z"),
        "{e}"
    );
}

#[tokio::test]
async fn fetch_takes_unarchived_days_from_the_bucks_and_reports_progress() {
    let fx = Fixture::new(2).await;
    two_gapped_replicas(&fx);
    let store: Arc<dyn ArchiveStore> = Arc::new(MemoryStore::new());
    fx.archive(store.clone(), &Arc::new(PorterEvents::default()))
        .await;
    // The next day is closed but not old enough: it is still only on the bucks, each
    // with a gap.
    let next = day().succ_opt().expect("next day");
    let all = events(0xdef, 30, day_start_us(next));
    fx.serve(0, next, 0, &all[..20], SegmentState::Closed);
    fx.serve(1, next, 0, &all[10..], SegmentState::Closed);
    let mut config = fx.config.clone();
    config.archive_age_secs = 10 * 365 * 86400;
    let seen = std::sync::Mutex::new(Vec::new());
    let out = fx.root.join("history");
    let from = Utc.from_utc_datetime(&day().and_hms_opt(12, 0, 0).expect("noon"));
    let to = from + chrono::Duration::days(1);
    let crawl = CrawlId::parse(CRAWL).expect("crawl");
    let report = fetch_with_store(
        &config,
        store,
        Arc::new(PorterEvents::default()),
        &crawl,
        from,
        to,
        &out,
        &|p| seen.lock().expect("lock").push(p.clone()),
    )
    .await
    .expect("fetch");
    let sources: Vec<porter::FetchSource> = report.segments.iter().map(|s| s.source).collect();
    assert_eq!(
        sources,
        vec![porter::FetchSource::Archive, porter::FetchSource::Bucks]
    );
    assert_eq!(
        event_ids(&out.join("2026-11-03.sqlite")).len(),
        30,
        "the union of both bucks' copies"
    );
    let seen = seen.into_inner().expect("lock");
    assert_eq!(seen.len(), 2);
    assert_eq!(seen.iter().map(|p| (p.done, p.total)).max(), Some((2, 2)));
    assert_eq!(
        seen.iter().map(|p| p.bytes).max(),
        Some(report.bytes_transferred)
    );
}

#[tokio::test]
async fn an_unreachable_buck_postpones_archiving() {
    let mut fx = Fixture::new(2).await;
    two_gapped_replicas(&fx);
    // Buck 1 goes away: it may hold rows nobody else has.
    fx.bucks.pop();
    tokio::task::yield_now().await;
    let store: Arc<dyn ArchiveStore> = Arc::new(MemoryStore::new());
    let events_ = Arc::new(PorterEvents::default());
    let report = fx.archive(store.clone(), &events_).await;
    assert_eq!(report.archived, 0, "{report:?}");
    assert_eq!(report.unreachable_bucks, vec!["buck-1"]);
    assert!(store.list("").await.expect("list").is_empty());
    assert_eq!(
        events_.get("sluice_porter_segments_postponed_total"),
        Some(1)
    );
}

#[tokio::test]
async fn archive_and_fetch_through_s3_with_multipart() {
    let fx = Fixture::new(2).await;
    // Enough random bytes that the compressed object passes a 5 MiB multipart threshold
    // (each URL is stored once, so it takes 128 random bytes per URL).
    let mut all = events(0x5, 60_000, day_start_us(day()));
    for (i, e) in all.iter_mut().enumerate() {
        e.url = format!(
            "http://example.com/{}/{}",
            hex::encode(porter::test_support::noise(128, i as u64 + 1)),
            i
        );
    }
    fx.serve(0, day(), 0, &all[..40_000], SegmentState::Closed);
    fx.serve(1, day(), 0, &all[20_000..], SegmentState::Closed);
    let s3 = s3_server::fresh_s3_store(5 << 20).await;
    let store: Arc<dyn ArchiveStore> = Arc::new(s3);
    let report = fx
        .archive(store.clone(), &Arc::new(PorterEvents::default()))
        .await;
    assert_eq!((report.archived, report.events), (1, 60_000), "{report:?}");
    assert!(
        report.object_bytes > 5 << 20,
        "object of {} bytes should be multipart",
        report.object_bytes
    );
    let fetched = fx.fetch(store, day(), 1).await.expect("fetch");
    assert_eq!(event_ids(&fetched.segments[0].path).len(), 60_000);
}

#[tokio::test]
async fn archive_and_fetch_through_webhdfs() {
    let server = WebHdfsServer::start().await;
    let fx = Fixture::new(2).await;
    two_gapped_replicas(&fx);
    let mut config = fx.config.clone();
    config.archive = format!("webhdfs://{}/sluice", server.authority);
    let store = porter::open_store(&config.archive, &config).expect("webhdfs store");
    let report = fx
        .archive(store.clone(), &Arc::new(PorterEvents::default()))
        .await;
    assert_eq!(report.archived, 1, "{report:?}");
    let fetched = fx.fetch(store, day(), 1).await.expect("fetch");
    assert_eq!(event_ids(&fetched.segments[0].path).len(), 100);
}

#[tokio::test]
async fn the_daemon_runs_until_shutdown() {
    let fx = Fixture::new(2).await;
    two_gapped_replicas(&fx);
    let mut config = fx.config.clone();
    config.interval_secs = 3600;
    let events_ = Arc::new(PorterEvents::default());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(porter::run(config, shutdown.clone(), events_.clone()));
    let deadline = Instant::now() + Duration::from_secs(30);
    while events_.get("sluice_porter_runs_total") != Some(1) {
        assert!(Instant::now() < deadline, "no archive run within 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("stops")
        .expect("join")
        .expect("run ok");
    assert_eq!(
        events_.get("sluice_porter_segments_archived_total"),
        Some(1)
    );
    assert!(
        fx.root
            .join("archive/crawl-1/2026-11-02.sqlite.z.json")
            .exists()
    );
}

// ---- a full or low work directory disk defers, never fails ----

/// Every file under `dir` (directories left empty are not litter worth naming).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

/// A headroom no file system has.
const ALL_OF_IT: u64 = u64::MAX;

#[tokio::test]
async fn a_work_dir_below_its_headroom_defers_the_run_until_space_returns() {
    let mut fx = Fixture::new(2).await;
    two_gapped_replicas(&fx);
    let store: Arc<dyn ArchiveStore> =
        Arc::new(LocalDirStore::new(fx.root.join("archive")).expect("store"));
    let events_ = Arc::new(PorterEvents::default());
    fx.config.min_free_bytes = ALL_OF_IT;
    for _ in 0..2 {
        let report = fx.archive(store.clone(), &events_).await;
        assert_eq!(
            (report.candidates, report.archived, report.segments_deferred),
            (1, 0, 1),
            "{report:?}"
        );
        assert!(report.failed.is_empty(), "deferred, not failed: {report:?}");
        let why = report.deferred.expect("deferred");
        assert!(
            why.contains("kept free") && why.contains(&fx.config.work_dir.display().to_string()),
            "{why}"
        );
    }
    // One episode for both runs, reported while it lasts; nothing failed, nothing
    // uploaded, no temporary file, no buck told.
    assert_eq!(events_.disk.count(), 1);
    assert_eq!(events_.disk.active(), 1);
    let reason = events_.disk.reason().expect("health names the episode");
    assert!(reason.contains("kept free"), "{reason}");
    assert_eq!(events_.get("sluice_porter_segments_failed_total"), Some(0));
    assert_eq!(events_.get("sluice_porter_runs_failed_total"), Some(0));
    assert_eq!(
        events_.get("sluice_porter_segments_deferred_total"),
        Some(2)
    );
    assert!(store.list("").await.expect("list").is_empty());
    assert_eq!(files_under(&fx.config.work_dir), Vec::<PathBuf>::new());
    assert!(fx.bucks.iter().all(|b| b.notices().is_empty()));

    // Space is back (here: the setting allows the free space there is).
    fx.config.min_free_bytes = 0;
    let report = fx.archive(store.clone(), &events_).await;
    assert_eq!(
        (report.archived, report.segments_deferred),
        (1, 0),
        "{report:?}"
    );
    assert_eq!(report.deferred, None);
    assert_eq!((events_.disk.count(), events_.disk.active()), (1, 0));
    assert!(fx.bucks.iter().all(|b| b.notices().len() == 1));
    assert_eq!(files_under(&fx.config.work_dir), Vec::<PathBuf>::new());
}

/// A store whose downloads meet a full local disk while `full` is set, as the read-back
/// of an uploaded object does when the work directory fills up mid-segment.
#[derive(Debug)]
struct FullOnDownload {
    inner: Arc<dyn ArchiveStore>,
    full: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl ArchiveStore for FullOnDownload {
    async fn put_file(&self, key: &str, source: &Path) -> Result<(), StoreError> {
        self.inner.put_file(key, source).await
    }
    async fn put_bytes(&self, key: &str, data: bytes::Bytes) -> Result<(), StoreError> {
        self.inner.put_bytes(key, data).await
    }
    async fn get_bytes(&self, key: &str) -> Result<bytes::Bytes, StoreError> {
        self.inner.get_bytes(key).await
    }
    async fn get_to_file(&self, key: &str, dest: &Path) -> Result<u64, StoreError> {
        if self.full.load(std::sync::atomic::Ordering::SeqCst) {
            // What a real copy does on ENOSPC: a partial temporary, removed, and the error.
            let tmp = porter::archive_store::temp_sibling(dest);
            std::fs::write(&tmp, b"partial").expect("partial write");
            let _ = std::fs::remove_file(&tmp);
            return Err(StoreError::io(
                tmp.display(),
                std::io::Error::from_raw_os_error(libc::ENOSPC),
            ));
        }
        self.inner.get_to_file(key, dest).await
    }
    async fn size(&self, key: &str) -> Result<u64, StoreError> {
        self.inner.size(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<porter::ObjectMeta>, StoreError> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
    fn describe(&self) -> String {
        "full on download".into()
    }
}

#[tokio::test]
async fn a_full_disk_mid_segment_defers_it_and_leaves_no_half_upload_or_temp_file() {
    let mut fx = Fixture::new(2).await;
    two_gapped_replicas(&fx);
    fx.config.min_free_bytes = 0;
    let inner: Arc<dyn ArchiveStore> =
        Arc::new(LocalDirStore::new(fx.root.join("archive")).expect("store"));
    let full = Arc::new(FullOnDownload {
        inner: inner.clone(),
        full: true.into(),
    });
    let store: Arc<dyn ArchiveStore> = full.clone();
    let events_ = Arc::new(PorterEvents::default());
    let report = fx.archive(store.clone(), &events_).await;
    assert_eq!(
        (report.archived, report.segments_deferred),
        (0, 1),
        "{report:?}"
    );
    assert!(report.failed.is_empty(), "{report:?}");
    let why = report.deferred.expect("deferred");
    assert!(why.contains("No space left"), "{why}");
    // The object went up before its read-back met the full disk: unverified, it is
    // deleted, and no manifest was written.
    assert!(inner.list("").await.expect("list").is_empty());
    assert_eq!(files_under(&fx.config.work_dir), Vec::<PathBuf>::new());
    assert!(fx.bucks.iter().all(|b| b.notices().is_empty()));
    let reason = events_.disk.reason().expect("an episode");
    assert!(reason.starts_with("disk full at "), "{reason}");
    assert_eq!(events_.get("sluice_porter_segments_failed_total"), Some(0));
    assert_eq!(events_.get("sluice_porter_buck_errors_total"), Some(0));

    // A fetch into a full disk says so (not "corrupt", not "missing"), and leaves nothing.
    let e = fx.fetch(store.clone(), day(), 1).await;
    assert!(e.is_ok(), "nothing archived yet: the bucks serve it: {e:?}");

    full.full.store(false, std::sync::atomic::Ordering::SeqCst);
    let report = fx.archive(store.clone(), &events_).await;
    assert_eq!(report.archived, 1, "{report:?}");
    assert_eq!((events_.disk.count(), events_.disk.active()), (1, 0));
    full.full.store(true, std::sync::atomic::Ordering::SeqCst);
    let out = fx.root.join("fetch-full");
    let crawl = CrawlId::parse(CRAWL).expect("crawl");
    let from = Utc.from_utc_datetime(&day().and_hms_opt(0, 0, 0).expect("midnight"));
    let e = fetch_with_store(
        &fx.config,
        store,
        Arc::new(PorterEvents::default()),
        &crawl,
        from,
        from + chrono::Duration::days(1),
        &out,
        &|_| {},
    )
    .await
    .expect_err("the fetch meets the full disk");
    assert!(e.disk_full().is_some(), "{e}");
    assert_eq!(files_under(&out), Vec::<PathBuf>::new());
}

#[test]
fn a_deferred_run_is_retried_sooner_than_the_interval_with_a_doubling_wait() {
    let hour = Duration::from_secs(3600);
    let first = porter::DEFERRED_RETRY_FIRST;
    assert_eq!(porter::next_run_in(hour, 0), hour);
    assert_eq!(porter::next_run_in(hour, 1), first);
    assert_eq!(porter::next_run_in(hour, 2), first * 2);
    assert_eq!(porter::next_run_in(hour, 3), first * 4);
    assert_eq!(porter::next_run_in(hour, 40), hour);
    assert_eq!(
        porter::next_run_in(Duration::from_secs(5), 1),
        Duration::from_secs(5)
    );
}
