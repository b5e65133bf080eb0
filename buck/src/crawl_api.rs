//! The crawls API, for the crawls page and dashboards:
//!
//! - `GET /crawls`: every crawl this buck holds, with its segments (state, rows, first
//!   and last event), lines in the last minute, and its homes today;
//! - `GET /crawls/{crawl}/summary?from=T&to=T&step=S&top=N`: one object per step with
//!   lines, status classes, bytes, distinct website hosts and the top hosts, from the
//!   segments; closed hours come from [`SummaryCache`](crate::summary_cache::SummaryCache).
//!
//! Both need the API token (like SQL) and share the SQL API's concurrency permits.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{OriginalUri, Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, SecondsFormat, TimeZone, Utc};
use contracts::CrawlId;
use durable_file::FileStamp;
use serde::{Deserialize, Serialize};

use crate::api_state::ApiState;
use crate::crawl_summary::{HourSummary, StepSummary, merge_step, summarize_hours};
use crate::error::SegmentError;
use crate::segment_files::{SegmentFile, list_all, list_crawl};
use crate::segment_schema::{self, SegmentState};
use crate::sql_api::{ApiError, query_params};
use crate::summary_cache::SegmentFigures;

/// Most top hosts a step may list.
const MAX_TOP: usize = 100;

/// `GET /crawls/{crawl}/summary` parameters.
#[derive(Debug, Deserialize)]
pub(crate) struct SummaryParams {
    from: Option<String>,
    to: Option<String>,
    step: Option<i64>,
    top: Option<usize>,
}

/// The reply of `GET /crawls/{crawl}/summary`.
#[derive(Debug, Serialize)]
struct SummaryReply {
    crawl: String,
    from: String,
    to: String,
    step: i64,
    steps: Vec<StepSummary>,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn bad(message: String) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message)
}

fn parse_time(name: &str, v: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            bad(format!(
                "{name}={v:?} is not an RFC 3339 time ({e}); e.g. 2026-11-21T00:00:00Z"
            ))
        })
}

