//! Judgement of synthetic reports built here: histograms of known distributions (a
//! shift of 5% in 100 samples is noise, of 30% in 100,000 a regression), verdicts,
//! checks, error classes, throughput, missing histograms, saturation, bad documents and
//! the thresholds' parsers.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::buckets::Buckets;

/// `n` samples of an exponential distribution (mean `mean_us`, plus 100 µs), at their
/// quantiles (i + ½)/n, times `scale`, rounded up to three significant digits as the
/// engine's HdrHistogram keeps them.
pub(super) fn exponential(n: u64, mean_us: f64, scale: f64) -> Buckets {
    let mut counts: BTreeMap<u64, u64> = BTreeMap::new();
    for i in 0..n {
        let q = (i as f64 + 0.5) / n as f64;
        let v = ((100.0 - mean_us * (1.0 - q).ln()) * scale).ceil() as u64;
        let digits = (v as f64).log10().floor() as i32;
        let unit = 10f64.powi((digits - 2).max(0)) as u64;
        *counts.entry(v.div_ceil(unit) * unit).or_default() += 1;
    }
    Buckets::from_pairs(counts).unwrap()
}

fn percentiles(b: &Buckets) -> Value {
    json!({
        "count": b.count(), "p50": b.quantile(0.5), "p90": b.quantile(0.9), "p99": b.quantile(0.99),
        "p999": b.quantile(0.999), "max": b.max(),
    })
}

fn histogram(b: &Buckets) -> Value {
    json!({"count": b.count(), "buckets": b.pairs().iter().map(|&(v, c)| json!([v, c])).collect::<Vec<_>>()})
}

/// A valid report of an echo run whose message round trips are `rtt`.
pub(super) fn report(rtt: &Buckets) -> Value {
    let n = rtt.count();
    json!({
        "schema_version": 3, "loadgen_version": "0.1.0", "started_unix_s": 1_800_000_000u64, "duration_s": 10.0,
        "interrupted": false, "verdict": "pass",
        "config": {"connections": 100, "traffic": "Echo { message_size: 64, rate: Total(500.0) }"},
        "plan": {},
        "generator": {"saturated": false, "io_uring": "io_uring setup flags: NONE"},
        "connections": {"attempted": 100, "established": 100, "failed": 0, "dropped": 0, "open_at_end": 100,
                        "peak_open": 100},
        "messages": {"sent": n, "received": n, "answered": n, "late": 0, "unanswered": 0, "not_sent": 0, "lost": 0,
                     "duplicated": 0, "reordered": 0, "pushes_received": 0, "reply_timeouts": 0},
        "latency_us": {"message_rtt": percentiles(rtt)},
        "histograms": {"message_rtt": histogram(rtt)},
        "checks": [{"name": "connections.failed == 0", "expr": "connections.failed == 0", "passed": true,
                    "observed": 0.0, "phase": "run"}],
    })
}

fn row<'a>(c: &'a Comparison, metric: &str) -> &'a Row {
    c.rows.iter().find(|r| r.metric == metric).unwrap_or_else(|| panic!("no row {metric}: {:#?}", c.rows))
}

fn judge(old: &Value, new: &Value) -> Comparison {
    compare(old, new, &Thresholds::default()).unwrap()
}

#[test]
fn the_synthetic_distribution_is_what_it_claims() {
    let b = exponential(100_000, 1_000.0, 1.0);
    assert_eq!(b.count(), 100_000);
    // Exponential: median = mean·ln 2, p99 = mean·ln 100 (plus the 100 µs offset).
    let p50 = b.quantile(0.5).unwrap() as f64;
    let p99 = b.quantile(0.99).unwrap() as f64;
    assert!((p50 - 793.0).abs() < 3.0, "{p50}");
    assert!((p99 - 4705.0).abs() < 15.0, "{p99}");
}

#[test]
fn a_5_percent_shift_in_100_samples_is_noise() {
    let old = report(&exponential(100, 1_000.0, 1.0));
    let new = report(&exponential(100, 1_000.0, 1.05));
    let c = judge(&old, &new);
    assert!(!c.regressed(), "{}", c.text());
    // Even when any increase above 1% counts, the intervals of 100 samples overlap.
    let strict = Thresholds { max_latency_increase_pct: 1.0, ..Thresholds::default() };
    let c = compare(&old, &new, &strict).unwrap();
    assert!(!c.regressed(), "{}", c.text());
    let p50 = row(&c, "message_rtt p50");
    assert_eq!(p50.status, Status::WithinNoise);
    assert!(p50.why.contains("intervals overlap"), "{}", p50.why);
    assert!(!p50.unverified);
    let p99 = row(&c, "message_rtt p99");
    assert_eq!(p99.status, Status::WithinNoise);
    assert!(p99.why.contains("too few samples"), "{}", p99.why);
    assert_eq!(p99.new_ci.unwrap().high, None, "p99 of 100 samples cannot be bounded above");
}

