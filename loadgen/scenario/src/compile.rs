//! A read [`Scenario`] validated as a whole and compiled into a [`Plan`]: the engine's
//! programs by group, the reconnect policy, the parsed checks. Errors name the key
//! path and the fix, on one line.

use std::time::Duration;

use loadgen_engine::driver::{Program, ReconnectPolicy, Step, Traffic};
use loadgen_engine::run::Cohort;

use crate::check::Check;
use crate::model::{Scenario, StepSpec};

/// Where the run connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetSpec {
    /// A server of the user's (`ws://`, `wss://`, `http://`, `https://`).
    Url(String),
    /// The reference target, started and stopped by the run.
    Embedded,
}

/// A scenario ready to run.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Its name.
    pub name: String,
    /// What it proves.
    pub description: String,
    /// Where it connects.
    pub target: TargetSpec,
    /// Target faults on from the start (reference target).
    pub target_faults: Vec<String>,
    /// Connections opened.
    pub connections: u32,
    /// New connections per second.
    pub connect_rate: f64,
    /// Hold once all have started.
    pub hold: Duration,
    /// Closes per second at the end.
    pub close_rate: Option<f64>,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// Offer permessage-deflate.
    pub deflate: bool,
    /// Handshake deadline.
    pub handshake_timeout: Option<Duration>,
    /// Reply deadline.
    pub reply_timeout: Option<Duration>,
    /// The groups, their programs (reconnect policy included) and sizes.
    pub cohorts: Vec<Cohort>,
    /// The checks.
    pub checks: Vec<Check>,
}

/// Validates and compiles.
pub(crate) fn compile(s: &Scenario) -> Result<Plan, String> {
    if s.name.trim().is_empty() {
        return Err("name: give the scenario a name".into());
    }
    let target = match s.target.url.as_str() {
        "embedded" => TargetSpec::Embedded,
        url if ["ws://", "wss://", "http://", "https://"].iter().any(|p| url.starts_with(p)) => {
            TargetSpec::Url(url.to_string())
        }
        url => {
            return Err(format!("target.url: \"{url}\" is neither a ws://, wss://, http(s):// URL nor \"embedded\""));
        }
    };
    if !s.target.faults.is_empty() && target != TargetSpec::Embedded {
        return Err(
            "target.faults: faults switch the reference target's behaviour; use url = \"embedded\" or drop them".into(),
        );
    }
    let load = &s.load;
    if load.connections == 0 {
        return Err("load.connections: at least 1".into());
    }
    if !(load.connect_rate.is_finite() && load.connect_rate > 0.0) {
        return Err(format!(
            "load.connect_rate: a positive number of connections per second, not {}",
            load.connect_rate
        ));
    }
    if load.close_rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        return Err("load.close_rate: a positive number of closes per second".into());
    }
    if load.hold.is_zero() {
        return Err("load.hold: a hold longer than 0 (like 10s)".into());
    }
    let reconnect = match &s.reconnect {
        Some(r) if r.initial.is_zero() || r.initial > r.max => {
            return Err(
                "reconnect: initial must be above 0 and at most max (like initial = \"100ms\", max = \"5s\")".into()
            );
        }
        Some(r) => Some(ReconnectPolicy { initial: r.initial, max: r.max, limit: r.limit }),
        None => None,
    };
    // Waits and replies are bounded: by the scenario's reply timeout, else the engine's
    // default of 5 s.
    let reply = s.connection.reply_timeout.unwrap_or(DEFAULT_REPLY_TIMEOUT);
    if s.groups.is_empty() {
        return Err("groups: at least one [[groups]] with its connections and steps".into());
    }
    let mut cohorts = Vec::with_capacity(s.groups.len());
    for (k, g) in s.groups.iter().enumerate() {
        let here = format!("groups[{k}] (\"{}\")", g.name);
        if s.groups[..k].iter().any(|o| o.name == g.name) {
            return Err(format!("{here}: another group has this name; names tell groups apart in reports"));
        }
        let steps = g.steps.iter().map(|x| step(x, reply)).collect::<Vec<_>>();
        let program = Program { steps, reconnect };
        program.validate().map_err(|e| format!("{here}.steps: {e}"))?;
        cohorts.push(Cohort { name: g.name.clone(), program, connections: g.connections, ..Default::default() });
    }
    let total: u64 = s.groups.iter().map(|g| u64::from(g.connections)).sum();
    if total != u64::from(load.connections) {
        return Err(format!(
            "groups: their connections add up to {total}, but load.connections is {}; make them equal",
            load.connections
        ));
    }
    let checks = s
        .checks
        .iter()
        .enumerate()
        .map(|(k, c)| Check::parse(c.name.as_deref(), &c.expr).map_err(|e| format!("checks[{k}].expr: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Plan {
        name: s.name.clone(),
        description: s.description.clone(),
        target,
        target_faults: s.target.faults.clone(),
        connections: load.connections,
        connect_rate: load.connect_rate,
        hold: load.hold,
        close_rate: load.close_rate,
        headers: s.connection.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        deflate: s.connection.deflate,
        handshake_timeout: s.connection.handshake_timeout,
        reply_timeout: s.connection.reply_timeout,
        cohorts,
        checks,
    })
}

/// The engine's default `--reply-timeout`.
const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(5);

fn step(s: &StepSpec, reply: Duration) -> Step {
    match s {
        StepSpec::Send { text } => Step::SendText(text.clone()),
        StepSpec::WaitFor { pattern, timeout } => {
            Step::WaitFor { pattern: pattern.clone(), timeout: Some(timeout.unwrap_or(reply)) }
        }
        StepSpec::Ready => Step::Ready,
        StepSpec::Ping { every } => Step::Ping { interval: *every, timeout: None },
        StepSpec::Echo { think } => {
            Step::Traffic(Traffic::ClosedLoop { think: think.unwrap_or_default(), reply_timeout: Some(reply) })
        }
        StepSpec::Paced { every } => Step::Traffic(Traffic::Paced { interval: *every }),
        StepSpec::StopTraffic => Step::StopTraffic,
        StepSpec::Sleep { length } => Step::Sleep(*length),
        StepSpec::StopReading => Step::StopReading,
        StepSpec::ResumeReading => Step::ResumeReading,
        StepSpec::Close { code } => Step::Close { code: *code },
    }
}
