//! [`StatusFilter`]: which crawl.log fetch statuses a reader wants. One syntax for every
//! place a user filters on status: the live view and `GET /subscribe`, archie's history
//! search, `GET /export` and `sluice export`.
//!
//! A filter is a comma-separated list of alternatives, each one of:
//!
//! - a code: `200`, `-5003` (Heritrix's negative codes for failed fetches);
//! - a class: `4xx` (any case), the hundred codes `400` to `499`; `1xx` to `9xx`;
//! - a range, both ends included: `400-499`, `-9999--1`. The first `-` after the first
//!   character splits it, so a negative low end reads as a code.
//!
//! Spaces around an alternative are ignored; empty ones are left out, but a filter with
//! no alternative at all is refused (it would match nothing, which is never what was
//! meant).

/// Fetch statuses a line must have (see the module doc for the syntax).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusFilter {
    /// Inclusive (low, high) ranges; a status passes when it is in any of them.
    ranges: Vec<(i64, i64)>,
}

/// Why a status filter was refused. The message names the syntax, so a user can mend it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusFilterError {
    /// One alternative is not a code, a class or a range.
    #[error(
        "status {0:?}: expected a code (200, -5003), a class (4xx) or a range (400-499), comma-separated"
    )]
    Part(String),
    /// No alternative was given.
    #[error("status filter is empty: give a code (200, -5003), a class (4xx) or a range (400-499)")]
    Empty,
}

impl StatusFilter {
    /// Parses `200,4xx,500-599`; an error names the alternative that is wrong.
    pub fn parse(spec: &str) -> Result<StatusFilter, StatusFilterError> {
        let ranges = spec
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|part| parse_part(part).ok_or_else(|| StatusFilterError::Part(part.to_owned())))
            .collect::<Result<Vec<_>, _>>()?;
        if ranges.is_empty() {
            return Err(StatusFilterError::Empty);
        }
        Ok(StatusFilter { ranges })
    }

    /// Whether `status` passes.
    pub fn matches(&self, status: i64) -> bool {
        self.ranges
            .iter()
            .any(|&(lo, hi)| lo <= status && status <= hi)
    }

    /// The filter as SQL over the column `col` (integers only, no user text).
    #[cfg(feature = "sqlite")]
    pub(crate) fn sql(&self, col: &str) -> String {
        let alts: Vec<String> = self
            .ranges
            .iter()
            .map(|(lo, hi)| format!("{col} BETWEEN {lo} AND {hi}"))
            .collect();
        format!("({})", alts.join(" OR "))
    }
}

/// One alternative as an inclusive range, or `None` when it is none of the three forms.
fn parse_part(part: &str) -> Option<(i64, i64)> {
    let lower = part.to_ascii_lowercase();
    if let Some(d) = lower.strip_suffix("xx") {
        let d: i64 = d.parse().ok()?;
        return (1..=9).contains(&d).then_some((d * 100, d * 100 + 99));
    }
    if let Ok(code) = lower.parse::<i64>() {
        return Some((code, code));
    }
    // By characters, not bytes: a part that starts with a multi-byte character is
    // refused, not cut inside it.
    let (at, _) = lower.char_indices().skip(1).find(|&(_, c)| c == '-')?;
    let lo: i64 = lower[..at].trim().parse().ok()?;
    let hi: i64 = lower[at + 1..].trim().parse().ok()?;
    (lo <= hi).then_some((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passes(spec: &str, status: i64) -> bool {
        StatusFilter::parse(spec).unwrap().matches(status)
    }

    #[test]
    fn codes_classes_and_ranges() {
        for (spec, status, want) in [
            ("404", 404, true),
            ("404", 200, false),
            ("-5002", -5002, true),
            ("-5002", 5002, false),
            ("4xx", 404, true),
            ("4XX", 499, true),
            ("4xx", 500, false),
            ("400-499", 400, true),
            ("400-499", 499, true),
            ("400-499", 500, false),
            ("-9999--1", -5002, true),
            ("-9999--1", 0, false),
            ("-5003--5000", -5001, true),
            (" 200 , 4xx,-5003--5000 ", 200, true),
            ("200, 4xx,-5003--5000", 404, true),
            ("200, 4xx,-5003--5000", -5001, true),
            ("200, 4xx,-5003--5000", 301, false),
            ("200, 4xx,-5003--5000", -1, false),
            ("200,,404,", 404, true),
        ] {
            assert_eq!(passes(spec, status), want, "{spec:?} on {status}");
        }
    }

    #[test]
    fn refusals_name_the_wrong_part() {
        for (spec, part) in [
            ("x", "x"),
            ("abc", "abc"),
            ("4x", "4x"),
            ("0xx", "0xx"),
            ("10xx", "10xx"),
            ("200, 499-400", "499-400"),
            ("500-400", "500-400"),
            ("1-2-3", "1-2-3"),
            // A multi-byte first character is refused, never cut inside.
            ("é-1", "é-1"),
        ] {
            assert_eq!(
                StatusFilter::parse(spec),
                Err(StatusFilterError::Part(part.into())),
                "{spec:?}"
            );
        }
        for spec in ["", " ", ",", " , "] {
            assert_eq!(
                StatusFilter::parse(spec),
                Err(StatusFilterError::Empty),
                "{spec:?}"
            );
        }
        let message = StatusFilter::parse("4x").unwrap_err().to_string();
        assert!(
            message.contains("\"4x\"") && message.contains("4xx"),
            "{message}"
        );
    }
}
