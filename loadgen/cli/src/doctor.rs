//! `loadgen doctor`: the engine's pre-flight checks alone, without running anything.
//! Reads the host exactly as `loadgen run` does (the soft RLIMIT_NOFILE raised to the
//! hard one first), builds the same `LoadRequest` for the given connections and target,
//! and prints each limit with its value, the plan when it fits, and for every limit
//! the load would hit the problem and the exact fix (sysctl, ulimit, source addresses).
//!
//! Exit codes: 0 the plan is feasible (warnings may remain), 2 refused (fix lines
//! printed) or bad flags, 3 the host could not be read. It changes no setting and
//! opens no connection.

use std::net::Ipv4Addr;
use std::process::ExitCode;

use clap::Args;
use loadgen_engine::preflight::{self, HostFacts, PreflightError, Problem};
use loadgen_engine::uring::probe::Capabilities;

use crate::summary::{Align, Table, bytes, thousands};

pub const EXAMPLES: &str = "Examples:
  loadgen doctor                                  # 10,000 connections to a target on this host
  loadgen doctor --connections 50000
  loadgen doctor --connections 1000 --message-size 1MiB   # memory of 1 MiB echo messages on every connection
  loadgen doctor --connections 1000000 --target ws://10.0.0.5:8080/ --source-addr 10.0.0.2 --source-addr 10.0.0.3";

/// Flags of `loadgen doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Connections to check for.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    connections: u32,
    /// ws:// URL the load would go to (a loopback target counts both ends on this host).
    #[arg(long, value_name = "URL", default_value = "ws://127.0.0.1:8080/")]
    target: String,
    /// Worker threads, 1 to 1024 (default: one per CPU).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    workers: Option<u32>,
    /// Source address to bind (repeatable), as for `loadgen run`.
    #[arg(long = "source-addr", value_name = "IPV4")]
    sources: Vec<Ipv4Addr>,
    /// Bytes of each message sent, as `loadgen run --echo --message-size` (suffixes
    /// KiB, MiB ...): counts the message buffers in the memory plan.
    #[arg(long, value_name = "BYTES", value_parser = crate::run_args::parse_size)]
    message_size: Option<u64>,
    /// Connections carrying messages, as `loadgen run --echo-connections` (default: all).
    #[arg(long, value_name = "N", requires = "message_size", value_parser = clap::value_parser!(u32).range(1..))]
    echo_connections: Option<u32>,
}

