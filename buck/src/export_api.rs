//! `GET /export?crawl=..&from=..&to=..[&host=..][&status=..]`: the original lines of a
//! crawl's time range, byte for byte, as `application/octet-stream`, one `\n` after each,
//! in the order they were written (`contracts::original_lines` says exactly which order
//! and which bytes). The SQL API answers JSON, which cannot carry a line that is not
//! UTF-8 as it was; this route can.
//!
//! The read API's walls: the API token (the same middleware as `/sql`), a slot of
//! `sql_max_concurrent` (503 past it), `sql_send_timeout_ms` for a client that stops
//! reading, and `export_timeout_secs` and `export_max_bytes` per stream. An error before
//! the first byte is a 4xx/5xx with a JSON `{"error": ..}`; after it the status is already
//! 200, so the stream is cut (the client sees a body that did not end cleanly) and the
//! reason is logged. A buck that holds no segment of the crawl redirects (307) to the
//! crawl's first home for the range's first day, as the SQL API does. A range whose days
//! were all pruned after archiving answers 404 with `x-sluice-pruned: <days>`: export
//! them from the archive (`sluice export --archive`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{OriginalUri, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::NaiveDate;
use contracts::CrawlId;
use contracts::original_lines::{LineFilter, write_day_lines};
use contracts::segment_path::parse_segment_file_name;
use contracts::status_filter::StatusFilter;
use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::api_state::ApiState;
use crate::segment_files::SegmentFile;
use crate::segment_schema::TOMBSTONE_SUFFIX;
use crate::sql_api::{CHUNK_BYTES, error, parse_time, query_params};

/// The query string of `GET /export`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportParams {
    crawl: Option<String>,
    from: Option<String>,
    to: Option<String>,
    host: Option<String>,
    status: Option<String>,
}

/// What the reading thread hands the response: bytes, or why it stopped.
enum Chunk {
    Data(Bytes),
    Fail(StatusCode, String),
}

/// Days of `crawl` pruned after archiving (a tombstone keeps the name).
fn pruned_days(segments_dir: &std::path::Path, crawl: &CrawlId) -> Vec<NaiveDate> {
    let mut days: Vec<NaiveDate> = std::fs::read_dir(segments_dir.join(crawl.as_str()))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let base = name.strip_suffix(TOMBSTONE_SUFFIX)?;
            parse_segment_file_name(base).map(|(day, _)| day)
        })
        .collect();
    days.sort();
    days.dedup();
    days
}

