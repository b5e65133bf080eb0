use bytes::Bytes;
use contracts::keys::KeyPair;
use contracts::transport::{Direction, Message, ServerHello, Session};
use futures::SinkExt;
use tokio::io::AsyncWriteExt;

use crate::common::*;

/// A second, well-behaved connection keeps working: its events land.
async fn good_connection_works(good: &mut Client, offset: u64) {
    let ev = plain_event("good", offset, now_us(), "fine");
    assert_eq!(
        good.live(&[ev]).await,
        Message::Ack {
            seq: good.seq,
            rejected: vec![]
        }
    );
}

async fn rows(b: &TestBuck, crawl: &str) -> i64 {
    let (status, _, body) = b
        .post(
            &format!("/?segment={crawl}"),
            "SELECT count(*) AS n FROM events",
        )
        .await;
    if status == 404 {
        return 0;
    }
    serde_json::from_str::<serde_json::Value>(&body).unwrap()[0]["n"]
        .as_i64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_connections_are_closed_and_counted_while_others_keep_working() {
    let b = TestBuck::start(|_| {}).await;
    let mut good = b.client().await;
    good_connection_works(&mut good, 0).await;
    let evil = [plain_event("evil", 0, now_us(), "must not be stored")];

    // 1. Garbage bytes instead of a hello.
    let mut s = tokio::net::TcpStream::connect(b.ingest).await.unwrap();
    s.write_all(&[0, 0, 0, 5, 1, 2, 3, 4, 5]).await.unwrap();
    let framed = tokio_util::codec::Framed::new(s, codec());
    let mut garbage = Client {
        framed,
        session: Session::new(None, [0; 16], Direction::TailerToBuck),
        seq: 0,
        made_of: SessionParts::none(),
    };
    assert!(garbage.closed_by_buck().await);
    eventually(
        std::time::Duration::from_secs(10),
        "garbage counted",
        || async { b.counters().rejected_garbage == 1 },
    )
    .await;
    good_connection_works(&mut good, 1).await;

    // 2. A forged message: a valid hello, then a message sealed with another secret key.
    let mut forged = b.client().await;
    let mallory = KeyPair::generate();
    // The connection's salt and direction, the wrong secret key.
    forged.session = Session::negotiated(
        Some((mallory.secret(), &b.buck_key)),
        forged.made_of.salt,
        Direction::TailerToBuck,
        forged.made_of.cipher,
        forged.made_of.transcript,
    );
    forged
        .send(&Message::Live {
            seq: 1,
            frames: frames(&evil),
        })
        .await;
    assert!(forged.closed_by_buck().await);
    eventually(
        std::time::Duration::from_secs(10),
        "forgery counted",
        || async { b.counters().rejected_auth == 1 },
    )
    .await;
    good_connection_works(&mut good, 2).await;

    // 3. A replayed message: a sealed message sent twice on its connection.
    let mut replay = b.client().await;
    let wire = replay.send(&Message::Ping { token: 1 }).await;
    assert_eq!(replay.recv().await.unwrap(), Message::Pong { token: 1 });
    replay.framed.send(Bytes::from(wire)).await.unwrap();
    assert!(replay.closed_by_buck().await);
    eventually(
        std::time::Duration::from_secs(10),
        "replay counted",
        || async { b.counters().rejected_replay == 1 },
    )
    .await;

    // ... and replayed onto a new connection (another salt): fails authentication.
    let mut first = b.client().await;
    let wire = first
        .send(&Message::Live {
            seq: 1,
            frames: frames(&[plain_event("replayed", 0, now_us(), "x")]),
        })
        .await;
    assert!(matches!(first.recv().await.unwrap(), Message::Ack { .. }));
    let mut second = b.client().await;
    second.framed.send(Bytes::from(wire)).await.unwrap();
    assert!(second.closed_by_buck().await);
    eventually(
        std::time::Duration::from_secs(10),
        "cross-connection replay counted",
        || async { b.counters().rejected_auth == 2 },
    )
    .await;
    assert_eq!(
        rows(&b, "replayed").await,
        1,
        "the replay stored nothing more"
    );
    good_connection_works(&mut good, 3).await;

    // 4. A hello with a key that is not on the allow-list.
    let stranger = KeyPair::generate();
    let (_, answer) = say_hello(b.ingest, &hello(&stranger, true)).await;
    let Some(ServerHello::Reject { reason }) = answer else {
        panic!("stranger accepted")
    };
    assert!(reason.contains("allow-list"), "{reason}");
    // Counted as the connection closes, just after the refusal is sent.
    eventually(
        std::time::Duration::from_secs(10),
        "the refusal counted",
        || async { b.counters().rejected_auth == 3 },
    )
    .await;

    // 5. A hello with no protocol version in common.
    let mut h = hello(&b.tailer, true);
    h.min_version = 200;
    h.max_version = 201;
    let (_, answer) = say_hello(b.ingest, &h).await;
    let Some(ServerHello::Reject { reason }) = answer else {
        panic!("bad version accepted")
    };
    assert!(reason.contains("protocol versions 200..=201"), "{reason}");
    // Counted as the connection closes, just after the refusal is sent.
    eventually(
        std::time::Duration::from_secs(10),
        "the refusal counted",
        || async { b.counters().rejected_version == 1 },
    )
    .await;

    // 6. A frame longer than the transport's maximum.
    let mut s = tokio::net::TcpStream::connect(b.ingest).await.unwrap();
    s.write_all(&(64u32 << 20).to_be_bytes()).await.unwrap();
    let mut big = Client {
        framed: tokio_util::codec::Framed::new(s, codec()),
        session: Session::new(None, [0; 16], Direction::TailerToBuck),
        seq: 0,
        made_of: SessionParts::none(),
    };
    assert!(big.closed_by_buck().await);
    eventually(
        std::time::Duration::from_secs(10),
        "oversized frame counted",
        || async { b.counters().rejected_garbage == 2 },
    )
    .await;

    good_connection_works(&mut good, 4).await;
    assert_eq!(
        rows(&b, "evil").await,
        0,
        "nothing of a hostile connection is stored"
    );
    assert_eq!(rows(&b, "good").await, 5);
    b.stop().await;
}

/// r11.2: a tailer may write only under its own tailer id (the hello's). An allowed key
/// that sends events with another tailer's ids gets them refused in the ack, by name, and
/// cannot pre-empt that tailer's lines: they are stored when it sends them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_under_another_tailers_id_are_refused_and_cannot_suppress_its_lines() {
    let b = TestBuck::start(|_| {}).await;
    let mut c = b.client().await;
    let t = now_us();
    let mine = plain_event("ids", 100, t, "mine");
    let mut forged = plain_event("ids", 200, t, "forged: the other host's line");
    forged.id.tailer = 8;
    let Message::Ack { rejected, .. } = c.live(&[mine, forged.clone()]).await else {
        panic!("no ack")
    };
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].index, 1);
    assert!(
        rejected[0].reason.contains("0000000000000008"),
        "{}",
        rejected[0].reason
    );
    // The real tailer 8 sends its line with that id: stored, not taken for a duplicate.
    let mut hello8 = hello(&b.tailer, true);
    hello8.tailer_id = 8;
    let mut other = Client::connect_with(b.ingest, &b.tailer, &b.buck_key, &hello8)
        .await
        .unwrap();
    let mut real = forged.clone();
    real.raw = b"the other host's real line".to_vec();
    real.original_len = real.raw.len() as u64;
    let Message::Ack { rejected, .. } = other.live(&[real]).await else {
        panic!("no ack")
    };
    assert!(rejected.is_empty(), "{rejected:?}");
    let rows = b
        .query("ids", "SELECT line FROM events ORDER BY line")
        .await;
    let lines: Vec<&str> = rows.iter().map(|r| r["line"].as_str().unwrap()).collect();
    assert_eq!(lines, vec!["mine", "the other host's real line"]);
    let mut text = String::new();
    b.handle().events().render_prometheus(&mut text);
    assert!(
        text.lines()
            .any(|l| l == "sluice_buck_foreign_tailer_frames_total 1")
    );
    b.stop().await;
}

