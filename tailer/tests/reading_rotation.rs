//! Rotation, each in the ways users of other shippers have lost or doubled lines:
//! rename+create, copytruncate and rename+gzip, while the tailer runs, while it is stopped
//! (restart), and while it lags behind (reading paused by a full spool).

// A test or bench crate: its helpers may unwrap (clippy.toml allows it only in #[test] fns).
#![allow(clippy::unwrap_used)]

mod reading_support;

use std::sync::atomic::Ordering;

use reading_support::*;

fn rename(from: &std::path::Path, to: &std::path::Path) {
    std::fs::rename(from, to).expect("rename");
}

/// logrotate `copytruncate`: copy the file, then cut it to zero in place.
fn copytruncate(path: &std::path::Path, copy: &std::path::Path) {
    std::fs::copy(path, copy).expect("copy");
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open")
        .set_len(0)
        .expect("truncate");
}

/// A reader held back by a full spool: `spool_max_bytes = 1` pauses it after its first
/// batch, and a small read chunk makes that batch short.
const LAGGING: &str = "spool_max_bytes = 1\nread_chunk_bytes = 300";

fn wait_paused(h: &Harness) {
    h.wait_until("reading to pause on a full spool", || {
        h.usage.paused.load(Ordering::Relaxed)
    });
    assert_eq!(h.events.spool_paused.load(Ordering::Relaxed), 1);
}

#[test]
fn rename_create_while_running() {
    let mut h = Harness::new("");
    let log = h.log("c1");
    let a = lines("a", 0..200);
    append(&log, &a);
    h.start();
    h.wait_lines(&a);
    rename(&log, &log.with_file_name("app.log.1"));
    // The writer has not reopened yet: it still appends to the renamed file.
    let late = lines("late", 0..50);
    append(&log.with_file_name("app.log.1"), &late);
    let b = lines("b", 0..200);
    append(&log, &b);
    let all = [a, late, b].concat();
    let events = h.wait_lines(&all);
    h.stop();
    let ids = assert_exactly_once(&h.spool_events(), &all);
    assert_exactly_once(&events, &all);
    assert_ne!(
        ids[&all[0]].file_seq,
        ids[&all[all.len() - 1]].file_seq,
        "the new file has a new seq"
    );
    assert_eq!(
        ids[&all[200]].file_seq, ids[&all[0]].file_seq,
        "late lines keep the old file's seq"
    );
    assert!(h.events.rotations_total.load(Ordering::Relaxed) >= 1);
}

#[test]
fn rename_create_while_stopped() {
    let mut h = Harness::new("");
    let log = h.log("c1");
    let a = lines("a", 0..100);
    append(&log, &a);
    h.start();
    h.wait_lines(&a);
    h.stop();
    let unread = lines("unread", 0..100);
    append(&log, &unread);
    rename(&log, &log.with_file_name("app.log.1"));
    let b = lines("b", 0..100);
    append(&log, &b);
    h.start();
    let all = [a, unread, b].concat();
    h.wait_lines(&all);
    h.stop();
    let ids = assert_exactly_once(&h.spool_events(), &all);
    assert_eq!(ids[&all[150]].file_seq, ids[&all[0]].file_seq);
}

#[test]
fn copytruncate_while_running_and_lagging() {
    let mut h = Harness::new(LAGGING);
    let log = h.log("c1");
    let a = lines("a", 0..300);
    append(&log, &a);
    h.start();
    wait_paused(&h);
    copytruncate(&log, &log.with_file_name("app.log.1"));
    let b = lines("b", 0..100);
    append(&log, &b);
    h.pruning.store(true, Ordering::Relaxed);
    let all = [a, b].concat();
    h.wait_lines(&all);
    h.stop();
    let ids = assert_exactly_once(&h.spool_events(), &all);
    assert_eq!(
        ids[&all[0]].file_seq, ids[&all[299]].file_seq,
        "the copy keeps the seq"
    );
    assert_ne!(
        ids[&all[0]].file_seq, ids[&all[300]].file_seq,
        "the truncated file starts a new seq"
    );
    assert_eq!(ids[&all[300]].offset, 0);
    assert_eq!(
        h.events
            .copytruncate_window_bytes_total
            .load(Ordering::Relaxed),
        0
    );
}

#[test]
fn copytruncate_while_stopped() {
    let mut h = Harness::new("");
    let log = h.log("c1");
    let a = lines("a", 0..100);
    append(&log, &a);
    h.start();
    h.wait_lines(&a);
    h.stop();
    let unread = lines("unread", 0..100);
    append(&log, &unread);
    copytruncate(&log, &log.with_file_name("app.log.1"));
    // The new content is longer than the old checkpoint: only the tail hash can tell.
    let b = lines("b", 0..300);
    append(&log, &b);
    h.start();
    let all = [a, unread, b].concat();
    h.wait_lines(&all);
    h.stop();
    let ids = assert_exactly_once(&h.spool_events(), &all);
    assert_eq!(ids[&all[0]].file_seq, ids[&all[150]].file_seq);
    assert_ne!(ids[&all[0]].file_seq, ids[&all[200]].file_seq);
}

