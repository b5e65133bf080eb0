//! The parsers against real Heritrix logs (see `shared/data/real/heritrix/SOURCES.md`),
//! each checked against an independent reading of the same lines: whitespace tokens,
//! chrono's own timestamp parsing, serde_json.

// A test or bench crate: its helpers may unwrap (clippy.toml allows it only in #[test] fns).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime};
use contracts::crawled_url::CrawledUrl;
use contracts::{CrawlId, Event, EventFlags, Field, Format};
use parsers::{EventBuilder, MultilineJoiner, RawRecord, SourceFormat, parse_line};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/real/heritrix")
}

fn read(rel: &str) -> String {
    let path = data_dir().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every crawl log of the sample set: `*crawl.log` anywhere, and every ukwa-manage log.
fn crawl_logs() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, out);
                continue;
            }
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let in_ukwa = path
                .parent()
                .and_then(Path::file_name)
                .is_some_and(|p| p == "ukwa-manage");
            if name.ends_with("crawl.log") || (in_ukwa && name.ends_with(".log")) {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&data_dir(), &mut out);
    out.sort();
    out
}

/// Microseconds of an RFC 3339 time, by chrono.
fn rfc3339_us(s: &str) -> i64 {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .timestamp_micros()
}

/// A read time a minute after `time_us`, so that the lines' own times are plausible.
fn soon_after(time_us: i64) -> i64 {
    time_us + 60_000_000
}

fn builder(format: SourceFormat) -> EventBuilder {
    let crawl = CrawlId::parse("crawl-1").expect("valid crawl id");
    EventBuilder::new(
        format,
        1,
        0,
        crawl,
        "crawler-07".into(),
        "heritrix".into(),
        65_000,
    )
}

fn field<'a>(line: &'a str, p: &parsers::Parsed, f: Field) -> Option<&'a str> {
    p.field(line.as_bytes(), f)
        .map(|b| std::str::from_utf8(b).expect("a span of ascii text"))
}

#[test]
fn every_real_crawl_log_line_parses_and_matches_an_independent_split() {
    let files = crawl_logs();
    assert_eq!(
        files.len(),
        6,
        "expected the six crawl logs of SOURCES.md, found {files:?}"
    );
    let leading = [
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
    let (mut lines, mut with_json, mut with_spaced_annotations) = (0, 0, 0);
    for path in &files {
        let text = std::fs::read_to_string(path).expect("readable");
        for (n, line) in text.lines().enumerate() {
            let at = format!("{}:{}", path.display(), n + 1);
            let read_time = soon_after(rfc3339_us(
                line.split_whitespace().next().expect("a first token"),
            ));
            for format in [SourceFormat::CrawlLog, SourceFormat::Auto] {
                let p = parse_line(format, line.as_bytes(), read_time);
                assert!(!p.failed, "{at}");
                assert_eq!(p.format, Format::CrawlLog, "{at}");
            }
            let p = parse_line(SourceFormat::CrawlLog, line.as_bytes(), read_time);

            // The JSON extra, found independently: these files have no brace in their
            // annotations, so it is whatever starts at the first " {".
            let json_at = line.find(" {").map(|i| i + 1);
            let head = &line[..json_at.unwrap_or(line.len())];
            let tokens: Vec<&str> = head.split_whitespace().collect();
            assert!(tokens.len() >= 11, "{at}");
            for (i, f) in leading.iter().enumerate() {
                assert_eq!(field(line, &p, *f), Some(tokens[i]), "{at}: {}", f.name());
            }
            assert_eq!(p.time_us, Some(rfc3339_us(tokens[0])), "{at}");
            let annotations = tokens[11..].join(" ");
            let want = (!annotations.is_empty()).then_some(annotations.as_str());
            assert_eq!(field(line, &p, Field::Annotations), want, "{at}");
            if tokens.len() > 12 {
                with_spaced_annotations += 1;
            }
            match json_at {
                Some(i) => {
                    with_json += 1;
                    let extra =
                        field(line, &p, Field::Extra).unwrap_or_else(|| panic!("{at}: no extra"));
                    assert_eq!(extra, &line[i..], "{at}");
                    let v: serde_json::Value =
                        serde_json::from_str(extra).unwrap_or_else(|e| panic!("{at}: {e}"));
                    assert!(v.is_object(), "{at}");
                }
                None => assert_eq!(field(line, &p, Field::Extra), None, "{at}"),
            }

            // The trough row downstream reads these fields back.
            let event = builder(SourceFormat::CrawlLog)
                .build(RawRecord::line(0, line.as_bytes().to_vec()), read_time);
            assert_eq!(event.flags, EventFlags::default(), "{at}");
            let row = CrawledUrl::from_event(&event)
                .unwrap_or_else(|| panic!("{at}: no crawled_url row"));
            assert_eq!(row.status_code.to_string(), tokens[1], "{at}");
            assert_eq!(row.url, tokens[3], "{at}");
            lines += 1;
        }
    }
    assert_eq!(lines, 71 + 107 + 5 + 22 + 22 + 76);
    assert_eq!(with_json, 76, "every h3-2018 line has its JSON");
    assert_eq!(with_spaced_annotations, 1, "the ClamAV line");
}

#[test]
fn clamav_annotation_is_kept_whole() {
    let text = read("ukwa-manage/h3-2018-crawl.log");
    let line = text
        .lines()
        .find(|l| l.contains("Eicar-Test-Signature"))
        .expect("the ClamAV line");
    let p = parse_line(SourceFormat::CrawlLog, line.as_bytes(), 0);
    assert_eq!(
        field(line, &p, Field::Annotations),
        Some("ip:172.19.0.3,1: stream: Eicar-Test-Signature FOUND")
    );
    assert!(field(line, &p, Field::Extra).is_some_and(|e| e.starts_with("{\"contentSize\":300,")));
}

/// Lines of `text` as the tailer reads them: without terminators, with their offsets.
fn records(text: &str) -> Vec<RawRecord> {
    let mut offset = 0;
    let mut out = Vec::new();
    for line in text.split_inclusive('\n') {
        let bare = line.strip_suffix('\n').unwrap_or(line);
        out.push(RawRecord::line(offset, bare.as_bytes().to_vec()));
        offset += line.len() as u64;
    }
    out
}

#[test]
fn local_errors_join_into_one_record_per_crawl_line() {
    let text = read("netarchivesuite/h1-2005-2006-crawldir/local-errors.log");
    // Independently: a crawl line starts with its year; the trace lines after it, up to
    // the next crawl line, belong to it.
    let mut want: Vec<(u64, u32, String)> = Vec::new();
    let mut offset = 0u64;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches('\n');
        if bare.starts_with(|c: char| c.is_ascii_digit()) {
            want.push((offset, 1, bare.to_owned()));
        } else {
            let last = want.last_mut().expect("the file starts with a crawl line");
            last.1 += 1;
            last.2.push('\n');
            last.2.push_str(bare);
        }
        offset += line.len() as u64;
    }
    assert_eq!(want.len(), 2);

    let mut joiner = MultilineJoiner::new(65_000);
    let mut got: Vec<RawRecord> = records(&text)
        .into_iter()
        .filter_map(|r| joiner.push(r))
        .collect();
    assert_eq!(
        joiner.pending_offset(),
        Some(want[1].0),
        "the last record waits for more"
    );
    got.extend(joiner.flush());
    let got_summary: Vec<(u64, u32, String)> = got
        .iter()
        .map(|r| {
            (
                r.offset,
                r.lines,
                String::from_utf8(r.bytes.clone()).expect("ascii"),
            )
        })
        .collect();
    assert_eq!(got_summary, want);

    let mut b = builder(SourceFormat::CrawlLog);
    for r in got {
        let read_time = soon_after(rfc3339_us("2005-05-06T11:48:40.869Z"));
        let e = b.build(r, read_time);
        assert_eq!(e.format, Format::CrawlLog);
        assert_eq!(e.flags, EventFlags(EventFlags::MULTILINE));
        assert_eq!(e.field_str(Field::Status).as_deref(), Some("-2"));
        assert_eq!(
            e.field_str(Field::Annotations),
            None,
            "the trace is no annotation"
        );
        assert!(
            e.line()
                .contains("\tat org.archive.crawler.framework.ToeThread.run(ToeThread.java:142)")
        );
    }
}

