//! An event as the columns of a version-2 segment row (`event`, see
//! [`crate::segment_schema`]), and the crawl.log line rebuilt from them.
//!
//! A crawl.log line is stored as its fields, not as text, when [`rebuild_crawl_line`] gives
//! back its exact bytes; the segment's views rebuild it with the same layout in SQL
//! ([`crate::segment_schema::CRAWL_LINE_SQL`]). Anything else (another format, a line with
//! extra spaces, a trailing `\r`, a joined stack trace, bytes that are not UTF-8) keeps its
//! line and its fields JSON as version 1 did, so no line depends on a layout it does not
//! have.

use std::borrow::Cow;

use crate::crawled_url::url_host;
use crate::{Event, Field, Format};

/// Last microsecond SQLite's `strftime` and chrono both write with a four-digit year.
const MAX_DERIVED_TIME_US: i64 = 253_402_300_799_999_999;

/// The crawl.log columns of a row (`status` is set exactly for rows with a `crawled_url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrawlColumns<'a> {
    /// The log time's text; `None` when it is [`heritrix_time`] of the event time.
    pub log_time: Option<Cow<'a, str>>,
    /// Fetch status.
    pub status: i64,
    /// The size field; `None` for `-` (or a size that is not a number).
    pub size: Option<i64>,
    /// URL.
    pub url: Cow<'a, str>,
    /// Hop path.
    pub hop_path: Option<Cow<'a, str>>,
    /// Via, as logged (`-` included).
    pub via: Option<Cow<'a, str>>,
    /// MIME type, as logged.
    pub mimetype: Option<Cow<'a, str>>,
    /// Thread (`#042`); stored only for a rebuilt line.
    pub thread: Option<Cow<'a, str>>,
    /// Fetch timestamp and duration as logged (`20181126142745781+41`); kept only for a
    /// rebuilt line, and stored only when [`CrawlColumns::fetch_parts`] is `None`.
    pub fetch_time: Option<Cow<'a, str>>,
    /// The fetch time as (event time minus fetch start, duration) in milliseconds, when
    /// the views write those back as the logged text.
    pub fetch_parts: Option<(i64, i64)>,
    /// Digest, as logged.
    pub digest: Option<Cow<'a, str>>,
    /// Source tag, as logged.
    pub source_tag: Option<Cow<'a, str>>,
    /// Annotations, as logged.
    pub annotations: Option<Cow<'a, str>>,
    /// The trailing JSON object, when logged.
    pub extra: Option<Cow<'a, str>>,
    /// The URL's host (the trough feed's `host`), when [`sql_url_host`] does not give it.
    pub url_host: Option<String>,
}

/// One `event` row of a version-2 segment, before its names become `label` numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRow<'a> {
    /// The tailer id's 64 bits as a signed integer (SQLite has no unsigned one).
    pub tailer: i64,
    /// File sequence number.
    pub file_seq: i64,
    /// Byte offset.
    pub file_offset: i64,
    /// Event time.
    pub time_us: i64,
    /// Host name.
    pub host: &'a str,
    /// App name.
    pub app: &'a str,
    /// Format name.
    pub format: &'static str,
    /// Flag bits.
    pub flags: i64,
    /// `None` when the line's length in bytes.
    pub original_len: Option<i64>,
    /// `None` when rebuilt from the crawl.log columns.
    pub line: Option<Cow<'a, str>>,
    /// The bytes of a line that is not UTF-8.
    pub raw: Option<&'a [u8]>,
    /// Version 1's fields JSON; `None` when the views derive it.
    pub fields: Option<Cow<'a, str>>,
    /// The crawl.log columns, for an event with a `crawled_url` row.
    pub crawl: Option<CrawlColumns<'a>>,
}

/// Appends `v` as `width` decimal digits (zero-padded; `v` is less than 10^width).
fn push_digits(out: &mut String, v: u32, width: u32) {
    for i in (0..width).rev() {
        out.push(char::from(b'0' + ((v / 10u32.pow(i)) % 10) as u8));
    }
}

