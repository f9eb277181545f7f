//! The JSON report of a conformance run. Field names are stable; sections a run did
//! not produce are absent.

use std::path::Path;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Outcome of one check.
#[derive(Clone, Debug, Serialize)]
pub struct CheckResult {
    /// Stable name (`echo_text_65536`, `client_close` ...).
    pub name: String,
    /// Whether the server behaved as RFC 6455 requires.
    pub passed: bool,
    /// What was observed (error kind and message on failure).
    pub detail: String,
    /// Wall time of the check in milliseconds.
    pub millis: f64,
}

/// A histogram of microseconds from 1 µs to one hour at 3 significant digits; values
/// above saturate at the top (never silently clamp at a small auto-sized range).
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds are valid")
}

/// Latency distribution in microseconds.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Maximum.
    pub max: u64,
}

impl Percentiles {
    /// Summarises a histogram of microseconds.
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        Self {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// Closed-loop echo measurement over several connections.
#[derive(Clone, Debug, Serialize)]
pub struct EchoSummary {
    /// Connections used.
    pub connections: usize,
    /// Message size in bytes.
    pub message_size: usize,
    /// Round trips completed.
    pub round_trips: u64,
    /// Round trips per second over the measurement.
    pub round_trips_per_s: f64,
    /// Round-trip latency (µs). Closed loop: each send waits for the previous echo.
    pub rtt_us: Percentiles,
    /// TCP connect time (µs).
    pub connect_us: Percentiles,
    /// Connect + upgrade time (µs).
    pub handshake_us: Percentiles,
    /// Connections or round trips that failed, by error kind.
    pub errors: std::collections::BTreeMap<String, u64>,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Report format version.
    pub schema_version: u32,
    /// `loadgen` version that wrote it.
    pub loadgen_version: String,
    /// Target URL.
    pub target: String,
    /// Unix time of the start, seconds.
    pub started_unix_s: u64,
    /// Wall time of the run, seconds.
    pub duration_s: f64,
    /// Negotiated permessage-deflate parameters (absent if not negotiated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deflate: Option<String>,
    /// Every check in order.
    pub checks: Vec<CheckResult>,
    /// Checks passed.
    pub passed: usize,
    /// Checks failed.
    pub failed: usize,
    /// Echo measurement (absent when skipped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub echo: Option<EchoSummary>,
}

impl Report {
    /// Writes `report.json` into `dir` (created if missing); returns its path.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<std::path::PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("report.json");
        let tmp = dir.join(".report.json.tmp");
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, &path)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_keep_large_values() {
        let mut h = latency_histogram();
        for v in [10, 2_000, 50_000, 5_000_000] {
            h.saturating_record(v);
        }
        let p = Percentiles::from_histogram(&h);
        assert_eq!(p.count, 4);
        assert!((1_990..=2_010).contains(&p.p50), "{p:?}");
        assert!((4_990_000..=5_010_000).contains(&p.max), "{p:?}");
    }
}
