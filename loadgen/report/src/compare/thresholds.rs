//! What counts as a regression in `loadgen compare`: the thresholds of its command
//! line and their parsers (each refusal one sentence with an example, for clap to put
//! after the flag's name). It holds numbers; it compares nothing.

use std::fmt;

/// A percentile of a report's latency fields (`p50` … `p999`, `max`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Percentile {
    /// The median.
    P50,
    /// The 90th percentile.
    P90,
    /// The 99th percentile.
    P99,
    /// The 99.9th percentile (`p999` in report.json).
    P999,
    /// The largest sample: no confidence interval, so judged on its value alone.
    Max,
}

impl Percentile {
    /// Every percentile report.json keeps, in order.
    pub const ALL: [Percentile; 5] = [Self::P50, Self::P90, Self::P99, Self::P999, Self::Max];

    /// The key of the percentile in report.json (`p50`, `p999`, `max`).
    pub fn key(self) -> &'static str {
        match self {
            Self::P50 => "p50",
            Self::P90 => "p90",
            Self::P99 => "p99",
            Self::P999 => "p999",
            Self::Max => "max",
        }
    }

    /// The name shown to people (`p99.9`).
    pub fn label(self) -> &'static str {
        match self {
            Self::P999 => "p99.9",
            other => other.key(),
        }
    }

    /// The quantile q (rank ⌈qN⌉), `None` for `max` (no interval is taken of it).
    pub fn quantile(self) -> Option<f64> {
        match self {
            Self::P50 => Some(0.5),
            Self::P90 => Some(0.9),
            Self::P99 => Some(0.99),
            Self::P999 => Some(0.999),
            Self::Max => None,
        }
    }

    /// `p50`, `p90`, `p99`, `p999` or `p99.9`, `max` (any case).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "p50" => Some(Self::P50),
            "p90" => Some(Self::P90),
            "p99" => Some(Self::P99),
            "p999" | "p99.9" => Some(Self::P999),
            "max" => Some(Self::Max),
            _ => None,
        }
    }
}

impl fmt::Display for Percentile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// When NEW counts as regressed against OLD.
#[derive(Clone, Debug, PartialEq)]
pub struct Thresholds {
    /// `--max-latency-increase`: a latency percentile regresses when NEW exceeds OLD by
    /// more than this share, in percent (and their confidence intervals are apart).
    pub max_latency_increase_pct: f64,
    /// `--percentiles`: the percentiles that can regress; the others are shown only.
    pub percentiles: Vec<Percentile>,
    /// `--max-throughput-drop`: throughput regresses when it falls by more than this
    /// share, in percent.
    pub max_throughput_drop_pct: f64,
    /// `--max-error-increase`: an error class regresses when its rate per million
    /// messages grows by more than this (0: any growth); a new class always does.
    pub max_error_increase_per_million: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            max_latency_increase_pct: 10.0,
            percentiles: vec![Percentile::P50, Percentile::P99, Percentile::P999],
            max_throughput_drop_pct: 5.0,
            max_error_increase_per_million: 0.0,
        }
    }
}

impl Thresholds {
    /// Whether percentile `p` can regress.
    pub fn judges(&self, p: Percentile) -> bool {
        self.percentiles.contains(&p)
    }
}

/// A non-negative finite number, or why not.
fn number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0)
}

/// A percentage: `10`, `2.5` or `2.5%`, at least 0 (of a latency increase: any size;
/// cap it with `at_most`, e.g. 100 for a drop).
pub fn parse_percent(s: &str, at_most: Option<f64>) -> Result<f64, String> {
    let bare = s.trim().strip_suffix('%').unwrap_or(s);
    let example = match at_most {
        Some(max) => format!("a percentage from 0 to {max}, such as 5 or 2.5%"),
        None => "a percentage of at least 0, such as 10 or 2.5%".to_string(),
    };
    match number(bare) {
        Some(v) if at_most.is_none_or(|max| v <= max) => Ok(v),
        _ => Err(format!("expected {example}")),
    }
}

/// `--max-latency-increase PCT`.
pub fn parse_latency_increase(s: &str) -> Result<f64, String> {
    parse_percent(s, None)
}

/// `--max-throughput-drop PCT` (0 to 100).
pub fn parse_throughput_drop(s: &str) -> Result<f64, String> {
    parse_percent(s, Some(100.0))
}

/// `--max-error-increase PER_MILLION`: errors per million messages, at least 0.
pub fn parse_per_million(s: &str) -> Result<f64, String> {
    number(s).ok_or_else(|| "expected errors per million messages, at least 0, such as 0 or 50".to_string())
}

/// `--percentiles LIST`: comma-separated, e.g. `p50,p99,p999`; duplicates kept once,
/// in the order of [`Percentile::ALL`].
pub fn parse_percentiles(s: &str) -> Result<Vec<Percentile>, String> {
    let mut list = Vec::new();
    for word in s.split(',') {
        match Percentile::parse(word) {
            Some(p) => list.push(p),
            None => {
                return Err(format!(
                    "{:?} is not a percentile: expected a comma-separated list of p50, p90, p99, p999 (or p99.9), max, \
                     such as p50,p99,p999",
                    word.trim()
                ));
            }
        }
    }
    list.sort();
    list.dedup();
    Ok(list)
}
