//! `Client`: one connected socket's filter, bounded queue and unreported drops, and the
//! task that turns its queue into batched `events` emits.
//!
//! The publisher only ever takes the client's lock for a moment and never waits for the
//! socket: when the queue is full it counts a drop. The client's own task is the one
//! that waits (for the batching window, or for room in the socket's buffer), so a slow
//! browser costs nobody but itself.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use socketioxide::extract::SocketRef;
use socketioxide::{SendError, SocketError};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::LiveConfig;
use crate::events::LiveEvents;
use crate::filter::Filter;
use crate::item::Item;

/// Most events in one `events` emit.
pub(crate) const BATCH_MAX: usize = 256;
/// At most one emit per window (unless a batch is full): 2,000 events/s cost 20 emits/s,
/// not 2,000.
pub(crate) const BATCH_WINDOW: Duration = Duration::from_millis(50);
/// How long the first event after a quiet spell waits for company: a commit's events
/// reach the broker one by one, within a millisecond or two of each other, and should
/// leave in one emit. (Waiting the whole window instead added 50 ms to every event the
/// live view shows: a third of its p99 at 50,000 lines/s.)
pub(crate) const GATHER: Duration = Duration::from_millis(5);
/// How often a client task retries an emit when the socket's buffer is full.
const TRANSPORT_RETRY: Duration = Duration::from_millis(20);

/// A connected client, shared by the broker's publisher and the client's task.
#[derive(Debug)]
pub(crate) struct Client {
    state: Mutex<ClientState>,
    wake: Notify,
}

#[derive(Debug, Default)]
pub(crate) struct ClientState {
    /// `None` until the first `subscribe`: an unsubscribed client gets nothing.
    filter: Option<Arc<Filter>>,
    queue: VecDeque<Arc<Item>>,
    /// A `subscribed` reply and its backfill, to send before anything queued.
    subscribed: Option<(Value, Vec<Arc<Item>>)>,
    dropped_queue: u64,
    dropped_rate: u64,
    bus_missed: u64,
    rate_second: u64,
    rate_count: u64,
    rate_capped_told: bool,
    closed: bool,
}

/// What `offer` did with an event, for the counters.
pub(crate) enum Offer {
    Skipped,
    Queued,
    DroppedQueue,
    DroppedRate,
}

impl Client {
    pub fn new() -> Client {
        Client {
            state: Mutex::new(ClientState::default()),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ClientState> {
        // A panic while holding this lock leaves plain counters behind: keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Offers a published event; never waits. `second` is the publisher's clock, in
    /// whole seconds, for the rate cap.
    pub fn offer(&self, item: &Arc<Item>, second: u64, cfg: &LiveConfig) -> Offer {
        let mut st = self.lock();
        let Some(filter) = &st.filter else {
            return Offer::Skipped;
        };
        if !filter.matches(&item.event) {
            return Offer::Skipped;
        }
        if st.rate_second != second {
            st.rate_second = second;
            st.rate_count = 0;
        }
        if st.rate_count >= cfg.max_events_per_sec {
            st.dropped_rate += 1;
            let first = st.dropped_rate == 1;
            drop(st);
            if first {
                self.wake.notify_one();
            }
            return Offer::DroppedRate;
        }
        st.rate_count += 1;
        if st.queue.len() >= cfg.client_queue {
            st.dropped_queue += 1;
            return Offer::DroppedQueue;
        }
        st.queue.push_back(Arc::clone(item));
        // Waking on the first event starts the batching window; on a full batch, sends it.
        let wake = st.queue.len() == 1 || st.queue.len() == BATCH_MAX;
        drop(st);
        if wake {
            self.wake.notify_one();
        }
        Offer::Queued
    }

    /// Installs a new filter (dropping what the old one queued) with its backfill.
    pub fn subscribe(&self, filter: Arc<Filter>, backfill: Vec<Arc<Item>>) {
        let mut st = self.lock();
        st.subscribed = Some((filter.echo().clone(), backfill));
        st.filter = Some(filter);
        st.queue.clear();
        drop(st);
        self.wake.notify_one();
    }

    pub fn filter(&self) -> Option<Arc<Filter>> {
        self.lock().filter.clone()
    }

    pub fn unsubscribe(&self) {
        let mut st = self.lock();
        st.filter = None;
        st.queue.clear();
    }

    pub fn bus_missed(&self, n: u64) {
        self.lock().bus_missed += n;
        self.wake.notify_one();
    }

    pub fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }
}

#[derive(Serialize)]
struct Batch<'a> {
    events: Vec<&'a RawValue>,
    backfill: bool,
}

/// The socket went away while we were sending.
struct Gone;

/// Emits, waiting (never dropping) while the socket's buffer is full: meanwhile new
/// events pile up in the bounded queue, and that is where drops are counted.
async fn send<T: Serialize + ?Sized>(
    socket: &SocketRef,
    event: &str,
    data: &T,
) -> Result<(), Gone> {
    loop {
        match socket.emit(event, data) {
            Ok(()) => return Ok(()),
            Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                tokio::time::sleep(TRANSPORT_RETRY).await
            }
            Err(SendError::Socket(SocketError::Closed)) => return Err(Gone),
            Err(SendError::Serialize(e)) => {
                // Our own payloads always serialise; if one does not, skip it, loudly.
                tracing::error!(event, error = %e, "live: cannot serialise a packet, skipped");
                return Ok(());
            }
        }
    }
}

