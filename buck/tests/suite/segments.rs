use contracts::transport::Message;
use sha2::{Digest, Sha256};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_copy_and_archive_a_segment() {
    let b = TestBuck::start(|c| c.day_close_grace_secs = 0).await;
    let mut c = b.client().await;
    let t = now_us() - 2 * 86_400_000_000;
    let day = day_text(t);
    let events: Vec<_> = (0..10)
        .map(|i| plain_event("arch", i * 7, t + i as i64, "e"))
        .collect();
    assert!(matches!(c.live(&events).await, Message::Ack { .. }));
    // Today's events stay open.
    assert!(matches!(
        c.live(&[plain_event("arch", 1000, now_us(), "today")])
            .await,
        Message::Ack { .. }
    ));

    let today = chrono::Utc::now()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string();
    // Archiving an open segment is refused.
    let r = reqwest::Client::new()
        .post(format!("{}/segments/arch/{today}/archived", b.http))
        .json(&serde_json::json!({"ids_sha256": "00", "rows": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);

    eventually(
        std::time::Duration::from_secs(10),
        "old day closed",
        || async {
            b.get_json("/segments")
                .await
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["name"] == day.as_str() && s["state"] == "closed")
        },
    )
    .await;
    let list = b.get_json("/segments").await;
    let seg = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == day.as_str())
        .unwrap()
        .clone();
    assert_eq!(seg["rows"], 10);
    assert_eq!(seg["part"], 0);
    assert!(seg["bytes"].as_u64().unwrap() > 0);
    assert!(seg["first_event"].as_str().unwrap() < seg["last_event"].as_str().unwrap());
    let open = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == today.as_str())
        .unwrap();
    assert_eq!(open["state"], "open");

    // A consistent copy: a standalone SQLite file with every row.
    let r = reqwest::get(format!("{}/segments/arch/{day}", b.http))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let bytes = r.bytes().await.unwrap();
    let copy = b.dir.path().join("copy.sqlite");
    std::fs::write(&copy, &bytes).unwrap();
    let conn = rusqlite::Connection::open(&copy).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 10);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete");
    let leftovers = std::fs::read_dir(b.config.data_dir.join("tmp"))
        .unwrap()
        .count();
    assert_eq!(leftovers, 0, "the temp copy is deleted");

    // The manifest's hash of the sorted ids, computed here from the copy.
    let mut ids: Vec<String> = conn
        .prepare("SELECT id FROM events")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    ids.sort();
    let mut h = Sha256::new();
    for id in &ids {
        h.update(id.as_bytes());
        h.update(b"\n");
    }
    let digest = hex::encode(h.finalize());
    let post = |body: serde_json::Value| {
        let url = format!("{}/segments/arch/{day}/archived", b.http);
        async move {
            reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let r = post(serde_json::json!({"ids_sha256": "0".repeat(64), "rows": 10})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["unchanged"],
        false
    );
    let r = post(serde_json::json!({"ids_sha256": digest, "rows": 10, "tailers": ["x"]})).await;
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["unchanged"], true, "{v}");
    assert_eq!(v["ids_sha256"], digest.as_str());
    let list = b.get_json("/segments").await;
    let seg = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == day.as_str())
        .unwrap();
    assert_eq!(seg["state"], "archived");

    // Bad names and crawls.
    assert_eq!(
        reqwest::get(format!("{}/segments/arch/not-a-day", b.http))
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        reqwest::get(format!("{}/segments/arch/2001-01-01", b.http))
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        reqwest::get(format!("{}/segments/..%2Fx/2001-01-01", b.http))
            .await
            .unwrap()
            .status(),
        400
    );
    b.stop().await;
}

/// A crash between writing a pruned segment's tombstone and removing its files leaves
/// both; the next start finishes the prune instead of serving or re-opening the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prune_cut_short_by_a_crash_is_finished_at_start() {
    let b = TestBuck::start(|c| c.day_close_grace_secs = 0).await;
    let mut c = b.client().await;
    let t = now_us() - 3 * 86_400_000_000;
    let day = day_text(t);
    let events: Vec<_> = (0..5)
        .map(|i| plain_event("torn", i * 7, t + i as i64, "e"))
        .collect();
    assert!(matches!(c.live(&events).await, Message::Ack { .. }));
    let segments_dir = b.config.data_dir.join("segments").join("torn");
    let seg = segments_dir.join(format!("{day}.sqlite"));
    eventually(
        std::time::Duration::from_secs(10),
        "the segment file",
        || {
            let seg = seg.clone();
            async move { seg.exists() }
        },
    )
    .await;
    drop(c);
    let dir = b.stop().await;
    let tomb = segments_dir.join(format!("{day}.sqlite.pruned"));
    std::fs::write(&tomb, b"{\"version\":1}").unwrap();

    let b = TestBuck::start_in(dir, |c| c.day_close_grace_secs = 0).await;
    assert!(
        !seg.exists(),
        "the pruned segment's file is removed at start"
    );
    assert!(
        tomb.exists(),
        "the tombstone stays, so the name is never reused"
    );
    let list = b.get_json("/segments").await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|s| s["name"] != day.as_str() || s["state"] == "pruned"),
        "{list}"
    );
    b.stop().await;
}
