//! `sluice export`: a crawl's original lines for a time range, byte for byte, to stdout.
//!
//! One request per UTC day to the buck's `GET /export` (a buck that is not the crawl's
//! home redirects to one; the token goes along to it), so each day is bounded by the
//! buck's per-stream limits and a day the buck no longer holds can come from the archive
//! instead (`--archive`): porter lists the day's manifests, fetches and verifies its
//! objects into a scratch directory, and `contracts::original_lines` reads them in the same
//! order the buck would. Days go in order, so the output is the range in written order.
//! Nothing is held in memory beyond a chunk of lines and a page per source file.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, Utc};
use contracts::CrawlId;
use contracts::original_lines::{LineFilter, write_day_lines};
use contracts::status_filter::StatusFilter;
use futures::StreamExt;
use reqwest::StatusCode;

/// What `sluice export` was asked for.
#[derive(Debug, Clone)]
pub struct ExportArgs {
    /// Base URL of a buck.
    pub api: String,
    /// The buck's `api_token`, when it needs one.
    pub token: Option<String>,
    /// The crawl.
    pub crawl: String,
    /// Range start (inclusive).
    pub from: DateTime<Utc>,
    /// Range end (exclusive).
    pub to: DateTime<Utc>,
    /// Only crawl.log lines of this URL host.
    pub host: Option<String>,
    /// Only crawl.log lines of these statuses (`200`, `4xx`, `500-599`, comma-separated).
    pub status: Option<String>,
    /// The archive for days the buck no longer holds.
    pub archive: Option<String>,
    /// S3 path-style addressing for an `s3://` archive.
    pub s3_path_style: bool,
    /// Scratch directory for objects fetched from the archive.
    pub work_dir: Option<PathBuf>,
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// Lines written.
    pub lines: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Days served by a buck.
    pub days_from_bucks: usize,
    /// Days read from the archive.
    pub days_from_archive: usize,
}

/// The UTC days `[from, to)` meets, each with its part of the range.
fn days(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(NaiveDate, DateTime<Utc>, DateTime<Utc>)> {
    let mut out = Vec::new();
    let mut day = from.date_naive();
    while let Some(start) = day.and_hms_opt(0, 0, 0).map(|t| t.and_utc()) {
        if start >= to {
            break;
        }
        let end = start + chrono::Duration::days(1);
        out.push((day, start.max(from), end.min(to)));
        match day.succ_opt() {
            Some(d) => day = d,
            None => break,
        }
    }
    out
}

/// The writer given to `run`, counting what passes and treating a closed pipe
/// (`sluice export ... | head`) as the reader having had enough.
struct Counting<'a> {
    out: &'a mut dyn Write,
    lines: u64,
    bytes: u64,
}

impl Counting<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.out.write_all(b)?;
        self.bytes += b.len() as u64;
        self.lines += memchr_count(b);
        Ok(())
    }
}

fn memchr_count(b: &[u8]) -> u64 {
    b.iter().filter(|&&c| c == b'\n').count() as u64
}

enum DayAnswer {
    /// The buck streamed the day.
    Served,
    /// The buck has no segment of the day; `pruned` if it had one and archived it.
    Missing { pruned: bool, crawl_unknown: bool },
}