/// The proleptic Gregorian (year, month, day) of `days` since 1970-01-01 (Hinnant's
/// `civil_from_days`): what `chrono` computes, without its checks, for the ingest path.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's `days_from_civil`);
/// the caller checks that the date exists.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Appends the UTC time `ms` (milliseconds since the epoch, in a four-digit year) as
/// `YYYY-MM-DDTHH:MM:SS.mmmZ` or, `compact`, `YYYYMMDDHHMMSSmmm`. Written digit by digit
/// from integer arithmetic: this runs twice per crawl.log event on the segment writer's
/// thread, where `chrono`'s `format` cost a fifth of its time and its calendar still
/// about 2%.
fn push_time(out: &mut String, ms: i64, compact: bool) -> Option<()> {
    if !(0..=MAX_DERIVED_TIME_US / 1000).contains(&ms) {
        return None;
    }
    let (year, month, day) = civil_from_days(ms.div_euclid(86_400_000));
    let in_day = ms.rem_euclid(86_400_000);
    let secs = (in_day / 1000) as u32;
    let (date_sep, mid, time_sep, dot, end) = if compact {
        ("", "", "", "", "")
    } else {
        ("-", "T", ":", ".", "Z")
    };
    push_digits(out, year as u32, 4);
    out.push_str(date_sep);
    push_digits(out, month, 2);
    out.push_str(date_sep);
    push_digits(out, day, 2);
    out.push_str(mid);
    push_digits(out, secs / 3600, 2);
    out.push_str(time_sep);
    push_digits(out, secs / 60 % 60, 2);
    out.push_str(time_sep);
    push_digits(out, secs % 60, 2);
    out.push_str(dot);
    push_digits(out, (in_day % 1000) as u32, 3);
    out.push_str(end);
    Some(())
}

/// `time_us` written as Heritrix writes its log time (`2018-11-26T14:27:46.376Z`), when
/// it is whole milliseconds in a four-digit year: what the views derive for a NULL
/// `log_time`.
pub fn heritrix_time(time_us: i64) -> Option<String> {
    if time_us % 1000 != 0 {
        return None;
    }
    let mut out = String::with_capacity(24);
    push_time(&mut out, time_us / 1000, false)?;
    Some(out)
}

/// The host the views derive from a URL when `url_host` is NULL
/// ([`crate::segment_schema::URL_HOST_SQL`]): the lowercased name after `dns:`, or what
/// follows the first `://` up to the first `/`. The buck stores the host only where this
/// differs from [`url_host`] (a port, user info, a query without a path).
pub fn sql_url_host(url: &str) -> String {
    if let Some(name) = url.strip_prefix("dns:") {
        return name.to_ascii_lowercase();
    }
    let rest = match url.find("://") {
        Some(i) => &url[i + 3..],
        // SQL's `substr(url, instr(url, '://') + 3)` with instr 0: from the third character.
        None => url.char_indices().nth(2).map_or("", |(i, _)| &url[i..]),
    };
    let end = rest.find('/').unwrap_or(rest.len());
    rest[..end].to_ascii_lowercase()
}

/// `fetch_time` (`20181126142745781+41`) as (event time minus fetch start, duration) in
/// milliseconds, when the views' `strftime` and `printf` write exactly that text back.
fn fetch_parts(fetch_time: &str, time_us: i64) -> Option<(i64, i64)> {
    let (start, dur) = fetch_time.split_once('+')?;
    let b = start.as_bytes();
    if b.len() != 17 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let dur_ms: i64 = dur.parse().ok()?;
    if dur.is_empty()
        || (dur.len() > 1 && dur.starts_with('0'))
        || !dur.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> u32 {
        b[r].iter().fold(0, |n, d| n * 10 + u32::from(d - b'0'))
    };
    let (year, month, day) = (i64::from(num(0..4)), num(4..6), num(6..8));
    let (hour, minute, second) = (num(8..10), num(10..12), num(12..14));
    // A date or time that does not exist (a leap second included) is refused here, and
    // anything else writes back the same text: no calendar library needed.
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => return None,
    };
    if day == 0 || day > days_in_month || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let start_ms = days_from_civil(year, month, day) * 86_400_000
        + i64::from(hour * 3600 + minute * 60 + second) * 1000
        + i64::from(num(14..17));
    // A leap second or an out-of-range year would not write back the same.
    let mut back = String::with_capacity(17);
    push_time(&mut back, start_ms, true)?;
    (back == start).then_some((time_us.div_euclid(1000) - start_ms, dur_ms))
}

