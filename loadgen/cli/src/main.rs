//! `loadgen` command line: parses flags into library options and maps outcomes to exit
//! codes (0 ok, 1 checks failed, 2 usage or configuration error, 3 runtime failure,
//! 130 interrupted).
//! No protocol or measurement logic lives here.

mod check_cmd;
mod run_cmd;
mod run_report;
mod serve_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// eBPF-assisted WebSocket load generator for real-time systems.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a WebSocket echo server's RFC 6455 conformance and measure echo latency.
    #[command(after_help = check_cmd::EXAMPLES)]
    Check(check_cmd::CheckArgs),
    /// Run a load: connections, then idle or echo traffic, measured from intended times.
    #[command(after_help = run_cmd::EXAMPLES)]
    Run(run_cmd::RunArgs),
    /// Serve WebSocket (echo, sink or push), or raw TCP with --raw on io_uring: the target for benchmarks.
    #[command(after_help = serve_cmd::EXAMPLES)]
    Serve(serve_cmd::ServeArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let usage = e.use_stderr();
            let _ = e.print();
            return ExitCode::from(if usage { 2 } else { 0 });
        }
    };
    match cli.command {
        Command::Check(args) => check_cmd::run(&args),
        Command::Run(args) => run_cmd::run(&args),
        Command::Serve(args) => serve_cmd::run(&args),
    }
}
