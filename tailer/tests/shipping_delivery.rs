//! The shipper against test receivers speaking the real protocol: live packets, the
//! repair path, stand-ins, acks, nacks, rejects, reconnects and spool pruning.

// A test or bench crate: its helpers may unwrap (clippy.toml allows it only in #[test] fns).
#![allow(clippy::unwrap_used)]

mod shipping_support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use contracts::EventId;
use contracts::frame_stream::FrameStreamWriter;
use contracts::spool_file::SPOOL_HEADER_LEN;
use shipping_support::*;
use tailer::shipping::acked_ranges::AckedRecord;
use tailer::shipping::delivery::DeliveryRecord;
use tailer::shipping::spool_janitor::SpoolJanitor;

#[tokio::test]
async fn live_packets_reach_both_homes_and_only_the_homes() {
    let w = World::new(3, true).await;
    let (homes, stand_ins) = w.routing();
    assert_eq!((homes.len(), stand_ins.len()), (2, 1));
    let run = w.start();
    let bucket = w.write_bucket(w.bucket_start(0), &[]).0;
    let first = w.events(0, 30);
    let second = w.events(30, 20);
    run.live(&w, &bucket, &first).await;
    run.live(&w, &bucket, &second).await;
    let want: BTreeSet<EventId> = ids(&first).union(&ids(&second)).copied().collect();
    for h in &homes {
        let r = w.receiver(h);
        wait_for(10, &format!("home {h} has every event"), || {
            r.event_ids().len() == want.len()
        })
        .await;
        assert_eq!(r.event_ids().into_iter().collect::<BTreeSet<_>>(), want);
    }
    // Sealing a bucket every home acked live needs no repair send and frees it.
    let path = w.write_bucket(bucket.start, &[]).1;
    run.seal(&bucket, &path).await;
    wait_for(10, "bucket delivered", || {
        run.get(|e| &e.buckets_delivered_total) == 1
    })
    .await;
    wait_for(10, "delivery record written", || {
        DeliveryRecord::load(&path)
            .ok()
            .flatten()
            .is_some_and(|r| r.complete())
    })
    .await;
    let record = DeliveryRecord::load(&path)
        .expect("record")
        .expect("record exists");
    assert_eq!(record.homes, homes.iter().cloned().collect());
    for h in &homes {
        let s = w.receiver(h).stats();
        assert_eq!(s.chunk_messages, 0, "home {h} got a needless repair send");
        assert!(w.receiver(h).copies().values().all(|&n| n == 1));
    }
    let outsider = w.receiver(&stand_ins[0]);
    assert!(
        outsider.event_ids().is_empty(),
        "a non-home received events"
    );
    assert_eq!(outsider.stats().live_messages, 0);
    assert_eq!(run.get(|e| &e.frames_acked_total), 2 * want.len() as u64);
    assert_eq!(run.get(|e| &e.stand_in_packets_total), 0);
    assert_clean(&w);
    run.stop().await;
}

