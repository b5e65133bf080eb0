//! The HTTP API (docs/archie.md has the reference with curl examples):
//!
//! - `POST /history` {crawl, start, end} -> 202 {id, name, state, reused}
//! - `GET /history` -> every request; `GET /history/{id}` -> one; `DELETE /history/{id}`
//! - `GET /history/{id}/search?q&mode&from&to&host&site&status&limit&cursor&order`
//! - `GET /history/{id}/histogram?q&mode&from&to&host&site&status&buckets`
//! - `GET /history/{id}/context?event&before&after`
//! - `POST /history/{id}/sql` (one SQL statement as the body)
//!
//! Handlers run SQLite on the blocking pool with a deadline; errors answer with a status
//! from [`ArchieError::status`] and `{"error": message}`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::ArchieError;
use crate::field_filter::FieldFilter;
use crate::history_service::HistoryService;
use crate::index_reader::{EventRow, IndexReader, Order, WalkFilter, WalkStats};
use crate::query_plan::{QueryPlan, SearchMode};
use crate::sql_api::{SqlLimits, run_sql};
use readonly_sql::ValueLimits;

impl IntoResponse for ArchieError {
    fn into_response(self) -> Response {
        let busy = matches!(self, ArchieError::Busy(_));
        let mut r = (self.status(), Json(json!({ "error": self.to_string() }))).into_response();
        if busy {
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("30"),
            );
        }
        r
    }
}

/// With `api_token` set, every route needs it as `Authorization: Bearer <token>`.
async fn require_token(
    State(svc): State<Arc<HistoryService>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match svc.config().api_token.as_deref() {
        Some(want) if !edge::bearer::carries(req.headers(), want) => {
            svc.events().token_refused();
            let why = if edge::bearer::presented(req.headers()).is_some() {
                "wrong token"
            } else {
                "no token"
            };
            tracing::warn!(method = %req.method(), path = %req.uri().path(), "archie request refused: {why}");
            (
            StatusCode::UNAUTHORIZED,
            [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({ "error": "archie needs a token: send `Authorization: Bearer <token>` (the bucks' api_token)" })),
        )
            .into_response()
        }
        _ => next.run(req).await,
    }
}

/// Archie's routes over `svc`.
pub fn router(svc: Arc<HistoryService>) -> Router {
    Router::new()
        .route("/history", post(create).get(list))
        .route("/history/{id}", get(status).delete(delete))
        .route("/history/{id}/search", get(search))
        .route("/history/{id}/histogram", get(histogram))
        .route("/history/{id}/context", get(context))
        .route("/history/{id}/sql", post(sql))
        .route_layer(axum::middleware::from_fn_with_state(
            svc.clone(),
            require_token,
        ))
        .with_state(svc)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    crawl: String,
    start: String,
    end: String,
}

/// A request's `start` or `end`, with an error that names the field and shows the form.
fn request_time(name: &str, v: &str) -> Result<DateTime<Utc>, ArchieError> {
    DateTime::parse_from_rfc3339(v.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            ArchieError::BadRequest(format!(
                "{name} {v:?} is not an RFC 3339 time ({e}): write it like 2026-11-20T00:00:00Z"
            ))
        })
}

async fn create(
    State(svc): State<Arc<HistoryService>>,
    body: Result<Json<CreateBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ArchieError> {
    let Json(body) = body.map_err(|e| {
        svc.events().request_rejected();
        ArchieError::BadRequest(format!(
            "history request body: {}; expected {{\"crawl\": \"name or pattern*\", \"start\": RFC 3339, \"end\": RFC 3339}}",
            e.body_text()
        ))
    })?;
    let (start, end) = match (
        request_time("start", &body.start),
        request_time("end", &body.end),
    ) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(e), _) | (_, Err(e)) => {
            svc.events().request_rejected();
            return Err(e);
        }
    };
    // Submitting saves the catalog (an fsync): off the runtime.
    let svc2 = svc.clone();
    let (r, reused) = tokio::task::spawn_blocking(move || svc2.submit(&body.crawl, start, end))
        .await
        .map_err(|e| ArchieError::Internal(e.to_string()))??;
    let mut v = serde_json::to_value(&r).map_err(|e| ArchieError::Internal(e.to_string()))?;
    v["reused"] = json!(reused);
    Ok((StatusCode::ACCEPTED, Json(v)).into_response())
}

async fn list(State(svc): State<Arc<HistoryService>>) -> Response {
    Json(json!({ "requests": svc.list() })).into_response()
}

