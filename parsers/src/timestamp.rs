//! Timestamps read straight from bytes: ISO 8601 / RFC 3339, Heritrix's 14- and 17-digit
//! stamps, syslog's `Mmm dd hh:mm:ss` (and its Java and with-year cousins), and the
//! Apache/nginx `21/Nov/2026:10:00:00 +0000`.
//!
//! Every parser takes the bytes starting where the timestamp should begin and returns how
//! many bytes it used and the time in microseconds since the epoch, UTC. None allocates;
//! each gives up at the first byte that does not fit, which is what keeps sniffing cheap.
//! A time without an offset is taken as UTC: servers that run crawlers keep their clocks
//! on UTC, and a guess based on the tailer's zone would be wrong as often as right.

use chrono::Datelike;

const US_PER_SEC: i64 = 1_000_000;
const US_PER_DAY: i64 = 86_400 * US_PER_SEC;

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    // Count years from March so that the leap day is the last day of the counted year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let m = i64::from(month);
    let month_from_march = if m > 2 { m - 3 } else { m + 9 };
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// A wall-clock time, before its year or offset is known to be right.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub micros: u32,
}

impl Civil {
    /// Microseconds since the epoch, or `None` when a part is out of range (a 31 April, a
    /// 25th hour). A leap second (60) is accepted and lands on the next minute.
    pub fn to_us(self) -> Option<i64> {
        if !(1..=12).contains(&self.month)
            || self.day == 0
            || self.day > days_in_month(self.year, self.month)
            || self.hour > 23
            || self.minute > 59
            || self.second > 60
        {
            return None;
        }
        let secs =
            i64::from(self.hour) * 3600 + i64::from(self.minute) * 60 + i64::from(self.second);
        Some(
            days_from_civil(self.year, self.month, self.day) * US_PER_DAY
                + secs * US_PER_SEC
                + i64::from(self.micros),
        )
    }
}

/// `n` ASCII digits at `at` as a number.
fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let s = b.get(at..at + n)?;
    let mut v = 0u32;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

fn byte_is(b: &[u8], at: usize, want: u8) -> bool {
    b.get(at) == Some(&want)
}

fn is_digit_at(b: &[u8], at: usize) -> bool {
    b.get(at).is_some_and(u8::is_ascii_digit)
}

/// A fraction of a second starting at `at` (after its `.` or `,`): all its digits are
/// consumed, the first six kept. Returns (bytes used, microseconds).
fn fraction(b: &[u8], at: usize) -> (usize, u32) {
    let mut i = at;
    let mut micros = 0u32;
    let mut kept = 0;
    while let Some(&c) = b.get(i) {
        if !c.is_ascii_digit() {
            break;
        }
        if kept < 6 {
            micros = micros * 10 + u32::from(c - b'0');
            kept += 1;
        }
        i += 1;
    }
    for _ in kept..6 {
        micros *= 10;
    }
    (i - at, micros)
}

/// A UTC offset at `at`: `Z`, `+hh`, `+hhmm` or `+hh:mm` (or `-`). Returns (bytes used,
/// offset in seconds east of UTC).
fn utc_offset(b: &[u8], at: usize) -> Option<(usize, i64)> {
    match b.get(at)? {
        b'Z' | b'z' => Some((1, 0)),
        sign @ (b'+' | b'-') => {
            let hours = digits(b, at + 1, 2)?;
            let (used, minutes) = if byte_is(b, at + 3, b':') && digits(b, at + 4, 2).is_some() {
                (6, digits(b, at + 4, 2)?)
            } else if let Some(m) = digits(b, at + 3, 2) {
                (5, m)
            } else {
                (3, 0)
            };
            if hours > 23 || minutes > 59 {
                return None;
            }
            let secs = i64::from(hours * 3600 + minutes * 60);
            Some((used, if *sign == b'-' { -secs } else { secs }))
        }
        _ => None,
    }
}

