use contracts::transport::Message;

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
    let r = porter_client()
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
    let r = porter_client()
        .get(format!("{}/segments/arch/{day}", b.http))
        .send()
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
    let digest = ids_digest(&copy);
    let post = |body: serde_json::Value| {
        let url = format!("{}/segments/arch/{day}/archived", b.http);
        async move { porter_client().post(url).json(&body).send().await.unwrap() }
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
    assert!(
        !v.to_string().contains(&digest),
        "a reply must not hand out the segment's ids hash: {v}"
    );
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
        porter_client()
            .get(format!("{}/segments/arch/not-a-day", b.http))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        porter_client()
            .get(format!("{}/segments/arch/2001-01-01", b.http))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        porter_client()
            .get(format!("{}/segments/..%2Fx/2001-01-01", b.http))
            .send()
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

/// The sorted-ids hash of a copy of a segment, as porter's manifest has it.
fn ids_digest(copy: &std::path::Path) -> String {
    let conn = rusqlite::Connection::open(copy).unwrap();
    let ids: Vec<String> = conn
        .prepare("SELECT id FROM events")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    contracts::ids_digest::ids_sha256(&ids)
}

fn state_of(list: &serde_json::Value, crawl: &str, day: &str) -> String {
    list.as_array()
        .unwrap()
        .iter()
        .find(|s| s["crawl"] == crawl && s["name"] == day)
        .map(|s| s["state"].as_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// r11.1: the segment API answers only a porter's credential. Someone who reaches the
/// HTTP port, even knowing a segment's ids hash, cannot mark it archived: after
/// retention only the segment a porter archived is pruned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_porter_token_no_receipt_is_taken_and_the_segment_survives_retention() {
    let b = TestBuck::start(|c| {
        c.day_close_grace_secs = 0;
        c.retention_secs = 0;
        c.prune_check_interval_ms = 20;
    })
    .await;
    let mut c = b.client().await;
    let t = now_us() - 2 * 86_400_000_000;
    let day = day_text(t);
    for (crawl, base) in [("victim", 0), ("control", 1000)] {
        let events: Vec<_> = (0..10)
            .map(|i| plain_event(crawl, base + i * 7, t + i as i64, "e"))
            .collect();
        assert!(matches!(c.live(&events).await, Message::Ack { .. }));
    }
    eventually(
        std::time::Duration::from_secs(10),
        "both days closed",
        || async {
            let list = b.get_json("/segments").await;
            state_of(&list, "victim", &day) == "closed"
                && state_of(&list, "control", &day) == "closed"
        },
    )
    .await;
    // What a porter would know, got with the credential.
    let mut digests = std::collections::HashMap::new();
    for crawl in ["victim", "control"] {
        let bytes = porter_client()
            .get(format!("{}/segments/{crawl}/{day}", b.http))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let copy = b.dir.path().join(format!("{crawl}.sqlite"));
        std::fs::write(&copy, &bytes).unwrap();
        digests.insert(crawl, ids_digest(&copy));
    }

    let anyone = reqwest::Client::new();
    let receipt = serde_json::json!({"ids_sha256": digests["victim"], "rows": 10});
    let list = anyone
        .get(format!("{}/segments", b.http))
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 401);
    let copy = anyone
        .get(format!("{}/segments/victim/{day}", b.http))
        .send()
        .await
        .unwrap();
    assert_eq!(copy.status(), 401);
    let mark = anyone
        .post(format!("{}/segments/victim/{day}/archived", b.http))
        .json(&receipt)
        .send()
        .await
        .unwrap();
    assert_eq!(mark.status(), 401);
    let body = mark.text().await.unwrap();
    assert!(body.contains("porter"), "{body}");
    let wrong = anyone
        .post(format!("{}/segments/victim/{day}/archived", b.http))
        .bearer_auth("not-the-porter-token-at-all")
        .json(&receipt)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    // The porter archives the control day: once it is pruned, retention has run.
    let ok = porter_client()
        .post(format!("{}/segments/control/{day}/archived", b.http))
        .json(&serde_json::json!({"ids_sha256": digests["control"], "rows": 10}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    eventually(
        std::time::Duration::from_secs(10),
        "the archived day pruned",
        || async {
            let state = state_of(&b.get_json("/segments").await, "control", &day);
            state.is_empty() || state == "pruned"
        },
    )
    .await;
    let list = b.get_json("/segments").await;
    assert_eq!(state_of(&list, "victim", &day), "closed", "{list}");
    let mut text = String::new();
    b.handle().events().render_prometheus(&mut text);
    assert!(
        text.lines()
            .any(|l| l == "sluice_buck_porter_refused_total 4"),
        "refusals not counted"
    );
    b.stop().await;
}

/// r11.1: with no `porter_token` configured the segment API is closed, and says how to
/// open it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_porter_token_the_segment_api_is_closed() {
    let b = TestBuck::start(|c| c.porter_token = None).await;
    let r = porter_client()
        .get(format!("{}/segments", b.http))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body = r.text().await.unwrap();
    assert!(body.contains("porter_token"), "{body}");
    b.stop().await;
}

/// r11.7: a copy of an open segment under continuous ingest finishes (the online backup
/// restarted on every commit and never did), and holds at least the rows stored before.
/// r11.5: past `segment_downloads_max` copies in progress, a 503 with Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_segment_copies_under_ingest_and_copies_past_the_cap_get_503() {
    let b = TestBuck::start(|c| c.segment_downloads_max = 1).await;
    let mut c = b.client().await;
    let t = now_us();
    let day = day_text(t);
    let pad = "x".repeat(500);
    let mut offset = 0u64;
    for _ in 0..40 {
        let events: Vec<_> = (0..500)
            .map(|_| {
                offset += 1000;
                plain_event("busy", offset, t, &pad)
            })
            .collect();
        assert!(matches!(c.live(&events).await, Message::Ack { .. }));
    }
    let before = offset / 1000;
    let ingest = tokio::spawn(async move {
        loop {
            let events: Vec<_> = (0..50)
                .map(|_| {
                    offset += 1000;
                    plain_event("busy", offset, t, "more")
                })
                .collect();
            if !matches!(c.live(&events).await, Message::Ack { .. }) {
                break;
            }
        }
    });
    let url = format!("{}/segments/busy/{day}", b.http);
    let held = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        porter_client().get(&url).send(),
    )
    .await
    .expect("the copy of an open segment under ingest never started")
    .unwrap();
    assert_eq!(held.status(), 200);
    // The first copy is still streaming (unread): a second one is refused for now.
    let second = porter_client().get(&url).send().await.unwrap();
    assert_eq!(second.status(), 503);
    assert!(second.headers().contains_key("retry-after"));
    let bytes = tokio::time::timeout(std::time::Duration::from_secs(60), held.bytes())
        .await
        .expect("the copy never finished")
        .unwrap();
    ingest.abort();
    let copy = b.dir.path().join("open.sqlite");
    std::fs::write(&copy, &bytes).unwrap();
    let n: i64 = rusqlite::Connection::open(&copy)
        .unwrap()
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert!(
        n as u64 >= before,
        "{n} rows in the copy, {before} stored before"
    );
    b.stop().await;
}
