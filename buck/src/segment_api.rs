//! The segment API for porter: list segments, copy one consistently, record that one
//! was archived.
//!
//! - `GET /segments`: JSON list of `{crawl, day, part, name, rows, bytes, first_event,
//!   last_event, state}`, state `open`, `closed` or `archived`.
//! - `GET /segments/{crawl}/{name}`: the file, copied in one pass (`VACUUM INTO`, one read
//!   transaction, so consistent and finite even while the writer commits) into
//!   `<data_dir>/tmp`, streamed, and deleted (unlinked as soon as it is opened for
//!   streaming); at most `segment_downloads_max` at once, 503 past it.
//!
//! Every route needs the porter's credential (`porter_token`), see `porter_token.rs`;
//! the listing also takes the API token when one is configured.
//! - `POST /segments/{crawl}/{name}/archived`: the manifest's `ids_sha256` and `rows`;
//!   recorded in the segment's meta; the reply says whether the segment is unchanged.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use contracts::CrawlId;
use futures::StreamExt;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use tokio_util::io::ReaderStream;

use crate::api_state::ApiState;
use crate::error::SegmentError;
use crate::segment_files::{SegmentFile, list_all, parse_segment_name, path_of};
use crate::segment_schema::{self, SegmentState, meta};
use crate::sql_api::{ApiError, error};

/// One row of `GET /segments`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SegmentInfo {
    /// The crawl.
    pub crawl: String,
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// 0 for the day's segment, N for part `.pN`.
    pub part: u32,
    /// `YYYY-MM-DD` or `YYYY-MM-DD.pN`, as used in the URLs.
    pub name: String,
    /// Events stored.
    pub rows: u64,
    /// Bytes on disk (file and WAL).
    pub bytes: u64,
    /// Time of the earliest event (RFC 3339), if any.
    pub first_event: Option<String>,
    /// Time of the latest event (RFC 3339), if any.
    pub last_event: Option<String>,
    /// `open`, `closed`, or `archived` (closed, and a manifest that matched was posted).
    pub state: String,
}

/// Body of `POST /segments/{crawl}/{name}/archived`: the archive manifest, or at least
/// its ids hash and row count (other manifest fields are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct ArchivedManifest {
    /// sha256 (hex) of the sorted event ids, each followed by `\n`.
    #[serde(alias = "sorted_ids_sha256")]
    pub ids_sha256: String,
    /// Event count.
    #[serde(alias = "event_count", alias = "row_count")]
    pub rows: u64,
}

/// Reply of `POST /segments/{crawl}/{name}/archived`. It never carries the segment's own
/// ids hash: a reply that did would hand whoever asks the receipt that lets the buck
/// prune.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ArchivedReply {
    /// Whether the segment's ids hash and row count equal the manifest's.
    pub unchanged: bool,
}

fn time_text(us: Option<i64>) -> Option<String> {
    us.and_then(DateTime::from_timestamp_micros)
        .map(|t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true))
}

fn describe(f: &SegmentFile) -> Result<SegmentInfo, SegmentError> {
    let conn = segment_schema::open_read_only(&f.path)?;
    let (rows, first, last) = contracts::segment_sql::event_stats(&conn, "main")
        .map_err(SegmentError::sqlite(&f.path))?;
    let state = segment_schema::read_state(&conn, &f.path)?;
    let archived =
        segment_schema::get_meta(&conn, &f.path, meta::ARCHIVED_UNCHANGED)?.as_deref() == Some("1");
    let size = |p: PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let mut wal = f.path.clone().into_os_string();
    wal.push("-wal");
    Ok(SegmentInfo {
        crawl: f.crawl.to_string(),
        day: f.day.format("%Y-%m-%d").to_string(),
        part: f.part,
        name: f.name(),
        rows,
        bytes: size(f.path.clone()) + size(wal.into()),
        first_event: time_text(first),
        last_event: time_text(last),
        state: match (state, archived) {
            (SegmentState::Open, _) => "open",
            (SegmentState::Closed, false) => "closed",
            (SegmentState::Closed, true) => "archived",
            (SegmentState::Pruned, _) => "pruned",
        }
        .into(),
    })
}

pub(crate) async fn list(State(state): State<Arc<ApiState>>) -> Response {
    let dir = state.config.segments_dir();
    let r = tokio::task::spawn_blocking(move || -> Result<Vec<SegmentInfo>, String> {
        let files = list_all(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let mut out = Vec::with_capacity(files.len());
        for f in &files {
            match describe(f) {
                Ok(i) => out.push(i),
                Err(e) => tracing::warn!(error = %e, "segment left out of the listing"),
            }
        }
        Ok(out)
    })
    .await;
    match r {
        Ok(Ok(list)) => Json(list).into_response(),
        Ok(Err(m)) => error(StatusCode::INTERNAL_SERVER_ERROR, m),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("listing task failed: {e}"),
        ),
    }
}

