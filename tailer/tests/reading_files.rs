//! Files that have broken other shippers: a file deleted and re-created (on the same
//! inode), a 10 MiB line, invalid UTF-8 and NULs, a thousand files with the same first
//! line, tiny files; and crash safety of the spool and of the checkpoints.

// A test or bench crate: its helpers may unwrap (clippy.toml allows it only in #[test] fns).
#![allow(clippy::unwrap_used)]

mod reading_support;

use std::os::unix::fs::MetadataExt;
use std::sync::atomic::Ordering;

use contracts::EventFlags;
use reading_support::*;

#[test]
fn deleted_and_recreated_while_running() {
    let mut h = Harness::new("");
    let log = h.log("c1");
    let a = lines("a", 0..50);
    append(&log, &a);
    h.start();
    h.wait_lines(&a);
    std::fs::remove_file(&log).unwrap();
    let b = lines("b", 0..50);
    append(&log, &b);
    let all = [a, b].concat();
    h.wait_lines(&all);
    // The deleted file is closed once drained, not held open forever.
    h.wait_until("the deleted file to be closed", || {
        h.events.files_open.load(Ordering::Relaxed) == 1
    });
    h.stop();
    let ids = assert_exactly_once(&h.spool_events(), &all);
    assert_ne!(ids[&all[0]].file_seq, ids[&all[50]].file_seq);
    assert_eq!(ids[&all[50]].offset, 0);
}

#[test]
fn deleted_and_recreated_on_the_same_inode_while_stopped() {
    let mut h = Harness::new("");
    let log = h.log("c1");
    let a = lines("a", 0..50);
    append(&log, &a);
    h.start();
    h.wait_lines(&a);
    h.stop();
    let old_inode = std::fs::metadata(&log).unwrap().ino();
    std::fs::remove_file(&log).unwrap();
    // Longer than before, so only the hash of the bytes before the offset tells them apart.
    let b = lines("b", 0..80);
    append(&log, &b);
    let same_inode = std::fs::metadata(&log).unwrap().ino() == old_inode;
    eprintln!("re-created file reused the inode: {same_inode}");
    h.start();
    let all = [a, b].concat();
    h.wait_lines(&all);
    h.stop();
    let ids = assert_exactly_once(&h.spool_events(), &all);
    assert_ne!(
        ids[&all[0]].file_seq, ids[&all[50]].file_seq,
        "a rewritten file gets a new seq"
    );
    assert_eq!(ids[&all[50]].offset, 0, "and is read from its start");
}

#[test]
fn ten_mib_line_is_cut_and_the_file_keeps_flowing() {
    let mut h = Harness::new("max_line_bytes = 1000");
    let log = h.log("c1");
    let before = b"before the long line".to_vec();
    let long = vec![b'L'; 10 << 20];
    let after = b"after the long line".to_vec();
    append(&log, &[before.clone(), long.clone(), after.clone()]);
    h.start();
    let cut = long[..1000].to_vec();
    let events = h.wait_lines(&[before.clone(), cut.clone(), after.clone()]);
    let e = events.iter().find(|e| e.raw == cut).unwrap();
    assert!(e.flags.has(EventFlags::TRUNCATED));
    assert_eq!(e.original_len, 10 << 20);
    let a = events.iter().find(|e| e.raw == after).unwrap();
    assert_eq!(
        a.id.offset,
        before.len() as u64 + 1 + (10 << 20) + 1,
        "the offset after the long line is exact"
    );
    h.stop();
    // After a restart the next line is read at its exact offset, once.
    let next = b"next after restart".to_vec();
    append(&log, std::slice::from_ref(&next));
    h.start();
    let events = h.wait_lines(std::slice::from_ref(&next));
    h.stop();
    let n = events.iter().find(|e| e.raw == next).unwrap();
    assert_eq!(n.id.offset, a.id.offset + after.len() as u64 + 1);
    assert_exactly_once(&h.spool_events(), &[before, cut, after, next]);
    assert_eq!(h.events.truncated_total.load(Ordering::Relaxed), 1);
}

#[test]
fn invalid_utf8_and_nul_bytes_pass_through() {
    let mut h = Harness::new("");
    let log = h.log("c1");
    let weird = vec![
        b"a\0b\0".to_vec(),
        b"\xff\xfe\xfd latin1 caf\xe9".to_vec(),
        b"ok".to_vec(),
        b"cr at end\r".to_vec(),
    ];
    append(&log, &weird);
    h.start();
    let events = h.wait_lines(&weird);
    h.stop();
    assert_exactly_once(&events, &weird);
    let bad = events.iter().find(|e| e.raw.starts_with(b"\xff")).unwrap();
    assert!(bad.flags.has(EventFlags::INVALID_UTF8));
}

#[test]
fn thousand_small_files_with_the_same_first_line() {
    let mut h = Harness::with_source(
        "",
        "{crawl}/*.log",
        "format = \"plain\"\nmultiline = false\n",
    );
    let mut want = Vec::new();
    let mut paths = Vec::new();
    for i in 0..1000 {
        let dir = h.logs.join(format!("c{}", i % 10));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(format!("f{i:04}.log"));
        // Under 100 bytes, identical first line.
        let mine = vec![
            b"the same first line".to_vec(),
            format!("file {i}").into_bytes(),
        ];
        append(&p, &mine);
        want.push((p.clone(), mine));
        paths.push(p);
    }
    h.start();
    let all: Vec<Vec<u8>> = want
        .iter()
        .flat_map(|(_, l)| l.iter().skip(1).cloned())
        .collect();
    h.wait_lines(&all);
    h.stop();
    for p in &paths {
        append(p, &[format!("more {}", p.display()).into_bytes()]);
    }
    h.start();
    let more: Vec<Vec<u8>> = paths
        .iter()
        .map(|p| format!("more {}", p.display()).into_bytes())
        .collect();
    h.wait_lines(&more);
    h.stop();
    let events = h.spool_events();
    let firsts: Vec<_> = events
        .iter()
        .filter(|e| e.raw == b"the same first line")
        .collect();
    assert_eq!(firsts.len(), 1000, "each file's first line once");
    let seqs: std::collections::HashSet<u64> = firsts.iter().map(|e| e.id.file_seq).collect();
    assert_eq!(seqs.len(), 1000, "every file has its own seq");
    let rest: Vec<_> = events
        .iter()
        .filter(|e| e.raw != b"the same first line")
        .cloned()
        .collect();
    assert_exactly_once(&rest, &[all, more].concat());
}

