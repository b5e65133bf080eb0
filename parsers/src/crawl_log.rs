//! Heritrix crawl.log lines (Heritrix 1 and 3, warcprox alike).
//!
//! A line is eleven fields separated by runs of spaces (the numbers are right-aligned),
//! then the annotations, then, when Heritrix runs with `logExtraInfo`, a JSON object to the
//! end of the line:
//!
//! ```text
//! 2018-11-26T14:28:07.890Z   200   68 http://h/eicar.com.txt LL http://h/v.html text/plain #002
//!     20181126142807272+5 sha1:GOKY... - ip:172.19.0.3,1: stream: Eicar-Test-Signature FOUND {"contentSize":300}
//! ```
//!
//! Only the annotations and the JSON may contain spaces, so the first eleven fields are
//! plain tokens, and what follows is split where a balanced JSON object starts that runs
//! exactly to the end of the line. Heritrix 1 sometimes leaves the annotations out
//! (local-errors.log), so they are optional.

use contracts::{Field, FieldSpan};

use crate::parsed::span;
use crate::timestamp;

/// Fields that every line has, in order.
const LEADING: [Field; 11] = [
    Field::LogTime,
    Field::Status,
    Field::Size,
    Field::Url,
    Field::HopPath,
    Field::Via,
    Field::MimeType,
    Field::Thread,
    Field::FetchTime,
    Field::Digest,
    Field::SourceTag,
];

/// Where the first physical line of `b` ends, without a trailing `\r` or spaces.
pub(crate) fn first_line_end(b: &[u8]) -> usize {
    let mut end = memchr::memchr(b'\n', b).unwrap_or(b.len());
    while end > 0 && matches!(b[end - 1], b'\r' | b' ') {
        end -= 1;
    }
    end
}

/// Parses a crawl.log line: its fields and the log time, or `None` if it is not one (fewer
/// than eleven fields, a log time that is not ISO 8601, a status that is not an integer, a
/// size that is neither an integer nor `-`, a URL without a `:`, a hop path that is neither
/// `-` nor letters). Only the first physical line is read: a joined
/// stack trace after it belongs to no field. The spans are appended to `fields` (which the
/// caller reuses from line to line), and only when the line is one.
pub(crate) fn parse_into(b: &[u8], fields: &mut Vec<FieldSpan>) -> Option<i64> {
    // Cheap rejection for the common case in `auto`: a crawl.log line starts with a year.
    if !b.first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let end = first_line_end(b);
    let line = &b[..end];
    let mut bounds = [(0usize, 0usize); 11];
    let mut time_us = 0;
    let mut pos = 0;
    for (i, bound) in bounds.iter_mut().enumerate() {
        while pos < end && line[pos] == b' ' {
            pos += 1;
        }
        if pos == end {
            return None;
        }
        let start = pos;
        pos = memchr::memchr(b' ', &line[pos..]).map_or(end, |n| pos + n);
        *bound = (start, pos);
        // Each token is checked as soon as it is cut, so that a line of another format is
        // given up early. Beyond the time and status, the URL's scheme and the hop path's
        // letters are checked: progress-statistics.log lines also start with a time and two
        // integers.
        let t = &line[start..pos];
        let ok = match i {
            0 => match timestamp::iso8601(t) {
                Some((used, us, _)) if used == t.len() => {
                    time_us = us;
                    true
                }
                _ => false,
            },
            1 => is_integer(t),
            2 => t == b"-" || is_integer(t),
            3 => t.contains(&b':'),
            4 => t == b"-" || t.iter().all(u8::is_ascii_alphabetic),
            _ => true,
        };
        if !ok {
            return None;
        }
    }

    fields.reserve(13);
    for (field, &(start, stop)) in LEADING.iter().zip(&bounds) {
        fields.push(span(*field, start, stop));
    }
    while pos < end && line[pos] == b' ' {
        pos += 1;
    }
    if pos < end {
        match extra_start(line, pos) {
            Some(json) if json == pos => fields.push(span(Field::Extra, json, end)),
            Some(json) => {
                let mut ann_end = json;
                while line[ann_end - 1] == b' ' {
                    ann_end -= 1;
                }
                fields.push(span(Field::Annotations, pos, ann_end));
                fields.push(span(Field::Extra, json, end));
            }
            None => fields.push(span(Field::Annotations, pos, end)),
        }
    }
    Some(time_us)
}

/// [`parse_into`] with a vector of its own.
#[cfg(test)]
fn parse(b: &[u8]) -> Option<(Vec<FieldSpan>, i64)> {
    let mut fields = Vec::new();
    parse_into(b, &mut fields).map(|t| (fields, t))
}

/// An optional `-` and 1 to 18 digits (what an `i64` surely holds).
fn is_integer(t: &[u8]) -> bool {
    let digits = t.strip_prefix(b"-").unwrap_or(t);
    (1..=18).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit)
}

/// Where the JSON extra object starts in `line[from..]`: the first `{` at `from` or after a
/// space whose balanced object ends exactly at the end of the line. Trying from the left
/// keeps a JSON value with ` {` inside it whole; checking balance keeps an annotation with
/// a brace in it out of the JSON.
fn extra_start(line: &[u8], from: usize) -> Option<usize> {
    if *line.last()? != b'}' {
        return None;
    }
    let mut at = from;
    while let Some(i) = memchr::memchr(b'{', &line[at..]) {
        let brace = at + i;
        if (brace == from || line[brace - 1] == b' ') && object_ends_at_end(&line[brace..]) {
            return Some(brace);
        }
        at = brace + 1;
    }
    None
}

