//! The read API, trough-compatible: `POST /?segment=<crawl>` and
//! `POST /sql?crawl=..&from=..&to=..`, one SQL statement in the body, a streamed JSON
//! array of row objects in the reply.
//!
//! Each query gets a fresh connection whose main database is an empty in-memory one. The
//! crawl's segment files are ATTACHed read-only (`file:..?mode=ro`), TEMP views `events`,
//! `crawled_url` and `crawled_urls` are made as UNION ALL over them, and only *then* is
//! the authorizer installed: from that point on the statement can read, and call harmless
//! functions, and nothing else (no ATTACH, no write, no PRAGMA with a value, no
//! transaction, no `load_extension`). So the query sees exactly one crawl, and "read
//! only" is enforced by SQLite itself, not by looking at the SQL text. rusqlite refuses a
//! second statement in the body. A progress handler stops the query at `sql_timeout_ms`.
//!
//! The reply is streamed in chunks of [`CHUNK_BYTES`]. An error or a timeout before the
//! first chunk is sent is a 4xx with a JSON `{"error": ..}` body. After that the status is
//! already 200, so the array is closed with a last element `{"_sluice_error": ..}`.
//! Reaching `sql_max_rows` or `sql_max_bytes` is not an error: the array ends with a last
//! element `{"_sluice_truncated": ..}` (a truncation marker) after the rows that fit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{OriginalUri, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use contracts::CrawlId;
use contracts::original_lines::read_only_uri;
use futures::StreamExt;
use readonly_sql::{
    ReplyFormat, RowEncoder, RowFit, ValueLimits, install_authorizer, sqlite_message,
};
use rusqlite::{Connection, OpenFlags};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::api_state::ApiState;
use crate::segment_files::SegmentFile;

/// Size of the reply chunks, and how much is held back before the status is sent.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// A row's JSON may hold at most this many `sql_max_value_bytes` in all.
const MAX_ROW_VALUES: u64 = 4;

/// Most segment files one query can attach (the build's `SQLITE_MAX_ATTACHED`).
pub const MAX_ATTACHED: usize = 125;

/// `POST /?segment=<crawl>`.
#[derive(Debug, Deserialize)]
pub(crate) struct TroughParams {
    segment: Option<String>,
    format: Option<String>,
}

/// `POST /sql?crawl=..&from=..&to=..`.
#[derive(Debug, Deserialize)]
pub(crate) struct RangeParams {
    crawl: Option<String>,
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    ApiError(status, message.into()).into_response()
}

/// A route's query string, or a 400 that says what was wrong and what it `expected`.
pub(crate) fn query_params<T>(
    params: Result<Query<T>, QueryRejection>,
    expected: &str,
) -> Result<T, ApiError> {
    params.map(|Query(p)| p).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("bad query string ({e}): expected {expected}"),
        )
    })
}

/// An error reply: a status and a message, sent as `{"error": message}`.
#[derive(Debug)]
pub(crate) struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.1 });
        (
            self.0,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

/// The query parameter `name`, an RFC 3339 time; a 400 that says how to write it when it
/// is missing or not one.
pub(crate) fn parse_time(name: &str, v: Option<String>) -> Result<DateTime<Utc>, ApiError> {
    let v = v.ok_or_else(|| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("missing ?{name}=: give an RFC 3339 time, e.g. 2026-11-21T00:00:00Z"),
        )
    })?;
    DateTime::parse_from_rfc3339(&v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("{name}={v:?} is not an RFC 3339 time ({e}); e.g. 2026-11-21T00:00:00Z"),
            )
        })
}

