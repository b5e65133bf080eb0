//! `Item`: one published event as the broker keeps it, in the backfill ring and in the
//! clients' queues alike (shared, never copied), with its JSON made once for all clients.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use contracts::Event;
use serde_json::value::RawValue;

/// A published event.
#[derive(Debug)]
pub(crate) struct Item {
    pub event: Arc<Event>,
    /// Inserted by a repair (a re-sent bucket), not seen live first.
    pub late: bool,
    /// When the broker got it: backfill age is measured from here.
    pub at: Instant,
    /// `Event::to_json` (plus `late`), serialised by the first client that sends it; a
    /// hundred subscribers cost one serialisation.
    json: OnceLock<Box<RawValue>>,
}

impl Item {
    pub fn new(event: Arc<Event>, late: bool, at: Instant) -> Item {
        Item {
            event,
            late,
            at,
            json: OnceLock::new(),
        }
    }

    pub fn json(&self) -> &RawValue {
        self.json.get_or_init(|| {
            let v = event_json(&self.event, self.late);
            // A Value always serialises; the fallback only keeps this free of unwrap().
            serde_json::value::to_raw_value(&v).unwrap_or_else(|_| RawValue::NULL.to_owned())
        })
    }
}

/// An event as the live view sends it: `Event::to_json`, plus `late: true` for a row a
/// repair inserted. The buck's `GET /subscribe` sends the same object, one per line.
pub fn event_json(event: &Event, late: bool) -> serde_json::Value {
    let mut v = event.to_json();
    if late && let Some(m) = v.as_object_mut() {
        m.insert("late".into(), serde_json::Value::Bool(true));
    }
    v
}
