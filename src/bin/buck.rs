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
    #[command(flatten)]
    run: sluice_cli::agents::BuckOptions,
}

fn main() -> ExitCode {
    sluice_cli::logging::init();
    let a = Args::parse();
    match sluice_cli::agents::buck(&a.config, &a.run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("buck: {e:#}");
            ExitCode::FAILURE
        }
    }
}