#[tokio::test]
async fn a_home_down_for_long_gets_the_sealed_bucket_when_back() {
    let mut w = World::new(3, true).await;
    // A tiny in-flight buffer: most live copies for the down home are dropped, so the
    // bucket must travel by the repair path.
    w.extra_config = "inflight_max_bytes = 2000".into();
    let (homes, _) = w.routing();
    let (up, down) = (w.receiver(&homes[0]), w.receiver(&homes[1]));
    down.set_down(true);
    let run = w.start();
    wait_for(10, "the down home's connection failed", || {
        run.get(|e| &e.connect_failures_total) >= 1
    })
    .await;
    let bucket = w.write_bucket(w.bucket_start(1), &[]).0;
    let mut all = Vec::new();
    for batch in 0..10 {
        let evs = w.events(batch * 20, 20);
        run.live(&w, &bucket, &evs).await;
        all.extend(evs);
        // One batch at a time, acked before the next, so the up home's own in-flight
        // buffer never fills (only the up home acks anything).
        wait_for(10, "the up home acked the batch", || {
            up.event_ids().len() == all.len()
                && run.get(|e| &e.frames_acked_total) == all.len() as u64
        })
        .await;
    }
    let want = ids(&all);
    let path = w.write_bucket(bucket.start, &[]).1;
    run.seal(&bucket, &path).await;
    wait_for(10, "the up home is recorded", || {
        DeliveryRecord::load(&path)
            .ok()
            .flatten()
            .is_some_and(|r| r.delivered.contains(&homes[0]) && !r.complete())
    })
    .await;
    assert!(
        run.get(|e| &e.live_dropped_total) > 0,
        "the in-flight limit did not drop anything"
    );
    assert!(down.event_ids().is_empty());
    assert_eq!(run.get(|e| &e.buckets_delivered_total), 0);
    assert!(path.exists());

    down.set_down(false);
    wait_for(15, "the returning home has every event", || {
        down.event_ids().len() == want.len()
    })
    .await;
    assert_eq!(down.event_ids().into_iter().collect::<BTreeSet<_>>(), want);
    assert!(down.stats().chunk_frames >= want.len() as u64 - down.stats().live_frames);
    assert!(down.stats().chunk_messages >= 1);
    wait_for(10, "bucket delivered", || {
        run.get(|e| &e.buckets_delivered_total) == 1
    })
    .await;
    wait_for(10, "record complete", || {
        DeliveryRecord::load(&path)
            .ok()
            .flatten()
            .is_some_and(|r| r.complete())
    })
    .await;
    // The up home took it all live: no repair send to it.
    assert_eq!(up.stats().chunk_messages, 0);
    assert!(up.copies().values().all(|&n| n == 1));
    assert_clean(&w);
    run.stop().await;
}

#[tokio::test]
async fn while_every_home_is_down_a_stand_in_takes_live_packets() {
    let w = World::new(3, true).await;
    let (homes, stand_ins) = w.routing();
    for h in &homes {
        w.receiver(h).set_down(true);
    }
    let stand_in = w.receiver(&stand_ins[0]);
    let run = w.start();
    wait_for(10, "both homes failed and the stand-in is up", || {
        run.get(|e| &e.connect_failures_total) >= 2 && run.get(|e| &e.connections_up) == 1
    })
    .await;
    let bucket = w.write_bucket(w.bucket_start(2), &[]).0;
    let evs = w.events(0, 40);
    run.live(&w, &bucket, &evs).await;
    wait_for(10, "the stand-in has every event", || {
        stand_in.event_ids().len() == evs.len()
    })
    .await;
    assert!(run.get(|e| &e.stand_in_packets_total) >= 1);
    // The homes still get the bucket, by the repair path, once back.
    let path = w.write_bucket(bucket.start, &[]).1;
    run.seal(&bucket, &path).await;
    for h in &homes {
        w.receiver(h).set_down(false);
    }
    for h in &homes {
        let r = w.receiver(h);
        wait_for(15, &format!("home {h} has the bucket"), || {
            r.event_ids().len() == evs.len()
        })
        .await;
        assert_eq!(
            r.event_ids().into_iter().collect::<BTreeSet<_>>(),
            ids(&evs)
        );
    }
    wait_for(10, "bucket delivered", || {
        run.get(|e| &e.buckets_delivered_total) == 1
    })
    .await;
    // A stand-in's acks never count as delivery.
    wait_for(10, "record complete", || {
        DeliveryRecord::load(&path)
            .ok()
            .flatten()
            .is_some_and(|r| r.complete())
    })
    .await;
    let record = DeliveryRecord::load(&path)
        .expect("record")
        .expect("exists");
    assert!(!record.homes.contains(&stand_ins[0]));
    assert_clean(&w);
    run.stop().await;
}

