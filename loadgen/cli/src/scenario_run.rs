//! `loadgen run FILE`: a run from a scenario file. Reads and compiles the file (with
//! `--set` and `--target`), refuses the flags that would contradict it, starts the
//! embedded target when the scenario asks for it, mints the per-connection tokens,
//! maps the plan onto the engine's `RunConfig` (`run_plan`, the road the flags take too),
//! plays the timeline while the load runs, and judges the scenario's checks over the
//! report, which gains `scenario`, `faults` and `findings`. The target is stopped after
//! the report is written, also when the run was interrupted.

use std::process::ExitCode;
use std::time::Instant;

use loadgen_director::timeline::Endpoint;
use loadgen_director::{EmbeddedTarget, Player};
use loadgen_engine::report::{Check, Verdict};
use loadgen_engine::run::{RunConfig, RunOutcome};
use loadgen_engine::stats::{RunStats, SecondStats};
use loadgen_scenario::{Plan, TargetSpec};
use serde_json::{Value, json};

use crate::progress::OutputArgs;
use crate::run_args::RunArgs;
use crate::run_cmd::{RunHooks, execute};

/// `run` flags that combine with a scenario file (they say how loadgen runs, not what
/// the load is).
const COMBINE: [&str; 19] = [
    "scenario",
    "sets",
    "targets",
    "workers",
    "sources",
    "close_timeout",
    "ca_file",
    "insecure",
    "no_tls_resumption",
    "coalesce",
    "lag_threshold",
    "connect_lag_threshold",
    "out",
    "max_message_size",
    "progress",
    "quiet",
    "junit",
    "metrics_addr",
    "metrics_linger",
];

/// Where a refused flag's setting lives in a scenario file.
fn scenario_key(flag: &str) -> &'static str {
    match flag {
        "connections" => "load.connections (and the groups' connections)",
        "duration" => "load.hold",
        "connect_rate" => "load.connect_rate",
        "close_rate" => "load.close_rate",
        "headers" => "connection.headers",
        "handshake_timeout" => "connection.handshake_timeout",
        "reply_timeout" => "connection.reply_timeout",
        "deflate" => "connection.deflate",
        "message_size" => "connection.message_size",
        "deflate_context_takeover" => "connection.deflate_context_takeover",
        "rate" => "load.message_rate (and { do = \"pooled\" } steps)",
        "arrivals" => "load.arrivals",
        "seed" => "load.seed",
        "raw" => "a tcp:// target.url",
        "reconnect" | "reconnect_initial" | "reconnect_max" | "reconnect_limit" | "reconnect_jitter" => "[reconnect]",
        _ => "the groups' steps",
    }
}

/// The flag as typed, from its clap id.
fn flag_name(id: &str) -> String {
    match id {
        "headers" => "--header".into(),
        "on_open" => "--on-open".into(),
        other => format!("--{}", other.replace('_', "-")),
    }
}

