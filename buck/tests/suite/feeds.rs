use std::collections::HashMap;
use std::time::Duration;

use contracts::transport::Message;
use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::common::*;

const API_TOKEN: &str = "feeds-api-token-0123456789";

/// Reads NDJSON records from a streaming reply until `until` says stop (or 30 s pass).
async fn records(
    resp: reqwest::Response,
    mut until: impl FnMut(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut body = resp.bytes_stream();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !until(&out) {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("records within 30 s");
        let Some(chunk) = chunk else { break };
        buf.extend_from_slice(&chunk.expect("body chunk"));
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            if line.len() > 1 {
                out.push(serde_json::from_slice(&line).expect("a JSON record"));
            }
        }
    }
    out
}

fn line(i: usize, status: i32, host: &str) -> String {
    format!(
        "2026-12-04T10:00:{:02}.000Z {status:>5} {:>10} http://{host}/p/{i} L - text/html #001 - - - -",
        i % 60,
        100 + i
    )
}

/// `GET /subscribe` needs the API token; a bad filter is a 400 naming the problem;
/// past `max_subscribers` a 503 with Retry-After; a stream ends with a `closed` record
/// after `max_duration_secs`, having carried the matching events; then its slot is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_has_a_token_a_cap_a_duration_and_the_live_filters() {
    let b = TestBuck::start(|c| {
        c.api_token = Some(API_TOKEN.into());
        c.subscribe.max_subscribers = 1;
        c.subscribe.max_duration_secs = 2;
    })
    .await;
    let http = reqwest::Client::new();
    let url = format!("{}/subscribe", b.http);
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(format!("{url}?status=4x"))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("bad_status"));
    let r = http
        .get(format!("{url}?backfill=10"))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let stream = http
        .get(format!("{url}?crawl=feeds&status=4xx,-5003&text=SITE"))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "application/x-ndjson");
    let busy = http.get(&url).bearer_auth(API_TOKEN).send().await.unwrap();
    assert_eq!(busy.status(), 503);
    assert!(busy.headers().contains_key("retry-after"));

    let statuses = [200, 404, -5003, 410, 301, 404];
    let events: Vec<_> = statuses
        .iter()
        .enumerate()
        .filter_map(|(i, s)| crawl_log_event("feeds", i as u64, &line(i, *s, "site.example")))
        .chain(crawl_log_event("other", 99, &line(99, 404, "site.example")))
        .chain(crawl_log_event(
            "feeds",
            98,
            &line(98, 404, "elsewhere.example"),
        ))
        .collect();
    let mut c = b.client().await;
    assert!(matches!(c.live(&events).await, Message::Ack { .. }));
    let got = records(stream, |r| r.iter().any(|v| v.get("closed").is_some())).await;
    let offsets: Vec<String> = got
        .iter()
        .filter_map(|v| v["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        offsets,
        [
            "0000000000000007-1-1",
            "0000000000000007-1-2",
            "0000000000000007-1-3",
            "0000000000000007-1-5"
        ],
        "{got:?}"
    );
    assert_eq!(got[0]["fields"]["status"], "404");
    assert_eq!(got[0]["crawl"], "feeds");
    assert_eq!(got.last().unwrap()["closed"], "max_duration_secs");
    // The slot is free again once the stream ended.
    crate::common::eventually(Duration::from_secs(10), "the slot freed", || async {
        http.get(&url)
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    b.stop().await;
}

/// Lines of a Graphite plaintext listener, summed by path (timestamps checked sane).
async fn listen(
    listener: tokio::net::TcpListener,
) -> tokio::sync::mpsc::UnboundedReceiver<(String, f64)> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(sock).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    let parts: Vec<&str> = l.split(' ').collect();
                    assert_eq!(parts.len(), 3, "{l}");
                    let ts: i64 = parts[2].parse().unwrap();
                    assert!((ts - chrono::Utc::now().timestamp()).abs() < 120, "{l}");
                    let _ = tx.send((parts[0].to_owned(), parts[1].parse().unwrap()));
                }
            });
        }
    });
    rx
}

/// Sums what arrives until `want` is a subset of the sums (or 30 s pass).
async fn sums_until(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, f64)>,
    want: &[(&str, f64)],
) -> HashMap<String, f64> {
    let mut sums: HashMap<String, f64> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !want.iter().all(|(p, v)| sums.get(*p) == Some(v)) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((p, v))) => *sums.entry(p).or_default() += v,
            _ => panic!("graphite sums {sums:?} never reached {want:?}"),
        }
    }
    sums
}

