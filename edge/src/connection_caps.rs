//! `ConnectionCaps`: how many connections are open, in total and per source address; a
//! connection holds a [`ConnectionSlot`] for as long as its socket lives.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::events::EdgeEvents;

/// Open connections against `max_connections` and `max_connections_per_address`.
#[derive(Debug)]
pub struct ConnectionCaps {
    max_total: usize,
    max_per_address: usize,
    // A std Mutex: held for a map update at accept and drop, never across an await.
    open: Mutex<Open>,
    // Set while refusing, so a flood logs once per episode instead of once per socket.
    refusing: AtomicBool,
    events: Arc<EdgeEvents>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// One open connection's place under the caps; dropping it frees the place.
#[derive(Debug)]
pub struct ConnectionSlot {
    caps: Arc<ConnectionCaps>,
    address: IpAddr,
}

impl ConnectionCaps {
    /// Caps of `max_total` connections, `max_per_address` from one address.
    pub fn new(max_total: usize, max_per_address: usize, events: Arc<EdgeEvents>) -> Arc<Self> {
        Arc::new(ConnectionCaps {
            max_total,
            max_per_address,
            open: Mutex::new(Open::default()),
            refusing: AtomicBool::new(false),
            events,
        })
    }

    /// A slot for a new connection from `address`, or `None` (counted and logged) when a
    /// cap is reached.
    pub fn admit(self: &Arc<Self>, address: IpAddr) -> Option<ConnectionSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let from_here = open.by_address.get(&address).copied().unwrap_or(0);
        let refusal = if open.total >= self.max_total {
            EdgeEvents::bump(&self.events.refused_total_cap);
            Some("max_connections")
        } else if from_here >= self.max_per_address {
            EdgeEvents::bump(&self.events.refused_address_cap);
            Some("max_connections_per_address")
        } else {
            None
        };
        if let Some(setting) = refusal {
            if !self.refusing.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    %address, open = open.total, from_address = from_here, setting,
                    "closing new HTTP connections: a cap is reached (raise [http] {setting} if this is real traffic)"
                );
            }
            return None;
        }
        if self.refusing.swap(false, Ordering::Relaxed) {
            tracing::info!(open = open.total, "accepting HTTP connections again");
        }
        open.total += 1;
        *open.by_address.entry(address).or_insert(0) += 1;
        Some(ConnectionSlot {
            caps: self.clone(),
            address,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.caps.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                open.by_address.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_address_and_total_and_free_on_drop() {
        let events = Arc::new(EdgeEvents::default());
        let caps = ConnectionCaps::new(3, 2, events.clone());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = caps.admit(a).unwrap();
        let _a2 = caps.admit(a).unwrap();
        assert!(caps.admit(a).is_none(), "third from one address");
        let _b1 = caps.admit(b).unwrap();
        assert!(caps.admit(b).is_none(), "fourth in total");
        drop(a1);
        assert!(caps.admit(b).is_some(), "a dropped slot is free again");
        assert_eq!(events.refused_address_cap.load(Ordering::Relaxed), 1);
        assert_eq!(events.refused_total_cap.load(Ordering::Relaxed), 1);
    }
}
