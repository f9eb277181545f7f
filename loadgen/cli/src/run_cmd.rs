//! `loadgen run`: ad-hoc runs from flags. Takes the engine's `RunConfig` from the
//! checked flags, which become a scenario (`flag_scenario`) compiled and mapped as a
//! file's is (`run_plan`), or prints that scenario (`--print-scenario`); plans the run against the host (pre-flight, then a probe
//! of `--out`; either refusal exits 2 before any connection), installs a Ctrl-C
//! handler (stop new work, close with a bounded close handshake, still write the
//! report), runs with live progress (`progress`), prints the summary (`summary`) and
//! writes `report.json`. The pre-flight helpers here are shared with `loadgen doctor`.
//!
//! Exit codes (docs/metrics.md, "The verdict and exit codes"): 0 pass, 1 a check
//! failed (by default: a connection failed or dropped, a message went unanswered, late
//! or lost), 2 usage or configuration error, 3 runtime failure (nothing could connect
//! and the like), 4 invalid (the generator was saturated), 130 SIGINT and 143 SIGTERM;
//! every one after writing the (partial) report.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use loadgen_engine::preflight::{self, HostFacts, LoadRequest, Plan, SourceAddrs};
use loadgen_engine::report::{Outcome, Verdict};
use loadgen_engine::run::{Protocol, RunConfig, RunOutcome, Traffic};
use loadgen_engine::stats::{RunStats, SecondStats};

use crate::progress::{Mode, OutputArgs, Progress};
use crate::run_args::RunArgs;
pub(crate) use crate::run_args::target_addr;
use crate::run_outputs::Outputs;

pub const EXAMPLES: &str = "Examples:
  loadgen run --target ws://127.0.0.1:8080/ --connections 10000 --duration 30s --idle
  loadgen run --target ws://127.0.0.1:8080/ --connections 1000 --duration 60s --echo --message-size 64 --rate 50000
  loadgen run --target ws://127.0.0.1:8080/ --connections 1000 --duration 60s --echo --rate-per-conn 10
  loadgen run --target ws://127.0.0.1:8080/ --connections 50000 --duration 20s --echo --rate 2000 --echo-connections 1000   # 1,000 active among 50,000 held
  loadgen run --target ws://127.0.0.1:8080/ --connections 100 --duration 10s --echo   # closed loop
  loadgen run --target ws://127.0.0.1:8080/ --connections 1000 --duration 60s --echo --rate 20000 --arrivals poisson
  loadgen run --target ws://127.0.0.1:8080/ --connections 100 --duration 30s --echo --rate 100 --message-size 1MiB --max-message-size 2MiB   # large messages
  loadgen run --target ws://127.0.0.1:8080/ --connections 1000 --duration 30s --idle --handshake-timeout 30s --close-timeout 5s   # a slow server
  loadgen run --raw --target ws://127.0.0.1:9090/ --connections 1000 --duration 10s --echo   # vs `loadgen serve --raw`
  loadgen run --target wss://127.0.0.1:8443/ --ca-file cert.pem --connections 5000 --duration 30s --echo --rate 5000   # TLS, sessions resumed
  loadgen run --target ws://127.0.0.1:8080/ --connections 1000 --duration 30s --echo --rate 5000 --deflate   # permessage-deflate
  loadgen run --target http://127.0.0.1:8080/status --connections 5000 --duration 60s --echo --rate-per-conn 0.5   # HTTP pollers (cookies, Retry-After)
  loadgen run --target ws://127.0.0.1:8080/ --connections 1000 --duration 60s --echo --rate 1000 --progress plain   # one line per second (CI logs)
  loadgen run --target ws://127.0.0.1:8080/ --connections 1000 --duration 60s --echo --rate 1000 --progress json > progress.jsonl   # summary on stderr
  loadgen run --target ws://127.0.0.1:8080/ --connections 1000 --duration 60s --idle --quiet   # only the summary
  loadgen doctor --connections 100000   # will this host hold it? (each limit and its fix)";

static STOP: AtomicBool = AtomicBool::new(false);
/// The signal that stopped the run (SIGINT or SIGTERM), for the exit code.
static SIGNAL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    SIGNAL.store(signal, Ordering::Relaxed);
    STOP.store(true, Ordering::Relaxed);
}

fn install_signal_handlers() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// Reads the host as a run sees it: the soft RLIMIT_NOFILE raised to the hard one
/// first (shared with `loadgen doctor`).
pub(crate) fn host_facts() -> Result<HostFacts, String> {
    let _ = preflight::raise_nofile_soft_to_hard();
    HostFacts::read().map_err(|e| e.to_string())
}

