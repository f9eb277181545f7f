//! The latency rows of a comparison: each percentile of every `latency_us` metric both
//! runs measured (and, apart, the generator's schedule and connect lags), its 95%
//! confidence intervals from `histograms`, and whether NEW is beyond the threshold and
//! the noise. It reads the two documents only.

use serde_json::Value;

use super::text::{interval, micros, signed_pct};
use super::{CompareError, Figure, Percentile, Row, Section, Side, Status, Thresholds};
use crate::buckets::{Buckets, Interval, Z_95};

/// The order metrics are shown in; others follow, sorted by name.
const ORDER: [&str; 11] = [
    "connect",
    "tls_handshake",
    "handshake",
    "ready",
    "message_rtt",
    "message_rtt_corrected",
    "ping_rtt",
    "delivery",
    "delivery_critical",
    "recover",
    "handshake_closed",
];

/// The generator's lags: (report field under `generator`, histogram, shown name).
const GENERATOR: [(&str, &str, &str); 2] =
    [("schedule_lag_us", "schedule_lag", "schedule_lag"), ("connect_lag_us", "connect_lag", "connect_lag")];

/// One metric's figures in one run: its percentiles and its histogram, if kept.
struct Measured<'a> {
    percentiles: &'a Value,
    histogram: Option<Buckets>,
}

fn measured<'a>(
    doc: &'a Value,
    percentiles: &'a Value,
    histogram: &str,
    side: Side,
) -> Result<Measured<'a>, CompareError> {
    let histogram = Buckets::of_metric(doc, histogram).map_err(|source| CompareError::Histogram {
        side,
        metric: histogram.to_string(),
        source,
    })?;
    Ok(Measured { percentiles, histogram })
}

