//! A full disk under archie: a request below the headroom waits `queued` (checked again
//! with a doubling backoff, in paused time) and builds by itself once space returns; a
//! build that meets a full disk midway fails, says where, and leaves no files behind.

// A test or bench crate: its helpers may unwrap (clippy.toml allows it only in #[test] fns).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use archie::{ArchieError, HistoryService, RequestState, SegmentFile, SegmentSource};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use common::*;
use contracts::CrawlId;
use tokio_util::sync::CancellationToken;

/// Sleeps in (paused) time until `id` is done building, at most `limit` of it.
async fn settle(svc: &HistoryService, id: &str, limit: Duration) -> archie::RequestRecord {
    let step = Duration::from_millis(100);
    let mut slept = Duration::ZERO;
    loop {
        let r = svc.status(id).expect("status");
        if !r.state.is_building() {
            return r;
        }
        assert!(slept < limit, "request still {:?} after {limit:?}", r.state);
        tokio::time::sleep(step).await;
        slept += step;
    }
}

#[tokio::test(start_paused = true)]
async fn below_the_headroom_a_request_stays_queued_and_builds_once_space_returns() {
    let mut fx = fixture();
    fx.add("crawl-1", "2026-11-20", 0, 500, 1);
    let mut config = config(&fx.work());
    // No file system has this much free: "low" for as long as it is set.
    config.min_free_bytes = u64::MAX;
    config.disk_retry_max_secs = 30;
    let shutdown = CancellationToken::new();
    let handle = archie::start(
        config,
        Arc::new(archie::LocalDirSource::new(fx.segments())),
        shutdown.clone(),
    )
    .await
    .expect("start");
    let svc = handle.service();
    let events = handle.events();
    let (r, _) = svc
        .submit(
            "crawl-1",
            ts("2026-11-20T00:00:00Z"),
            ts("2026-11-21T00:00:00Z"),
        )
        .expect("accepted");
    // Ten minutes of paused time: about 25 checks (1, 2, 4, ... 30 s), none of which
    // starts the build or fails the request; one episode, logged once.
    tokio::time::sleep(Duration::from_secs(600)).await;
    let waiting = svc.status(&r.id).expect("status");
    assert_eq!(waiting.state, RequestState::Queued, "{waiting:?}");
    let message = waiting.message.clone().unwrap_or_default();
    assert!(
        message.starts_with("waiting for disk space: below the ")
            && message.contains(&fx.work().display().to_string()),
        "{message}"
    );
    assert_eq!((events.disk.count(), events.disk.active()), (1, 1));
    let metrics = events.render_prometheus();
    assert!(metrics.contains("sluice_archie_disk_full 1\n"), "{metrics}");
    assert!(
        metrics.contains("sluice_archie_builds_started_total 0\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sluice_archie_builds_failed_total 0\n"),
        "{metrics}"
    );
    assert!(
        !fx.work().join(&r.id).exists(),
        "nothing is written for a request that waits"
    );
    let reason = events.disk.reason().expect("health names the episode");
    assert!(reason.contains("kept free"), "{reason}");

    // Space returns: the next check (at most disk_retry_max_secs later) starts the build.
    svc.set_headroom(disk_space::Headroom::NONE);
    let done = settle(&svc, &r.id, Duration::from_secs(120)).await;
    assert_eq!(done.state, RequestState::Ready, "{done:?}");
    assert_eq!(done.events_indexed, 500);
    assert_eq!(done.message, None);
    assert_eq!((events.disk.count(), events.disk.active()), (1, 0));
    shutdown.cancel();
    handle.join().await;
}

/// A source that writes part of a segment, then meets a full disk.
struct FillsTheDisk;

#[async_trait]
impl SegmentSource for FillsTheDisk {
    async fn crawls(&self) -> Result<Vec<CrawlId>, ArchieError> {
        Ok(vec![CrawlId::parse("crawl-1").expect("crawl")])
    }
    async fn fetch(
        &self,
        _crawl: &CrawlId,
        _from: DateTime<Utc>,
        _to: DateTime<Utc>,
        dir: &Path,
        _progress: &archie::segment_source::SourceProgressFn,
    ) -> Result<Vec<SegmentFile>, ArchieError> {
        std::fs::create_dir_all(dir).expect("mkdir");
        let partial = dir.join("2026-11-20.sqlite");
        std::fs::write(&partial, vec![0u8; 4096]).expect("partial");
        Err(ArchieError::io(
            partial,
            std::io::Error::from_raw_os_error(libc::ENOSPC),
        ))
    }
    fn describe(&self) -> String {
        "a source on a full disk".into()
    }
}

#[tokio::test(start_paused = true)]
async fn a_full_disk_during_a_build_fails_it_says_where_and_removes_its_files() {
    let fx = fixture();
    let mut config = config(&fx.work());
    config.min_free_bytes = 0;
    config.reap_interval_secs = 60;
    let shutdown = CancellationToken::new();
    let handle = archie::start(config, Arc::new(FillsTheDisk), shutdown.clone())
        .await
        .expect("start");
    let svc = handle.service();
    let events = handle.events();
    let (r, _) = svc
        .submit(
            "crawl-1",
            ts("2026-11-20T00:00:00Z"),
            ts("2026-11-21T00:00:00Z"),
        )
        .expect("accepted");
    let done = settle(&svc, &r.id, Duration::from_secs(30)).await;
    let RequestState::Failed { reason } = &done.state else {
        panic!("failed expected: {done:?}");
    };
    let dir = fx.work().join(&r.id);
    assert!(
        reason.starts_with(&format!("disk full at {}", dir.display()))
            && reason.contains("request the range again once space returns"),
        "{reason}"
    );
    assert!(!dir.exists(), "partial files left in {}", dir.display());
    assert_eq!(done.index_bytes, 0);
    assert_eq!((events.disk.count(), events.disk.active()), (1, 1));
    assert!(
        events
            .render_prometheus()
            .contains("sluice_archie_disk_full_episodes_total 1\n")
    );
    // The files are gone and the headroom is there: the reaper's next pass ends it.
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!((events.disk.count(), events.disk.active()), (1, 0));
    shutdown.cancel();
    handle.join().await;
}