/// Exports `args` to `out`. Errors say what failed and what to do.
pub async fn run(args: &ExportArgs, out: &mut dyn Write) -> anyhow::Result<ExportReport> {
    let crawl =
        CrawlId::parse(&args.crawl).map_err(|e| anyhow::anyhow!("crawl {:?}: {e}", args.crawl))?;
    if args.to <= args.from {
        bail!(
            "empty range: --to ({}) must be after --from ({})",
            args.to,
            args.from
        );
    }
    if let Some(s) = &args.status {
        StatusFilter::parse(s).map_err(|m| anyhow::anyhow!("--status: {m}"))?;
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .build()
        .context("building the HTTP client")?;
    let store = match &args.archive {
        Some(url) => {
            let mut cfg = porter::PorterConfig::new(url.clone(), PathBuf::new(), PathBuf::new());
            cfg.s3.path_style = args.s3_path_style;
            Some(
                porter::open_store(url, &cfg)
                    .with_context(|| format!("opening the archive {url}"))?,
            )
        }
        None => None,
    };
    let days = days(args.from, args.to);
    let bar = progress_bar(days.len());
    let mut w = Counting {
        out,
        lines: 0,
        bytes: 0,
    };
    let mut report = ExportReport::default();
    let mut pruned_without_archive = Vec::new();
    let mut crawl_known = false;
    for (day, from, to) in &days {
        if let Some(b) = &bar {
            b.set_message(format!("{day}"));
        }
        let answer = match export_day(&client, args, &crawl, *from, *to, &mut w, bar.as_ref()).await
        {
            Ok(a) => a,
            Err(e) if is_broken_pipe(&e) => return Ok(report_of(report, &w)),
            Err(e) => return Err(e),
        };
        match answer {
            DayAnswer::Served => {
                crawl_known = true;
                report.days_from_bucks += 1;
            }
            DayAnswer::Missing {
                pruned,
                crawl_unknown,
            } => {
                crawl_known |= !crawl_unknown;
                if let Some(store) = &store {
                    match archive_day(store.clone(), args, &crawl, *day, *from, *to, &mut w).await {
                        Ok(true) => {
                            crawl_known = true;
                            report.days_from_archive += 1;
                        }
                        Ok(false) if pruned => bail!(
                            "day {day} of crawl {crawl} was pruned from the buck, but the archive {} has no object for it: check --archive",
                            store.describe()
                        ),
                        Ok(false) => {}
                        Err(e) if is_broken_pipe(&e) => return Ok(report_of(report, &w)),
                        Err(e) => return Err(e),
                    }
                } else if pruned {
                    pruned_without_archive.push(day.to_string());
                }
            }
        }
        if let Some(b) = &bar {
            b.inc(1);
        }
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    w.out.flush().ok();
    if !crawl_known {
        bail!(
            "crawl {crawl}: the buck at {} holds no segment of it{}: check the crawl id (and the range)",
            args.api,
            if store.is_some() {
                " and the archive has none in the range"
            } else {
                ""
            }
        );
    }
    if !pruned_without_archive.is_empty() {
        bail!(
            "days {} of crawl {crawl} were archived and pruned from the buck, so they are missing from the output: export them again with --archive URL (the porter's archive)",
            pruned_without_archive.join(", ")
        );
    }
    Ok(report_of(report, &w))
}

fn report_of(mut r: ExportReport, w: &Counting<'_>) -> ExportReport {
    r.lines = w.lines;
    r.bytes = w.bytes;
    r
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn progress_bar(days: usize) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(days as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "exporting [{bar:30}] {pos}/{len} days, {msg} {elapsed}",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}

/// Streams one day from the buck (following redirects to the crawl's home, token kept).
async fn export_day(
    client: &reqwest::Client,
    args: &ExportArgs,
    crawl: &CrawlId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    w: &mut Counting<'_>,
    bar: Option<&indicatif::ProgressBar>,
) -> anyhow::Result<DayAnswer> {
    let mut url = reqwest::Url::parse(&format!("{}/export", args.api.trim_end_matches('/')))
        .with_context(|| format!("--api {:?} is not a URL", args.api))?;
    url.query_pairs_mut()
        .append_pair("crawl", crawl.as_str())
        .append_pair("from", &from.to_rfc3339())
        .append_pair("to", &to.to_rfc3339());
    if let Some(h) = &args.host {
        url.query_pairs_mut().append_pair("host", h);
    }
    if let Some(s) = &args.status {
        url.query_pairs_mut().append_pair("status", s);
    }
    let mut hops = 0;
    let resp = loop {
        let mut req = client.get(url.clone());
        if let Some(t) = &args.token {
            req = req.bearer_auth(t);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() || e.is_timeout() => {
                return Err(anyhow::Error::new(e).context(format!(
                    "cannot reach the buck at {url}: is it (or `sluice up`) running there?"
                )));
            }
            // Connected, then cut before the head was read: the buck stopped the stream
            // at once (a limit, or it is shutting down).
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "the buck at {url} broke off the export of crawl {crawl} from {from}: a limit such as export_max_bytes or export_timeout_secs, or it is stopping; its log says which"
                )));
            }
        };
        if resp.status() == StatusCode::TEMPORARY_REDIRECT && hops < 4 {
            hops += 1;
            let loc = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .context("a redirect without a Location")?;
            url = url
                .join(loc)
                .with_context(|| format!("redirect to {loc:?} is not a URL"))?;
            continue;
        }
        break resp;
    };
    let status = resp.status();
    if status == StatusCode::NOT_FOUND {
        let pruned = resp
            .headers()
            .get("x-sluice-pruned")
            .is_some_and(|v| !v.is_empty());
        let crawl_unknown = resp.headers().contains_key("x-sluice-unknown-crawl");
        return Ok(DayAnswer::Missing {
            pruned,
            crawl_unknown,
        });
    }
    if status == StatusCode::UNAUTHORIZED {
        bail!(
            "the buck at {} refused the export (401): it needs its api_token; pass --token or set SLUICE_API_TOKEN",
            url.origin().ascii_serialization()
        );
    }
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or(body);
        bail!("the buck at {url} answered {status}: {}", message.trim());
    }
    // The day's segment was pruned but a late part file is still on the buck: only the
    // part is in this answer. Rare (an event that arrived after the day was archived);
    // said, not hidden.
    if resp
        .headers()
        .get("x-sluice-pruned")
        .is_some_and(|v| !v.is_empty())
    {
        eprintln!(
            "sluice export: warning: day {} of crawl {crawl}: the buck holds only a late part file of it (its segment was archived and pruned), so the output has the part's lines only; export the day again once the porter has archived the part",
            from.date_naive()
        );
    }
    let mut body = resp.bytes_stream();
    let start = w.bytes;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.with_context(|| {
            format!(
                "the export of crawl {crawl} from {from} stopped after {} bytes: the buck cut the stream (a limit such as export_max_bytes or export_timeout_secs, or an error; its log says which)",
                w.bytes - start
            )
        })?;
        w.write(&chunk).context("writing to stdout")?;
        if let Some(b) = bar {
            b.set_message(format!(
                "{} {} lines, {} MiB",
                from.date_naive(),
                w.lines,
                w.bytes >> 20
            ));
        }
    }
    Ok(DayAnswer::Served)
}