/// What the listener receives equals what the buck stored: lines per status class,
/// bytes, distinct hosts per crawl (one packet, so one interval), duplicates not counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphite_receives_the_counts_of_what_was_stored() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut rx = listen(listener).await;
    let b = TestBuck::start(|c| {
        let mut g = buck::graphite::GraphiteConfig::new(addr);
        g.interval_secs = 1;
        g.prefix = "ops.sluice".into();
        c.graphite = Some(g);
    })
    .await;
    let statuses = [200, 200, 404, -5003, 301, 503, 101, 0, 200, -1];
    let hosts = ["a.example", "b.example", "A.EXAMPLE", "c.example:8080"];
    let events: Vec<_> = statuses
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            crawl_log_event("crawl.one", i as u64, &line(i, *s, hosts[i % hosts.len()]))
        })
        .collect();
    assert_eq!(events.len(), statuses.len());
    let log_bytes: u64 = events.iter().map(|e| e.original_len).sum();
    let fetched: u64 = (0..statuses.len()).map(|i| 100 + i as u64).sum();
    let t = now_us();
    let plain: Vec<_> = (0..3)
        .map(|i| plain_event("two", 100 + i, t, "a plain line"))
        .collect();
    let mut c = b.client().await;
    assert!(matches!(c.live(&events).await, Message::Ack { .. }));
    assert!(matches!(c.live(&plain).await, Message::Ack { .. }));
    // The same events again: duplicates, not stored, not counted.
    assert!(matches!(c.live(&events).await, Message::Ack { .. }));
    let p = "ops.sluice.b1.crawls.crawl_one";
    let want = [
        (format!("{p}.lines.2xx"), 3.0),
        (format!("{p}.lines.4xx"), 1.0),
        (format!("{p}.lines.failed"), 2.0),
        (format!("{p}.lines.3xx"), 1.0),
        (format!("{p}.lines.5xx"), 1.0),
        (format!("{p}.lines.1xx"), 1.0),
        // Status 0 (not attempted): outside the HTTP ranges.
        (format!("{p}.lines.other"), 1.0),
        (format!("{p}.log_bytes"), log_bytes as f64),
        (format!("{p}.fetched_bytes"), fetched as f64),
        (format!("{p}.hosts"), 3.0),
        ("ops.sluice.b1.crawls.two.lines.other".into(), 3.0),
        ("ops.sluice.b1.crawls.two.log_bytes".into(), 36.0),
        ("ops.sluice.b1.buck.inserted".into(), 13.0),
        ("ops.sluice.b1.buck.duplicates".into(), 10.0),
    ];
    let want: Vec<(&str, f64)> = want.iter().map(|(p, v)| (p.as_str(), *v)).collect();
    let sums = sums_until(&mut rx, &want).await;
    assert!(
        !sums.contains_key(&format!("{p}.lines.unknown")),
        "{sums:?}"
    );
    assert_eq!(b.handle().events().feeds.graphite_lines_dropped(), 0);
    b.stop().await;
}

/// With the listener down, the buck stores on, counts failed connections, and once a
/// listener appears on the address (backoff capped by `reconnect_max_secs`) it gets
/// every interval's lines that were kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphite_reconnects_when_the_listener_comes_up_and_ingest_never_waits() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let b = TestBuck::start(|c| {
        let mut g = buck::graphite::GraphiteConfig::new(addr.to_string());
        g.interval_secs = 1;
        g.reconnect_max_secs = 1;
        c.graphite = Some(g);
    })
    .await;
    let t = now_us();
    let mut c = b.client().await;
    let events: Vec<_> = (0..50).map(|i| plain_event("down", i, t, "x")).collect();
    assert!(matches!(c.live(&events).await, Message::Ack { .. }));
    eventually(
        Duration::from_secs(30),
        "failed connections counted",
        || async {
            let mut m = String::new();
            b.handle().events().render_prometheus(&mut m);
            m.lines().any(|l| {
                l.starts_with("sluice_buck_graphite_connect_failures_total ") && !l.ends_with(" 0")
            })
        },
    )
    .await;
    // Stored while the listener was down.
    let rows = b.query("down", "SELECT count(*) AS n FROM events").await;
    assert_eq!(rows[0]["n"], 50);
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let mut rx = listen(listener).await;
    sums_until(&mut rx, &[("sluice.b1.crawls.down.lines.other", 50.0)]).await;
    b.stop().await;
}

/// A stream open when the buck stops ends with `{"closed": "shutdown"}`, and the buck
/// stops cleanly (a subscriber never holds it up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_with_a_closed_record_when_the_buck_stops() {
    let b = TestBuck::start(|_| {}).await;
    let stream = reqwest::Client::new()
        .get(format!("{}/subscribe", b.http))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let t = now_us();
    let mut c = b.client().await;
    assert!(matches!(
        c.live(&[plain_event("s", 1, t, "one line")]).await,
        Message::Ack { .. }
    ));
    let reader = tokio::spawn(records(stream, |r| {
        r.iter().any(|v| v.get("closed").is_some())
    }));
    // The event is streamed before the stop is asked for.
    eventually(
        Duration::from_secs(10),
        "the event queued for the stream",
        || async {
            let mut m = String::new();
            b.handle().events().render_prometheus(&mut m);
            m.lines().any(|l| l == "sluice_buck_subscribe_sent_total 1")
        },
    )
    .await;
    tokio::time::timeout(Duration::from_secs(20), b.stop())
        .await
        .expect("the buck stops with a subscriber open");
    let got = reader.await.unwrap();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0]["line"], "one line");
    assert_eq!(got[1]["closed"], "shutdown");
}
