//! A stand-in buck for the live view: serves the web app, `GET /api/bucks` and the live
//! broker on 127.0.0.1, and publishes synthetic crawl-log events (`live::synthetic`) on
//! request. Two of them publishing the same offsets publish the same event ids, as two
//! home bucks of one crawl do, so the browser's de-duplication can be watched.
//!
//! ```text
//! live-demo [--id buck-a] [--port 0] [--bucks-file bucks.json] [--rate 0] [--line-bytes 160]
//!           [--max-events-per-sec 2000]
//! ```
//!
//! It prints `{"url": "http://127.0.0.1:PORT", "id": ...}` on stdout once listening.
//! `--bucks-file` is read on each `GET /api/bucks` (a JSON array of `{id, http_url}`);
//! without it the list is this demo alone. `--rate N` publishes N events/s from start.
//! `POST /demo/publish?from=S&count=N&rate=R` publishes offsets S..S+N at R events/s
//! (R = 0: at once) and answers at once.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use live::{LiveBroker, LiveConfig, synthetic};
use serde::Deserialize;
use serde_json::{Value, json};
use tower_http::cors::{Any, CorsLayer};

struct Args {
    id: String,
    port: u16,
    bucks_file: Option<std::path::PathBuf>,
    rate: u64,
    line_bytes: usize,
    max_events_per_sec: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        id: "demo".into(),
        port: 0,
        bucks_file: None,
        rate: 0,
        line_bytes: 160,
        max_events_per_sec: 2000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let num = |v: String| v.parse::<u64>().map_err(|e| format!("{flag} {v:?}: {e}"));
        match flag.as_str() {
            "--id" => a.id = value()?,
            "--port" => a.port = num(value()?)? as u16,
            "--bucks-file" => a.bucks_file = Some(value()?.into()),
            "--rate" => a.rate = num(value()?)?,
            "--line-bytes" => a.line_bytes = num(value()?)? as usize,
            "--max-events-per-sec" => a.max_events_per_sec = num(value()?)?,
            other => {
                return Err(format!(
                    "unknown flag {other}; see the file's doc for usage"
                ));
            }
        }
    }
    Ok(a)
}

#[derive(Clone)]
struct App {
    broker: LiveBroker,
    id: String,
    url: String,
    bucks_file: Option<std::path::PathBuf>,
    line_bytes: usize,
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Publishes offsets `from..from+count` at `rate` events/s (0: at once), paced against
/// the clock so that a late tick catches up instead of slowing down.
async fn publish(app: App, from: u64, count: u64, rate: u64) {
    let start = Instant::now();
    let mut next = from;
    let end = from.saturating_add(count);
    while next < end {
        let due = if rate == 0 {
            end
        } else {
            from + (start.elapsed().as_secs_f64() * rate as f64) as u64 + 1
        };
        while next < due.min(end) {
            app.broker.publish(
                Arc::new(synthetic::event(next, now_us(), app.line_bytes)),
                false,
            );
            next += 1;
        }
        if next < end {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

#[derive(Deserialize)]
struct PublishQuery {
    from: u64,
    count: u64,
    #[serde(default)]
    rate: u64,
}

async fn publish_route(State(app): State<App>, Query(q): Query<PublishQuery>) -> impl IntoResponse {
    tokio::spawn(publish(app, q.from, q.count, q.rate));
    (StatusCode::ACCEPTED, "publishing\n")
}

async fn bucks_route(State(app): State<App>) -> impl IntoResponse {
    let own = || json!([{ "id": app.id, "http_url": app.url }]);
    let list = match &app.bucks_file {
        None => own(),
        Some(p) => match std::fs::read(p)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Value>(&b).map_err(|e| e.to_string()))
        {
            Ok(v) => v,
            Err(e) => {
                eprintln!(
                    "live-demo: cannot read {}: {e}; listing this buck only",
                    p.display()
                );
                own()
            }
        },
    };
    Json(list)
}

async fn metrics_route(State(app): State<App>) -> String {
    let mut out = String::new();
    app.broker.events().render_prometheus(&mut out);
    out
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("live-demo: {e}");
            std::process::exit(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("live-demo: cannot listen on 127.0.0.1:{}: {e}", args.port);
            std::process::exit(1);
        }
    };
    let url = match listener.local_addr() {
        Ok(a) => format!("http://{a}"),
        Err(e) => {
            eprintln!("live-demo: no local address: {e}");
            std::process::exit(1);
        }
    };
    let cfg = LiveConfig {
        max_events_per_sec: args.max_events_per_sec,
        ..LiveConfig::default()
    };
    let (broker, layer) = LiveBroker::new(cfg, args.id.clone());
    let app = App {
        broker,
        id: args.id.clone(),
        url: url.clone(),
        bucks_file: args.bucks_file,
        line_bytes: args.line_bytes,
    };
    if args.rate > 0 {
        tokio::spawn(publish(app.clone(), 0, u64::MAX, args.rate));
    }
    // The live view on one buck's page connects to every buck: cross-origin.
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers(Any);
    let router = axum::Router::new()
        .route("/api/bucks", get(bucks_route))
        .route("/demo/publish", post(publish_route))
        .route("/metrics", get(metrics_route))
        .with_state(app)
        .merge(web::router())
        .layer(layer)
        .layer(cors);
    println!("{}", json!({ "url": url, "id": args.id }));
    if let Err(e) = axum::serve(listener, router).await {
        eprintln!("live-demo: server stopped: {e}");
        std::process::exit(1);
    }
}
