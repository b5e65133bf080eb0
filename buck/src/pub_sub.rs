//! `Bus`: the in-process pub/sub of events that were just stored.
//!
//! It is a `tokio::sync::broadcast` channel with a bounded capacity: publishing never
//! waits, so a slow subscriber can never stall ingest. A subscriber that falls more than
//! `capacity` events behind loses the oldest ones and is told how many with an explicit
//! [`BusItem::Missed`], counted in `sluice_buck_missed_total`, never silently.
//!
//! The segment writer is *not* fed from this bus: the writer must see every event (an
//! ack promises durability), while the bus is allowed to lose events (a live view).
//! So the writer takes a bounded mpsc with backpressure, and publishes here what it newly
//! inserted.

use std::sync::Arc;

use contracts::Event;
use tokio::sync::broadcast;

use crate::events::BuckEvents;
use crate::graphite::Tally;

/// An event as published: stored, and whether it came late (the repair path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The event.
    pub event: Arc<Event>,
    /// True when a re-sent bucket (not a live packet) inserted it: it may be old.
    pub late: bool,
}

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum BusItem {
    /// The next event.
    Event(Arc<Published>),
    /// The subscriber fell behind and this many events were skipped.
    Missed(u64),
}

/// The publishing side; clone it freely.
#[derive(Clone)]
pub struct Bus {
    tx: broadcast::Sender<Arc<Published>>,
    events: Arc<BuckEvents>,
    /// The Graphite pusher's per-crawl counts, when `[graphite]` is configured: counted
    /// here because every newly stored event passes here, and only here.
    tally: Option<Arc<Tally>>,
}

impl Bus {
    /// A bus that holds up to `capacity` events for its slowest subscriber.
    pub fn new(capacity: usize, events: Arc<BuckEvents>) -> Bus {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Bus {
            tx,
            events,
            tally: None,
        }
    }

    /// The same bus, also counting what it publishes in `tally` (before any clone).
    pub fn counting(mut self, tally: Option<Arc<Tally>>) -> Bus {
        self.tally = tally;
        self
    }

    /// Publishes events; never blocks. With no subscriber they are dropped (and still
    /// counted as published: the bus did its part).
    pub fn publish(&self, items: Vec<Arc<Published>>) {
        let n = items.len();
        let late = items.first().is_some_and(|p| p.late);
        // Counted first: whoever receives an event then sees it counted.
        if n > 0 {
            self.events.published(n, late);
        }
        if let Some(t) = &self.tally {
            t.record(&items);
        }
        for item in items {
            // An error only means there is no subscriber right now.
            let _ = self.tx.send(item);
        }
    }

    /// A new subscriber, starting with the next published event.
    pub fn subscribe(&self) -> Subscriber {
        Subscriber {
            rx: self.tx.subscribe(),
            events: self.events.clone(),
        }
    }

    /// Subscribers now.
    pub fn subscriber_count(&self) -> usize {
        self.tx.receiver_count()
    }
}

/// The receiving side of one subscriber.
pub struct Subscriber {
    rx: broadcast::Receiver<Arc<Published>>,
    events: Arc<BuckEvents>,
}

impl Subscriber {
    /// The next item, or `None` once the buck has stopped.
    pub async fn recv(&mut self) -> Option<BusItem> {
        match self.rx.recv().await {
            Ok(p) => Some(BusItem::Event(p)),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                self.events.subscriber_missed(n);
                Some(BusItem::Missed(n))
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// The next item if one is ready, without waiting.
    pub fn try_recv(&mut self) -> Option<BusItem> {
        match self.rx.try_recv() {
            Ok(p) => Some(BusItem::Event(p)),
            Err(broadcast::error::TryRecvError::Lagged(n)) => {
                self.events.subscriber_missed(n);
                Some(BusItem::Missed(n))
            }
            Err(_) => None,
        }
    }
}
