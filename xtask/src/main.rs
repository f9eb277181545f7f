//! `cargo xtask`: the project's automation, in Rust so that it needs nothing
//! but cargo (alias in `.cargo/config.toml`).
//!
//! - `test [--long]`: the whole suite, as CI runs it (`.ci/run`).
//! - `demo [--quick]`: build loadgen and run `loadgen check` against a real
//!   echo server.
//! - `fuzz [--seconds N] [--target NAME]`: the cargo-fuzz targets on nightly.
//! - `bench [--engine-only|--proto-only] [--quick]`: the protocol and engine
//!   benchmarks and the machine facts to record with them.

mod bench;
mod bench_engine;
mod cmd;
mod demo;
mod deps;
mod fuzz;
mod interop;
mod phases;
mod test;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "loadgen's build, test and demo tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole suite: deps, interop-setup, fmt, clippy, tests.
    Test {
        /// Also run the #[ignore]d (long) tests, as a separate phase.
        #[arg(long)]
        long: bool,
    },
    /// Build loadgen and run `loadgen check` against the Node ws echo server.
    Demo {
        /// Pass --quick to `loadgen check`.
        #[arg(long)]
        quick: bool,
    },
    /// Fuzz loadgen-proto with cargo-fuzz (nightly); crashes become regression inputs.
    Fuzz {
        /// How long to run each target, in seconds.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Run only this target (default: every target `cargo fuzz list` shows).
        #[arg(long)]
        target: Option<String>,
    },
    /// Run the loadgen-proto and engine benchmarks and print the machine facts to record.
    Bench {
        /// Only the engine benchmarks (loadgen run / loadgen serve, k6).
        #[arg(long, conflicts_with = "proto_only")]
        engine_only: bool,
        /// Only the loadgen-proto Criterion benchmarks.
        #[arg(long)]
        proto_only: bool,
        /// Engine: one run per figure instead of the median of three, shorter holds.
        #[arg(long)]
        quick: bool,
    },
}

/// The workspace root: xtask lives one level below it.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask is inside the workspace").to_path_buf()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = workspace_root();
    let result: Result<ExitCode> = match cli.command {
        Command::Test { long } => Ok(exit(test::run(&root, long))),
        Command::Demo { quick } => demo::run(&root, quick),
        Command::Fuzz { seconds, target } => fuzz::run(&root, seconds, target.as_deref()).map(exit),
        Command::Bench { engine_only, proto_only, quick } => {
            bench::run(&root, !engine_only, !proto_only, quick).map(|()| ExitCode::SUCCESS)
        }
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::FAILURE
    })
}

fn exit(ok: bool) -> ExitCode {
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
