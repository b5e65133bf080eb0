//! Syslog lines: RFC 5424, and RFC 3164 as files really hold it.
//!
//! RFC 5424: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [MSG]`, where
//! any header field may be the NILVALUE `-` (no span is recorded for it).
//!
//! RFC 3164: `[<PRI>]Mmm dd hh:mm:ss HOSTNAME TAG[PID]: MSG`. rsyslog drops the `<PRI>` when
//! it writes files, and its modern default file template puts an RFC 3339 time where the
//! `Mmm dd` was; that form is accepted only with a `TAG:`, so that a plain line starting
//! with an ISO time (Heritrix's progress-statistics.log) is not mistaken for syslog.
//!
//! The header is read from the first physical line; the message runs to the end of the
//! record, so a joined stack trace stays part of it.

use contracts::{Field, FieldSpan};

use crate::parsed::span;
use crate::timestamp::{self, MonthForm};

/// Largest syslog priority: facility 23, severity 7.
const MAX_PRIORITY: u32 = 191;

/// The end of the record without trailing `\r` or `\n`.
fn record_end(b: &[u8]) -> usize {
    let mut end = b.len();
    while end > 0 && matches!(b[end - 1], b'\r' | b'\n') {
        end -= 1;
    }
    end
}

/// A `<PRI>` at the start: returns the position after `>` and the digits' span.
fn priority(b: &[u8]) -> Option<(usize, (usize, usize))> {
    if b.first() != Some(&b'<') {
        return None;
    }
    let n = b
        .iter()
        .skip(1)
        .take(4)
        .take_while(|c| c.is_ascii_digit())
        .count();
    if !(1..=3).contains(&n) || b.get(1 + n) != Some(&b'>') {
        return None;
    }
    let value = b[1..1 + n]
        .iter()
        .fold(0u32, |v, c| v * 10 + u32::from(c - b'0'));
    (value <= MAX_PRIORITY).then_some((2 + n, (1, 1 + n)))
}

/// The token at `pos` up to the next space or `end`; `None` if empty.
fn token(b: &[u8], pos: usize, end: usize) -> Option<(usize, usize)> {
    let stop = memchr::memchr(b' ', &b[pos.min(end)..end]).map_or(end, |i| pos + i);
    (stop > pos).then_some((pos, stop))
}

/// Parses an RFC 5424 line: its time (`None` for a NILVALUE time), or `None` if it is not
/// one. Spans are appended to `fields`; after a `None`, what was appended is garbage for
/// the caller to clear.
pub(crate) fn parse_5424_into(b: &[u8], fields: &mut Vec<FieldSpan>) -> Option<Option<i64>> {
    let end = record_end(b);
    let header_end = memchr::memchr(b'\n', &b[..end]).unwrap_or(end);
    let h = &b[..header_end];
    let (mut pos, pri) = match priority(h) {
        Some((after, (s, e))) => {
            fields.push(span(Field::Priority, s, e));
            (after, true)
        }
        None => (0, false),
    };
    // VERSION: 1 or 2 digits, the first not 0. Without `<PRI>` only "1 " with a real
    // time counts, which a plain line is unlikely to start with.
    let (vs, ve) = token(h, pos, header_end)?;
    let version = &h[vs..ve];
    if !(1..=2).contains(&version.len())
        || version[0] == b'0'
        || !version.iter().all(u8::is_ascii_digit)
    {
        return None;
    }
    if !pri && version != b"1" {
        return None;
    }
    pos = ve + 1;

    let (ts, te) = token(h, pos, header_end)?;
    let time_us = if &h[ts..te] == b"-" {
        if !pri {
            return None;
        }
        None
    } else {
        let (used, t, with_t) = timestamp::iso8601(&h[ts..te])?;
        if used != te - ts || !with_t {
            return None;
        }
        fields.push(span(Field::SyslogTime, ts, te));
        Some(t)
    };
    pos = te + 1;

    for field in [Field::Hostname, Field::AppName, Field::ProcId, Field::MsgId] {
        let (s, e) = token(h, pos, header_end)?;
        if &h[s..e] != b"-" {
            fields.push(span(field, s, e));
        }
        pos = e + 1;
    }

    let sd_end = structured_data_end(h, pos)?;
    if &h[pos..sd_end] != b"-" {
        fields.push(span(Field::StructuredData, pos, sd_end));
    }
    if sd_end < header_end && h[sd_end] != b' ' {
        return None;
    }
    let mut msg = sd_end + 1;
    // A UTF-8 message may start with a byte order mark, which is no part of the text.
    if b.get(msg..msg + 3) == Some(b"\xEF\xBB\xBF") {
        msg += 3;
    }
    if msg < end {
        fields.push(span(Field::Message, msg, end));
    }
    Some(time_us)
}

