//! `tailer::run` as a whole: the reader thread and the real shipper, stopped in two phases.

// A test or bench crate: its helpers may unwrap (clippy.toml allows it only in #[test] fns).
#![allow(clippy::unwrap_used)]

mod reading_support;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use reading_support::*;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_spools_while_the_bucks_are_down_and_stops_cleanly() {
    let mut h = Harness::new("encryption = false\nnice = 0");
    // One buck on a port nothing listens on: the shipper keeps retrying, reading goes on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let cluster = h.dir.path().join("cluster.toml");
    std::fs::write(
        &cluster,
        format!("[[buck]]\nid = \"b1\"\ningest = \"{addr}\"\nhttp_url = \"http://{addr}\"\nsince = \"2020-01-01\"\n"),
    )
    .unwrap();
    h.config.cluster_file = Some(cluster);
    let log = h.log("c1");
    let a = lines("a", 0..100);
    append(&log, &a);
    let token = CancellationToken::new();
    let events = Arc::new(tailer::TailerEvents::default());
    let task = tokio::spawn(tailer::run(h.config.clone(), token.clone(), events.clone()));
    let harness = Arc::new(h);
    let h2 = harness.clone();
    let want = a.clone();
    tokio::task::spawn_blocking(move || h2.wait_lines(&want))
        .await
        .unwrap();
    token.cancel();
    let result = tokio::time::timeout(std::time::Duration::from_secs(20), task).await;
    result
        .expect("run stops promptly")
        .unwrap()
        .expect("run ends cleanly");
    // Phase one saved the offsets: nothing is read again after a restart.
    assert_exactly_once(&harness.spool_events(), &a);
    let state = std::fs::read_to_string(harness.state_file()).unwrap();
    assert!(state.contains("\"offset\""), "{state}");
    assert_eq!(events.events_total.load(Ordering::Relaxed), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_fails_promptly_when_the_shipper_cannot_start() {
    let mut h = Harness::new("nice = 0");
    h.config.cluster_file = Some(h.dir.path().join("no-such-cluster.toml"));
    let token = CancellationToken::new();
    let run = tailer::run(
        h.config.clone(),
        token,
        Arc::new(tailer::TailerEvents::default()),
    );
    let result = tokio::time::timeout(std::time::Duration::from_secs(20), run)
        .await
        .expect("run returns without a shutdown");
    let e = result.expect_err("no cluster file is an error").to_string();
    assert!(e.contains("shipper"), "{e}");
}