/// The crawl.log line the views make of `c` for an event at `time_us`: Heritrix's layout,
/// status right-aligned in 5 columns, size in 10, one space between fields, the extra JSON
/// last. `None` when a field it needs is missing.
pub fn rebuild_crawl_line(c: &CrawlColumns<'_>, time_us: i64) -> Option<String> {
    rebuild_into(c, time_us, None)
}

/// [`rebuild_crawl_line`], given the derived log time if already made.
fn rebuild_into(c: &CrawlColumns<'_>, time_us: i64, derived: Option<&str>) -> Option<String> {
    let mut line = String::with_capacity(
        96 + c.url.len()
            + c.via.as_ref().map_or(0, |v| v.len())
            + c.annotations.as_ref().map_or(0, |v| v.len())
            + c.extra.as_ref().map_or(0, |v| v.len()),
    );
    match (&c.log_time, derived) {
        (Some(t), _) => line.push_str(t),
        (None, Some(d)) => line.push_str(d),
        (None, None) => push_time(&mut line, exact_ms(time_us)?, false)?,
    }
    push_int_padded(&mut line, c.status, 5);
    match c.size {
        Some(s) => push_int_padded(&mut line, s, 10),
        None => line.push_str("          -"),
    }
    for f in [
        Some(c.url.as_ref()),
        c.hop_path.as_deref(),
        c.via.as_deref(),
        c.mimetype.as_deref(),
        c.thread.as_deref(),
    ] {
        line.push(' ');
        line.push_str(f?);
    }
    line.push(' ');
    match (c.fetch_parts, &c.fetch_time) {
        (Some((ago, dur)), _) => {
            push_time(&mut line, time_us.div_euclid(1000) - ago, true)?;
            line.push('+');
            line.push_str(decimal(dur, &mut [0; 20]));
        }
        (None, t) => line.push_str(t.as_deref()?),
    }
    for f in [
        c.digest.as_deref(),
        c.source_tag.as_deref(),
        c.annotations.as_deref(),
    ] {
        line.push(' ');
        line.push_str(f?);
    }
    if let Some(x) = &c.extra {
        line.push(' ');
        line.push_str(x);
    }
    Some(line)
}

/// `v` in decimal, written into `buf` without allocating: it runs for every rebuilt line.
fn decimal(v: i64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    let mut n = v.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    // ASCII digits and '-' only.
    std::str::from_utf8(&buf[i..]).unwrap_or_default()
}

/// Appends a space, then `v` right-aligned in `width` columns (as `printf`'s `%5s`).
fn push_int_padded(out: &mut String, v: i64, width: usize) {
    let mut buf = [0; 20];
    let d = decimal(v, &mut buf);
    out.push(' ');
    for _ in d.len()..width {
        out.push(' ');
    }
    out.push_str(d);
}

/// `time_us` in milliseconds when it is whole milliseconds.
fn exact_ms(time_us: i64) -> Option<i64> {
    (time_us % 1000 == 0).then_some(time_us / 1000)
}

/// The event's parsed fields as a JSON object text (version 1's `fields`), written
/// straight into one string: this runs on the ingest path, where building a
/// `serde_json::Map` of owned strings first cost a tenth of the writer's time. A field
/// named twice keeps its first value.
pub fn fields_json(ev: &Event) -> String {
    let mut out = String::with_capacity(ev.raw.len() + 16 * ev.fields.len() + 2);
    out.push('{');
    let mut seen = 0u64;
    for s in &ev.fields {
        let bit = 1u64 << ((s.field as u8) % 64);
        if seen & bit != 0 {
            continue;
        }
        let Some(v) = ev.field_str(s.field) else {
            continue;
        };
        seen |= bit;
        if out.len() > 1 {
            out.push(',');
        }
        out.push('"');
        out.push_str(s.field.name());
        out.push_str("\":");
        // Serializing a &str to a String cannot fail.
        out.push_str(&serde_json::to_string(v.as_ref()).unwrap_or_else(|_| "null".into()));
    }
    out.push('}');
    out
}

