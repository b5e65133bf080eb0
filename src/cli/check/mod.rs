//! `sluice check`: a Nagios/Icinga plugin (monitoring-plugins conventions).
//!
//! Each check prints one line, `SLUICE <CHECK> <STATE> - <what> | <perfdata>`, and exits
//! 0 (OK), 1 (WARNING), 2 (CRITICAL) or 3 (UNKNOWN: bad arguments, or something the check
//! needs but cannot reach or read, so it cannot judge). Thresholds are single numbers:
//! the state is reached when the value is above it.
//!
//! - [`buck`]: `/healthz` of a buck or `sluice up`.
//! - [`silence`]: the newest line of a crawl, by the SQL API.
//! - [`spool`]: a tailer's spool against its limit, from its `/metrics`.
//! - [`archive`]: segments not archived long after their day, from `GET /segments`.

pub mod archive;
pub mod buck;
pub mod silence;
pub mod spool;

use std::fmt;
use std::time::Duration;

/// A plugin's state, and its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    /// 0.
    Ok = 0,
    /// 1.
    Warning = 1,
    /// 2.
    Critical = 2,
    /// 3.
    Unknown = 3,
}

impl State {
    /// The exit code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The state of `value` against optional warning and critical thresholds (above is
    /// bad).
    pub fn of(value: f64, warning: Option<f64>, critical: Option<f64>) -> State {
        if critical.is_some_and(|c| value > c) {
            State::Critical
        } else if warning.is_some_and(|w| value > w) {
            State::Warning
        } else {
            State::Ok
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Ok => "OK",
            State::Warning => "WARNING",
            State::Critical => "CRITICAL",
            State::Unknown => "UNKNOWN",
        })
    }
}

/// A check's verdict: the state, a sentence, and performance data.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The state.
    pub state: State,
    /// What was found, for a person.
    pub message: String,
    /// `label=value[UOM];warn;crit;min;max` items.
    pub perfdata: Vec<String>,
}

impl Outcome {
    /// A verdict without performance data.
    pub fn new(state: State, message: impl Into<String>) -> Outcome {
        Outcome {
            state,
            message: message.into(),
            perfdata: Vec::new(),
        }
    }

    /// UNKNOWN: the check could not judge.
    pub fn unknown(message: impl Into<String>) -> Outcome {
        Outcome::new(State::Unknown, message)
    }

    /// Adds a performance data item.
    pub fn perf(mut self, item: String) -> Outcome {
        self.perfdata.push(item);
        self
    }

    /// The plugin's one line, for the check named `check`.
    pub fn line(&self, check: &str) -> String {
        // `|` separates perfdata: keep it out of the message.
        let message = self.message.replace('|', "/");
        let mut s = format!("SLUICE {} {} - {message}", check.to_uppercase(), self.state);
        if !self.perfdata.is_empty() {
            s.push_str(" | ");
            s.push_str(&self.perfdata.join(" "));
        }
        s
    }
}

/// One perfdata item: `label=value<uom>;warn;crit;min;max`, empty fields left empty.
pub fn perf(
    label: &str,
    value: impl fmt::Display,
    uom: &str,
    warning: Option<f64>,
    critical: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
) -> String {
    let o = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    format!(
        "{label}={value}{uom};{};{};{};{}",
        o(warning),
        o(critical),
        o(min),
        o(max)
    )
}

/// What every check needs: where, with which credential, how long to wait.
#[derive(Debug, Clone)]
pub struct Target {
    /// Base URL of a buck or `sluice up` (for `spool`: a tailer's `--metrics` address).
    pub api: String,
    /// Bearer token, when the route needs one.
    pub token: Option<String>,
    /// Time limit of each request.
    pub timeout: Duration,
}

impl Target {
    /// `api` joined with `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        let base = self.api.trim_end_matches('/');
        if base.contains("://") {
            format!("{base}{path}")
        } else {
            format!("http://{base}{path}")
        }
    }

    /// An HTTP client with the time limit.
    pub fn client(&self) -> Result<reqwest::Client, Outcome> {
        reqwest::Client::builder()
            .timeout(self.timeout)
            .build()
            .map_err(|e| Outcome::unknown(format!("cannot make an HTTP client: {e}")))
    }

    /// Adds the token, if any.
    pub fn auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }
}

/// Checks that a warning threshold is not past the critical one.
pub fn check_thresholds(warning: Option<f64>, critical: Option<f64>) -> Result<(), Outcome> {
    for v in [warning, critical].into_iter().flatten() {
        if !v.is_finite() || v < 0.0 {
            return Err(Outcome::unknown(format!(
                "threshold {v} is not a number of 0 or more"
            )));
        }
    }
    if let (Some(w), Some(c)) = (warning, critical)
        && w > c
    {
        return Err(Outcome::unknown(format!(
            "--warning {w} is above --critical {c}: the warning threshold must be the lower one"
        )));
    }
    Ok(())
}