/// [`parse_5424_into`] with a vector of its own.
#[cfg(test)]
fn parse_5424(b: &[u8]) -> Option<(Vec<FieldSpan>, Option<i64>)> {
    let mut fields = Vec::new();
    parse_5424_into(b, &mut fields).map(|t| (fields, t))
}

/// End of STRUCTURED-DATA starting at `pos`: `-`, or one or more `[id param="value" ...]`
/// elements, where a quoted value may hold `\]`, `\"` and spaces.
fn structured_data_end(h: &[u8], pos: usize) -> Option<usize> {
    match h.get(pos)? {
        b'-' => Some(pos + 1),
        b'[' => {
            let mut i = pos;
            while h.get(i) == Some(&b'[') {
                i += 1;
                let mut in_quote = false;
                loop {
                    match *h.get(i)? {
                        b'\\' if in_quote => i += 1,
                        b'"' => in_quote = !in_quote,
                        b']' if !in_quote => break,
                        _ => {}
                    }
                    i += 1;
                }
                i += 1;
            }
            Some(i)
        }
        _ => None,
    }
}

/// A `[start, end)` range of bytes.
type Range = (usize, usize);

/// Whether `t` is a TAG token: `name:`, `name[pid]:` or `name[pid]`. Returns the name's and
/// the pid's ranges (relative to `t`).
fn tag(t: &[u8]) -> Option<(Range, Option<Range>)> {
    let name_end = t.iter().position(|&c| c == b'[' || c == b':')?;
    if name_end == 0 || name_end > 64 {
        return None;
    }
    match t[name_end] {
        b':' => (name_end + 1 == t.len()).then_some(((0, name_end), None)),
        _ => {
            let close = name_end + 1 + t[name_end + 1..].iter().position(|&c| c == b']')?;
            let rest = &t[close + 1..];
            (rest.is_empty() || rest == b":")
                .then_some(((0, name_end), Some((name_end + 1, close))))
        }
    }
}

/// Parses an RFC 3164 line (see the module doc): its time, or `None` if it is not one.
/// Spans are appended to `fields`; after a `None`, what was appended is garbage for the
/// caller to clear.
pub(crate) fn parse_3164_into(
    b: &[u8],
    read_time_us: i64,
    fields: &mut Vec<FieldSpan>,
) -> Option<i64> {
    let end = record_end(b);
    let header_end = memchr::memchr(b'\n', &b[..end]).unwrap_or(end);
    let h = &b[..header_end];
    let mut pos = 0;
    if let Some((after, (s, e))) = priority(h) {
        fields.push(span(Field::Priority, s, e));
        pos = after;
    }
    let first = *h.get(pos)?;
    let (used, time_us, needs_tag) = if first.is_ascii_digit() {
        let (used, t, with_t) = timestamp::iso8601(&h[pos..])?;
        if !with_t {
            return None;
        }
        (used, t, true)
    } else {
        let (used, civil, form) = timestamp::month_first(&h[pos..])?;
        let t = match form {
            MonthForm::Syslog => timestamp::resolve_year(civil, read_time_us)?,
            MonthForm::SyslogWithYear => civil.to_us()?,
            MonthForm::Java => return None,
        };
        (used, t, false)
    };
    fields.push(span(Field::SyslogTime, pos, pos + used));
    pos += used;
    if h.get(pos) != Some(&b' ') {
        return None;
    }
    pos += 1;

    let (hs, he) = token(h, pos, header_end)?;
    let mut next = he + 1;
    let mut tag_at = None;
    // A relay may leave the host out ("Oct 11 22:14:15 su: 'su root' failed"): a first token
    // that is a tag is the tag.
    if tag(&h[hs..he]).is_some() && h[hs..he].ends_with(b":") {
        tag_at = Some((hs, he));
        next = hs;
    } else {
        fields.push(span(Field::Hostname, hs, he));
    }
    if tag_at.is_none()
        && let Some((ts, te)) = token(h, next, header_end)
        && tag(&h[ts..te]).is_some()
    {
        tag_at = Some((ts, te));
    }
    let msg = match tag_at {
        Some((ts, te)) => {
            let ((ns, ne), pid) = tag(&h[ts..te])?;
            fields.push(span(Field::AppName, ts + ns, ts + ne));
            if let Some((ps, pe)) = pid
                && pe > ps
            {
                fields.push(span(Field::ProcId, ts + ps, ts + pe));
            }
            te + 1
        }
        None if needs_tag => return None,
        None => next,
    };
    if msg < end {
        fields.push(span(Field::Message, msg, end));
    }
    Some(time_us)
}

