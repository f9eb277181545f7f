//! `loadgen report DIR` (placeholder; the lead fills it in).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

pub const EXAMPLES: &str = "Examples:
  loadgen report target/loadgen";

/// `loadgen report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run's directory (its --out): report.json and timeseries.jsonl.
    pub dir: PathBuf,
}

pub fn run(args: &ReportArgs) -> ExitCode {
    eprintln!("error: report {}: not built yet", args.dir.display());
    ExitCode::from(2)
}
