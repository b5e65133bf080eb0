//! Errors shared by every decoder in this crate.

/// Why bytes could not be decoded into a contract type. Never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended early.
    #[error("{what}: input ends at byte {at}, {need} more bytes needed")]
    Truncated {
        /// What was being decoded.
        what: &'static str,
        /// Where the input ended.
        at: usize,
        /// How many bytes the next item needed.
        need: usize,
    },
    /// The input is malformed.
    #[error("{what}: invalid at byte {at}: {reason}")]
    Invalid {
        /// What was being decoded.
        what: &'static str,
        /// Where.
        at: usize,
        /// Why.
        reason: String,
    },
    /// A version this build does not read.
    #[error(
        "version {found} is not supported for {what} (this build reads versions {min} to {max})"
    )]
    Version {
        /// What was being decoded.
        what: &'static str,
        /// The version found.
        found: u32,
        /// Oldest supported.
        min: u32,
        /// Newest supported.
        max: u32,
    },
}

impl DecodeError {
    pub(crate) fn invalid(what: &'static str, at: usize, reason: impl Into<String>) -> Self {
        DecodeError::Invalid {
            what,
            at,
            reason: reason.into(),
        }
    }
}