#[tokio::test]
async fn a_key_not_on_the_allow_list_is_refused_counted_and_backed_off() {
    let mut w = World::new(2, false).await;
    let (min_ms, max_ms) = (40u64, 320u64);
    w.extra_config =
        format!("connect_backoff_min_ms = {min_ms}\nconnect_backoff_max_ms = {max_ms}");
    let started = Instant::now();
    let run = w.start();
    wait_for(10, "refusals counted", || {
        run.get(|e| &e.hello_rejected_total) >= 4
    })
    .await;
    let window = Duration::from_millis(1500);
    tokio::time::sleep(window.saturating_sub(started.elapsed())).await;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let refused = w.receivers[0].stats().refused;
    assert_eq!(w.receivers[0].stats().connections, 0);
    assert_eq!(run.get(|e| &e.connections_up), 0);
    assert!(run.get(|e| &e.connect_failures_total) >= run.get(|e| &e.hello_rejected_total));
    // Waits are at least half of a ceiling that doubles from min to max: the attempts
    // that fit in the elapsed time, plus one, bound what a backing-off tailer makes.
    let (mut ceiling, mut spent, mut bound) = (min_ms, 0u64, 1u64);
    while spent <= elapsed_ms {
        spent += ceiling / 2;
        ceiling = (ceiling * 2).min(max_ms);
        bound += 1;
    }
    assert!(
        refused >= 2 && refused <= bound,
        "{refused} attempts in {elapsed_ms} ms (at most {bound} with backoff)"
    );
    assert_clean(&w);
    run.stop().await;
}

#[tokio::test]
async fn a_nacked_packet_is_sent_again_after_the_delay() {
    let w = World::new(2, true).await;
    for r in &w.receivers {
        r.nack_next(2, 30);
    }
    let run = w.start();
    let bucket = w.write_bucket(w.bucket_start(3), &[]).0;
    let evs = w.events(0, 25);
    run.live(&w, &bucket, &evs).await;
    for r in &w.receivers {
        wait_for(10, "every event stored despite the nacks", || {
            r.event_ids().len() == evs.len()
        })
        .await;
        assert_eq!(r.stats().nacks, 2);
        assert!(r.copies().values().all(|&n| n == 1));
    }
    wait_for(10, "every frame acked", || {
        run.get(|e| &e.frames_acked_total) == 2 * evs.len() as u64
    })
    .await;
    assert_eq!(run.get(|e| &e.nacks_total), 4);
    assert_clean(&w);
    run.stop().await;
}

#[tokio::test]
async fn a_rejected_frame_is_counted_and_never_sent_again() {
    let w = World::new(2, true).await;
    let evs = w.events(0, 12);
    let bad = evs[5].id;
    for r in &w.receivers {
        r.reject_event(bad);
    }
    let run = w.start();
    let bucket = w.write_bucket(w.bucket_start(4), &[]).0;
    run.live(&w, &bucket, &evs).await;
    let path = w.write_bucket(bucket.start, &[]).1;
    run.seal(&bucket, &path).await;
    wait_for(10, "bucket delivered", || {
        run.get(|e| &e.buckets_delivered_total) == 1
    })
    .await;
    let mut want = ids(&evs);
    want.remove(&bad);
    for r in &w.receivers {
        assert_eq!(r.event_ids().into_iter().collect::<BTreeSet<_>>(), want);
        let s = r.stats();
        assert_eq!(s.rejected_frames, 1);
        assert_eq!(s.rejected_resent, 0);
        assert_eq!(
            s.chunk_messages, 0,
            "a rejected frame must not trigger a repair send"
        );
    }
    assert_eq!(run.get(|e| &e.frames_rejected_total), 2);
    assert_eq!(run.get(|e| &e.frames_acked_total), 2 * want.len() as u64);
    assert_clean(&w);
    run.stop().await;
}

#[tokio::test]
async fn a_killed_connection_is_reopened_and_unacked_packets_sent_again() {
    let w = World::new(2, true).await;
    for r in &w.receivers {
        // The buck "crashes" before committing: it neither stores nor acks.
        r.set_black_hole(true);
    }
    let run = w.start();
    let bucket = w.write_bucket(w.bucket_start(5), &[]).0;
    let evs = w.events(0, 60);
    run.live(&w, &bucket, &evs).await;
    for r in &w.receivers {
        wait_for(10, "packets swallowed", || r.stats().swallowed >= 1).await;
        assert!(r.event_ids().is_empty());
    }
    for r in &w.receivers {
        r.set_black_hole(false);
        r.drop_connections();
    }
    for r in &w.receivers {
        wait_for(10, "every event stored after the reconnect", || {
            r.event_ids().len() == evs.len()
        })
        .await;
        assert_eq!(
            r.event_ids().into_iter().collect::<BTreeSet<_>>(),
            ids(&evs)
        );
        assert!(r.stats().connections >= 2, "no reconnect happened");
    }
    assert!(run.get(|e| &e.connections_lost_total) >= 2);
    wait_for(10, "every frame acked", || {
        run.get(|e| &e.frames_acked_total) == 2 * evs.len() as u64
    })
    .await;
    assert_clean(&w);
    run.stop().await;
}

