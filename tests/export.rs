//! `sluice export` against `sluice up`: what comes out equals the files that went in, byte
//! for byte (real crawl logs, syslog, plain text with bytes that are not UTF-8, a
//! multi-line record); `--host` and `--status` equal a scan of the file; days archived and
//! pruned from the buck come back from the archive the same.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::util::{ARCHIVE_AT_ONCE, Dir, FreshS3, PATIENCE, Up, appender, real_logs, wait_for};

fn export(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("export")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("running sluice export")
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339()
}

/// Polls `sluice export` of `crawl` until it equals `want`; panics with where they differ.
fn wait_export_equals(api: &str, crawl: &str, range: (&str, &str), extra: &[&str], want: &[u8]) {
    let mut last = Vec::new();
    let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for(
            &format!("export of {crawl} to equal its input"),
            PATIENCE,
            || {
                let mut args = vec!["--api", api, "--from", range.0, "--to", range.1];
                args.extend_from_slice(extra);
                args.push(crawl);
                let out = export(&args);
                last = out.stdout.clone();
                (out.status.success() && out.stdout == want).then_some(())
            },
        )
    }));
    if got.is_err() {
        let at = last
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(last.len().min(want.len()));
        panic!(
            "export of {crawl} ({} bytes) differs from its input ({} bytes) at byte {at}: got {:?}, want {:?}",
            last.len(),
            want.len(),
            String::from_utf8_lossy(&last[at.saturating_sub(40)..(at + 80).min(last.len())]),
            String::from_utf8_lossy(&want[at.saturating_sub(40)..(at + 80).min(want.len())]),
        );
    }
}

/// The trough feed's host of a URL: lowercase name after `://` (or `dns:`).
fn url_host(url: &str) -> String {
    if let Some(n) = url.strip_prefix("dns:") {
        return n.to_ascii_lowercase();
    }
    let Some((_, rest)) = url.split_once("://") else {
        return String::new();
    };
    let auth = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hp = auth.rsplit('@').next().unwrap_or("");
    hp.split(':').next().unwrap_or("").to_ascii_lowercase()
}

/// The lines of a crawl.log (with their newline) that pass `keep(status, host)`.
fn grep_crawl_log(text: &[u8], keep: &dyn Fn(i64, &str) -> bool) -> Vec<u8> {
    let mut out = Vec::new();
    for line in text.split_inclusive(|&b| b == b'\n') {
        let s = String::from_utf8_lossy(line);
        let f: Vec<&str> = s.split_whitespace().collect();
        if f.len() > 3
            && let Ok(status) = f[1].parse::<i64>()
            && keep(status, &url_host(f[3]))
        {
            out.extend_from_slice(line);
        }
    }
    out
}

/// Plain text lines dated `t` (one second apart): bytes that are not UTF-8, a trailing
/// carriage return, and a Java stack trace that the tailer joins into one record.
fn plain_text(t: DateTime<Utc>) -> Vec<u8> {
    let ts = |i: i64| (t + Duration::seconds(i)).format("%Y-%m-%dT%H:%M:%S%.3fZ");
    let mut v = Vec::new();
    v.extend_from_slice(format!("{} INFO starting the crawl\n", ts(0)).as_bytes());
    v.extend_from_slice(format!("{} WARN caf", ts(1)).as_bytes());
    v.extend_from_slice(b"\xe9 au lait \xff\xfe not UTF-8\n");
    v.extend_from_slice(format!("{} ERROR fetch failed\n", ts(2)).as_bytes());
    v.extend_from_slice(
        b"java.net.SocketTimeoutException: connect timed out\n\tat org.archive.Fetcher.fetch(Fetcher.java:175)\n\tat org.archive.ToeThread.run(ToeThread.java:142)\nCaused by: java.io.IOException: reset\n\t... 2 more\n",
    );
    v.extend_from_slice(format!("{} INFO a line ending in CR\r\n", ts(3)).as_bytes());
    v.extend_from_slice(format!("{} INFO done \u{2713}\n", ts(4)).as_bytes());
    v
}

fn write(path: &Path, bytes: &[u8]) {
    let mut f = appender(path);
    f.write_all(bytes).unwrap();
}