/// More files than `max_open_files`, each ending in a record that multi-line joining holds
/// back (a next line could still continue it). Closing a file to free its descriptor must
/// not drop that record: it is emitted once the file is quiet, as it would be if the file
/// stayed open, and the file is closed only after.
#[test]
fn more_files_than_descriptors_lose_no_held_back_record() {
    const FILES: usize = 120;
    const LINES: usize = 10;
    let mut h = Harness::with_source(
        "max_open_files = 16\nmultiline_flush_ms = 30\nidle_close_secs = 0\n",
        "{crawl}/*.log",
        "format = \"plain\"\nmultiline = true\n",
    );
    let mut want = Vec::new();
    for i in 0..FILES {
        let dir = h.logs.join(format!("crawl-{}", i % 7));
        std::fs::create_dir_all(&dir).unwrap();
        let lines: Vec<Vec<u8>> = (0..LINES)
            .map(|n| format!("file {i} line {n}").into_bytes())
            .collect();
        append(&dir.join(format!("f{i:03}.log")), &lines);
        want.extend(lines);
    }
    h.start();
    let events = h.wait_lines(&want);
    h.stop();
    assert_exactly_once(&events, &want);
}

#[test]
fn torn_spool_tail_is_cut_at_restart() {
    let mut h = Harness::new("");
    let log = h.log("c1");
    let a = lines("a", 0..20);
    append(&log, &a);
    h.start();
    h.wait_lines(&a);
    h.stop();
    // A crash mid-append: half a frame at the end of the newest bucket.
    let mut buckets = Vec::new();
    for e in walk(&h.spool()) {
        buckets.push(e);
    }
    buckets.sort();
    let last = buckets.last().expect("a bucket").clone();
    let good_len = std::fs::metadata(&last).unwrap().len();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&last)
        .unwrap();
    std::io::Write::write_all(&mut f, &[0x01, 0x00, 0x01, 0x02]).unwrap();
    drop(f);
    h.start();
    h.wait_until("the torn tail to be cut", || {
        std::fs::metadata(&last).unwrap().len() == good_len
    });
    let b = lines("b", 0..20);
    append(&log, &b);
    let all = [a, b].concat();
    h.wait_lines(&all);
    h.stop();
    assert_exactly_once(&h.spool_events(), &all);
}

#[test]
fn checkpoints_survive_a_crash_at_any_save_step() {
    let mut h = Harness::new("");
    let log = h.log("c1");
    let a = lines("a", 0..100);
    append(&log, &a);
    h.start();
    h.wait_lines(&a);
    h.stop();
    let saved = std::fs::read(h.state_file()).unwrap();
    let b = lines("b", 0..100);
    append(&log, &b);
    h.start();
    h.wait_lines(&[a.clone(), b.clone()].concat());
    h.stop();
    // Crash 1: the last save never happened (old state file) and a torn tmp file is left.
    let newer = std::fs::read(h.state_file()).unwrap();
    std::fs::write(h.state_file(), &saved).unwrap();
    std::fs::write(
        h.state_file().with_extension("json.tmp"),
        &newer[..newer.len() / 2],
    )
    .unwrap();
    let c = lines("c", 0..100);
    append(&log, &c);
    h.start();
    let all = [a.clone(), b.clone(), c.clone()].concat();
    h.wait_lines(&all);
    h.stop();
    // Lines of b were read again after the rollback: the same ids, so stores de-duplicate.
    assert_one_id_per_line(&h.spool_events(), &all);
    // Crash 2: the tmp file was fsynced but not renamed: it is the newer state and wins.
    let newest = std::fs::read(h.state_file()).unwrap();
    std::fs::write(h.state_file(), &saved).unwrap();
    std::fs::write(h.state_file().with_extension("json.tmp"), &newest).unwrap();
    let before = h.spool_events().len();
    let d = lines("d", 0..10);
    append(&log, &d);
    h.start();
    h.wait_lines(&d);
    h.stop();
    assert_eq!(
        h.spool_events().len(),
        before + d.len(),
        "nothing re-read: the tmp state was used"
    );
}

#[test]
fn start_at_end_skips_existing_content_on_first_start_only() {
    let mut h = Harness::with_source(
        "",
        "{crawl}/app.log",
        "format = \"plain\"\nmultiline = false\nstart_at = \"end\"\n",
    );
    let log = h.log("c1");
    append(&log, &lines("old", 0..10));
    h.start();
    h.wait_until("the file to be followed", || {
        h.events.files_open.load(Ordering::Relaxed) == 1
    });
    let a = lines("a", 0..10);
    append(&log, &a);
    h.wait_lines(&a);
    h.stop();
    let b = lines("b", 0..10);
    append(&log, &b);
    h.start();
    h.wait_lines(&b);
    h.stop();
    assert_exactly_once(&h.spool_events(), &[a, b].concat());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
