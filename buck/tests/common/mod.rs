//! Test helpers: a buck on port 0 with its HTTP API served, a tailer client speaking the
//! real protocol, event builders, and a poll-with-deadline helper.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use buck::{BuckConfig, BuckHandle};
use bytes::Bytes;
use contracts::keys::KeyPair;
pub use contracts::transport::codec;
use contracts::transport::{ClientHello, Message, ServerHello, Session};
use contracts::{CrawlId, Event, EventFlags, EventId, Format};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

pub struct TestBuck {
    pub handle: Option<BuckHandle>,
    pub shutdown: CancellationToken,
    pub ingest: SocketAddr,
    pub http: String,
    pub dir: tempfile::TempDir,
    pub tailer: KeyPair,
    pub buck_key: crypto_box::PublicKey,
    pub config: BuckConfig,
}

impl TestBuck {
    pub async fn start(tweak: impl FnOnce(&mut BuckConfig)) -> TestBuck {
        let dir = tempfile::tempdir().expect("temp dir");
        TestBuck::start_in(dir, tweak).await
    }

    pub async fn start_in(dir: tempfile::TempDir, tweak: impl FnOnce(&mut BuckConfig)) -> TestBuck {
        let tailer_path = dir.path().join("tailer.key");
        let tailer = KeyPair::load_or_create(&tailer_path).expect("tailer key");
        let mut config = BuckConfig::new("b1", dir.path().join("data"));
        config.allowed_tailers = vec![tailer.public_text()];
        config.close_check_interval_ms = 20;
        config.porter_token = Some(PORTER_TOKEN.into());
        tweak(&mut config);
        let ingest_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind ingest");
        let ingest = ingest_listener.local_addr().expect("addr");
        let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind http");
        let http = format!("http://{}", http_listener.local_addr().expect("addr"));
        let shutdown = CancellationToken::new();
        let handle = buck::start(config.clone(), ingest_listener, shutdown.clone())
            .await
            .expect("buck starts");
        let buck_key =
            contracts::keys::parse_public_key(handle.public_key(), "buck key").expect("key");
        let router = handle.router();
        let token = shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(http_listener, router)
                .with_graceful_shutdown(token.cancelled_owned())
                .await;
        });
        TestBuck {
            handle: Some(handle),
            shutdown,
            ingest,
            http,
            dir,
            tailer,
            buck_key,
            config,
        }
    }

    pub fn handle(&self) -> &BuckHandle {
        self.handle.as_ref().expect("running")
    }

    pub fn counters(&self) -> buck::BuckCounters {
        self.handle().events().snapshot()
    }

    /// Whether a tailer connection is accepted now.
    pub async fn client_try(&self) -> bool {
        Client::connect(self.ingest, &self.tailer, &self.buck_key, true)
            .await
            .is_ok()
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.ingest, &self.tailer, &self.buck_key, true)
            .await
            .expect("client connects")
    }

    pub async fn stop(mut self) -> tempfile::TempDir {
        self.shutdown.cancel();
        if let Some(h) = self.handle.take() {
            h.join().await.expect("clean stop");
        }
        self.dir
    }

    /// POSTs `sql` to `path` (e.g. `/?segment=c`); returns the status, headers and body.
    pub async fn post(
        &self,
        path: &str,
        sql: &str,
    ) -> (reqwest::StatusCode, reqwest::header::HeaderMap, String) {
        let r = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
            .post(format!("{}{path}", self.http))
            .header("content-type", "application/sql;charset=utf-8")
            .body(sql.to_owned())
            .send()
            .await
            .expect("http request");
        let status = r.status();
        let headers = r.headers().clone();
        (status, headers, r.text().await.expect("body"))
    }

    /// Runs a trough query and parses the JSON array it returns.
    pub async fn query(&self, crawl: &str, sql: &str) -> Vec<serde_json::Value> {
        let (status, _, body) = self.post(&format!("/?segment={crawl}"), sql).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        porter_client()
            .get(format!("{}{path}", self.http))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json")
    }
}

/// The porter token every `TestBuck` is configured with.
pub const PORTER_TOKEN: &str = "test-porter-token-0123456789";

/// An HTTP client that sends the porter's credential, as porter does.
pub fn porter_client() -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {PORTER_TOKEN}")).unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(h)
        .build()
        .expect("http client")
}

/// A tailer connection speaking the real protocol.
pub struct Client {
    pub framed: Framed<TcpStream, LengthDelimitedCodec>,
    pub session: Session,
    pub seq: u64,
    /// What the session was made of (salt, cipher, the hellos' transcript), for a test
    /// that makes another session for the same connection (with a wrong key, say).
    pub made_of: SessionParts,
}

#[derive(Clone, Copy)]
pub struct SessionParts {
    pub salt: [u8; 16],
    pub cipher: contracts::transport::Cipher,
    pub transcript: Option<[u8; 32]>,
}

impl SessionParts {
    /// The parts of a connection that never got past its hello.
    pub fn none() -> SessionParts {
        SessionParts {
            salt: [0; 16],
            cipher: contracts::transport::Cipher::SalsaBox,
            transcript: None,
        }
    }
}

pub fn hello(tailer: &KeyPair, encrypted: bool) -> ClientHello {
    ClientHello::new(
        7,
        *tailer.public().as_bytes(),
        encrypted,
        "test-host".into(),
    )
}