pub(crate) async fn trough_query(
    State(state): State<Arc<ApiState>>,
    OriginalUri(uri): OriginalUri,
    params: Result<Query<TroughParams>, QueryRejection>,
    body: String,
) -> Response {
    let p = match query_params(
        params,
        "?segment=<crawl> and optionally format=json|ndjson|csv",
    ) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let Some(crawl) = p.segment else {
        return error(
            StatusCode::BAD_REQUEST,
            "missing ?segment=<crawl>: say which crawl to query",
        );
    };
    let format = match ReplyFormat::parse(p.format.as_deref()) {
        Ok(f) => f,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    query(state, uri, crawl, None, body, format).await
}

pub(crate) async fn range_query(
    State(state): State<Arc<ApiState>>,
    OriginalUri(uri): OriginalUri,
    params: Result<Query<RangeParams>, QueryRejection>,
    body: String,
) -> Response {
    let p = match query_params(params, "crawl, from and to") {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let Some(crawl) = p.crawl else {
        return error(
            StatusCode::BAD_REQUEST,
            "missing ?crawl=<crawl>: say which crawl to query",
        );
    };
    let from = match parse_time("from", p.from) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    let to = match parse_time("to", p.to) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    if to <= from {
        return error(
            StatusCode::BAD_REQUEST,
            format!("empty range: to ({to}) must be after from ({from})"),
        );
    }
    let format = match ReplyFormat::parse(p.format.as_deref()) {
        Ok(f) => f,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    query(state, uri, crawl, Some((from, to)), body, format).await
}

/// The days a half-open range touches.
fn range_days(from: DateTime<Utc>, to: DateTime<Utc>) -> (NaiveDate, NaiveDate) {
    let last = (to - chrono::Duration::microseconds(1)).date_naive();
    (from.date_naive(), last)
}

async fn query(
    state: Arc<ApiState>,
    uri: axum::http::Uri,
    crawl: String,
    range: Option<(DateTime<Utc>, DateTime<Utc>)>,
    sql: String,
    format: ReplyFormat,
) -> Response {
    state.events.sql_query();
    let permit = match state.sql_slot() {
        Ok(p) => p,
        Err(busy) => return busy.into_response(),
    };
    let response = query_inner(&state, uri, crawl, range, sql, permit, format).await;
    if response.status().is_client_error() || response.status().is_server_error() {
        state.events.sql_error();
    }
    response
}

async fn query_inner(
    state: &Arc<ApiState>,
    uri: axum::http::Uri,
    crawl: String,
    range: Option<(DateTime<Utc>, DateTime<Utc>)>,
    sql: String,
    permit: tokio::sync::OwnedSemaphorePermit,
    format: ReplyFormat,
) -> Response {
    let crawl = match CrawlId::parse(&crawl) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid crawl id: {e}")),
    };
    let (mut files, ()) = match state.crawl_segments(&crawl, |_, _| ()).await {
        Ok(listing) => listing,
        Err(failed) => return failed,
    };
    let had_any = !files.is_empty();
    if let Some((from, to)) = range {
        let (first, last) = range_days(from, to);
        files.retain(|f| f.day >= first && f.day <= last);
    }
    if !had_any {
        if let Some(home) =
            state
                .cluster
                .redirect_for(&state.config.id, &crawl, Utc::now().date_naive())
        {
            let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            let location = format!("{home}{pq}");
            return match HeaderValue::from_str(&location) {
                Ok(v) => (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, v)]).into_response(),
                Err(_) => error(
                    StatusCode::BAD_GATEWAY,
                    format!("home buck url {home:?} is not a valid URL; fix the cluster file"),
                ),
            };
        }
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "crawl {crawl} has no segment on buck {}: check the crawl id",
                state.config.id
            ),
        );
    }
    if files.is_empty() {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "crawl {crawl} has no segment in the requested range on buck {}",
                state.config.id
            ),
        );
    }
    if files.len() > MAX_ATTACHED {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "the query covers {} segment files, at most {MAX_ATTACHED} can be read at once: narrow it with POST /sql?crawl=..&from=..&to=..",
                files.len()
            ),
        );
    }
    let mut days: Vec<String> = files
        .iter()
        .map(|f| f.day.format("%Y-%m-%d").to_string())
        .collect();
    days.dedup();
    let names: Vec<String> = files.iter().map(SegmentFile::name).collect();
    let limits = Limits {
        timeout: state.config.sql_timeout(),
        timeout_ms: state.config.sql_timeout_ms,
        max_rows: state.config.sql_max_rows,
        max_bytes: state.config.sql_max_bytes,
        max_value_bytes: state.config.sql_max_value_bytes,
        max_columns: state.config.sql_max_columns,
        send_timeout: std::time::Duration::from_millis(state.config.sql_send_timeout_ms),
        format,
    };
    let (tx, mut rx) = mpsc::channel::<Chunk>(4);
    let events = state.events.clone();
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        // The permit is the query's: it is given back when the statement is done, not
        // when the handler returns.
        let _permit = permit;
        let started = Instant::now();
        let outcome = execute(&files, &sql, &limits, &tx, &rt);
        events.sql_query_took(started.elapsed());
        match &outcome {
            Outcome::TimedOut => events.sql_timeout(),
            Outcome::Truncated => events.sql_truncated(),
            Outcome::ClientTooSlow => events.sql_send_timeout(),
            _ => {}
        }
    });
    let first = match rx.recv().await {
        Some(Chunk::Data(b)) => b,
        Some(Chunk::Fail(status, message)) => return error(status, message),
        None => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the query task stopped without a reply",
            );
        }
    };
    let rest = ReceiverStream::new(rx).filter_map(|c| async move {
        match c {
            Chunk::Data(b) => Some(Ok::<Bytes, std::convert::Infallible>(b)),
            Chunk::Fail(..) => None,
        }
    });
    let stream = futures::stream::once(async move { Ok(first) }).chain(rest);
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(v) = HeaderValue::from_str(&days.join(",")) {
        headers.insert("x-sluice-days", v);
    }
    if let Ok(v) = HeaderValue::from_str(&names.join(",")) {
        headers.insert("x-sluice-segments", v);
    }
    response
}

