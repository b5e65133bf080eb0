//! `sluice check silence --crawl X --max-silence-secs N`: CRITICAL when the crawl's
//! newest line is older than N seconds (WARNING past `--warning`).
//!
//! "Newest line" is the largest event time (the time written in the line) the buck
//! stores for the crawl, read through the SQL API over the days that can hold it.

use chrono::{Duration as Days, SecondsFormat, Utc};
use serde_json::Value;

use super::{Outcome, State, Target, perf, unexpected};

/// Runs the check.
pub async fn run(t: &Target, crawl: &str, warning: Option<f64>, max_silence_secs: f64) -> Outcome {
    if let Err(o) = super::check_thresholds(warning, Some(max_silence_secs)) {
        return o;
    }
    let client = match t.client() {
        Ok(c) => c,
        Err(o) => return o,
    };
    let now = Utc::now();
    // Far enough back to see the last line of a crawl silent just past the limit: the
    // limit and one more day (segments are whole days).
    let back = Days::seconds(max_silence_secs.ceil() as i64) + Days::days(1);
    let from = now - back;
    let to = now + Days::hours(1);
    let text = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let url = t.url("/sql");
    let req = client
        .post(&url)
        .query(&[("crawl", crawl), ("from", &text(from)), ("to", &text(to))])
        .header("content-type", "application/sql;charset=utf-8")
        .body("SELECT max(time_us) AS last_us FROM events");
    let resp = match t.auth(req).send().await {
        Ok(r) => r,
        Err(e) => return Outcome::unknown(format!("cannot reach the SQL API at {url}: {e}")),
    };
    let perf_of = |age: f64| {
        perf(
            "silence",
            format!("{age:.0}"),
            "s",
            warning,
            Some(max_silence_secs),
            Some(0.0),
            None,
        )
    };
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Outcome::new(
            State::Critical,
            format!(
                "crawl {crawl}: no line since {} at least (no segment of it on this buck since then)",
                text(from)
            ),
        );
    }
    if !resp.status().is_success() {
        return unexpected(&format!("the SQL API at {url}"), resp).await;
    }
    let rows: Vec<Value> = match resp.json().await {
        Ok(r) => r,
        Err(e) => {
            return Outcome::unknown(format!("the SQL API at {url} did not answer rows: {e}"));
        }
    };
    let Some(last_us) = rows
        .first()
        .and_then(|r| r.get("last_us"))
        .and_then(Value::as_i64)
    else {
        return Outcome::new(
            State::Critical,
            format!("crawl {crawl}: no line since {} at least", text(from)),
        );
    };
    let age = ((now.timestamp_micros() - last_us) as f64 / 1e6).max(0.0);
    let last = chrono::DateTime::from_timestamp_micros(last_us)
        .map(text)
        .unwrap_or_default();
    let state = State::of(age, warning, Some(max_silence_secs));
    Outcome::new(
        state,
        format!("crawl {crawl}: last line {age:.0} s ago ({last}), limit {max_silence_secs} s"),
    )
    .perf(perf_of(age))
}
