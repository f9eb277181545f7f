//! `cargo xtask bench`: the protocol benchmarks (Criterion), the engine benchmarks
//! (`bench_engine`), then the machine facts to record next to the figures in
//! docs/benchmarks.md. The engine part ends as one markdown section, printed and
//! written to target/bench/engine.md, ready to paste.

use std::path::Path;

use anyhow::Result;

use crate::bench_engine::{self, Options};
use crate::cmd::Cmd;

pub fn run(root: &Path, proto: bool, engine: Option<Options>) -> Result<()> {
    if proto {
        Cmd::new("cargo").args(["bench", "-p", "loadgen-proto"]).dir(root).run()?;
    }
    let load_before = load_average();
    let rows = match &engine {
        Some(opts) => Some(bench_engine::run(root, opts)?),
        None => None,
    };

    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("MemTotal:")).map(|l| l.trim_start_matches("MemTotal:").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    let facts: Vec<(String, String)> = vec![
        ("date".into(), fact(Cmd::new("date").args(["-u", "+%Y-%m-%d"]))),
        ("CPU (`/proc/cpuinfo`)".into(), cpu),
        ("cores (`nproc`)".into(), fact(Cmd::new("nproc"))),
        ("memory (MemTotal)".into(), mem),
        ("kernel (`uname -r`)".into(), fact(Cmd::new("uname").arg("-r"))),
        ("toolchain".into(), fact(Cmd::new("rustc").arg("--version"))),
        ("RLIMIT_NOFILE (hard)".into(), crate::target::nofile_hard().map_or("unknown".into(), |n| n.to_string())),
        ("load average (1/5/15 min) before / after".into(), format!("{load_before} / {}", load_average())),
    ];

    if let (Some(rows), Some(opts)) = (rows, &engine) {
        let md = bench_engine::markdown(&rows, &facts, opts);
        let path = root.join("target/bench/engine.md");
        std::fs::write(&path, &md)?;
        println!();
        println!("{md}");
        println!("(written to {}; paste it into docs/benchmarks.md, \"Engine\")", path.display());
    } else {
        println!();
        println!("Record the figures above in docs/benchmarks.md, with these machine facts:");
        println!();
        for (k, v) in &facts {
            println!("- {k}: {v}");
        }
    }
    Ok(())
}

/// The trimmed stdout of a fact-finding command, or why it is unknown.
fn fact(cmd: Cmd) -> String {
    match cmd.read() {
        Ok(out) => out.trim().to_string(),
        Err(e) => format!("unknown ({e:#})"),
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
