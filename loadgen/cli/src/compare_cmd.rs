//! `loadgen compare OLD NEW` (placeholder; the compare helper owns this file).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

pub const EXAMPLES: &str = "Examples:
  loadgen compare runs/last-week runs/today";

/// `loadgen compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The earlier run: its directory or its report.json.
    pub old: PathBuf,
    /// The later run: its directory or its report.json.
    pub new: PathBuf,
}

pub fn run(args: &CompareArgs) -> ExitCode {
    eprintln!("error: compare {} {}: not built yet", args.old.display(), args.new.display());
    ExitCode::from(2)
}