pub(crate) async fn summary(
    State(state): State<Arc<ApiState>>,
    UrlPath(crawl): UrlPath<String>,
    OriginalUri(uri): OriginalUri,
    params: Result<Query<SummaryParams>, QueryRejection>,
) -> Response {
    match summary_reply(state, crawl, uri, params).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn summary_reply(
    state: Arc<ApiState>,
    crawl: String,
    uri: axum::http::Uri,
    params: Result<Query<SummaryParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = query_params(params, "from, to (RFC 3339), step (seconds), top")?;
    let crawl = CrawlId::parse(&crawl).map_err(|e| bad(format!("bad crawl id: {e}")))?;
    let step = p.step.unwrap_or(3600);
    if step <= 0 || step % 3600 != 0 {
        return Err(bad(format!(
            "step={step}: a summary step is a whole number of hours in seconds (3600, 86400, ...)"
        )));
    }
    let now = Utc::now();
    let to = match &p.to {
        Some(v) => parse_time("to", v)?,
        None => now,
    };
    let from = match &p.from {
        Some(v) => parse_time("from", v)?,
        None => to - chrono::Duration::hours(24),
    };
    // Steps start on whole hours: `from` rounds down, `to` up.
    let first_hour = from.timestamp().div_euclid(3600);
    let end_hour = (to.timestamp() + 3599).div_euclid(3600);
    if end_hour <= first_hour {
        return Err(bad(format!(
            "from={} is not before to={}: the range is half-open [from, to)",
            rfc3339(from),
            rfc3339(to)
        )));
    }
    let step_hours = step / 3600;
    let steps = (end_hour - first_hour + step_hours - 1) / step_hours;
    if steps as u64 > state.config.summary_max_steps {
        return Err(bad(format!(
            "{steps} steps of {step} s asked for; at most summary_max_steps = {} per request: \
             use a longer step or a shorter range",
            state.config.summary_max_steps
        )));
    }
    let top = p.top.unwrap_or(10).min(MAX_TOP);
    let end_hour = first_hour + steps * step_hours;
    let dir = state.config.segments_dir();
    let first_day = day_of_hour(first_hour);
    let last_day = day_of_hour(end_hour - 1);
    let files: Vec<SegmentFile> = list_crawl(&dir, &crawl)
        .map_err(|e| {
            ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot list {}: {e}", dir.display()),
            )
        })?
        .into_iter()
        .filter(|f| f.day >= first_day && f.day <= last_day)
        .collect();
    if files.is_empty()
        && let Some(home) = state
            .cluster
            .redirect_for(&state.config.id, &crawl, first_day)
    {
        let target = format!(
            "{home}{}{}",
            uri.path()
                .strip_prefix(state.config.base_path.as_str())
                .unwrap_or(uri.path()),
            uri.query().map(|q| format!("?{q}")).unwrap_or_default()
        );
        return Ok((
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, target)],
            "",
        )
            .into_response());
    }
    if files.is_empty() && !dir.join(crawl.as_str()).exists() {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!(
                "no crawl {crawl:?} on buck {}: see GET /crawls for the crawls it holds",
                state.config.id
            ),
        ));
    }
    let permit = match state.sql_slot() {
        Ok(p) => p,
        Err(busy) => return Ok(busy.into_response()),
    };
    let st = state.clone();
    let hours = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        hour_summaries(&st, &files, first_hour, end_hour)
    })
    .await
    .map_err(|e| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("summary task failed: {e}"),
        )
    })?
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let steps = (0..steps)
        .map(|i| {
            let start_hour = first_hour + i * step_hours;
            let in_step = hours.iter().flat_map(|(_, per_hour)| {
                per_hour[(start_hour - first_hour) as usize
                    ..((start_hour - first_hour + step_hours) as usize).min(per_hour.len())]
                    .iter()
                    .map(|h| h.as_ref())
            });
            merge_step(rfc3339(hour_start(start_hour)), in_step, top)
        })
        .collect();
    Ok(Json(SummaryReply {
        crawl: crawl.to_string(),
        from: rfc3339(hour_start(first_hour)),
        to: rfc3339(hour_start(end_hour)),
        step,
        steps,
    })
    .into_response())
}

fn hour_start(hour: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(hour * 3600, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn day_of_hour(hour: i64) -> NaiveDate {
    hour_start(hour).date_naive()
}

type PerHour = Vec<Arc<HourSummary>>;

/// How often closed segments of recent days are looked for to summarize ahead of the
/// first request.
const WARM_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Days back (before today) whose closed segments are summarized ahead of time: the days
/// a crawls page shows first.
const WARM_DAYS: i64 = 2;

/// Summarizes closed segments of the last [`WARM_DAYS`] days into the cache as they
/// appear, so the first summary of a closed day is a merge (a million-line day takes
/// seconds to read). Yields to queries: it runs only with a free SQL permit.
pub(crate) async fn warm_summaries(
    state: Arc<ApiState>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        let Ok(permit) = state.sql_queries.clone().try_acquire_owned() else {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(WARM_EVERY) => continue,
            }
        };
        let st = state.clone();
        let stop = shutdown.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let since = Utc::now().date_naive() - chrono::Duration::days(WARM_DAYS);
            let files = list_all(&st.config.segments_dir()).unwrap_or_default();
            for f in files.into_iter().filter(|f| f.day >= since) {
                if stop.is_cancelled() {
                    return;
                }
                if let Err(e) = warm_one(&st, &f) {
                    tracing::debug!(segment = %f.path.display(), error = %e, "summary warm-up skipped a segment");
                }
            }
        })
        .await;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(WARM_EVERY) => {}
        }
    }
}

