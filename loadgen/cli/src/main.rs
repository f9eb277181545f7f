//! `loadgen` command line: parses flags into library options and maps outcomes to exit
//! codes (0 ok, 1 checks failed, 2 usage or configuration error, 3 runtime failure,
//! 130 interrupted). Usage errors are printed on one line naming the problem and
//! where the fix is (`--help`); `--version` also says what the host offers.
//! No protocol or measurement logic lives here.

mod check_cmd;
mod compare_cmd;
mod doctor;
mod findings_out;
mod flag_scenario;
#[cfg(test)]
mod flag_scenario_tests;
mod host_info;
mod progress;
mod report_cmd;
mod run_args;
mod run_cmd;
mod run_outputs;
mod run_plan;
mod run_report;
mod scenario_run;
mod serve_cmd;
mod summary;
mod validate_cmd;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{ArgAction, CommandFactory, FromArgMatches, Parser, Subcommand};

/// eBPF-assisted WebSocket load generator for real-time systems.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version, about, long_about = None, disable_version_flag = true, arg_required_else_help = true)]
struct Cli {
    /// Print the version and what this host offers (io_uring, open-file limit, BPF).
    #[arg(short = 'V', long, action = ArgAction::SetTrue)]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a WebSocket echo server's RFC 6455 conformance and measure echo latency.
    #[command(after_help = check_cmd::EXAMPLES)]
    Check(check_cmd::CheckArgs),
    /// Run a load: connections, then idle or echo traffic, measured from intended times.
    #[command(after_help = run_cmd::EXAMPLES)]
    Run {
        #[command(flatten)]
        args: Box<run_args::RunArgs>,
        #[command(flatten)]
        output: progress::OutputArgs,
    },
    /// Serve echo, sink or push on io_uring (raw TCP with --raw), or the Redis-backed notification target (--mode notify).
    #[command(after_help = serve_cmd::EXAMPLES)]
    Serve(serve_cmd::ServeArgs),
    /// Check whether this host can hold a load (pre-flight checks only) and print each fix.
    #[command(after_help = doctor::EXAMPLES)]
    Doctor(doctor::DoctorArgs),
    /// Check scenario files (TOML) and print what each would run, or where and why it cannot.
    #[command(after_help = validate_cmd::EXAMPLES)]
    Validate(validate_cmd::ValidateArgs),
    /// Re-render a run's report.html from its report.json and timeseries.jsonl.
    #[command(after_help = report_cmd::EXAMPLES)]
    Report(report_cmd::ReportArgs),
    /// Compare two runs: latency percentiles with their confidence, throughput, errors, verdicts; exit 1 on a regression.
    #[command(after_help = compare_cmd::EXAMPLES)]
    Compare(compare_cmd::CompareArgs),
}

/// Subcommands, to point a usage error at the right `--help`.
const SUBCOMMANDS: [&str; 7] = ["check", "run", "serve", "doctor", "validate", "report", "compare"];

/// A clap usage error on one line: the message, any tip, the usage and where the help
/// is (`args`: the command line, for the subcommand).
fn one_line(rendered: &str, args: &[String]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut help = match args.iter().skip(1).find(|a| SUBCOMMANDS.contains(&a.as_str())) {
        Some(sub) => format!("loadgen {sub} --help"),
        None => "loadgen --help".to_string(),
    };
    for line in rendered.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("For more information") {
            continue;
        }
        if let Some(usage) = line.strip_prefix("Usage: ") {
            let words: Vec<&str> = usage.split_whitespace().take_while(|w| !w.starts_with(['-', '<', '['])).collect();
            help = format!("{} --help", words.join(" "));
            parts.push(format!("usage: {usage}"));
            continue;
        }
        match parts.last_mut() {
            Some(last) if last.ends_with(':') => {
                last.push(' ');
                last.push_str(line);
            }
            _ => parts.push(line.to_string()),
        }
    }
    if !parts.first().is_some_and(|p| p.starts_with("error:")) {
        parts.insert(0, "error:".into());
    }
    format!("{}; see `{help}`", parts.join("; "))
}

/// The ids of the `run` flags given on the command line (not defaults), for refusing
/// those that contradict a scenario file.
fn explicit_run_flags(matches: &clap::ArgMatches) -> Vec<String> {
    let Some(("run", run)) = matches.subcommand() else { return Vec::new() };
    let command = Cli::command();
    let Some(flags) = command.find_subcommand("run") else { return Vec::new() };
    let flags: Vec<&str> = flags.get_arguments().map(|a| a.get_id().as_str()).collect();
    run.ids()
        .filter(|id| flags.contains(&id.as_str()))
        .filter(|id| run.value_source(id.as_str()) == Some(ValueSource::CommandLine))
        .map(|id| id.as_str().to_string())
        .collect()
}

fn main() -> ExitCode {
    let parsed = Cli::command().try_get_matches().and_then(|m| Cli::from_arg_matches(&m).map(|cli| (cli, m)));
    let (cli, explicit) = match parsed {
        Ok((cli, m)) => (cli, explicit_run_flags(&m)),
        Err(e) => {
            let usage = e.use_stderr();
            if usage && e.kind() != ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                let args: Vec<String> = std::env::args().collect();
                eprintln!("{}", one_line(&e.render().to_string(), &args));
            } else {
                let _ = e.print();
            }
            return ExitCode::from(if usage { 2 } else { 0 });
        }
    };
    if cli.version {
        println!("{}", host_info::version_text());
        return ExitCode::SUCCESS;
    }
    match cli.command {
        Some(Command::Check(args)) => check_cmd::run(&args),
        Some(Command::Run { args, output }) => run_cmd::run(&args, &output, &explicit),
        Some(Command::Serve(args)) => serve_cmd::run(&args),
        Some(Command::Doctor(args)) => doctor::run(&args),
        Some(Command::Validate(args)) => validate_cmd::run(&args),
        Some(Command::Report(args)) => report_cmd::run(&args),
        Some(Command::Compare(args)) => compare_cmd::run(&args),
        None => {
            let _ = Cli::command().print_help();
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_become_one_line_with_the_help_command() {
        let line = |args: &[&str]| {
            let e = Cli::try_parse_from(args).unwrap_err();
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            let line = one_line(&e.render().to_string(), &args);
            assert_eq!(line.lines().count(), 1, "{line}");
            assert!(line.starts_with("error: "), "{line}");
            line
        };
        let l = line(&["loadgen", "run", "--target", "ws://h/", "--ech"]);
        assert!(l.starts_with("error: unexpected argument '--ech'"), "{l}");
        assert!(l.contains("'--echo'") && l.ends_with("see `loadgen run --help`"), "{l}");
        let l = line(&["loadgen", "run"]);
        assert!(l.contains("not provided: --target <URL>;"), "{l}");
        let l = line(&["loadgen", "doctor", "--connections", "0"]);
        assert!(l.contains("--connections") && l.ends_with("see `loadgen doctor --help`"), "{l}");
        let l = line(&["loadgen", "frobnicate"]);
        assert!(l.contains("'frobnicate'") && l.ends_with("see `loadgen --help`"), "{l}");
    }

    #[test]
    fn run_help_ends_with_examples_including_progress_flags() {
        let help = Cli::command().find_subcommand_mut("run").unwrap().render_long_help().to_string();
        let examples = help.rsplit_once("Examples:").expect("examples in --help").1;
        assert!(examples.contains("--progress json") && examples.contains("--quiet"), "{examples}");
        assert!(help.contains("--progress <PROGRESS>"), "{help}");
    }
}
