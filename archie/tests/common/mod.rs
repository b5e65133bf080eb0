//! Test helpers: segment fixtures with their source lines kept for scanning, and a
//! running archie on a real TCP port.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use archie::segment_fixture::{CrawlLogGenerator, FixtureEvent, write_segment};
use archie::{ArchieConfig, ArchieHandle, LocalDirSource, SegmentSource};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Every event written into the fixture segments, with its crawl.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub events: Vec<(String, FixtureEvent)>,
}

impl Fixture {
    pub fn segments(&self) -> PathBuf {
        self.dir.path().join("segments")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// Writes `per_day` events for each (crawl, day), part `part` when not 0.
    pub fn add(&mut self, crawl: &str, day: &str, part: u32, per_day: usize, seed: u64) {
        let d = NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
        let day_start = d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_micros();
        let real = CrawlLogGenerator::real_lines(Path::new("/work/shared/data/real/heritrix"));
        let mut g = CrawlLogGenerator::new(seed, real, 7);
        let mut rng = archie::segment_fixture::Rng::new(seed ^ 0x55);
        let mut evs = Vec::with_capacity(per_day);
        for i in 0..per_day {
            // Spread over the day, with some equal times (ties must still page right).
            let t = day_start + (i as i64 * 86_400_000_000 / per_day as i64) / 1000 * 1000;
            let hosts = ["crawler-1", "crawler-2", "crawler-3"];
            evs.push(FixtureEvent {
                id: format!("{seed:016x}-{part}-{i}"),
                time_us: t,
                host: hosts[rng.below(3) as usize].to_owned(),
                app: "heritrix".into(),
                line: g.line(t),
            });
        }
        let name = if part == 0 {
            format!("{day}.sqlite")
        } else {
            format!("{day}.p{part}.sqlite")
        };
        write_segment(&self.segments().join(crawl).join(name), crawl, day, &evs).unwrap();
        self.events
            .extend(evs.into_iter().map(|e| (crawl.to_owned(), e)));
    }

    /// Ids of events of `crawls` in `[from, to)` whose line passes `keep`, in time order.
    pub fn scan(
        &self,
        crawls: &[&str],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        keep: impl Fn(&FixtureEvent) -> bool,
    ) -> Vec<String> {
        let (f, t) = (from.timestamp_micros(), to.timestamp_micros());
        let mut v: Vec<&(String, FixtureEvent)> = self
            .events
            .iter()
            .filter(|(c, e)| {
                crawls.contains(&c.as_str()) && e.time_us >= f && e.time_us < t && keep(e)
            })
            .collect();
        v.sort_by_key(|(_, e)| e.time_us);
        v.into_iter().map(|(_, e)| e.id.clone()).collect()
    }
}

pub fn fixture() -> Fixture {
    Fixture {
        dir: tempfile::tempdir().unwrap(),
        events: Vec::new(),
    }
}

pub fn ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A running archie serving its router on 127.0.0.1:0.
pub struct Server {
    pub base: String,
    pub client: reqwest::Client,
    pub shutdown: CancellationToken,
    pub handle: Option<ArchieHandle>,
    pub work: PathBuf,
}

impl Server {
    pub async fn start(config: ArchieConfig, segments: &Path) -> Server {
        Server::start_with(config, Arc::new(LocalDirSource::new(segments))).await
    }

    /// An archie over any segment source (`PorterSource` in tests/over_s3.rs).
    pub async fn start_with(config: ArchieConfig, source: Arc<dyn SegmentSource>) -> Server {
        let shutdown = CancellationToken::new();
        let work = config.work_dir.clone();
        let handle = archie::start(config, source, shutdown.clone())
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = handle.router();
        let sd = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { sd.cancelled().await })
                .await
                .unwrap();
        });
        Server {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            shutdown,
            handle: Some(handle),
            work,
        }
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(h) = self.handle.take() {
            h.join().await;
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn sql(&self, id: &str, sql: &str) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}/history/{id}/sql", self.base))
            .header("content-type", "application/sql;charset=utf-8")
            .body(sql.to_owned())
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    /// Requests a range and returns its id.
    pub async fn request(&self, crawl: &str, start: &str, end: &str) -> Value {
        let (s, v) = self
            .post(
                "/history",
                json!({"crawl": crawl, "start": start, "end": end}),
            )
            .await;
        assert_eq!(s, 202, "{v}");
        v
    }

    /// Polls the request until its state is not building, within `deadline`.
    pub async fn wait_done(&self, id: &str, deadline: Duration) -> Value {
        let until = Instant::now() + deadline;
        loop {
            let (s, v) = self.get(&format!("/history/{id}")).await;
            assert_eq!(s, 200, "{v}");
            let st = v["state"].as_str().unwrap().to_owned();
            if !["queued", "fetching", "indexing"].contains(&st.as_str()) {
                return v;
            }
            assert!(
                Instant::now() < until,
                "request {id} still {st} after {deadline:?}: {v}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every line of a search, page by page, in the order served.
    pub async fn search_all(&self, id: &str, params: &str, limit: usize) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        for _ in 0..100_000 {
            let (s, v) = self
                .get(&format!(
                    "/history/{id}/search?{params}&limit={limit}&cursor={cursor}"
                ))
                .await;
            assert_eq!(s, 200, "{params}: {v}");
            let lines = v["lines"].as_array().unwrap();
            assert!(lines.len() <= limit);
            out.extend(lines.iter().cloned());
            match v["next_cursor"].as_str() {
                Some(c) => cursor = c.to_owned(),
                None => return out,
            }
        }
        panic!("search never ended");
    }
}

pub fn ids(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l["event"].as_str().unwrap().to_owned())
        .collect()
}

pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn config(work: &Path) -> ArchieConfig {
    let mut c = ArchieConfig::new(work);
    c.index_batch_events = 997;
    c
}
