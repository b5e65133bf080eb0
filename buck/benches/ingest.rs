//! Ingest and query figures for the buck, printed (not asserted):
//!
//! 1. the segment writer (group commit, dedup, crawled_url rows), fed directly by eight
//!    producers, first each waiting for its ack, then each with four requests in flight;
//! 2. the whole path: sealed, compressed live packets of frame streams (the buck parses
//!    each line's fields) over TCP on 127.0.0.1, acked after commit, pipelined;
//! 3. the ceiling: a bare rusqlite loop inserting the same rows into the same schema in
//!    one transaction;
//! 4. the trough query on a 1M-row segment, through the HTTP API (skipped when
//!    `query_rows` is 0).
//!
//! The events are crawl.log lines in Heritrix's layout (most are stored as columns and
//! rebuilt on read, as a real crawl.log's are). Each figure comes with the CPU it took,
//! per million events: the whole process, and the writer thread alone (`/proc`, 10 ms
//! ticks), since wall time on a shared machine says little.
//!
//! `cargo bench -p sluice-buck --bench ingest -- [events] [query_rows]`

// A test or bench crate: its helpers may unwrap (clippy.toml allows it only in #[test] fns).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Instant;

use buck::segment_schema;
use buck::{BuckConfig, BuckEvents, Bus, Origin, SegmentWriter, WriterOptions};
use bytes::Bytes;
use contracts::keys::KeyPair;
use contracts::transport::{ClientHello, Message, codec};
use contracts::{CrawlId, Event};
use futures::{SinkExt, StreamExt};
use tokio_util::codec::Framed;

const HOSTS: usize = 1000;

fn make_events(crawl: &CrawlId, n: usize, tailer: u64, time_us: i64) -> Vec<Event> {
    let mut b = parsers::EventBuilder::new(
        parsers::SourceFormat::CrawlLog,
        tailer,
        1,
        crawl.clone(),
        "crawler-1".into(),
        "heritrix".into(),
        60_000,
    );
    // Whole milliseconds, as Heritrix logs them: the line is rebuilt from its columns.
    let at = chrono::DateTime::from_timestamp_micros(time_us - time_us % 1000).unwrap();
    let log_time = at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let mut offset = 0u64;
    (0..n)
        .map(|i| {
            let h = if i % 10 == 0 { "www.example.com".to_owned() } else { format!("host{}.example.org", i % HOSTS) };
            let status = [200, 200, 200, 301, 404, -1][i % 6];
            let dur = i % 900;
            let fetch = (at - chrono::Duration::milliseconds(dur as i64 + 5)).format("%Y%m%d%H%M%S%3f");
            // Heritrix's layout (status in 5 columns, size in 10), so that most lines are
            // stored as columns, as a real crawl.log's are.
            let line = format!(
                "{log_time} {status:>5} {:>10} http://{h}/path/{i}.html L http://{h}/ text/html #0{:02} {fetch}+{dur} sha1:ABCDEFGHIJKLMNOPQRSTUVWXYZ234567 - - {{\"warcFilename\":\"crawl-00001.warc.gz\",\"warcFileOffset\":{},\"contentSize\":{}}}",
                i % 100_000,
                i % 50,
                i * 1000,
                i % 100_000 + 300
            );
            let ev = b.build(parsers::RawRecord::line(offset, line.clone().into_bytes()), time_us);
            offset += line.len() as u64 + 1;
            ev
        })
        .collect()
}

/// CPU seconds used so far by the whole process and by its `segment-writer` thread(s),
/// from `/proc` (clock ticks of 10 ms).
fn cpu_secs() -> (f64, f64) {
    let ticks = |stat: &str| -> f64 {
        // Fields after the `(comm)`: state is the 3rd field, utime the 14th, stime the 15th.
        let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (t(11) + t(12)) / 100.0
    };
    let all = std::fs::read_to_string("/proc/self/stat").map_or(0.0, |s| ticks(&s));
    let mut writer = 0.0;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            if comm.trim_end().starts_with("segment-writer") {
                writer += std::fs::read_to_string(t.path().join("stat")).map_or(0.0, |s| ticks(&s));
            }
        }
    }
    (all, writer)
}

/// CPU seconds since `from` (process, writer threads), as text per million events.
fn cpu_since(from: (f64, f64), n: usize) -> String {
    let now = cpu_secs();
    let per_m = 1e6 / n.max(1) as f64;
    format!(
        "  cpu {:.1} s/M events (writer threads {:.1})",
        (now.0 - from.0) * per_m,
        (now.1 - from.1) * per_m
    )
}