#[tokio::test]
async fn a_delivered_bucket_is_pruned_by_age() {
    let mut w = World::new(2, true).await;
    w.extra_config = "spool_max_age_secs = 60".into();
    // A leftover from an earlier run, months old: taken up at start, delivered, then old
    // enough to go. A bucket that is not delivered yet stays, old or not.
    let evs = w.events(0, 10);
    let (_, old_path) = w.write_bucket(w.old_bucket_start(0), &evs);
    let run = w.start();
    let open = w.write_bucket(w.bucket_start(0), &[]).0;
    run.live(&w, &open, &w.events(100, 5)).await;
    wait_for(10, "the delivered bucket is pruned", || {
        !old_path.exists() && run.get(|e| &e.buckets_pruned_total) == 1
    })
    .await;
    assert!(!DeliveryRecord::path_of(&old_path).exists());
    for r in &w.receivers {
        assert!(ids(&evs).is_subset(&r.event_ids().into_iter().collect()));
    }
    assert_eq!(run.get(|e| &e.buckets_pruned_total), 1);
    assert_eq!(run.get(|e| &e.buckets_delivered_total), 1);
    // Its emptied directories went with it; the open bucket's stayed.
    assert!(!old_path.parent().expect("hour dir").exists());
    assert!(w.spool.join(w.crawl.as_str()).exists());
    let open_path =
        contracts::spool_file::spool_bucket_path(&w.spool, &w.crawl, open.start, INTERVAL_SECS);
    assert!(open_path.exists());
    assert_clean(&w);
    run.stop().await;
}

/// r11.3: a first deploy before the cluster file gives a crawl's older days a home. The
/// bucket's frames of a day no buck takes yet must stay in the spool, even after every
/// home acked the frames it does take, until a cluster change routes them.
#[tokio::test]
async fn frames_with_no_home_yet_stay_in_the_spool_until_a_home_exists() {
    let mut w = World::new(2, true).await;
    w.extra_config = "spool_max_age_secs = 60".into();
    // The bucks take the crawl from 2026-01-02 on; the leftover bucket holds lines of
    // the day before (no home) and of that day (homes).
    w.write_cluster_since("2026-01-02");
    let day = |d: u32, i: u64| {
        NaiveDate::from_ymd_opt(2026, 1, d)
            .expect("date")
            .and_hms_opt(23, 59, 0)
            .expect("time")
            .and_utc()
            .timestamp_micros()
            + i as i64
    };
    let mut evs = w.events(0, 20);
    for (i, e) in evs.iter_mut().enumerate() {
        e.time_us = day(if i < 10 { 1 } else { 2 }, i as u64);
    }
    let (unrouted, routed) = evs.split_at(10);
    let (_, path) = w.write_bucket(w.old_bucket_start(0), &evs);
    let run = w.start();
    let (homes, _) = w.routing();
    wait_for(
        10,
        "both homes took the bucket's frames they are routed",
        || run.get(|e| &e.repair_buckets_total) == 2,
    )
    .await;
    for h in &homes {
        assert_eq!(
            w.receiver(h)
                .event_ids()
                .into_iter()
                .collect::<BTreeSet<_>>(),
            ids(routed)
        );
    }
    // A janitor pass now, as old as it gets: the frames without a home keep the bucket.
    let janitor = SpoolJanitor {
        spool: w.spool.clone(),
        max_bytes: 0,
        max_age_secs: 60,
        interval_secs: INTERVAL_SECS,
        headroom: disk_space::Headroom::NONE,
    };
    let report = janitor.pass(&run.usage, &run.events, Utc::now());
    assert_eq!(report.pruned, 0);
    assert!(
        path.exists(),
        "a bucket with frames no buck took yet was pruned"
    );
    assert_eq!(run.get(|e| &e.buckets_delivered_total), 0);

    // The operator lists the bucks from earlier on: the rest is delivered, then pruned.
    w.write_cluster_since("2020-01-01");
    let (homes, _) = w.routing();
    wait_for(10, "every home has every line", || {
        homes.iter().all(|h| {
            w.receiver(h)
                .event_ids()
                .into_iter()
                .collect::<BTreeSet<_>>()
                == ids(&evs)
        })
    })
    .await;
    assert!(ids(unrouted).iter().all(|id| !ids(routed).contains(id)));
    wait_for(10, "the bucket is delivered and pruned", || !path.exists()).await;
    assert_eq!(run.get(|e| &e.buckets_delivered_total), 1);
    assert_clean(&w);
    run.stop().await;
}

