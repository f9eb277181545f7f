//! The exposition's building blocks on top of `prometheus-client`: snapshot metric
//! types (a labelled gauge family, a histogram family whose buckets are already counted)
//! implementing its [`EncodeMetric`], label-value escaping, and the rewrite of the
//! OpenMetrics text it encodes into the Prometheus text format 0.0.4.
//!
//! `prometheus-client` encodes OpenMetrics 1.0.0 only (`# UNIT`, `# EOF`, counter
//! families named without `_total`, the `info` type) and writes label values as given.
//! This module does neither measurement nor HTTP.

use std::fmt;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

/// Escapes a label value for both text formats: `\` → `\\`, `"` → `\"`, newline → `\n`.
pub(crate) fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Series of one gauge family: each series its (already escaped) label pairs and value.
#[derive(Debug, Default)]
pub(crate) struct GaugeFamily {
    pub(crate) series: Vec<(Vec<(&'static str, String)>, f64)>,
}

impl EncodeMetric for GaugeFamily {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), fmt::Error> {
        for (labels, value) in &self.series {
            encoder.encode_family(labels)?.encode_gauge(value)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }

    fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

/// Series of one counter family: each series its (already escaped) label pairs and total.
#[derive(Debug, Default)]
pub(crate) struct CounterFamily {
    pub(crate) series: Vec<(Vec<(&'static str, String)>, u64)>,
}

impl EncodeMetric for CounterFamily {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), fmt::Error> {
        for (labels, total) in &self.series {
            encoder.encode_family(labels)?.encode_counter::<NoLabelSet, _, u64>(total, None)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }

    fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

/// One histogram series: bucket counts per bound (not cumulative; the last bound
/// `f64::MAX`, which the encoder writes as `+Inf`), sum and count.
#[derive(Debug)]
pub(crate) struct HistogramSeries {
    /// Escaped value of the family's label.
    pub(crate) label_value: String,
    pub(crate) sum: f64,
    pub(crate) count: u64,
    pub(crate) buckets: Vec<(f64, u64)>,
}

/// A histogram family with one label (`metric` or `lag`).
#[derive(Debug)]
pub(crate) struct HistogramFamily {
    pub(crate) label: &'static str,
    pub(crate) series: Vec<HistogramSeries>,
}

impl EncodeMetric for HistogramFamily {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), fmt::Error> {
        for s in &self.series {
            let labels = [(self.label, s.label_value.as_str())];
            encoder.encode_family(&labels)?.encode_histogram::<NoLabelSet>(s.sum, s.count, &s.buckets, None)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }

    fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

/// Rewrites `prometheus-client`'s OpenMetrics text as Prometheus text 0.0.4: drops
/// `# UNIT` and `# EOF`, names a counter family by its `_total` samples and an `info`
/// family by its `_info` sample typed `gauge` (the `HELP` line, which the encoder writes
/// just before `TYPE`, follows the rename). Samples are the same in both formats.
pub(crate) fn openmetrics_to_prometheus(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            flush_help(&mut out, help.take());
            help = Some(rest.split_once(' ').unwrap_or((rest, "")));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let (name, kind, suffix) = match kind {
                "counter" => (name, "counter", "_total"),
                "info" => (name, "gauge", "_info"),
                "unknown" => (name, "untyped", ""),
                other => (name, other, ""),
            };
            match help.take() {
                Some((h, text)) if h == name => push_comment(&mut out, "HELP", name, suffix, text),
                other => flush_help(&mut out, other),
            }
            push_comment(&mut out, "TYPE", name, suffix, kind);
            continue;
        }
        flush_help(&mut out, help.take());
        out.push_str(line);
        out.push('\n');
    }
    flush_help(&mut out, help);
    out
}

fn flush_help(out: &mut String, help: Option<(&str, &str)>) {
    if let Some((name, text)) = help {
        push_comment(out, "HELP", name, "", text);
    }
}

fn push_comment(out: &mut String, what: &str, name: &str, suffix: &str, rest: &str) {
    out.push_str("# ");
    out.push_str(what);
    out.push(' ');
    out.push_str(name);
    out.push_str(suffix);
    out.push(' ');
    out.push_str(rest);
    out.push('\n');
}
