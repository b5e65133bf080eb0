//! The shipping side: connections to bucks, live packets, the repair path, spool pruning.
//!
//! The reading side appends frames to spool buckets and hands the shipper a copy of each
//! batch ([`ShipperInput::Live`](crate::pipeline::ShipperInput)) and word of each sealed
//! bucket. From there:
//!
//! - `shipper_state/`: `ShipperState`, the I/O-free state machine that decides
//!   everything: packets, in-flight tables, delivery per (bucket, home), repair jobs.
//!   `docs/protocol.md` describes what it does on the wire.
//! - [`Shipper`] (`shipper.rs`): the thin async shell around it: reads connection
//!   reports, reader input, blocking-read answers and the clock, feeds them to the
//!   state, and carries out its commands.
//! - `record_writer.rs`: writes the records beside buckets, in order, off the shipper.
//! - `buck_connection.rs`: one task per buck keeps a TCP connection open (hello, sealed
//!   session, pings), re-opened with [`Backoff`].
//! - `chunk_packs.rs`: repair chunks compressed once for every home they go to.
//! - [`delivery`]: the `.delivered` record beside each bucket, and the walks of a bucket
//!   file that count frames per home and cut the repair chunks.
//! - [`acked_ranges`]: the `.acked` record beside each bucket, the byte ranges each home
//!   acked, so that a restart re-sends only the rest.
//! - `sidecar.rs`: how those records beside a bucket are named, read (versioned JSON)
//!   and replaced (temporary file and rename).
//! - [`spool_janitor`]: keeps the spool's size true and prunes delivered buckets.
//! - `test_receiver`: a minimal buck speaking the real protocol, for tests only.

mod ack_ledger;
pub mod acked_ranges;
mod backoff;
mod buck_connection;
mod chunk_packs;
pub mod delivery;
mod error;
mod record_writer;
mod shipper;
mod shipper_state;
mod sidecar;
pub mod spool_janitor;
// A buck for tests only: compiled for this crate's tests and, through the `test-support`
// feature, for its integration tests; never in a production build.
#[cfg(any(test, feature = "test-support"))]
#[doc(hidden)]
pub mod test_receiver;

pub use backoff::Backoff;
pub use error::ShippingError;
pub use shipper::Shipper;