/// The text of `field`: a slice of `line` (the whole line, already known to be UTF-8)
/// when there is one, so that each field is not validated again.
fn field_text<'a>(ev: &'a Event, line: Option<&'a str>, field: Field) -> Option<Cow<'a, str>> {
    let span = ev.fields.iter().find(|s| s.field == field)?;
    let (start, end) = (span.start as usize, span.start as usize + span.len as usize);
    match line.and_then(|l| l.get(start..end)) {
        Some(t) => Some(Cow::Borrowed(t)),
        None => ev.field_str(field),
    }
}

/// The crawl.log columns of a crawl.log event with a status and a URL (the events that
/// have a `crawled_url` row, as [`crate::crawled_url::CrawledUrl::from_event`] decides).
/// `line` is the raw line when it is UTF-8.
fn crawl_columns<'a>(
    ev: &'a Event,
    line: Option<&'a str>,
    derived: Option<&str>,
) -> Option<CrawlColumns<'a>> {
    if ev.format != Format::CrawlLog {
        return None;
    }
    let field_str = |f| field_text(ev, line, f);
    let status = field_str(Field::Status)?.trim().parse().ok()?;
    let url = field_str(Field::Url)?;
    let host = url_host(&url);
    let fetch_time = field_str(Field::FetchTime);
    let log_time = field_str(Field::LogTime);
    let log_time = match (&log_time, derived) {
        (Some(t), Some(d)) if t == d => None,
        (Some(_), _) => log_time,
        // No log time: the trough feed's timestamp is the event time (version 1 did the
        // same), kept as text so the view shows it whatever its precision.
        (None, _) => Some(Cow::Owned(ev.time().to_rfc3339())),
    };
    Some(CrawlColumns {
        log_time,
        status,
        size: field_str(Field::Size).and_then(|s| s.trim().parse().ok()),
        url_host: (sql_url_host(&url) != host).then_some(host),
        url,
        hop_path: field_str(Field::HopPath),
        via: field_str(Field::Via),
        mimetype: field_str(Field::MimeType),
        thread: field_str(Field::Thread),
        fetch_parts: fetch_time
            .as_deref()
            .and_then(|t| fetch_parts(t, ev.time_us)),
        fetch_time,
        digest: field_str(Field::Digest),
        source_tag: field_str(Field::SourceTag),
        annotations: field_str(Field::Annotations),
        extra: field_str(Field::Extra),
    })
}

