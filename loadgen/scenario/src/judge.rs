//! Judging a scenario run over its report document: each check evaluated into the
//! engine's [`Check`] (a metric not measured makes it "no data", and the run invalid),
//! the verdict written in (`verdict`, `checks`, `invalid_because`), and the findings
//! drawn from the report: failed checks, checks without data, timeline events that
//! failed or were applied, seconds with drops, refusals, the target's own lines about
//! workers that exited, a saturated generator. Most severe first.
//!
//! What it does not do: measure, read files or print.

use loadgen_engine::report::{Check, Verdict};
use serde_json::{Value, json};

use crate::check::{self, Outcome};

/// Evaluates one scenario check over the report (a check of a phase over that
/// phase's entry of `phases`).
pub fn check(c: &check::Check, report: &Value) -> Check {
    let judged = match c.phase.as_deref() {
        None => judged(c, report),
        Some(phase) => match phase_view(report, phase) {
            Some(view) => judged(c, &view).in_phase(phase),
            None => {
                Check::no_data(&c.name, &c.expr, format!("the run never reached phase \"{phase}\"")).in_phase(phase)
            }
        },
    };
    judged.proving(c.defence.as_deref())
}

/// The part of `report` a check of `phase` reads: the phase's own sections, and the
/// run's `config`.
fn phase_view(report: &Value, phase: &str) -> Option<Value> {
    let entry = report["phases"].as_array()?.iter().find(|p| p["name"] == phase)?;
    let mut view = entry.clone();
    view["config"] = report["config"].clone();
    Some(view)
}

/// Why the run must stop now: the first check marked `abort` that fails (with data)
/// on the live report of second `second` of the run. A check is judged from its
/// `abort_from` on, a check of a phase once that phase has begun.
pub fn abort(checks: &[check::Check], live: &Value, second: u64) -> Option<Aborted> {
    checks.iter().filter(|c| c.abort_from.is_some_and(|from| second >= from.as_secs())).find_map(|c| {
        let view;
        let doc = match c.phase.as_deref() {
            Some(phase) => {
                view = phase_view(live, phase)?;
                &view
            }
            None => live,
        };
        match c.evaluate(doc) {
            Outcome::Fail(v) => Some(Aborted {
                check: c.name.clone(),
                at_s: second,
                observed: v,
                detail: format!(
                    "{}: observed {} in second {second}, expected {}; the run was stopped there",
                    c.name,
                    num(v),
                    c.expr
                ),
            }),
            Outcome::Pass(_) | Outcome::NoData(_) => None,
        }
    })
}

/// A check that stopped the run (the report's `aborted`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Aborted {
    /// The check's name.
    pub check: String,
    /// The second whose figures failed it.
    pub at_s: u64,
    /// Its left-hand side then.
    pub observed: f64,
    /// What failed.
    pub detail: String,
}

/// The checks of a run that `aborted` stopped: that check failed as it was seen when
/// it stopped the run, the others judged over the report as they are.
pub fn checks_after_abort(checks: &[check::Check], report: &Value, aborted: Option<&Aborted>) -> Vec<Check> {
    checks
        .iter()
        .map(|c| match aborted.filter(|a| a.check == c.name) {
            Some(a) => {
                let judged = Check::judged(&c.name, &c.expr, false, a.observed, Some(a.detail.clone()))
                    .proving(c.defence.as_deref());
                match c.phase.as_deref() {
                    Some(p) => judged.in_phase(p),
                    None => judged,
                }
            }
            None => check(c, report),
        })
        .collect()
}

fn judged(c: &check::Check, report: &Value) -> Check {
    match c.evaluate(report) {
        Outcome::Pass(v) => Check::judged(&c.name, &c.expr, true, v, None),
        Outcome::Fail(v) => Check::judged(
            &c.name,
            &c.expr,
            false,
            v,
            Some(format!("{}: observed {}, expected {}", c.name, num(v), c.expr)),
        ),
        Outcome::NoData(why) => Check::no_data(&c.name, &c.expr, why),
    }
}

