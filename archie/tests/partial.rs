//! While an index builds, what it has committed is searchable: every search sees exactly
//! the matches among the first `indexed_upto` events, in order, never a torn batch.

// A test or bench crate: its helpers may unwrap (clippy.toml allows it only in #[test] fns).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use archie::index_builder::{BuildProgress, BuildSettings, IndexBuilder};
use archie::index_files::IndexFiles;
use archie::index_reader::{IndexReader, Order, WalkFilter};
use archie::{QueryPlan, SearchMode, SegmentFile};
use common::*;
use tokio_util::sync::CancellationToken;

#[test]
fn partial_index_answers_exactly_for_what_is_committed() {
    let mut f = fixture();
    f.add("crawl-a", "2026-11-01", 0, 12_000, 11);
    f.add("crawl-a", "2026-11-02", 0, 12_000, 12);
    let crawl = contracts::CrawlId::parse("crawl-a").unwrap();
    let segments: Vec<SegmentFile> = ["2026-11-01", "2026-11-02"]
        .iter()
        .map(|d| {
            let path = f.segments().join("crawl-a").join(format!("{d}.sqlite"));
            SegmentFile {
                crawl: crawl.clone(),
                day: chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap(),
                part: 0,
                bytes: std::fs::metadata(&path).unwrap().len(),
                path,
            }
        })
        .collect();
    let (start, end) = (ts("2026-11-01T00:00:00Z"), ts("2026-11-03T00:00:00Z"));
    // Every source line in time order: position i has seq i + 1.
    let all = f.scan(&["crawl-a"], start, end, |_| true);
    let lines: std::collections::HashMap<&str, &str> = f
        .events
        .iter()
        .map(|(_, e)| (e.id.as_str(), e.line.as_str()))
        .collect();

    let files = IndexFiles::new(f.dir.path().join("index"), 2);
    let progress = Arc::new(BuildProgress::default());
    let settings = BuildSettings {
        threads: 2,
        batch_events: 300,
    };
    let (bfiles, bprogress) = (files.clone(), progress.clone());
    let (from_us, to_us) = (start.timestamp_micros(), end.timestamp_micros());
    let builder = std::thread::spawn(move || {
        IndexBuilder::new(&bfiles, settings, bprogress, CancellationToken::new())
            .build(&segments, from_us, to_us)
    });

    let plan = QueryPlan::new("robots.txt", SearchMode::Substring).unwrap();
    let mut partial_checks = 0;
    let until = Instant::now() + Duration::from_secs(300);
    loop {
        let upto = progress.indexed_upto.load(Ordering::Acquire);
        let finished = builder.is_finished();
        if upto > 0 {
            let reader = IndexReader::open(&files, upto).unwrap();
            let filter = WalkFilter {
                plan: &plan,
                from_us,
                to_us,
                host: None,
                fields: None,
                after_seq: None,
                order: Order::Asc,
                deadline: Instant::now() + Duration::from_secs(60),
            };
            let mut got = Vec::new();
            reader
                .walk(&filter, |r| {
                    got.push(r.event);
                    true
                })
                .unwrap();
            let want: Vec<String> = all[..upto as usize]
                .iter()
                .filter(|id| lines[id.as_str()].contains("robots.txt"))
                .cloned()
                .collect();
            assert_eq!(got, want, "at watermark {upto}");
            if (upto as usize) < all.len() {
                partial_checks += 1;
            }
        }
        if finished {
            break;
        }
        assert!(Instant::now() < until, "build did not finish");
        std::thread::sleep(Duration::from_millis(5));
    }
    let report = builder.join().unwrap().unwrap();
    assert_eq!(report.events, all.len() as u64);
    assert_eq!(
        progress.indexed_upto.load(Ordering::Acquire),
        all.len() as i64
    );
    assert!(
        partial_checks > 0,
        "never saw a partial index: the test proved nothing"
    );
}