/// Every line's own time, by chrono: an RFC 3339 or 14/17-digit first token; `None` when
/// the first token is not a time.
fn first_token_time(line: &str) -> Option<i64> {
    let tok = line.split_whitespace().next()?;
    if let Ok(t) = DateTime::parse_from_rfc3339(tok) {
        return Some(t.timestamp_micros());
    }
    let fmt = match tok.len() {
        14 => "%Y%m%d%H%M%S",
        17 => "%Y%m%d%H%M%S%3f",
        _ => return None,
    };
    NaiveDateTime::parse_from_str(tok, fmt)
        .ok()
        .map(|t| t.and_utc().timestamp_micros())
}

/// Builds every line of `text` as `format`, reading each a minute after the file's last
/// time, and checks each event's time against [`first_token_time`].
fn check_times(name: &str, text: &str, format: SourceFormat) -> Vec<Event> {
    let last = text
        .lines()
        .filter_map(first_token_time)
        .max()
        .expect("the file has times");
    let mut b = builder(format);
    let mut previous = None;
    let mut events = Vec::new();
    for r in records(text) {
        let line = String::from_utf8(r.bytes.clone()).expect("ascii");
        let e = b.build(r, soon_after(last));
        match first_token_time(&line) {
            Some(t) => {
                assert_eq!(e.time_us, t, "{name}: {line}");
                assert!(!e.flags.has(EventFlags::TIME_INHERITED), "{name}: {line}");
                assert!(
                    e.field(Field::Timestamp).is_some() || e.format != Format::Plain,
                    "{name}: {line}"
                );
            }
            None => {
                assert!(e.flags.has(EventFlags::TIME_INHERITED), "{name}: {line}");
                assert_eq!(
                    e.time_us,
                    previous.unwrap_or(soon_after(last)),
                    "{name}: {line}"
                );
            }
        }
        previous = Some(e.time_us);
        events.push(e);
    }
    events
}

#[test]
fn heritrix_companion_logs_get_their_times_as_plain() {
    for name in [
        "netarchivesuite/h1-2005-2006-crawldir/progress-statistics.log",
        "netarchivesuite/h1-2005-2006-crawldir/uri-errors.log",
        "netarchivesuite/h1-2005-2006-crawldir/local-errors.log",
    ] {
        let text = read(name);
        for format in [SourceFormat::Plain, SourceFormat::Auto] {
            let events = check_times(name, &text, format);
            assert!(
                events
                    .iter()
                    .all(|e| !e.flags.has(EventFlags::PARSE_FAILED))
            );
        }
    }
}

#[test]
fn h3_progress_statistics_without_its_warc_header() {
    let record = read("netarchivesuite/h3-3.3.0-2015/progress-statistics.log.warc-record");
    let (_, log) = record
        .split_once("\r\n\r\n")
        .expect("a WARC header ends with an empty line");
    let events = check_times("h3 progress-statistics", log, SourceFormat::Auto);
    assert!(
        events.iter().all(|e| e.format == Format::Plain),
        "progress lines are not syslog"
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e.flags.has(EventFlags::TIME_INHERITED))
            .count(),
        1,
        "only the header line"
    );
}
