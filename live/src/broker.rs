//! `LiveBroker`: the buck's handle for publishing, and the socket.io namespace that
//! accepts browsers, checks their token and caps, and compiles their filters.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use contracts::Event;
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;

use crate::LiveConfig;
use crate::client::{self, Client, Offer};
use crate::events::LiveEvents;
use crate::filter::Filter;
use crate::item::Item;

/// The broker. Cloning is cheap: every clone publishes to the same clients.
#[derive(Clone)]
pub struct LiveBroker {
    inner: Arc<Inner>,
}

impl fmt::Debug for LiveBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveBroker")
            .field("buck_id", &self.inner.buck_id)
            .finish_non_exhaustive()
    }
}

struct Inner {
    cfg: Arc<LiveConfig>,
    buck_id: String,
    started: Instant,
    events: Arc<LiveEvents>,
    /// One lock over the ring and the client list, so a subscriber's backfill and its
    /// first live event can neither overlap nor leave a gap. Only publish, connect,
    /// subscribe and disconnect take it, each for microseconds: a std mutex, never held
    /// across an await.
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    ring: VecDeque<Arc<Item>>,
    clients: Vec<(socketioxide::socket::Sid, Arc<Client>)>,
}

/// The connect middleware's refusal, sent to the client as `connect_error`.
#[derive(Debug, thiserror::Error)]
#[error(
    "live view token missing or wrong for buck {buck}; pass auth {{ token }} as configured in the buck's [live] token"
)]
struct TokenRefused {
    buck: String,
}

