use std::time::Duration;

use contracts::transport::Message;

use crate::common::*;

async fn segment_states(b: &TestBuck, crawl: &str) -> Vec<(String, String, u64)> {
    let list = b.get_json("/segments").await;
    list.as_array()
        .unwrap()
        .iter()
        .filter(|s| s["crawl"] == crawl)
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["state"].as_str().unwrap().to_owned(),
                s["rows"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_events_after_close_go_to_part_files_without_duplicates() {
    let b = TestBuck::start(|c| c.day_close_grace_secs = 0).await;
    let mut c = b.client().await;
    // Three days ago: the day is over and the grace is 0, so its segment closes at the
    // writer's next check.
    let t = now_us() - 3 * 86_400_000_000;
    let day = day_text(t);
    let first: Vec<_> = (0..4).map(|i| plain_event("old", i, t, "first")).collect();
    assert!(matches!(c.live(&first).await, Message::Ack { .. }));
    eventually(Duration::from_secs(10), "day segment closed", || async {
        segment_states(&b, "old").await == vec![(day.clone(), "closed".into(), 4)]
    })
    .await;

    // Later events for that day go to part 1; re-sent old ones stay duplicates.
    let later: Vec<_> = (2..7).map(|i| plain_event("old", i, t, "later")).collect();
    assert!(matches!(c.chunk("old", &later).await, Message::Ack { .. }));
    eventually(Duration::from_secs(10), "part 1 closed", || async {
        segment_states(&b, "old").await
            == vec![
                (day.clone(), "closed".into(), 4),
                (format!("{day}.p1"), "closed".into(), 3),
            ]
    })
    .await;
    let again: Vec<_> = (5..9).map(|i| plain_event("old", i, t, "again")).collect();
    assert!(matches!(c.live(&again).await, Message::Ack { .. }));
    eventually(Duration::from_secs(10), "part 2 closed", || async {
        segment_states(&b, "old").await.last() == Some(&(format!("{day}.p2"), "closed".into(), 2))
    })
    .await;

    // The read API covers the day and its parts: every id once.
    let (status, headers, body) = b
        .post(
            "/?segment=old",
            "SELECT count(*) AS n, count(DISTINCT id) AS d FROM events",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-sluice-days"], day.as_str());
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((v[0]["n"].as_i64(), v[0]["d"].as_i64()), (Some(9), Some(9)));

    // Closed is durable: after a restart the day is still closed and takes no new rows.
    let dir = b.stop().await;
    let b = TestBuck::start_in(dir, |c| c.day_close_grace_secs = 3600).await;
    let mut c = b.client().await;
    assert!(matches!(
        c.live(&[plain_event("old", 100, t, "after restart")]).await,
        Message::Ack { .. }
    ));
    let states = segment_states(&b, "old").await;
    assert_eq!(states.len(), 4, "{states:?}");
    assert_eq!(states[3], (format!("{day}.p3"), "open".into(), 1));
    b.stop().await;
}
