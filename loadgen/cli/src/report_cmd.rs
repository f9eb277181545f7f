//! `loadgen report DIR`: renders a finished run's report.html again from its
//! report.json and timeseries.jsonl (the same renderer `loadgen run` used, so the file
//! is the one the run wrote, or what a newer loadgen draws of an older run), and
//! optionally its JUnit XML. Without timeseries.jsonl (a run from before it existed),
//! the seconds kept in report.json are used. Exit 0 when written, 2 for unreadable
//! input (one line naming the file and the fix), 3 when the output cannot be written.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use loadgen_report::timeseries::{self, TIMESERIES_FILE};
use serde_json::Value;

use crate::run_outputs::{HTML_FILE, write_atomically};

pub const EXAMPLES: &str = "Examples:
  loadgen report target/loadgen                       # rewrites target/loadgen/report.html
  loadgen report runs/today --html /tmp/today.html    # elsewhere
  loadgen report runs/today --junit runs/today/junit.xml";

/// `loadgen report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run's directory (its --out), holding report.json and timeseries.jsonl.
    pub dir: PathBuf,
    /// Where to write the HTML report (default: DIR/report.html).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Also write the verdict as JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

/// Reads the run's report document from `dir/report.json` (or `dir` itself when it is
/// the file), checking it is a loadgen report.
pub fn read_report(dir: &Path) -> Result<(PathBuf, Value), String> {
    let path = if dir.is_dir() { dir.join("report.json") } else { dir.to_path_buf() };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e} (give the --out directory of a loadgen run)", path.display()))?;
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not JSON: {e} (give the report.json a loadgen run wrote)", path.display()))?;
    if !doc["schema_version"].is_u64() || !doc["loadgen_version"].is_string() {
        return Err(format!(
            "{} is not a loadgen report (no schema_version or loadgen_version; give the report.json a loadgen run wrote)",
            path.display()
        ));
    }
    Ok((path, doc))
}

pub fn run(args: &ReportArgs) -> ExitCode {
    let (path, doc) = match read_report(&args.dir) {
        Ok(read) => read,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let series = dir.join(TIMESERIES_FILE);
    let lines = if series.exists() {
        match timeseries::read(&series) {
            Ok(lines) => lines,
            Err(e) => {
                eprintln!("error: {e} (remove it to render from report.json's own seconds)");
                return ExitCode::from(2);
            }
        }
    } else {
        eprintln!("note: no {}; charts drawn from report.json's timeseries", series.display());
        timeseries::lines(&doc)
    };
    let html = args.html.clone().unwrap_or_else(|| dir.join(HTML_FILE));
    let mut code = 0;
    match write_atomically(&html, loadgen_report::html::render(&doc, &lines).as_bytes()) {
        Ok(()) => println!("html: {}", html.display()),
        Err(e) => {
            eprintln!("error: cannot write {}: {e} (choose another --html)", html.display());
            code = 3;
        }
    }
    if let Some(junit) = &args.junit {
        match write_atomically(junit, loadgen_report::junit::render(&doc).as_bytes()) {
            Ok(()) => println!("junit: {}", junit.display()),
            Err(e) => {
                eprintln!("error: cannot write {}: {e} (choose another --junit)", junit.display());
                code = 3;
            }
        }
    }
    ExitCode::from(code)
}
