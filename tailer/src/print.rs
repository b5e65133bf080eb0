//! Print mode (`sluice tail --print`): every matching file read from its beginning, each
//! event written as one JSON line. No state is written, nothing is spooled or sent: this
//! is how an operator checks what a config matches and how its lines parse.

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use parsers::stream_events::decode_stream;

use crate::config::TailerConfig;
use crate::discovery::Discovery;
use crate::error::TailerError;
use crate::events::TailerEvents;
use crate::file_follower::{FileContext, FileFollower, Input};
use crate::fingerprint::{self, Fingerprint};
use crate::frame_batch::FrameBatch;
use crate::read_scheduler::app_name;

/// Prints every event of every matching file to `out` and returns how many there were.
/// With `follow`, keeps printing what is appended (and new files) until an error, such as
/// `out` being closed.
pub fn print_events(
    config: &TailerConfig,
    follow: bool,
    out: &mut dyn Write,
) -> Result<u64, TailerError> {
    let events = Arc::new(TailerEvents::default());
    let mut discovery = Discovery::new(&config.sources)?;
    let host = config.host_name();
    let mut followers: Vec<FileFollower> = Vec::new();
    let mut seen = HashSet::new();
    let mut scratch = vec![0u8; 64 * 1024];
    let mut batch = FrameBatch::new();
    let mut count = 0u64;
    let multiline_flush = Duration::from_millis(config.multiline_flush_ms);
    loop {
        for found in discovery.scan(&events, &crate::discovery::NoWatch) {
            if !seen.insert(found.path.clone()) {
                continue;
            }
            let file = std::fs::File::open(&found.path)
                .map_err(|e| TailerError::io("opening", &found.path, e))?;
            let meta = file
                .metadata()
                .map_err(|e| TailerError::io("reading file metadata", &found.path, e))?;
            let head = fingerprint::head_of(&file)
                .map_err(|e| TailerError::io("reading", &found.path, e))?;
            let source = &config.sources[found.source];
            let ctx = FileContext {
                source: found.source,
                source_pattern: source.path.clone(),
                crawl: found.crawl,
                format: source.format,
                multiline: source.multiline,
                app: app_name(source, &found.path),
                host: host.clone(),
                tailer_id: 0,
                max_line_bytes: config.max_line_bytes,
            };
            let seq = followers.len() as u64;
            let (dev, inode) = (meta.dev(), meta.ino());
            followers.push(FileFollower::new(
                found.path,
                dev,
                inode,
                seq,
                head,
                0,
                Fingerprint::default(),
                Input::Plain(file),
                ctx,
            ));
        }
        for f in &mut followers {
            let now = Utc::now().timestamp_micros();
            while f
                .read(&mut scratch, 1 << 20, now, &mut batch, &events)
                .map_err(|e| TailerError::io("reading", f.path.clone(), e))?
                > 0
            {
                count += write_all(&mut batch, out)?;
            }
            if !follow {
                f.flush(true, now, &mut batch, &events)
                    .map_err(|e| TailerError::io("reading", f.path.clone(), e))?;
            } else if f.has_pending_record() && f.last_growth.elapsed() >= multiline_flush {
                // A stack trace at the end of a quiet file is complete enough to show.
                f.flush(false, now, &mut batch, &events)
                    .map_err(|e| TailerError::io("reading", f.path.clone(), e))?;
            }
            count += write_all(&mut batch, out)?;
        }
        out.flush()
            .map_err(|e| TailerError::io("writing", "<output>", e))?;
        if !follow {
            return Ok(count);
        }
        std::thread::sleep(Duration::from_millis(config.poll_interval_ms.max(1)));
    }
}

