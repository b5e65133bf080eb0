//! Serves archie over generated segments, with the history page at `/ui/history`, for
//! trying the page by hand or in a headless browser:
//!
//! `cargo run -p sluice-archie --example history_demo -- [port=8088] [events_per_day=20000]`
//!
//! The segments hold crawl `demo` for 2026-11-01 and 2026-11-02.

use std::sync::Arc;

use archie::segment_fixture::{CrawlLogGenerator, FixtureEvent, write_segment};
use archie::{ArchieConfig, LocalDirSource};
use axum::response::Html;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

const PAGE: &str = include_str!("../../web/static/history.html");

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(8088);
    let per_day: i64 = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let tmp = tempfile::tempdir().expect("temp dir");
    let segments = tmp.path().join("segments");
    let real =
        CrawlLogGenerator::real_lines(std::path::Path::new("/work/shared/data/real/heritrix"));
    let mut g = CrawlLogGenerator::new(7, real, 20);
    for (d, day) in ["2026-11-01", "2026-11-02"].iter().enumerate() {
        let start = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
            .expect("day")
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp_micros();
        let evs: Vec<FixtureEvent> = (0..per_day)
            .map(|i| {
                let t = start + i * 86_400_000_000 / per_day;
                FixtureEvent {
                    id: format!("{:016x}-{d}-{i}", 9),
                    time_us: t,
                    host: format!("crawler-{}", i % 3),
                    app: "heritrix".into(),
                    line: g.line(t),
                }
            })
            .collect();
        write_segment(
            &segments.join("demo").join(format!("{day}.sqlite")),
            "demo",
            day,
            &evs,
        )
        .expect("segment");
    }
    let shutdown = CancellationToken::new();
    let handle = archie::start(
        ArchieConfig::new(tmp.path().join("work")),
        Arc::new(LocalDirSource::new(&segments)),
        shutdown.clone(),
    )
    .await
    .expect("start");
    let app = handle
        .router()
        .route("/ui/history", get(|| async { Html(PAGE) }));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    println!("http://{}/ui/history", listener.local_addr().expect("addr"));
    let sd = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        sd.cancel();
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .expect("serve");
    handle.join().await;
}
