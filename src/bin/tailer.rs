//! `tailer`: the tailer agent alone, as deployed on a crawler host.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Follows crawler logs, spools them in time buckets and ships them to their home bucks.
#[derive(Parser)]
#[command(name = "tailer", version)]
struct Args {
    /// The tailer's TOML config (see docs/config.md).
    #[arg(long, short)]
    config: PathBuf,
    /// Print parsed events as JSON lines instead of shipping them.
    #[arg(long)]
    print: bool,
    /// With --print, keep following the files.
    #[arg(long, requires = "print")]
    follow: bool,
    /// Serve /metrics and /healthz on this address (e.g. 127.0.0.1:9464). Default: none.
    #[arg(long)]
    metrics: Option<String>,
    /// With --metrics, write the bound address as JSON here once listening.
    #[arg(long, requires = "metrics")]
    ready_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    sluice_cli::logging::init();
    let a = Args::parse();
    match sluice_cli::agents::tail(
        &a.config,
        a.print,
        a.follow,
        a.metrics.as_deref(),
        a.ready_file.as_deref(),
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tailer: {e:#}");
            ExitCode::FAILURE
        }
    }
}
