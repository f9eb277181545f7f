//! `cargo xtask bench`: the protocol benchmarks, the engine benchmarks
//! (`bench_engine`), then a summary and the machine facts to record next to
//! the figures in docs/benchmarks.md.

use std::path::Path;

use anyhow::Result;

use crate::cmd::Cmd;

pub fn run(root: &Path, proto: bool, engine: bool, quick: bool) -> Result<()> {
    if proto {
        Cmd::new("cargo").args(["bench", "-p", "loadgen-proto"]).dir(root).run()?;
    }
    let rows = if engine { Some(crate::bench_engine::run(root, quick)?) } else { None };

    let nproc = fact(Cmd::new("nproc"));
    let kernel = fact(Cmd::new("uname").arg("-r"));
    let date = fact(Cmd::new("date").args(["-u", "+%Y-%m-%d"]));
    let rustc = fact(Cmd::new("rustc").arg("--version"));
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());

    if let Some(rows) = rows {
        println!();
        println!("Engine summary (medians; runs in brackets; details in target/bench/engine/*/report.json):");
        println!();
        println!("| figure | value |");
        println!("| --- | --- |");
        for (k, v) in rows {
            println!("| {k} | {v} |");
        }
    }
    println!();
    println!("Record the figures above in docs/benchmarks.md, with these machine facts:");
    println!();
    println!("- date: {date}");
    println!("- cpu: {cpu}");
    println!("- cores (nproc): {nproc}");
    println!("- kernel (uname -r): {kernel}");
    println!("- toolchain: {rustc}");
    println!("- command: cargo xtask bench (criterion: target/criterion/; engine: target/bench/engine/)");
    Ok(())
}

/// The trimmed stdout of a fact-finding command, or why it is unknown.
fn fact(cmd: Cmd) -> String {
    match cmd.read() {
        Ok(out) => out.trim().to_string(),
        Err(e) => format!("unknown ({e:#})"),
    }
}