pub(crate) async fn export(
    State(state): State<Arc<ApiState>>,
    OriginalUri(uri): OriginalUri,
    params: Result<Query<ExportParams>, QueryRejection>,
) -> Response {
    let p = match query_params(params, "crawl, from, to and optionally host and status") {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let Some(crawl) = p.crawl else {
        return error(
            StatusCode::BAD_REQUEST,
            "missing crawl: say which crawl to export",
        );
    };
    let crawl = match CrawlId::parse(&crawl) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid crawl id: {e}")),
    };
    let (from, to) = match (parse_time("from", p.from), parse_time("to", p.to)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(r), _) | (_, Err(r)) => return r.into_response(),
    };
    if to <= from {
        return error(
            StatusCode::BAD_REQUEST,
            format!("empty range: to ({to}) must be after from ({from})"),
        );
    }
    let status = match p.status.as_deref().map(StatusFilter::parse).transpose() {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let filter = LineFilter {
        url_host: p.host.filter(|h| !h.is_empty()),
        status,
    };
    // An export holds a blocking thread and read transactions, as a query does: it takes
    // one of the same slots.
    let permit = match state.sql_slot() {
        Ok(p) => p,
        Err(busy) => return busy.into_response(),
    };
    let (mut files, pruned) = match state.crawl_segments(&crawl, pruned_days).await {
        Ok(listing) => listing,
        Err(failed) => return failed,
    };
    let first = from.date_naive();
    let last = (to - chrono::Duration::microseconds(1)).date_naive();
    if files.is_empty() && pruned.is_empty() {
        if let Some(home) = state.cluster.redirect_for(&state.config.id, &crawl, first) {
            let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            return match HeaderValue::from_str(&format!("{home}{pq}")) {
                Ok(v) => (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, v)]).into_response(),
                Err(_) => error(
                    StatusCode::BAD_GATEWAY,
                    format!("home buck url {home:?} is not a valid URL; fix the cluster file"),
                ),
            };
        }
        let mut resp = error(
            StatusCode::NOT_FOUND,
            format!(
                "crawl {crawl} has no segment on buck {}: check the crawl id",
                state.config.id
            ),
        );
        resp.headers_mut()
            .insert("x-sluice-unknown-crawl", HeaderValue::from_static("1"));
        return resp;
    }
    files.retain(|f| f.day >= first && f.day <= last);
    let pruned: Vec<String> = pruned
        .into_iter()
        .filter(|d| *d >= first && *d <= last)
        .map(|d| d.to_string())
        .collect();
    if files.is_empty() {
        let mut resp = error(
            StatusCode::NOT_FOUND,
            if pruned.is_empty() {
                format!(
                    "crawl {crawl} has no segment from {from} to {to} on buck {}",
                    state.config.id
                )
            } else {
                format!(
                    "crawl {crawl} from {from} to {to}: days {} were archived and pruned from buck {}; export them from the archive (--archive)",
                    pruned.join(", "),
                    state.config.id
                )
            },
        );
        if let Ok(v) = HeaderValue::from_str(&pruned.join(",")) {
            resp.headers_mut().insert("x-sluice-pruned", v);
        }
        return resp;
    }
    let mut days: Vec<NaiveDate> = files.iter().map(|f| f.day).collect();
    days.dedup();
    let (tx, mut rx) = mpsc::channel::<Chunk>(4);
    let limits = StreamLimits {
        deadline: Instant::now() + Duration::from_secs(state.config.export_timeout_secs),
        timeout_secs: state.config.export_timeout_secs,
        max_bytes: state.config.export_max_bytes,
        send_timeout: Duration::from_millis(state.config.sql_send_timeout_ms),
    };
    let rt = tokio::runtime::Handle::current();
    let label = crawl.to_string();
    let day_names: Vec<String> = days.iter().map(|d| d.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let (from_us, to_us) = (from.timestamp_micros(), to.timestamp_micros());
        let mut sink = ChunkSink {
            tx: &tx,
            rt: &rt,
            limits: &limits,
            buf: Vec::with_capacity(CHUNK_BYTES * 2),
            sent: 0,
            limit_hit: None,
        };
        let started = Instant::now();
        let mut lines = 0u64;
        for day in &days {
            let paths: Vec<_> = files
                .iter()
                .filter(|f| f.day == *day)
                .map(|f: &SegmentFile| f.path.clone())
                .collect();
            match write_day_lines(&paths, from_us, to_us, &filter, &mut |b| sink.push(b)) {
                Ok(n) => lines += n,
                Err(e) => {
                    tracing::warn!(crawl = %label, day = %day, error = %e, "export stopped");
                    let status = sink.limit_hit.unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    let _ = tx.blocking_send(Chunk::Fail(status, e.to_string()));
                    return;
                }
            }
        }
        if let Err(e) = sink.flush() {
            tracing::warn!(crawl = %label, error = %e, "export stopped");
            return;
        }
        tracing::info!(crawl = %label, lines, bytes = sink.sent, took_ms = started.elapsed().as_millis() as u64, "export done");
    });
    // Hold the status until the first chunk (or the end): an error before any byte is a
    // proper error reply.
    let first_chunk = match rx.recv().await {
        Some(Chunk::Data(b)) => Some(b),
        Some(Chunk::Fail(status, message)) => return error(status, message),
        None => None,
    };
    // After the first byte the status is sent: a failure can only cut the body.
    let rest = ReceiverStream::new(rx).map(|c| match c {
        Chunk::Data(b) => Ok(b),
        Chunk::Fail(_, message) => Err(std::io::Error::other(message)),
    });
    let stream = futures::stream::iter(first_chunk.map(Ok::<Bytes, std::io::Error>)).chain(rest);
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&day_names.join(",")) {
        headers.insert("x-sluice-days", v);
    }
    if !pruned.is_empty()
        && let Ok(v) = HeaderValue::from_str(&pruned.join(","))
    {
        headers.insert("x-sluice-pruned", v);
    }
    response
}

struct StreamLimits {
    deadline: Instant,
    timeout_secs: u64,
    max_bytes: u64,
    send_timeout: Duration,
}

/// Gathers lines into chunks of [`CHUNK_BYTES`] and sends them, within the limits.
struct ChunkSink<'a> {
    tx: &'a mpsc::Sender<Chunk>,
    rt: &'a tokio::runtime::Handle,
    limits: &'a StreamLimits,
    buf: Vec<u8>,
    sent: u64,
    /// The status of the limit that stopped the stream, if one did.
    limit_hit: Option<StatusCode>,
}

impl ChunkSink<'_> {
    fn push(&mut self, line: &[u8]) -> std::io::Result<()> {
        if self.sent + (self.buf.len() + line.len()) as u64 > self.limits.max_bytes {
            self.limit_hit = Some(StatusCode::PAYLOAD_TOO_LARGE);
            return Err(std::io::Error::other(format!(
                "export cut at {} bytes (export_max_bytes): export a shorter range",
                self.limits.max_bytes
            )));
        }
        self.buf.extend_from_slice(line);
        if self.buf.len() >= CHUNK_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if Instant::now() >= self.limits.deadline {
            self.limit_hit = Some(StatusCode::REQUEST_TIMEOUT);
            return Err(std::io::Error::other(format!(
                "export stopped after {} s (export_timeout_secs): export a shorter range",
                self.limits.timeout_secs
            )));
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(CHUNK_BYTES * 2),
        ));
        self.sent += chunk.len() as u64;
        match self.rt.block_on(tokio::time::timeout(
            self.limits.send_timeout,
            self.tx.send(Chunk::Data(chunk)),
        )) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(std::io::Error::other("the client went away")),
            Err(_) => Err(std::io::Error::other(
                "the client stopped reading (sql_send_timeout_ms)",
            )),
        }
    }
}