/// Writes the verdict into the report: `verdict`, `checks`, `invalid_because`.
pub fn write_verdict(report: &mut Value, v: &Verdict) {
    let Ok(Value::Object(judged)) = serde_json::to_value(v) else { return };
    if let Some(doc) = report.as_object_mut() {
        doc.remove("invalid_because");
        doc.extend(judged);
    }
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v:.3}") }
}

fn finding(severity: &str, title: String, evidence: String, span: Option<(f64, f64)>) -> Value {
    let mut f = json!({ "severity": severity, "title": title, "evidence": evidence });
    if let Some((from, to)) = span {
        f["from_s"] = json!(from);
        f["to_s"] = json!(to);
    }
    f
}

/// The findings of a judged report; `target_log`: the embedded target's stderr lines
/// with their second of the run.
pub fn findings(report: &Value, target_log: &[(f64, String)]) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(a) = report.get("aborted").filter(|a| a.is_object()) {
        let at = a["at_s"].as_f64();
        out.push(finding(
            "error",
            format!("the run was stopped by check \"{}\"", a["check"].as_str().unwrap_or("?")),
            a["detail"].as_str().unwrap_or("").to_string(),
            at.map(|s| (s, s + 1.0)),
        ));
    }
    for c in report["checks"].as_array().into_iter().flatten() {
        let name = c["name"].as_str().unwrap_or("?");
        let detail = c["detail"].as_str().unwrap_or("").to_string();
        let defence = c["defence"].as_str();
        if c["observed"].is_null() {
            out.push(finding("warning", format!("check without data: {name}"), detail, None));
        } else if c["passed"] == false {
            let title = defence.map_or_else(|| format!("check failed: {name}"), |d| format!("defence missing: {d}"));
            out.push(finding("error", title, detail, None));
        } else if let Some(d) = defence {
            let evidence = format!(
                "{name}: observed {}, as {} expects",
                num(c["observed"].as_f64().unwrap_or(0.0)),
                c["expr"].as_str().unwrap_or("?")
            );
            out.push(finding("info", format!("defence held: {d}"), evidence, None));
        }
    }
    for why in report["invalid_because"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        if !why.starts_with("check ") {
            out.push(finding(
                "warning",
                "the generator was saturated: its numbers are partly loadgen's".into(),
                why.into(),
                None,
            ));
        }
    }
    for e in report["faults"].as_array().into_iter().flatten() {
        let what = format!("{} {}", e["action"].as_str().unwrap_or("?"), e["detail"].as_str().unwrap_or(""));
        let outcome = e["outcome"].as_str().unwrap_or("").to_string();
        let at = e["applied_s"].as_f64();
        if e["ok"] == true {
            out.push(finding("info", format!("timeline: {what}"), outcome, at.map(|a| (a, a))));
        } else {
            out.push(finding(
                "warning",
                format!("timeline event not carried out: {what}"),
                outcome,
                at.map(|a| (a, a)),
            ));
        }
    }
    drops(report, &mut out);
    if let Some(refused) = report["connections"]["refused"].as_object() {
        let parts: Vec<String> =
            refused.iter().map(|(status, r)| format!("HTTP {status} × {}", r["count"].as_u64().unwrap_or(0))).collect();
        out.push(finding("info", "upgrades refused by the target".into(), parts.join(", "), None));
    }
    for (at, line) in target_log {
        if line.contains(" exited") || line.contains("died") {
            out.push(finding(
                "warning",
                format!("target: {line}"),
                format!("the target's stderr at {at:.1} s"),
                Some((*at, *at)),
            ));
        }
    }
    let rank = |f: &Value| match f["severity"].as_str() {
        Some("error") => 0,
        Some("warning") => 1,
        _ => 2,
    };
    out.sort_by(|a, b| {
        rank(a)
            .cmp(&rank(b))
            .then(a["from_s"].as_f64().unwrap_or(-1.0).total_cmp(&b["from_s"].as_f64().unwrap_or(-1.0)))
    });
    out
}

