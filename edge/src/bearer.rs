//! Shared-secret tokens, sent as `Authorization: Bearer <token>`.
//!
//! Tokens travel in a header, never in a URL: URLs end up in proxy logs, browser history
//! and `Referer` headers.

use axum::http::{HeaderMap, header};

/// The token a request carries as `Authorization: Bearer <token>`, if any.
pub fn presented(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// Whether the request carries `want` as its bearer token (compared in constant time).
pub fn carries(headers: &HeaderMap, want: &str) -> bool {
    presented(headers).is_some_and(|got| constant_time_eq(got.as_bytes(), want.as_bytes()))
}

/// Compares without an early exit, so the response time says nothing about how much of a
/// guessed token was right. (A length mismatch returns at once: token lengths are not
/// secret, every generated token has the same length.)
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn compares_whole_tokens() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    #[test]
    fn reads_only_the_bearer_scheme() {
        let mut h = HeaderMap::new();
        assert_eq!(presented(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(presented(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(presented(&h), Some("abc"));
        assert!(carries(&h, "abc"));
        assert!(!carries(&h, "abcd"));
    }
}
