//! The one Prometheus text renderer of every agent (`/metrics` of the buck, `sluice up`,
//! archie, and the tailer's and porter's own listeners).
//!
//! Agents keep their figures in atomics where they are counted (the hot path pays one
//! relaxed add) and render them on a scrape through an [`Exposition`], which writes the
//! `# HELP` and `# TYPE` lines, escapes help text and label values, and renders a
//! [`Histogram`] as the cumulative `_bucket`, `_sum` and `_count` series Prometheus expects.
//! One renderer means one place for the format's rules.

#![deny(missing_docs)]

mod exposition;
mod histogram;

pub use exposition::Exposition;
pub use histogram::{Histogram, LATENCY_BOUNDS_SECS};
