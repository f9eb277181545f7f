//! The run's phases: how connections arrive (`load.connect_rate`, or `load.phases`,
//! each at a rate or ramping to a count), and the named windows the report keeps apart
//! (report.json `phases`) so that a check can judge one phase alone: `ramp` (one
//! connect rate) or each of `load.phases` by name, then `hold`.
//!
//! What it does not do: count anything (the engine's collector does, over the whole
//! seconds each window covers) or judge (`judge`).

use std::time::Duration;

use loadgen_engine::stats::Window;

use crate::check::Check;
use crate::model::Load;

/// Names a phase may not take: `run` is the whole run, `hold` the hold after the
/// arrivals.
const RESERVED: [&str; 2] = ["run", "hold"];

/// The report sections a check of one phase may read (besides `config`): those the
/// report keeps per phase.
pub const PHASE_SECTIONS: [&str; 4] = ["connections", "latency_us", "messages", "errors"];

/// How connections arrive, and the windows of the run.
#[derive(Debug)]
pub(crate) struct Arrivals {
    /// New connections per second (with phases: the fastest phase's).
    pub rate: f64,
    /// The phases (length, rate); empty: `rate` throughout.
    pub phases: Vec<(Duration, f64)>,
    /// The named windows: the arrivals' phases, then the hold.
    pub windows: Vec<Window>,
}

/// Reads the arrivals of `load` and lays out the run's windows.
pub(crate) fn arrivals(load: &Load) -> Result<Arrivals, String> {
    let (rate, phases, mut windows) = match (load.connect_rate, load.phases.is_empty()) {
        (Some(r), true) if r.is_finite() && r > 0.0 => {
            let ramp = Duration::from_secs_f64((f64::from(load.connections) / r).min(1e9));
            (r, Vec::new(), vec![Window { name: "ramp".into(), from: Duration::ZERO, to: ramp }])
        }
        (Some(r), true) => {
            return Err(format!("load.connect_rate: a positive number of connections per second, not {r}"));
        }
        (None, true) => return Err("load: give connect_rate (connections per second) or [[load.phases]]".into()),
        (Some(_), false) => return Err("load: connect_rate or [[load.phases]], not both".into()),
        (None, false) => phased(load)?,
    };
    let ramp_end = windows.last().map_or(Duration::ZERO, |w| w.to);
    windows.push(Window { name: "hold".into(), from: ramp_end, to: ramp_end.saturating_add(load.hold) });
    Ok(Arrivals { rate, phases, windows })
}

type Phased = (f64, Vec<(Duration, f64)>, Vec<Window>);

fn phased(load: &Load) -> Result<Phased, String> {
    let mut phases = Vec::with_capacity(load.phases.len());
    let mut windows: Vec<Window> = Vec::with_capacity(load.phases.len() + 1);
    let (mut at, mut started) = (Duration::ZERO, 0.0_f64);
    for (k, p) in load.phases.iter().enumerate() {
        let here = format!("load.phases[{k}]");
        if p.length.is_zero() {
            return Err(format!("{here}: a length above 0 (like for = \"10s\")"));
        }
        let rate = match (p.rate, p.to) {
            (Some(r), None) if r.is_finite() && (0.0..=1e9).contains(&r) => r,
            (Some(r), None) => return Err(format!("{here}.rate: 0 to 1e9 connections per second, not {r}")),
            (None, Some(to)) if f64::from(to) + 0.5 >= started => (f64::from(to) - started) / p.length.as_secs_f64(),
            (None, Some(to)) => {
                return Err(format!(
                    "{here}.to: {to} is below the {started:.0} connections started before it; a phase adds \
                     connections (rate = 0 pauses)"
                ));
            }
            (None, None) => return Err(format!("{here}: give rate (connections per second) or to (a count)")),
            (Some(_), Some(_)) => return Err(format!("{here}: rate or to, not both")),
        };
        let name = p.name.clone().unwrap_or_else(|| format!("phase{}", k + 1));
        if name.trim().is_empty() || RESERVED.contains(&name.as_str()) {
            return Err(format!(
                "{here}.name: \"{name}\" is taken (run is the whole run, hold the hold); choose another"
            ));
        }
        if windows.iter().any(|w| w.name == name) {
            return Err(format!("{here}.name: two phases are called \"{name}\"; checks tell them apart by name"));
        }
        started += rate * p.length.as_secs_f64();
        windows.push(Window { name, from: at, to: at + p.length });
        at += p.length;
        phases.push((p.length, rate));
    }
    if (started - f64::from(load.connections)).abs() >= 0.5 {
        return Err(format!(
            "load.phases open {started:.1} connections (rate × length), but load.connections is {}; make them equal",
            load.connections
        ));
    }
    let fastest = phases.iter().map(|(_, r)| *r).fold(0.0, f64::max);
    if fastest <= 0.0 {
        return Err("load.phases: at least one phase with a rate above 0".into());
    }
    Ok((fastest, phases, windows))
}

/// Sets a check's phase and live judging, validated against the run's windows.
pub(crate) fn place(
    check: &mut Check,
    phase: Option<&str>,
    abort: bool,
    abort_after: Option<Duration>,
    windows: &[Window],
) -> Result<(), String> {
    let window = match phase {
        None | Some("run") => None,
        Some(name) => {
            let Some(w) = windows.iter().find(|w| w.name == name) else {
                let names: Vec<&str> = windows.iter().map(|w| w.name.as_str()).collect();
                return Err(format!("phase: \"{name}\" is not a phase of this run; it has run, {}", names.join(", ")));
            };
            if let Some(m) = check.metrics().into_iter().find(|m| {
                let head = m.split('.').next().unwrap_or("");
                head != "config" && !PHASE_SECTIONS.contains(&head)
            }) {
                return Err(format!(
                    "expr: {m} is not kept per phase; a check of phase \"{name}\" reads {} (or config)",
                    PHASE_SECTIONS.join(", ")
                ));
            }
            check.phase = Some(name.to_string());
            Some(w)
        }
    };
    match (abort, abort_after) {
        (false, Some(_)) => return Err("abort_after: goes with abort = true".into()),
        (false, None) => {}
        (true, after) => {
            let start = window.map_or(Duration::ZERO, |w| w.from);
            check.abort_from = Some(start + after.unwrap_or(Duration::ZERO));
        }
    }
    Ok(())
}