/// ISO 8601 / RFC 3339 at the start of `b`: `YYYY-MM-DD`, `T` (or `t`, or one space), `hh:mm`,
/// optional `:ss`, optional `.frac` or `,frac` (Java's style), optional `Z` or offset.
/// Returns (bytes used, UTC microseconds) and whether a `T` separated date and time.
pub(crate) fn iso8601(b: &[u8]) -> Option<(usize, i64, bool)> {
    if !(byte_is(b, 4, b'-') && byte_is(b, 7, b'-')) {
        return None;
    }
    let year = digits(b, 0, 4)?;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let with_t = match b.get(10)? {
        b'T' | b't' => true,
        b' ' => false,
        _ => return None,
    };
    let hour = digits(b, 11, 2)?;
    if !byte_is(b, 13, b':') {
        return None;
    }
    let minute = digits(b, 14, 2)?;
    let mut i = 16;
    let mut second = 0;
    if byte_is(b, i, b':') && is_digit_at(b, i + 1) {
        second = digits(b, i + 1, 2)?;
        i += 3;
    }
    let mut micros = 0;
    if matches!(b.get(i), Some(b'.' | b',')) && is_digit_at(b, i + 1) {
        let (used, us) = fraction(b, i + 1);
        micros = us;
        i += 1 + used;
    }
    let mut offset = 0;
    if let Some((used, off)) = utc_offset(b, i) {
        offset = off;
        i += used;
    }
    let civil = Civil {
        year: i64::from(year),
        month,
        day,
        hour,
        minute,
        second,
        micros,
    };
    Some((i, civil.to_us()? - offset * US_PER_SEC, with_t))
}

/// Heritrix's `YYYYMMDDhhmmss` or `YYYYMMDDhhmmssSSS` at the start of `b`, ending at a
/// non-digit (or the end). Returns (bytes used, UTC microseconds).
pub(crate) fn heritrix_digits(b: &[u8]) -> Option<(usize, i64)> {
    let n = b.iter().take(18).take_while(|c| c.is_ascii_digit()).count();
    if n != 14 && n != 17 {
        return None;
    }
    let civil = Civil {
        year: i64::from(digits(b, 0, 4)?),
        month: digits(b, 4, 2)?,
        day: digits(b, 6, 2)?,
        hour: digits(b, 8, 2)?,
        minute: digits(b, 10, 2)?,
        second: digits(b, 12, 2)?,
        micros: if n == 17 { digits(b, 14, 3)? * 1000 } else { 0 },
    };
    Some((n, civil.to_us()?))
}

/// A three-letter English month name (`Nov`, any case) at `at`.
fn month_name(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 3)?;
    let lower = [
        s[0].to_ascii_lowercase(),
        s[1].to_ascii_lowercase(),
        s[2].to_ascii_lowercase(),
    ];
    let m = match &lower {
        b"jan" => 1,
        b"feb" => 2,
        b"mar" => 3,
        b"apr" => 4,
        b"may" => 5,
        b"jun" => 6,
        b"jul" => 7,
        b"aug" => 8,
        b"sep" => 9,
        b"oct" => 10,
        b"nov" => 11,
        b"dec" => 12,
        _ => return None,
    };
    Some(m)
}

/// Which shape a month-first timestamp had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MonthForm {
    /// `Nov 21 10:00:00`: syslog (RFC 3164), no year.
    Syslog,
    /// `Nov 21 2026 10:00:00`: syslog as some devices write it, with a year.
    SyslogWithYear,
    /// `Nov 21, 2026 10:00:00 AM`: Java's `SimpleFormatter` (Heritrix 1's heritrix_out.log).
    Java,
}

/// A month-first timestamp at the start of `b`. The year is `None` for the RFC 3164 form:
/// see [`resolve_year`]. Returns (bytes used, the civil time with year 0 if unknown, form).
pub(crate) fn month_first(b: &[u8]) -> Option<(usize, Civil, MonthForm)> {
    let month = month_name(b, 0)?;
    if !byte_is(b, 3, b' ') {
        return None;
    }
    // RFC 3164 pads a one-digit day with a space ("Nov  1"); some writers use "Nov 1".
    let mut i = 4;
    if byte_is(b, i, b' ') {
        i += 1;
    }
    let day_len = if is_digit_at(b, i + 1) { 2 } else { 1 };
    let day = digits(b, i, day_len)?;
    i += day_len;
    let mut civil = Civil {
        year: 0,
        month,
        day,
        hour: 0,
        minute: 0,
        second: 0,
        micros: 0,
    };
    let form;
    if byte_is(b, i, b',') && byte_is(b, i + 1, b' ') {
        civil.year = i64::from(digits(b, i + 2, 4)?);
        i += 6;
        form = MonthForm::Java;
    } else if byte_is(b, i, b' ') && byte_is(b, i + 5, b' ') && digits(b, i + 1, 4).is_some() {
        civil.year = i64::from(digits(b, i + 1, 4)?);
        i += 5;
        form = MonthForm::SyslogWithYear;
    } else {
        form = MonthForm::Syslog;
    }
    if !byte_is(b, i, b' ') {
        return None;
    }
    i += 1;
    let hour_len = if form == MonthForm::Java && byte_is(b, i + 1, b':') {
        1
    } else {
        2
    };
    civil.hour = digits(b, i, hour_len)?;
    i += hour_len;
    if !byte_is(b, i, b':') || !byte_is(b, i + 3, b':') {
        return None;
    }
    civil.minute = digits(b, i + 1, 2)?;
    civil.second = digits(b, i + 4, 2)?;
    i += 6;
    if form != MonthForm::Java && byte_is(b, i, b'.') && is_digit_at(b, i + 1) {
        let (used, us) = fraction(b, i + 1);
        civil.micros = us;
        i += 1 + used;
    }
    if form == MonthForm::Java {
        let pm = match b.get(i + 1..i + 3) {
            Some(s) if b[i] == b' ' && s.eq_ignore_ascii_case(b"AM") => false,
            Some(s) if b[i] == b' ' && s.eq_ignore_ascii_case(b"PM") => true,
            _ => return None,
        };
        if civil.hour == 0 || civil.hour > 12 {
            return None;
        }
        civil.hour = civil.hour % 12 + if pm { 12 } else { 0 };
        i += 3;
    }
    Some((i, civil, form))
}