#[tokio::test]
async fn a_full_spool_prunes_delivered_buckets_never_undelivered_ones() {
    let mut w = World::new(3, true).await;
    // The spool is always "full".
    w.extra_config = "spool_max_bytes = 1".into();
    let (homes, _) = w.routing();
    let run = w.start();
    let done = w.write_bucket(w.bucket_start(0), &[]).0;
    run.live(&w, &done, &w.events(0, 10)).await;
    let done_path = w.write_bucket(done.start, &[]).1;
    run.seal(&done, &done_path).await;
    wait_for(10, "the delivered bucket is pruned by size", || {
        !done_path.exists() && run.get(|e| &e.buckets_pruned_total) == 1
    })
    .await;

    // A home goes down: the next bucket cannot be delivered and must stay, however full.
    w.receiver(&homes[1]).set_down(true);
    let kept = w.write_bucket(w.bucket_start(1), &[]).0;
    run.live(&w, &kept, &w.events(100, 10)).await;
    let kept_path = w.write_bucket(kept.start, &[]).1;
    run.seal(&kept, &kept_path).await;
    let size = std::fs::metadata(&kept_path).expect("kept bucket").len();
    wait_for(10, "usage counts the kept bucket", || {
        run.usage.bytes() == size && run.get(|e| &e.spool_buckets) == 1
    })
    .await;
    wait_for(10, "partial delivery recorded", || {
        DeliveryRecord::load(&kept_path).ok().flatten().is_some()
    })
    .await;
    // Several janitor passes later, it is still there.
    let passes = run.get(|e| &e.janitor_passes_total);
    wait_for(10, "three more janitor passes", || {
        run.get(|e| &e.janitor_passes_total) >= passes + 3
    })
    .await;
    assert!(kept_path.exists(), "an undelivered bucket was pruned");
    assert_eq!(run.get(|e| &e.buckets_pruned_total), 1);
    assert_eq!(
        run.usage.bytes(),
        size,
        "a full spool must show as full so the reader pauses"
    );
    assert_eq!(run.get(|e| &e.spool_bytes), size);
    assert_clean(&w);
    run.stop().await;
}

#[tokio::test]
async fn a_restart_resends_undelivered_leftovers_and_not_delivered_ones() {
    let mut w = World::new(2, true).await;
    // Keep delivered buckets: the test checks they are not sent again.
    w.extra_config = "spool_max_age_secs = 1000000000".into();
    let first_evs = w.events(0, 15);
    let (_, first_path) = w.write_bucket(w.old_bucket_start(0), &first_evs);
    // A leftover bucket from an earlier run, never announced: found by the start-up scan.
    let run = w.start();
    for r in &w.receivers {
        wait_for(10, "leftover bucket repaired", || {
            r.event_ids().len() == first_evs.len()
        })
        .await;
    }
    wait_for(10, "leftover delivered", || {
        DeliveryRecord::load(&first_path)
            .ok()
            .flatten()
            .is_some_and(|r| r.complete())
    })
    .await;
    run.stop().await;
    let chunks_before: Vec<u64> = w
        .receivers
        .iter()
        .map(|r| r.stats().chunk_messages)
        .collect();

    // Restart with a second leftover: only it travels.
    let second_evs = w.events(100, 15);
    w.write_bucket(w.old_bucket_start(1), &second_evs);
    let run = w.start();
    let all = ids(&first_evs)
        .union(&ids(&second_evs))
        .copied()
        .collect::<BTreeSet<_>>();
    for (r, before) in w.receivers.iter().zip(chunks_before) {
        wait_for(10, "second leftover repaired", || {
            r.event_ids().len() == all.len()
        })
        .await;
        assert_eq!(
            r.stats().chunk_messages,
            before + 1,
            "a delivered bucket was sent again"
        );
        assert!(r.copies().values().all(|&n| n == 1));
    }
    assert_clean(&w);
    run.stop().await;
}