/// One finding per run of consecutive seconds with dropped connections.
fn drops(report: &Value, out: &mut Vec<Value>) {
    let seconds: Vec<(u64, u64)> = report["timeseries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| Some((s["second"].as_u64()?, s["connections"]["dropped"].as_u64().unwrap_or(0))))
        .filter(|(_, d)| *d > 0)
        .collect();
    let causes = report["connections"]["dropped_by_cause"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "))
        .unwrap_or_default();
    let mut k = 0;
    while k < seconds.len() {
        let (from, mut total) = seconds[k];
        let mut to = from;
        while k + 1 < seconds.len() && seconds[k + 1].0 == to + 1 {
            k += 1;
            to = seconds[k].0;
            total += seconds[k].1;
        }
        k += 1;
        out.push(finding(
            "warning",
            if from == to {
                format!("{total} connections dropped in second {from}")
            } else {
                format!("{total} connections dropped in seconds {from}–{to}")
            },
            if causes.is_empty() {
                "see connections.dropped_by_cause".into()
            } else {
                format!("over the run, by cause: {causes}")
            },
            Some((from as f64, (to + 1) as f64)),
        ));
    }
}

#[cfg(test)]
mod tests {
    use loadgen_engine::stats::RunStats;

    use super::*;

    #[test]
    fn checks_are_judged_and_unmeasured_ones_make_the_run_invalid() {
        let report = json!({ "messages": { "lost": 3 }, "connections": { "attempted": 2, "failed": 0 } });
        let lost = check(&check::Check::parse(Some("nothing lost"), "messages.lost == 0").unwrap(), &report);
        assert!(!lost.passed && lost.observed == Some(3.0));
        assert_eq!(lost.detail.as_deref(), Some("nothing lost: observed 3, expected messages.lost == 0"));
        let failed = check(&check::Check::parse(None, "connections.failed == 0").unwrap(), &report);
        assert!(failed.passed);
        let p99 = check(&check::Check::parse(None, "latency_us.delivery.p99 < 250ms").unwrap(), &report);
        assert_eq!((p99.passed, p99.observed), (false, None));
        let v = Verdict::new(&RunStats::default(), vec![failed.clone(), p99]);
        assert_eq!(v.outcome, loadgen_engine::report::Outcome::Invalid, "no data proves nothing");
        let v = Verdict::new(&RunStats::default(), vec![failed, lost]);
        assert_eq!(v.outcome, loadgen_engine::report::Outcome::Fail);
        let mut doc = json!({ "verdict": "pass", "checks": [], "invalid_because": ["old"] });
        write_verdict(&mut doc, &v);
        assert_eq!(doc["verdict"], "fail");
        assert_eq!(doc["checks"][1]["name"], "nothing lost");
        assert!(doc.get("invalid_because").is_none());
    }

    #[test]
    fn findings_come_most_severe_first_with_their_seconds() {
        let report = json!({
            "checks": [
                { "name": "nothing lost", "expr": "messages.lost == 0", "passed": false, "observed": 3.0, "phase": "run", "detail": "observed 3" },
                { "name": "ok", "expr": "x == 0", "passed": true, "observed": 0.0, "phase": "run" },
            ],
            "faults": [{ "at_s": 5.0, "applied_s": 5.01, "action": "kill_worker", "detail": "worker 0", "ok": true, "outcome": "200 {}" }],
            "connections": { "dropped_by_cause": { "eof": 7 }, "refused": { "401": { "count": 2 } } },
            "timeseries": [
                { "second": 4, "connections": {} },
                { "second": 5, "connections": { "dropped": 4 } },
                { "second": 6, "connections": { "dropped": 3 } },
                { "second": 9, "connections": {} },
            ],
        });
        let log = [(5.02, "worker 0 (pid 42) exited: exit code 70; restarting".to_string())];
        let f = findings(&report, &log);
        let titles: Vec<&str> = f.iter().map(|f| f["title"].as_str().unwrap()).collect();
        assert_eq!(
            titles,
            [
                "check failed: nothing lost",
                "7 connections dropped in seconds 5–6",
                "target: worker 0 (pid 42) exited: exit code 70; restarting",
                "upgrades refused by the target",
                "timeline: kill_worker worker 0",
            ]
        );
        assert_eq!((f[1]["from_s"].as_f64(), f[1]["to_s"].as_f64()), (Some(5.0), Some(7.0)));
        assert_eq!(f[1]["evidence"], "over the run, by cause: eof 7");
        assert_eq!(f[3]["evidence"], "HTTP 401 × 2");
    }
}
