//! `cargo xtask`: the project's automation, in Rust so that it needs nothing
//! but cargo (alias in `.cargo/config.toml`).
//!
//! - `test [--long]`: the whole suite, as CI runs it (`.ci/run`).
//! - `demo [--quick]`: build loadgen, start its echo target and run one load
//!   test against it (50,000 held connections; `--quick`: 3,000), with checks on
//!   the report.
//! - `catalogue [--long]`: every scenario of scenarios/ in its short form, with and
//!   without its fault (the release binary must be built).
//! - `fuzz [--seconds N] [--target NAME]`: the cargo-fuzz targets on nightly.
//! - `bench [--engine-only|--proto-only] [--quick] [--runs N] [--only SECTION]`:
//!   the protocol and engine benchmarks and the machine facts to record with them
//!   (engine table also in target/bench/engine.md).

mod bench;
mod bench_engine;
mod catalogue;
mod cmd;
mod demo;
mod demo_flagship;
mod deps;
mod fuzz;
mod interop;
mod phases;
mod signal;
mod target;
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
    /// Run every catalogue scenario (short form) with and without its fault (needs
    /// `cargo build --release -p loadgen`).
    Catalogue {
        /// Also the long-only scenarios (soak, a million connections).
        #[arg(long)]
        long: bool,
    },
    /// Build loadgen, start `loadgen serve --mode echo` and run one load test against it.
    Demo {
        /// 3,000 connections held 5 s instead of 50,000 held 20 s (for CI).
        #[arg(long)]
        quick: bool,
        /// Skip the setup (packages, release build): target/release/loadgen must exist.
        #[arg(long, hide = true)]
        no_setup: bool,
        /// Directory for report.json.
        #[arg(long, value_name = "DIR", default_value = "target/demo")]
        out: PathBuf,
        /// Run only the Ctrl-C test of `cargo xtask test` (phase demo-ctrl-c).
        #[arg(long, hide = true)]
        test_ctrl_c: bool,
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
        /// Engine: small sizes (idle 10k and 40k, connect 20k), short holds, one run per figure.
        #[arg(long)]
        quick: bool,
        /// Engine: repetitions per figure (medians); default 3, 1 with --quick.
        #[arg(long, value_name = "N")]
        runs: Option<usize>,
        /// Engine: run only these sections (repeatable): idle, connect, echo, lag, reconnect, regress (regress runs only when named).
        #[arg(long, value_enum, value_name = "SECTION")]
        only: Vec<bench_engine::Section>,
        /// Engine: benchmark this loadgen binary instead of building target/release/loadgen.
        #[arg(long, value_name = "PATH")]
        loadgen: Option<PathBuf>,
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
        Command::Catalogue { long } => catalogue::run(&root, long).map(|()| ExitCode::SUCCESS),
        Command::Demo { test_ctrl_c: true, .. } => demo::test_ctrl_c(&root).map(|()| ExitCode::SUCCESS),
        Command::Demo { quick, no_setup, out, test_ctrl_c: false } => {
            let setup = if no_setup { demo::Setup::None } else { demo::Setup::Full };
            let out = if out.is_absolute() { out } else { root.join(out) };
            demo::run(&root, &demo::Options { quick, setup, out: Some(out) }).map(|outcome| match outcome {
                demo::Outcome::Passed => {
                    println!("demo: OK");
                    ExitCode::SUCCESS
                }
                demo::Outcome::Interrupted => ExitCode::from(130),
            })
        }
        Command::Fuzz { seconds, target } => fuzz::run(&root, seconds, target.as_deref()).map(exit),
        Command::Bench { engine_only, proto_only, quick, runs, only, loadgen } => {
            let engine = (!proto_only).then_some(bench_engine::Options { quick, runs, only, loadgen });
            bench::run(&root, !engine_only, engine).map(|()| ExitCode::SUCCESS)
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
