//! The exposition's state: what the run's seconds (timeseries lines) and whole-run
//! histograms said so far, accumulated by [`State::apply`], and its encoding into
//! both text formats by [`State::encode`].
//!
//! Counters are sums of the lines' per-second deltas; levels (open connections, the
//! second, saturation, phases, last-second percentiles) are the last line's. Anything a
//! line lacks or holds in the wrong shape is skipped: counts as 0, levels keep their
//! last value, a last-second percentile is absent. This module measures nothing and
//! serves nothing.

use std::collections::BTreeMap;
use std::fmt;

use hdrhistogram::Histogram;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use serde_json::Value;

use super::BUCKET_BOUNDS_US;
use super::http::Texts;
use super::text::{
    CounterFamily, GaugeFamily, HistogramFamily, HistogramSeries, escape_label_value, openmetrics_to_prometheus,
};

/// Counters from the lines' deltas: name (after `loadgen_`, before `_total`), help, the
/// line's object holding the field (`""`: the line itself) and the field.
pub(super) const COUNTERS: [(&str, &str, &str, &str); 14] = [
    ("connections_attempted", "Connection starts submitted", "connections", "attempted"),
    ("connections_established", "Connections that became open", "connections", "established"),
    ("connections_failed", "Connection attempts that failed before becoming open", "connections", "failed"),
    ("connections_closed", "Open connections that ended, for any reason", "connections", "closed"),
    ("connections_dropped", "Open connections that ended without loadgen closing them", "connections", "dropped"),
    (
        "connections_reconnect_attempts",
        "Reconnect attempts of dropped connections (also counted in connections_attempted)",
        "connections",
        "reconnect_attempts",
    ),
    ("messages_sent", "Data messages sent", "messages", "sent"),
    ("messages_received", "Data messages received", "messages", "received"),
    ("message_bytes_sent", "WebSocket payload bytes of the messages sent", "messages", "bytes_sent"),
    ("message_bytes_received", "WebSocket payload bytes of the messages received", "messages", "bytes_received"),
    ("messages_late", "Echoes received after the reply timeout", "messages", "late"),
    ("messages_lost", "Sequence numbers found missing when connections ended", "messages", "lost"),
    ("cq_overflow", "Completion-queue overflows the kernel reported", "", "cq_overflow"),
    (
        "buffer_ring_exhausted",
        "Receives that found the provided-buffer ring empty (ENOBUFS)",
        "",
        "buffer_ring_exhausted",
    ),
];

/// `quantile` label values and the percentile fields of a line they come from.
const QUANTILES: [(&str, &str); 5] = [("0.5", "p50"), ("0.9", "p90"), ("0.99", "p99"), ("0.999", "p999"), ("1", "max")];

/// Whole-run histograms that are generator lags (label `lag`), not target latencies.
const LAGS: [(&str, &str, &str); 2] =
    [("schedule_lag", "schedule_lag_us", "schedule"), ("connect_lag", "connect_lag_us", "connect")];

/// One histogram in buckets: per-bound counts (last: `+Inf`), sum in seconds, count.
#[derive(Debug, Clone)]
struct Buckets {
    per_bound: Vec<(f64, u64)>,
    sum_s: f64,
    count: u64,
}

