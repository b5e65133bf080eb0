use contracts::transport::Message;
use futures::StreamExt;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_land_exactly_once_and_acks_follow_commit() {
    let b = TestBuck::start(|_| {}).await;
    let mut c = b.client().await;
    let t = now_us();
    let events: Vec<_> = (0..50)
        .map(|i| plain_event("crawl-a", i * 100, t, &format!("line {i}")))
        .collect();
    let reply = c.live(&events).await;
    assert_eq!(
        reply,
        Message::Ack {
            seq: 1,
            rejected: vec![]
        }
    );

    // Kill-safety: the ack came after the commit, so another connection to the file sees
    // every row right now.
    let day = chrono::DateTime::from_timestamp_micros(t)
        .unwrap()
        .date_naive();
    let path =
        contracts::segment_path::segment_path(&b.config.segments_dir(), &events[0].crawl, day, 0);
    let direct =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let n: i64 = direct
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 50);
    drop(direct);

    // The same events again (a re-send after a lost ack): acked, stored once.
    let reply = c.live(&events).await;
    assert_eq!(
        reply,
        Message::Ack {
            seq: 2,
            rejected: vec![]
        }
    );
    let rows = b
        .query(
            "crawl-a",
            "SELECT count(*) AS n, count(DISTINCT id) AS d FROM events",
        )
        .await;
    assert_eq!(rows[0]["n"], 50);
    assert_eq!(rows[0]["d"], 50);
    let k = b.counters();
    assert_eq!((k.inserted, k.duplicates, k.events_in), (50, 50, 100));

    // Stored columns: the line, the id in its text form, the RFC 3339 time.
    let rows = b
        .query(
            "crawl-a",
            "SELECT id, line, time, time_us, raw FROM events ORDER BY time_us, id LIMIT 1",
        )
        .await;
    assert_eq!(rows[0]["id"], events[0].id.to_string());
    assert_eq!(rows[0]["line"], "line 0");
    assert_eq!(rows[0]["time_us"], t);
    assert!(rows[0]["raw"].is_null());
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_frames_are_named_in_the_ack_and_invalid_utf8_keeps_raw_bytes() {
    let b = TestBuck::start(|_| {}).await;
    let mut c = b.client().await;
    let good = plain_event("crawl-b", 0, now_us(), "ok");
    let mut bad_utf8 = plain_event("crawl-b", 10, now_us(), "");
    bad_utf8.raw = b"caf\xe9".to_vec();
    bad_utf8.original_len = 4;
    let mut buf = frames(std::slice::from_ref(&good)).to_vec();
    // A frame whose event has an invalid crawl id: encode a valid event, then corrupt
    // the crawl id's first byte into '.'.
    let mut enc = Vec::new();
    plain_event("xcrawl", 20, now_us(), "bad crawl").encode(&mut enc);
    let pos = enc.windows(6).position(|w| w == b"xcrawl").unwrap();
    enc[pos] = b'.';
    buf.extend_from_slice(&(enc.len() as u16).to_be_bytes());
    buf.extend_from_slice(&enc);
    buf.extend_from_slice(&frames(std::slice::from_ref(&bad_utf8)));
    c.seq += 1;
    c.send(&Message::Live {
        seq: c.seq,
        frames: buf.into(),
    })
    .await;
    let Message::Ack { seq, rejected } = c.recv().await.unwrap() else {
        panic!("expected an ack")
    };
    assert_eq!(seq, 1);
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].index, 1);
    assert!(
        rejected[0].reason.contains("crawl id"),
        "{}",
        rejected[0].reason
    );
    let rows = b
        .query("crawl-b", "SELECT line, raw FROM events ORDER BY id")
        .await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["line"], "caf\u{fffd}");
    assert_eq!(
        rows[1]["raw"], "Y2Fm6Q==",
        "raw bytes kept as a blob (base64 in JSON)"
    );
    assert_eq!(b.counters().frames_rejected, 1);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_messages_are_acked_in_order_and_ping_gets_pong() {
    let b = TestBuck::start(|_| {}).await;
    let mut c = b.client().await;
    let t = now_us();
    for i in 0..20u64 {
        let msg = Message::Live {
            seq: i,
            frames: frames(&[plain_event("crawl-c", i, t, "x")]),
        };
        c.send(&msg).await;
    }
    c.send(&Message::Ping { token: 99 }).await;
    for i in 0..20u64 {
        assert_eq!(
            c.recv().await.unwrap(),
            Message::Ack {
                seq: i,
                rejected: vec![]
            }
        );
    }
    assert_eq!(c.recv().await.unwrap(), Message::Pong { token: 99 });
    assert_eq!(
        b.query("crawl-c", "SELECT count(*) AS n FROM events").await[0]["n"],
        20
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_is_refused_unless_configured_and_restart_keeps_rows() {
    let b = TestBuck::start(|_| {}).await;
    let Err(reason) = Client::connect(b.ingest, &b.tailer, &b.buck_key, false).await else {
        panic!("plain accepted")
    };
    assert!(reason.contains("requires encrypted"), "{reason}");
    // The refusal is counted as the connection closes, just after the reply is sent.
    eventually(
        std::time::Duration::from_secs(10),
        "the refusal counted",
        || async { b.counters().rejected_encryption == 1 },
    )
    .await;
    let dir = b.stop().await;

    // Same data dir and key file, encryption off: plain works, and the rows of before
    // are there.
    let b = TestBuck::start_in(dir, |c| c.encryption = false).await;
    let mut c = Client::connect(b.ingest, &b.tailer, &b.buck_key, false)
        .await
        .expect("plain accepted");
    let ev = plain_event("crawl-d", 1, now_us(), "plain");
    assert!(matches!(c.live(&[ev]).await, Message::Ack { .. }));
    assert_eq!(
        b.query("crawl-d", "SELECT count(*) AS n FROM events").await[0]["n"],
        1
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_failure_is_a_nack_and_the_resend_lands() {
    let b = TestBuck::start(|c| c.nack_retry_after_ms = 1234).await;
    // The crawl's directory cannot be made: a file sits where it should go.
    let blocker = b.config.segments_dir().join("blocked");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let mut c = b.client().await;
    let events: Vec<_> = (0..3)
        .map(|i| plain_event("blocked", i, now_us(), "x"))
        .collect();
    let Message::Nack {
        seq,
        retry_after_ms,
        reason,
    } = c.live(&events).await
    else {
        panic!("expected a nack")
    };
    assert_eq!((seq, retry_after_ms), (1, 1234));
    assert!(reason.contains("blocked"), "{reason}");
    assert_eq!(b.counters().nacks, 1);
    // The connection stays open; once the cause is gone the re-send is stored.
    std::fs::remove_file(&blocker).unwrap();
    assert_eq!(
        c.live(&events).await,
        Message::Ack {
            seq: 2,
            rejected: vec![]
        }
    );
    assert_eq!(
        b.query("blocked", "SELECT count(*) AS n FROM events").await[0]["n"],
        3
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_acks_only_what_it_committed() {
    let b = TestBuck::start(|_| {}).await;
    let mut c = b.client().await;
    let t = now_us();
    for seq in 0..40u64 {
        let events: Vec<_> = (0..50)
            .map(|i| plain_event("stop", seq * 1000 + i, t, "x"))
            .collect();
        c.send(&Message::Live {
            seq,
            frames: frames(&events),
        })
        .await;
    }
    // Stop while most messages are still queued or being committed.
    let mut acked = Vec::new();
    if let Some(Message::Ack { seq, .. }) = c.recv().await {
        acked.push(seq);
    }
    b.shutdown.cancel();
    while let Some(Ok(wire)) = c.framed.next().await {
        match c.session.open(&wire).unwrap() {
            Message::Ack { seq, .. } => acked.push(seq),
            other => panic!("unexpected {other:?}"),
        }
    }
    let config = b.config.clone();
    let _dir = b.stop().await;
    // Every acked message is in the file after the stop.
    let day = chrono::DateTime::from_timestamp_micros(t)
        .unwrap()
        .date_naive();
    let crawl = contracts::CrawlId::parse("stop").unwrap();
    let path = contracts::segment_path::segment_path(&config.segments_dir(), &crawl, day, 0);
    assert!(!acked.is_empty());
    let conn = rusqlite::Connection::open(&path).unwrap();
    for seq in &acked {
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM events WHERE id LIKE ?1",
                [format!("%-1-{}%", seq * 1000)],
                |r| r.get(0),
            )
            .unwrap();
        assert!(n >= 1, "acked message {seq} is stored");
    }
    let total: i64 = conn
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert!(total >= acked.len() as i64 * 50);
    assert_eq!(
        acked,
        (0..acked.len() as u64).collect::<Vec<_>>(),
        "acks in order, none skipped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_times_out() {
    let b = TestBuck::start(|c| c.hello_timeout_ms = 100).await;
    let s = tokio::net::TcpStream::connect(b.ingest).await.unwrap();
    let mut silent = Client {
        framed: tokio_util::codec::Framed::new(s, codec()),
        session: contracts::transport::Session::new(
            None,
            [0; 16],
            contracts::transport::Direction::TailerToBuck,
        ),
        seq: 0,
        made_of: SessionParts::none(),
    };
    assert!(silent.closed_by_buck().await);
    eventually(
        std::time::Duration::from_secs(10),
        "timeout counted",
        || async { b.counters().rejected_hello_timeout == 1 },
    )
    .await;
    b.stop().await;
}

/// r11.8: a tailer slot is taken only after the hello, so a connection that says
/// nothing holds none. Past `max_connections` tailers, a hello is refused with a reason
/// (the tailer backs off and retries); once a slot frees, the next hello is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_connections_a_hello_is_refused_until_a_slot_frees() {
    let b = TestBuck::start(|c| c.max_connections = 1).await;
    // A connection that never says hello takes no slot.
    let _silent = tokio::net::TcpStream::connect(b.ingest).await.unwrap();
    let first = b.client().await;
    let (_, answer) = say_hello(b.ingest, &hello(&b.tailer, true)).await;
    match answer {
        Some(contracts::transport::ServerHello::Reject { reason }) => {
            assert!(reason.contains("max_connections"), "{reason}")
        }
        other => panic!("second tailer not refused: {other:?}"),
    }
    drop(first);
    eventually(
        std::time::Duration::from_secs(10),
        "a hello accepted once the slot is free",
        || async { b.client_try().await },
    )
    .await;
    b.stop().await;
}
