use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use contracts::status_class::StatusClass;
use contracts::transport::Message;

use crate::common::*;

/// What the test wrote into one hour: lines, status classes, bytes, hosts by lines.
#[derive(Default, Debug)]
struct Truth {
    lines: u64,
    status: BTreeMap<&'static str, u64>,
    bytes: u64,
    hosts: BTreeMap<String, u64>,
}

/// Issue 15 item 3: a closed day's summary per hour and per day equals what was
/// written (lines, status classes, bytes, distinct hosts, the busiest host), is served
/// again from the cache after the first read, and bad requests get a 400 or 404 that
/// says why. `GET /crawls` lists the crawl with its closed segment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_days_summary_per_hour_and_per_day_equals_what_was_written() {
    let b = TestBuck::start(|c| c.day_close_grace_secs = 0).await;
    let mut c = b.client().await;
    let day = (chrono::Utc::now() - chrono::Duration::days(3)).date_naive();
    let midnight = day.and_hms_opt(0, 0, 0).unwrap().and_utc();
    let codes = [200, 200, 301, 404, 503, -6, 1, 200];
    let mut truth: Vec<Truth> = (0..24).map(|_| Truth::default()).collect();
    let mut events = Vec::new();
    let mut offset = 0u64;
    for (h, t) in truth.iter_mut().enumerate() {
        // Hour h has 3h+1 lines (none missing), over h % 5 + 1 hosts; the busiest host of
        // the hour is host 0 (it gets every other line).
        for i in 0..(3 * h + 1) {
            let code = codes[(h + i) % codes.len()];
            let host = if i % 2 == 0 {
                "busy.example.org".to_owned()
            } else {
                format!("h{}-{}.example.net", h % 3, i % (h % 5 + 1))
            };
            let size = 100 + (h * 31 + i) as u64;
            let ts = midnight + chrono::Duration::seconds((h * 3600 + i * 7) as i64);
            let line = format!(
                "{} {code:>5} {size:>10} http://{host}/p/{h}/{i} L - text/html #001 - sha1:ABCDEFGHIJKLMNOPQRSTUVWXYZ234567 - -",
                ts.format("%Y-%m-%dT%H:%M:%S%.3fZ")
            );
            let ev = crawl_log_event("sum", offset, &line).expect("a crawl.log line");
            offset += line.len() as u64 + 1;
            events.push(ev);
            t.lines += 1;
            *t.status
                .entry(StatusClass::of(Some(code)).name())
                .or_default() += 1;
            t.bytes += size;
            *t.hosts.entry(host).or_default() += 1;
        }
    }
    for batch in events.chunks(100) {
        assert!(matches!(c.live(batch).await, Message::Ack { .. }));
    }
    // The day closes while batches still arrive (grace 0), so later ones land in part
    // files: the summary must add them up.
    let total: u64 = truth.iter().map(|t| t.lines).sum();
    eventually(
        Duration::from_secs(10),
        "every segment of the day closed",
        || async {
            let list = b.get_json("/crawls").await;
            let segs = list[0]["segments"].as_array().cloned().unwrap_or_default();
            !segs.is_empty()
                && segs.iter().all(|s| s["state"] == "closed")
                && segs
                    .iter()
                    .map(|s| s["rows"].as_u64().unwrap_or(0))
                    .sum::<u64>()
                    == total
        },
    )
    .await;

    let crawls = b.get_json("/crawls").await;
    assert_eq!(crawls[0]["crawl"], "sum");
    assert_eq!(crawls[0]["rows"], total);
    assert_eq!(crawls[0]["segments"][0]["name"], day.to_string());
    assert_eq!(crawls[0]["lines_last_minute"], 0);
    assert_eq!(crawls[0]["first_event"], format!("{}T00:00:00.000Z", day));

    let from = midnight.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let to =
        (midnight + chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let hourly_path = format!("/crawls/sum/summary?from={from}&to={to}&step=3600&top=1");
    for round in 0..2 {
        // The second round is merged from the cached hours: the same answer.
        let s = b.get_json(&hourly_path).await;
        let steps = s["steps"].as_array().expect("steps");
        assert_eq!(steps.len(), 24, "round {round}: {s}");
        for (h, (step, t)) in steps.iter().zip(&truth).enumerate() {
            assert_eq!(
                step["start"],
                (midnight + chrono::Duration::hours(h as i64))
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
            assert_eq!(step["lines"], t.lines, "hour {h}");
            for c in StatusClass::ALL {
                assert_eq!(
                    step["status"][c.name()].as_u64(),
                    Some(t.status.get(c.name()).copied().unwrap_or(0)),
                    "hour {h} class {}",
                    c.name()
                );
            }
            assert_eq!(step["bytes"], t.bytes, "hour {h}");
            assert_eq!(step["distinct_hosts"], t.hosts.len(), "hour {h}");
            assert_eq!(step["top_hosts"][0]["host"], "busy.example.org");
            assert_eq!(step["top_hosts"][0]["lines"], t.hosts["busy.example.org"]);
            assert_eq!(step["top_hosts"].as_array().unwrap().len(), 1);
        }
    }
    // One step for the day: hosts seen in several hours count once.
    let daily = b
        .get_json(&format!(
            "/crawls/sum/summary?from={from}&to={to}&step=86400"
        ))
        .await;
    assert_eq!(daily["steps"].as_array().unwrap().len(), 1, "{daily}");
    let all_hosts: BTreeSet<&String> = truth.iter().flat_map(|t| t.hosts.keys()).collect();
    assert_eq!(daily["steps"][0]["lines"], total);
    assert_eq!(daily["steps"][0]["distinct_hosts"], all_hosts.len());
    assert_eq!(
        daily["steps"][0]["bytes"],
        truth.iter().map(|t| t.bytes).sum::<u64>()
    );

    // Bad requests say why.
    let client = reqwest::Client::new();
    let get = |path: String| {
        let client = client.clone();
        let url = format!("{}{path}", b.http);
        async move {
            let r = client.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (s, body) = get(format!("/crawls/sum/summary?from={from}&to={to}&step=600")).await;
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("whole number of hours"), "{body}");
    let (s, body) = get("/crawls/sum/summary?from=yesterday".into()).await;
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("RFC 3339"), "{body}");
    let (s, body) = get(format!(
        "/crawls/sum/summary?from=2020-01-01T00:00:00Z&to={to}&step=3600"
    ))
    .await;
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("summary_max_steps"), "{body}");
    let (s, body) = get("/crawls/nosuch/summary".into()).await;
    assert_eq!(s, 404, "{body}");
    assert!(body.contains("no crawl"), "{body}");
    let (s, _) = get("/crawls/..%2Fetc/summary".into()).await;
    assert_eq!(s, 400);
}