/// The year of a microsecond time (1970 when it is beyond what a calendar can say).
pub(crate) fn year_of(time_us: i64) -> i64 {
    chrono::DateTime::from_timestamp_micros(time_us).map_or(1970, |t| i64::from(t.year()))
}

/// Gives a year-less time the year that puts it closest to `read_time_us`: a line from
/// Dec 31 read on Jan 1 belongs to last year, and a Jan 1 line read on Dec 31 (a clock a
/// little ahead) to next year. A 29 Feb only exists in leap years, which the candidates skip.
pub(crate) fn resolve_year(mut civil: Civil, read_time_us: i64) -> Option<i64> {
    let year = year_of(read_time_us);
    let mut best: Option<i64> = None;
    for y in [year - 1, year, year + 1] {
        civil.year = y;
        if let Some(t) = civil.to_us() {
            let closer = match best {
                Some(b) => t.abs_diff(read_time_us) < b.abs_diff(read_time_us),
                None => true,
            };
            if closer {
                best = Some(t);
            }
        }
    }
    best
}

/// Apache/nginx `dd/Mmm/yyyy:hh:mm:ss ±hhmm` at the start of `b` (inside its brackets).
/// Returns (bytes used, UTC microseconds).
pub(crate) fn apache(b: &[u8]) -> Option<(usize, i64)> {
    if !(byte_is(b, 2, b'/') && byte_is(b, 6, b'/') && byte_is(b, 11, b':')) {
        return None;
    }
    let civil = Civil {
        day: digits(b, 0, 2)?,
        month: month_name(b, 3)?,
        year: i64::from(digits(b, 7, 4)?),
        hour: digits(b, 12, 2)?,
        minute: byte_is(b, 14, b':').then(|| digits(b, 15, 2)).flatten()?,
        second: byte_is(b, 17, b':').then(|| digits(b, 18, 2)).flatten()?,
        micros: 0,
    };
    let mut i = 20;
    let mut offset = 0;
    if byte_is(b, i, b' ')
        && let Some((used, off)) = utc_offset(b, i + 1)
    {
        offset = off;
        i += 1 + used;
    }
    Some((i, civil.to_us()? - offset * US_PER_SEC))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, NaiveDate};

    fn us(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s)
            .expect("test times are valid rfc 3339")
            .timestamp_micros()
    }

    #[test]
    fn civil_days_agree_with_chrono_over_many_years() {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid");
        for year in [
            1, 1600, 1899, 1900, 1969, 1970, 2000, 2024, 2026, 2100, 9999,
        ] {
            for month in 1..=12 {
                for day in [1, 15, days_in_month(year, month)] {
                    let d = NaiveDate::from_ymd_opt(year as i32, month, day).expect("valid");
                    assert_eq!(
                        days_from_civil(year, month, day),
                        (d - epoch).num_days(),
                        "{d}"
                    );
                }
            }
        }
    }

    #[test]
    fn iso_forms() {
        let cases: &[(&str, usize, &str)] = &[
            ("2026-11-21T10:00:00Z", 20, "2026-11-21T10:00:00Z"),
            (
                "2006-08-15T09:53:58.470Z     1",
                24,
                "2006-08-15T09:53:58.470Z",
            ),
            (
                "2026-11-21T10:00:00.123456+01:00 host",
                32,
                "2026-11-21T09:00:00.123456Z",
            ),
            (
                "2026-11-21T10:00:00.123456789-0530",
                34,
                "2026-11-21T15:30:00.123456Z",
            ),
            (
                "2026-11-21 10:00:00,123 INFO",
                23,
                "2026-11-21T10:00:00.123Z",
            ),
            ("2026-11-21 10:00 x", 16, "2026-11-21T10:00:00Z"),
            ("2026-11-21T10:00:00+01", 22, "2026-11-21T09:00:00Z"),
        ];
        for &(text, len, want) in cases {
            let (used, t, _) =
                iso8601(text.as_bytes()).unwrap_or_else(|| panic!("{text} should parse"));
            assert_eq!((used, t), (len, us(want)), "{text}");
        }
        for bad in [
            "2026-13-21T10:00:00Z",
            "2026-02-30T10:00:00Z",
            "2026-11-21T24:00:00Z",
            "2026-11-21",
            "2026-11-21X10:00",
            "20261121T100000Z",
        ] {
            assert_eq!(iso8601(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn heritrix_stamps() {
        assert_eq!(
            heritrix_digits(b"20060815075357634 x"),
            Some((17, us("2006-08-15T07:53:57.634Z")))
        );
        assert_eq!(
            heritrix_digits(b"20050506114726 CRAWL"),
            Some((14, us("2005-05-06T11:47:26Z")))
        );
        assert_eq!(
            heritrix_digits(b"2006081507535763"),
            None,
            "16 digits is neither form"
        );
        assert_eq!(
            heritrix_digits(b"200608150753576345"),
            None,
            "18 digits is neither form"
        );
        assert_eq!(heritrix_digits(b"20061315075357634"), None, "month 13");
    }

    #[test]
    fn month_first_forms() {
        let (used, c, form) = month_first(b"Nov  1 10:00:00 host").expect("padded day");
        assert_eq!(
            (used, c.month, c.day, c.hour, form),
            (15, 11, 1, 10, MonthForm::Syslog)
        );
        let (used, c, form) = month_first(b"Nov 21 2026 10:00:00 host").expect("with year");
        assert_eq!((used, c.year, form), (20, 2026, MonthForm::SyslogWithYear));
        let (used, c, form) = month_first(b"Nov 21, 2026 3:04:05 PM org.archive").expect("java");
        assert_eq!(
            (used, c.hour, c.minute, c.second, form),
            (23, 15, 4, 5, MonthForm::Java)
        );
        let (_, c, _) = month_first(b"Nov 21, 2026 12:00:00 AM x").expect("midnight");
        assert_eq!(c.hour, 0);
        assert_eq!(month_first(b"Nov 21, 2026 13:00:00 PM"), None);
        assert_eq!(month_first(b"Now 21 10:00:00"), None);
    }

    #[test]
    fn year_resolution_handles_new_year() {
        let dec31 = Civil {
            year: 0,
            month: 12,
            day: 31,
            hour: 23,
            minute: 59,
            second: 59,
            micros: 0,
        };
        assert_eq!(
            resolve_year(dec31, us("2027-01-01T00:00:10Z")),
            Some(us("2026-12-31T23:59:59Z"))
        );
        let jan1 = Civil {
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
            second: 5,
            ..dec31
        };
        assert_eq!(
            resolve_year(jan1, us("2026-12-31T23:59:58Z")),
            Some(us("2027-01-01T00:00:05Z"))
        );
        assert_eq!(
            resolve_year(jan1, us("2026-06-01T00:00:00Z")),
            Some(us("2026-01-01T00:00:05Z"))
        );
        let feb29 = Civil {
            month: 2,
            day: 29,
            ..jan1
        };
        assert_eq!(
            resolve_year(feb29, us("2027-03-01T00:00:00Z")),
            Some(us("2028-02-29T00:00:05Z"))
        );
        assert_eq!(
            resolve_year(feb29, us("2024-03-01T00:00:00Z")),
            Some(us("2024-02-29T00:00:05Z"))
        );
    }

    #[test]
    fn apache_form() {
        assert_eq!(
            apache(b"21/Nov/2026:10:00:00 +0100]"),
            Some((26, us("2026-11-21T09:00:00Z")))
        );
        assert_eq!(
            apache(b"21/Nov/2026:10:00:00]"),
            Some((20, us("2026-11-21T10:00:00Z")))
        );
        assert_eq!(apache(b"21/Nox/2026:10:00:00 +0000]"), None);
    }
}
