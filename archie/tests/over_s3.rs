//! History over a real S3-compatible server (SeaweedFS, the one porter's tests use): the
//! porter archives fixture segments from a test buck into a bucket of this test's own,
//! the buck prunes them, and archie, fetching through `PorterSource`, answers term,
//! substring and regex searches with exactly the lines a scan of the source lines finds.
//! A corrupted object then fails its request by name, and archie goes on serving.

// A test or bench crate: its helpers may unwrap (clippy.toml allows it only in #[test] fns).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use common::*;
use porter::buck_client::SegmentState;
use porter::test_support::s3_server;
use porter::test_support::test_buck::{TestBuck, write_cluster_file};
use porter::{ArchiveStore, PorterConfig, PorterEvents, S3Store};
use serde_json::Value;

const CRAWL: &str = "crawl-a";
const DAYS: [&str; 3] = ["2026-11-01", "2026-11-02", "2026-11-03"];
const PER_DAY: usize = 2000;
const BUILD_DEADLINE: Duration = Duration::from_secs(120);

/// The scan a search is compared with: which source lines it keeps.
type Keep = Box<dyn Fn(&archie::segment_fixture::FixtureEvent) -> bool>;

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn day(d: &str) -> NaiveDate {
    NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap()
}

async fn request_id(srv: &Server, start: &str, end: &str) -> String {
    let r = srv.request(CRAWL, start, end).await;
    assert_eq!(r["reused"], false, "a new request, not a reused index: {r}");
    r["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_over_s3_answers_what_a_scan_finds_and_a_corrupt_object_fails_by_name() {
    let started = Instant::now();
    let mut f = fixture();
    for (i, d) in DAYS.iter().enumerate() {
        f.add(CRAWL, d, 0, PER_DAY, i as u64 + 11);
    }
    let root = f.dir.path().to_path_buf();

    // A buck serving the fixture segments, closed and past the archive age.
    let buck = TestBuck::start("buck-0").await;
    for d in DAYS {
        let file = f.segments().join(CRAWL).join(format!("{d}.sqlite"));
        buck.serve(CRAWL, day(d), 0, file, SegmentState::Closed);
    }
    write_cluster_file(&root.join("cluster.toml"), &[&buck]);

    // The porter's config for a fresh bucket on the shared test server; archie's
    // `PorterSource` fetches with the same one, as in `sluice up`.
    let bucket = format!("archie-test-{:016x}", rand::random::<u64>());
    let mut pc = PorterConfig::new(
        format!("s3://{bucket}/archive"),
        root.join("cluster.toml"),
        root.join("porter-work"),
    );
    pc.s3 = tokio::task::spawn_blocking(s3_server::s3_settings)
        .await
        .unwrap();
    pc.archive_age_secs = 3600;
    pc.retry_base_delay_ms = 1;
    let store = S3Store::new(
        &bucket,
        "archive",
        &pc.s3,
        pc.multipart_threshold_bytes,
        pc.multipart_part_bytes,
    )
    .unwrap();
    store.ensure_bucket().await.unwrap();

    let report = porter::archive_once(&pc, false, Arc::new(PorterEvents::default()))
        .await
        .unwrap();
    assert_eq!(
        (report.archived, report.events),
        (DAYS.len(), (DAYS.len() * PER_DAY) as u64),
        "{report:?}"
    );
    assert_eq!(buck.notices().len(), DAYS.len());
    // The buck prunes what was archived: from here on every row comes from the bucket.
    buck.state.lock().unwrap().segments.clear();
    let downloads = buck.downloads();
    let object = |d: &str| format!("{CRAWL}/{d}.sqlite.z");
    let keys: Vec<String> = store
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    for d in DAYS {
        assert!(keys.contains(&object(d)), "{keys:?}");
    }

    let work = root.join("archie-work");
    let srv = Server::start_with(config(&work), Arc::new(archie::PorterSource::new(pc))).await;

    // A range over parts of the first two days.
    let (start, end) = ("2026-11-01T12:00:00Z", "2026-11-02T12:00:00Z");
    let id = request_id(&srv, start, end).await;
    let done = srv.wait_done(&id, BUILD_DEADLINE).await;
    assert_eq!(done["state"], "ready", "{done}");
    let all = f.scan(&[CRAWL], ts(start), ts(end), |_| true);
    assert!(!all.is_empty());
    assert_eq!(done["events_indexed"].as_u64().unwrap(), all.len() as u64);

    let term = |w: &'static str| {
        move |e: &archie::segment_fixture::FixtureEvent| contracts::tokenizer::has_token(&e.line, w)
    };
    let re = |p: &'static str| {
        let r = regex::Regex::new(p).unwrap();
        move |e: &archie::segment_fixture::FixtureEvent| r.is_match(&e.line)
    };
    let cases: Vec<(&str, &str, Keep)> = vec![
        ("term", "robots.txt", Box::new(term("robots.txt"))),
        ("term", "404", Box::new(term("404"))),
        (
            "substring",
            "robots.txt",
            Box::new(|e| e.line.contains("robots.txt")),
        ),
        (
            "substring",
            "sha1:AB",
            Box::new(|e| e.line.contains("sha1:AB")),
        ),
        ("regex", r"sha1:[A-Z]{2}7", Box::new(re(r"sha1:[A-Z]{2}7"))),
        ("regex", r"\s404\s+\d{3} ", Box::new(re(r"\s404\s+\d{3} "))),
    ];
    let mut answers: Vec<Vec<Value>> = Vec::new();
    for (mode, q, keep) in &cases {
        let want = f.scan(&[CRAWL], ts(start), ts(end), keep);
        assert!(
            !want.is_empty(),
            "{mode} {q:?} matches nothing: a weak case"
        );
        let got = srv
            .search_all(&id, &format!("q={}&mode={mode}", enc(q)), 500)
            .await;
        assert_eq!(
            got.len(),
            want.len(),
            "{mode} {q:?}: a line twice or missed"
        );
        assert_eq!(sorted(ids(&got)), sorted(want), "{mode} {q:?}");
        answers.push(got);
    }
    assert_eq!(
        buck.downloads(),
        downloads,
        "archie's fetch read the bucket, not the buck"
    );

    // Corrupt the last day's object in the bucket: same size, one byte flipped.
    let bad = object(DAYS[2]);
    let mut bytes = store.get_bytes(&bad).await.unwrap().to_vec();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    store.delete(&bad).await.unwrap();
    store.put_bytes(&bad, bytes.into()).await.unwrap();

    // A range over the second and the corrupt third day fails, naming the object.
    let bad_id = request_id(&srv, "2026-11-02T06:00:00Z", "2026-11-03T06:00:00Z").await;
    let failed = srv.wait_done(&bad_id, BUILD_DEADLINE).await;
    assert_eq!(failed["state"], "failed", "{failed}");
    let reason = failed["reason"].as_str().unwrap();
    assert!(
        reason.contains(&bad),
        "reason does not name {bad}: {reason}"
    );
    let (s, v) = srv.get(&format!("/history/{bad_id}/search?q=x")).await;
    assert_eq!(s, 409, "{v}");

    // Archie goes on serving: the ready index answers as before, and a new request over
    // sound objects builds.
    let (mode, q, _) = &cases[0];
    let again = srv
        .search_all(&id, &format!("q={}&mode={mode}", enc(q)), 500)
        .await;
    assert_eq!(ids(&again), ids(&answers[0]));
    let (start2, end2) = ("2026-11-01T00:00:00Z", "2026-11-01T06:00:00Z");
    let id2 = request_id(&srv, start2, end2).await;
    let done = srv.wait_done(&id2, BUILD_DEADLINE).await;
    assert_eq!(done["state"], "ready", "{done}");
    let want = f.scan(&[CRAWL], ts(start2), ts(end2), |e| {
        e.line.contains("robots.txt")
    });
    let got = srv
        .search_all(&id2, "q=robots.txt&mode=substring", 500)
        .await;
    assert!(!want.is_empty());
    assert_eq!(sorted(ids(&got)), sorted(want));
    let (s, list) = srv.get("/history").await;
    assert_eq!(s, 200);
    assert_eq!(list["requests"].as_array().unwrap().len(), 3, "{list}");
    srv.stop().await;

    // The bucket is this test's own: empty it (the server's data dir goes with its run).
    for o in store.list("").await.unwrap() {
        store.delete(&o.key).await.unwrap();
    }
    assert!(store.list("").await.unwrap().is_empty());
    eprintln!("over_s3: {:?}", started.elapsed());
}