/// Summarizes one closed segment's day into the cache unless it is there; an open
/// segment is left alone (it changes; requests read it).
fn warm_one(state: &ApiState, f: &SegmentFile) -> Result<(), SegmentError> {
    let Some(stamp) = FileStamp::of(&f.path) else {
        return Ok(());
    };
    let first = f
        .day
        .and_hms_opt(0, 0, 0)
        .map_or(0, |t| t.and_utc().timestamp())
        / 3600;
    if (first..first + 24).all(|h| state.summaries.get(&f.path, stamp, h).is_some()) {
        return Ok(());
    }
    let conn = segment_schema::open_read_only(&f.path)?;
    if segment_schema::read_state(&conn, &f.path)? != SegmentState::Closed {
        return Ok(());
    }
    drop(conn);
    hour_summaries(state, std::slice::from_ref(f), first, first + 24).map(|_| ())
}

/// For each file, the summaries of every hour in `[first_hour, end_hour)` (empty for
/// hours outside its day): from the cache for closed segments, else read.
fn hour_summaries(
    state: &ApiState,
    files: &[SegmentFile],
    first_hour: i64,
    end_hour: i64,
) -> Result<Vec<(SegmentFile, PerHour)>, SegmentError> {
    let empty = Arc::new(HourSummary::default());
    let mut out = Vec::new();
    for f in files {
        let day_first = f
            .day
            .and_hms_opt(0, 0, 0)
            .map_or(0, |t| t.and_utc().timestamp())
            / 3600;
        let (lo, hi) = (first_hour.max(day_first), end_hour.min(day_first + 24));
        let mut per_hour: PerHour = vec![empty.clone(); (end_hour - first_hour) as usize];
        if lo < hi {
            // A file gone since the listing (pruned, quarantined) has nothing to add.
            let Some(stamp) = FileStamp::of(&f.path) else {
                continue;
            };
            let conn = match segment_schema::open_read_only(&f.path) {
                Ok(c) => c,
                Err(e) if !f.path.exists() => {
                    tracing::debug!(error = %e, "segment gone while summarizing");
                    continue;
                }
                Err(e) => return Err(e),
            };
            let closed = segment_schema::read_state(&conn, &f.path)? == SegmentState::Closed;
            let cached: Option<Vec<Arc<HourSummary>>> = if closed {
                (lo..hi)
                    .map(|h| state.summaries.get(&f.path, stamp, h))
                    .collect()
            } else {
                None
            };
            let hours = match cached {
                Some(h) => h,
                None => {
                    let read: Vec<Arc<HourSummary>> = summarize_hours(&conn, &f.path, lo, hi)?
                        .into_iter()
                        .map(Arc::new)
                        .collect();
                    if closed {
                        for (h, s) in (lo..hi).zip(&read) {
                            state.summaries.put(&f.path, stamp, h, s.clone());
                        }
                    }
                    read
                }
            };
            for (h, s) in (lo..hi).zip(hours) {
                per_hour[(h - first_hour) as usize] = s;
            }
        }
        out.push((f.clone(), per_hour));
    }
    Ok(out)
}

/// One segment in `GET /crawls`.
#[derive(Debug, Serialize)]
struct SegmentInfo {
    name: String,
    day: String,
    part: u32,
    state: &'static str,
    rows: u64,
    first_event: Option<String>,
    last_event: Option<String>,
    bytes: u64,
}

/// One crawl in `GET /crawls`.
#[derive(Debug, Serialize)]
struct CrawlInfo {
    crawl: String,
    rows: u64,
    first_event: Option<String>,
    last_event: Option<String>,
    lines_last_minute: u64,
    segments: Vec<SegmentInfo>,
    homes: Vec<HomeInfo>,
}

/// A home buck of a crawl today.
#[derive(Debug, Serialize)]
struct HomeInfo {
    id: String,
    http_url: String,
    this_buck: bool,
}

