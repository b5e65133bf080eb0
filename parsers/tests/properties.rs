//! Properties that hold for any input: no panic, spans inside the line, events that fit
//! one frame and decode back equal, and flags that tell the truth.

// A test or bench crate: its helpers may unwrap (clippy.toml allows it only in #[test] fns).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::OnceLock;

use contracts::frame::{self, MAX_FRAME_PAYLOAD};
use contracts::{CrawlId, Event, EventFlags, Field, FieldSpan, Format};
use parsers::{
    EventBuilder, MultilineJoiner, RawRecord, RecordRef, SourceFormat, parse_line, parse_line_into,
    time_is_plausible,
};
use proptest::prelude::*;

/// Real lines from the sample logs, as seeds for mutation.
fn real_lines() -> &'static Vec<Vec<u8>> {
    static LINES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    LINES.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/real/heritrix");
        let mut lines = Vec::new();
        for rel in [
            "ukwa-manage/h3-2018-crawl.log",
            "netarchivesuite/h1-2005-2006-crawldir/crawl.log",
            "netarchivesuite/h1-2005-2006-crawldir/progress-statistics.log",
            "netarchivesuite/h1-2005-2006-crawldir/uri-errors.log",
        ] {
            let text =
                std::fs::read(dir.join(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"));
            lines.extend(
                text.split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(<[u8]>::to_vec),
            );
        }
        lines.extend(
            [
                "<165>1 2026-11-21T10:00:00.123456+01:00 h app 42 ID [a b=\"c\\]\"] msg",
                "<13>Nov 21 10:00:00 crawler-07 sshd[812]: Accepted",
                "2026-11-21T10:00:00.1+01:00 crawler-07 systemd[1]: Started",
                "192.0.2.1 - - [21/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 200",
            ]
            .map(|s| s.as_bytes().to_vec()),
        );
        lines
    })
}

/// A real line with a few bytes replaced, inserted or cut: close enough to each format to
/// drive the parsers deep into their branches.
fn mutated_line() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<prop::sample::Index>(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 0..6),
        any::<Option<prop::sample::Index>>(),
    )
        .prop_map(|(pick, edits, cut)| {
            let lines = real_lines();
            let mut line = lines[pick.index(lines.len())].clone();
            for (at, byte, kind) in edits {
                let i = at.index(line.len() + 1);
                match kind {
                    0 if i < line.len() => line[i] = byte,
                    1 => line.insert(i, byte),
                    _ if i < line.len() => {
                        line.remove(i);
                    }
                    _ => {}
                }
            }
            if let Some(cut) = cut {
                line.truncate(cut.index(line.len() + 1));
            }
            line
        })
}

/// Arbitrary bytes, with NULs, newlines and invalid UTF-8 as likely as anything else.
fn any_line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..600),
        prop::collection::vec(
            prop::sample::select(b" \t\n\r\0<>[]{}\":-+.,0123456789TZNovDec#\xFF\xC3".to_vec()),
            0..200
        ),
        mutated_line(),
    ]
}

/// A huge line: a seed repeated up to about 200 KB.
fn huge_line() -> impl Strategy<Value = Vec<u8>> {
    (mutated_line(), 100_000usize..200_000).prop_map(|(seed, len)| {
        let seed = if seed.is_empty() {
            b"x\xC3\xA9\0".to_vec()
        } else {
            seed
        };
        seed.iter().copied().cycle().take(len).collect()
    })
}

fn any_format() -> impl Strategy<Value = SourceFormat> {
    prop::sample::select(SourceFormat::ALL.to_vec())
}

/// Read times from the epoch to the year 2200, and now and then an extreme one.
fn read_time() -> impl Strategy<Value = i64> {
    prop_oneof![9 => 0i64..7_258_118_400_000_000, 1 => any::<i64>()]
}

fn check_event(e: &Event, read: i64) -> Result<(), TestCaseError> {
    prop_assert!(e.encoded_len() <= MAX_FRAME_PAYLOAD);
    let mut buf = Vec::new();
    prop_assert!(frame::put_event_frame(&mut buf, e));
    let (events, torn) = frame::decode_frames(&buf);
    prop_assert!(torn.is_none());
    prop_assert_eq!(events.len(), 1);
    prop_assert_eq!(
        events[0]
            .as_ref()
            .map_err(|err| TestCaseError::fail(err.to_string()))?,
        e
    );
    for s in &e.fields {
        prop_assert!(
            s.start as usize + s.len as usize <= e.raw.len(),
            "{:?} outside {} bytes",
            s,
            e.raw.len()
        );
    }
    prop_assert_eq!(
        e.flags.has(EventFlags::TRUNCATED),
        e.original_len > e.raw.len() as u64
    );
    if !e.flags.has(EventFlags::INVALID_UTF8) {
        prop_assert!(std::str::from_utf8(&e.raw).is_ok());
    }
    if e.flags.has(EventFlags::TIME_SUSPECT) {
        prop_assert_eq!(e.time_us, read);
    }
    prop_assert!(time_is_plausible(e.time_us, read) || e.time_us == read);
    Ok(())
}

