//! Plain lines: any text, with a timestamp sniffed at or near its start.
//!
//! Tried at the start of the line (after an optional `[`): Heritrix's 14- or 17-digit
//! stamp (uri-errors.log, progress-statistics.log in Heritrix 1), ISO 8601 / RFC 3339 with
//! `T` or a space, and the month-first forms (`Nov 21 10:00:00`, `Nov 21, 2026 3:04:05 PM`).
//! Then, at each word start within the first [`SNIFF_WINDOW`] bytes, ISO 8601, the
//! month-first forms and Apache/nginx's `[21/Nov/2026:10:00:00 +0000]`, so that
//! `INFO 2026-11-21 10:00:00 ...` and `127.0.0.1 - - [21/Nov/2026:...]` get their times.
//! Bare digits are only trusted at the very start: further in they are more often an id.

use contracts::{Field, FieldSpan};

use crate::parsed::span;
use crate::timestamp::{self, MonthForm};

/// How far into a line a timestamp may start, in bytes.
pub const SNIFF_WINDOW: usize = 128;

/// Whether a byte ends the timestamp cleanly: a timestamp glued to more digits or letters
/// (`2026-11-21T10:00:00Zabc`, `201101011200001`) is some other token.
fn ends_cleanly(b: &[u8], at: usize) -> bool {
    b.get(at).is_none_or(|c| !c.is_ascii_alphanumeric())
}

/// ISO 8601 or a month-first time at `at`: (bytes used, UTC µs).
fn word_time(b: &[u8], at: usize, read_time_us: i64) -> Option<(usize, i64)> {
    let rest = &b[at..];
    let first = *rest.first()?;
    let (used, t) = if first.is_ascii_digit() {
        let (used, t, _) = timestamp::iso8601(rest)?;
        (used, t)
    } else if first.is_ascii_alphabetic() {
        let (used, civil, form) = timestamp::month_first(rest)?;
        let t = match form {
            MonthForm::Syslog => timestamp::resolve_year(civil, read_time_us)?,
            MonthForm::SyslogWithYear | MonthForm::Java => civil.to_us()?,
        };
        (used, t)
    } else {
        return None;
    };
    ends_cleanly(rest, used).then_some((used, t))
}

/// Finds a timestamp near the start of the first line of `b`. Returns its span and time.
pub(crate) fn sniff(b: &[u8], read_time_us: i64) -> Option<(FieldSpan, i64)> {
    // Only the first physical line: a joined stack trace's times are not the record's.
    let window = b.len().min(SNIFF_WINDOW);
    let window = memchr::memchr(b'\n', &b[..window]).unwrap_or(window);
    let found = |start: usize, (used, t): (usize, i64)| {
        Some((span(Field::Timestamp, start, start + used), t))
    };

    let at = usize::from(b.first() == Some(&b'['));
    if let Some((used, t)) = timestamp::heritrix_digits(&b[at..])
        && ends_cleanly(b, at + used)
    {
        return found(at, (used, t));
    }
    for i in 0..window {
        let c = b[i];
        if !c.is_ascii_alphanumeric() {
            continue;
        }
        let prev = if i == 0 { b' ' } else { b[i - 1] };
        // Word starts only: a time inside a URL or an id is not the line's time.
        if !matches!(
            prev,
            b' ' | b'\t' | b'[' | b'(' | b'<' | b'"' | b'\'' | b'=' | b',' | b';' | b'|'
        ) {
            continue;
        }
        if prev == b'['
            && c.is_ascii_digit()
            && let Some((used, t)) = timestamp::apache(&b[i..])
        {
            return found(i, (used, t));
        }
        if let Some(hit) = word_time(b, i, read_time_us) {
            return found(i, hit);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn us(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s)
            .expect("test times are valid rfc 3339")
            .timestamp_micros()
    }

    fn sniffed(line: &str) -> Option<(String, i64)> {
        let read = us("2026-11-21T12:00:00Z");
        sniff(line.as_bytes(), read).map(|(s, t)| {
            (
                line[s.start as usize..(s.start + s.len) as usize].to_owned(),
                t,
            )
        })
    }

    #[test]
    fn each_style() {
        let cases = [
            (
                "2026-11-21T10:00:00Z started",
                "2026-11-21T10:00:00Z",
                "2026-11-21T10:00:00Z",
            ),
            (
                "2026-11-21T10:00:00.5+01:00 x",
                "2026-11-21T10:00:00.5+01:00",
                "2026-11-21T09:00:00.5Z",
            ),
            (
                "2026-11-21 10:00:00,123 INFO thread-1 x",
                "2026-11-21 10:00:00,123",
                "2026-11-21T10:00:00.123Z",
            ),
            (
                "20060815075357634 http://x/ \"m\" y",
                "20060815075357634",
                "2006-08-15T07:53:57.634Z",
            ),
            (
                "20050506114726 CRAWL RESUMED",
                "20050506114726",
                "2005-05-06T11:47:26Z",
            ),
            (
                "Nov 21 10:00:00 anything",
                "Nov 21 10:00:00",
                "2026-11-21T10:00:00Z",
            ),
            (
                "Nov 21, 2026 3:04:05 PM org.archive.X y",
                "Nov 21, 2026 3:04:05 PM",
                "2026-11-21T15:04:05Z",
            ),
            (
                "192.0.2.1 - frank [21/Nov/2026:10:00:00 -0700] \"GET / HTTP/1.1\" 200",
                "21/Nov/2026:10:00:00 -0700",
                "2026-11-21T17:00:00Z",
            ),
            (
                "[2026-11-21 10:00:00] worker: up",
                "2026-11-21 10:00:00",
                "2026-11-21T10:00:00Z",
            ),
            (
                "INFO 2026-11-21T10:00:00Z x",
                "2026-11-21T10:00:00Z",
                "2026-11-21T10:00:00Z",
            ),
            (
                "ts=2026-11-21T10:00:00Z x",
                "2026-11-21T10:00:00Z",
                "2026-11-21T10:00:00Z",
            ),
        ];
        for (line, span, time) in cases {
            assert_eq!(sniffed(line), Some((span.to_owned(), us(time))), "{line}");
        }
    }

    #[test]
    fn no_time_where_there_is_none() {
        for line in [
            "",
            "           timestamp  discovered      queued",
            "GET /a/2026-11-21T10:00:00Z",
            "id 20060815075357634 later",
            "2026-11-21T10:00:00Zabc",
            "Nov 21 10:00:00x",
            "201101011200001 fifteen digits",
        ] {
            assert_eq!(sniffed(line), None, "{line}");
        }
        assert_eq!(
            sniffed("untimed\n\tat 2026-11-21T10:00:00Z"),
            None,
            "a joined line's time"
        );
        let far = format!("{} 2026-11-21T10:00:00Z", "x".repeat(SNIFF_WINDOW));
        assert_eq!(sniffed(&far), None, "beyond the window");
    }
}
