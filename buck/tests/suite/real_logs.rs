use std::collections::BTreeMap;

use contracts::crawled_url::url_host;
use contracts::transport::Message;

use crate::common::*;

const LOGS: &[&str] = &[
    "ukwa-manage/h3-2017-fragment-of-a-crawl-with-dead-seeds.log",
    "ukwa-manage/h3-2017-fragment-of-a-crawl.log",
    "ukwa-manage/h3-2018-crawl.log",
    "netarchivesuite/h1-2005-2006-crawldir/crawl.log",
    "netarchivesuite/h3-3.3.0-2015/crawl.log",
    "netarchivesuite/h1-stop-reason-crawl.log",
];

const DATA: &str = "/work/shared/data/real/heritrix";

fn counts(rows: &[serde_json::Value], key: &str) -> BTreeMap<String, i64> {
    rows.iter()
        .map(|r| {
            (
                r[key].to_string().trim_matches('"').to_owned(),
                r["n"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_crawl_logs_count_the_same_in_sql_as_in_the_file() {
    let b = TestBuck::start(|_| {}).await;
    let mut c = b.client().await;
    let mut checked = 0;
    for (n, log) in LOGS.iter().enumerate() {
        let path = std::path::Path::new(DATA).join(log);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let crawl = format!("real-{n}");
        let mut by_status: BTreeMap<String, i64> = BTreeMap::new();
        let mut by_host: BTreeMap<String, i64> = BTreeMap::new();
        let mut events = Vec::new();
        let mut offset = 0u64;
        for line in text.split_inclusive('\n') {
            let l = line.trim_end_matches(['\n', '\r']);
            if !l.trim().is_empty() {
                let ev = crawl_log_event(&crawl, offset, l)
                    .unwrap_or_else(|| panic!("{log}: unparsable line {l:?}"));
                let cols: Vec<&str> = l.split_whitespace().collect();
                *by_status.entry(cols[1].to_owned()).or_default() += 1;
                *by_host.entry(url_host(cols[3])).or_default() += 1;
                events.push(ev);
            }
            offset += line.len() as u64;
        }
        // Half live, then everything again as a repair: duplicates must not count.
        let half = events.len() / 2;
        assert!(
            matches!(c.live(&events[..half]).await, Message::Ack { ref rejected, .. } if rejected.is_empty())
        );
        assert!(
            matches!(c.chunk(&crawl, &events).await, Message::Ack { ref rejected, .. } if rejected.is_empty())
        );
        let rows = b
            .query(
                &crawl,
                "SELECT status_code, count(*) AS n FROM crawled_urls GROUP BY status_code",
            )
            .await;
        assert_eq!(
            counts(&rows, "status_code"),
            by_status,
            "{log}: counts by status"
        );
        let rows = b
            .query(
                &crawl,
                "SELECT host, count(*) AS n FROM crawled_urls GROUP BY host",
            )
            .await;
        assert_eq!(counts(&rows, "host"), by_host, "{log}: counts by host");
        let rows = b.query(&crawl, "SELECT count(*) AS n FROM events").await;
        assert_eq!(
            rows[0]["n"].as_i64().unwrap(),
            events.len() as i64,
            "{log}: events"
        );
        checked += 1;
    }
    assert_eq!(checked, LOGS.len());
    b.stop().await;
}