impl LiveBroker {
    /// A broker for the buck `buck_id`, and the layer to add to the buck's axum router
    /// (it answers `/socket.io/`; add tower-http CORS when pages on other origins connect).
    pub fn new(config: LiveConfig, buck_id: String) -> (LiveBroker, SocketIoLayer) {
        let (layer, io) = SocketIo::builder()
            .max_buffer_size(config.transport_packets.max(4))
            .build_layer();
        let broker = LiveBroker {
            inner: Arc::new(Inner {
                cfg: Arc::new(config),
                buck_id,
                started: Instant::now(),
                events: Arc::new(LiveEvents::default()),
                state: Mutex::new(State::default()),
            }),
        };
        let on_connect = {
            let b = broker.clone();
            // socketioxide sends the CONNECT ack, then calls this closure, and only
            // spawns the future it returns. Registering the `subscribe` handler in that
            // future raced the client's first `subscribe` (seen: a lost subscription
            // under load); in the closure it runs right after the ack, microseconds
            // before a client could answer it. The web app also re-sends an
            // unanswered `subscribe`.
            move |s: SocketRef| {
                b.connect(s);
                std::future::ready(())
            }
        };
        let check_token = {
            let b = broker.clone();
            move |TryData(auth): TryData<Value>| {
                let b = b.clone();
                async move { b.check_token(auth.ok()).await }
            }
        };
        io.ns("/", on_connect.with(check_token));
        (broker, layer)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Offers a newly committed event to every subscriber whose filter matches. Never
    /// blocks on a client or awaits: a client whose queue is full loses the event and is
    /// told how many it lost.
    pub fn publish(&self, event: Arc<Event>, late: bool) {
        let now = Instant::now();
        let second = now.duration_since(self.inner.started).as_secs();
        let item = Arc::new(Item::new(event, late, now));
        let cfg = &self.inner.cfg;
        let ev = &self.inner.events;
        ev.published();
        let mut st = self.lock();
        if cfg.ring_events > 0 {
            if st.ring.len() >= cfg.ring_events {
                st.ring.pop_front();
            }
            st.ring.push_back(Arc::clone(&item));
        }
        for (_, c) in &st.clients {
            match c.offer(&item, second, cfg) {
                Offer::Skipped | Offer::Queued => {}
                Offer::DroppedQueue => ev.dropped_queue(1),
                Offer::DroppedRate => ev.dropped_rate(1),
            }
        }
    }

    /// The buck's bus skipped `n` events before the broker saw them: every client is told.
    pub fn missed(&self, n: u64) {
        if n == 0 {
            return;
        }
        self.inner.events.bus_missed(n);
        for (_, c) in &self.lock().clients {
            c.bus_missed(n);
        }
    }

    /// The broker's counters.
    pub fn events(&self) -> Arc<LiveEvents> {
        Arc::clone(&self.inner.events)
    }

    /// The buck id sent in `hello`.
    pub fn buck_id(&self) -> &str {
        &self.inner.buck_id
    }

    async fn check_token(&self, auth: Option<Value>) -> Result<(), TokenRefused> {
        let Some(want) = &self.inner.cfg.token else {
            return Ok(());
        };
        let got = auth
            .as_ref()
            .and_then(|a| a.get("token"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if edge::bearer::constant_time_eq(got.as_bytes(), want.as_bytes()) {
            Ok(())
        } else {
            self.inner.events.refused_token();
            Err(TokenRefused {
                buck: self.inner.buck_id.clone(),
            })
        }
    }

    fn connect(&self, s: SocketRef) {
        let cfg = &self.inner.cfg;
        let client = Arc::new(Client::new());
        {
            let mut st = self.lock();
            if st.clients.len() >= cfg.max_clients {
                drop(st);
                self.inner.events.refused_clients();
                let _ = s.emit(
                    "capped",
                    &json!({
                        "cap": "max_clients", "limit": cfg.max_clients,
                        "message": format!("buck {} already serves {} live clients; retry later", self.inner.buck_id, cfg.max_clients),
                    }),
                );
                let _ = s.disconnect();
                return;
            }
            st.clients.push((s.id, Arc::clone(&client)));
        }
        self.inner.events.connected();
        let _ = s.emit(
            "hello",
            &json!({
                "buck_id": self.inner.buck_id,
                "limits": {
                    "max_events_per_sec": cfg.max_events_per_sec, "client_queue": cfg.client_queue,
                    "backfill_events": cfg.backfill_events, "backfill_secs": cfg.backfill_secs,
                    "max_session_secs": cfg.max_session_secs, "max_regex_bytes": cfg.max_regex_bytes,
                },
            }),
        );

        let b = self.clone();
        let c = Arc::clone(&client);
        s.on(
            "subscribe",
            move |s: SocketRef, TryData(payload): TryData<Value>| {
                let (b, c) = (b.clone(), Arc::clone(&c));
                async move { b.subscribe(&s, &c, payload.unwrap_or(Value::Null)) }
            },
        );
        let c = Arc::clone(&client);
        s.on("unsubscribe", move || {
            let c = Arc::clone(&c);
            async move { c.unsubscribe() }
        });
        let b = self.clone();
        let c = Arc::clone(&client);
        s.on_disconnect(move |s: SocketRef| {
            let (b, c) = (b.clone(), Arc::clone(&c));
            async move {
                c.close();
                let mut st = b.lock();
                let before = st.clients.len();
                st.clients.retain(|(id, _)| *id != s.id);
                if st.clients.len() < before {
                    b.inner.events.disconnected();
                }
            }
        });
        tokio::spawn(client::run(client, s, Arc::clone(cfg), self.events()));
    }

    fn subscribe(&self, s: &SocketRef, client: &Client, payload: Value) {
        let filter = match Filter::compile(&payload, &self.inner.cfg) {
            Ok(f) => Arc::new(f),
            Err(e) => {
                self.inner.events.subscribed(false);
                let keeps = client.filter().is_some();
                let _ = s.emit(
                    "error",
                    &json!({ "code": e.code(), "message": e.to_string(), "previous_filter_kept": keeps }),
                );
                return;
            }
        };
        self.inner.events.subscribed(true);
        let st = self.lock();
        let backfill = backfill(&st.ring, &filter, Instant::now());
        // Installed under the ring lock: the next publish is the first live event.
        client.subscribe(filter, backfill);
    }
}

/// The last `filter.backfill` matching events, oldest first: those no older than
/// `filter.backfill_secs`, or, for a catch-up (`filter.after_us`), those whose event time
/// is at or after it, whatever their age, so a reconnecting client gets the lines it
/// missed while the buck was down (as far as the ring reaches).
fn backfill(ring: &VecDeque<Arc<Item>>, filter: &Filter, now: Instant) -> Vec<Arc<Item>> {
    if filter.backfill == 0 {
        return Vec::new();
    }
    let oldest = now.checked_sub(Duration::from_secs(filter.backfill_secs));
    let in_range = |i: &Arc<Item>| match filter.after_us {
        Some(after) => i.event.time_us >= after,
        None => oldest.is_none_or(|o| i.at >= o),
    };
    let mut out: Vec<Arc<Item>> = match filter.after_us {
        // Event times are not in ring order (repairs, several tailers): scan it all.
        Some(_) => ring
            .iter()
            .rev()
            .filter(|i| in_range(i) && filter.matches(&i.event))
            .take(filter.backfill)
            .cloned()
            .collect(),
        None => ring
            .iter()
            .rev()
            .take_while(|i| in_range(i))
            .filter(|i| filter.matches(&i.event))
            .take(filter.backfill)
            .cloned()
            .collect(),
    };
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LiveConfig;
    use contracts::event::{EventId, Format};

    fn item(offset: u64, time_us: i64, at: Instant) -> Arc<Item> {
        let event = Event {
            id: EventId {
                tailer: 1,
                file_seq: 1,
                offset,
            },
            time_us,
            flags: Default::default(),
            original_len: 1,
            format: Format::Plain,
            crawl: contracts::CrawlId::parse("c1").unwrap(),
            host: "h".into(),
            app: "a".into(),
            fields: vec![],
            raw: b"x".to_vec(),
        };
        Arc::new(Item::new(Arc::new(event), false, at))
    }

    fn offsets(items: &[Arc<Item>]) -> Vec<u64> {
        items.iter().map(|i| i.event.id.offset).collect()
    }

    #[test]
    fn catch_up_reaches_past_the_age_limit_from_the_last_event_seen() {
        let now = Instant::now() + Duration::from_secs(3600);
        let old = now - Duration::from_secs(1000);
        // Events 0..60, one second apart in event time; the first 50 published long ago.
        let ring: VecDeque<Arc<Item>> = (0..60u64)
            .map(|n| item(n, n as i64 * 1_000_000, if n < 50 { old } else { now }))
            .collect();
        let cfg = LiveConfig::default();
        let by_age = Filter::compile(&serde_json::json!({"backfill": 200}), &cfg).unwrap();
        assert_eq!(
            offsets(&backfill(&ring, &by_age, now)),
            (50..60).collect::<Vec<_>>()
        );
        // The client last saw event 12: it gets 12 (again; it drops duplicates) to 59.
        let after = chrono::DateTime::from_timestamp_micros(12_000_000).unwrap();
        let catch_up = Filter::compile(
            &serde_json::json!({"backfill": 200, "after": after.to_rfc3339()}),
            &cfg,
        )
        .unwrap();
        assert_eq!(
            offsets(&backfill(&ring, &catch_up, now)),
            (12..60).collect::<Vec<_>>()
        );
        // Bounded: the newest `backfill` of them.
        let capped = Filter::compile(
            &serde_json::json!({"backfill": 5, "after": after.to_rfc3339()}),
            &cfg,
        )
        .unwrap();
        assert_eq!(
            offsets(&backfill(&ring, &capped, now)),
            (55..60).collect::<Vec<_>>()
        );
    }
}