fn builder(format: SourceFormat, max_line_bytes: usize) -> EventBuilder {
    let crawl = CrawlId::parse("crawl-1").expect("valid crawl id");
    EventBuilder::new(
        format,
        u64::MAX,
        9,
        crawl,
        "crawler-07".into(),
        "heritrix".into(),
        max_line_bytes,
    )
}

proptest! {
    #[test]
    fn parse_line_never_panics_and_spans_lie_in_the_line(format in any_format(), line in any_line(), read in read_time()) {
        let p = parse_line(format, &line, read);
        for s in &p.fields {
            prop_assert!(s.start as usize + s.len as usize <= line.len(), "{:?} outside {} bytes", s, line.len());
        }
        if format == SourceFormat::Auto || format == SourceFormat::Plain {
            prop_assert!(!p.failed);
        }
        if p.failed {
            prop_assert_eq!(p.format, contracts::Format::Plain);
        }
    }

    #[test]
    fn built_events_fit_a_frame_and_decode_back_equal(
        format in any_format(),
        lines in prop::collection::vec((any_line(), 0u64..100, 1u32..4), 1..6),
        max_line_bytes in prop_oneof![1usize..100, 100usize..70_000, Just(usize::MAX)],
        read in read_time(),
    ) {
        let mut b = builder(format, max_line_bytes);
        let mut offset = 0;
        for (bytes, extra, n) in lines {
            let len = bytes.len() as u64;
            let e = b.build(RawRecord { offset, bytes, original_len: len + extra, lines: n }, read);
            prop_assert_eq!(e.id.offset, offset);
            prop_assert_eq!(e.original_len, len + extra);
            prop_assert_eq!(e.flags.has(EventFlags::MULTILINE), n > 1);
            check_event(&e, read)?;
            offset += len + extra + 1;
        }
    }

    #[test]
    fn scratch_reused_from_line_to_line_changes_nothing(
        format in any_format(),
        lines in prop::collection::vec(any_line(), 1..8),
        read in read_time(),
    ) {
        // One builder (its span vector reused) against a fresh one per line, handed the
        // time the reused one would inherit.
        let mut reused = builder(format, 65_000);
        let mut spans = vec![FieldSpan { field: Field::Url, start: 7, len: 9 }; 20];
        for (offset, line) in lines.iter().enumerate() {
            let mut fresh = builder(format, 65_000);
            fresh.set_last_time_us(reused.last_time_us());
            let want = fresh.build(RawRecord::line(offset as u64, line.clone()), read);
            let got = reused.build_ref(RecordRef::line(offset as u64, line), read);
            prop_assert_eq!(got.to_event(), want);
            let summary = parse_line_into(format, line, read, &mut spans);
            let p = parse_line(format, line, read);
            prop_assert_eq!((summary.format, summary.time_us, summary.failed), (p.format, p.time_us, p.failed));
            prop_assert_eq!(&spans, &p.fields);
        }
    }

    #[test]
    fn joined_records_of_any_lines_build_valid_events(
        lines in prop::collection::vec(any_line(), 1..12),
        max_bytes in 1usize..2_000,
        read in read_time(),
    ) {
        let mut j = MultilineJoiner::new(max_bytes);
        let mut b = builder(SourceFormat::Auto, 65_000);
        let mut offset = 0u64;
        let mut total_lines = 0;
        let mut records = Vec::new();
        for line in lines {
            let len = line.len() as u64;
            records.extend(j.push(RawRecord::line(offset, line)));
            prop_assert!(j.pending_offset().is_some_and(|p| p <= offset));
            offset += len + 1;
            total_lines += 1;
        }
        records.extend(j.flush());
        prop_assert_eq!(records.iter().map(|r| r.lines).sum::<u32>(), total_lines);
        let file_len: u64 = records.iter().map(|r| r.original_len).sum::<u64>() + records.len() as u64;
        prop_assert_eq!(file_len, offset, "every byte of the file is in some record");
        for r in records {
            prop_assert!(r.bytes.len() <= max_bytes);
            check_event(&b.build(r, read), read)?;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn huge_lines_are_cut_to_one_frame(format in any_format(), line in huge_line(), read in read_time()) {
        let len = line.len() as u64;
        let p = parse_line(format, &line, read);
        for s in &p.fields {
            prop_assert!(s.start as usize + s.len as usize <= line.len());
        }
        let e = builder(format, usize::MAX).build(RawRecord::line(0, line), read);
        prop_assert!(e.flags.has(EventFlags::TRUNCATED));
        prop_assert_eq!(e.original_len, len);
        check_event(&e, read)?;
    }
}

/// A crawl.log line built from known field values, with the values it was built from.
fn generated_crawl_line() -> impl Strategy<Value = (String, Vec<(Field, String)>, i64)> {
    let time = 946_684_800_000i64..4_102_444_800_000; // 2000 to 2100, in ms
    let url =
        "(https?://[a-z]{1,10}\\.[a-z]{2,3}/[a-zA-Z0-9/._?=&%-]{0,30}|dns:[a-z]{1,10}\\.[a-z]{2})";
    let leading = (
        time,
        -9999i32..1000,
        prop::option::of(0u32..10_000_000),
        url,
        "(-|[LEXRPI]{1,6})",
        prop_oneof!["-".prop_map(String::from), url.prop_map(String::from)],
        "(no-type|[a-z]{1,8}/[a-z-]{1,8})",
        "#[0-9]{3}",
        "(-|[0-9]{17}\\+[0-9]{1,4})",
        "(-|sha1:[A-Z2-7]{32}|[A-Z2-7]{32})",
        "(-|[a-z]{1,8})",
    );
    // Annotations may hold spaces but no braces (a brace-balanced tail would be read as the
    // JSON extra: that ambiguity is the format's own).
    let annotations = prop::option::of("[!-z|~]([ !-z|~]{0,38}[!-z|~])?");
    let extra = prop::option::of(prop::collection::btree_map(
        "[a-zA-Z]{1,12}",
        "[ -~]{0,20}",
        0..4,
    ));
    (leading, annotations, extra, 1usize..4).prop_map(|(l, annotations, extra, gap)| {
        let (ms, status, size, url, hop, via, mime, thread, fetch, digest, source) = l;
        let time = chrono::DateTime::from_timestamp_millis(ms).expect("in range");
        let mut want = vec![
            (
                Field::LogTime,
                time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            ),
            (Field::Status, status.to_string()),
            (Field::Size, size.map_or("-".to_owned(), |s| s.to_string())),
            (Field::Url, url),
            (Field::HopPath, hop),
            (Field::Via, via),
            (Field::MimeType, mime),
            (Field::Thread, thread),
            (Field::FetchTime, fetch),
            (Field::Digest, digest),
            (Field::SourceTag, source),
        ];
        want.extend(annotations.map(|a| (Field::Annotations, a)));
        want.extend(extra.map(|m| {
            (
                Field::Extra,
                serde_json::to_string(&m).expect("a map of strings serializes"),
            )
        }));
        let sep = " ".repeat(gap);
        let line = format!(
            "{} {:>5} {:>10} {}",
            want[0].1,
            want[1].1,
            want[2].1,
            want[3..]
                .iter()
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
                .join(&sep)
        );
        (line, want, ms * 1000)
    })
}

proptest! {
    #[test]
    fn generated_crawl_lines_give_back_their_fields((line, want, time_us) in generated_crawl_line()) {
        let p = parse_line(SourceFormat::CrawlLog, line.as_bytes(), time_us);
        prop_assert!(!p.failed, "{}", line);
        prop_assert_eq!(p.format, Format::CrawlLog);
        prop_assert_eq!(p.time_us, Some(time_us));
        let got: Vec<(Field, String)> = p
            .fields
            .iter()
            .map(|s| (s.field, line[s.start as usize..(s.start + s.len) as usize].to_owned()))
            .collect();
        prop_assert_eq!(got, want, "{}", line);
    }
}

/// `token` or the NILVALUE (`None`).
fn nil_or(token: &'static str) -> impl Strategy<Value = Option<String>> {
    prop::option::of(token)
}

/// An RFC 5424 line built from known values, with the spans it should give and its time.
fn generated_5424_line() -> impl Strategy<Value = (String, Vec<(Field, String)>, Option<i64>)> {
    (
        0u32..=191,
        prop::option::of((
            946_684_800_000_000i64..4_102_444_800_000_000,
            -14i32 * 60..=14 * 60,
        )),
        (
            nil_or("[!-~]{1,20}"),
            nil_or("[!-~]{1,12}"),
            nil_or("[0-9]{1,6}"),
            nil_or("[A-Za-z0-9]{1,8}"),
        ),
        prop::collection::vec(("[a-z]{1,6}@[0-9]{1,5}", "[ -~]{0,12}"), 0..3),
        prop::option::of("[ -~]{1,40}"),
    )
        .prop_map(|(pri, time, (host, app, proc_id, msg_id), sd, msg)| {
            let mut want = vec![(Field::Priority, pri.to_string())];
            let (time_text, time_us) = match time {
                Some((us, offset_min)) => {
                    let zone =
                        chrono::FixedOffset::east_opt(offset_min * 60).expect("within a day");
                    let t = chrono::DateTime::from_timestamp_micros(us)
                        .expect("in range")
                        .with_timezone(&zone);
                    let text = t.format("%Y-%m-%dT%H:%M:%S%.6f%:z").to_string();
                    want.push((Field::SyslogTime, text.clone()));
                    (text, Some(us))
                }
                None => ("-".to_owned(), None),
            };
            let mut header = Vec::new();
            for (field, value) in [
                (Field::Hostname, host),
                (Field::AppName, app),
                (Field::ProcId, proc_id),
                (Field::MsgId, msg_id),
            ] {
                // A lone "-" is the NILVALUE whichever way it was generated.
                match value.filter(|v| v != "-") {
                    Some(v) => {
                        want.push((field, v.clone()));
                        header.push(v);
                    }
                    None => header.push("-".to_owned()),
                }
            }
            let sd_text: String = sd
                .iter()
                .map(|(id, v)| {
                    let escaped = v
                        .replace('\\', "\\\\")
                        .replace('"', "\\\"")
                        .replace(']', "\\]");
                    format!("[{id} k=\"{escaped}\"]")
                })
                .collect();
            if sd_text.is_empty() {
                header.push("-".to_owned());
            } else {
                want.push((Field::StructuredData, sd_text.clone()));
                header.push(sd_text);
            }
            let mut line = format!("<{pri}>1 {time_text} {}", header.join(" "));
            if let Some(m) = msg.filter(|m| !m.ends_with(' ')) {
                line.push(' ');
                line.push_str(&m);
                want.push((Field::Message, m));
            }
            (line, want, time_us)
        })
}

/// An RFC 3164 line (no `<PRI>`, as rsyslog writes files) for a time near the read time.
fn generated_3164_line() -> impl Strategy<Value = (String, Vec<(Field, String)>, i64, i64)> {
    (
        946_684_800i64..4_102_444_800,
        -3_600i64..3_600,
        "[a-z][a-z0-9-]{0,15}",
        "[a-z][a-z0-9_./-]{0,15}",
        prop::option::of(1u32..99_999),
        "[!-~][ -~]{0,40}",
    )
        .prop_map(|(secs, skew, host, app, pid, msg)| {
            let t = chrono::DateTime::from_timestamp(secs, 0).expect("in range");
            let stamp = t.format("%b %e %H:%M:%S").to_string();
            let tag = match pid {
                Some(p) => format!("{app}[{p}]:"),
                None => format!("{app}:"),
            };
            let line = format!("{stamp} {host} {tag} {msg}");
            let mut want = vec![
                (Field::SyslogTime, stamp),
                (Field::Hostname, host),
                (Field::AppName, app),
            ];
            want.extend(pid.map(|p| (Field::ProcId, p.to_string())));
            want.push((
                Field::Message,
                msg.trim_end_matches(['\r', '\n']).to_owned(),
            ));
            (line, want, secs * 1_000_000, (secs + skew) * 1_000_000)
        })
}

fn spans_text(line: &str, p: &parsers::Parsed) -> Vec<(Field, String)> {
    p.fields
        .iter()
        .map(|s| {
            (
                s.field,
                line[s.start as usize..(s.start + s.len) as usize].to_owned(),
            )
        })
        .collect()
}

proptest! {
    #[test]
    fn generated_rfc5424_lines_give_back_their_fields((line, want, time_us) in generated_5424_line()) {
        let p = parse_line(SourceFormat::Syslog, line.as_bytes(), 0);
        prop_assert!(!p.failed, "{}", line);
        prop_assert_eq!(p.format, Format::Syslog);
        prop_assert_eq!(p.time_us, time_us);
        prop_assert_eq!(spans_text(&line, &p), want, "{}", line);
    }

    #[test]
    fn generated_rfc3164_lines_give_back_their_fields_and_year((line, want, time_us, read) in generated_3164_line()) {
        for format in [SourceFormat::Syslog, SourceFormat::Auto] {
            let p = parse_line(format, line.as_bytes(), read);
            prop_assert!(!p.failed, "{}", line);
            prop_assert_eq!(p.format, Format::Syslog);
            prop_assert_eq!(p.time_us, Some(time_us), "{}", line);
            prop_assert_eq!(spans_text(&line, &p), want.clone(), "{}", line);
        }
    }
}
