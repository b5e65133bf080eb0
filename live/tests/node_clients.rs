//! The broker against the official npm socket.io-client, in real Node processes over
//! real TCP: filters, backfill, a stalled client next to a fast one, caps and the token.
//! Needs `scripts/install-web-deps`; fails saying so otherwise.

// A test or bench crate: its helpers may unwrap (clippy.toml allows it only in #[test] fns).
#![allow(clippy::unwrap_used)]

mod util;

use std::sync::Arc;
use std::time::Duration;

use live::{LiveBroker, LiveConfig, synthetic};
use serde_json::{Value, json};
use util::{Node, ids, serve};

const T: Duration = Duration::from_secs(30);

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn publish(broker: &LiveBroker, offsets: std::ops::Range<u64>, line_bytes: usize) {
    for off in offsets {
        broker.publish(Arc::new(synthetic::event(off, now_us(), line_bytes)), false);
    }
}

/// The filter the "filtered" client uses, computed from the generator, not the broker.
fn crawl_b_4xx(off: u64) -> bool {
    synthetic::crawl_of(off) == "crawl-b" && (400..500).contains(&synthetic::status_of(off))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(unsafe_code)]
async fn filtered_backfilled_and_a_stalled_client_never_slows_a_fast_one() {
    util::require_node_modules();
    let cfg = LiveConfig {
        max_events_per_sec: 10_000_000,
        client_queue: 2048,
        transport_packets: 4,
        backfill_events: 50,
        token: Some("s3cret".into()),
        ..LiveConfig::default()
    };
    let (broker, layer) = LiveBroker::new(cfg, "buck-test".into());
    let addr = serve(axum::Router::new().layer(layer)).await;
    let url = format!("http://{addr}");

    // Published before anyone connects: only reachable as backfill.
    const PRE: u64 = 120;
    publish(&broker, 0..PRE, 200);

    let token = |extra: Value| {
        let mut o = json!({ "token": "s3cret" });
        o.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        o.to_string()
    };
    let mut filtered = Node::spawn(
        "filtered",
        "tests/live_client.mjs",
        &[
            &url,
            &token(json!({
                "bad_subscribe": { "regex": "(" },
                "subscribe": { "crawl": "crawl-b", "status": "4xx", "backfill": 1000 }
            })),
        ],
    );
    let mut fast = Node::spawn(
        "fast",
        "tests/live_client.mjs",
        &[&url, &token(json!({ "subscribe": {} }))],
    );
    let mut slow = Node::spawn(
        "slow",
        "tests/live_client.mjs",
        &[&url, &token(json!({ "subscribe": {} }))],
    );
    let mut intruder = Node::spawn(
        "intruder",
        "tests/live_client.mjs",
        &[&url, r#"{"token": "guess", "subscribe": {}}"#],
    );

    let hello = filtered.wait_for(T, "hello", |v| v.get("hello").is_some());
    assert_eq!(hello["hello"]["buck_id"], "buck-test");
    let err = filtered.wait_for(T, "error for a bad regex", |v| v.get("error").is_some());
    assert_eq!(err["error"]["code"], "bad_regex", "{err}");
    let sub = filtered.wait_for(T, "subscribed", |v| v.get("ready").is_some());
    // The client asked for 1000; the buck allows 50.
    assert_eq!(sub["subscribed"]["filter"]["backfill"], 50);
    let refused = intruder.wait_for(T, "connect_error", |v| v.get("connect_error").is_some());
    assert!(
        refused["connect_error"].as_str().unwrap().contains("token"),
        "{refused}"
    );
    fast.wait_for(T, "subscribed", |v| v.get("ready").is_some());
    slow.wait_for(T, "subscribed", |v| v.get("ready").is_some());

    // The slow client stops reading: its kernel buffers, then its socket.io buffer, then
    // its queue fill, and from there on it loses events.
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(slow.pid(), libc::SIGSTOP) }, 0);

    // 40,000 events of ~700 bytes (28 MB), about 10,000/s: a pace the fast client
    // keeps up with, and far more than the stalled one's kernel buffers hold.
    const N: u64 = 40_000;
    let mut off = PRE;
    while off < PRE + N {
        publish(&broker, off..off + 100, 700);
        off += 100;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for n in [&mut fast, &mut filtered] {
        let expected = if n.name == "fast" {
            N
        } else {
            (PRE..PRE + N).filter(|&o| crawl_b_4xx(o)).count() as u64
        };
        n.send(&format!("expect {expected}"));
    }
    let done = fast.wait_for(T, "done", |v| v.get("done").is_some());
    let got = ids(&done["live"]);
    let want: Vec<String> = (PRE..PRE + N).map(synthetic::id_of).collect();
    assert_eq!(
        got.len(),
        want.len(),
        "fast client: {:?} dropped",
        done["dropped"]
    );
    assert_eq!(got, want, "fast client: every event, once, in order");
    assert_eq!(done["dropped"], json!({}), "the fast client missed nothing");

    let done = filtered.wait_for(T, "done", |v| v.get("done").is_some());
    let want_live: Vec<String> = (PRE..PRE + N)
        .filter(|&o| crawl_b_4xx(o))
        .map(synthetic::id_of)
        .collect();
    let want_back: Vec<String> = {
        let all: Vec<u64> = (0..PRE).filter(|&o| crawl_b_4xx(o)).collect();
        all[all.len().saturating_sub(50)..]
            .iter()
            .map(|&o| synthetic::id_of(o))
            .collect()
    };
    assert!(!want_back.is_empty() && !want_live.is_empty());
    assert_eq!(
        ids(&done["backfill"]),
        want_back,
        "backfill: the last matching events, marked"
    );
    assert_eq!(
        ids(&done["live"]),
        want_live,
        "live: exactly the matching events"
    );

    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(slow.pid(), libc::SIGCONT) }, 0);
    slow.send(&format!("expect {N}"));
    let done = slow.wait_for(T, "done", |v| v.get("done").is_some());
    let received = ids(&done["live"]).len() as u64;
    let dropped = done["dropped"]["queue"].as_u64().unwrap_or(0);
    assert!(
        dropped > 0,
        "the stalled client should have lost events: {}",
        done["dropped"]
    );
    assert_eq!(
        received + dropped,
        N,
        "every event is either delivered or counted as dropped"
    );
    let counts = broker.events().counts();
    assert_eq!(
        counts.dropped_queue, dropped,
        "the broker's counter agrees with what the client was told"
    );
    assert_eq!(counts.refused_token, 1);
    assert_eq!(counts.bad_subscriptions, 1);
    eprintln!("slow client: {received} received, {dropped} dropped; fast client: {N} received");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_on_clients_rate_and_session_length() {
    util::require_node_modules();
    let cfg = LiveConfig {
        max_clients: 1,
        max_events_per_sec: 10,
        max_session_secs: 2,
        ..LiveConfig::default()
    };
    let (broker, layer) = LiveBroker::new(cfg, "buck-caps".into());
    let addr = serve(axum::Router::new().layer(layer)).await;
    let url = format!("http://{addr}");

    let mut first = Node::spawn(
        "first",
        "tests/live_client.mjs",
        &[&url, r#"{"subscribe": {}}"#],
    );
    first.wait_for(T, "subscribed", |v| v.get("ready").is_some());
    let mut second = Node::spawn(
        "second",
        "tests/live_client.mjs",
        &[&url, r#"{"subscribe": {}}"#],
    );
    let capped = second.wait_for(T, "capped", |v| v.get("capped").is_some());
    assert_eq!(capped["capped"]["cap"], "max_clients");
    second.wait_for(T, "disconnect", |v| v.get("disconnect").is_some());

    publish(&broker, 0..100, 100);
    let capped = first.wait_for(T, "rate capped", |v| v.get("capped").is_some());
    assert_eq!(capped["capped"]["cap"], "max_events_per_sec");
    first.send("expect 100");
    let done = first.wait_for(T, "done", |v| v.get("done").is_some());
    let received = ids(&done["live"]).len() as u64;
    let dropped = done["dropped"]["rate"].as_u64().unwrap_or(0);
    // A burst may straddle one second boundary: at most two windows' worth gets through.
    assert!((10..=20).contains(&received), "received {received}");
    assert_eq!(received + dropped, 100);
    assert_eq!(broker.events().counts().dropped_rate, dropped);

    // The session cap: a fresh client is disconnected after max_session_secs.
    drop(first);
    let mut third = Node::spawn(
        "third",
        "tests/live_client.mjs",
        &[&url, r#"{"subscribe": {}}"#],
    );
    third.wait_for(T, "subscribed", |v| v.get("ready").is_some());
    let started = std::time::Instant::now();
    // The buck's bus lagged: every client hears of it. A repair's row arrives marked late.
    broker.missed(7);
    broker.publish(Arc::new(synthetic::event(500, now_us(), 100)), true);
    let notice = third.wait_for(T, "bus dropped notice", |v| {
        v.get("dropped_notice").is_some()
    });
    assert_eq!(
        notice["dropped_notice"],
        json!({ "count": 7, "reason": "bus" })
    );
    let capped = third.wait_for(T, "session capped", |v| v.get("capped").is_some());
    assert_eq!(capped["capped"]["cap"], "max_session_secs");
    third.wait_for(T, "disconnect", |v| v.get("disconnect").is_some());
    let done = third.wait_for(T, "done", |v| v.get("done").is_some());
    assert_eq!(ids(&done["late"]), vec![synthetic::id_of(500)]);
    assert_eq!(ids(&done["live"]), vec![synthetic::id_of(500)]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "capped after {:?}",
        started.elapsed()
    );
    assert_eq!(broker.events().counts().sessions_capped, 1);
    assert_eq!(broker.events().counts().refused_clients, 1);
}