#[tokio::test]
async fn after_a_kill_only_the_frames_no_home_acked_are_sent_again() {
    let mut w = World::new(2, true).await;
    w.extra_config = "spool_max_age_secs = 1000000000\nacked_save_ms = 20".into();
    let (homes, _) = w.routing();
    let run = w.start();
    let (bucket, path) = w.write_bucket(w.bucket_start(0), &[]);
    let acked = w.events(0, 40);
    run.live(&w, &bucket, &acked).await;
    for h in &homes {
        let r = w.receiver(h);
        wait_for(10, &format!("home {h} has the live frames"), || {
            r.event_ids().len() == acked.len()
        })
        .await;
    }
    let end = std::fs::metadata(&path).expect("bucket").len();
    wait_for(10, "the acks saved beside the bucket", || {
        AckedRecord::load(&path).ok().flatten().is_some_and(|r| {
            homes
                .iter()
                .all(|h| r.covers(h, SPOOL_HEADER_LEN as u64, end))
        })
    })
    .await;
    run.kill();

    // Frames spooled but never sent live (the reader died before handing them over).
    let unsent = w.events(40, 20);
    w.write_bucket(bucket.start, &unsent);
    // The next run reopens the bucket (its interval is not over), appends to it and sends
    // that live: its own acks must add to the earlier run's record, not replace it.
    let run = w.start();
    let later = w.events(60, 10);
    run.live(&w, &bucket, &later).await;
    let end = std::fs::metadata(&path).expect("bucket").len();
    let later_at = end - frames(&later).len() as u64;
    wait_for(10, "the second run's acks saved", || {
        AckedRecord::load(&path)
            .ok()
            .flatten()
            .is_some_and(|r| homes.iter().all(|h| r.covers(h, later_at, end)))
    })
    .await;
    run.seal(&bucket, &path).await;
    wait_for(10, "bucket delivered", || {
        run.get(|e| &e.buckets_delivered_total) == 1
    })
    .await;
    let want = ids(&acked)
        .union(&ids(&unsent))
        .chain(ids(&later).iter())
        .copied()
        .collect::<BTreeSet<_>>();
    for h in &homes {
        let r = w.receiver(h);
        assert_eq!(r.event_ids().into_iter().collect::<BTreeSet<_>>(), want);
        assert!(
            r.copies().values().all(|&n| n == 1),
            "home {h} got an acked frame again"
        );
        assert_eq!(r.stats().chunk_frames, unsent.len() as u64, "home {h}");
    }
    assert_clean(&w);
    run.stop().await;
}

#[tokio::test]
async fn a_silent_buck_is_dropped_after_the_idle_timeout_and_pings_keep_others_open() {
    let mut w = World::new(2, true).await;
    w.extra_config = "ping_interval_ms = 40\nidle_timeout_ms = 300".into();
    let run = w.start();
    wait_for(10, "both connections up", || {
        run.get(|e| &e.connections_up) == 2
    })
    .await;
    w.receivers[0].set_mute(true);
    wait_for(10, "the silent buck's connection dropped", || {
        run.get(|e| &e.connections_lost_total) >= 1
    })
    .await;
    w.receivers[0].set_mute(false);
    wait_for(10, "reconnected to the buck", || {
        w.receivers[0].stats().connections >= 2 && run.get(|e| &e.connections_up) == 2
    })
    .await;
    // The other buck answered every ping: its connection, idle all along, stayed open.
    assert_eq!(w.receivers[1].stats().connections, 1);
    assert_eq!(run.get(|e| &e.connections_lost_total), 1);
    assert_clean(&w);
    run.stop().await;
}

