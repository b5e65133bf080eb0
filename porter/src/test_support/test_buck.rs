//! Test bucks: small axum servers that serve real SQLite segment files through the three
//! segment endpoints, and record the "archived" notices they get.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::NaiveDate;
use contracts::segment_schema::{
    SEGMENT_SCHEMA_SQL, SEGMENT_SCHEMA_V1_SQL, SEGMENT_SCHEMA_VERSION,
};
use contracts::segment_sql;
use rusqlite::Connection;

use crate::buck_client::{ArchivedNotice, SegmentListing, SegmentState};

/// One event of a test segment.
#[derive(Debug, Clone)]
pub struct TestEvent {
    pub id: String,
    pub time_us: i64,
    pub url: String,
}

/// `n` crawl-log events of one tailer, one second apart from `start_us`.
pub fn events(tailer: u64, n: usize, start_us: i64) -> Vec<TestEvent> {
    (0..n)
        .map(|i| TestEvent {
            id: format!("{tailer:016x}-1-{}", i * 200),
            time_us: start_us + i as i64 * 1_000_000,
            url: format!("http://example.com/page/{i}"),
        })
        .collect()
}

/// The event of a test event: a crawl.log line with its URL, parsed as the tailer does.
pub fn to_event(e: &TestEvent) -> contracts::Event {
    let line = format!(
        "2026-11-02T00:00:00.000Z   200   1234 {} - - text/html #1 - - -",
        e.url
    );
    let parsed = parsers::parse_line(parsers::SourceFormat::CrawlLog, line.as_bytes(), e.time_us);
    contracts::Event {
        id: e.id.parse().expect("test event id"),
        time_us: e.time_us,
        flags: contracts::EventFlags::default(),
        original_len: line.len() as u64,
        format: parsed.format,
        crawl: contracts::CrawlId::parse("test").expect("crawl"),
        host: "crawler-1".into(),
        app: "heritrix".into(),
        fields: parsed.fields,
        raw: line.into_bytes(),
    }
}

/// Writes a segment file with the buck's schema, inserting `events` in the given order
/// (so two files of the same events have different rowids).
pub fn write_segment(path: &Path, events: &[TestEvent]) {
    write_segment_version(path, events, SEGMENT_SCHEMA_VERSION)
}

/// [`write_segment`] in schema `version` (1 or 2), as a buck of that version writes it.
pub fn write_segment_version(path: &Path, events: &[TestEvent], version: i64) {
    let _ = std::fs::remove_file(path);
    let conn = Connection::open(path).expect("open segment");
    let ddl = if version == 1 {
        SEGMENT_SCHEMA_V1_SQL
    } else {
        SEGMENT_SCHEMA_SQL
    };
    conn.execute_batch(ddl).expect("schema");
    // A closed segment, as the bucks serve them for archiving.
    conn.execute_batch(&format!(
        "INSERT INTO meta VALUES ('schema_version', '{version}'), ('state', 'closed');"
    ))
    .expect("meta");
    let tx = conn.unchecked_transaction().expect("tx");
    let mut labels = segment_sql::Labels::new();
    for e in events {
        segment_sql::insert_any(&tx, version, &mut labels, &to_event(e)).expect("insert event");
    }
    tx.commit().expect("commit");
}

/// (event id, url) pairs through the `crawled_urls` view, sorted by id.
pub fn crawled_urls(path: &Path) -> Vec<(String, String)> {
    let conn = Connection::open(path).expect("open");
    let mut stmt = conn
        .prepare("SELECT id, url FROM crawled_urls ORDER BY id")
        .expect("prepare");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect()
}

/// Event ids of a segment file, sorted.
pub fn event_ids(path: &Path) -> Vec<String> {
    let conn = Connection::open(path).expect("open");
    let mut stmt = conn
        .prepare("SELECT id FROM events ORDER BY id")
        .expect("prepare");
    stmt.query_map([], |r| r.get(0))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect()
}

