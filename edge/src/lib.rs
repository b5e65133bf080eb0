//! The HTTP edge that every server agent (buck, archie, `sluice up`) shares: how a request
//! proves who it is, and the limits every request meets before an agent's handler runs.
//! Agents must agree on these, and a second copy of a credential check is a second place
//! for a timing leak or a forgotten route, so they live here once.
//!
//! # Layout
//!
//! - [`bearer`]: shared-secret tokens sent as `Authorization: Bearer <token>`, compared in
//!   constant time.
//! - [`browser_guard`]: `Host` and `Origin` checks (DNS rebinding, foreign pages), CORS
//!   for the cluster's origins only, and the security headers of every page.
//! - [`listener`]: `serve`, the accept loop with request-head and idle timeouts and
//!   connection caps ([`connection_caps`]), configured by [`config::EdgeConfig`] (`[http]`),
//!   counted in [`events::EdgeEvents`].
//! - [`secret`]: tokens generated at random and kept in 0600 files.
//!
//! # Example
//!
//! ```
//! use axum::http::{HeaderMap, HeaderValue, header};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer s3cret"));
//! assert!(edge::bearer::carries(&headers, "s3cret"));
//! assert!(!edge::bearer::carries(&headers, "other"));
//! ```
#![deny(missing_docs)]

pub mod bearer;
pub mod browser_guard;
pub mod config;
pub mod connection_caps;
pub mod events;
pub mod listener;
pub mod secret;

pub use config::EdgeConfig;
pub use events::EdgeEvents;
