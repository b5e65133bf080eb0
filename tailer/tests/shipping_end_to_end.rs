//! The whole tailer (reader and shipper, `tailer::run`) against test receivers: lines
//! written to a log file reach both homes of their crawl, through a home's outage, and
//! the spool empties once every home has everything.

// A test or bench crate: its helpers may unwrap (clippy.toml allows it only in #[test] fns).
#![allow(clippy::unwrap_used)]

mod shipping_support;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use chrono::Utc;
use shipping_support::*;
use tailer::config::TailerConfig;
use tailer::events::TailerEvents;
use tokio_util::sync::CancellationToken;

fn append_lines(path: &Path, from: u64, n: u64) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("log file");
    for i in from..from + n {
        writeln!(f, "test line {i} from a synthetic crawler").expect("append");
    }
    f.sync_all().expect("sync log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_reach_both_homes_through_an_outage_and_the_spool_empties() {
    let w = World::new(3, true).await;
    let logs = w.dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");
    let log = logs.join("app.log");
    append_lines(&log, 0, 100);
    let text = format!(
        r#"
spool_dir = "{spool}"
state_dir = "{state}"
cluster_file = "{cluster}"
bucket_interval_secs = 1
spool_max_age_secs = 1
repair_delay_max_secs = 0
poll_interval_ms = 20
discovery_interval_ms = 50
fsync_interval_ms = 50
nice = 0
host = "test-host"
connect_backoff_min_ms = 20
connect_backoff_max_ms = 200
ping_interval_ms = 200
packet_max_delay_ms = 10
cluster_poll_ms = 50
janitor_interval_ms = 50
[[source]]
path = "{logs}/*.log"
crawl = "crawl-a"
format = "plain"
"#,
        spool = w.spool.display(),
        state = w.state.display(),
        cluster = w.cluster_path.display(),
        logs = logs.display(),
    );
    let config = TailerConfig::parse(&text, Path::new("e2e.toml")).expect("config");
    // Lines without a time take the read time: today, unless the test straddles midnight.
    let order = w.cluster().home_bucks(&w.crawl, Utc::now().date_naive());
    let (homes, stand_ins) = (order.homes().to_vec(), order.stand_ins().to_vec());
    let events = Arc::new(TailerEvents::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(tailer::run(config, shutdown.clone(), events.clone()));

    for h in &homes {
        let r = w.receiver(h);
        wait_for(20, &format!("home {h} has the first lines"), || {
            r.event_ids().len() == 100
        })
        .await;
    }
    let (up, away) = (w.receiver(&homes[0]), w.receiver(&homes[1]));
    away.set_down(true);
    append_lines(&log, 100, 100);
    wait_for(20, "the up home has every line", || {
        up.event_ids().len() == 200
    })
    .await;
    // The bucket holding the new lines is sealed while a home is away: it waits.
    wait_for(20, "a bucket waits for the away home", || {
        counter(&events, |e| &e.buckets_pending) >= 1
    })
    .await;
    away.set_down(false);
    wait_for(20, "the returning home has every line", || {
        away.event_ids().len() == 200
    })
    .await;

    let ids: BTreeSet<_> = up.event_ids().into_iter().collect();
    assert_eq!(ids.len(), 200);
    assert_eq!(away.event_ids().into_iter().collect::<BTreeSet<_>>(), ids);
    assert!(
        w.receiver(&stand_ins[0]).event_ids().is_empty(),
        "a stand-in was used while a home was up"
    );
    wait_for(20, "every bucket delivered and pruned", || {
        counter(&events, |e| &e.buckets_pending) == 0 && counter(&events, |e| &e.spool_buckets) == 0
    })
    .await;
    // Both bursts may fall in one 1 s bucket on a fast run: at least one was pruned, and
    // the spool is empty (checked above).
    assert!(counter(&events, |e| &e.buckets_pruned_total) >= 1);
    assert_clean(&w);
    shutdown.cancel();
    task.await.expect("tailer task").expect("tailer result");
}
