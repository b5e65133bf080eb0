//! The live view's side of the buck: a bus subscriber that hands every newly committed
//! event to the socket.io broker, and `GET /api/bucks`, the list of bucks a page connects to.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::api_state::ApiState;
use crate::pub_sub::{BusItem, Subscriber};

/// Feeds `broker` from the bus until shutdown. Publishing never blocks (the broker keeps a
/// bounded queue per client), so this task keeps up with the bus; if it ever falls
/// behind, the bus says how many events it skipped and the broker tells every client.
pub async fn feed(mut bus: Subscriber, broker: live::LiveBroker, shutdown: CancellationToken) {
    loop {
        let item = tokio::select! {
            _ = shutdown.cancelled() => return,
            item = bus.recv() => item,
        };
        match item {
            Some(BusItem::Event(p)) => broker.publish(p.event.clone(), p.late),
            Some(BusItem::Missed(n)) => broker.missed(n),
            None => return,
        }
    }
}

/// `GET /api/bucks`: `[{id, http_url}]` from the cluster file, or this buck alone (at
/// `../`, relative to the page at `<base>/ui/live`) when there is none.
pub(crate) async fn bucks(State(api): State<Arc<ApiState>>) -> Json<Value> {
    match api.cluster.get() {
        Some(c) => Json(Value::Array(
            c.bucks
                .iter()
                .map(|b| json!({"id": b.id, "http_url": b.http_url}))
                .collect(),
        )),
        None => Json(json!([{"id": api.config.id, "http_url": "../"}])),
    }
}