/// r11.2: a key removed from the allowed-tailers file loses its open connection, not
/// only new ones, and the closing is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_removed_from_the_allow_list_file_is_dropped_from_open_connections() {
    let dir = tempfile::tempdir().unwrap();
    let tailer = contracts::keys::KeyPair::load_or_create(&dir.path().join("tailer.key")).unwrap();
    let list = dir.path().join("allowed.txt");
    std::fs::write(&list, format!("{}\n", tailer.public_text())).unwrap();
    let list_s = list.clone();
    let b = TestBuck::start_in(dir, move |c| {
        c.allowed_tailers = vec![];
        c.allowed_tailers_file = Some(list_s);
    })
    .await;
    let mut c = b.client().await;
    assert!(matches!(
        c.live(&[plain_event("rev", 1, now_us(), "before")]).await,
        Message::Ack { .. }
    ));
    // Another key only: a new size and mtime, so the buck sees the change.
    let other = contracts::keys::KeyPair::generate();
    std::fs::write(
        &list,
        format!("{}\n# revoked one key\n", other.public_text()),
    )
    .unwrap();
    assert!(
        c.closed_by_buck().await,
        "the revoked tailer is still connected"
    );
    let mut text = String::new();
    b.handle().events().render_prometheus(&mut text);
    assert!(
        text.lines()
            .any(|l| l == "sluice_buck_rejections_total{reason=\"revoked\"} 1"),
        "not counted"
    );
    b.stop().await;
}

