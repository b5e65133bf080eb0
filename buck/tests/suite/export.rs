use contracts::transport::Message;

use crate::common::*;

fn crawl_line(i: u64, status: u32) -> String {
    format!(
        "2026-11-21T10:00:{:02}.000Z {status:>5} 1234 http://www.example.com/{i} L http://www.example.com/ text/html #001 20261121095959999+10 sha1:AAAA - -",
        i % 60
    )
}

const RANGE: &str = "from=2026-11-21T00:00:00Z&to=2026-11-22T00:00:00Z";

async fn get(b: &TestBuck, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut r = reqwest::Client::new().get(format!("{}{path}", b.http));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().await.unwrap()
}

/// `GET /export` is behind the API token, answers the lines with their newlines, says
/// clearly what is wrong with a request, and cuts a stream at `export_max_bytes`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_is_guarded_bounded_and_answers_the_lines() {
    let b = TestBuck::start(|c| {
        c.api_token = Some("s3cret".into());
        c.export_max_bytes = 100_000;
    })
    .await;
    let mut c = b.client().await;
    let lines: Vec<String> = (0..800)
        .map(|i| crawl_line(i, [200, 404][i as usize % 2]))
        .collect();
    let events: Vec<_> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| crawl_log_event("ex", i as u64 * 200, l).unwrap())
        .collect();
    assert!(matches!(c.live(&events).await, Message::Ack { .. }));

    let path = format!("/export?crawl=ex&{RANGE}&status=404");
    assert_eq!(get(&b, &path, None).await.status(), 401);
    assert_eq!(get(&b, &path, Some("wrong")).await.status(), 401);
    let r = get(&b, &path, Some("s3cret")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    let want: String = lines
        .iter()
        .filter(|l| l.contains("  404 "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(want.len() < 100_000);
    assert_eq!(r.text().await.unwrap(), want);

    // All the lines are more than export_max_bytes: the stream is cut after its first
    // chunk (64 KiB), and the client sees a body that did not end cleanly.
    // (The cut can come before the client has read the head: then the request fails.)
    let cut = reqwest::Client::new()
        .get(format!("{}/export?crawl=ex&{RANGE}", b.http))
        .bearer_auth("s3cret")
        .send()
        .await;
    if let Ok(r) = cut {
        assert_eq!(r.status(), 200);
        assert!(
            r.bytes().await.is_err(),
            "a cut stream must not look complete"
        );
    }

    for (path, status, says) in [
        (
            "/export?crawl=ex&from=yesterday&to=2026-11-22T00:00:00Z".to_string(),
            400,
            "RFC 3339",
        ),
        (
            format!("/export?crawl=ex&{RANGE}&status=4yy"),
            400,
            "status",
        ),
        (format!("/export?crawl=../x&{RANGE}"), 400, "crawl id"),
        (
            "/export?crawl=ex&from=2026-11-22T00:00:00Z&to=2026-11-21T00:00:00Z".into(),
            400,
            "empty range",
        ),
        (
            format!("/export?crawl=nosuch&{RANGE}"),
            404,
            "check the crawl id",
        ),
        (
            "/export?crawl=ex&from=2026-11-25T00:00:00Z&to=2026-11-26T00:00:00Z".into(),
            404,
            "no segment",
        ),
    ] {
        let r = get(&b, &path, Some("s3cret")).await;
        assert_eq!(r.status().as_u16(), status, "{path}");
        let unknown = r.headers().contains_key("x-sluice-unknown-crawl");
        let body = r.text().await.unwrap();
        assert!(body.contains(says), "{path}: {body}");
        assert_eq!(unknown, says == "check the crawl id", "{path}");
    }
    b.stop().await;
}

/// A crawl whose segments cannot be listed (here its directory is a file) is answered
/// 500 naming the crawl, by `GET /export` and `POST /sql` alike, with no partial answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_sql_say_which_crawl_they_cannot_list() {
    let b = TestBuck::start(|_| {}).await;
    let segments = b.config.segments_dir();
    std::fs::create_dir_all(&segments).unwrap();
    std::fs::write(segments.join("unlistable"), "not a directory").unwrap();
    let want = "cannot list the segments of crawl unlistable";

    let r = get(&b, &format!("/export?crawl=unlistable&{RANGE}"), None).await;
    assert_eq!(r.status(), 500);
    let body = r.text().await.unwrap();
    assert!(body.contains(want), "export: {body}");

    let (status, _, body) = b
        .post(&format!("/sql?crawl=unlistable&{RANGE}"), "SELECT 1")
        .await;
    assert_eq!(status, 500);
    assert!(body.contains(want), "sql: {body}");
}