/// The pre-flight request of `connections` to `targets` on `workers` threads, from
/// `sources` (empty: automatic). Shared with `loadgen doctor`.
pub(crate) fn load_request(
    connections: u32,
    targets: &[SocketAddrV4],
    workers: usize,
    sources: &[Ipv4Addr],
) -> LoadRequest {
    let targets = targets.iter().map(|&a| SocketAddr::V4(a)).collect();
    let mut request = LoadRequest::new(u64::from(connections), targets, workers);
    if !sources.is_empty() {
        request.sources = SourceAddrs::Explicit(sources.iter().map(|ip| IpAddr::V4(*ip)).collect());
    }
    request
}

/// Checks the host against the load and adopts the plan: ring size, source addresses.
fn preflight(config: &mut RunConfig) -> Result<Plan, String> {
    let facts = host_facts()?;
    let targets: Vec<SocketAddrV4> = config.targets.iter().map(|t| t.addr).collect();
    // Message buffers scale with the size of what is sent (HTTP polls send no probe).
    let message_size = match config.traffic {
        Traffic::Echo { message_size, .. } if config.protocol != Protocol::Http1 => message_size as u64,
        _ => 0,
    };
    let request = load_request(config.connections, &targets, config.workers, &config.sources)
        .with_messages(message_size, config.echo_connections.map(u64::from));
    let plan = preflight::plan(&facts, &request).map_err(|e| e.to_string())?;
    config.max_slots_per_ring = plan.per_ring_capacity;
    if config.sources.is_empty() && plan.targets.iter().any(|t| !t.kernel_chooses_source) {
        config.sources = plan
            .source_addrs
            .iter()
            .filter_map(|ip| match ip {
                IpAddr::V4(v4) => Some(*v4),
                IpAddr::V6(_) => None,
            })
            .collect();
    }
    Ok(plan)
}

/// Creates `dir` and writes and removes a probe file in it, so an unwritable `--out` is
/// found before the run rather than after it.
fn check_out_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(format!(".loadgen-probe.{}", std::process::id()));
    let written =
        std::fs::OpenOptions::new().write(true).create_new(true).open(&probe).and_then(|mut f| f.write_all(b"probe"));
    let removed = std::fs::remove_file(&probe);
    written.and(removed)
}

/// What a run from a scenario adds around the engine: started just before the load
/// (the timeline), and given the report before it is written (checks, faults,
/// findings), which it may amend; it returns the verdict the report now holds.
pub(crate) trait RunHooks {
    /// The load of `config` starts now.
    fn started(&mut self, config: &RunConfig);
    /// Second `second` of the run was collected (about when it ended), with what was
    /// collected so far. `Some(why)` stops the run there (a check marked `abort`
    /// failed): it ends as if interrupted, and exits 1.
    fn second(&mut self, _second: &SecondStats, _so_far: &RunStats) -> Option<String> {
        None
    }
    /// The load is over: amend the report document and judge the run.
    fn finished(&mut self, outcome: &RunOutcome, doc: &mut serde_json::Value) -> Verdict;
    /// The run has checks of its own, which may expect nothing to connect (attackers
    /// refused): then no connection at all is for them to judge, not a runtime failure.
    fn own_checks(&self) -> bool {
        false
    }
    /// The run started the target itself on a free port, so advice about reserving
    /// the target's port does not apply.
    fn own_target(&self) -> bool {
        false
    }
}

/// A run from flags: the engine's default checks, nothing added.
struct FlagRun;

impl RunHooks for FlagRun {
    fn started(&mut self, _config: &RunConfig) {}
    fn finished(&mut self, outcome: &RunOutcome, _doc: &mut serde_json::Value) -> Verdict {
        outcome.verdict()
    }
}

pub fn run(args: &RunArgs, output: &OutputArgs, explicit: &[String]) -> ExitCode {
    if args.scenario.is_some() {
        return crate::scenario_run::run(args, output, explicit);
    }
    let scenario = match flag_config(args) {
        Ok((_, config)) if !args.print_scenario => {
            return execute(config, &args.out, &args.targets, output, &mut FlagRun);
        }
        Ok((scenario, _)) => scenario,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let words: Vec<String> = std::env::args().skip(1).map(|w| shell_word(&w)).collect();
    let command = format!("loadgen {}", words.join(" "));
    match crate::flag_scenario::file_text(&scenario, &command) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(3)
        }
    }
}

