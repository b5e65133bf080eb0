//! `sluice`: the embedded pipeline (`sluice up`) and the tools around it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "A log pipeline for fleets of web crawlers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run tailer, buck and web UI in one process on 127.0.0.1 (the embedded default).
    Up {
        /// Directory for everything: keys, spool, state, segments.
        #[arg(long, default_value = "sluice-data")]
        dir: PathBuf,
        /// Address of the web UI and APIs.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: String,
        /// Crawl id for paths without a {crawl} placeholder.
        #[arg(long)]
        crawl: Option<String>,
        /// Spool bucket length in seconds.
        #[arg(long, default_value_t = 60)]
        bucket_interval_secs: u64,
        /// Seconds after a UTC day ends before its segment closes.
        #[arg(long, default_value_t = 3600)]
        day_close_grace_secs: u64,
        /// Seconds an archived segment stays in the buck after its day ends.
        #[arg(long, default_value_t = 604_800)]
        retention_secs: u64,
        /// A TOML file of more [[buck]] tables (bucks running elsewhere) to add to the
        /// embedded cluster, e.g. to try a two-buck cluster on one machine.
        #[arg(long)]
        cluster_extra: Option<PathBuf>,
        /// Archive for closed segments: s3://bucket/prefix, webhdfs://host:port/path or
        /// file:///path. Default: DIR/archive.
        #[arg(long)]
        archive: Option<String>,
        /// With an s3:// archive: address buckets as ENDPOINT/bucket (path style), as most
        /// S3-compatible servers (MinIO, Ceph RGW, SeaweedFS) need. The endpoint, keys and
        /// region come from the AWS environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
        /// AWS_SECRET_ACCESS_KEY, AWS_REGION).
        #[arg(long)]
        s3_path_style: bool,
        /// Archive a closed segment once its day ended this many seconds ago.
        #[arg(long, default_value_t = 172_800)]
        archive_age_secs: u64,
        /// Seconds between archive runs.
        #[arg(long, default_value_t = 3600)]
        archive_interval_secs: u64,
        /// Serve every page and API under this path prefix (e.g. /sluice), for a reverse
        /// proxy that forwards its prefix. Default: none.
        #[arg(long, default_value = "")]
        base_path: String,
        /// Bytes to keep free on DIR's file system: the buck stops committing below it;
        /// the tailer stops reading, the porter defers archiving and history requests
        /// wait below twice it (so the buck can still store what is spooled); all resume
        /// by themselves when space returns.
        #[arg(long, default_value_t = 256 << 20)]
        min_free_bytes: u64,
        /// Push per-crawl counters to this Graphite plaintext listener (host:port; carbon
        /// listens on 2003). Default: none.
        #[arg(long)]
        graphite: Option<String>,
        /// With --graphite: the first component of every path.
        #[arg(long, default_value = "sluice", requires = "graphite")]
        graphite_prefix: String,
        /// With --graphite: seconds per interval.
        #[arg(long, default_value_t = 60, requires = "graphite")]
        graphite_interval_secs: u64,
        /// Files or globs to follow (a {crawl} placeholder captures the crawl id from the
        /// path). Without any, the bundled sample Heritrix crawl logs are used.
        paths: Vec<String>,
    },
    /// Run a tailer from a config file, or print what it would ship.
    Tail {
        /// The tailer's TOML config.
        config: PathBuf,
        #[command(flatten)]
        run: sluice_cli::agents::TailOptions,
    },
    /// Run a buck from a config file.
    Buck {
        /// The buck's TOML config.
        config: PathBuf,
        #[command(flatten)]
        run: sluice_cli::agents::BuckOptions,
    },
    /// Write a new key pair: NAME.key (secret, mode 0600) and NAME.pub.
    Keygen {
        /// Directory to write into.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// File name stem.
        #[arg(long, default_value = "sluice")]
        name: String,
        /// Print a new random token (for `api_token`, `porter_token` / `buck_token`)
        /// instead of writing a key pair.
        #[arg(long)]
        token: bool,
    },
    /// A Nagios/Icinga plugin: one status line, exit 0 OK, 1 WARNING, 2 CRITICAL,
    /// 3 UNKNOWN.
    Check(sluice_cli::check::CheckArgs),
    /// Run one SQL statement over a crawl's segments and print a table.
    Sql {
        /// Base URL of a buck (default: the one `sluice up --dir DIR` is running).
        #[arg(long)]
        url: Option<String>,
        /// The `sluice up` directory to find the URL in.
        #[arg(long, default_value = "sluice-data")]
        dir: PathBuf,
        /// The SQL API's token, if the buck needs one.
        #[arg(
            long,
            env = "SLUICE_TOKEN",
            hide_env_values = true,
            allow_hyphen_values = true
        )]
        token: Option<String>,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
        /// The crawl.
        crawl: String,
        /// One SELECT statement.
        sql: String,
    },
    /// Write a crawl's original lines for a time range to stdout, byte for byte, in the
    /// order they were written: each source file's lines in offset order, the files
    /// merged by event time (ties by tailer and file seq), day after day. Lines that were
    /// not UTF-8 come back as their bytes; a multi-line record comes back whole. Days a
    /// buck no longer holds (archived and pruned) come from --archive. A progress bar is
    /// drawn on stderr when it is a terminal. See docs/incident.md.
    ///
    /// Example: sluice export --api http://buck-1:8080 crawl-7 --from 2026-11-20T00:00:00Z
    /// --to 2026-11-21T00:00:00Z --status 5xx > lines
    Export {
        /// Base URL of a buck (any buck of the cluster: one that is not the crawl's home
        /// redirects). Default: the one `sluice up --dir DIR` is running.
        #[arg(long)]
        api: Option<String>,
        /// The `sluice up` directory to find the URL in.
        #[arg(long, default_value = "sluice-data")]
        dir: PathBuf,
        /// The buck's api_token, when it needs one (any buck off loopback).
        #[arg(
            long,
            env = "SLUICE_API_TOKEN",
            hide_env_values = true,
            allow_hyphen_values = true
        )]
        token: Option<String>,
        /// Range start, RFC 3339, inclusive (e.g. 2026-11-20T00:00:00Z).
        #[arg(long)]
        from: String,
        /// Range end, RFC 3339, exclusive.
        #[arg(long)]
        to: String,
        /// Only crawl.log lines whose URL has this host (the SQL API's crawled_urls.host),
        /// case-insensitive. Other formats never match.
        #[arg(long)]
        host: Option<String>,
        /// Only crawl.log lines with these fetch statuses: codes, classes or ranges,
        /// comma-separated (200,4xx,-5003,500-599). Other formats never match.
        #[arg(long)]
        status: Option<String>,
        /// The archive, for days the buck no longer holds: file:///dir, s3://bucket/prefix
        /// (AWS_ENDPOINT_URL and the AWS keys from the environment) or
        /// webhdfs://namenode:port/path.
        #[arg(long)]
        archive: Option<String>,
        /// With an s3:// archive: path-style addressing (MinIO, Ceph RGW, SeaweedFS).
        #[arg(long)]
        s3_path_style: bool,
        /// Scratch directory for archived segments while they are read (one day's objects
        /// at a time). Default: the system's temporary directory.
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// The crawl.
        crawl: String,
    },
    /// Build a history index of a crawl's range on this machine and exit when it is
    /// ready: archie's index, in an archie work dir, fetched from the archive (and the
    /// bucks of the cluster file for days not archived yet), with a progress bar on
    /// stderr when it is a terminal. An archie or `sluice up` started over the same work
    /// dir then serves it (GET /history lists it; search it at /history/ID/search) until
    /// it expires. The work dir must not be in use by a running archie. See
    /// docs/incident.md.
    ///
    /// Example (a second history machine): sluice reindex crawl-7 --from
    /// 2026-11-20T00:00:00Z --to 2026-11-21T00:00:00Z --work-dir /var/lib/archie
    /// --archive s3://sluice-archive/prod --cluster-file /etc/sluice/cluster.toml
    Reindex {
        /// A `sluice up` directory to take the defaults from: its archie work dir
        /// (DIR/archie), archive (DIR/archive), cluster file and porter token.
        #[arg(long, default_value = "sluice-data")]
        dir: PathBuf,
        /// Archie's work dir (the `work_dir` of the archie that will serve the index).
        /// Default: DIR/archie.
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// The archive: file:///dir, s3://bucket/prefix or webhdfs://host:port/path.
        /// Default: file://DIR/archive.
        #[arg(long)]
        archive: Option<String>,
        /// With an s3:// archive: path-style addressing (MinIO, Ceph RGW, SeaweedFS).
        #[arg(long)]
        s3_path_style: bool,
        /// The cluster file, for days the archive does not hold yet (fetched from the
        /// bucks). Default: DIR/cluster.toml.
        #[arg(long)]
        cluster_file: Option<PathBuf>,
        /// The bucks' porter_token (their segment API needs it). Default: DIR/keys/porter.token.
        #[arg(
            long,
            env = "SLUICE_PORTER_TOKEN",
            hide_env_values = true,
            allow_hyphen_values = true
        )]
        buck_token: Option<String>,
        /// Seconds the index lives once ready.
        #[arg(long, default_value_t = 86_400)]
        expiry_secs: u64,
        /// Threads building the full-text index (each builds one shard).
        #[arg(long, default_value_t = 2)]
        index_threads: usize,
        /// Range start, RFC 3339, inclusive.
        #[arg(long)]
        from: String,
        /// Range end, RFC 3339, exclusive.
        #[arg(long)]
        to: String,
        /// The crawl, or a pattern with `*` (crawl-2026-*).
        crawl: String,
    },
}