pub fn run(args: &DoctorArgs) -> ExitCode {
    let addr = match crate::run_cmd::target_addr(&args.target) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let before = HostFacts::read().ok().map(|f| f.nofile_soft);
    let facts = match crate::run_cmd::host_facts() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(3);
        }
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = args.workers.map_or(cpus, |w| w as usize);
    let carriers = args.echo_connections.map(|n| u64::from(n.min(args.connections)));
    let request = crate::run_cmd::load_request(args.connections, &[addr], workers, &args.sources)
        .with_messages(args.message_size.unwrap_or(0), carriers);
    let here = if request.target_on_this_host { " (on this host: both ends counted)" } else { "" };
    let messages = match (args.message_size, carriers) {
        (Some(size), Some(n)) => format!(", messages of {} bytes on {}", thousands(size), thousands(n)),
        (Some(size), None) => format!(", messages of {} bytes", thousands(size)),
        (None, _) => String::new(),
    };
    println!(
        "loadgen doctor: {} connections to {addr}{here}, {workers} worker{}{messages}",
        thousands(u64::from(args.connections)),
        if workers == 1 { "" } else { "s" }
    );
    println!();
    let mut table = limits(&facts, before);
    let mut refusals: Vec<Problem> = Vec::new();
    match Capabilities::probe() {
        Ok(c) => {
            table.row(["io_uring".to_string(), c.describe()]);
            if let Err(e) = c.require_engine_opcodes() {
                let fix = "a kernel ≥ 6.1 (every required opcode)";
                refusals.push(Problem {
                    what: "io_uring".into(),
                    found: e.to_string(),
                    needed: fix.into(),
                    fix: fix.into(),
                });
            }
        }
        Err(e) => {
            table.row(["io_uring".to_string(), format!("unavailable ({e})")]);
            refusals.push(Problem {
                what: "io_uring".into(),
                found: e.to_string(),
                needed: "io_uring available".into(),
                fix: "Linux ≥ 6.1 with `sysctl -w kernel.io_uring_disabled=0`, and a container seccomp profile that \
                      allows io_uring_setup"
                    .into(),
            });
        }
    }
    for u in &facts.unknown {
        table.row([format!("{} unknown", u.fact), u.reason.clone()]);
    }
    for line in table.lines() {
        println!("{line}");
    }
    println!();
    let warnings = match preflight::plan(&facts, &request) {
        Ok(plan) => {
            println!(
                "{}",
                plan.describe().lines().filter(|l| !l.starts_with("warning:")).collect::<Vec<_>>().join("\n")
            );
            plan.warnings
        }
        Err(PreflightError::Refused(problems)) => {
            refusals.extend(problems);
            Vec::new()
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(3);
        }
    };
    for w in &warnings {
        println!("warning: {}: found {}, need {}", w.what, w.found, w.needed);
        println!("  fix: {}", w.fix);
    }
    for p in &refusals {
        println!("refused: {}: found {}, need {}", p.what, p.found, p.needed);
        println!("  fix: {}", p.fix);
    }
    if refusals.is_empty() {
        let advice = if warnings.is_empty() { "" } else { " (see the warnings above)" };
        println!(
            "verdict: feasible: this host can hold {} connections{advice}",
            thousands(u64::from(args.connections))
        );
        ExitCode::SUCCESS
    } else {
        let s = if refusals.len() == 1 { "" } else { "s" };
        println!(
            "verdict: refused ({} problem{s}): apply the fix{} above, then run `loadgen doctor --connections {}` again",
            refusals.len(),
            if refusals.len() == 1 { "" } else { "es" },
            args.connections
        );
        ExitCode::from(2)
    }
}

/// The host's limits, one per row.
fn limits(f: &HostFacts, soft_before: Option<u64>) -> Table {
    let opt = |v: Option<u64>| v.map_or("unknown".to_string(), thousands);
    let mut t = Table::new(&[Align::Left, Align::Left]);
    t.row(["kernel".to_string(), f.kernel_release.clone()]);
    t.row(["CPUs".to_string(), f.cpus.map_or("unknown".into(), |c| c.to_string())]);
    let soft = soft_before.unwrap_or(f.nofile_soft);
    let raised = if soft < f.nofile_hard { " (loadgen raises soft to hard)" } else { "" };
    t.row([
        "RLIMIT_NOFILE".to_string(),
        format!("soft {}, hard {}{raised}", thousands(soft), thousands(f.nofile_hard)),
    ]);
    let cap = match f.can_raise_nofile_hard {
        Some(true) => "yes (the hard limit can be raised, up to fs.nr_open)",
        Some(false) => "no (raising the hard limit needs limits.conf, systemd LimitNOFILE or root)",
        None => "unknown",
    };
    t.row(["CAP_SYS_RESOURCE".to_string(), cap.to_string()]);
    t.row(["fs.nr_open".to_string(), opt(f.nr_open)]);
    t.row(["fs.file-max".to_string(), format!("{} ({} in use)", opt(f.file_max), opt(f.files_in_use))]);
    let range = f.port_range.map_or("unknown".to_string(), |(lo, hi)| format!("{lo}–{hi}"));
    let reserved = match &f.reserved_ports {
        Some(r) if r.is_empty() => "none reserved".to_string(),
        Some(r) => {
            let list: Vec<String> =
                r.iter().map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect();
            format!("reserved {}", list.join(","))
        }
        None => "reserved unknown".to_string(),
    };
    t.row(["ephemeral ports".to_string(), format!("{range} ({reserved})")]);
    t.row(["net.core.somaxconn".to_string(), opt(f.somaxconn)]);
    t.row(["tcp_max_syn_backlog".to_string(), opt(f.tcp_max_syn_backlog)]);
    let mem = match (f.mem_available, f.mem_total) {
        (Some(a), Some(t)) => format!("{} available of {}", bytes(a), bytes(t)),
        (Some(a), None) => format!("{} available", bytes(a)),
        _ => "unknown".into(),
    };
    t.row(["memory".to_string(), mem]);
    t
}