#[tokio::test]
async fn a_changed_cluster_file_is_applied_and_the_bucket_re_offered() {
    let w = World::new(2, true).await;
    let (homes, _) = w.routing();
    // The second home is listed at an address where nothing listens.
    let nowhere = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").to_string()
    };
    let mut addrs: Vec<String> = w.receivers.iter().map(|r| r.addr().to_string()).collect();
    let wrong: usize = homes[1].trim_start_matches('b').parse().expect("bN");
    addrs[wrong] = nowhere;
    w.write_cluster_with(&addrs);
    let run = w.start();
    let bucket = w.write_bucket(w.bucket_start(0), &[]).0;
    let evs = w.events(0, 20);
    run.live(&w, &bucket, &evs).await;
    let path = w.write_bucket(bucket.start, &[]).1;
    run.seal(&bucket, &path).await;
    let first = w.receiver(&homes[0]);
    wait_for(10, "the reachable home has every event", || {
        first.event_ids().len() == evs.len()
    })
    .await;
    wait_for(10, "the unreachable home failed", || {
        run.get(|e| &e.connect_failures_total) >= 1
    })
    .await;
    assert_eq!(run.get(|e| &e.buckets_delivered_total), 0);

    // The operator fixes the cluster file: the tailer re-reads it and delivers.
    w.write_cluster();
    let second = w.receiver(&homes[1]);
    wait_for(10, "the fixed home has every event", || {
        second.event_ids().len() == evs.len()
    })
    .await;
    assert_eq!(
        second.event_ids().into_iter().collect::<BTreeSet<_>>(),
        ids(&evs)
    );
    wait_for(10, "bucket delivered", || {
        run.get(|e| &e.buckets_delivered_total) == 1
    })
    .await;
    assert_clean(&w);
    run.stop().await;
}

#[tokio::test]
async fn plain_messages_only_when_both_sides_turn_encryption_off() {
    // A tailer with encryption off is refused by a buck that seals...
    let mut sealed = World::with_encryption(2, true, true).await;
    sealed.extra_config = "encryption = false".into();
    let run = sealed.start();
    wait_for(10, "the plain tailer is refused", || {
        run.get(|e| &e.hello_rejected_total) >= 2
    })
    .await;
    assert!(sealed.receivers.iter().all(|r| r.stats().connections == 0));
    run.stop().await;

    // ...and delivers to bucks that also run plain.
    let mut plain = World::with_encryption(2, true, false).await;
    plain.extra_config = "encryption = false".into();
    let run = plain.start();
    let bucket = plain.write_bucket(plain.bucket_start(0), &[]).0;
    let evs = plain.events(0, 10);
    run.live(&plain, &bucket, &evs).await;
    for r in &plain.receivers {
        wait_for(10, "every event stored", || {
            r.event_ids().len() == evs.len()
        })
        .await;
    }
    assert_eq!(run.get(|e| &e.hello_rejected_total), 0);
    assert_clean(&plain);
    run.stop().await;
}

