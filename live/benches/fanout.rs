//! Fan-out benchmark (not a test): the broker in this process, socket.io clients in a
//! Node process (web/tests/bench_clients.mjs, the official socket.io-client).
//!
//! 1. Throughput: 1, 10 and 100 subscribers with a `status: 4xx` filter (a third of the
//!    events match); events delivered per second, and the broker process's CPU time per
//!    1,000 events delivered.
//! 2. Latency: one subscriber, 5,000 events/s for 5 s; publish -> received p50/p99.
//!
//! `cargo bench -p sluice-live --bench fanout` (needs scripts/install-web-deps).

// A test or bench crate: its helpers may unwrap (clippy.toml allows it only in #[test] fns).
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use live::{LiveBroker, LiveConfig, synthetic};
use serde_json::Value;

#[allow(unsafe_code)]
fn cpu_secs() -> f64 {
    // SAFETY: getrusage writes into the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

struct Clients {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<Value>,
}

impl Clients {
    fn spawn(url: &str, n: usize, filter: &str) -> Clients {
        let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
        assert!(
            web.join("node_modules/socket.io-client").is_dir(),
            "run scripts/install-web-deps first"
        );
        let mut child = Command::new("node")
            .arg(web.join("tests/bench_clients.mjs"))
            .args([url, &n.to_string(), filter])
            .current_dir(&web)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run node");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&l) {
                    let _ = tx.send(v);
                }
            }
        });
        Clients { child, lines }
    }

    fn wait(&self, key: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {key} from the clients within {within:?}"));
            if v.get(key).is_some() {
                return v;
            }
            eprintln!("clients: {v}");
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        let _ = writeln!(stdin, "{line}");
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn server(cfg: LiveConfig) -> (LiveBroker, String) {
    let (broker, layer) = LiveBroker::new(cfg, "bench".into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, axum::Router::new().layer(layer)).await });
    (broker, url)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // Generous limits: this measures the pipe, not the caps.
        let cfg = LiveConfig { max_events_per_sec: u64::MAX, client_queue: 1 << 20, max_clients: 1000, ..LiveConfig::default() };
        println!("fan-out, filter status=4xx (1/3 of events match), 200-byte lines");
        println!("{:>11} {:>10} {:>14} {:>12} {:>16}", "subscribers", "published", "delivered/s", "dropped", "CPU ms/1k deliv");
        for n in [1usize, 10, 100] {
            let (broker, url) = server(cfg.clone()).await;
            let mut clients = Clients::spawn(&url, n, r#"{"status":"4xx"}"#);
            clients.wait("ready", Duration::from_secs(60));
            let published: u64 = if n == 100 { 30_000 } else { 150_000 };
            let matching = (0..published).filter(|&o| (400..500).contains(&synthetic::status_of(o))).count() as u64;
            let events: Vec<_> = (0..published).map(|o| Arc::new(synthetic::event(o, now_us(), 200))).collect();
            let cpu0 = cpu_secs();
            let t0 = Instant::now();
            // Paced in slices so the bench measures delivery, not one giant queue.
            for chunk in events.chunks(1000) {
                for e in chunk {
                    broker.publish(Arc::clone(e), false);
                }
                tokio::task::yield_now().await;
            }
            clients.send(&format!("expect {}", matching * n as u64));
            let done = clients.wait("done", Duration::from_secs(300));
            let secs = t0.elapsed().as_secs_f64();
            let cpu = cpu_secs() - cpu0;
            let delivered = done["received"].as_u64().unwrap_or(0);
            let c = broker.events().counts();
            println!(
                "{n:>11} {published:>10} {:>14.0} {:>12} {:>16.3}",
                delivered as f64 / secs,
                c.dropped_queue + c.dropped_rate,
                cpu * 1000.0 / (delivered.max(1) as f64 / 1000.0)
            );
        }

        // Latency at a steady 5,000 events/s, everything matching.
        let (broker, url) = server(cfg.clone()).await;
        let mut clients = Clients::spawn(&url, 1, "{}");
        clients.wait("ready", Duration::from_secs(60));
        let rate = 5000u64;
        let total = rate * 5;
        let t0 = Instant::now();
        let mut next = 0u64;
        while next < total {
            let due = ((t0.elapsed().as_secs_f64() * rate as f64) as u64 + 1).min(total);
            while next < due {
                broker.publish(Arc::new(synthetic::event(next, now_us(), 200)), false);
                next += 1;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        clients.send(&format!("expect {total}"));
        let done = clients.wait("done", Duration::from_secs(60));
        println!(
            "latency publish -> socket.io client at {rate}/s for 5 s: p50 {} ms, p99 {} ms, max {} ms ({} received, dropped {})",
            done["p50_ms"], done["p99_ms"], done["max_ms"], done["received"], done["dropped"]
        );
    });
}
