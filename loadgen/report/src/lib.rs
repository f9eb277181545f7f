//! What a load run leaves behind for people and for other tools, built from the run's
//! documents (report.json and timeseries.jsonl, as `serde_json::Value`s), so a report
//! re-rendered later from the files is the one written at the end of the run:
//!
//! - [`buckets`]: a whole-run latency histogram as report.json keeps it
//!   (`histograms.<metric>.buckets`), with quantiles, the percentile spectrum and
//!   distribution-free confidence intervals of a percentile from the sample count;
//! - [`timeseries`]: DIR/timeseries.jsonl, one JSON object per second, streamed while
//!   the run goes on and completed at its end;
//! - [`html`]: DIR/report.html, one self-contained file (inline SVG, no script or
//!   network);
//! - [`junit`]: `--junit FILE`, each check a test case;
//! - [`prometheus`]: the live per-second figures in Prometheus text on `--metrics-addr`;
//! - [`summary_line`]: the one JSON line of `--quiet` for CI scripts;
//! - [`compare`]: `loadgen compare OLD NEW`, the differences that matter and whether
//!   NEW regressed beyond the given thresholds.
//!
//! It does not run load, judge checks (the scenario crate does) or know clap.

pub mod buckets;
pub mod compare;
pub mod html;
pub mod junit;
pub mod prometheus;
pub mod summary_line;
pub mod timeseries;
