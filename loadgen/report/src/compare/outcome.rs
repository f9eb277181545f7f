//! The outcome rows of a comparison: the verdict (pass → fail or invalid regresses) and
//! each check whose outcome changed, matched by name and phase; notes for runs that
//! were interrupted or aborted. It reads the two documents only.

use serde_json::Value;

use super::{Figure, Row, Section, Status};

/// Appends the verdict and check rows and the notes on incomplete runs.
pub(super) fn rows(old: &Value, new: &Value, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    rows.push(verdict_row(old, new));
    check_rows(old, new, rows, notes);
    for (doc, side) in [(old, "OLD"), (new, "NEW")] {
        if let Some(check) = doc["aborted"]["check"].as_str() {
            notes.push(format!("{side} was aborted by check {check:?}: its counts cover only the part that ran"));
        } else if doc["interrupted"].as_bool() == Some(true) {
            notes.push(format!("{side} was interrupted: its counts cover only the part that ran"));
        }
    }
}

fn verdict_row(old: &Value, new: &Value) -> Row {
    let word = |doc: &Value| doc["verdict"].as_str().map(|v| Figure::Word(v.to_string()));
    let (o, n) = (old["verdict"].as_str().unwrap_or("?"), new["verdict"].as_str().unwrap_or("?"));
    let row = Row::new(Section::Verdict, "verdict", word(old), word(new));
    let reason = || {
        let failed: Vec<&str> = new["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["passed"].as_bool() == Some(false))
            .filter_map(|c| c["name"].as_str())
            .collect();
        match new["invalid_because"].as_array().and_then(|a| a.first()).and_then(Value::as_str) {
            Some(first) if n == "invalid" => format!(": {first}"),
            _ if !failed.is_empty() => format!(": failed {}", failed.join(", ")),
            _ => String::new(),
        }
    };
    match (o, n) {
        _ if o == n => row.judged_as(Status::Same, format!("verdict {o} in both")),
        ("pass", _) => row.judged_as(Status::Regressed, format!("verdict pass → {n}{}", reason())),
        (_, "pass") => row.judged_as(Status::Improved, format!("verdict {o} → pass")),
        _ => row.judged_as(Status::Changed, format!("verdict {o} → {n}{}", reason())),
    }
}

/// A check's identity (name, phase) and outcome.
struct Check<'a> {
    name: &'a str,
    phase: &'a str,
    passed: bool,
    doc: &'a Value,
}

fn checks(doc: &Value) -> Vec<Check<'_>> {
    doc["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some(Check {
                name: c["name"].as_str()?,
                phase: c["phase"].as_str().unwrap_or("run"),
                passed: c["passed"].as_bool()?,
                doc: c,
            })
        })
        .collect()
}

fn outcome(c: &Check<'_>) -> Figure {
    let word = if c.passed { "held" } else { "failed" };
    Figure::Word(match c.doc["observed"].as_f64() {
        Some(v) => format!("{word} ({v})"),
        None if !c.passed => format!("{word} (no data)"),
        None => word.to_string(),
    })
}

fn check_rows(old: &Value, new: &Value, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    let (oc, nc) = (checks(old), checks(new));
    let label = |c: &Check<'_>| {
        if c.phase == "run" { format!("check {:?}", c.name) } else { format!("check {:?} [{}]", c.name, c.phase) }
    };
    let mut same = 0;
    for o in &oc {
        match nc.iter().find(|n| n.name == o.name && n.phase == o.phase) {
            Some(n) if n.passed == o.passed => same += 1,
            Some(n) => {
                let row = Row::new(Section::Checks, label(o), Some(outcome(o)), Some(outcome(n)));
                let detail = n.doc["detail"].as_str().map(|d| format!(": {d}")).unwrap_or_default();
                rows.push(if n.passed {
                    row.judged_as(Status::Improved, format!("{} failed in OLD, holds in NEW", label(o)))
                } else {
                    row.judged_as(Status::Regressed, format!("{} held in OLD, fails in NEW{detail}", label(o)))
                });
            }
            None => {
                let mut row = Row::new(Section::Checks, label(o), Some(outcome(o)), None);
                row.judged = false;
                rows.push(row.judged_as(Status::OnlyOld, format!("{} only in OLD", label(o))));
            }
        }
    }
    for n in nc.iter().filter(|n| !oc.iter().any(|o| o.name == n.name && o.phase == n.phase)) {
        let mut row = Row::new(Section::Checks, label(n), None, Some(outcome(n)));
        row.judged = false;
        rows.push(row.judged_as(Status::OnlyNew, format!("{} only in NEW", label(n))));
    }
    if same > 0 {
        let s = if same == 1 { "" } else { "s" };
        notes.push(format!("{same} check{s} came out the same in both runs"));
    }
}
