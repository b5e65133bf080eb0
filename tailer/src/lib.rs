//! The tailer follows log files, turns lines into [`contracts::Event`]s, appends them to
//! the current spool bucket and ships them to the crawl's home bucks.
//!
//! It runs beside a crawler, so it is niced and its memory is bounded whatever the input:
//! lines are cut to one frame, the live path skips (and counts) rather than buffers when
//! the network is behind, and a full spool pauses reading instead of dropping anything.
//! How following, rotation, identity, checkpoints and the spool work for an operator is in
//! `docs/tailer.md`.
//!
//! # Layout
//!
//! Reading (files -> events -> spool):
//!
//! - [`run`](run()): the whole tailer (reader thread + shipper), with two-phase shutdown.
//! - [`read_scheduler`]: `ReadScheduler`, the scheduler over every file (discovery, rotation, pausing,
//!   checkpoints).
//! - [`crawl_matcher`]: `CrawlMatcher`, a source pattern and the crawl it gives a path.
//! - [`discovery`]: `Discovery`, expanding the patterns.
//! - [`file_follower`]: `FileFollower`, one file (one seq) being read.
//! - [`line_reader`]: `LineReader`, bounded-memory line splitting.
//! - [`frame_batch`]: `FrameBatch`, the frames of one read, encoded straight from the
//!   lines, with their days.
//! - [`fingerprint`]: `Fingerprint`, recognising a file after rotation.
//! - [`rotated_copy`]: finding the rest of a file in its rotated copies.
//! - [`checkpointer`]: `Checkpointer`, the crash-safe state file.
//! - [`spool_writer`]: `SpoolWriter`, time-bucket files, sealing, live hand-off.
//! - [`tailer_id`]: the tailer's random id.
//! - [`print`]: print mode, for checking a config.
//!
//! Shared: [`config`] (`TailerConfig`), [`pipeline`] (the seam: `ShipperInput`,
//! `SpoolUsage`), [`events`] (`TailerEvents`, every counter), [`error`] (`TailerError`).
//!
//! Shipping (spool -> bucks): [`shipping`].
//!
//! # Example
//!
//! ```
//! use tailer::line_reader::LineReader;
//!
//! // Lines longer than the limit keep their first bytes and their true length.
//! let mut lines = LineReader::new(0, 4);
//! let mut out = Vec::new();
//! lines.push_bytes(b"abcdefgh\nij\npartial", |line| out.push(line.to_record()));
//! assert_eq!(out[0].bytes, b"abcd");
//! assert_eq!(out[0].original_len, 8);
//! assert_eq!(out[1].offset, 9);
//! assert_eq!(lines.line_start(), 12); // "partial" waits for its newline
//! ```
#![deny(missing_docs)]

pub mod checkpointer;
pub mod config;
pub mod crawl_matcher;
pub mod discovery;
pub mod error;
pub mod events;
pub mod file_follower;
pub mod fingerprint;
pub mod frame_batch;
pub mod line_reader;
pub mod pipeline;
pub mod print;
pub mod read_scheduler;
pub mod rotated_copy;
pub mod run;
pub mod shipping;
pub mod spool_writer;
pub mod tailer_id;
mod wake;

pub use config::TailerConfig;
pub use error::TailerError;
pub use events::TailerEvents;
pub use print::print_events;
pub use run::run;
