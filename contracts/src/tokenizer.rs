//! The one tokenizer: interesting words separated from punctuation.
//!
//! A token is a maximal run of letters, digits, `.`, `_` and `-`, with leading and trailing
//! `.`, `_`, `-` trimmed, so `http://www.example.com/a.html?q=1` yields `http`,
//! `www.example.com`, `a.html`, `q`, `1`. Matching is case-insensitive: compare with
//! [`eq_token`].

/// The tokens of `text`, in order.
pub fn tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .map(|t| t.trim_matches(|c| matches!(c, '.' | '_' | '-')))
        .filter(|t| !t.is_empty())
}

/// Whether two tokens are equal, ignoring case.
pub fn eq_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.chars()
            .zip(b.chars())
            .all(|(x, y)| x.to_lowercase().eq(y.to_lowercase()))
}

/// Whether `text` has `term` among its tokens.
pub fn has_token(text: &str, term: &str) -> bool {
    tokens(text).any(|t| eq_token(t, term))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls_and_crawl_lines() {
        let t: Vec<&str> =
            tokens("2026-11-21T10:00:00Z 200 http://www.Example.com/a.html?q=1 -- \"x\"").collect();
        assert_eq!(
            t,
            [
                "2026-11-21T10",
                "00",
                "00Z",
                "200",
                "http",
                "www.Example.com",
                "a.html",
                "q",
                "1",
                "x"
            ]
        );
        assert!(has_token("GET http://WWW.example.com/", "www.example.com"));
        assert!(!has_token("wwwxexample", "www"));
    }
}