/// Prints the batch's events and empties it. The reader hands out frames, as it does to
/// the spool: decoding them back (with the fields a buck computes from each line) shows
/// exactly what would be shipped.
fn write_all(batch: &mut FrameBatch, out: &mut dyn Write) -> Result<u64, TailerError> {
    let n = batch.len() as u64;
    let mut line = String::new();
    let (events, framing) = decode_stream(batch.bytes());
    if let Some(e) = framing {
        return Err(TailerError::Task(format!(
            "print mode: the reader's frames are torn: {e}"
        )));
    }
    for event in events {
        let event = event
            .map_err(|e| TailerError::Task(format!("print mode: an event does not decode: {e}")))?;
        line.clear();
        line.push_str(&event.to_json().to_string());
        line.push('\n');
        out.write_all(line.as_bytes())
            .map_err(|e| TailerError::io("writing", "<output>", e))?;
    }
    batch.clear();
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn prints_every_line_of_every_file_as_json() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("c1")).unwrap();
        std::fs::create_dir_all(dir.path().join("c2")).unwrap();
        std::fs::write(
            dir.path().join("c1/app.log"),
            "one\ntwo\nlast without newline",
        )
        .unwrap();
        std::fs::write(dir.path().join("c2/app.log"), "three\n").unwrap();
        std::fs::write(
            dir.path().join("c2/app.log.1"),
            "rotated copy: not printed\n",
        )
        .unwrap();
        let text = format!(
            "[[source]]\npath = \"{}/{{crawl}}/app.log\"\nformat = \"plain\"\n",
            dir.path().display()
        );
        let config = TailerConfig::parse(&text, Path::new("t.toml")).unwrap();
        let mut out = Vec::new();
        let n = print_events(&config, false, &mut out).unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(n as usize, lines.len());
        let got: Vec<(String, String)> = lines
            .iter()
            .map(|v| {
                (
                    v["crawl"].as_str().unwrap().into(),
                    v["line"].as_str().unwrap().into(),
                )
            })
            .collect();
        let want = [
            ("c1", "one"),
            ("c1", "two"),
            ("c1", "last without newline"),
            ("c2", "three"),
        ];
        assert_eq!(got, want.map(|(a, b)| (a.to_string(), b.to_string())));
        assert!(!dir.path().join("state").exists());
    }

    /// Accepts writes until it has seen `stop_at`, then fails like a closed pipe.
    struct UntilSeen {
        seen: Vec<u8>,
        stop_at: &'static str,
        /// Set once anything was printed: following has begun.
        started: std::sync::Arc<std::sync::atomic::AtomicBool>,
    }

    impl Write for UntilSeen {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if String::from_utf8_lossy(&self.seen).contains(self.stop_at) {
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
            self.seen.extend_from_slice(buf);
            self.started
                .store(true, std::sync::atomic::Ordering::Relaxed);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            if String::from_utf8_lossy(&self.seen).contains(self.stop_at) {
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
            Ok(())
        }
    }

    #[test]
    fn follow_prints_appended_lines_until_the_output_closes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("c1")).unwrap();
        let log = dir.path().join("c1/app.log");
        std::fs::write(&log, "first\n").unwrap();
        let text = format!(
            "poll_interval_ms = 10\n[[source]]\npath = \"{}/{{crawl}}/app.log\"\nformat = \"plain\"\n",
            dir.path().display()
        );
        let config = TailerConfig::parse(&text, Path::new("t.toml")).unwrap();
        let started = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let printed = started.clone();
        let writer = std::thread::spawn(move || {
            // Appended only after print mode has printed the existing line.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while !printed.load(std::sync::atomic::Ordering::Relaxed) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "print mode printed nothing"
                );
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
            f.write_all(b"appended later\n").unwrap();
        });
        let mut out = UntilSeen {
            seen: Vec::new(),
            stop_at: "appended later",
            started,
        };
        let e = print_events(&config, true, &mut out).unwrap_err();
        writer.join().unwrap();
        assert!(e.to_string().contains("writing"), "{e}");
        let text = String::from_utf8(out.seen).unwrap();
        assert!(
            text.contains("\"first\"") && text.contains("appended later"),
            "{text}"
        );
    }
}
