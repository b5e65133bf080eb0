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
            let mut v = self.event.to_json();
            if self.late
                && let Some(m) = v.as_object_mut()
            {
                m.insert("late".into(), serde_json::Value::Bool(true));
            }
            // A Value always serialises; the fallback only keeps this free of unwrap().
            serde_json::value::to_raw_value(&v).unwrap_or_else(|_| RawValue::NULL.to_owned())
        })
    }
}
