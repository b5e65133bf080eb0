//! `GET /subscribe?crawl=..&status=..&text=..`: the bus as a stream of NDJSON, for
//! monitoring scripts and `curl -N`.
//!
//! The query string is the live view's filter (`live::filter::Filter`, docs/live.md):
//! `crawl`, `host`, `app`, `format`, `status`, `text`, `text_mode`, `regex`, compiled by
//! the same code, so a filter means the same thing in a browser and in a script. Each
//! matching event is one line: the object the live view gets (`live::event_json`).
//!
//! A subscriber is a task between the bus and the HTTP body, joined by a bounded queue of
//! `client_queue` records. The task never waits on the queue: when the client reads too
//! slowly and the queue is full, the next events are counted instead of queued, and once
//! there is room again the stream gets `{"dropped": N, "reason": "queue"}` exactly where
//! they were lost. Events the bus itself skipped (the task fell `bus_capacity` behind)
//! become `{"dropped": N, "reason": "bus"}`. Ingest never waits for either: the bus
//! never blocks its publisher.
//!
//! Other records: an empty line after `keepalive_secs` without one (so idle timeouts
//! do not cut a quiet filter), and a last `{"closed": "max_duration_secs"}` or
//! `{"closed": "shutdown"}` when the buck ends the stream.

pub mod config;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_util::sync::CancellationToken;

use crate::api_state::ApiState;
use crate::events::BuckEvents;
use crate::pub_sub::{BusItem, Subscriber};

pub use config::SubscribeConfig;

/// How often a subscriber with unreported drops retries telling its client, when no
/// new event comes to push it along.
const DROP_NOTICE_RETRY: Duration = Duration::from_millis(100);

/// Why the buck ended a stream, sent as its last record.
type ClosedBy = Arc<OnceLock<&'static str>>;