/// r11.8: a slowloris from one address (127.0.0.2) opens many sockets and dribbles a
/// byte at a time. It holds at most `max_connections_per_address` of them, each for at
/// most `hello_timeout_ms`, and a tailer from another address ingests meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_holds_few_sockets_for_a_bounded_time_and_ingest_goes_on() {
    use tokio::io::AsyncReadExt;
    let b = TestBuck::start(|c| {
        c.max_connections_per_address = 4;
        c.max_pending_hellos = 8;
        c.hello_timeout_ms = 800;
    })
    .await;
    let started = std::time::Instant::now();
    let mut socks = Vec::new();
    for _ in 0..20 {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        socks.push(s.connect(b.ingest).await.unwrap());
    }
    // Each socket dribbles a byte of a hello's length prefix, then waits for the buck.
    let mut closed_at = Vec::new();
    let watchers: Vec<_> = socks
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                let _ = s.write_all(&[0]).await;
                let mut buf = [0u8; 64];
                loop {
                    match tokio::time::timeout(
                        std::time::Duration::from_millis(100),
                        s.read(&mut buf),
                    )
                    .await
                    {
                        Ok(Ok(0)) | Ok(Err(_)) => return std::time::Instant::now(),
                        Ok(Ok(_)) => {}
                        Err(_) => {
                            if s.write_all(&[0]).await.is_err() {
                                return std::time::Instant::now();
                            }
                        }
                    }
                }
            })
        })
        .collect();
    // Meanwhile a tailer from 127.0.0.1 connects and its events are stored.
    let mut c = b.client().await;
    let ev: Vec<_> = (0..10)
        .map(|i| plain_event("loris", i * 10, now_us(), "still ingesting"))
        .collect();
    assert!(matches!(c.live(&ev).await, Message::Ack { .. }));
    for w in watchers {
        closed_at.push(w.await.unwrap().duration_since(started));
    }
    closed_at.sort();
    // 16 of 20 are closed at once (per address); the rest when their hello time is up.
    assert!(
        closed_at[15] < std::time::Duration::from_millis(700),
        "{closed_at:?}"
    );
    assert!(
        closed_at[19] < std::time::Duration::from_secs(5),
        "a stalled socket was held for {:?}",
        closed_at[19]
    );
    let k = b.counters();
    assert!(k.events_in >= 10);
    let mut text = String::new();
    b.handle().events().render_prometheus(&mut text);
    assert!(
        text.lines()
            .any(|l| l == "sluice_buck_rejections_total{reason=\"too_many\"} 16"),
        "{text}"
    );
    b.stop().await;
}

/// Old and new peers: a tailer offering only protocol version 1 (an old tailer) and one
/// offering 2 both deliver to a new buck, sealed with SalsaBox and ChaChaBox; a new
/// tailer also delivers to a buck that speaks only version 1 (an old buck).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_and_new_tailers_and_bucks_talk_with_the_newest_cipher_both_speak() {
    let new_buck = TestBuck::start(|_| {}).await;
    let mut old_hello = hello(&new_buck.tailer, true);
    old_hello.max_version = 1;
    let mut old_tailer = Client::connect_with(
        new_buck.ingest,
        &new_buck.tailer,
        &new_buck.buck_key,
        &old_hello,
    )
    .await
    .unwrap();
    assert_eq!(
        old_tailer.made_of.cipher,
        contracts::transport::Cipher::SalsaBox
    );
    good_connection_works(&mut old_tailer, 0).await;
    let mut new_tailer = new_buck.client().await;
    assert_eq!(
        new_tailer.made_of.cipher,
        contracts::transport::Cipher::ChaChaBox
    );
    good_connection_works(&mut new_tailer, 1).await;
    assert_eq!(rows(&new_buck, "good").await, 2);
    let events = new_buck.handle().events();
    assert_eq!(events.sessions_with("xsalsa20poly1305"), 1);
    assert_eq!(events.sessions_with("xchacha20poly1305"), 1);

    let old_buck = TestBuck::start(|c| c.max_protocol_version = 1).await;
    let mut new_tailer = old_buck.client().await;
    assert_eq!(
        new_tailer.made_of.cipher,
        contracts::transport::Cipher::SalsaBox
    );
    good_connection_works(&mut new_tailer, 0).await;
    assert_eq!(rows(&old_buck, "good").await, 1);
}