struct Limits {
    timeout: std::time::Duration,
    timeout_ms: u64,
    max_rows: u64,
    max_bytes: u64,
    max_value_bytes: u64,
    max_columns: u32,
    send_timeout: std::time::Duration,
    format: ReplyFormat,
}

enum Chunk {
    Data(Bytes),
    Fail(StatusCode, String),
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Done,
    Truncated,
    TimedOut,
    Failed,
    ClientGone,
    ClientTooSlow,
}

/// Opens the query connection: segments attached, TEMP views made, authorizer installed.
fn prepare_connection(files: &[SegmentFile], limits: &Limits) -> Result<Connection, String> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(":memory:", flags)
        .map_err(|e| format!("cannot open a query connection: {e}"))?;
    for (i, f) in files.iter().enumerate() {
        conn.execute(
            &format!("ATTACH DATABASE ?1 AS s{i}"),
            [read_only_uri(&f.path)],
        )
        .map_err(|e| format!("cannot attach segment {}/{}: {e}", f.crawl, f.name()))?;
    }
    for view in ["events", "crawled_url", "crawled_urls"] {
        let union: Vec<String> = (0..files.len())
            .map(|i| format!("SELECT * FROM s{i}.{view}"))
            .collect();
        conn.execute_batch(&format!(
            "CREATE TEMP VIEW {view} AS {}",
            union.join(" UNION ALL ")
        ))
        .map_err(|e| format!("cannot build the {view} view: {e}"))?;
    }
    // No single value may be larger than `sql_max_value_bytes`: this stops
    // `zeroblob(1e9)`, `printf('%.*c', ..)` and friends from allocating before any row or
    // byte limit is reached. (A process-wide heap limit would also starve the writer.)
    ValueLimits {
        max_value_bytes: limits.max_value_bytes.min(limits.max_bytes),
        max_columns: limits.max_columns,
    }
    .apply(&conn)
    .map_err(|e| format!("cannot set the value size and column limits: {e}"))?;
    // A small page cache per attached segment: 125 of them at SQLite's default would
    // allow 250 MiB per query.
    for i in 0..files.len() {
        conn.execute_batch(&format!("PRAGMA s{i}.cache_size = -1024"))
            .map_err(|e| format!("cannot set the page cache: {e}"))?;
    }
    install_authorizer(&mut conn).map_err(|e| format!("cannot install the authorizer: {e}"))?;
    Ok(conn)
}

