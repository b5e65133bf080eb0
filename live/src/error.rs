//! Errors a client can cause; each is sent back to it as an `error` event.

use thiserror::Error;

/// Why a `subscribe` was refused. The client's previous subscription, if any, stays.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FilterError {
    /// The payload is not a JSON object of the documented fields.
    #[error(
        "subscribe payload is not a filter object: {0}; send e.g. {{\"crawl\": \"c1\", \"status\": \"4xx\"}}"
    )]
    Payload(String),
    /// `status` is not a list of codes, classes or ranges.
    #[error(transparent)]
    Status(#[from] contracts::status_filter::StatusFilterError),
    /// `format` names no known format.
    #[error("format {0:?} is unknown; use plain, crawl_log or syslog")]
    Format(String),
    /// `regex` is longer than the buck allows.
    #[error("regex is {len} bytes, more than this buck's limit of {max}; shorten it")]
    RegexTooLong {
        /// The pattern's length.
        len: usize,
        /// `LiveConfig::max_regex_bytes`.
        max: usize,
    },
    /// `regex` does not compile (or compiles too big).
    #[error("regex does not compile: {0}")]
    Regex(String),
    /// `text_mode` is neither `substring` nor `token`.
    #[error("text_mode {0:?} is unknown; use substring or token")]
    TextMode(String),
    /// `after` is not an RFC 3339 time.
    #[error(
        "after {0:?} is not an RFC 3339 time; send an event's `time`, e.g. 2026-11-21T10:00:00.000000Z"
    )]
    After(String),
}

impl FilterError {
    /// A short stable code for the client, next to the message.
    pub fn code(&self) -> &'static str {
        match self {
            FilterError::Payload(_) => "bad_payload",
            FilterError::Status(_) => "bad_status",
            FilterError::Format(_) => "bad_format",
            FilterError::RegexTooLong { .. } => "regex_too_long",
            FilterError::Regex(_) => "bad_regex",
            FilterError::TextMode(_) => "bad_text_mode",
            FilterError::After(_) => "bad_after",
        }
    }
}