fn micros_rfc3339(us: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// Whether the segment is closed, its figures, and its events since `since_us` (0 for a
/// closed one: its day is over). A closed segment is counted once.
fn segment_figures(
    state: &ApiState,
    path: &Path,
    since_us: i64,
) -> Result<(bool, SegmentFigures, u64), SegmentError> {
    let stamp = FileStamp::of(path);
    if let Some(f) = stamp.and_then(|s| state.summaries.figures(path, s)) {
        return Ok((true, f, 0));
    }
    let conn = segment_schema::open_read_only(path)?;
    let closed = segment_schema::read_state(&conn, path)? == SegmentState::Closed;
    let table = if contracts::segment_sql::schema_version(&conn, "main")
        .map_err(SegmentError::sqlite(path))?
        >= 2
    {
        "event"
    } else {
        "events"
    };
    let (rows, first_us, last_us): (i64, Option<i64>, Option<i64>) = conn
        .query_row(
            &format!("SELECT count(*), min(time_us), max(time_us) FROM {table}"),
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .map_err(SegmentError::sqlite(path))?;
    let figures = SegmentFigures {
        rows: rows.max(0) as u64,
        first_us,
        last_us,
    };
    if closed {
        if let Some(s) = stamp {
            state.summaries.put_figures(path, s, figures);
        }
        return Ok((true, figures, 0));
    }
    let recent: i64 = conn
        .query_row(
            &format!("SELECT count(*) FROM {table} WHERE time_us >= ?1"),
            [since_us],
            |r| r.get(0),
        )
        .map_err(SegmentError::sqlite(path))?;
    Ok((false, figures, recent.max(0) as u64))
}

pub(crate) async fn list(State(state): State<Arc<ApiState>>) -> Response {
    let permit = match state.sql_slot() {
        Ok(p) => p,
        Err(busy) => return busy.into_response(),
    };
    let st = state.clone();
    let res = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        crawl_infos(&st)
    })
    .await;
    match res {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => ApiError(StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
        Err(e) => ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("task failed: {e}"),
        )
        .into_response(),
    }
}

fn crawl_infos(state: &ApiState) -> Result<Vec<CrawlInfo>, String> {
    let dir = state.config.segments_dir();
    let files = list_all(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let now = Utc::now();
    let since_us = (now - chrono::Duration::seconds(60)).timestamp_micros();
    let today = now.date_naive();
    let cluster = state.cluster.get();
    let mut crawls: BTreeMap<String, CrawlInfo> = BTreeMap::new();
    for f in files {
        let (closed, figures, recent) = match segment_figures(state, &f.path, since_us) {
            Ok(v) => v,
            // A segment pruned or quarantined since the listing is skipped, not an error.
            Err(_) if !f.path.exists() => continue,
            Err(e) => return Err(e.to_string()),
        };
        let bytes = std::fs::metadata(&f.path).map(|m| m.len()).unwrap_or(0);
        let c = crawls
            .entry(f.crawl.to_string())
            .or_insert_with(|| CrawlInfo {
                crawl: f.crawl.to_string(),
                rows: 0,
                first_event: None,
                last_event: None,
                lines_last_minute: 0,
                segments: Vec::new(),
                homes: cluster
                    .as_ref()
                    .map(|cl| {
                        cl.home_bucks(&f.crawl, today)
                            .homes()
                            .iter()
                            .map(|id| HomeInfo {
                                id: id.clone(),
                                http_url: cl
                                    .buck(id)
                                    .map(|b| b.http_url.clone())
                                    .unwrap_or_default(),
                                this_buck: *id == state.config.id,
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        let (rows, first, last) = (figures.rows, figures.first_us, figures.last_us);
        c.rows += rows;
        c.lines_last_minute += recent;
        let (first_s, last_s) = (
            first.and_then(micros_rfc3339),
            last.and_then(micros_rfc3339),
        );
        if first_s.is_some() && (c.first_event.is_none() || first_s < c.first_event) {
            c.first_event = first_s.clone();
        }
        if last_s.is_some() && last_s > c.last_event {
            c.last_event = last_s.clone();
        }
        c.segments.push(SegmentInfo {
            name: f.name(),
            day: f.day.to_string(),
            part: f.part,
            state: if closed { "closed" } else { "open" },
            rows,
            first_event: first_s,
            last_event: last_s,
            bytes,
        });
    }
    Ok(crawls.into_values().collect())
}