/// Runs the query and streams its rows into `tx`.
fn execute(
    files: &[SegmentFile],
    sql: &str,
    limits: &Limits,
    tx: &mpsc::Sender<Chunk>,
    rt: &tokio::runtime::Handle,
) -> Outcome {
    let fail = |status: StatusCode, message: String| {
        let _ = tx.blocking_send(Chunk::Fail(status, message));
        Outcome::Failed
    };
    let mut conn = match prepare_connection(files, limits) {
        Ok(c) => c,
        Err(m) => return fail(StatusCode::INTERNAL_SERVER_ERROR, m),
    };
    let deadline = Instant::now() + limits.timeout;
    let timed_out = Arc::new(AtomicBool::new(false));
    let flag = timed_out.clone();
    let handler = move || {
        if Instant::now() >= deadline {
            flag.store(true, Ordering::Relaxed);
            true
        } else {
            false
        }
    };
    if let Err(e) = conn.progress_handler(1000, Some(handler)) {
        return fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot install the time limit: {e}"),
        );
    }
    let timeout_message = || {
        format!(
            "query stopped after {} ms (sql_timeout_ms): narrow it with WHERE or LIMIT",
            limits.timeout_ms
        )
    };
    let mut stmt = match conn.prepare(sql) {
        Ok(s) => s,
        Err(rusqlite::Error::MultipleStatement) => {
            return fail(
                StatusCode::BAD_REQUEST,
                "only one SQL statement per request: remove what follows the first ';'".into(),
            );
        }
        Err(e) => return fail(StatusCode::BAD_REQUEST, sqlite_message(&e)),
    };
    if !stmt.readonly() {
        return fail(
            StatusCode::BAD_REQUEST,
            "only read-only statements (SELECT) are allowed".into(),
        );
    }
    let encoder = RowEncoder::new(stmt.column_names());
    let mut rows = match stmt.query([]) {
        Ok(r) => r,
        Err(e) => return fail(StatusCode::BAD_REQUEST, sqlite_message(&e)),
    };
    let mut out = Vec::with_capacity(CHUNK_BYTES * 2);
    limits.format.open(&encoder, &mut out);
    let mut started = false;
    let mut sent_bytes = 0u64;
    let mut n = 0u64;
    let mut row_buf = Vec::with_capacity(1024);
    // A client that stops reading must not hold the statement (and its read
    // transaction, which keeps the WAL from being checkpointed) for longer than
    // `sql_send_timeout_ms` per chunk.
    let send = |out: &mut Vec<u8>, started: &mut bool, sent: &mut u64| -> Option<Outcome> {
        *sent += out.len() as u64;
        *started = true;
        let chunk = Chunk::Data(Bytes::from(std::mem::take(out)));
        match rt.block_on(tokio::time::timeout(limits.send_timeout, tx.send(chunk))) {
            Ok(Ok(())) => None,
            Ok(Err(_)) => Some(Outcome::ClientGone),
            Err(_) => Some(Outcome::ClientTooSlow),
        }
    };
    let outcome = loop {
        match rows.next() {
            Ok(Some(row)) => {
                if n >= limits.max_rows {
                    limits.format.marker(
                        &mut out,
                        n,
                        "_sluice_truncated",
                        &format!("reply cut at {} rows (sql_max_rows)", limits.max_rows),
                    );
                    break Outcome::Truncated;
                }
                row_buf.clear();
                // One row is also held to four values' worth (4 x sql_max_value_bytes):
                // SQLite keeps every value of the row expanded while it is encoded.
                let room = limits
                    .max_bytes
                    .saturating_sub(sent_bytes + out.len() as u64)
                    .min(limits.max_value_bytes.saturating_mul(MAX_ROW_VALUES));
                let too_big =
                    limits.format.row(&encoder, n, row, &mut row_buf, room) == RowFit::TooBig;
                if too_big && (n == 0 || row_buf.len() as u64 >= limits.max_value_bytes) {
                    let message = format!(
                        "a row is larger than a reply may hold ({} bytes, sql_max_bytes) or than {MAX_ROW_VALUES} times sql_max_value_bytes ({} bytes): select fewer or smaller columns",
                        limits.max_bytes, limits.max_value_bytes
                    );
                    if n == 0 {
                        return fail(StatusCode::PAYLOAD_TOO_LARGE, message);
                    }
                    limits.format.marker(&mut out, n, "_sluice_error", &message);
                    break Outcome::Failed;
                }
                if too_big || sent_bytes + (out.len() + row_buf.len()) as u64 > limits.max_bytes {
                    limits.format.marker(
                        &mut out,
                        n,
                        "_sluice_truncated",
                        &format!("reply cut at {} bytes (sql_max_bytes)", limits.max_bytes),
                    );
                    break Outcome::Truncated;
                }
                out.extend_from_slice(&row_buf);
                n += 1;
                if out.len() >= CHUNK_BYTES
                    && let Some(gone) = send(&mut out, &mut started, &mut sent_bytes)
                {
                    break gone;
                }
            }
            Ok(None) => break Outcome::Done,
            Err(e) => {
                let (status, message, outcome) = if timed_out.load(Ordering::Relaxed) {
                    (
                        StatusCode::REQUEST_TIMEOUT,
                        timeout_message(),
                        Outcome::TimedOut,
                    )
                } else {
                    (StatusCode::BAD_REQUEST, sqlite_message(&e), Outcome::Failed)
                };
                if !started {
                    let _ = tx.blocking_send(Chunk::Fail(status, message));
                    return outcome;
                }
                limits.format.marker(&mut out, n, "_sluice_error", &message);
                break outcome;
            }
        }
    };
    if !matches!(outcome, Outcome::ClientGone | Outcome::ClientTooSlow) {
        limits.format.close(&mut out);
        if let Some(gone) = send(&mut out, &mut started, &mut sent_bytes) {
            return gone;
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_days_are_half_open() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let (a, b) = range_days(t("2026-11-20T10:00:00Z"), t("2026-11-22T00:00:00Z"));
        assert_eq!(
            (a.to_string(), b.to_string()),
            ("2026-11-20".into(), "2026-11-21".into())
        );
    }
}
