//! `sluice check spool --warning 80 --critical 95`: how full a tailer's spool is, in
//! percent of its limit: `sluice_tailer_spool_bytes` over `sluice_tailer_spool_max_bytes`
//! from the tailer's `/metrics` (`tailer --metrics ADDR`, or `sluice up`'s port). At 100%
//! the tailer stops reading its files.

use super::{Outcome, Target, perf, unexpected};

/// The value of an unlabelled sample `name` in Prometheus text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?.strip_prefix(' ')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Runs the check.
pub async fn run(t: &Target, warning: f64, critical: f64) -> Outcome {
    if let Err(o) = super::check_thresholds(Some(warning), Some(critical)) {
        return o;
    }
    let client = match t.client() {
        Ok(c) => c,
        Err(o) => return o,
    };
    let url = t.url("/metrics");
    let resp = match t.auth(client.get(&url)).send().await {
        Ok(r) => r,
        Err(e) => {
            return Outcome::unknown(format!("cannot read the tailer's metrics at {url}: {e}"));
        }
    };
    if !resp.status().is_success() {
        return unexpected(&url, resp).await;
    }
    let text = match resp.text().await {
        Ok(t) => t,
        Err(e) => return Outcome::unknown(format!("reading {url}: {e}")),
    };
    let (Some(bytes), Some(max)) = (
        sample(&text, "sluice_tailer_spool_bytes"),
        sample(&text, "sluice_tailer_spool_max_bytes"),
    ) else {
        return Outcome::unknown(format!(
            "{url} has no sluice_tailer_spool_bytes and sluice_tailer_spool_max_bytes: point --api at a tailer's --metrics address or at sluice up"
        ));
    };
    if max <= 0.0 {
        return Outcome::unknown(format!("{url}: sluice_tailer_spool_max_bytes is {max}"));
    }
    let pct = bytes * 100.0 / max;
    let state = super::State::of(pct, Some(warning), Some(critical));
    Outcome::new(
        state,
        format!("spool {pct:.2}% full ({bytes} of {max} bytes)"),
    )
    .perf(perf(
        "spool",
        format!("{pct:.4}"),
        "%",
        Some(warning),
        Some(critical),
        Some(0.0),
        Some(100.0),
    ))
    .perf(perf(
        "spool_bytes",
        bytes,
        "B",
        None,
        None,
        Some(0.0),
        Some(max),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples() {
        let t = "# HELP sluice_tailer_spool_bytes x\nsluice_tailer_spool_bytes 42\nsluice_tailer_spool_bytes_x 1\nsluice_tailer_spool_max_bytes 1073741824\n";
        assert_eq!(sample(t, "sluice_tailer_spool_bytes"), Some(42.0));
        assert_eq!(
            sample(t, "sluice_tailer_spool_max_bytes"),
            Some(1073741824.0)
        );
        assert_eq!(sample(t, "sluice_tailer_spool"), None);
    }
}