/// Whether `b` (starting with `{`) is one balanced JSON object or array nesting whose last
/// closing bracket is its last byte. Strings are skipped with their escapes; the values
/// themselves are not validated (Heritrix writes the JSON; this only finds its start).
fn object_ends_at_end(b: &[u8]) -> bool {
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                // Jump through the string: most of a JSON object's bytes are in strings.
                i += 1;
                loop {
                    match memchr::memchr2(b'"', b'\\', &b[i.min(b.len())..]) {
                        None => return false,
                        Some(n) if b[i + n] == b'\\' => i += n + 2,
                        Some(n) => {
                            i += n;
                            break;
                        }
                    }
                }
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = match depth.checked_sub(1) {
                    Some(d) => d,
                    None => return false,
                };
                if depth == 0 {
                    return i == b.len() - 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields_of(line: &str) -> Vec<(Field, String)> {
        let (spans, _) = parse(line.as_bytes()).unwrap_or_else(|| panic!("should parse: {line}"));
        spans
            .iter()
            .map(|s| {
                (
                    s.field,
                    line[s.start as usize..(s.start + s.len) as usize].to_owned(),
                )
            })
            .collect()
    }

    fn get(f: &[(Field, String)], field: Field) -> Option<&str> {
        f.iter().find(|(k, _)| *k == field).map(|(_, v)| v.as_str())
    }

    #[test]
    fn heritrix3_line_with_spaced_annotations_and_json() {
        let line = r#"2018-11-26T14:28:07.890Z   200         68 http://x/eicar.com.txt LL http://x/v.html text/plain #002 20181126142807272+5 sha1:GOKY - ip:172.19.0.3,1: stream: Eicar-Test-Signature FOUND {"contentSize":300,"scopeDecision":"ACCEPT by rule #1 X"}"#;
        let f = fields_of(line);
        assert_eq!(get(&f, Field::Status), Some("200"));
        assert_eq!(get(&f, Field::Size), Some("68"));
        assert_eq!(get(&f, Field::Thread), Some("#002"));
        assert_eq!(
            get(&f, Field::Annotations),
            Some("ip:172.19.0.3,1: stream: Eicar-Test-Signature FOUND")
        );
        assert_eq!(
            get(&f, Field::Extra),
            Some(r#"{"contentSize":300,"scopeDecision":"ACCEPT by rule #1 X"}"#)
        );
    }

    #[test]
    fn braces_inside_annotations_or_json_strings_do_not_confuse_the_split() {
        let line = r#"2018-11-26T14:28:07.890Z 200 68 http://x/ L http://y/ text/html #1 - - - note {odd} {"a":"x {\"y\"} }","b":{"c":[1,{"d":2}]}}"#;
        let f = fields_of(line);
        assert_eq!(get(&f, Field::Annotations), Some("note {odd}"));
        assert_eq!(
            get(&f, Field::Extra),
            Some(r#"{"a":"x {\"y\"} }","b":{"c":[1,{"d":2}]}}"#)
        );
        let line =
            "2018-11-26T14:28:07.890Z 200 68 http://x/ L http://y/ text/html #1 - - - a {b}c";
        assert_eq!(get(&fields_of(line), Field::Annotations), Some("a {b}c"));
        assert_eq!(get(&fields_of(line), Field::Extra), None);
    }

    #[test]
    fn balanced_objects() {
        for (text, want) in [
            (r#"{"a":"\\"}"#, true),
            (r#"{"a":"\"}"#, false),
            (r#"{"a":[1,{"b":"}"}]}"#, true),
            (r#"{"a":1}}"#, false),
            (r#"{"a":1} {"b":2}"#, false),
            (r#"{"a":"x\"#, false),
            ("{", false),
        ] {
            assert_eq!(object_ends_at_end(text.as_bytes()), want, "{text}");
        }
    }

    #[test]
    fn heritrix1_line_without_annotations() {
        let line = "2005-05-06T11:48:07.959Z    -2          - http://test.kb.dk/robots.txt LLP http://test.kb.dk/ no-type #024 - - -\n java.net.SocketTimeoutException: x";
        let f = fields_of(line);
        assert_eq!(get(&f, Field::Status), Some("-2"));
        assert_eq!(get(&f, Field::Size), Some("-"));
        assert_eq!(get(&f, Field::SourceTag), Some("-"));
        assert_eq!(
            get(&f, Field::Annotations),
            None,
            "the stack trace is no annotation"
        );
        assert_eq!(f.len(), 11);
    }

    #[test]
    fn rejects_what_is_not_a_crawl_line() {
        for bad in [
            "2026-11-21T10:00:00Z 200 1 http://x/ L - text/html #1 - -",
            "2026-11-21T10:00:00Z OK 1 http://x/ L - text/html #1 - - -",
            "2026-11-21T10:00:00Z 200 big http://x/ L - text/html #1 - - -",
            "2026-11-21T10:00:00Zjunk 200 1 http://x/ L - text/html #1 - - -",
            "2026-11-31T10:00:00Z 200 1 http://x/ L - text/html #1 - - -",
            " 2026-11-21T10:00:00Z 200 1 http://x/ L - text/html #1 - - -",
            "2026-11-21T10:00:00Z 200 1 no-scheme L - text/html #1 - - -",
            "2026-11-21T10:00:00Z 200 1 http://x/ L2 - text/html #1 - - -",
            "2015-05-22T15:01:07Z           0           0            0           0(NaN)       0(0)             0             0        47719        104960            0          -1           0",
            "",
        ] {
            assert!(parse(bad.as_bytes()).is_none(), "{bad}");
        }
    }

    #[test]
    fn trailing_cr_and_spaces_are_not_part_of_the_last_field() {
        let f = fields_of("2026-11-21T10:00:00Z 200 1 http://x/ L - text/html #1 - - - a,b  \r");
        assert_eq!(get(&f, Field::Annotations), Some("a,b"));
    }
}
