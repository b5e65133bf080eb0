//! Following many files with few descriptors (idle files closed and reopened on change,
//! rotated while closed), multi-line records, sealing and the live hand-off.

// A test or bench crate: its helpers may unwrap (clippy.toml allows it only in #[test] fns).
#![allow(clippy::unwrap_used)]

mod reading_support;

use std::sync::atomic::Ordering;

use contracts::EventFlags;
use reading_support::*;

#[test]
fn idle_files_are_closed_and_reopened_and_rotation_while_closed_is_found() {
    // idle_close_secs = 0: every file is closed as soon as its offsets are saved.
    let mut h = Harness::new("max_open_files = 2\nidle_close_secs = 0");
    let logs: Vec<_> = (0..5).map(|i| h.log(&format!("c{i}"))).collect();
    let mut want = Vec::new();
    for (i, log) in logs.iter().enumerate() {
        let l = lines(&format!("r0 f{i}"), 0..20);
        append(log, &l);
        want.extend(l);
    }
    h.start();
    let max_open = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (events, max) = (h.events.clone(), max_open.clone());
    let sampler = std::thread::spawn(move || {
        for _ in 0..400 {
            max.fetch_max(events.files_open.load(Ordering::Relaxed), Ordering::Relaxed);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    });
    h.wait_lines(&want);
    h.wait_until("every file to be closed", || {
        h.events.files_open.load(Ordering::Relaxed) == 0
    });
    // Appends to closed files are noticed.
    for (i, log) in logs.iter().enumerate() {
        let l = lines(&format!("r1 f{i}"), 0..20);
        append(log, &l);
        want.extend(l);
    }
    h.wait_lines(&want);
    h.wait_until("every file to be closed", || {
        h.events.files_open.load(Ordering::Relaxed) == 0
    });
    // Rotations while closed: rename+create on one, rename+gzip on another.
    let tail0 = lines("r2 f0 before rename", 0..10);
    append(&logs[0], &tail0);
    std::fs::rename(&logs[0], logs[0].with_file_name("app.log.1")).unwrap();
    let tail1 = lines("r2 f1 before gzip", 0..10);
    append(&logs[1], &tail1);
    let one = logs[1].with_file_name("app.log.1");
    std::fs::rename(&logs[1], &one).unwrap();
    gzip(&one, &logs[1].with_file_name("app.log.1.gz"));
    std::fs::remove_file(&one).unwrap();
    let new0 = lines("r2 f0 new", 0..10);
    append(&logs[0], &new0);
    want.extend([tail0, tail1, new0].concat());
    h.wait_lines(&want);
    sampler.join().unwrap();
    h.stop();
    assert_exactly_once(&h.spool_events(), &want);
    assert!(
        max_open.load(Ordering::Relaxed) <= 2,
        "at most max_open_files open, saw {}",
        max_open.load(Ordering::Relaxed)
    );
    assert_eq!(h.events.files_lost_total.load(Ordering::Relaxed), 0);
}

#[test]
fn stack_traces_are_joined_and_flushed_when_the_file_goes_quiet() {
    let mut h = Harness::with_source(
        "multiline_flush_ms = 100",
        "{crawl}/app.log",
        "format = \"plain\"\n",
    );
    let log = h.log("c1");
    let text = b"first\nERROR boom\n\tat a.b(C.java:1)\nCaused by: x\n\t... 3 more\n".to_vec();
    std::fs::write(&log, &text).unwrap();
    h.start();
    let joined = b"ERROR boom\n\tat a.b(C.java:1)\nCaused by: x\n\t... 3 more".to_vec();
    let events = h.wait_lines(&[b"first".to_vec(), joined.clone()]);
    let e = events.iter().find(|e| e.raw == joined).unwrap();
    assert!(e.flags.has(EventFlags::MULTILINE));
    assert_eq!(e.id.offset, 6);
    h.stop();
    h.start();
    append(&log, &[b"after restart".to_vec()]);
    h.wait_lines(&[b"after restart".to_vec()]);
    h.stop();
    assert_exactly_once(
        &h.spool_events(),
        &[b"first".to_vec(), joined, b"after restart".to_vec()],
    );
    assert_eq!(h.events.lines_read_total.load(Ordering::Relaxed), 6);
}

#[test]
fn buckets_are_sealed_and_events_offered_live() {
    let mut h = Harness::new("");
    let log = h.log("c1");
    let a = lines("a", 0..50);
    append(&log, &a);
    h.start();
    h.wait_lines(&a);
    // bucket_interval_secs = 1: the bucket holding them is sealed once its second ends.
    h.wait_until("a sealed bucket", || h.sealed.load(Ordering::Relaxed) >= 1);
    h.stop();
    let live =
        h.live_frames.load(Ordering::Relaxed) + h.events.live_skipped_total.load(Ordering::Relaxed);
    assert_eq!(
        live, 50,
        "every frame offered live once (sent or counted as skipped)"
    );
    // At the next start, buckets left from the previous run are announced as sealed.
    let before = h.sealed.load(Ordering::Relaxed);
    let stopped = chrono::Utc::now().timestamp();
    h.wait_until("the 1 s bucket interval to pass", || {
        chrono::Utc::now().timestamp() > stopped
    });
    h.start();
    h.wait_until("old buckets announced", || {
        h.sealed.load(Ordering::Relaxed) > before
    });
    h.stop();
}

#[test]
fn notify_wakes_the_reader_long_before_the_poll_interval() {
    // A 30 s poll: only an inotify wake-up can deliver the appended line within the deadline.
    let mut h = Harness::new("poll_interval_ms = 30000");
    let log = h.log("c1");
    let a = lines("a", 0..5);
    append(&log, &a);
    h.start();
    h.wait_lines(&a);
    let b = lines("b", 0..5);
    let t = std::time::Instant::now();
    append(&log, &b);
    h.wait_lines(&b);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
    h.stop();
}

#[test]
fn polling_alone_follows_files_when_notify_is_off() {
    let mut h = Harness::new("use_notify = false");
    let log = h.log("c1");
    let a = lines("a", 0..5);
    append(&log, &a);
    h.start();
    h.wait_lines(&a);
    std::fs::rename(&log, log.with_file_name("app.log.1")).unwrap();
    let b = lines("b", 0..5);
    append(&log, &b);
    let all = [a, b].concat();
    h.wait_lines(&all);
    h.stop();
    assert_exactly_once(&h.spool_events(), &all);
}
