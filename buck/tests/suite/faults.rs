use contracts::transport::Message;

use crate::common::*;

fn metric(b: &TestBuck, name: &str) -> u64 {
    let mut text = String::new();
    b.handle().events().render_prometheus(&mut text);
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

fn ack(n: u64) -> Message {
    Message::Ack {
        seq: n,
        rejected: vec![],
    }
}

/// r16: an operator removes a segment file (and its WAL) under the running buck. SQLite
/// would go on writing to the unlinked file and every new row would vanish with it; the
/// buck notices, says so, counts it and stores new events in a new file that SQL reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_deleted_under_the_running_buck_gets_a_new_file_and_is_counted() {
    let b = TestBuck::start(|_| {}).await;
    let mut c = b.client().await;
    let t = now_us();
    let first: Vec<_> = (0..50)
        .map(|i| plain_event("crawl-a", i * 100, t, &format!("line {i}")))
        .collect();
    assert_eq!(c.live(&first).await, ack(1));
    let day = chrono::DateTime::from_timestamp_micros(t)
        .unwrap()
        .date_naive();
    let path =
        contracts::segment_path::segment_path(&b.config.segments_dir(), &first[0].crawl, day, 0);
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    let next: Vec<_> = (50..80)
        .map(|i| plain_event("crawl-a", i * 100, t, &format!("line {i}")))
        .collect();
    assert_eq!(c.live(&next).await, ack(2));
    assert!(path.exists(), "no new segment file was started");
    let rows = b.query("crawl-a", "SELECT count(*) AS n FROM events").await;
    assert_eq!(
        rows[0]["n"], 30,
        "the events after the deletion are not readable"
    );
    assert_eq!(metric(&b, "sluice_buck_segments_vanished_total"), 1);
    b.stop().await;
}

/// r16: a segment file that SQLite finds corrupt when the writer opens it is moved to
/// `<data_dir>/quarantine/<crawl>/` and a fresh file takes the events: the crawl keeps
/// ingesting instead of nacking forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_segment_is_quarantined_and_a_fresh_one_takes_the_events() {
    let b = TestBuck::start(|_| {}).await;
    let t = now_us();
    let events: Vec<_> = (0..20)
        .map(|i| plain_event("crawl-b", i * 100, t, &format!("line {i}")))
        .collect();
    let day = chrono::DateTime::from_timestamp_micros(t)
        .unwrap()
        .date_naive();
    let path =
        contracts::segment_path::segment_path(&b.config.segments_dir(), &events[0].crawl, day, 0);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&path, &garbage).unwrap();
    let mut c = b.client().await;
    assert_eq!(c.live(&events).await, ack(1));
    let rows = b.query("crawl-b", "SELECT count(*) AS n FROM events").await;
    assert_eq!(rows[0]["n"], 20);
    let quarantine = b.config.data_dir.join("quarantine").join("crawl-b");
    let kept: Vec<_> = std::fs::read_dir(&quarantine)
        .expect("quarantine directory")
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(std::fs::read(&kept[0]).unwrap(), garbage);
    assert_eq!(metric(&b, "sluice_buck_segments_quarantined_total"), 1);
    b.stop().await;
}