#[test]
fn a_30_percent_shift_in_100k_samples_regresses_each_judged_percentile() {
    let old = report(&exponential(100_000, 1_000.0, 1.0));
    let new = report(&exponential(100_000, 1_000.0, 1.3));
    let c = judge(&old, &new);
    assert!(c.regressed());
    for p in ["p50", "p99", "p99.9"] {
        let r = row(&c, &format!("message_rtt {p}"));
        assert_eq!(r.status, Status::Regressed, "{p}: {}", r.why);
        assert!(r.judged && !r.unverified && !r.untrusted);
        let (o, n) = (r.old_ci.unwrap(), r.new_ci.unwrap());
        assert!(n.low.unwrap() > o.high.unwrap(), "{p}: {o:?} {n:?}");
        assert!((r.change_pct.unwrap() - 30.0).abs() < 1.5, "{p}: {:?}", r.change_pct);
        assert!(r.why.starts_with(&format!("message_rtt {p} ")) && r.why.contains("beyond noise"), "{}", r.why);
    }
    // p90 is shown but not judged by default; the max has no interval.
    assert_eq!(row(&c, "message_rtt p90").status, Status::Worse);
    assert!(row(&c, "message_rtt max").unverified);
    assert_eq!(c.regressions().count(), 3, "{}", c.text());
    // Only p90 judged: that one regresses instead.
    let only_p90 = Thresholds { percentiles: vec![Percentile::P90], ..Thresholds::default() };
    let c = compare(&old, &new, &only_p90).unwrap();
    let regressed: Vec<&str> = c.regressions().map(|r| r.metric.as_str()).collect();
    assert_eq!(regressed, ["message_rtt p90"]);
    // Beyond noise but under a 50% threshold: not a regression.
    let loose = Thresholds { max_latency_increase_pct: 50.0, ..Thresholds::default() };
    assert!(!compare(&old, &new, &loose).unwrap().regressed());
}

#[test]
fn an_improvement_is_the_mirror_image() {
    let old = report(&exponential(100_000, 1_000.0, 1.3));
    let new = report(&exponential(100_000, 1_000.0, 1.0));
    let c = judge(&old, &new);
    assert!(!c.regressed(), "{}", c.text());
    assert_eq!(row(&c, "message_rtt p99").status, Status::Improved);
    let same = judge(&old, &old);
    assert!(!same.regressed());
    assert!(same.rows.iter().filter(|r| r.section == Section::Latency).all(|r| r.status == Status::Same));
}

#[test]
fn without_histograms_latency_is_judged_on_values_and_marked_unverified() {
    let old = report(&exponential(100, 1_000.0, 1.0));
    let mut new = report(&exponential(100, 1_000.0, 1.3));
    // With histograms, even 30% in 100 samples is not shown beyond noise.
    let bounded = judge(&old, &new);
    assert!(!bounded.regressed(), "{}", bounded.text());
    new.as_object_mut().unwrap().remove("histograms");
    let c = judge(&old, &new);
    let p99 = row(&c, "message_rtt p99");
    assert_eq!(p99.status, Status::Regressed);
    assert!(p99.unverified && p99.old_ci.is_none() && p99.new_ci.is_none());
    assert_eq!(p99.status_text(), "REGRESSED (unverified)");
    assert!(p99.why.contains("no histograms"), "{}", p99.why);
    assert!(c.notes.iter().any(|n| n.starts_with("NEW has no histograms")), "{:?}", c.notes);
    assert!(c.text().contains("REGRESSED (unverified)"));
}

#[test]
fn a_saturated_new_run_marks_its_latencies_untrusted() {
    let old = report(&exponential(1_000, 1_000.0, 1.0));
    let mut new = old.clone();
    new["generator"]["saturated"] = json!(true);
    new["generator"]["saturated_seconds"] = json!([2, 3]);
    new["verdict"] = json!("invalid");
    new["invalid_because"] = json!(["schedule_lag: p99 above 1000 µs in 2 of 10 s"]);
    let c = judge(&old, &new);
    assert!(c.rows.iter().filter(|r| r.section == Section::Latency).all(|r| r.untrusted));
    assert!(c.notes.iter().any(|n| n.contains("NEW's generator was saturated in 2 s")), "{:?}", c.notes);
    let v = row(&c, "verdict");
    assert_eq!(v.status, Status::Regressed);
    assert_eq!(v.why, "verdict pass → invalid: schedule_lag: p99 above 1000 µs in 2 of 10 s");
}

