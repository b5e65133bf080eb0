//! A model-based rotation test in the spirit of Vector's file watcher tests: random
//! sequences of writes, rotations (rename+create, copytruncate, rename+gzip) and restarts,
//! and after each sequence every line written must be in the spool exactly once.
//!
//! The model is simply the list of lines written. Actions never lose lines by design
//! (no deletion of unread files, nothing written between a copy and its truncate), so any
//! missing or doubled line is the tailer's fault.

// A test crate: its helpers may unwrap (clippy.toml allows it only in #[test] fns).
#![allow(clippy::unwrap_used)]

mod reading_support;

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reading_support::*;

/// Shifts `app.log.N[.gz]` to `app.log.N+1[.gz]`, newest last, as logrotate does.
fn shift_copies(log: &Path) {
    let dir = log.parent().unwrap();
    let mut numbered: Vec<(u32, PathBuf, bool)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let rest = name.strip_prefix("app.log.")?;
            let (n, gz) = match rest.strip_suffix(".gz") {
                Some(n) => (n, true),
                None => (rest, false),
            };
            Some((n.parse().ok()?, e.path(), gz))
        })
        .collect();
    numbered.sort_by_key(|n| std::cmp::Reverse(n.0));
    for (n, path, gz) in numbered {
        let to = dir.join(format!("app.log.{}{}", n + 1, if gz { ".gz" } else { "" }));
        std::fs::rename(path, to).unwrap();
    }
}

/// Whether the tailer has a checkpoint for the file now at `log`: only then can it know
/// about its rotated copies (a file created and rotated while no tailer ever saw it is
/// invisible to any tailer, so the model never does that).
fn followed(h: &Harness, log: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(file) = std::fs::File::open(log) else {
        return false;
    };
    let Ok(meta) = file.metadata() else {
        return false;
    };
    let Ok(Some(state)) =
        tailer::checkpointer::Checkpointer::new(&h.config.state_dir).and_then(|mut c| c.load())
    else {
        return false;
    };
    // Inode numbers are reused once a rotated file is deleted: the head must match too.
    state.files.iter().any(|f| {
        !f.rotated
            && f.path == log
            && (f.dev, f.inode) == (meta.dev(), meta.ino())
            && tailer::fingerprint::head_matches(&file, &f.fingerprint).unwrap_or(false)
            // A head taken while the file was empty says nothing about what is in it now.
            && (f.fingerprint.len > 0 || meta.len() == 0)
    })
}

/// True when a rotation may happen now; a running tailer is given time to find the file.
fn may_rotate(h: &Harness, log: &Path, running: bool) -> bool {
    if !log.exists() {
        return false;
    }
    if running {
        h.wait_until("the file to be followed", || followed(h, log));
    }
    followed(h, log)
}

fn run_model(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    // Odd seeds also close every file as soon as it is checkpointed, with one descriptor
    // for everything: each rotation then happens to a closed file.
    let config = if seed % 2 == 1 {
        "read_chunk_bytes = 2000\nidle_close_secs = 0\nmax_open_files = 1"
    } else {
        "read_chunk_bytes = 2000"
    };
    let mut h = Harness::new(config);
    let log = h.log("c1");
    let mut written: Vec<Vec<u8>> = Vec::new();
    let mut running = false;
    let mut batch = 0;
    for _ in 0..14 {
        let action = rng.random_range(0..10);
        eprintln!(
            "seed {seed}: action {action} (running: {running}, lines so far {})",
            written.len()
        );
        match action {
            0..=3 => {
                let n = rng.random_range(1..60);
                let l = lines(&format!("s{seed} b{batch}"), 0..n);
                batch += 1;
                append(&log, &l);
                written.extend(l);
            }
            4 => {
                if may_rotate(&h, &log, running) {
                    shift_copies(&log);
                    std::fs::rename(&log, log.with_file_name("app.log.1")).unwrap();
                }
            }
            5 => {
                if may_rotate(&h, &log, running) {
                    shift_copies(&log);
                    std::fs::copy(&log, log.with_file_name("app.log.1")).unwrap();
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&log)
                        .unwrap()
                        .set_len(0)
                        .unwrap();
                }
            }
            6 => {
                if may_rotate(&h, &log, running) {
                    shift_copies(&log);
                    let one = log.with_file_name("app.log.1");
                    std::fs::rename(&log, &one).unwrap();
                    gzip(&one, &log.with_file_name("app.log.1.gz"));
                    std::fs::remove_file(&one).unwrap();
                }
            }
            7 if running => {
                // Let it catch up sometimes, so rotations happen both while lagging and not.
                h.wait_lines(&written);
            }
            _ => {
                if running {
                    h.stop();
                } else {
                    h.start();
                }
                running = !running;
            }
        }
    }
    if !running {
        h.start();
    }
    h.wait_lines(&written);
    h.stop();
    let events = h.spool_events();
    if std::env::var("MODEL_DUMP").is_ok() {
        for e in &events {
            eprintln!("dump {} {}", e.id, e.line());
        }
    }
    assert_exactly_once(&events, &written);
}

#[test]
fn random_rotations_and_restarts_keep_every_line_exactly_once() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let only: Option<u64> = std::env::var("MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok());
    // MODEL_SEEDS=N runs more sequences (the default keeps the suite quick).
    let seeds: u64 = std::env::var("MODEL_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    for seed in (0..seeds).filter(|s| only.is_none_or(|o| o == *s)) {
        run_model(seed);
    }
}
