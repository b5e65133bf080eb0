//! Cross-process tests: the real binaries, real files, real TCP on loopback.
//!
//! - `up`: `sluice up` end to end: a line written to a file is answered by SQL.

mod util;

mod up;
