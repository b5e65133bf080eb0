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
    #[command(flatten)]
    run: sluice_cli::agents::TailOptions,
}

fn main() -> ExitCode {
    sluice_cli::logging::init();
    let a = Args::parse();
    match sluice_cli::agents::tail(&a.config, &a.run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tailer: {e:#}");
            ExitCode::FAILURE
        }
    }
}
