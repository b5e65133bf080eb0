//! The contracts every Sluice agent agrees on (DESIGN.md, "Contracts"): the [`Event`] and
//! its [`EventId`], the 2-byte-length [`frame`], the [`spool_file`] format, the
//! tailer-to-buck [`transport`], the [`cluster`] file with its [`HomeBucks`] routing rule,
//! the validated [`CrawlId`], segment paths, the segment [`ids_digest`] the buck and the
//! porter compare, and the one [`tokenizer`]. Each binary format carries a version, and
//! every decoder returns a [`DecodeError`] instead of panicking. The byte-level specification is `docs/formats.md`.
//!
//! # Layout
//!
//! - [`crawl_id`]: `CrawlId`, the shard key, safe as a path component.
//! - [`event`]: `Event`, its borrowed form `EventRef`, `EventId`, `Format`, `Field` spans;
//!   the event encoding.
//! - [`frame`]: the 2-byte big-endian length frame and `FrameReader`.
//! - [`spool_file`]: spool bucket header, paths and torn-tail recovery.
//! - [`transport`]: hellos, messages, and the sealed `Session`.
//! - [`keys`]: X25519 key pairs and their text form.
//! - [`cluster`]: the cluster file and rendezvous routing (`HomeBucks`).
//! - [`crawled_url`]: the trough columns derived from a crawl.log event.
//! - [`segment_path`]: where a (crawl, day) segment lives.
//! - [`segment_schema`]: the segment's tables and views, as SQL, every version.
//! - [`segment_row`]: an event as a version-2 segment row; the crawl.log line rebuilt.
//! - [`prepared_row`]: that row worked out ahead of the segment writer.
//! - `segment_sql` (feature `sqlite`): writing rows, and reading any version's ids,
//!   counts and indexes.
//! - `original_lines` (feature `sqlite`): a day's original lines, byte for byte, in the
//!   order written (export).
//! - [`status_filter`]: the one status filter syntax (`200,4xx,500-599`) and its matcher.
//! - [`ids_digest`]: a segment's identity, sha256 over its sorted event ids.
//! - [`tokenizer`]: the tokens of a line.
//!
//! # Example
//!
//! ```
//! use contracts::{CrawlId, Event, EventId, EventFlags, Format, frame};
//!
//! let line = b"2026-11-21T10:00:00.000Z   200   1234 http://example.com/ - - text/html #1 - - -".to_vec();
//! let event = Event {
//!     id: EventId { tailer: 1, file_seq: 0, offset: 0 },
//!     time_us: 1_795_254_400_000_000,
//!     flags: EventFlags::default(),
//!     original_len: line.len() as u64,
//!     format: Format::Plain,
//!     crawl: CrawlId::parse("crawl-1").unwrap(),
//!     host: "crawler-07".into(),
//!     app: "heritrix".into(),
//!     fields: vec![],
//!     raw: line,
//! };
//! let mut buf = Vec::new();
//! assert!(frame::put_event_frame(&mut buf, &event));
//! let (events, torn) = frame::decode_frames(&buf);
//! assert!(torn.is_none());
//! assert_eq!(events[0].as_ref().unwrap(), &event);
//! ```
#![deny(missing_docs)]

pub mod cluster;
pub mod crawl_id;
pub mod crawled_url;
mod error;
pub mod event;
pub mod frame;
pub mod frame_stream;
pub mod ids_digest;
pub mod keys;
#[cfg(feature = "sqlite")]
pub mod original_lines;
pub mod prepared_row;
pub mod segment_path;
pub mod segment_row;
pub mod segment_schema;
#[cfg(feature = "sqlite")]
pub mod segment_sql;
pub mod spool_file;
pub mod status_class;
pub mod status_filter;
#[cfg(test)]
mod test_events;
pub mod tokenizer;
pub mod transport;
pub mod varint;

pub use cluster::{BuckEntry, ClusterFile, HomeBucks};
pub use crawl_id::{CrawlId, CrawlIdError};
pub use error::DecodeError;
pub use event::{Event, EventFlags, EventId, EventRef, Field, FieldSpan, Fit, Format};