/// `GET /subscribe`.
pub(crate) async fn subscribe(
    State(api): State<Arc<ApiState>>,
    params: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Response {
    let feeds = &api.events.feeds;
    let params = match params {
        Ok(Query(p)) => p,
        Err(e) => {
            feeds.subscriber_refused_filter();
            return refusal(StatusCode::BAD_REQUEST, "bad_query", e.body_text());
        }
    };
    let filter = match compile(params, &api.config.live) {
        Ok(f) => f,
        Err((code, message)) => {
            feeds.subscriber_refused_filter();
            return refusal(StatusCode::BAD_REQUEST, code, message);
        }
    };
    let Ok(permit) = api.subscribers.clone().try_acquire_owned() else {
        feeds.subscriber_refused_busy();
        let limit = api.config.subscribe.max_subscribers;
        let mut r = refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!(
                "buck {} already streams to {limit} subscribers (max_subscribers in [subscribe]); retry later",
                api.config.id
            ),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        return r;
    };
    let cfg = &api.config.subscribe;
    let (tx, rx) = mpsc::channel(cfg.client_queue);
    let closed: ClosedBy = Arc::new(OnceLock::new());
    // Subscribed before the reply: every event stored after the request is offered.
    let bus = api.bus.subscribe();
    api.events.feeds.subscriber_started();
    tokio::spawn(feed(
        Feed {
            bus,
            filter,
            tx,
            events: api.events.clone(),
            shutdown: api.shutdown.clone(),
            closed: closed.clone(),
            max_duration: (cfg.max_duration_secs > 0)
                .then(|| Duration::from_secs(cfg.max_duration_secs)),
        },
        permit,
    ));
    let keepalive = Duration::from_secs(cfg.keepalive_secs.max(1));
    let body = futures::stream::unfold(Some(rx), move |rx| {
        let closed = closed.clone();
        async move {
            let mut rx = rx?;
            match tokio::time::timeout(keepalive, rx.recv()).await {
                Ok(Some(record)) => Some((Ok::<Bytes, Infallible>(record), Some(rx))),
                Ok(None) => closed
                    .get()
                    .map(|why| (Ok(record_line(&json!({ "closed": why }))), None)),
                Err(_) => Some((Ok(Bytes::from_static(b"\n")), Some(rx))),
            }
        }
    });
    (
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (header::CACHE_CONTROL, "no-store"),
            // nginx would otherwise hold the stream back in its buffers.
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// The query string as a live-view filter. `backfill` is refused: the stream starts now.
fn compile(
    params: BTreeMap<String, String>,
    live: &live::LiveConfig,
) -> Result<live::filter::Filter, (&'static str, String)> {
    if let Some(k) = ["backfill", "backfill_secs"]
        .into_iter()
        .find(|k| params.contains_key(*k))
    {
        return Err((
            "bad_payload",
            format!(
                "{k} is for the live view: /subscribe streams from now on; read the past with POST /sql"
            ),
        ));
    }
    let object: serde_json::Map<String, Value> = params
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    live::filter::Filter::compile(&Value::Object(object), live)
        .map_err(|e| (e.code(), e.to_string()))
}

fn refusal(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        axum::Json(json!({ "error": code, "message": message })),
    )
        .into_response()
}

fn record_line(v: &Value) -> Bytes {
    let mut line = serde_json::to_vec(v).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// One subscriber's side of the bus.
struct Feed {
    bus: Subscriber,
    filter: live::filter::Filter,
    tx: mpsc::Sender<Bytes>,
    events: Arc<BuckEvents>,
    shutdown: CancellationToken,
    closed: ClosedBy,
    max_duration: Option<Duration>,
}

/// Events lost and not yet reported to the client.
#[derive(Default)]
struct Unreported {
    queue: u64,
    bus: u64,
}

impl Unreported {
    fn any(&self) -> bool {
        self.queue > 0 || self.bus > 0
    }

    /// Queues the `dropped` records owed, if there is room; true when none is owed.
    fn report(&mut self, tx: &mpsc::Sender<Bytes>) -> bool {
        for (n, reason) in [(&mut self.bus, "bus"), (&mut self.queue, "queue")] {
            if *n > 0 {
                if tx
                    .try_send(record_line(&json!({ "dropped": *n, "reason": reason })))
                    .is_err()
                {
                    return false;
                }
                *n = 0;
            }
        }
        true
    }
}

/// Moves matching events from the bus to the client's queue until the client goes, the
/// stream's time is up, or the buck stops. The permit is the subscriber's slot.
async fn feed(f: Feed, _slot: OwnedSemaphorePermit) {
    let Feed {
        mut bus,
        filter,
        tx,
        events,
        shutdown,
        closed,
        max_duration,
    } = f;
    let deadline = async {
        match max_duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let feeds = &events.feeds;
    let mut lost = Unreported::default();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                let _ = closed.set("shutdown");
                break;
            }
            _ = &mut deadline => {
                let _ = closed.set("max_duration_secs");
                break;
            }
            _ = tx.closed() => break,
            _ = tokio::time::sleep(DROP_NOTICE_RETRY), if lost.any() => {
                lost.report(&tx);
            }
            item = bus.recv() => match item {
                None => {
                    let _ = closed.set("shutdown");
                    break;
                }
                Some(BusItem::Missed(n)) => {
                    lost.bus += n;
                    feeds.subscriber_dropped_bus(n);
                    lost.report(&tx);
                }
                Some(BusItem::Event(p)) => {
                    if !filter.matches(&p.event) {
                        continue;
                    }
                    let queued = lost.report(&tx)
                        && tx
                            .try_send(record_line(&live::event_json(&p.event, p.late)))
                            .is_ok();
                    if queued {
                        feeds.subscriber_sent();
                    } else {
                        lost.queue += 1;
                        feeds.subscriber_dropped_queue(1);
                    }
                }
            }
        }
    }
    feeds.subscriber_ended();
}
