use std::time::Duration;

use buck::BusItem;
use contracts::transport::Message;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_is_told_what_it_missed_while_a_fast_one_misses_nothing() {
    let b = TestBuck::start(|c| c.bus_capacity = 16).await;
    let bus = b.handle().bus();
    let mut slow = bus.subscribe();
    let mut fast = bus.subscribe();
    let total = 200u64;
    let per_packet = 8u64;
    let seen_fast = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let progress = seen_fast.clone();
    let fast_task = tokio::spawn(async move {
        let mut got = Vec::new();
        while (got.len() as u64) < total {
            match fast.recv().await {
                Some(BusItem::Event(p)) => {
                    got.push(p.event.id.offset);
                    progress.store(got.len() as u64, std::sync::atomic::Ordering::SeqCst);
                }
                Some(BusItem::Missed(n)) => panic!("fast subscriber missed {n}"),
                None => break,
            }
        }
        got
    });
    let mut c = b.client().await;
    let t = now_us();
    // Packets of 8 (half the bus): `fast` keeps up with each before the next is sent,
    // while `slow` never reads; ingest never waits for it.
    for p in 0..total / per_packet {
        let events: Vec<_> = (0..per_packet)
            .map(|i| plain_event("bus", p * per_packet + i, t, "e"))
            .collect();
        assert!(matches!(c.live(&events).await, Message::Ack { .. }));
        let want = (p + 1) * per_packet;
        eventually(Duration::from_secs(10), "fast subscriber keeps up", || {
            let seen = seen_fast.clone();
            async move { seen.load(std::sync::atomic::Ordering::SeqCst) >= want }
        })
        .await;
    }
    let got = tokio::time::timeout(Duration::from_secs(30), fast_task)
        .await
        .expect("fast subscriber done")
        .unwrap();
    assert_eq!(
        got,
        (0..total).collect::<Vec<_>>(),
        "fast subscriber saw every event, in order"
    );

    // The slow one never read: it is told it missed all but the last `capacity`.
    let mut missed = 0;
    let mut seen = 0;
    while let Some(item) = slow.try_recv() {
        match item {
            BusItem::Missed(n) => missed += n,
            BusItem::Event(p) => {
                assert!(!p.late);
                seen += 1;
            }
        }
    }
    assert_eq!(missed + seen, total);
    assert_eq!(seen, 16);
    assert_eq!(b.counters().subscriber_missed, missed);
    assert_eq!(b.counters().published, total);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repairs_publish_only_new_rows_marked_late() {
    let b = TestBuck::start(|_| {}).await;
    let mut sub = b.handle().bus().subscribe();
    let mut c = b.client().await;
    let t = now_us();
    let first: Vec<_> = (0..3).map(|i| plain_event("late", i, t, "live")).collect();
    assert!(matches!(c.live(&first).await, Message::Ack { .. }));
    // The bucket re-sends the three and adds two the live path never delivered.
    let bucket: Vec<_> = (0..5).map(|i| plain_event("late", i, t, "live")).collect();
    assert!(matches!(
        c.chunk("late", &bucket).await,
        Message::Ack { .. }
    ));
    let mut items = Vec::new();
    for _ in 0..5 {
        match tokio::time::timeout(Duration::from_secs(10), sub.recv())
            .await
            .expect("published")
        {
            Some(BusItem::Event(p)) => items.push((p.event.id.offset, p.late)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        items,
        vec![(0, false), (1, false), (2, false), (3, true), (4, true)]
    );
    assert!(sub.try_recv().is_none(), "duplicates are not published");
    assert_eq!(b.counters().published_late, 2);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_commit_reaches_a_subscriber_that_reads_only_after_it() {
    // One packet of 10,000 events is one commit, published at once: with the default
    // capacity a subscriber that was busy meanwhile still gets every event.
    let b = TestBuck::start(|_| {}).await;
    let mut sub = b.handle().bus().subscribe();
    let mut c = b.client().await;
    let t = now_us();
    let total = 10_000u64;
    let events: Vec<_> = (0..total).map(|i| plain_event("bus", i, t, "e")).collect();
    assert!(matches!(c.live(&events).await, Message::Ack { .. }));
    let mut got = Vec::new();
    while (got.len() as u64) < total {
        match tokio::time::timeout(Duration::from_secs(10), sub.recv()).await {
            Ok(Some(BusItem::Event(p))) => got.push(p.event.id.offset),
            Ok(Some(BusItem::Missed(n))) => panic!("missed {n} of one commit"),
            Ok(None) | Err(_) => break,
        }
    }
    assert_eq!(got, (0..total).collect::<Vec<_>>());
    b.stop().await;
}
