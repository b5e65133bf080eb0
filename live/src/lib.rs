//! The live broker: every event a buck commits, offered the moment it is committed to the
//! browsers watching that buck over socket.io (socketioxide), filtered on the server so
//! that only matching events cross the network. Each client has a bounded queue; a slow
//! client loses events, is told how many, and never slows the buck or anyone else. The
//! wire protocol is `docs/live.md`.
//!
//! # Layout
//!
//! - [`config`]: `LiveConfig`, the limits (clients, session, rate, queue, backfill, token).
//! - [`broker`]: `LiveBroker`, `publish`/`missed` for the buck and the socket.io namespace.
//! - `client`: one client's queue and the task that batches it into `events` emits.
//! - [`filter`]: `Filter`, the compiled `subscribe` payload.
//! - `item`: a published event shared by the ring and every queue, its JSON made once.
//! - [`events`]: `LiveEvents`, the counters, rendered as `sluice_live_*`.
//! - [`error`]: `FilterError`, why a subscription was refused.
//! - [`synthetic`]: deterministic crawl-log events for the demo, tests and benchmark.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::sync::Arc;
//! let (broker, layer) = live::LiveBroker::new(live::LiveConfig::default(), "buck-1".into());
//! let app: axum::Router = axum::Router::new().layer(layer);
//! # let _ = app;
//! # let event: contracts::Event = sample_event();
//! broker.publish(Arc::new(event), false);
//! let mut metrics = String::new();
//! broker.events().render_prometheus(&mut metrics);
//! assert!(metrics.contains("sluice_live_published_total 1"));
//! # }
//! # fn sample_event() -> contracts::Event {
//! #     contracts::Event {
//! #         id: contracts::EventId { tailer: 1, file_seq: 0, offset: 0 }, time_us: 0,
//! #         flags: Default::default(), original_len: 1, format: contracts::event::Format::Plain,
//! #         crawl: contracts::CrawlId::parse("c1").unwrap(), host: "h".into(), app: "a".into(),
//! #         fields: vec![], raw: b"x".to_vec(),
//! #     }
//! # }
//! ```
#![deny(missing_docs)]

pub mod broker;
mod client;
pub mod config;
pub mod error;
pub mod events;
pub mod filter;
mod item;
pub mod synthetic;

pub use broker::LiveBroker;
pub use config::LiveConfig;
pub use error::FilterError;
pub use events::{LiveCounts, LiveEvents};
pub use item::event_json;
pub use socketioxide::layer::SocketIoLayer;