#[test]
fn verdicts_and_checks_that_changed() {
    let old = report(&exponential(1_000, 1_000.0, 1.0));
    let mut failed = old.clone();
    failed["verdict"] = json!("fail");
    failed["checks"][0]["passed"] = json!(false);
    failed["checks"][0]["observed"] = json!(3.0);
    failed["checks"][0]["detail"] = json!("3 of 100 connections failed");
    let c = judge(&old, &failed);
    assert_eq!(row(&c, "verdict").status, Status::Regressed);
    assert_eq!(row(&c, "verdict").why, "verdict pass → fail: failed connections.failed == 0");
    let check = row(&c, "check \"connections.failed == 0\"");
    assert_eq!(check.status, Status::Regressed);
    assert_eq!(check.new, Some(Figure::Word("failed (3)".into())));
    assert!(check.why.ends_with("fails in NEW: 3 of 100 connections failed"), "{}", check.why);
    let back = judge(&failed, &old);
    assert!(!back.regressed());
    assert_eq!(row(&back, "verdict").status, Status::Improved);
    let mut invalid = failed.clone();
    invalid["verdict"] = json!("invalid");
    let sideways = judge(&failed, &invalid);
    assert_eq!(row(&sideways, "verdict").status, Status::Changed);
    assert!(!sideways.regressed(), "fail → invalid is not pass → fail");
    // A check only NEW has is shown, not judged (the verdict judges it).
    let mut extra = old.clone();
    extra["checks"].as_array_mut().unwrap().push(json!({"name": "x", "expr": "x", "passed": true, "phase": "hold"}));
    let c = judge(&old, &extra);
    assert_eq!(row(&c, "check \"x\" [hold]").status, Status::OnlyNew);
    assert!(!c.regressed());
}

#[test]
fn a_new_error_class_regresses_and_rates_are_per_million_messages() {
    let old = report(&exponential(10_000, 1_000.0, 1.0));
    let mut new = old.clone();
    new["errors"] = json!({"connect_refused": 3});
    new["connections"]["failed"] = json!(3);
    let c = judge(&old, &new);
    let r = row(&c, "errors.connect_refused");
    assert_eq!(r.status, Status::Regressed);
    assert_eq!((r.old.clone(), r.new.clone()), (Some(Figure::Count(0)), Some(Figure::Count(3))));
    assert_eq!(r.new_per_million, Some(300.0), "3 in 10,000 messages");
    assert!(r.why.contains("a new error class"), "{}", r.why);
    assert_eq!(row(&c, "connections.failed").status, Status::Regressed);
    // Both have the class: the rate decides, against --max-error-increase.
    let mut more = new.clone();
    more["errors"] = json!({"connect_refused": 4});
    more["connections"]["failed"] = json!(4);
    let c = judge(&new, &more);
    assert_eq!(row(&c, "errors.connect_refused").status, Status::Regressed, "any increase by default");
    let lenient = Thresholds { max_error_increase_per_million: 150.0, ..Thresholds::default() };
    let c = compare(&new, &more, &lenient).unwrap();
    assert_eq!(row(&c, "errors.connect_refused").status, Status::WithinNoise, "+100/M of 150 allowed");
    assert_eq!(row(&c, "errors.connect_refused").status_text(), "within threshold");
    assert!(!c.regressed());
    let c = judge(&new, &old);
    assert_eq!(row(&c, "errors.connect_refused").status, Status::Improved);
    assert!(!c.regressed());
    // No error in either run: no error rows, and the text says so.
    let c = judge(&old, &old);
    assert!(c.rows.iter().all(|r| r.section != Section::Errors));
    assert!(c.text().contains("errors (count, per 1M messages)\n  none in either run"), "{}", c.text());
}