/// [`parse_3164_into`] with a vector of its own.
#[cfg(test)]
fn parse_3164(b: &[u8], read_time_us: i64) -> Option<(Vec<FieldSpan>, Option<i64>)> {
    let mut fields = Vec::new();
    parse_3164_into(b, read_time_us, &mut fields).map(|t| (fields, Some(t)))
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

    fn text(line: &str, spans: &[FieldSpan]) -> Vec<(Field, String)> {
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

    fn owned(v: &[(Field, &str)]) -> Vec<(Field, String)> {
        v.iter().map(|(f, s)| (*f, (*s).to_owned())).collect()
    }

    #[test]
    fn rfc5424_full_line_with_offset_and_structured_data() {
        let line = r#"<165>1 2026-11-21T10:00:00.123456+01:00 crawler-07 heritrix 4242 ID47 [exampleSDID@32473 iut="3" eventSource="App \"x\" ]"][meta seq="1"] BOMless message"#;
        let (spans, t) = parse_5424(line.as_bytes()).expect("valid 5424");
        assert_eq!(t, Some(us("2026-11-21T09:00:00.123456Z")));
        assert_eq!(
            text(line, &spans),
            owned(&[
                (Field::Priority, "165"),
                (Field::SyslogTime, "2026-11-21T10:00:00.123456+01:00"),
                (Field::Hostname, "crawler-07"),
                (Field::AppName, "heritrix"),
                (Field::ProcId, "4242"),
                (Field::MsgId, "ID47"),
                (
                    Field::StructuredData,
                    r#"[exampleSDID@32473 iut="3" eventSource="App \"x\" ]"][meta seq="1"]"#
                ),
                (Field::Message, "BOMless message"),
            ])
        );
    }

    #[test]
    fn rfc5424_nilvalues_leave_fields_out() {
        let line = "<34>1 - - - - - -";
        let (spans, t) = parse_5424(line.as_bytes()).expect("all nil is valid");
        assert_eq!(t, None);
        assert_eq!(text(line, &spans), owned(&[(Field::Priority, "34")]));
        let line = "<34>1 2026-11-21T10:00:00Z host - - - - \u{feff}an 'su root' message";
        let (spans, _) = parse_5424(line.as_bytes()).expect("valid");
        assert_eq!(
            text(line, &spans),
            owned(&[
                (Field::Priority, "34"),
                (Field::SyslogTime, "2026-11-21T10:00:00Z"),
                (Field::Hostname, "host"),
                (Field::Message, "an 'su root' message"),
            ])
        );
    }

    #[test]
    fn rfc5424_rejects() {
        for bad in [
            "<192>1 - - - - - -",
            "<34>0 - - - - - -",
            "<34>1 2026-11-21 10:00:00Z h a p m -",
            "<34>1 - h a p m [unclosed",
            "<34>1 - h a p m -x",
            "<34>1 - h a p",
            "1 - h a p m - msg",
            "2 2026-11-21T10:00:00Z h a p m - msg",
        ] {
            assert!(parse_5424(bad.as_bytes()).is_none(), "{bad}");
        }
        assert!(
            parse_5424(b"1 2026-11-21T10:00:00Z h a p m - msg").is_some(),
            "pri is optional"
        );
    }

    #[test]
    fn rfc3164_with_and_without_pri() {
        let read = us("2026-11-21T10:00:05Z");
        let line = "<13>Nov 21 10:00:00 crawler-07 sshd[812]: Accepted publickey for ops";
        let (spans, t) = parse_3164(line.as_bytes(), read).expect("valid 3164");
        assert_eq!(t, Some(us("2026-11-21T10:00:00Z")));
        assert_eq!(
            text(line, &spans),
            owned(&[
                (Field::Priority, "13"),
                (Field::SyslogTime, "Nov 21 10:00:00"),
                (Field::Hostname, "crawler-07"),
                (Field::AppName, "sshd"),
                (Field::ProcId, "812"),
                (Field::Message, "Accepted publickey for ops"),
            ])
        );
        let line = "Nov  1 09:59:59 crawler-07 kernel: [ 1.23] eth0 up";
        let (spans, t) = parse_3164(line.as_bytes(), read).expect("rsyslog file line");
        assert_eq!(t, Some(us("2026-11-01T09:59:59Z")));
        assert_eq!(
            text(line, &spans),
            owned(&[
                (Field::SyslogTime, "Nov  1 09:59:59"),
                (Field::Hostname, "crawler-07"),
                (Field::AppName, "kernel"),
                (Field::Message, "[ 1.23] eth0 up"),
            ])
        );
    }

    #[test]
    fn rfc3164_without_tag_or_host() {
        let read = us("2026-11-21T10:00:05Z");
        let line = "Nov 21 10:00:00 crawler-07 -- MARK --";
        let (spans, _) = parse_3164(line.as_bytes(), read).expect("no tag is fine");
        assert_eq!(
            text(line, &spans),
            owned(&[
                (Field::SyslogTime, "Nov 21 10:00:00"),
                (Field::Hostname, "crawler-07"),
                (Field::Message, "-- MARK --")
            ])
        );
        let line = "<34>Oct 11 22:14:15 su: 'su root' failed";
        let (spans, _) = parse_3164(line.as_bytes(), read).expect("no host is fine");
        assert_eq!(
            text(line, &spans),
            owned(&[
                (Field::Priority, "34"),
                (Field::SyslogTime, "Oct 11 22:14:15"),
                (Field::AppName, "su"),
                (Field::Message, "'su root' failed"),
            ])
        );
    }

    #[test]
    fn rfc3164_year_rollover() {
        let line = b"Dec 31 23:59:58 h cron[1]: tick";
        let (_, t) = parse_3164(line, us("2027-01-01T00:00:03Z")).expect("valid");
        assert_eq!(t, Some(us("2026-12-31T23:59:58Z")));
        let line = b"Jan  1 00:00:01 h cron[1]: tick";
        let (_, t) = parse_3164(line, us("2026-12-31T23:59:59Z")).expect("valid");
        assert_eq!(t, Some(us("2027-01-01T00:00:01Z")));
    }

    #[test]
    fn rsyslog_rfc3339_file_format_needs_a_tag() {
        let line = "2026-11-21T10:00:00.123456+01:00 crawler-07 systemd[1]: Started x.service.";
        let (spans, t) = parse_3164(line.as_bytes(), 0).expect("rsyslog's default file format");
        assert_eq!(t, Some(us("2026-11-21T09:00:00.123456Z")));
        assert_eq!(text(line, &spans)[3], (Field::ProcId, "1".to_owned()));
        assert!(parse_3164(b"2015-05-22T15:01:07Z CRAWL RUNNING - Preparing", 0).is_none());
        assert!(parse_3164(b"2015-05-22T15:01:27Z 71 21 50 2.5(2.51)", 0).is_none());
        assert!(parse_3164(b"Nov 21, 2026 3:04:05 PM org.archive.Foo bar", 0).is_none());
    }

    #[test]
    fn message_keeps_joined_lines() {
        let line = "<13>Nov 21 10:00:00 h java[9]: boom\n\tat a.b(C.java:1)\n";
        let (spans, _) = parse_3164(line.as_bytes(), us("2026-11-21T10:00:00Z")).expect("valid");
        let m = text(line, &spans).pop().expect("a message");
        assert_eq!(m, (Field::Message, "boom\n\tat a.b(C.java:1)".to_owned()));
    }
}