async fn status(
    State(svc): State<Arc<HistoryService>>,
    Path(id): Path<String>,
) -> Result<Response, ArchieError> {
    Ok(Json(svc.status(&id)?).into_response())
}

async fn delete(
    State(svc): State<Arc<HistoryService>>,
    Path(id): Path<String>,
) -> Result<Response, ArchieError> {
    let svc2 = svc.clone();
    let r = tokio::task::spawn_blocking(move || svc2.delete(&id))
        .await
        .map_err(|e| ArchieError::Internal(e.to_string()))??;
    Ok(Json(r).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    mode: SearchMode,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    host: Option<String>,
    site: Option<String>,
    status: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
    #[serde(default)]
    order: Order,
    buckets: Option<usize>,
}

#[derive(Serialize)]
struct SearchStats {
    rows_scanned: u64,
    took_ms: u64,
    complete: bool,
    timed_out: bool,
    narrowed_by: &'static str,
    events_indexed: i64,
}

#[derive(Serialize)]
struct SearchReply {
    lines: Vec<EventRow>,
    next_cursor: Option<String>,
    stats: SearchStats,
}

fn query<T: serde::de::DeserializeOwned>(
    q: Result<Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, ArchieError> {
    q.map(|Query(v)| v)
        .map_err(|e| ArchieError::BadRequest(e.body_text()))
}

fn narrowed_by(plan: &QueryPlan) -> &'static str {
    plan.narrowing.as_ref().map(|n| n.name()).unwrap_or("scan")
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ArchieError> + Send + 'static,
) -> Result<T, ArchieError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ArchieError::Internal(format!("search task: {e}")))?
}