#[test]
fn throughput_regresses_when_it_drops_beyond_the_threshold() {
    let old = report(&exponential(10_000, 1_000.0, 1.0));
    let mut new = old.clone();
    new["messages"]["received"] = json!(9_000);
    let c = judge(&old, &new);
    let r = row(&c, "messages received/s");
    assert_eq!((r.old.clone(), r.new.clone()), (Some(Figure::PerSecond(1_000.0)), Some(Figure::PerSecond(900.0))));
    assert_eq!(r.status, Status::Regressed, "{}", r.why);
    new["messages"]["received"] = json!(9_700);
    assert_eq!(row(&judge(&old, &new), "messages received/s").status, Status::WithinNoise);
    // Different lengths are noted.
    new["duration_s"] = json!(5.0);
    let c = judge(&old, &new);
    assert!(c.notes.iter().any(|n| n.starts_with("the runs lasted 10.00 s (OLD) and 5.00 s (NEW)")), "{:?}", c.notes);
    // No duration: no rate, never a zero in its place.
    new.as_object_mut().unwrap().remove("duration_s");
    let c = judge(&old, &new);
    let r = row(&c, "messages received/s");
    assert_eq!((r.new.clone(), r.status), (None, Status::OnlyOld));
    let text = c.text();
    let line = text.lines().find(|l| l.trim_start().starts_with("messages received/s")).unwrap();
    assert!(line.contains("1,000/s") && line.contains(" — ") && line.ends_with("only in OLD"), "{line}");
}

#[test]
fn documents_that_are_not_reports_are_refused_with_the_reason() {
    let good = report(&exponential(100, 1_000.0, 1.0));
    let t = Thresholds::default();
    let err = compare(&json!({"hello": 1}), &good, &t).unwrap_err();
    assert_eq!(err, CompareError::NotAReport { side: Side::Old, why: "no schema_version".into() });
    assert!(err.to_string().starts_with("OLD is not a loadgen run report: no schema_version (give"), "{err}");
    assert!(matches!(compare(&good, &json!([1, 2]), &t), Err(CompareError::NotAReport { side: Side::New, .. })));
    let mut v2 = good.clone();
    v2["schema_version"] = json!(2);
    let err = compare(&good, &v2, &t).unwrap_err();
    assert_eq!(err, CompareError::Schema { side: Side::New, found: 2 });
    assert!(err.to_string().contains("schema_version 2; this loadgen reads version 3"), "{err}");
    let check = json!({"schema_version": 1, "target": "ws://h/", "checks": []});
    let err = compare(&check, &good, &t).unwrap_err().to_string();
    assert!(err.contains("a `loadgen check` report"), "{err}");
    let mut damaged = good.clone();
    damaged["histograms"]["message_rtt"]["count"] = json!(7);
    let err = compare(&good, &damaged, &t).unwrap_err();
    assert!(matches!(&err, CompareError::Histogram { side: Side::New, metric, .. } if metric == "message_rtt"));
}

#[test]
fn the_schema_version_is_the_one_of_the_published_schema() {
    let schema: Value = serde_json::from_str(include_str!("../../../../docs/report.schema.json")).unwrap();
    assert_eq!(schema["properties"]["schema_version"]["const"], json!(SCHEMA_VERSION));
}

#[test]
fn thresholds_parse_and_refuse_with_an_example() {
    assert_eq!(parse_latency_increase("10"), Ok(10.0));
    assert_eq!(parse_latency_increase("2.5%"), Ok(2.5));
    assert_eq!(parse_latency_increase(" 250 "), Ok(250.0), "an increase may exceed 100%");
    for bad in ["-1", "abc", "NaN", "inf", "", "%"] {
        let e = parse_latency_increase(bad).unwrap_err();
        assert_eq!(e, "expected a percentage of at least 0, such as 10 or 2.5%", "{bad:?}");
    }
    assert_eq!(parse_throughput_drop("5%"), Ok(5.0));
    assert_eq!(parse_throughput_drop("101").unwrap_err(), "expected a percentage from 0 to 100, such as 5 or 2.5%");
    assert_eq!(parse_per_million("0"), Ok(0.0));
    assert_eq!(parse_per_million("50.5"), Ok(50.5));
    assert!(parse_per_million("-3").unwrap_err().contains("such as 0 or 50"));
    assert_eq!(parse_percentiles("max,p99.9, P50,p50"), Ok(vec![Percentile::P50, Percentile::P999, Percentile::Max]));
    assert_eq!(parse_percentiles("p999"), Ok(vec![Percentile::P999]));
    let e = parse_percentiles("p50,p95").unwrap_err();
    assert!(e.starts_with("\"p95\" is not a percentile") && e.ends_with("such as p50,p99,p999"), "{e}");
    assert!(parse_percentiles("").is_err());
    let d = Thresholds::default();
    assert_eq!(
        (d.max_latency_increase_pct, d.max_throughput_drop_pct, d.max_error_increase_per_million),
        (10.0, 5.0, 0.0)
    );
    assert_eq!(d.percentiles, [Percentile::P50, Percentile::P99, Percentile::P999]);
}
