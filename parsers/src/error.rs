//! Errors of this crate. Parsing a line never fails (a line that does not match its format
//! is shipped as plain, flagged); only reading configuration can.

/// A format name in configuration that this crate does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown log format {name:?}: use one of \"crawl_log\", \"syslog\", \"plain\" or \"auto\"")]
pub struct UnknownFormat {
    /// The name as configured.
    pub name: String,
}
