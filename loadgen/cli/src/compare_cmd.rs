//! `loadgen compare OLD NEW`: reads two runs' report.json (a run directory or the file
//! itself), compares them with `loadgen_report::compare` under the thresholds of the
//! command line, prints the table (or `--json`), writes `--html FILE` when asked, and
//! exits 0 (no regression), 1 (NEW regressed) or 2 (bad input: one line
//! `error: … (fix)`). The judging lives in the library; this file reads files and maps
//! outcomes to exit codes.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use loadgen_report::compare::{
    self, Percentile, Thresholds, parse_latency_increase, parse_per_million, parse_percentiles, parse_throughput_drop,
};
use serde_json::Value;

use crate::run_outputs::write_atomically;

pub const EXAMPLES: &str = "Examples:
  loadgen compare runs/last-week runs/today
  loadgen compare runs/a/report.json runs/b/report.json --html /tmp/a-vs-b.html
  loadgen compare runs/a runs/b --max-latency-increase 5 --percentiles p50,p90,p99
  loadgen compare runs/a runs/b --max-throughput-drop 2 --max-error-increase 10
  loadgen compare runs/a runs/b --json | jq '.rows[] | select(.status == \"regressed\")'

A latency percentile regresses when NEW exceeds OLD by more than --max-latency-increase
and their 95% confidence intervals (from the runs' histograms) do not overlap; without
histograms it is judged on the values alone and marked unverified.

Exit codes:
  0  no regression beyond the thresholds
  1  NEW regressed (each regression listed first, with why)
  2  bad input: a missing or unreadable file, not JSON, not a loadgen run report,
     a bad flag value, an --html file that cannot be written";

/// `--percentiles`: the percentiles that can regress.
#[derive(Clone, Debug, PartialEq)]
pub struct PercentileList(pub Vec<Percentile>);

fn parse_percentile_list(s: &str) -> Result<PercentileList, String> {
    parse_percentiles(s).map(PercentileList)
}

/// `loadgen compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The earlier run: its directory or its report.json.
    pub old: PathBuf,
    /// The later run: its directory or its report.json.
    pub new: PathBuf,
    /// Largest latency increase, in percent, that is not a regression (also needs the
    /// 95% intervals apart).
    #[arg(long, value_name = "PCT", default_value = "10", value_parser = parse_latency_increase)]
    pub max_latency_increase: f64,
    /// The latency percentiles that can regress (the others are shown): a comma-separated
    /// list of p50, p90, p99, p999 (or p99.9), max.
    #[arg(long, value_name = "LIST", default_value = "p50,p99,p999", value_parser = parse_percentile_list)]
    pub percentiles: PercentileList,
    /// Largest drop of throughput (messages per second, connections), in percent, that
    /// is not a regression.
    #[arg(long, value_name = "PCT", default_value = "5", value_parser = parse_throughput_drop)]
    pub max_throughput_drop: f64,
    /// Largest growth of an error class's rate, per million messages, that is not a
    /// regression (0: any growth is); an error class OLD did not have always is.
    #[arg(long, value_name = "PER_MILLION", default_value = "0", value_parser = parse_per_million)]
    pub max_error_increase: f64,
    /// Also write the comparison as one self-contained HTML page to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Print the comparison as one JSON document instead of the table.
    #[arg(long)]
    pub json: bool,
}

impl CompareArgs {
    /// The thresholds these flags give.
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            max_latency_increase_pct: self.max_latency_increase,
            percentiles: self.percentiles.0.clone(),
            max_throughput_drop_pct: self.max_throughput_drop,
            max_error_increase_per_million: self.max_error_increase,
        }
    }
}

/// `path/report.json` when `path` is a directory, else `path`; with its document.
fn read(path: &Path, side: &str) -> Result<(PathBuf, Value), String> {
    let file = if path.is_dir() { path.join("report.json") } else { path.to_path_buf() };
    let text = std::fs::read(&file).map_err(|e| {
        format!("cannot read {side} {}: {e} (give a run's --out directory or its report.json)", file.display())
    })?;
    let doc = serde_json::from_slice(&text).map_err(|e| {
        format!("{side} {} is not JSON: {e} (give the report.json a `loadgen run` wrote)", file.display())
    })?;
    Ok((file, doc))
}

fn compare_files(args: &CompareArgs) -> Result<compare::Comparison, String> {
    let (old_path, old) = read(&args.old, "OLD")?;
    let (new_path, new) = read(&args.new, "NEW")?;
    let comparison = compare::compare(&old, &new, &args.thresholds()).map_err(|e| {
        let path = if e.side() == compare::Side::Old { &old_path } else { &new_path };
        format!("{}: {e}", path.display())
    })?;
    Ok(comparison.with_labels(old_path.display().to_string(), new_path.display().to_string()))
}

pub fn run(args: &CompareArgs) -> ExitCode {
    let comparison = match compare_files(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(html) = &args.html {
        if let Err(e) = write_atomically(html, comparison.html().as_bytes()) {
            eprintln!("error: cannot write {}: {e} (choose another --html FILE)", html.display());
            return ExitCode::from(2);
        }
        eprintln!("html: {}", html.display());
    }
    let out = if args.json { format!("{:#}\n", comparison.to_json()) } else { comparison.text() };
    // A closed pipe (`| head`) is not a failure of the comparison.
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    ExitCode::from(if comparison.regressed() { 1 } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: CompareArgs,
    }

    #[test]
    fn the_flags_default_to_the_library_thresholds() {
        let cli = Cli::try_parse_from(["compare", "a", "b"]).unwrap();
        assert_eq!(cli.args.thresholds(), Thresholds::default());
        let cli = Cli::try_parse_from([
            "compare",
            "a",
            "b",
            "--max-latency-increase",
            "2.5%",
            "--percentiles",
            "p90,max",
            "--max-throughput-drop",
            "1",
            "--max-error-increase",
            "25",
        ])
        .unwrap();
        let t = cli.args.thresholds();
        assert_eq!(t.max_latency_increase_pct, 2.5);
        assert_eq!(t.percentiles, [Percentile::P90, Percentile::Max]);
        assert_eq!((t.max_throughput_drop_pct, t.max_error_increase_per_million), (1.0, 25.0));
        let e = Cli::try_parse_from(["compare", "a", "b", "--max-throughput-drop", "150"]).unwrap_err().to_string();
        assert!(e.contains("--max-throughput-drop") && e.contains("such as 5 or 2.5%"), "{e}");
    }
}