fn locate(state: &ApiState, crawl: &str, name: &str) -> Result<PathBuf, ApiError> {
    let crawl = CrawlId::parse(crawl)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("invalid crawl id: {e}")))?;
    if parse_segment_name(name).is_none() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("segment name {name:?} is not YYYY-MM-DD or YYYY-MM-DD.pN"),
        ));
    }
    let path = path_of(&state.config.segments_dir(), &crawl, name).ok_or_else(|| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("segment name {name:?} is not YYYY-MM-DD or YYYY-MM-DD.pN"),
        )
    })?;
    if !path.exists() {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no segment {crawl}/{name} on buck {}", state.config.id),
        ));
    }
    Ok(path)
}

pub(crate) async fn download(
    State(state): State<Arc<ApiState>>,
    Path((crawl, name)): Path<(String, String)>,
) -> Response {
    let path = match locate(&state, &crawl, &name) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let Ok(permit) = state.segment_downloads.clone().try_acquire_owned() else {
        state.events.segment_download_busy();
        let mut resp = error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{} segment copies are in progress (segment_downloads_max): retry later",
                state.config.segment_downloads_max
            ),
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return resp;
    };
    let tmp_dir = state.config.data_dir.join("tmp");
    let r = tokio::task::spawn_blocking(move || -> Result<(std::fs::File, u64), String> {
        std::fs::create_dir_all(&tmp_dir)
            .map_err(|e| format!("cannot create {}: {e}", tmp_dir.display()))?;
        let tmp = tempfile::Builder::new()
            .suffix(".sqlite")
            .tempfile_in(&tmp_dir)
            .map_err(|e| format!("cannot create a temp file in {}: {e}", tmp_dir.display()))?;
        let src = segment_schema::open_read_only(&path).map_err(|e| e.to_string())?;
        // One pass inside one read transaction: a consistent snapshot even while the
        // writer commits (the online backup API restarted on every commit, so an open
        // segment under ingest never finished copying).
        src.execute("VACUUM INTO ?1", [tmp.path().to_string_lossy()])
            .map_err(|e| format!("copy of {}: {e}", path.display()))?;
        drop(src);
        let dst = Connection::open(tmp.path()).map_err(|e| format!("temp copy: {e}"))?;
        // The copy is a single self-contained file: no WAL to ship beside it.
        dst.pragma_update(None, "journal_mode", "DELETE")
            .map_err(|e| format!("temp copy: {e}"))?;
        drop(dst);
        let file = std::fs::File::open(tmp.path()).map_err(|e| format!("temp copy: {e}"))?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        // Unlink now: the open handle keeps the bytes until the stream ends, and nothing
        // is left behind if the client goes away.
        drop(tmp);
        Ok((file, len))
    })
    .await;
    let (file, len) = match r {
        Ok(Ok(x)) => x,
        Ok(Err(m)) => return error(StatusCode::INTERNAL_SERVER_ERROR, m),
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("copy task failed: {e}"),
            );
        }
    };
    // The permit travels with the body: the copy counts until its last byte is sent.
    let stream = ReaderStream::new(tokio::fs::File::from_std(file)).map(move |chunk| {
        let _held = &permit;
        chunk
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.sqlite3"),
    );
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    resp
}

pub(crate) async fn archived(
    State(state): State<Arc<ApiState>>,
    Path((crawl, name)): Path<(String, String)>,
    body: Result<Json<ArchivedManifest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let path = match locate(&state, &crawl, &name) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let Json(manifest) = match body {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected a JSON manifest with ids_sha256 and rows: {e}"),
            );
        }
    };
    let r = tokio::task::spawn_blocking(
        move || -> Result<Result<ArchivedReply, String>, SegmentError> {
            let conn = Connection::open(&path).map_err(SegmentError::sqlite(&path))?;
            conn.busy_timeout(std::time::Duration::from_secs(5))
                .map_err(SegmentError::sqlite(&path))?;
            if segment_schema::read_state(&conn, &path)? == SegmentState::Open {
                return Ok(Err(
                    "segment is still open: archive only closed segments".into()
                ));
            }
            let (ids_sha256, rows) = segment_schema::ids_digest(&conn, &path)?;
            let unchanged =
                ids_sha256.eq_ignore_ascii_case(&manifest.ids_sha256) && rows == manifest.rows;
            segment_schema::set_meta(
                &conn,
                &path,
                meta::ARCHIVED_IDS_SHA256,
                &manifest.ids_sha256,
            )?;
            segment_schema::set_meta(
                &conn,
                &path,
                meta::ARCHIVED_ROWS,
                &manifest.rows.to_string(),
            )?;
            segment_schema::set_meta(
                &conn,
                &path,
                meta::ARCHIVED_US,
                &Utc::now().timestamp_micros().to_string(),
            )?;
            segment_schema::set_meta(
                &conn,
                &path,
                meta::ARCHIVED_UNCHANGED,
                if unchanged { "1" } else { "0" },
            )?;
            Ok(Ok(ArchivedReply { unchanged }))
        },
    )
    .await;
    match r {
        Ok(Ok(Ok(reply))) => Json(reply).into_response(),
        Ok(Ok(Err(m))) => error(StatusCode::CONFLICT, m),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("archive task failed: {e}"),
        ),
    }
}
