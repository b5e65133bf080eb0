//! The two logs the encoding benchmarks run over (real Heritrix logs and generated
//! high-entropy lines), the events the tailer builds from them, and the `main` those
//! benchmarks share: a size argument, then one table a log.

use anyhow::Context as _;
use chrono::Utc;
use contracts::{CrawlId, Event};
use parsers::{EventBuilder, RawRecord, SourceFormat};

/// Size of the generated log when the command line names none, in MiB.
pub const DEFAULT_GENERATED_MIB: usize = 64;

/// The events the tailer builds from `log` (one crawl.log line per line), all of one
/// source file.
pub fn crawl_log_events(log: &[u8]) -> Vec<Event> {
    let mut b = EventBuilder::new(
        SourceFormat::CrawlLog,
        0x5eed,
        1,
        CrawlId::parse("bench").expect("a valid crawl id"),
        "crawler-01.example.org".into(),
        "heritrix".into(),
        60_000,
    );
    let now = Utc::now().timestamp_micros();
    let mut out = Vec::new();
    let mut offset = 0u64;
    for line in log.split(|&c| c == b'\n') {
        if !line.is_empty() {
            out.push(b.build(RawRecord::line(offset, line.to_vec()), now));
        }
        offset += line.len() as u64 + 1;
    }
    out
}

/// How many times a table runs over `log`: small inputs (the real logs are 0.1 MiB) are
/// run several times over, so the CPU figures are not all noise.
pub fn rounds_for(log: &[u8]) -> usize {
    ((256 << 20) / log.len().max(1)).clamp(1, 200)
}

/// A benchmark's `main`: reads the generated log's size in MiB from the first argument
/// (default [`DEFAULT_GENERATED_MIB`]), then prints `table` over the real Heritrix logs
/// and over that much generated crawl.log.
pub fn run_on_real_and_generated(
    table: impl Fn(&str, &[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mib: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()
        .context("the size must be a number of MiB")?
        .unwrap_or(DEFAULT_GENERATED_MIB);
    println!("{}", super::machine_notes());
    let (files, real) = super::real_crawl_logs()?;
    table(&format!("real Heritrix logs ({files} files)"), &real)?;

    let generated = super::generated_crawl_log(mib, 11);
    table(
        "generated crawl.log lines (random hosts, paths, sha1)",
        &generated,
    )
}