pub fn run(args: &RunArgs, output: &OutputArgs, explicit: &[String]) -> ExitCode {
    match prepare(args, explicit) {
        Ok((config, mut hooks)) => {
            let targets = config_targets(&config);
            execute(config, &args.out, &targets, output, &mut hooks)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn config_targets(c: &RunConfig) -> Vec<String> {
    c.targets.iter().map(|t| format!("{}{}", t.host, t.path)).collect()
}

/// Reads the scenario, starts what it needs and builds the engine's configuration.
fn prepare(args: &RunArgs, explicit: &[String]) -> Result<(RunConfig, ScenarioRun), String> {
    let (plan, origin, sets) = read_plan(args, explicit)?;
    let program = std::env::current_exe().map_err(|e| format!("cannot find the loadgen binary: {e}"))?;
    let target = match &plan.target {
        TargetSpec::Embedded(spec) => Some(
            EmbeddedTarget::start(&program, spec, plan.connections, plan.token.as_ref().map(|t| t.secret.as_str()))
                .map_err(|e| e.to_string())?,
        ),
        TargetSpec::Url(_) => None,
    };
    let url = match (&plan.target, &target) {
        (TargetSpec::Embedded(spec), Some(t)) => t.url(&spec.path),
        (TargetSpec::Url(u), _) => u.clone(),
        (TargetSpec::Embedded(_), None) => unreachable!("an embedded target was started above"),
    };
    let urls: Vec<String> = std::iter::once(url.clone()).chain(plan.also.iter().cloned()).collect();
    let mut config = crate::run_plan::run_config(args, &plan, &urls)?;
    // The timeline and the target's log are timed from the run's clock.
    let clock = std::sync::Arc::new(std::sync::OnceLock::new());
    config.clock_started = Some(clock.clone());
    if let Some(token) = &plan.token {
        let now_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let tokens = loadgen_director::tokens::mint_all(token, plan.connections, now_s);
        config.tokens = Some(std::sync::Arc::from(tokens));
    }
    let addr = std::net::SocketAddr::V4(config.targets[0].addr);
    let endpoint = Endpoint {
        addr: target.as_ref().map_or(addr, EmbeddedTarget::addr),
        admin_token: target.as_ref().map(|t| t.admin_token().to_string()),
        redis: target.as_ref().and_then(EmbeddedTarget::redis),
        target_started: target.as_ref().map(EmbeddedTarget::started),
    };
    let hooks = ScenarioRun {
        plan,
        origin,
        sets,
        url,
        target,
        endpoint,
        player: None,
        clock,
        target_cpu_at_start: None,
        target_cpu_by_second: Vec::new(),
        live_config: None,
        aborted: None,
    };
    Ok((config, hooks))
}

/// The scenario file of `args` read with its `--set`s and compiled, fault specs
/// checked, after refusing the flags that contradict a file: the plan, the file's
/// name and the sets applied.
pub(crate) fn read_plan(args: &RunArgs, explicit: &[String]) -> Result<(Plan, String, Vec<String>), String> {
    if let Some(flag) = explicit.iter().find(|f| !COMBINE.contains(&f.as_str())) {
        return Err(format!(
            "{} does not combine with a scenario file: set {} in the file, or override it with --set",
            flag_name(flag),
            scenario_key(flag)
        ));
    }
    let file = args.scenario.as_ref().ok_or("no scenario file")?;
    let origin = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|e| format!("{origin}: cannot read it: {e}"))?;
    let sets = file_sets(args, explicit)?;
    let mut plan = loadgen_scenario::load_with(&text, &origin, &sets, &read_file).map_err(|e| e.to_string())?;
    if !args.targets.is_empty() {
        // The one --target replaces the file's targets, `target.also` too.
        plan.also.clear();
    }
    if let TargetSpec::Embedded(e) = &plan.target {
        for f in &e.faults {
            f.parse::<loadgen_target::Fault>().map_err(|why| format!("{origin}: target.faults: {why}"))?;
        }
    }
    for event in &plan.timeline {
        if let loadgen_scenario::Action::FaultOn(f) = &event.action {
            f.parse::<loadgen_target::Fault>().map_err(|why| format!("{origin}: timeline: {why}"))?;
        }
    }
    Ok((plan, origin, sets))
}

/// The `--set`s of a run of a file: the user's, then those of the flags that replace a
/// key of the file (`--target`: the one target; `--close-timeout`).
fn file_sets(args: &RunArgs, explicit: &[String]) -> Result<Vec<String>, String> {
    let mut sets = args.sets.clone();
    match args.targets.as_slice() {
        [] => {}
        [url] => sets.push(format!("target.url={}", toml_string(url))),
        _ => return Err("a scenario runs against one --target; give one".into()),
    }
    if explicit.iter().any(|f| f == "close_timeout") {
        let text = loadgen_scenario::model::format_duration(args.close_timeout);
        sets.push(format!("connection.close_timeout={}", toml_string(&text)));
    }
    Ok(sets)
}

/// Reads an included scenario file.
pub(crate) fn read_file(path: &std::path::Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// `text` as a TOML string.
fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The hooks of a scenario run.
struct ScenarioRun {
    plan: Plan,
    origin: String,
    sets: Vec<String>,
    url: String,
    target: Option<EmbeddedTarget>,
    endpoint: Endpoint,
    player: Option<Player>,
    /// The run's clock start, set by the engine's start gate.
    clock: std::sync::Arc<std::sync::OnceLock<Instant>>,
    /// The target's CPU seconds when the load started.
    target_cpu_at_start: Option<f64>,
    /// The target's CPU seconds at the end of each collected second (second, reading).
    target_cpu_by_second: Vec<(u64, f64)>,
    /// The report's `config`, for the live report that checks marked `abort` read;
    /// `None` when no check is.
    live_config: Option<Value>,
    /// The check that stopped the run.
    aborted: Option<loadgen_scenario::judge::Aborted>,
}

impl RunHooks for ScenarioRun {
    fn started(&mut self, config: &RunConfig) {
        if self.plan.checks.iter().any(|c| c.abort_from.is_some()) {
            self.live_config = Some(crate::run_report::config_section(config));
        }
        self.target_cpu_at_start = self.target.as_ref().and_then(EmbeddedTarget::cpu_s);
        if !self.plan.timeline.is_empty() {
            self.player = Some(Player::start(&self.plan.timeline, &self.endpoint, self.clock.clone()));
        }
    }

    fn second(&mut self, second: &SecondStats, so_far: &RunStats) -> Option<String> {
        if let Some(cpu) = self.target.as_ref().and_then(EmbeddedTarget::cpu_s) {
            self.target_cpu_by_second.push((second.second, cpu));
        }
        let config = self.live_config.as_ref().filter(|_| self.aborted.is_none())?;
        let live = crate::run_report::live_document(so_far, second.second, config);
        let aborted = loadgen_scenario::judge::abort(&self.plan.checks, &live, second.second)?;
        let why = aborted.detail.clone();
        self.aborted = Some(aborted);
        Some(why)
    }

    fn finished(&mut self, outcome: &RunOutcome, doc: &mut Value) -> Verdict {
        let applied = self.player.take().map(Player::finish).unwrap_or_default();
        let target_cpu_s = match (self.target_cpu_at_start, self.target.as_ref().and_then(EmbeddedTarget::cpu_s)) {
            (Some(a), Some(b)) if b >= a => Some(b - a),
            _ => None,
        };
        if let Some(t) = self.target.as_mut() {
            t.stop();
        }
        let log = self.target.as_ref().map(|t| t.log().lines()).unwrap_or_default();
        let target = match &self.plan.target {
            TargetSpec::Embedded(e) => format!("embedded {} ({})", e.mode, self.url),
            TargetSpec::Url(u) => u.clone(),
        };
        doc["scenario"] = json!({
            "name": self.plan.name,
            "description": self.plan.description,
            "file": self.origin,
            "sets": self.sets,
            "target": target,
        });
        if let Some(cpu) = target_cpu_s {
            doc["scenario"]["target_cpu_s"] = json!(cpu);
            // Per second: the reading at its end minus the one before (the first from
            // the start of the load); a second without a reading is null.
            let mut by_second = Vec::new();
            let mut last = self.target_cpu_at_start.unwrap_or(0.0);
            for (second, reading) in &self.target_cpu_by_second {
                while (by_second.len() as u64) < *second {
                    by_second.push(Value::Null);
                }
                by_second.push(json!((reading - last).max(0.0)));
                last = *reading;
            }
            if !by_second.is_empty() {
                doc["scenario"]["target_cpu_s_by_second"] = Value::Array(by_second);
            }
        }
        if !applied.is_empty() {
            doc["faults"] = serde_json::to_value(&applied).unwrap_or(Value::Null);
        }
        if let Some(a) = &self.aborted {
            doc["aborted"] = serde_json::to_value(a).unwrap_or(Value::Null);
        }
        let checks: Vec<Check> = if self.plan.checks.is_empty() {
            loadgen_engine::report::default_checks(&outcome.stats)
        } else {
            loadgen_scenario::judge::checks_after_abort(&self.plan.checks, doc, self.aborted.as_ref())
        };
        let verdict = Verdict::new(&outcome.stats, checks);
        loadgen_scenario::judge::write_verdict(doc, &verdict);
        // The target's lines are timed from its own start, which came before the run's.
        let offset = match (self.clock.get().copied(), &self.target) {
            (Some(run), Some(t)) => run.saturating_duration_since(t.started()).as_secs_f64(),
            _ => 0.0,
        };
        let log: Vec<(f64, String)> = log.into_iter().map(|(at, l)| ((at - offset).max(0.0), l)).collect();
        doc["findings"] = Value::Array(loadgen_scenario::judge::findings(doc, &log));
        verdict
    }

    fn own_checks(&self) -> bool {
        !self.plan.checks.is_empty()
    }

    fn own_target(&self) -> bool {
        self.target.is_some()
    }
}