/// Writes one day from the archive; `false` when the archive has nothing for it.
async fn archive_day(
    store: Arc<dyn porter::ArchiveStore>,
    args: &ExportArgs,
    crawl: &CrawlId,
    day: NaiveDate,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    w: &mut Counting<'_>,
) -> anyhow::Result<bool> {
    let objects = porter::fetcher::list_archived(store.as_ref(), crawl, from, to)
        .await
        .with_context(|| format!("listing the archive {} for {crawl}", store.describe()))?;
    if objects.is_empty() {
        return Ok(false);
    }
    let scratch = match &args.work_dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            tempfile::Builder::new()
                .prefix("sluice-export-")
                .tempdir_in(d)
        }
        None => tempfile::Builder::new().prefix("sluice-export-").tempdir(),
    }
    .context("making a scratch directory for archived segments (--work-dir)")?;
    let events = porter::PorterEvents::default();
    let mut paths = Vec::new();
    for (d, part, manifest) in &objects {
        let (seg, _) = porter::fetcher::fetch_one_archived(
            store.as_ref(),
            &events,
            crawl,
            *d,
            *part,
            manifest,
            scratch.path(),
        )
        .await
        .with_context(|| format!("fetching {manifest} from {}", store.describe()))?;
        paths.push(seg.path);
    }
    let filter = LineFilter {
        url_host: args.host.clone(),
        status: args
            .status
            .as_deref()
            .map(StatusFilter::parse)
            .transpose()?,
    };
    // SQLite is synchronous; this thread may block while the rest of the runtime runs.
    tokio::task::block_in_place(|| {
        write_day_lines(
            &paths,
            from.timestamp_micros(),
            to.timestamp_micros(),
            &filter,
            &mut |b| w.write(b),
        )
    })
    .map_err(|e| match e {
        contracts::original_lines::OriginalLinesError::Sink(io) => {
            anyhow::Error::new(io).context("writing to stdout")
        }
        other => anyhow::Error::new(other).context(format!("reading archived day {day}")),
    })?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_is_cut_into_its_days() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let d = days(t("2026-11-20T22:00:00Z"), t("2026-11-22T00:00:00Z"));
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].1, t("2026-11-20T22:00:00Z"));
        assert_eq!(d[0].2, t("2026-11-21T00:00:00Z"));
        assert_eq!(d[1].2, t("2026-11-22T00:00:00Z"));
        assert_eq!(
            days(t("2026-11-20T22:00:00Z"), t("2026-11-20T22:00:01Z")).len(),
            1
        );
    }
}
