//! The buck's integration tests: a real buck on 127.0.0.1 port 0, real SQLite files,
//! a tailer client speaking the real protocol, and HTTP through reqwest.

mod common;
mod suite;