#[derive(Debug, Clone)]
pub struct Served {
    pub file: PathBuf,
    pub day: NaiveDate,
    pub part: u32,
    pub state: SegmentState,
}

#[derive(Debug, Default)]
pub struct BuckState {
    pub segments: BTreeMap<(String, String), Served>,
    pub notices: Vec<(String, String, ArchivedNotice)>,
    pub downloads: usize,
}

/// A running test buck; stops when dropped.
pub struct TestBuck {
    pub id: String,
    pub url: String,
    pub state: Arc<Mutex<BuckState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestBuck {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestBuck {
    pub async fn start(id: &str) -> TestBuck {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind buck");
        let state = Arc::new(Mutex::new(BuckState::default()));
        let app = Router::new()
            .route("/segments", get(list))
            .route("/segments/{crawl}/{name}", get(download))
            .route("/segments/{crawl}/{name}/archived", post(archived))
            .with_state(state.clone());
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TestBuck {
            id: id.to_string(),
            url,
            state,
            task,
        }
    }

    /// Serves `file` as segment (crawl, day, part) in `state`.
    pub fn serve(
        &self,
        crawl: &str,
        day: NaiveDate,
        part: u32,
        file: PathBuf,
        state: SegmentState,
    ) {
        let name = name_of(day, part);
        self.state.lock().expect("lock").segments.insert(
            (crawl.to_string(), name),
            Served {
                file,
                day,
                part,
                state,
            },
        );
    }

    pub fn notices(&self) -> Vec<(String, String, ArchivedNotice)> {
        self.state.lock().expect("lock").notices.clone()
    }

    pub fn downloads(&self) -> usize {
        self.state.lock().expect("lock").downloads
    }
}

pub fn name_of(day: NaiveDate, part: u32) -> String {
    contracts::segment_path::segment_file_name(day, part)
        .trim_end_matches(".sqlite")
        .to_string()
}

/// A cluster file listing `bucks`.
pub fn write_cluster_file(path: &Path, bucks: &[&TestBuck]) {
    let mut text = String::new();
    for b in bucks {
        text.push_str(&format!("[[buck]]\nid = \"{}\"\ningest = \"127.0.0.1:1\"\nhttp_url = \"{}\"\nsince = \"2020-01-01\"\n\n", b.id, b.url));
    }
    std::fs::write(path, text).expect("write cluster file");
}

async fn list(State(s): State<Arc<Mutex<BuckState>>>) -> Json<Vec<SegmentListing>> {
    let s = s.lock().expect("lock");
    Json(
        s.segments
            .iter()
            .map(|((crawl, name), v)| SegmentListing {
                crawl: crawl.clone(),
                day: v.day,
                part: v.part,
                name: name.clone(),
                rows: 0,
                bytes: std::fs::metadata(&v.file).map(|m| m.len()).unwrap_or(0),
                first_time: None,
                last_time: None,
                state: v.state,
            })
            .collect(),
    )
}

async fn download(
    State(s): State<Arc<Mutex<BuckState>>>,
    UrlPath((crawl, name)): UrlPath<(String, String)>,
) -> Response {
    let file = {
        let mut s = s.lock().expect("lock");
        s.downloads += 1;
        s.segments.get(&(crawl, name)).map(|v| v.file.clone())
    };
    match file {
        Some(f) => match std::fs::read(&f) {
            Ok(data) => data.into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        },
        None => (StatusCode::NOT_FOUND, "no such segment").into_response(),
    }
}

async fn archived(
    State(s): State<Arc<Mutex<BuckState>>>,
    UrlPath((crawl, name)): UrlPath<(String, String)>,
    Json(n): Json<ArchivedNotice>,
) -> Response {
    let mut s = s.lock().expect("lock");
    let Some(seg) = s.segments.get_mut(&(crawl.clone(), name.clone())) else {
        return (StatusCode::NOT_FOUND, "no such segment").into_response();
    };
    seg.state = SegmentState::Archived;
    s.notices.push((crawl, name, n));
    StatusCode::NO_CONTENT.into_response()
}
