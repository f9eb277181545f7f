//! The run's verdict: checks over the run's totals, and whether the measurement itself
//! is valid. A run *fails* when a check fails and is *invalid* when the generator was
//! saturated (part of its latencies are loadgen's, not the target's), whatever the
//! checks say. Without checks of its own, a run is judged by [`default_checks`]: every
//! connection established and kept until loadgen closed it, every message answered in
//! time, nothing lost. This module only judges; it measures nothing and prints nothing.

use serde::Serialize;

use crate::stats::RunStats;

/// One check and how it came out.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Check {
    /// Its name (a scenario's, or the expression).
    pub name: String,
    /// What was checked, as an expression over report fields (`messages.lost == 0`).
    pub expr: String,
    /// It held (false also when it could not be judged: `observed` absent).
    pub passed: bool,
    /// The value observed (the left-hand side); absent when a metric it needs was not
    /// measured, which makes the run invalid rather than passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<f64>,
    /// The part of the run it judges: `run` (the whole run) or a phase's name (the
    /// report's `phases`).
    pub phase: String,
    /// Why it failed, for people (absent when it passed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The defence of the target it proves (a scenario's `defence`: "forged tokens
    /// refused with 401"); its finding then says whether the defence held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub defence: Option<String>,
}

impl Check {
    /// A check that was judged: `passed` with the value `observed`.
    pub fn judged(name: &str, expr: &str, passed: bool, observed: f64, detail: Option<String>) -> Self {
        Self {
            name: name.into(),
            expr: expr.into(),
            passed,
            observed: Some(observed),
            phase: "run".into(),
            detail,
            defence: None,
        }
    }

    /// A check that could not be judged (a metric not measured): the run is invalid.
    pub fn no_data(name: &str, expr: &str, why: String) -> Self {
        Self {
            name: name.into(),
            expr: expr.into(),
            passed: false,
            observed: None,
            phase: "run".into(),
            detail: Some(why),
            defence: None,
        }
    }

    /// The same check, proving the target's defence `defence`.
    pub fn proving(mut self, defence: Option<&str>) -> Self {
        self.defence = defence.map(str::to_string);
        self
    }

    /// The same check, judging the phase `phase` rather than the whole run.
    pub fn in_phase(mut self, phase: &str) -> Self {
        self.phase = phase.into();
        self
    }
}

/// How the run came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every check held and the generator kept up.
    Pass,
    /// A check failed.
    Fail,
    /// The generator was saturated: the numbers are partly the generator's.
    Invalid,
}

/// `verdict`, `checks` and `invalid_because` of the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    /// Pass, fail or invalid (invalid wins over fail: a saturated generator may have
    /// caused the failures, and a check without data proves nothing).
    #[serde(rename = "verdict")]
    pub outcome: Outcome,
    /// The checks, in order.
    pub checks: Vec<Check>,
    /// Why the run is invalid (the saturation rules that fired, with their seconds;
    /// the checks that had no data; absent when valid).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub invalid_because: Vec<String>,
}

impl Verdict {
    /// Judges `stats` by `checks`.
    pub fn new(stats: &RunStats, checks: Vec<Check>) -> Self {
        let mut invalid_because = stats.saturation_reasons();
        for c in checks.iter().filter(|c| c.observed.is_none()) {
            invalid_because.push(format!("check \"{}\" has no data: {}", c.name, c.detail.as_deref().unwrap_or("")));
        }
        let outcome = if !invalid_because.is_empty() {
            Outcome::Invalid
        } else if checks.iter().any(|c| !c.passed) {
            Outcome::Fail
        } else {
            Outcome::Pass
        };
        Self { outcome, checks, invalid_because }
    }

    /// The failed checks' details, one line each.
    pub fn failures(&self) -> impl Iterator<Item = &str> {
        self.checks
            .iter()
            .filter(|c| !c.passed && c.observed.is_some())
            .map(|c| c.detail.as_deref().unwrap_or(c.expr.as_str()))
    }
}

fn zero(check: &str, observed: u64, detail: impl FnOnce() -> String) -> Check {
    let passed = observed == 0;
    let expr = format!("{check} == 0");
    Check::judged(&expr, &expr, passed, observed as f64, (!passed).then(detail))
}

fn by_kind<K: std::fmt::Display>(m: impl IntoIterator<Item = (K, u64)>) -> String {
    let parts: Vec<String> = m.into_iter().map(|(k, n)| format!("{k} {n}")).collect();
    if parts.is_empty() { String::new() } else { format!(" ({})", parts.join(", ")) }
}

/// The checks of a run that defines none: no connection failed or dropped, no message
/// went unanswered, late or lost. Message checks apply when messages were sent or
/// received.
pub fn default_checks(stats: &RunStats) -> Vec<Check> {
    let t = &stats.totals;
    let mut checks = Vec::new();
    if t.attempted > 0 {
        checks.push(zero("connections.failed", t.failed, || {
            let refusals = by_kind(stats.refusals.iter().map(|(status, c)| (format!("HTTP {status}"), c.count)));
            format!("{} of {} connections failed{refusals}", t.failed, t.attempted)
        }));
        checks.push(zero("connections.dropped", t.dropped, || {
            format!(
                "{} open connections were ended by the target or the network{}",
                t.dropped,
                by_kind(stats.drops.iter().map(|(k, n)| (*k, *n)))
            )
        }));
    }
    if t.messages_sent + t.messages_received > 0 {
        checks.push(zero("messages.unanswered", t.unanswered, || {
            format!("{} messages got no reply before their connection ended", t.unanswered)
        }));
        checks.push(zero("messages.late", t.late, || format!("{} replies came after the reply timeout", t.late)));
        checks.push(zero("messages.lost", t.lost, || format!("{} sequence numbers never arrived", t.lost)));
    }
    checks
}
