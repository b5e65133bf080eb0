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
        salt: [0; 16],
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
    forged.session = Session::new(
        Some((mallory.secret(), &b.buck_key)),
        forged.salt,
        Direction::TailerToBuck,
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
    assert_eq!(b.counters().rejected_auth, 3);

    // 5. A hello with no protocol version in common.
    let mut h = hello(&b.tailer, true);
    h.min_version = 200;
    h.max_version = 201;
    let (_, answer) = say_hello(b.ingest, &h).await;
    let Some(ServerHello::Reject { reason }) = answer else {
        panic!("bad version accepted")
    };
    assert!(reason.contains("protocol versions 200..=201"), "{reason}");
    assert_eq!(b.counters().rejected_version, 1);

    // 6. A frame longer than the transport's maximum.
    let mut s = tokio::net::TcpStream::connect(b.ingest).await.unwrap();
    s.write_all(&(64u32 << 20).to_be_bytes()).await.unwrap();
    let mut big = Client {
        framed: tokio_util::codec::Framed::new(s, codec()),
        session: Session::new(None, [0; 16], Direction::TailerToBuck),
        seq: 0,
        salt: [0; 16],
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