fn main() -> ExitCode {
    sluice_cli::logging::init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // A plugin's bad arguments are UNKNOWN (3), not clap's usage error (2), which a
        // monitoring system would read as CRITICAL.
        Err(e) if std::env::args().nth(1).as_deref() == Some("check") && e.use_stderr() => {
            let _ = e.print();
            println!("SLUICE CHECK UNKNOWN - bad arguments (see sluice check --help)");
            return ExitCode::from(3);
        }
        Err(e) => e.exit(),
    };
    if let Command::Check(args) = cli.command {
        return ExitCode::from(sluice_cli::check::run(args));
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `sluice up`'s URL in `dir`, else the default address.
fn up_url(dir: &std::path::Path) -> String {
    match sluice_cli::up::read_state(dir) {
        Ok(s) => format!("http://{}{}", s.http, s.base_path),
        Err(_) => "http://127.0.0.1:8080".to_owned(),
    }
}

fn rfc3339(flag: &str, v: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| {
            anyhow::anyhow!("{flag} {v:?} is not an RFC 3339 time ({e}); e.g. 2026-11-21T00:00:00Z")
        })
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Reindex {
            dir,
            work_dir,
            archive,
            s3_path_style,
            cluster_file,
            buck_token,
            expiry_secs,
            index_threads,
            from,
            to,
            crawl,
        } => {
            let dir = std::path::absolute(&dir)
                .with_context(|| format!("resolving {}", dir.display()))?;
            let archive =
                archive.unwrap_or_else(|| format!("file://{}", dir.join("archive").display()));
            let buck_token = buck_token.or_else(|| {
                std::fs::read_to_string(dir.join("keys/porter.token"))
                    .ok()
                    .map(|t| t.trim().to_owned())
            });
            let mut porter_config = porter::PorterConfig::new(
                archive,
                cluster_file.unwrap_or_else(|| dir.join("cluster.toml")),
                dir.join("porter"),
            );
            porter_config.s3.path_style = s3_path_style;
            porter_config.buck_token = buck_token;
            let config = archie::ArchieConfig {
                expiry_secs,
                index_threads,
                ..archie::ArchieConfig::new(work_dir.unwrap_or_else(|| dir.join("archie")))
            };
            let (from, to) = (rfc3339("--from", &from)?, rfc3339("--to", &to)?);
            let (record, reused) = sluice_cli::runtime()?.block_on(sluice_cli::reindex::build(
                config,
                porter_config,
                &crawl,
                from,
                to,
            ))?;
            eprintln!("{}", sluice_cli::reindex::summary(&record, reused));
            println!("{}", serde_json::to_string(&record)?);
            Ok(())
        }
        Command::Export {
            api,
            dir,
            token,
            from,
            to,
            host,
            status,
            archive,
            s3_path_style,
            work_dir,
            crawl,
        } => {
            let args = sluice_cli::export::ExportArgs {
                api: api.unwrap_or_else(|| up_url(&dir)),
                token,
                crawl,
                from: rfc3339("--from", &from)?,
                to: rfc3339("--to", &to)?,
                host,
                status,
                archive,
                s3_path_style,
                work_dir,
            };
            sluice_cli::runtime()?.block_on(async {
                let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
                let report = sluice_cli::export::run(&args, &mut out).await?;
                tracing::info!(
                    lines = report.lines,
                    bytes = report.bytes,
                    days_from_bucks = report.days_from_bucks,
                    days_from_archive = report.days_from_archive,
                    "export done"
                );
                Ok(())
            })
        }
        Command::Up {
            dir,
            http,
            crawl,
            bucket_interval_secs,
            day_close_grace_secs,
            retention_secs,
            cluster_extra,
            archive,
            s3_path_style,
            archive_age_secs,
            archive_interval_secs,
            base_path,
            min_free_bytes,
            graphite,
            graphite_prefix,
            graphite_interval_secs,
            paths,
        } => sluice_cli::runtime()?.block_on(async {
            let shutdown = CancellationToken::new();
            sluice_cli::serve::cancel_on_signal(shutdown.clone());
            sluice_cli::up::run(
                sluice_cli::up::UpArgs {
                    dir,
                    http,
                    crawl,
                    paths,
                    bucket_interval_secs,
                    day_close_grace_secs,
                    retention_secs,
                    cluster_extra,
                    archive,
                    s3_path_style,
                    archive_age_secs,
                    archive_interval_secs,
                    base_path,
                    min_free_bytes,
                    graphite: graphite.map(|address| buck::graphite::GraphiteConfig {
                        prefix: graphite_prefix,
                        interval_secs: graphite_interval_secs,
                        ..buck::graphite::GraphiteConfig::new(address)
                    }),
                },
                shutdown,
            )
            .await
        }),
        Command::Tail { config, run } => sluice_cli::agents::tail(&config, &run),
        Command::Buck { config, run } => sluice_cli::agents::buck(&config, &run),
        Command::Keygen { token: true, .. } => {
            println!("{}", edge::secret::generate());
            Ok(())
        }
        Command::Keygen { out, name, .. } => {
            let kp = contracts::keys::KeyPair::generate();
            let (key, public) = kp.save(&out, &name)?;
            println!(
                "secret key: {}\npublic key: {} ({})",
                key.display(),
                public.display(),
                kp.public_text()
            );
            Ok(())
        }
        Command::Check(_) => Ok(()),
        Command::Sql {
            url,
            dir,
            json,
            token,
            crawl,
            sql,
        } => {
            let url = match url {
                Some(u) => u,
                None => match sluice_cli::up::read_state(&dir) {
                    Ok(s) => format!("http://{}{}", s.http, s.base_path),
                    Err(_) => "http://127.0.0.1:8080".to_owned(),
                },
            };
            sluice_cli::runtime()?.block_on(async {
                let mut out = std::io::stdout().lock();
                sluice_cli::sql_client::run(&url, &crawl, &sql, token.as_deref(), json, &mut out)
                    .await
                    .map(|_| ())
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens made before they were redrawn, or by an operator, may start with `-`: every
    /// `--token` flag takes such a value as the token, not as an option.
    #[test]
    fn a_token_that_starts_with_a_hyphen_is_a_token() {
        let cli = Cli::try_parse_from([
            "sluice", "check", "--api", "http://x", "--token", "-ab", "buck",
        ])
        .expect("check parses");
        let Command::Check(args) = cli.command else {
            panic!("not check")
        };
        assert_eq!(args.token.as_deref(), Some("-ab"));
        for sub in [
            &["sql", "--token", "-ab", "c", "SELECT 1"][..],
            &["export", "--token", "-ab", "--from", "a", "--to", "b", "c"][..],
        ] {
            let argv = std::iter::once("sluice").chain(sub.iter().copied());
            assert!(Cli::try_parse_from(argv).is_ok(), "{sub:?}");
        }
    }
}
