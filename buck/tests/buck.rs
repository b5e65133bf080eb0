//! The buck's integration tests: a real buck on 127.0.0.1 port 0, real SQLite files,
//! a tailer client speaking the real protocol, and HTTP through reqwest.

// A test or bench crate: its helpers may unwrap (clippy.toml allows it only in #[test] fns).
#![allow(clippy::unwrap_used)]

mod common;
mod suite;