/// Sends `hello` on a fresh connection; returns the framed stream and the buck's answer.
pub async fn say_hello(
    addr: SocketAddr,
    hello: &ClientHello,
) -> (Framed<TcpStream, LengthDelimitedCodec>, Option<ServerHello>) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let mut framed = Framed::new(stream, codec());
    framed
        .send(Bytes::from(hello.encode()))
        .await
        .expect("send hello");
    let answer = match framed.next().await {
        Some(Ok(b)) => Some(ServerHello::decode(&b).expect("server hello decodes")),
        _ => None,
    };
    (framed, answer)
}

impl Client {
    pub async fn connect(
        addr: SocketAddr,
        tailer: &KeyPair,
        buck_key: &crypto_box::PublicKey,
        encrypted: bool,
    ) -> Result<Client, String> {
        Client::connect_with(addr, tailer, buck_key, &hello(tailer, encrypted)).await
    }

    /// Connects with a hello of the test's making (another tailer id, say).
    pub async fn connect_with(
        addr: SocketAddr,
        tailer: &KeyPair,
        buck_key: &crypto_box::PublicKey,
        hello: &ClientHello,
    ) -> Result<Client, String> {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let mut framed = Framed::new(stream, codec());
        let hello_bytes = hello.encode();
        framed
            .send(Bytes::from(hello_bytes.clone()))
            .await
            .expect("send hello");
        let Some(Ok(answer)) = framed.next().await else {
            return Err("connection closed".into());
        };
        let joined = contracts::transport::join(
            hello,
            &hello_bytes,
            &answer,
            Some((tailer.secret(), buck_key)),
        )
        .map_err(|e| match e {
            contracts::transport::JoinError::Refused(reason) => reason,
            e => e.to_string(),
        })?;
        let Ok(ServerHello::Accept { salt, .. }) = ServerHello::decode(&answer) else {
            return Err("not an acceptance".into());
        };
        let made_of = SessionParts {
            salt,
            cipher: joined.cipher,
            transcript: contracts::transport::transcript(joined.version, &hello_bytes, &answer),
        };
        Ok(Client {
            framed,
            session: joined.session,
            seq: 0,
            made_of,
        })
    }

    pub async fn send(&mut self, msg: &Message) -> Vec<u8> {
        let wire = self.session.seal(msg).expect("seal");
        self.framed
            .send(Bytes::from(wire.clone()))
            .await
            .expect("send");
        wire
    }

    pub async fn recv(&mut self) -> Option<Message> {
        let b = tokio::time::timeout(Duration::from_secs(30), self.framed.next())
            .await
            .expect("reply within 30 s")?
            .ok()?;
        Some(self.session.open(&b).expect("reply opens"))
    }

    /// Sends events as one live packet and returns the reply.
    pub async fn live(&mut self, events: &[Event]) -> Message {
        self.seq += 1;
        let msg = Message::Live {
            seq: self.seq,
            frames: frames(events),
        };
        self.send(&msg).await;
        self.recv().await.expect("a reply")
    }

    /// Sends events as one bucket chunk (the repair path) and returns the reply.
    pub async fn chunk(&mut self, crawl: &str, events: &[Event]) -> Message {
        self.seq += 1;
        let msg = Message::BucketChunk {
            seq: self.seq,
            crawl: CrawlId::parse(crawl).expect("crawl"),
            bucket_start: 0,
            chunk: 0,
            last: true,
            frames: frames(events),
        };
        self.send(&msg).await;
        self.recv().await.expect("a reply")
    }

    /// Waits for the buck to close the connection; true if it did within 10 s.
    pub async fn closed_by_buck(&mut self) -> bool {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), self.framed.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }
}

pub fn frames(events: &[Event]) -> Bytes {
    let mut buf = Vec::new();
    for e in events {
        assert!(
            contracts::frame::put_event_frame(&mut buf, e),
            "event fits a frame"
        );
    }
    Bytes::from(buf)
}

pub fn plain_event(crawl: &str, offset: u64, time_us: i64, line: &str) -> Event {
    Event {
        id: EventId {
            tailer: 7,
            file_seq: 1,
            offset,
        },
        time_us,
        flags: EventFlags::default(),
        original_len: line.len() as u64,
        format: Format::Plain,
        crawl: CrawlId::parse(crawl).expect("crawl"),
        host: "crawler-1".into(),
        app: "test".into(),
        fields: vec![],
        raw: line.as_bytes().to_vec(),
    }
}

/// The UTC day (`YYYY-MM-DD`) of `t_us`, as segment names spell it.
pub fn day_text(t_us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(t_us)
        .expect("a time in range")
        .date_naive()
        .format("%Y-%m-%d")
        .to_string()
}

pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// A crawl.log line as the tailer makes it, with the real parser (`parsers`). The read
/// time is the line's own time, as if the tailer read it as it was written.
pub fn crawl_log_event(crawl: &str, offset: u64, line: &str) -> Option<Event> {
    let time = chrono::DateTime::parse_from_rfc3339(line.split(' ').next()?).ok()?;
    let mut builder = parsers::EventBuilder::new(
        parsers::SourceFormat::CrawlLog,
        7,
        1,
        CrawlId::parse(crawl).ok()?,
        "crawler-1".into(),
        "heritrix".into(),
        60_000,
    );
    let ev = builder.build(
        parsers::RawRecord::line(offset, line.as_bytes().to_vec()),
        time.timestamp_micros(),
    );
    (ev.format == Format::CrawlLog).then_some(ev)
}

/// Polls `check` until it returns true or `deadline` passes.
pub async fn eventually<F, Fut>(deadline: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
