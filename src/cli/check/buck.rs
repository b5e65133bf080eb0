//! `sluice check buck`: is the buck up and healthy? `/healthz` answering `ok` is OK,
//! `degraded: ...` (a full disk, say) WARNING, anything else or no answer CRITICAL.

use std::time::Instant;

use super::{Outcome, State, Target, perf};

/// Runs the check.
pub async fn run(t: &Target) -> Outcome {
    let client = match t.client() {
        Ok(c) => c,
        Err(o) => return o,
    };
    let url = t.url("/healthz");
    let started = Instant::now();
    let resp = match client.get(&url).send().await {
        Ok(r) => r,
        Err(e) => return Outcome::new(State::Critical, format!("{url} unreachable: {e}")),
    };
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    let secs = started.elapsed().as_secs_f64();
    let body = body.trim();
    let (state, message) = if !status.is_success() {
        (
            State::Critical,
            format!("{url} answered {status}: {body:.200}"),
        )
    } else if body == "ok" {
        (State::Ok, format!("{url}: ok"))
    } else if body.starts_with("degraded") {
        (State::Warning, format!("{url}: {body:.300}"))
    } else {
        (State::Critical, format!("{url} answered {body:.200}"))
    };
    Outcome::new(state, message).perf(perf(
        "time",
        format!("{secs:.3}"),
        "s",
        None,
        None,
        Some(0.0),
        None,
    ))
}