/// Appends the latency and generator rows, and the notes about histograms and
/// saturation.
pub(super) fn rows(
    old: &Value,
    new: &Value,
    thresholds: &Thresholds,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> Result<(), CompareError> {
    for (doc, side) in [(old, Side::Old), (new, Side::New)] {
        if !doc["histograms"].is_object() {
            notes.push(format!(
                "{side} has no histograms: no confidence intervals, so latency is judged on the values alone \
                 (unverified)"
            ));
        }
    }
    let new_saturated = new["generator"]["saturated"].as_bool() == Some(true);
    for (doc, side) in [(old, Side::Old), (new, Side::New)] {
        if doc["generator"]["saturated"].as_bool() == Some(true) {
            let seconds = doc["generator"]["saturated_seconds"].as_array().map_or(0, Vec::len);
            let during = if seconds > 0 { format!(" in {seconds} s") } else { String::new() };
            let marked = if side == Side::New { "marked NEW saturated" } else { "an untrusted baseline" };
            notes.push(format!(
                "{side}'s generator was saturated{during}: its latencies partly measure loadgen, not the target \
                 ({marked})"
            ));
        }
    }
    let names = |doc: &Value| -> Vec<String> {
        doc["latency_us"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
    };
    let (old_names, new_names) = (names(old), names(new));
    let mut all: Vec<&String> = old_names.iter().chain(new_names.iter()).collect();
    all.sort_by_key(|n| (ORDER.iter().position(|o| o == n).unwrap_or(ORDER.len()), n.as_str()));
    all.dedup();
    for name in all {
        let o = &old["latency_us"][name.as_str()];
        let n = &new["latency_us"][name.as_str()];
        let (o, n) = (measured(old, o, name, Side::Old)?, measured(new, n, name, Side::New)?);
        metric_rows(Section::Latency, name, &o, &n, thresholds, new_saturated, rows);
    }
    for (field, histogram, name) in GENERATOR {
        let o = measured(old, &old["generator"][field], histogram, Side::Old)?;
        let n = measured(new, &new["generator"][field], histogram, Side::New)?;
        metric_rows(Section::Generator, name, &o, &n, thresholds, false, rows);
    }
    Ok(())
}

fn metric_rows(
    section: Section,
    name: &str,
    old: &Measured<'_>,
    new: &Measured<'_>,
    thresholds: &Thresholds,
    untrusted: bool,
    rows: &mut Vec<Row>,
) {
    let (in_old, in_new) = (old.percentiles.is_object(), new.percentiles.is_object());
    if !in_old || !in_new {
        // Measured by one run only: its p99, for reference.
        let p99 = |m: &Measured<'_>| m.percentiles["p99"].as_u64().map(Figure::Micros);
        let (status, who) = match (in_old, in_new) {
            (true, false) => (Status::OnlyOld, "only OLD measured it"),
            (false, true) => (Status::OnlyNew, "only NEW measured it"),
            _ => return,
        };
        let mut row = Row::new(section, format!("{name} p99"), p99(old), p99(new)).judged_as(status, who);
        row.judged = false;
        rows.push(row);
        return;
    }
    for p in Percentile::ALL {
        let judged = section == Section::Latency && thresholds.judges(p);
        if let Some(mut row) = percentile_row(section, name, p, old, new, thresholds, judged) {
            row.untrusted = untrusted;
            rows.push(row);
        }
    }
}

fn percentile_row(
    section: Section,
    name: &str,
    p: Percentile,
    old: &Measured<'_>,
    new: &Measured<'_>,
    thresholds: &Thresholds,
    judged: bool,
) -> Option<Row> {
    let metric = format!("{name} {p}");
    let (o, n) = (old.percentiles[p.key()].as_u64(), new.percentiles[p.key()].as_u64());
    let (o, n) = match (o, n) {
        (Some(o), Some(n)) => (o, n),
        (None, None) => return None,
        (o, n) => {
            let status = if o.is_some() { Status::OnlyOld } else { Status::OnlyNew };
            let mut row = Row::new(section, metric, o.map(Figure::Micros), n.map(Figure::Micros));
            row.judged = false;
            return Some(row.judged_as(status, format!("{p} recorded by one run only")));
        }
    };
    let mut row = Row::new(section, metric.clone(), Some(Figure::Micros(o)), Some(Figure::Micros(n)));
    row.judged = judged;
    if let (Some(q), Some(oh), Some(nh)) = (p.quantile(), &old.histogram, &new.histogram) {
        row.old_ci = Some(oh.confidence(q, Z_95));
        row.new_ci = Some(nh.confidence(q, Z_95));
    }
    row.unverified = row.old_ci.is_none();
    let t = thresholds.max_latency_increase_pct;
    let change = row.change_pct.map_or_else(|| "from 0".to_string(), signed_pct);
    let values = format!("{metric} {} → {} ({change})", micros(o), micros(n));
    if o == n {
        return Some(row.judged_as(Status::Same, format!("{metric} unchanged")));
    }
    let up = n as f64 > o as f64 * (1.0 + t / 100.0);
    let down = (n as f64) < o as f64 * (1.0 - t / 100.0);
    if !up && !down {
        let why = format!("{values}: within the {t}% allowed");
        return Some(row.judged_as(Status::WithinNoise, why));
    }
    let beyond = match (row.old_ci, row.new_ci) {
        (Some(oc), Some(nc)) => match apart(oc, nc, up) {
            Ok(()) => format!("beyond noise: 95% intervals apart, OLD {} and NEW {}", interval(oc), interval(nc)),
            Err(why) => return Some(row.judged_as(Status::WithinNoise, format!("{values}, but {why}"))),
        },
        _ if p == Percentile::Max => "the max has no confidence interval (unverified)".to_string(),
        _ => "no histograms to bound it (unverified)".to_string(),
    };
    let status = match (up, judged) {
        (true, true) => Status::Regressed,
        (false, true) => Status::Improved,
        (true, false) => Status::Worse,
        (false, false) => Status::Better,
    };
    let side = if up { "over" } else { "beyond" };
    Some(row.judged_as(status, format!("{values}, {side} the {t}% allowed; {beyond}")))
}

/// Whether NEW's interval lies wholly above OLD's (`up`) or below it; else why not.
fn apart(old: Interval, new: Interval, up: bool) -> Result<(), String> {
    let (low, high, lower, higher) =
        if up { (new.low, old.high, "NEW", "OLD") } else { (old.low, new.high, "OLD", "NEW") };
    match (low, high) {
        (Some(low), Some(high)) if low > high => Ok(()),
        (Some(_), Some(_)) => {
            Err(format!("the 95% intervals overlap (OLD {}, NEW {}): within noise", interval(old), interval(new)))
        }
        (None, _) => Err(format!("too few samples in {lower} to bound it below: within noise")),
        (_, None) => Err(format!("too few samples in {higher} to bound it above: within noise")),
    }
}