impl<'a> SegmentRow<'a> {
    /// The row of `ev`. `fields` replaces the JSON made from its spans (porter keeps a
    /// version-1 row's JSON as it was when the line has no parser that would remake it).
    pub fn of(ev: &'a Event, fields: Option<&'a str>) -> SegmentRow<'a> {
        let text = std::str::from_utf8(&ev.raw).ok();
        let (line, raw) = match text {
            Some(s) => (Cow::Borrowed(s), None),
            None => (String::from_utf8_lossy(&ev.raw), Some(ev.raw.as_slice())),
        };
        let derived = match ev.format {
            Format::CrawlLog => heritrix_time(ev.time_us),
            _ => None,
        };
        let mut crawl = crawl_columns(ev, text, derived.as_deref());
        let rebuilt = raw.is_none()
            && crawl
                .as_ref()
                .and_then(|c| rebuild_into(c, ev.time_us, derived.as_deref()))
                .is_some_and(|l| l.as_bytes() == ev.raw.as_slice());
        let (line, fields) = if rebuilt {
            (None, None)
        } else {
            if let Some(c) = crawl.as_mut() {
                // The views read these two only to rebuild a line, and this one is stored.
                c.thread = None;
                c.fetch_time = None;
                c.fetch_parts = None;
            }
            let fields = match fields {
                Some(f) => Cow::Borrowed(f),
                None => Cow::Owned(fields_json(ev)),
            };
            (Some(line), Some(fields))
        };
        let original_len =
            (ev.original_len != ev.raw.len() as u64).then_some(ev.original_len as i64);
        SegmentRow::with_parts(ev, original_len, line, raw, fields, crawl)
    }

    /// The row of `ev` with what `of` (or a plan made ahead, `PreparedRow`) worked out:
    /// the identity columns come from the event itself.
    pub(crate) fn with_parts(
        ev: &'a Event,
        original_len: Option<i64>,
        line: Option<Cow<'a, str>>,
        raw: Option<&'a [u8]>,
        fields: Option<Cow<'a, str>>,
        crawl: Option<CrawlColumns<'a>>,
    ) -> SegmentRow<'a> {
        SegmentRow {
            tailer: ev.id.tailer as i64,
            file_seq: ev.id.file_seq as i64,
            file_offset: ev.id.offset as i64,
            time_us: ev.time_us,
            host: &ev.host,
            app: &ev.app,
            format: ev.format.name(),
            flags: i64::from(ev.flags.0),
            original_len,
            line,
            raw,
            fields,
            crawl,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_events::crawl_event;
    use chrono::{DateTime, Datelike};

    /// The integer calendar writes what chrono writes over the whole range it takes
    /// (1970 to 9999, every 29 days at a time of day that moves; every day of the years
    /// around the leap-rule edges) and refuses the rest.
    #[test]
    fn push_time_writes_what_chrono_writes() {
        let day = 86_400_000;
        let last_ms = MAX_DERIVED_TIME_US / 1000;
        let at = |y: i32| {
            chrono::NaiveDate::from_ymd_opt(y, 1, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc()
                .timestamp_millis()
        };
        let mut times: Vec<i64> = (0..=last_ms)
            .step_by(29 * day as usize + 3_661_001)
            .collect();
        for (from, to) in [
            (1970, 1974),
            (1999, 2002),
            (2099, 2102),
            (2399, 2402),
            (9998, 9999),
        ] {
            times.extend((at(from)..at(to + 1).min(last_ms + 1)).step_by(day as usize));
        }
        times.extend([last_ms, 0, day - 1]);
        for t in times {
            let c = DateTime::from_timestamp_millis(t).unwrap();
            let mut long = String::new();
            push_time(&mut long, t, false).unwrap();
            assert_eq!(long, c.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
            let mut compact = String::new();
            push_time(&mut compact, t, true).unwrap();
            assert_eq!(compact, c.format("%Y%m%d%H%M%S%3f").to_string());
            assert_eq!(
                days_from_civil(c.year().into(), c.month(), c.day()),
                t.div_euclid(day)
            );
        }
        assert_eq!(push_time(&mut String::new(), -1, false), None);
        assert_eq!(push_time(&mut String::new(), last_ms + 1, false), None);
    }

    /// A fetch time naming a day or time that does not exist is kept as text.
    #[test]
    fn fetch_parts_refuses_dates_that_do_not_exist() {
        let t = 1_543_242_468_282_000;
        assert_eq!(fetch_parts("20181126142747555+280", t), Some((727, 280)));
        for bad in [
            "20180229142747555+1",
            "20181131142747555+1",
            "20181300142747555+1",
            "20181126242747555+1",
            "20181126146047555+1",
            "20181126142760555+1",
            "20181100142747555+1",
        ] {
            assert_eq!(fetch_parts(bad, t), None, "{bad}");
        }
        assert!(fetch_parts("20000229000000000+1", 951_782_400_000_000).is_some());
    }

    #[test]
    fn a_heritrix_line_is_stored_as_columns_and_rebuilt_byte_for_byte() {
        let line = r#"2018-11-26T14:27:48.282Z   404        233 http://acid.matkelly.com/robots.txt P http://acid.matkelly.com/ text/html #002 20181126142747555+280 sha1:YQG6T7YOWGUK3NUNZVZGNUXFZDZWCDUM - ip:172.19.0.6 {"contentSize":380}"#;
        let t = DateTime::parse_from_rfc3339("2018-11-26T14:27:48.282Z")
            .unwrap()
            .timestamp_micros();
        let ev = crawl_event(line, t);
        let row = SegmentRow::of(&ev, None);
        assert_eq!(row.line, None);
        assert_eq!(row.fields, None);
        let c = row.crawl.as_ref().unwrap();
        assert_eq!(c.log_time, None, "derived from the event time");
        assert_eq!((c.status, c.size), (404, Some(233)));
        assert_eq!(c.url_host, None, "derived from the URL");
        assert_eq!(c.fetch_parts, Some((282 - 555 + 1000, 280)));
        assert_eq!(rebuild_crawl_line(c, t).as_deref(), Some(line));
        assert_eq!(row.tailer, -2);
        assert_eq!(row.original_len, None);
    }

    #[test]
    fn a_line_the_layout_does_not_rebuild_keeps_its_text_and_json() {
        // Two spaces before the URL: not Heritrix's layout.
        let line = "2018-11-26T14:27:48.282Z   404        233  http://a.b/ P - text/html #002 20181126142747555+280 - - -";
        let ev = crawl_event(line, 0);
        let row = SegmentRow::of(&ev, None);
        assert_eq!(row.line.as_deref(), Some(line));
        let json: serde_json::Value = serde_json::from_str(row.fields.as_deref().unwrap()).unwrap();
        assert_eq!(json["url"], "http://a.b/");
        let c = row.crawl.unwrap();
        assert_eq!(c.log_time.as_deref(), Some("2018-11-26T14:27:48.282Z"));
        assert_eq!((c.thread, c.fetch_time), (None, None));
    }

    #[test]
    fn a_log_time_other_than_the_event_time_is_kept() {
        let line = "2006-08-15T09:53:58.470Z     1         59 dns:www.netarkivet.dk P http://www.netarkivet.dk/ text/dns #045 20060815075357634+15 - - content-size:59";
        // time_suspect: the event took its read time.
        let ev = crawl_event(line, 1_543_244_400_000_000);
        let row = SegmentRow::of(&ev, None);
        assert_eq!(row.line, None);
        let c = row.crawl.as_ref().unwrap();
        assert_eq!(c.log_time.as_deref(), Some("2006-08-15T09:53:58.470Z"));
        assert_eq!(rebuild_crawl_line(c, ev.time_us).as_deref(), Some(line));
    }

    #[test]
    fn the_host_is_stored_only_where_the_views_would_not_find_it() {
        for (url, derived) in [
            ("http://WWW.Example.com/a/b", true),
            ("dns:Acid.Matkelly.com", true),
            ("https://h.org", true),
            ("http://h.org:8080/", false),
            ("http://user@h.org/", false),
            ("http://h.org?q=1", false),
            ("whois:x", false),
        ] {
            assert_eq!(sql_url_host(url) == url_host(url), derived, "{url}");
        }
    }

    #[test]
    fn a_fetch_time_is_two_integers_when_they_write_it_back() {
        let t = 1_543_242_468_282_000;
        assert_eq!(fetch_parts("20181126142747555+280", t), Some((727, 280)));
        assert_eq!(fetch_parts("20181126142747555+0280", t), None);
        assert_eq!(fetch_parts("2018112614274755+280", t), None);
        assert_eq!(fetch_parts("20181326142747555+280", t), None);
        assert_eq!(fetch_parts("-", t), None);
    }

    #[test]
    fn heritrix_time_needs_whole_milliseconds() {
        assert_eq!(
            heritrix_time(1_543_242_466_376_000).as_deref(),
            Some("2018-11-26T14:27:46.376Z")
        );
        assert_eq!(heritrix_time(1_543_242_466_376_001), None);
        assert_eq!(heritrix_time(-1000), None);
    }
}

#[cfg(test)]
mod fields_json_tests {
    use crate::{CrawlId, EventFlags, EventId, Field, FieldSpan, Format};

    use super::*;

    #[test]
    fn fields_json_is_the_fields_as_a_json_object() {
        let raw = "a \"quoted\"\\ value\tand é".as_bytes().to_vec();
        let span = |field, start: usize, len: usize| FieldSpan {
            field,
            start: start as u32,
            len: len as u32,
        };
        let ev = Event {
            id: EventId {
                tailer: 1,
                file_seq: 2,
                offset: 3,
            },
            time_us: 0,
            flags: EventFlags::default(),
            original_len: raw.len() as u64,
            format: Format::Plain,
            crawl: CrawlId::parse("c").unwrap(),
            host: "h".into(),
            app: "a".into(),
            fields: vec![
                span(Field::Url, 0, 1),
                span(Field::Message, 2, raw.len() - 2),
            ],
            raw,
        };
        let v: serde_json::Value = serde_json::from_str(&fields_json(&ev)).expect("valid JSON");
        assert_eq!(
            v,
            serde_json::json!({"url": "a", "message": "\"quoted\"\\ value\tand é"})
        );
        let none = Event {
            fields: vec![],
            ..ev
        };
        assert_eq!(fields_json(&none), "{}");
    }
}