/// The reply to an unexpected HTTP status, as an UNKNOWN.
pub async fn unexpected(what: &str, resp: reqwest::Response) -> Outcome {
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    let hint = if status == reqwest::StatusCode::UNAUTHORIZED {
        " (give the token with --token or SLUICE_API_TOKEN)"
    } else {
        ""
    };
    Outcome::unknown(format!(
        "{what} answered {status}{hint}: {}",
        body.trim().chars().take(200).collect::<String>()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_lines() {
        assert_eq!(State::of(5.0, Some(10.0), Some(20.0)), State::Ok);
        assert_eq!(State::of(10.0, Some(10.0), Some(20.0)), State::Ok);
        assert_eq!(State::of(10.5, Some(10.0), Some(20.0)), State::Warning);
        assert_eq!(State::of(21.0, Some(10.0), Some(20.0)), State::Critical);
        assert_eq!(State::of(21.0, None, None), State::Ok);
        let o = Outcome::new(State::Warning, "a | b").perf(perf(
            "spool",
            "12.5",
            "%",
            Some(10.0),
            Some(20.0),
            Some(0.0),
            Some(100.0),
        ));
        assert_eq!(
            o.line("spool"),
            "SLUICE SPOOL WARNING - a / b | spool=12.5%;10;20;0;100"
        );
        assert!(check_thresholds(Some(30.0), Some(20.0)).is_err());
        assert!(check_thresholds(Some(-1.0), None).is_err());
        assert!(check_thresholds(Some(1.0), Some(2.0)).is_ok());
    }
}

/// `sluice check`'s arguments.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Base URL of the buck or `sluice up` (for `spool`: the tailer's metrics address).
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
    pub api: String,
    /// Bearer token: the buck's API token (`silence`, and `archive` when the buck has
    /// one), or the porter token (`archive`).
    #[arg(
        long,
        global = true,
        env = "SLUICE_API_TOKEN",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub token: Option<String>,
    /// Time limit of each request, in seconds.
    #[arg(long, global = true, default_value_t = 10)]
    pub timeout_secs: u64,
    /// Which check.
    #[command(subcommand)]
    pub what: CheckCommand,
}

/// The checks.
#[derive(Debug, clap::Subcommand)]
pub enum CheckCommand {
    /// Buck down: CRITICAL when /healthz does not answer `ok` (WARNING when degraded).
    Buck,
    /// Crawl silence: CRITICAL when the crawl's newest line is older than the limit.
    Silence {
        /// The crawl.
        #[arg(long)]
        crawl: String,
        /// CRITICAL past this many seconds without a line.
        #[arg(long, alias = "critical")]
        max_silence_secs: f64,
        /// WARNING past this many seconds.
        #[arg(long)]
        warning: Option<f64>,
    },
    /// Spool: WARNING / CRITICAL when the tailer's spool is fuller than these percents.
    Spool {
        /// WARNING above this percent of spool_max_bytes.
        #[arg(long, default_value_t = 80.0)]
        warning: f64,
        /// CRITICAL above this percent.
        #[arg(long, default_value_t = 95.0)]
        critical: f64,
    },
    /// Archive: CRITICAL when a segment is not archived this long after its day ended.
    Archive {
        /// Only this crawl's segments.
        #[arg(long)]
        crawl: Option<String>,
        /// CRITICAL past this many hours after the segment's day ended.
        #[arg(long, alias = "critical")]
        max_age_hours: f64,
        /// WARNING past this many hours.
        #[arg(long)]
        warning: Option<f64>,
    },
}

impl CheckCommand {
    fn name(&self) -> &'static str {
        match self {
            CheckCommand::Buck => "buck",
            CheckCommand::Silence { .. } => "silence",
            CheckCommand::Spool { .. } => "spool",
            CheckCommand::Archive { .. } => "archive",
        }
    }
}

/// Runs a check, prints its line, and returns the exit code.
pub fn run(args: CheckArgs) -> u8 {
    let name = args.what.name();
    let target = Target {
        api: args.api,
        token: args.token.filter(|t| !t.is_empty()),
        timeout: Duration::from_secs(args.timeout_secs.max(1)),
    };
    let outcome = match crate::runtime() {
        Err(e) => Outcome::unknown(format!("{e:#}")),
        Ok(rt) => rt.block_on(async {
            match &args.what {
                CheckCommand::Buck => buck::run(&target).await,
                CheckCommand::Silence {
                    crawl,
                    max_silence_secs,
                    warning,
                } => silence::run(&target, crawl, *warning, *max_silence_secs).await,
                CheckCommand::Spool { warning, critical } => {
                    spool::run(&target, *warning, *critical).await
                }
                CheckCommand::Archive {
                    crawl,
                    max_age_hours,
                    warning,
                } => archive::run(&target, crawl.as_deref(), *warning, *max_age_hours).await,
            }
        }),
    };
    println!("{}", outcome.line(name));
    outcome.state.code()
}
