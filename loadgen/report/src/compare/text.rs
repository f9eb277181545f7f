//! The terminal form of a comparison: the regressions first, one line each saying why,
//! then an aligned table (metric, OLD, NEW, change, 95% CI, status) by section, the
//! notes, and a closing line. Also the number formats the other renderings share. It
//! formats rows; it judges nothing.

use std::fmt::Write as _;

use super::{Comparison, Figure, Row, RunInfo, Section, Status};
use crate::buckets::Interval;

/// A latency: µs below 1 ms, then ms, then s, three significant digits.
pub(super) fn micros(us: u64) -> String {
    let v = us as f64;
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{} ms", significant(v / 1e3))
    } else {
        format!("{} s", significant(v / 1e6))
    }
}

/// Three significant digits (whole numbers from 100 up).
fn significant(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A count with thousands separators: `50,000`.
pub(super) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A number: separated whole from 100 up, three significant digits below.
fn amount(v: f64) -> String {
    if v >= 100.0 {
        count(v.round() as u64)
    } else if v == 0.0 {
        "0".into()
    } else {
        significant(v)
    }
}

/// A rate: `498/s`, `12.3/s`.
pub(super) fn rate(v: f64) -> String {
    format!("{}/s", amount(v))
}

/// Errors per million messages: `19,368/M`.
pub(super) fn per_million(v: f64) -> String {
    format!("{}/M", amount(v))
}

/// A change in percent with its sign: `+12.3%`, `-5.0%`, `+27135%`.
pub(super) fn signed_pct(v: f64) -> String {
    let sign = if v >= 0.0 { "+" } else { "-" };
    let m = v.abs();
    if m >= 1_000.0 { format!("{sign}{m:.0}%") } else { format!("{sign}{m:.1}%") }
}

/// A confidence interval: `340 µs–380 µs`, `≥340 µs` (too few samples above),
/// `unbounded`.
pub(super) fn interval(i: Interval) -> String {
    match (i.low, i.high) {
        (Some(l), Some(h)) => format!("{}–{}", micros(l), micros(h)),
        (Some(l), None) => format!("≥{}", micros(l)),
        (None, Some(h)) => format!("≤{}", micros(h)),
        (None, None) => "unbounded".into(),
    }
}

/// A row's value on one side; `—` when that run has none.
pub(super) fn figure(f: Option<&Figure>, pm: Option<f64>) -> String {
    let Some(f) = f else { return "—".into() };
    let shown = match f {
        Figure::Micros(v) => micros(*v),
        Figure::PerSecond(v) => rate(*v),
        Figure::Count(v) => count(*v),
        Figure::Word(w) => w.clone(),
    };
    match pm {
        Some(pm) => format!("{shown} ({})", per_million(pm)),
        None => shown,
    }
}

/// The change column: `+12.3%`, or empty when there is no ratio to show.
pub(super) fn change(r: &Row) -> String {
    r.change_pct.map(signed_pct).unwrap_or_default()
}

/// The interval column: `OLD → NEW` intervals of a latency row, `—` for a latency row
/// without them, empty elsewhere.
pub(super) fn confidence(r: &Row) -> String {
    match (r.old_ci, r.new_ci) {
        (Some(o), Some(n)) => format!("{} → {}", interval(o), interval(n)),
        _ if matches!(r.section, Section::Latency | Section::Generator) => "—".into(),
        _ => String::new(),
    }
}

/// The run's one-line identity: `runs/a (pass, 2.02 s, loadgen 0.1.0)`.
pub(super) fn identity(r: &RunInfo) -> String {
    let mut parts = Vec::new();
    if let Some(v) = &r.verdict {
        parts.push(v.clone());
    }
    if let Some(s) = &r.scenario {
        parts.push(format!("scenario {s}"));
    }
    if let Some(d) = r.duration_s {
        parts.push(format!("{d:.2} s"));
    }
    if let Some(v) = &r.loadgen_version {
        parts.push(format!("loadgen {v}"));
    }
    if parts.is_empty() { r.label.clone() } else { format!("{} ({})", r.label, parts.join(", ")) }
}

/// The thresholds in one line.
pub(super) fn thresholds_line(c: &Comparison) -> String {
    let t = &c.thresholds;
    let ps: Vec<&str> = t.percentiles.iter().map(|p| p.label()).collect();
    let judged = if ps.is_empty() { "no percentile".to_string() } else { ps.join(", ") };
    format!(
        "regression: latency ({judged}) up more than {}% beyond the 95% intervals; throughput down more than {}%; \
         a new error class, or an error rate up more than {} per 1M messages; pass → fail or invalid; a check that \
         held fails",
        t.max_latency_increase_pct,
        t.max_throughput_drop_pct,
        amount(t.max_error_increase_per_million)
    )
}

/// The closing line.
pub(super) fn result_line(c: &Comparison) -> String {
    match c.regressions().count() {
        0 => "result: no regression beyond the thresholds".into(),
        1 => "result: REGRESSED (1 regression)".into(),
        n => format!("result: REGRESSED ({n} regressions)"),
    }
}

pub(super) fn render(c: &Comparison) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "OLD: {}", identity(&c.old));
    let _ = writeln!(out, "NEW: {}", identity(&c.new));
    let _ = writeln!(out, "{}", thresholds_line(c));
    let regressions: Vec<&Row> = c.regressions().collect();
    if !regressions.is_empty() {
        let _ = writeln!(out, "\nregressions ({}):", regressions.len());
        for r in regressions {
            let _ = writeln!(out, "  {}", r.why);
        }
    }
    let header = ["metric", "OLD", "NEW", "change", "95% CI (OLD → NEW)", "status"].map(String::from);
    let cells: Vec<(Section, [String; 6])> = c
        .rows
        .iter()
        .map(|r| {
            let cells = [
                r.metric.clone(),
                figure(r.old.as_ref(), r.old_per_million),
                figure(r.new.as_ref(), r.new_per_million),
                change(r),
                confidence(r),
                r.status_text(),
            ];
            (r.section, cells)
        })
        .collect();
    let mut widths = header.each_ref().map(|h| h.chars().count());
    for (_, row) in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    widths[0] += 2;
    let line = |cells: &[String; 6], indent: &str| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            let w = if i == 0 { w - indent.len() } else { w };
            let pad = w.saturating_sub(cell.chars().count());
            // Numbers right-aligned, words left.
            if (1..=3).contains(&i) {
                let _ = write!(s, "{}{cell}  ", " ".repeat(pad));
            } else {
                let _ = write!(s, "{cell}{}  ", " ".repeat(pad));
            }
        }
        format!("{indent}{}", s.trim_end())
    };
    let _ = writeln!(out, "\n{}", line(&header, ""));
    let mut section = None;
    let no_errors = c.rows.iter().all(|r| r.section != Section::Errors);
    let mut errors_said = !no_errors;
    for (s, row) in &cells {
        if section != Some(*s) {
            if !errors_said && *s > Section::Errors {
                let _ = writeln!(out, "{}\n  none in either run", Section::Errors.title());
                errors_said = true;
            }
            let _ = writeln!(out, "{}", s.title());
            section = Some(*s);
        }
        let _ = writeln!(out, "{}", line(row, "  "));
    }
    if !errors_said {
        let _ = writeln!(out, "{}\n  none in either run", Section::Errors.title());
    }
    if !c.notes.is_empty() {
        let _ = writeln!(out, "\nnotes:");
        for n in &c.notes {
            let _ = writeln!(out, "  {n}");
        }
    }
    let improved = c.rows.iter().filter(|r| r.status == Status::Improved).count();
    let _ = writeln!(
        out,
        "\n{}{}",
        result_line(c),
        if improved > 0 { format!("; {improved} improved") } else { String::new() }
    );
    out
}
