//! `buck`: the buck agent alone, as deployed on a server.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Receives events from tailers, writes per-crawl SQLite segments, serves SQL.
#[derive(Parser)]
#[command(name = "buck", version)]
struct Args {
    /// The buck's TOML config (see docs/buck.md).
    #[arg(long, short)]
    config: PathBuf,
    /// Ingest address for tailers.
    #[arg(long, default_value = "127.0.0.1:7400")]
    ingest: String,
    /// HTTP address for the APIs.
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: String,
    /// Write the bound addresses as JSON here once listening (for scripts and tests).
    #[arg(long)]
    ready_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    sluice_cli::logging::init();
    let a = Args::parse();
    match sluice_cli::agents::buck(&a.config, &a.ingest, &a.http, a.ready_file.as_deref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("buck: {e:#}");
            ExitCode::FAILURE
        }
    }
}