/// Everything the exposition shows; see the module documentation.
#[derive(Debug, Default)]
pub(super) struct State {
    seen: bool,
    counters: [u64; COUNTERS.len()],
    errors: BTreeMap<String, u64>,
    second: Option<u64>,
    open: Option<u64>,
    peak_open: Option<u64>,
    saturated: Option<bool>,
    reasons: Vec<String>,
    phases: Vec<String>,
    target_cpu_s: Option<f64>,
    /// Last second's percentiles: (escaped metric or lag name, [(quantile, seconds)]).
    latency_last: Vec<(String, Vec<(&'static str, f64)>)>,
    lag_last: Vec<(String, Vec<(&'static str, f64)>)>,
    /// Whole-run histograms by (escaped) name, as last passed.
    latency: BTreeMap<String, Buckets>,
    lag: BTreeMap<String, Buckets>,
    verdict: Option<String>,
    finished: bool,
}

fn count(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn level(v: &Value) -> Option<u64> {
    v.as_u64()
}

/// Percentiles of one `{count, p50, ..., max}` object in seconds; empty when it holds
/// no sample.
fn percentiles(v: &Value) -> Vec<(&'static str, f64)> {
    if v.get("count").and_then(Value::as_u64) == Some(0) {
        return Vec::new();
    }
    QUANTILES
        .iter()
        .filter_map(|&(q, field)| {
            let us = v.get(field)?.as_f64().filter(|x| x.is_finite() && *x >= 0.0)?;
            Some((q, us / 1e6))
        })
        .collect()
}

/// Per-bound counts of `h` (µs) over [`BUCKET_BOUNDS_US`]: a sample counts in the first
/// bound at or above the lowest value of its HdrHistogram bucket, so cumulated up to a
/// bound they are HdrHistogram's `count_between(0, bound)`. `None` when `h` is empty.
fn buckets(h: &Histogram<u64>) -> Option<Buckets> {
    if h.is_empty() {
        return None;
    }
    let mut per = [0u64; BUCKET_BOUNDS_US.len() + 1];
    let mut sum_us = 0.0f64;
    for v in h.iter_recorded() {
        let top = v.value_iterated_to();
        let lowest = h.lowest_equivalent(top);
        let i = BUCKET_BOUNDS_US.partition_point(|&b| b < lowest);
        per[i] = per[i].saturating_add(v.count_at_value());
        sum_us += h.median_equivalent(top) as f64 * v.count_at_value() as f64;
    }
    let count = per.iter().fold(0u64, |a, &b| a.saturating_add(b));
    let per_bound =
        BUCKET_BOUNDS_US.iter().map(|&b| b as f64 / 1e6).chain(std::iter::once(f64::MAX)).zip(per).collect();
    Some(Buckets { per_bound, sum_s: sum_us / 1e6, count })
}

fn gauge(v: u64) -> ConstGauge<i64> {
    ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX))
}

impl State {
    /// Takes in one second of the run: its line and the whole-run histograms so far.
    pub(super) fn apply(&mut self, line: &Value, histograms: &[(&'static str, &Histogram<u64>)]) {
        self.seen = true;
        for (total, &(_, _, object, field)) in self.counters.iter_mut().zip(COUNTERS.iter()) {
            let v = if object.is_empty() { &line[field] } else { &line[object][field] };
            *total = total.saturating_add(count(v));
        }
        if let Some(errors) = line["errors"].as_object() {
            for (kind, n) in errors {
                let total = self.errors.entry(escape_label_value(kind)).or_default();
                *total = total.saturating_add(count(n));
            }
        }
        self.second = level(&line["second"]).or(self.second);
        self.open = level(&line["connections"]["open"]).or(self.open);
        self.peak_open = level(&line["connections"]["peak_open"]).or(self.peak_open);
        self.saturated = line["saturated"].as_bool().or(self.saturated);
        self.reasons.clear();
        for reason in line["saturation_reasons"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            let kind = escape_label_value(reason.split_once(':').map_or(reason, |(k, _)| k).trim());
            if !kind.is_empty() && !self.reasons.contains(&kind) {
                self.reasons.push(kind);
            }
        }
        self.phases.clear();
        for phase in line["phases"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            let phase = escape_label_value(phase);
            if !self.phases.contains(&phase) {
                self.phases.push(phase);
            }
        }
        self.target_cpu_s = line["target_cpu_s"].as_f64().filter(|x| x.is_finite() && *x >= 0.0);
        self.latency_last.clear();
        for (metric, v) in line["latency_us"].as_object().into_iter().flatten() {
            let p = percentiles(v);
            if !p.is_empty() {
                self.latency_last.push((escape_label_value(metric), p));
            }
        }
        self.lag_last.clear();
        for (_, field, lag) in LAGS {
            let p = percentiles(&line[field]);
            if !p.is_empty() {
                self.lag_last.push((lag.to_owned(), p));
            }
        }
        for &(name, h) in histograms {
            let Some(b) = buckets(h) else { continue };
            match LAGS.iter().find(|(n, _, _)| *n == name) {
                Some((_, _, lag)) => self.lag.insert((*lag).to_owned(), b),
                None => self.latency.insert(escape_label_value(name), b),
            };
        }
    }

    /// The run's end: its verdict (`report.verdict`) when the report has one.
    pub(super) fn finish(&mut self, report: &Value) {
        self.finished = true;
        self.verdict = report["verdict"].as_str().map(escape_label_value);
    }

    /// The exposition in OpenMetrics text and in Prometheus text 0.0.4.
    pub(super) fn encode(&self) -> Result<Texts, fmt::Error> {
        let mut info = Registry::default();
        info.register(
            "loadgen",
            "The load generator serving this endpoint",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        let mut openmetrics = String::with_capacity(16 * 1024);
        encode_registry(&mut openmetrics, &info)?;
        if self.seen || self.finished {
            encode_registry(&mut openmetrics, &self.registry())?;
        }
        encode_eof(&mut openmetrics)?;
        let prometheus = openmetrics_to_prometheus(&openmetrics);
        Ok(Texts { openmetrics, prometheus })
    }

    fn registry(&self) -> Registry {
        let mut r = Registry::with_prefix("loadgen");
        r.register("run_finished", "1 once the run has ended, 0 while it runs", gauge(u64::from(self.finished)));
        if let Some(verdict) = &self.verdict {
            let family = GaugeFamily { series: vec![(vec![("verdict", verdict.clone())], 1.0)] };
            r.register("run_verdict", "The run's verdict (pass, fail, invalid), 1 for the one it had", family);
        }
        if !self.seen {
            return r;
        }
        if let Some(second) = self.second {
            r.register("run_second", "Second of the run (from 0) of the last second collected", gauge(second));
        }
        for (&(name, help, _, _), &total) in COUNTERS.iter().zip(self.counters.iter()) {
            r.register(name, help, ConstCounter::new(total));
        }
        let errors =
            CounterFamily { series: self.errors.iter().map(|(k, &n)| (vec![("kind", k.clone())], n)).collect() };
        r.register("errors", "Errors by kind", errors);
        if let Some(open) = self.open {
            r.register("connections_open", "Connections open at the end of the last second", gauge(open));
        }
        if let Some(peak) = self.peak_open {
            r.register("connections_peak_open", "Most connections open during the last second", gauge(peak));
        }
        if let Some(saturated) = self.saturated {
            let help = "1 when the last second was saturated (its figures partly measure loadgen), else 0";
            r.register("generator_saturated", help, gauge(u64::from(saturated)));
        }
        let reasons = GaugeFamily { series: self.reasons.iter().map(|k| (vec![("reason", k.clone())], 1.0)).collect() };
        r.register("generator_saturation_reason", "1 for each rule that saturated the last second", reasons);
        let phases = GaugeFamily { series: self.phases.iter().map(|p| (vec![("phase", p.clone())], 1.0)).collect() };
        r.register("phase", "1 for each named phase covering the last second", phases);
        if let Some(cpu) = self.target_cpu_s {
            let help = "CPU seconds the embedded target used in the last second";
            r.register_with_unit("target_cpu", help, Unit::Seconds, ConstGauge::new(cpu));
        }
        let help = "Whole-run latency by metric (buckets from the run's HdrHistogram; _sum is bucket-resolution)";
        r.register_with_unit("latency", help, Unit::Seconds, histograms("metric", &self.latency));
        let help = "Whole-run generator lag (actual minus intended time) by kind; _sum is bucket-resolution";
        r.register_with_unit("generator_lag", help, Unit::Seconds, histograms("lag", &self.lag));
        let help = "Last second's latency percentiles by metric (quantile 1 is the max); absent without samples";
        r.register_with_unit("latency_last_second", help, Unit::Seconds, last_second("metric", &self.latency_last));
        let help = "Last second's generator lag percentiles by kind (quantile 1 is the max); absent without samples";
        r.register_with_unit("generator_lag_last_second", help, Unit::Seconds, last_second("lag", &self.lag_last));
        r
    }
}

fn histograms(label: &'static str, by_name: &BTreeMap<String, Buckets>) -> HistogramFamily {
    let series = by_name
        .iter()
        .map(|(name, b)| HistogramSeries {
            label_value: name.clone(),
            sum: b.sum_s,
            count: b.count,
            buckets: b.per_bound.clone(),
        })
        .collect();
    HistogramFamily { label, series }
}

fn last_second(label: &'static str, rows: &[(String, Vec<(&'static str, f64)>)]) -> GaugeFamily {
    let series = rows
        .iter()
        .flat_map(|(name, qs)| {
            qs.iter().map(move |&(q, s)| (vec![(label, name.clone()), ("quantile", q.to_owned())], s))
        })
        .collect();
    GaugeFamily { series }
}