#[test]
fn copytruncate_without_a_copy_counts_the_loss() {
    let mut h = Harness::new(LAGGING);
    let log = h.log("c1");
    let a = lines("a", 0..300);
    append(&log, &a);
    h.start();
    wait_paused(&h);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    let b = lines("b", 0..10);
    append(&log, &b);
    h.pruning.store(true, Ordering::Relaxed);
    h.wait_lines(&b);
    h.stop();
    assert!(
        h.events
            .copytruncate_window_bytes_total
            .load(Ordering::Relaxed)
            > 0,
        "the lost bytes are counted"
    );
}

#[test]
fn rename_gzip_while_stopped_finds_the_most_recent_matching_archive() {
    let mut h = Harness::new("");
    let log = h.log("c1");
    // An older archive with the same first line: it must not be taken.
    let first = lines("same first", 0..1);
    let a = [first.clone(), lines("a", 0..100)].concat();
    append(&log, &a);
    h.start();
    h.wait_lines(&a);
    h.stop();
    let unread = lines("unread", 0..100);
    append(&log, &unread);
    let one = log.with_file_name("app.log.1");
    rename(&log, &one);
    gzip(&one, &log.with_file_name("app.log.1.gz"));
    std::fs::remove_file(&one).unwrap();
    // Then a second rotation while still stopped: the checkpointed file is now .2.gz.
    let b = [first.clone(), lines("b", 0..100)].concat();
    append(&log, &b);
    rename(
        &log.with_file_name("app.log.1.gz"),
        &log.with_file_name("app.log.2.gz"),
    );
    rename(&log, &one);
    gzip(&one, &log.with_file_name("app.log.1.gz"));
    std::fs::remove_file(&one).unwrap();
    let c = lines("c", 0..100);
    append(&log, &c);
    h.start();
    let want_now = [a.clone(), unread.clone(), c.clone()].concat();
    h.wait_lines(&want_now);
    h.stop();
    // The b file was rotated away before the tailer ever saw it: it is not followed
    // (rotated names are not discovered), so its lines are not expected.
    let events = h.spool_events();
    let ids = assert_exactly_once(&events, &want_now);
    assert_eq!(
        ids[&unread[0]].file_seq, ids[&a[0]].file_seq,
        "read from the archive under the same seq"
    );
    assert_eq!(
        ids[&unread[0]].offset,
        a.iter().map(|l| l.len() as u64 + 1).sum::<u64>(),
        "uncompressed offsets"
    );
}

#[test]
fn rename_gzip_while_lagging() {
    let mut h = Harness::new(LAGGING);
    let log = h.log("c1");
    let a = lines("a", 0..300);
    append(&log, &a);
    h.start();
    wait_paused(&h);
    let one = log.with_file_name("app.log.1");
    rename(&log, &one);
    gzip(&one, &log.with_file_name("app.log.1.gz"));
    std::fs::remove_file(&one).unwrap();
    let b = lines("b", 0..100);
    append(&log, &b);
    h.pruning.store(true, Ordering::Relaxed);
    let all = [a, b].concat();
    h.wait_lines(&all);
    h.stop();
    assert_exactly_once(&h.spool_events(), &all);
}

#[test]
fn rename_gzip_while_lagging_and_stopped() {
    // Stopped with most of the file unread; then rotated and compressed.
    let mut h = Harness::new(LAGGING);
    let log = h.log("c1");
    let a = lines("a", 0..300);
    append(&log, &a);
    h.start();
    wait_paused(&h);
    h.stop();
    let one = log.with_file_name("app.log.1");
    rename(&log, &one);
    gzip(&one, &log.with_file_name("app.log.1.gz"));
    std::fs::remove_file(&one).unwrap();
    let b = lines("b", 0..100);
    append(&log, &b);
    h.start();
    h.pruning.store(true, Ordering::Relaxed);
    let all = [a, b].concat();
    h.wait_lines(&all);
    h.stop();
    assert_exactly_once(&h.spool_events(), &all);
}

#[test]
fn rename_create_while_lagging() {
    let mut h = Harness::new(LAGGING);
    let log = h.log("c1");
    let a = lines("a", 0..300);
    append(&log, &a);
    h.start();
    wait_paused(&h);
    rename(&log, &log.with_file_name("app.log.1"));
    let late = lines("late", 0..20);
    append(&log.with_file_name("app.log.1"), &late);
    let b = lines("b", 0..100);
    append(&log, &b);
    h.pruning.store(true, Ordering::Relaxed);
    let all = [a, late, b].concat();
    h.wait_lines(&all);
    h.stop();
    let ids = assert_exactly_once(&h.spool_events(), &all);
    assert_eq!(ids[&all[0]].file_seq, ids[&all[310]].file_seq);
    assert_ne!(ids[&all[0]].file_seq, ids[&all[320]].file_seq);
}