#[tokio::test]
async fn a_buck_without_a_public_key_is_a_clear_start_up_error() {
    let w = World::new(1, true).await;
    let text = std::fs::read_to_string(&w.cluster_path).expect("cluster file");
    let without_key: String = text
        .lines()
        .filter(|l| !l.starts_with("public_key"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&w.cluster_path, without_key).expect("write cluster file");
    let mut run = w.start();
    let handle = run.handle.take().expect("handle");
    let err = handle
        .await
        .expect("task")
        .expect_err("must refuse to start");
    let msg = err.to_string();
    assert!(
        msg.contains("\"b0\"") && msg.contains("public_key") && msg.contains("encryption = false"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_large_bucket_travels_in_ordered_chunks_of_at_most_one_mib() {
    let w = World::new(2, true).await;
    // About 3.6 MB of frames: several chunks per home.
    let evs: Vec<_> = w
        .events(0, 60)
        .into_iter()
        .map(|mut e| {
            e.raw = vec![b'y'; 60_000];
            e.original_len = e.raw.len() as u64;
            e
        })
        .collect();
    let bytes = frames(&evs).len();
    let min_chunks = bytes.div_ceil(contracts::transport::MAX_CHUNK_BYTES) as u64;
    w.write_bucket(w.old_bucket_start(0), &evs);
    let run = w.start();
    for r in &w.receivers {
        wait_for(20, "the large bucket arrived", || {
            r.event_ids().len() == evs.len()
        })
        .await;
        let s = r.stats();
        assert!(
            s.chunk_messages >= min_chunks,
            "{} chunks for {bytes} bytes",
            s.chunk_messages
        );
        assert_eq!(s.chunk_frames, evs.len() as u64);
        assert_eq!(s.buckets_completed, 1);
    }
    wait_for(10, "bucket delivered", || {
        run.get(|e| &e.buckets_delivered_total) == 1
    })
    .await;
    assert!(run.get(|e| &e.repair_chunks_sent_total) >= 2 * min_chunks);
    assert_clean(&w);
    run.stop().await;
}

#[tokio::test]
async fn a_rejected_frame_is_left_out_of_a_later_repair_send() {
    let mut w = World::new(2, true).await;
    // Small enough that the second batch's live copy is dropped: the bucket must be repaired.
    w.extra_config = "inflight_max_bytes = 1000".into();
    let first = w.events(0, 5);
    let bad = first[2].id;
    for r in &w.receivers {
        r.reject_event(bad);
    }
    let run = w.start();
    let bucket = w.write_bucket(w.bucket_start(0), &[]).0;
    run.live(&w, &bucket, &first).await;
    wait_for(10, "both homes refused the bad frame", || {
        run.get(|e| &e.frames_rejected_total) == 2
    })
    .await;
    let away = &w.receivers[0];
    away.set_down(true);
    let second = w.events(100, 30);
    run.live(&w, &bucket, &second).await;
    let path = w.write_bucket(bucket.start, &[]).1;
    run.seal(&bucket, &path).await;
    wait_for(10, "live copies dropped", || {
        run.get(|e| &e.live_dropped_total) > 0
    })
    .await;
    away.set_down(false);
    wait_for(15, "bucket delivered", || {
        run.get(|e| &e.buckets_delivered_total) == 1
    })
    .await;
    let mut want = ids(&first);
    want.extend(ids(&second));
    want.remove(&bad);
    for r in &w.receivers {
        assert_eq!(r.event_ids().into_iter().collect::<BTreeSet<_>>(), want);
        let s = r.stats();
        assert!(s.chunk_messages >= 1, "no repair send happened");
        assert_eq!((s.rejected_frames, s.rejected_resent), (1, 0));
    }
    assert_eq!(run.get(|e| &e.frames_rejected_total), 2);
    assert_clean(&w);
    run.stop().await;
}

#[tokio::test]
async fn live_frames_are_cut_into_packets_of_at_most_packet_max_bytes() {
    let mut w = World::new(2, true).await;
    // Packets close only by size (and at the seal), so their number is known.
    w.extra_config = "packet_max_bytes = 300\npacket_max_delay_ms = 600000".into();
    let run = w.start();
    let (bucket, path) = w.write_bucket(w.bucket_start(0), &[]);
    // One frame larger than a packet travels alone.
    let mut evs = w.events(0, 50);
    evs[17].raw = vec![b'z'; 700];
    evs[17].original_len = 700;
    run.live(&w, &bucket, &evs[..30]).await;
    run.live(&w, &bucket, &evs[30..]).await;
    run.seal(&bucket, &path).await;
    // The rule: an event that would take a non-empty packet past the limit starts the
    // next one; a packet that reaches the limit is sent. Each packet is a stream of its
    // own: it starts with a context frame.
    let mut packets = 0u64;
    let mut packet = Vec::new();
    let mut writer = FrameStreamWriter::new();
    for e in &evs {
        let before = packet.len();
        assert!(writer.push(&mut packet, &e.view()));
        if before > 0 && packet.len() > 300 {
            packets += 1;
            packet.clear();
            writer = FrameStreamWriter::new();
            assert!(writer.push(&mut packet, &e.view()));
        }
        if packet.len() >= 300 {
            packets += 1;
            packet.clear();
            writer = FrameStreamWriter::new();
        }
    }
    packets += u64::from(!packet.is_empty());
    for r in &w.receivers {
        wait_for(10, "every frame arrived", || {
            r.event_ids().len() == evs.len()
        })
        .await;
        let s = r.stats();
        assert_eq!(
            (s.live_messages, s.live_frames),
            (packets, evs.len() as u64)
        );
        assert!(r.copies().values().all(|&n| n == 1));
    }
    assert_clean(&w);
    run.stop().await;
}
