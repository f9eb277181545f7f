//! `loadgen check`: runs the conformance suite of `loadgen-conformance`, prints one line
//! per check and a summary, and writes `report.json`.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use loadgen_conformance::{CheckOptions, CheckResult, DriverError, Report};

pub const EXAMPLES: &str = "Examples:
  loadgen check --target ws://127.0.0.1:8080/echo
  loadgen check --target ws://127.0.0.1:8080/ --deflate --quick --out /tmp/check
  loadgen check --target ws://[::1]:9001/ --connections 16 --round-trips 10000 --message-size 1024";

/// Flags of `loadgen check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// ws:// URL of a server that echoes every message back.
    #[arg(long, value_name = "URL")]
    target: String,
    /// Offer permessage-deflate and require the server to accept it.
    #[arg(long)]
    deflate: bool,
    /// The server understands loadgen's interop commands (close:CODE:REASON, ping:DATA).
    #[arg(long)]
    server_commands: bool,
    /// Fewer message sizes and a short echo measurement.
    #[arg(long)]
    quick: bool,
    /// Connections of the echo measurement (0 skips it).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(0..=512))]
    connections: u32,
    /// Round trips per connection in the echo measurement.
    #[arg(long, default_value_t = 2_000)]
    round_trips: usize,
    /// Echo message size in bytes (8 to 16 MiB).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(8..=16 << 20))]
    message_size: u32,
    /// Directory for report.json.
    #[arg(long, value_name = "DIR", default_value = "loadgen-report")]
    out: PathBuf,
}

pub fn run(args: &CheckArgs) -> ExitCode {
    let options = CheckOptions {
        target: args.target.clone(),
        deflate: args.deflate,
        server_commands: args.server_commands,
        quick: args.quick,
        connections: args.connections as usize,
        round_trips: args.round_trips,
        message_size: args.message_size as usize,
    };
    println!("loadgen check {}", args.target);
    let mut print = |r: &CheckResult| {
        let mark = if r.passed { "ok  " } else { "FAIL" };
        println!("  {mark} {:<32} {:>9.1} ms  {}", r.name, r.millis, r.detail);
        let _ = std::io::stdout().flush();
    };
    let report = match loadgen_conformance::run(&options, &mut print) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(match e {
                DriverError::BadUrl(_) => 2,
                _ => 3,
            });
        }
    };
    print_summary(&report);
    match report.write_to(&args.out) {
        Ok(path) => println!("report: {}", path.display()),
        Err(e) => {
            eprintln!("error: cannot write the report into {}: {e} (choose another --out)", args.out.display());
            return ExitCode::from(3);
        }
    }
    if report.failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

fn print_summary(report: &Report) {
    println!();
    println!("checks: {} passed, {} failed", report.passed, report.failed);
    if let Some(echo) = &report.echo {
        let p = &echo.rtt_us;
        println!(
            "echo: {} connections x {} B: {} round trips, {:.0}/s; rtt p50 {} µs, p90 {} µs, p99 {} µs, p99.9 {} µs, max {} µs",
            echo.connections, echo.message_size, p.count, echo.round_trips_per_s, p.p50, p.p90, p.p99, p.p999, p.max
        );
        println!("      handshake p50 {} µs, p99 {} µs", echo.handshake_us.p50, echo.handshake_us.p99);
        for (kind, n) in &echo.errors {
            println!("      errors: {kind} x {n}");
        }
    }
}
