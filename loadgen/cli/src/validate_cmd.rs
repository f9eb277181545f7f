//! `loadgen validate FILE...`: reads scenario files (with `--set` overrides), checks
//! and compiles each, and prints one line per file: what it would run, or where and
//! why it cannot (exit 2 when any cannot). Runs nothing and opens no sockets.

use std::process::ExitCode;

use clap::Args;
use loadgen_scenario::TargetSpec;

pub const EXAMPLES: &str = "Examples:
  loadgen validate scenarios/*.toml
  loadgen validate scenarios/smoke.toml --set load.hold=5s --set groups.0.connections=10";

/// Flags of `loadgen validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario files (TOML).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<std::path::PathBuf>,
    /// Override a key before validating: a dotted key and a TOML value, a bare word read
    /// as a string (`--set load.hold=10s`, `--set 'target.faults=["drop-fanout=20"]'`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

pub fn run(args: &ValidateArgs) -> ExitCode {
    let mut bad_files = 0;
    for file in &args.files {
        let origin = file.display().to_string();
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {origin}: cannot read it: {e}");
                bad_files += 1;
                continue;
            }
        };
        match loadgen_scenario::load_with(&text, &origin, &args.sets, &crate::scenario_run::read_file) {
            Ok(plan) => {
                let target = match &plan.target {
                    TargetSpec::Embedded(e) if e.mode == "notify" => "the embedded reference target".to_string(),
                    TargetSpec::Embedded(e) => format!("the embedded `loadgen serve --mode {}`", e.mode),
                    TargetSpec::Url(u) => u.clone(),
                };
                let groups: Vec<String> =
                    plan.cohorts.iter().map(|c| format!("{} {}", c.connections, c.name)).collect();
                let faults: Vec<&String> = match &plan.target {
                    TargetSpec::Embedded(e) => e.faults.iter().collect(),
                    TargetSpec::Url(_) => Vec::new(),
                };
                if let Some(bad) = faults.iter().find_map(|f| f.parse::<loadgen_target::Fault>().err()) {
                    eprintln!("error: {origin}: target.faults: {bad}");
                    bad_files += 1;
                    continue;
                }
                println!(
                    "ok: {origin}: \"{}\": {} connections ({}) to {target} at {}/s, hold {:?}, {} timeline events, {} checks",
                    plan.name,
                    plan.connections,
                    groups.join(", "),
                    plan.connect_rate,
                    plan.hold,
                    plan.timeline.len(),
                    plan.checks.len()
                );
            }
            Err(e) => {
                eprintln!("error: {e}");
                bad_files += 1;
            }
        }
    }
    if bad_files > 0 { ExitCode::from(2) } else { ExitCode::SUCCESS }
}