/// `word` as a shell reads it back: bare when safe, else in single quotes (a control
/// character, which would break the TOML comment it goes into, escaped instead).
fn shell_word(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_owned()
    } else if word.chars().any(char::is_control) {
        format!("{word:?}")
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// The flags as a scenario, and the engine's configuration of it: the scenario is
/// compiled and mapped as a file's is.
pub(crate) fn flag_config(args: &RunArgs) -> Result<(loadgen_scenario::Scenario, RunConfig), String> {
    let scenario = crate::flag_scenario::scenario(args)?;
    let plan = loadgen_scenario::compile(&scenario, "the flags").map_err(|e| e.to_string())?;
    let urls: Vec<String> = std::iter::once(scenario.target.url.clone()).chain(plan.also.iter().cloned()).collect();
    let config = crate::run_plan::run_config(args, &plan, &urls)?;
    Ok((scenario, config))
}

/// Plans, runs and reports `config` (exit codes as the module says).
pub(crate) fn execute(
    mut config: RunConfig,
    out: &Path,
    targets: &[String],
    output: &OutputArgs,
    hooks: &mut dyn RunHooks,
) -> ExitCode {
    let mode = output.mode();
    let mut plan = match preflight(&mut config) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if hooks.own_target() {
        plan.warnings.retain(|w| w.what != "server ports");
    }
    // After the pure checks (a refused run leaves no directory behind), before any load.
    if let Err(e) = check_out_dir(out) {
        eprintln!("error: cannot write the report into {}: {e} (choose another --out)", out.display());
        return ExitCode::from(2);
    }
    let mut outputs = match Outputs::open(output, out) {
        Ok(outputs) => outputs,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(url) = outputs.metrics_url() {
        eprintln!("metrics: {url}");
    }
    // Human-readable text goes to stdout, except in json mode (stdout holds only the
    // JSON lines then) and in quiet mode (stdout holds only the summary line; warnings
    // still on stderr).
    let mut human: Box<dyn Write> = match mode {
        Mode::Json => Box::new(std::io::stderr()),
        Mode::Quiet => Box::new(std::io::sink()),
        _ => Box::new(std::io::stdout()),
    };
    if mode == Mode::Quiet {
        for w in &plan.warnings {
            eprintln!("warning: {w}");
        }
    } else {
        let _ = writeln!(human, "{}", plan.describe());
        let _ = writeln!(
            human,
            "loadgen run: {} connections to {} at {}/s, hold {:?}, {} workers",
            config.connections,
            targets.join(", "),
            config.connect_rate,
            config.hold,
            config.workers
        );
        let _ = human.flush();
    }
    install_signal_handlers();
    let mut progress = Progress::new(mode, &config);
    hooks.started(&config);
    let mut aborted: Option<String> = None;
    let result = loadgen_engine::run::run_with_progress(&config, &STOP, &mut |second, so_far| {
        progress.second(second, STOP.load(Ordering::Relaxed));
        outputs.second(second, so_far);
        if let Some(why) = hooks.second(second, so_far)
            && aborted.is_none()
        {
            eprintln!("aborted: {why}");
            aborted = Some(why);
            STOP.store(true, Ordering::Relaxed);
        }
    });
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(3);
        }
    };
    let interrupted = STOP.load(Ordering::Relaxed);
    let mut doc = crate::run_report::document(&outcome, &config, &plan, interrupted);
    let verdict = hooks.finished(&outcome, &mut doc);
    crate::summary::write(&mut human, &outcome, &verdict, interrupted);
    crate::findings_out::write(&mut human, &doc);
    let report = match crate::run_report::write(&doc, out) {
        Ok(path) => path,
        Err(e) => {
            eprintln!("error: cannot write the report into {}: {e} (choose another --out)", out.display());
            return ExitCode::from(3);
        }
    };
    let (mut files, failures) = outputs.finish(&doc);
    files.insert(0, ("report", report.display().to_string()));
    for (kind, path) in &files {
        if *kind != "timeseries" {
            let _ = writeln!(human, "{kind}: {path}");
        }
    }
    let _ = human.flush();
    for failure in &failures {
        eprintln!("error: {failure}");
    }
    let mut code = exit_code(&outcome, &verdict, aborted.is_some(), interrupted, targets, hooks.own_checks());
    if code == 0 && !failures.is_empty() {
        code = 3;
    }
    if mode == Mode::Quiet {
        println!("{}", loadgen_report::summary_line::render(&doc, code, &files));
    }
    outputs.linger();
    ExitCode::from(code)
}

/// The exit code of a finished run (the module's table), printing why on stderr.
fn exit_code(
    outcome: &RunOutcome,
    verdict: &Verdict,
    aborted: bool,
    interrupted: bool,
    targets: &[String],
    own_checks: bool,
) -> u8 {
    let s = &outcome.stats;
    if aborted {
        for failure in verdict.failures() {
            eprintln!("check failed: {failure}");
        }
        1
    } else if interrupted {
        if SIGNAL.load(Ordering::Relaxed) == libc::SIGTERM { 143 } else { 130 }
    } else if s.totals.established == 0 && !own_checks {
        eprintln!("error: {}", crate::summary::no_connection_error(&s.errors, targets));
        3
    } else {
        match verdict.outcome {
            Outcome::Pass => 0,
            Outcome::Fail => {
                for failure in verdict.failures() {
                    eprintln!("check failed: {failure}");
                }
                1
            }
            Outcome::Invalid => {
                for why in &verdict.invalid_because {
                    eprintln!("invalid: {why}");
                }
                4
            }
        }
    }
}
