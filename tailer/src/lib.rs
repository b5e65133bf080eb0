//! The tailer follows log files, turns lines into [`contracts::Event`]s, appends them to
//! the current spool bucket and ships them to the crawl's home bucks.
//!
//! It runs beside a crawler, so it is niced and its memory is bounded whatever the input:
//! lines are cut to one frame, the live path skips (and counts) rather than buffers when
//! the network is behind, and a full spool pauses reading instead of dropping anything.
//!
//! # Layout
//!
//! - [`config`]: `TailerConfig`, the TOML config.
//! - [`pipeline`]: the seam between reading and shipping (`ShipperInput`, `SpoolUsage`).
//! - [`events`]: `TailerEvents`, every counter.
//! - [`shipping`]: connections to bucks, live packets, the repair path, spool pruning.
#![deny(missing_docs)]

pub mod config;
pub mod events;
pub mod pipeline;
pub mod shipping;
pub mod tailer_id;

pub use config::TailerConfig;
pub use events::TailerEvents;