#[test]
fn export_of_a_held_crawl_equals_its_input_files_byte_for_byte() {
    let dir = Dir::new("export");
    let logs = dir.join("logs");
    let now = Utc::now();
    let mut inputs: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, p) in real_logs().iter().enumerate() {
        inputs.push((format!("real{i}"), std::fs::read(p).unwrap()));
    }
    assert!(!inputs.is_empty(), "the real crawl logs are missing");
    let t = now - Duration::minutes(10);
    let mut syslog = Vec::new();
    for i in 0..40i64 {
        let ts = (t + Duration::seconds(i)).format("%b %e %H:%M:%S");
        syslog.extend_from_slice(
            format!("{ts} crawler-7 heritrix[812]: checkpoint {i} written to /data/ckpt-{i}\n")
                .as_bytes(),
        );
    }
    inputs.push(("sys".into(), syslog));
    inputs.push(("plain".into(), plain_text(t)));
    for (crawl, bytes) in &inputs {
        write(&logs.join(crawl).join("input.log"), bytes);
    }
    let pattern = logs.join("{crawl}/input.log").display().to_string();
    let up = Up::start(&dir, &[&pattern]);
    let (from, to) = (rfc(now - Duration::hours(1)), rfc(now + Duration::hours(1)));
    for (crawl, bytes) in &inputs {
        wait_export_equals(&up.url, crawl, (&from, &to), &[], bytes);
    }

    // Filters equal a scan of the file: a URL host (any case) and a status class.
    let (_, real) = &inputs[0];
    let text = String::from_utf8_lossy(real).into_owned();
    let host = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .map(url_host)
        .find(|h| !h.is_empty())
        .unwrap();
    let want = grep_crawl_log(real, &|_, h| h == host);
    assert!(!want.is_empty() && want.len() < real.len());
    let upper = host.to_ascii_uppercase();
    wait_export_equals(&up.url, "real0", (&from, &to), &["--host", &upper], &want);
    let want = grep_crawl_log(real, &|s, _| (200..300).contains(&s) || s < 0);
    assert!(!want.is_empty() && want.len() < real.len());
    wait_export_equals(
        &up.url,
        "real0",
        (&from, &to),
        &["--status", "2xx,-9999--1"],
        &want,
    );
    let want = grep_crawl_log(real, &|s, h| h == host && s == 200);
    wait_export_equals(
        &up.url,
        "real0",
        (&from, &to),
        &["--status", "200", "--host", &host],
        &want,
    );

    // Clear errors: an unknown crawl, a bad time, a buck that is down, a bad filter.
    let out = export(&["--api", &up.url, "--from", &from, "--to", &to, "nosuch"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("crawl nosuch") && err.contains("check the crawl id"),
        "{err}"
    );
    let out = export(&[
        "--api",
        &up.url,
        "--from",
        "yesterday",
        "--to",
        &to,
        "real0",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("RFC 3339"), "{err}");
    let out = export(&[
        "--api",
        "http://127.0.0.1:9",
        "--from",
        &from,
        "--to",
        &to,
        "real0",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("cannot reach the buck"),
        "{err}"
    );
    let out = export(&[
        "--api", &up.url, "--from", &from, "--to", &to, "--status", "4yy", "real0",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--status"), "{err}");
}

/// A past-dated crawl.log of `n` lines on `day`, hosts and statuses mixed.
fn crawl_log(day: NaiveDate, n: i64) -> Vec<u8> {
    let hosts = ["www.example.com", "acid.matkelly.com", "old.example.org"];
    let mut v = Vec::new();
    for i in 0..n {
        let t = day.and_hms_opt(9, 0, 0).unwrap().and_utc() + Duration::seconds(i * 3);
        let status = [200, 404, 301, -5003][i as usize % 4];
        let host = hosts[i as usize % 3];
        v.extend_from_slice(
            format!(
                "{} {status:>5} {:>10} http://{host}/p/{i} L http://{host}/ text/html #0{:02} 20200101000000000+1 sha1:ABC{i} - -\n",
                t.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                1000 + i,
                i % 50
            )
            .as_bytes(),
        );
    }
    v
}

/// `sluice up` holding two crawls whose day (three days ago) was archived to its local
/// directory and pruned from the buck: a crawl.log and plain text.
struct ArchivedDay {
    dir: Dir,
    up: Up,
    day: NaiveDate,
    inputs: Vec<(&'static str, Vec<u8>)>,
    from: String,
    to: String,
}

impl ArchivedDay {
    fn start(name: &str) -> ArchivedDay {
        let dir = Dir::new(name);
        let logs = dir.join("logs");
        let day = (Utc::now() - Duration::days(3)).date_naive();
        let noon = day.and_hms_opt(12, 0, 0).unwrap().and_utc();
        let inputs: Vec<(&str, Vec<u8>)> = vec![
            ("arch", crawl_log(day, 400)),
            ("archplain", plain_text(noon)),
        ];
        for (crawl, bytes) in &inputs {
            write(&logs.join(crawl).join("input.log"), bytes);
        }
        let pattern = logs.join("{crawl}/input.log").display().to_string();
        let up = Up::start(
            &dir,
            &[&ARCHIVE_AT_ONCE[..], &["--retention-secs", "300", &pattern]].concat(),
        );
        for (crawl, _) in &inputs {
            wait_for(
                &format!("{crawl}'s day to be archived and pruned"),
                PATIENCE,
                || {
                    dir.join(&format!("up/buck/segments/{crawl}/{day}.sqlite.pruned"))
                        .exists()
                        .then_some(())
                },
            );
        }
        let from = rfc(day.and_hms_opt(0, 0, 0).unwrap().and_utc());
        let to = rfc((day + chrono::Days::new(1))
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc());
        ArchivedDay {
            dir,
            up,
            day,
            inputs,
            from,
            to,
        }
    }
}

#[test]
fn export_reads_days_archived_and_pruned_from_the_archive() {
    let ArchivedDay {
        dir,
        up,
        day,
        inputs,
        from,
        to,
    } = ArchivedDay::start("export-archive");

    // Without the archive the export says where the missing day is.
    let out = export(&["--api", &up.url, "--from", &from, "--to", &to, "arch"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains(&day.to_string()) && err.contains("--archive"),
        "{err}"
    );

    let archive = format!("file://{}", dir.join("up/archive").display());
    for (crawl, bytes) in &inputs {
        wait_export_equals(
            &up.url,
            crawl,
            (&from, &to),
            &["--archive", &archive],
            bytes,
        );
    }
    let (_, log) = &inputs[0];
    let want = grep_crawl_log(log, &|s, h| s == 404 && h == "acid.matkelly.com");
    assert!(!want.is_empty());
    wait_export_equals(
        &up.url,
        "arch",
        (&from, &to),
        &[
            "--archive",
            &archive,
            "--status",
            "404",
            "--host",
            "acid.matkelly.com",
        ],
        &want,
    );
    // Half of the day: the range is half-open, by event time.
    let mid = day.and_hms_opt(9, 0, 0).unwrap().and_utc() + Duration::seconds(600);
    let cut = mid.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let want: Vec<u8> = log
        .split_inclusive(|&b| b == b'\n')
        .filter(|l| l[..cut.len()] < *cut.as_bytes())
        .flatten()
        .copied()
        .collect();
    assert_eq!(want.iter().filter(|&&b| b == b'\n').count(), 200);
    wait_export_equals(
        &up.url,
        "arch",
        (&from, &rfc(mid)),
        &["--archive", &archive],
        &want,
    );
}

/// The same from an S3-compatible server (the test SeaweedFS): the archived objects
/// copied into a fresh bucket, read through the AWS environment with path style.
#[test]
fn export_reads_pruned_days_from_an_s3_compatible_archive() {
    let ArchivedDay {
        dir,
        up,
        inputs,
        from,
        to,
        ..
    } = ArchivedDay::start("export-s3");
    let s3 = FreshS3::new();
    let archive = s3.archive_url();
    let FreshS3 { store, rt, .. } = s3;
    // Retried as the porter retries its store.
    let store = porter::RetryStore::new(
        std::sync::Arc::new(store),
        5,
        std::time::Duration::from_millis(200),
        std::time::Duration::from_secs(60),
    );
    for (crawl, _) in &inputs {
        for f in std::fs::read_dir(dir.join(&format!("up/archive/{crawl}"))).unwrap() {
            let f = f.unwrap();
            let key = format!("{crawl}/{}", f.file_name().to_string_lossy());
            rt.block_on(porter::ArchiveStore::put_file(&store, &key, &f.path()))
                .unwrap();
        }
    }
    for (crawl, bytes) in &inputs {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["export", "--api", &up.url, "--from", &from, "--to", &to])
            .args(["--archive", &archive, "--s3-path-style"])
            .arg(crawl)
            .env("RUST_LOG", "warn")
            .envs(FreshS3::aws_env())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "export from S3: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stdout == *bytes,
            "export of {crawl} from S3 differs from its input"
        );
    }
}