async fn search(
    State(svc): State<Arc<HistoryService>>,
    Path(id): Path<String>,
    q: Result<Query<SearchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ArchieError> {
    let q = query(q)?;
    let s = svc.searchable(&id)?;
    let limit = q
        .limit
        .unwrap_or(100)
        .clamp(1, svc.config().max_search_limit);
    let after_seq = match &q.cursor {
        Some(c) if !c.is_empty() => Some(c.parse::<i64>().map_err(|_| {
            ArchieError::BadRequest(format!(
                "cursor {c:?} is not one this API gave out; use next_cursor from the last page"
            ))
        })?),
        _ => None,
    };
    let plan = QueryPlan::new(&q.q, q.mode)?;
    let fields = FieldFilter::parse(q.site.as_deref(), q.status.as_deref())?;
    let time_limit = Duration::from_secs(svc.config().search_time_limit_secs);
    let started = Instant::now();
    let (lines, stats) = blocking(move || {
        let reader = IndexReader::open(&s.files, s.upto)?;
        let filter = WalkFilter {
            plan: &plan,
            from_us: q.from.unwrap_or(s.record.start).timestamp_micros(),
            to_us: q.to.unwrap_or(s.record.end).timestamp_micros(),
            host: q.host.as_deref().filter(|h| !h.is_empty()),
            fields: fields.as_ref(),
            after_seq,
            order: q.order,
            deadline: started + time_limit,
        };
        let mut lines = Vec::new();
        let stats = reader.walk(&filter, |row| {
            lines.push(row);
            lines.len() < limit
        })?;
        Ok((lines, (stats, s, narrowed_by(&plan))))
    })
    .await?;
    let (walk, s, narrowed) = stats;
    svc.events().search(walk.rows_scanned);
    let next_cursor = next_cursor(&lines, limit, &walk);
    Ok(Json(SearchReply {
        lines,
        next_cursor,
        stats: SearchStats {
            rows_scanned: walk.rows_scanned,
            took_ms: started.elapsed().as_millis() as u64,
            complete: s.complete,
            timed_out: walk.timed_out,
            narrowed_by: narrowed,
            events_indexed: s.upto,
        },
    })
    .into_response())
}

/// Where the next page starts: after the last line when the page is full, after the last
/// row tested when the deadline cut the walk, else nowhere (every match was returned).
fn next_cursor(lines: &[EventRow], limit: usize, walk: &WalkStats) -> Option<String> {
    if lines.len() >= limit {
        lines.last().map(|l| l.seq.to_string())
    } else if walk.timed_out {
        walk.last_seq.map(|s| s.to_string())
    } else {
        None
    }
}

async fn histogram(
    State(svc): State<Arc<HistoryService>>,
    Path(id): Path<String>,
    q: Result<Query<SearchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ArchieError> {
    let q = query(q)?;
    let s = svc.searchable(&id)?;
    let buckets = q.buckets.unwrap_or(60).clamp(1, 1000);
    let plan = QueryPlan::new(&q.q, q.mode)?;
    let time_limit = Duration::from_secs(svc.config().search_time_limit_secs);
    let started = Instant::now();
    let from = q.from.unwrap_or(s.record.start).timestamp_micros();
    let to = q.to.unwrap_or(s.record.end).timestamp_micros();
    if to <= from {
        return Err(ArchieError::BadRequest(format!(
            "to ({to} us) is not after from ({from} us)"
        )));
    }
    let bucket_us = ((to - from) as u64).div_ceil(buckets as u64).max(1) as i64;
    let host = q.host.filter(|h| !h.is_empty());
    let fields = FieldFilter::parse(q.site.as_deref(), q.status.as_deref())?;
    let (counts, walk, complete) = blocking(move || {
        let reader = IndexReader::open(&s.files, s.upto)?;
        let mut counts = vec![0u64; buckets];
        if plan.narrowing.is_none()
            && matches!(plan.verifier, crate::query_plan::Verifier::All)
            && host.is_none()
            && fields.is_none()
        {
            let n = reader.count_by_bucket(from, to, bucket_us, &mut counts)?;
            let walk = WalkStats {
                rows_scanned: n,
                ..Default::default()
            };
            return Ok((counts, walk, s.complete));
        }
        let filter = WalkFilter {
            plan: &plan,
            from_us: from,
            to_us: to,
            host: host.as_deref(),
            fields: fields.as_ref(),
            after_seq: None,
            order: Order::Asc,
            deadline: started + time_limit,
        };
        let walk = reader.walk(&filter, |row| {
            let b = ((row.time_us - from) / bucket_us) as usize;
            if let Some(c) = counts.get_mut(b) {
                *c += 1;
            }
            true
        })?;
        Ok((counts, walk, s.complete))
    })
    .await?;
    svc.events().search(walk.rows_scanned);
    Ok(Json(json!({
        "from_us": from,
        "to_us": to,
        "bucket_us": bucket_us,
        "counts": counts,
        "total": counts.iter().sum::<u64>(),
        "stats": {
            "rows_scanned": walk.rows_scanned,
            "took_ms": started.elapsed().as_millis() as u64,
            "complete": complete,
            "timed_out": walk.timed_out,
        }
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContextQuery {
    event: String,
    before: Option<i64>,
    after: Option<i64>,
}

/// Most lines `context` returns on either side.
const MAX_CONTEXT: i64 = 1000;

async fn context(
    State(svc): State<Arc<HistoryService>>,
    Path(id): Path<String>,
    q: Result<Query<ContextQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ArchieError> {
    let q = query(q)?;
    let s = svc.searchable(&id)?;
    let before = q.before.unwrap_or(10).clamp(0, MAX_CONTEXT);
    let after = q.after.unwrap_or(10).clamp(0, MAX_CONTEXT);
    let event = q.event.clone();
    let found =
        blocking(move || IndexReader::open(&s.files, s.upto)?.context(&event, before, after))
            .await?;
    let Some((seq, lines)) = found else {
        return Err(ArchieError::NotFound(format!(
            "{id} has no event {:?} (indexed so far)",
            q.event
        )));
    };
    Ok(Json(json!({ "event": q.event, "seq": seq, "lines": lines })).into_response())
}

async fn sql(
    State(svc): State<Arc<HistoryService>>,
    Path(id): Path<String>,
    body: String,
) -> Result<Response, ArchieError> {
    let s = svc.searchable(&id)?;
    let slot = svc.sql_slot().inspect_err(|_| svc.events().sql(true))?;
    let c = svc.config();
    let limits = SqlLimits {
        time_limit: Duration::from_secs(c.sql_time_limit_secs),
        max_rows: c.sql_row_limit,
        max_bytes: c.sql_max_bytes,
        values: ValueLimits {
            max_value_bytes: c.sql_max_value_bytes,
            max_columns: c.sql_max_columns,
        },
    };
    let r = blocking(move || {
        let _slot = slot;
        run_sql(&s.files, &body, &limits)
    })
    .await;
    svc.events().sql(r.is_err());
    let reply = r?;
    let mut resp = (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        reply.json,
    )
        .into_response();
    resp.headers_mut().insert(
        "x-archie-truncated",
        HeaderValue::from_static(if reply.truncated { "true" } else { "false" }),
    );
    Ok(resp)
}