fn rate(n: usize, secs: f64) -> String {
    format!("{:>9.0} events/s ({n} in {secs:.2} s)", n as f64 / secs)
}

/// `in_flight`: requests each producer keeps outstanding. 1 waits for every ack before the
/// next request, so preparing rows and committing take turns; a connection of the buck
/// reads ahead (`max_in_flight`), so its next rows are prepared while a batch commits.
async fn writer_direct(dir: &std::path::Path, events: &[Event], in_flight: usize) {
    let cfg = BuckConfig::new("bench", dir);
    let stats = Arc::new(BuckEvents::default());
    let bus = Bus::new(4096, stats.clone());
    let (writer, thread) =
        SegmentWriter::spawn(WriterOptions::from_config(&cfg), bus, stats.clone()).expect("writer");
    for (label, pass) in [("new rows", 0), ("all duplicates", 1)] {
        let cpu = cpu_secs();
        let started = Instant::now();
        let mut tasks = Vec::new();
        // Eight concurrent producers of 1000-event requests, as eight tailer connections.
        for part in events.chunks(events.len().div_ceil(8)) {
            let w = writer.clone();
            let part = part.to_vec();
            tasks.push(tokio::spawn(async move {
                let chunks: Vec<Vec<Event>> = part.chunks(1000).map(<[Event]>::to_vec).collect();
                let writes = chunks.into_iter().map(|chunk| {
                    let w = w.clone();
                    async move { w.write(chunk, Origin::Live).await }
                });
                let mut acks = futures::stream::iter(writes).buffered(in_flight);
                while let Some(outcome) = acks.next().await {
                    outcome.expect("write");
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "segment writer, {label:<15} {in_flight} in flight {}{}",
            rate(events.len(), secs),
            cpu_since(cpu, events.len())
        );
        let _ = pass;
    }
    let c = stats.snapshot();
    println!(
        "  inserted {} duplicates {} commits {}",
        c.inserted, c.duplicates, c.commits
    );
    drop(writer);
    tokio::task::spawn_blocking(move || thread.join())
        .await
        .expect("join")
        .expect("writer stops");
}

fn bare_rusqlite(dir: &std::path::Path, crawl: &CrawlId, events: &[Event]) {
    let path = dir.join("bare.sqlite");
    let day = chrono::Utc::now().date_naive();
    let conn = segment_schema::open_for_write(&path, crawl, day, 0, 0).expect("open");
    // The row values are computed before the clock starts: this is SQLite alone.
    let rows: Vec<_> = events
        .iter()
        .map(|e| contracts::segment_row::SegmentRow::of(e, None))
        .collect();
    let mut labels = contracts::segment_sql::Labels::new();
    let cpu = cpu_secs();
    let started = Instant::now();
    conn.execute_batch("BEGIN").expect("begin");
    {
        // One statement held for every row, as the writer holds it for a batch.
        let mut stmt = conn
            .prepare_cached(contracts::segment_sql::INSERT_ROW_SQL)
            .expect("prepare");
        for row in &rows {
            contracts::segment_sql::insert_row_with(&mut stmt, &conn, &mut labels, row)
                .expect("insert");
        }
    }
    conn.execute_batch("COMMIT").expect("commit");
    println!(
        "bare rusqlite, one transaction {}{}",
        rate(events.len(), started.elapsed().as_secs_f64()),
        cpu_since(cpu, events.len())
    );
    let columns: i64 = conn
        .query_row("SELECT count(*) FROM event WHERE line IS NULL", [], |r| {
            r.get(0)
        })
        .expect("count");
    println!("  ({columns} of {} lines stored as columns)", events.len());
}

async fn over_tcp(
    dir: &std::path::Path,
    events: &[Event],
) -> (
    tokio_util::sync::CancellationToken,
    buck::BuckHandle,
    String,
) {
    let tailer = KeyPair::generate();
    let mut cfg = BuckConfig::new("bench", dir);
    cfg.allowed_tailers = vec![tailer.public_text()];
    cfg.sql_max_rows = 10_000_000;
    let ingest = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = ingest.local_addr().expect("addr");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let handle = buck::start(cfg, ingest, shutdown.clone())
        .await
        .expect("buck");
    let http = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let http_url = format!("http://{}", http.local_addr().expect("addr"));
    let router = handle.router();
    let token = shutdown.clone();
    tokio::spawn(async move {
        axum::serve(http, router)
            .with_graceful_shutdown(token.cancelled_owned())
            .await
    });
    let buck_key = contracts::keys::parse_public_key(handle.public_key(), "buck").expect("key");

    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut framed = Framed::new(stream, codec());
    let hello = ClientHello::new(1, *tailer.public().as_bytes(), true, "bench".into());
    let hello_bytes = hello.encode();
    framed
        .send(Bytes::from(hello_bytes.clone()))
        .await
        .expect("hello");
    let Some(Ok(answer)) = framed.next().await else {
        panic!("no server hello")
    };
    let mut session = contracts::transport::join(
        &hello,
        &hello_bytes,
        &answer,
        Some((tailer.secret(), &buck_key)),
    )
    .expect("accepted")
    .session;

    let cpu = cpu_secs();
    let started = Instant::now();
    let packets: Vec<Bytes> = events
        .chunks(1000)
        .map(|c| {
            // Frame streams, as today's tailer sends: the buck parses each line's fields.
            let mut buf = Vec::new();
            let mut writer = contracts::frame_stream::FrameStreamWriter::new();
            for e in c {
                assert!(writer.push(&mut buf, &e.view()), "event fits a frame");
            }
            Bytes::from(buf)
        })
        .collect();
    let (mut sink, mut stream) = framed.split();
    let mut sent = 0usize;
    let mut acked = 0usize;
    // Up to 8 packets in flight, as the buck's default max_in_flight.
    while acked < packets.len() {
        while sent < packets.len() && sent - acked < 8 {
            let wire = session
                .seal(&Message::Live {
                    seq: sent as u64,
                    frames: packets[sent].clone(),
                })
                .expect("seal");
            sink.send(Bytes::from(wire)).await.expect("send");
            sent += 1;
        }
        let wire = stream.next().await.expect("reply").expect("reply");
        match session.open(&wire).expect("open") {
            Message::Ack { .. } => acked += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    println!(
        "tailer -> buck over TCP (sealed) {}{}",
        rate(events.len(), started.elapsed().as_secs_f64()),
        cpu_since(cpu, events.len())
    );
    (shutdown, handle, http_url)
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let query_rows: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let crawl = CrawlId::parse("bench").expect("crawl");
        let now = chrono::Utc::now().timestamp_micros();
        let events = make_events(&crawl, n, 1, now);
        let avg = events.iter().map(|e| e.raw.len()).sum::<usize>() / n.max(1);
        println!("{n} crawl.log events of {avg} bytes on average");
        for in_flight in [1, 4] {
            let d1 = tempfile::tempdir().expect("dir");
            writer_direct(d1.path(), &events, in_flight).await;
        }
        let d2 = tempfile::tempdir().expect("dir");
        bare_rusqlite(d2.path(), &crawl, &events);
        let d3 = tempfile::tempdir().expect("dir");
        let (shutdown, handle, _) = over_tcp(d3.path(), &events).await;
        shutdown.cancel();
        handle.join().await.expect("stop");
        drop(events);

        if query_rows == 0 {
            return;
        }
        // The trough query on a segment of `query_rows` rows.
        let d4 = tempfile::tempdir().expect("dir");
        // The tailer of the hello (1): a buck refuses events under another tailer's id.
        let big = make_events(&crawl, query_rows, 1, now);
        let started = Instant::now();
        let (shutdown, handle, http) = over_tcp(d4.path(), &big).await;
        println!("  (filled a {query_rows}-row segment in {:.1} s)", started.elapsed().as_secs_f64());
        let client = reqwest::Client::new();
        let q = r#"SELECT count(id) FROM crawled_urls WHERE host = "www.example.com" GROUP BY status_code;"#;
        for label in ["trough query, first", "trough query, again"] {
            let started = Instant::now();
            let body = client.post(format!("{http}/?segment=bench")).body(q).send().await.expect("query").text().await.expect("body");
            println!("{label:<27} {:>7.1} ms  {body}", started.elapsed().as_secs_f64() * 1000.0);
        }
        let started = Instant::now();
        let body = client.post(format!("{http}/?segment=bench")).body("SELECT status_code, count(*) AS n FROM crawled_urls GROUP BY status_code").send().await.expect("query").text().await.expect("body");
        println!("full scan group by status     {:>7.1} ms  {body}", started.elapsed().as_secs_f64() * 1000.0);
        let started = Instant::now();
        let body = client.post(format!("{http}/?segment=bench")).body("SELECT * FROM events LIMIT 100000").send().await.expect("query").bytes().await.expect("body");
        println!("stream 100000 rows as JSON    {:>7.1} ms  ({} MB)", started.elapsed().as_secs_f64() * 1000.0, body.len() / 1_000_000);
        shutdown.cancel();
        handle.join().await.expect("stop");
    });
}
