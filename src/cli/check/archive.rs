//! `sluice check archive --max-age-hours N`: CRITICAL when a segment is still not
//! archived N hours after its day ended (WARNING past `--warning`), from the buck's
//! `GET /segments` (the porter's token, or the API token when the buck has one).

use chrono::{NaiveDate, Utc};
use serde_json::Value;

use super::{Outcome, State, Target, perf, unexpected};

/// Runs the check, over one crawl's segments or all.
pub async fn run(
    t: &Target,
    crawl: Option<&str>,
    warning: Option<f64>,
    max_age_hours: f64,
) -> Outcome {
    if let Err(o) = super::check_thresholds(warning, Some(max_age_hours)) {
        return o;
    }
    let client = match t.client() {
        Ok(c) => c,
        Err(o) => return o,
    };
    let url = t.url("/segments");
    let resp = match t.auth(client.get(&url)).send().await {
        Ok(r) => r,
        Err(e) => return Outcome::unknown(format!("cannot reach {url}: {e}")),
    };
    if !resp.status().is_success() {
        return unexpected(&url, resp).await;
    }
    let segments: Vec<Value> = match resp.json().await {
        Ok(s) => s,
        Err(e) => return Outcome::unknown(format!("{url} did not answer a segment list: {e}")),
    };
    let now = Utc::now();
    // (hours since the day ended, crawl/name) of each segment not archived.
    let mut waiting: Vec<(f64, String)> = Vec::new();
    let mut total = 0usize;
    for s in &segments {
        let field = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or("");
        if crawl.is_some_and(|c| c != field("crawl")) {
            continue;
        }
        total += 1;
        if matches!(field("state"), "archived" | "pruned") {
            continue;
        }
        let Ok(day) = NaiveDate::parse_from_str(field("day"), "%Y-%m-%d") else {
            return Outcome::unknown(format!("{url}: a segment with day {:?}", field("day")));
        };
        let Some(end) = day.succ_opt().and_then(|d| d.and_hms_opt(0, 0, 0)) else {
            continue;
        };
        let hours = (now.naive_utc() - end).num_seconds() as f64 / 3600.0;
        waiting.push((
            hours.max(0.0),
            format!("{}/{}", field("crawl"), field("name")),
        ));
    }
    waiting.sort_by(|a, b| b.0.total_cmp(&a.0));
    let oldest = waiting.first().map(|w| w.0).unwrap_or(0.0);
    let late = waiting.iter().filter(|w| w.0 > max_age_hours).count();
    let warn_late = warning.map(|w| waiting.iter().filter(|x| x.0 > w).count());
    let state = State::of(oldest, warning, Some(max_age_hours));
    let message = match waiting.first() {
        None => format!("{total} segments, every one archived"),
        Some((h, name)) if state != State::Ok => format!(
            "{} segments not archived after {} h, oldest {name} ({h:.1} h after its day)",
            if state == State::Critical {
                late
            } else {
                warn_late.unwrap_or(late)
            },
            if state == State::Critical {
                max_age_hours
            } else {
                warning.unwrap_or(max_age_hours)
            },
        ),
        Some((h, name)) => format!(
            "{total} segments, {} not archived yet, oldest {name} ({h:.1} h after its day)",
            waiting.len()
        ),
    };
    Outcome::new(state, message)
        .perf(perf(
            "oldest_unarchived",
            format!("{oldest:.1}"),
            "h",
            warning,
            Some(max_age_hours),
            Some(0.0),
            None,
        ))
        .perf(perf(
            "unarchived",
            waiting.len(),
            "",
            None,
            None,
            Some(0.0),
            None,
        ))
        .perf(perf("late", late, "", None, None, Some(0.0), None))
}