async fn send_batches(
    socket: &SocketRef,
    items: &[Arc<Item>],
    backfill: bool,
    events: &LiveEvents,
) -> Result<(), Gone> {
    for chunk in items.chunks(BATCH_MAX) {
        let batch = Batch {
            events: chunk.iter().map(|i| i.json()).collect(),
            backfill,
        };
        send(socket, "events", &batch).await?;
        events.batch_sent(chunk.len(), backfill);
    }
    Ok(())
}

/// When a batch that is not full goes out, woken at `now`: `GATHER` after its first
/// event, and not before a window has passed since the last emit.
fn send_at(now: Instant, last_emit: Option<Instant>) -> Instant {
    let gathered = now + GATHER;
    match last_emit {
        Some(t) => gathered.max(t + BATCH_WINDOW),
        None => gathered,
    }
}

/// The client's task: until the socket closes or the session ends, sends the
/// `subscribed` reply with its backfill, then the queue in batches, then any drops.
pub(crate) async fn run(
    client: Arc<Client>,
    socket: SocketRef,
    cfg: Arc<LiveConfig>,
    events: Arc<LiveEvents>,
) {
    let session_end = Instant::now() + Duration::from_secs(cfg.max_session_secs);
    let mut last_emit: Option<Instant> = None;
    let result: Result<(), Gone> = async {
        loop {
            tokio::select! {
                _ = client.wake.notified() => {}
                _ = tokio::time::sleep_until(session_end) => {
                    events.session_capped();
                    let _ = socket.emit("capped", &json!({
                        "cap": "max_session_secs", "limit": cfg.max_session_secs,
                        "message": format!("session reached this buck's limit of {} s; reconnect to go on", cfg.max_session_secs),
                    }));
                    return Err(Gone);
                }
            }
            // Let the batch gather, unless it is already full or a reply is waiting.
            let (ready, closed) = {
                let st = client.lock();
                (st.queue.len() >= BATCH_MAX || st.subscribed.is_some(), st.closed)
            };
            if closed {
                return Err(Gone);
            }
            if !ready {
                tokio::time::sleep_until(send_at(Instant::now(), last_emit)).await;
            }
            loop {
                let (subscribed, batch, drops) = {
                    let mut st = client.lock();
                    if st.closed {
                        return Err(Gone);
                    }
                    let subscribed = st.subscribed.take();
                    let n = st.queue.len().min(BATCH_MAX);
                    let batch: Vec<Arc<Item>> = st.queue.drain(..n).collect();
                    let drops = (
                        std::mem::take(&mut st.dropped_queue),
                        std::mem::take(&mut st.dropped_rate),
                        std::mem::take(&mut st.bus_missed),
                    );
                    let tell_rate = drops.1 > 0 && !st.rate_capped_told;
                    st.rate_capped_told |= tell_rate;
                    (subscribed, batch, (drops, tell_rate))
                };
                let ((queue, rate, bus), tell_rate) = drops;
                if subscribed.is_none() && batch.is_empty() && queue + rate + bus == 0 {
                    break;
                }
                last_emit = Some(Instant::now());
                if let Some((filter, backfill)) = subscribed {
                    send(&socket, "subscribed", &json!({ "filter": filter, "backfill": backfill.len() })).await?;
                    send_batches(&socket, &backfill, true, &events).await?;
                }
                send_batches(&socket, &batch, false, &events).await?;
                if tell_rate {
                    send(&socket, "capped", &json!({
                        "cap": "max_events_per_sec", "limit": cfg.max_events_per_sec,
                        "message": format!("more than {} matching events/s; the excess is dropped, narrow the filter", cfg.max_events_per_sec),
                    })).await?;
                }
                for (count, reason) in [(queue, "queue"), (rate, "rate"), (bus, "bus")] {
                    if count > 0 {
                        send(&socket, "dropped", &json!({ "count": count, "reason": reason })).await?;
                    }
                }
            }
        }
    }
    .await;
    if result.is_err() && socket.connected() {
        let _ = socket.clone().disconnect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_client_sends_after_gathering_and_a_busy_one_once_a_window() {
        let t0 = Instant::now();
        // Nothing sent yet, or long ago: the batch goes once its commit has gathered.
        assert_eq!(send_at(t0, None), t0 + GATHER);
        assert_eq!(
            send_at(t0 + BATCH_WINDOW * 3, Some(t0)),
            t0 + BATCH_WINDOW * 3 + GATHER
        );
        // Sent 10 ms ago: this batch waits for the window to close.
        let now = t0 + Duration::from_millis(10);
        assert_eq!(send_at(now, Some(t0)), t0 + BATCH_WINDOW);
        // Sent just under a window ago: the gather time still applies.
        let now = t0 + BATCH_WINDOW - Duration::from_millis(1);
        assert_eq!(send_at(now, Some(t0)), now + GATHER);
    }
}
