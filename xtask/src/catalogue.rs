//! The scenario catalogue under `cargo xtask test`: every `scenarios/*.toml` with a
//! `[catalogue]` section is run twice with the release binary against its embedded
//! target, in its short form (`catalogue.short`, `--set` overrides): once as it is,
//! which must pass (exit 0), and once with its fault switched on (`catalogue.fault`),
//! which must fail (exit 1, not invalid) with at least the checks `catalogue.fails`
//! failed (a fault's side effects may fail others). That
//! proves each oracle against the fault it exists to catch. A scenario with
//! `catalogue.holds` runs a third time under that disturbance, which must pass: the
//! oracle gives no false positives (the heartbeat under jittered pongs). `--long` also runs the
//! `long_only` ones. A check that proves a defence of the target (`defence`) must be
//! said in the findings: "defence held" in the short and holds forms, "defence missing"
//! under the fault. The defences and a table of outcomes and times close the phase.
//!
//! The generator's lag thresholds are raised for these runs (20 ms for sends, 100 ms
//! for connection starts): they prove the oracles on a shared 2-core CI machine, not
//! latency figures (benchmarks do that).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::cmd::Cmd;

struct Row {
    name: String,
    form: &'static str,
    verdict: String,
    seconds: f64,
    ok: bool,
    why: String,
}

/// The catalogue's files, sorted.
fn files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("scenarios"))
        .context("reading scenarios/")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Runs the catalogue (short forms; `long`: the long-only ones too).
pub fn run(root: &Path, long: bool) -> Result<()> {
    let loadgen = root.join("target/release/loadgen");
    if !loadgen.exists() {
        bail!("{} is missing: run `cargo build --release -p loadgen`", loadgen.display());
    }
    let out_root = root.join("target/catalogue");
    let _ = std::fs::remove_dir_all(&out_root);
    let mut rows = Vec::new();
    let mut defences: Vec<(String, String)> = Vec::new();
    for file in files(root)? {
        let origin = file.display().to_string();
        let text = std::fs::read_to_string(&file)?;
        let scenario = loadgen_scenario::read_with(&text, &origin, &[], &|p| {
            std::fs::read_to_string(p).map_err(|e| e.to_string())
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let Some(cat) = scenario.catalogue else {
            println!("catalogue: {}: no [catalogue] section, not run", scenario.name);
            continue;
        };
        if cat.long_only && !long {
            println!("catalogue: {}: long only (cargo xtask test --long)", scenario.name);
            continue;
        }
        let empty = Vec::new();
        let mut forms = vec![("short", &empty)];
        if !cat.holds.is_empty() {
            forms.push(("holds", &cat.holds));
        }
        forms.push(("fault", &cat.fault));
        for (form, extra) in forms {
            let out = out_root.join(format!("{}-{form}", scenario.name));
            let mut sets: Vec<String> = cat.short.clone();
            sets.extend(extra.iter().cloned());
            let mut cmd = Cmd::new(&loadgen).arg("run").arg(&file).args([
                "--quiet",
                "--lag-threshold",
                "20ms",
                "--connect-lag-threshold",
                "100ms",
            ]);
            cmd = cmd.arg("--out").arg(&out);
            for s in &sets {
                cmd = cmd.arg("--set").arg(s);
            }
            println!("catalogue: {} ({form}): {}", scenario.name, cmd.display());
            let started = Instant::now();
            let status = cmd.status()?;
            let seconds = started.elapsed().as_secs_f64();
            let report: Value = std::fs::read(out.join("report.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(Value::Null);
            let verdict = report["verdict"].as_str().unwrap_or("no report").to_string();
            let failed: Vec<String> = report["checks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["passed"] == false)
                .filter_map(|c| c["name"].as_str().map(String::from))
                .collect();
            // Each check that proves a defence says so in the findings: held in the
            // short form, missing under the fault for the checks the fault must fail.
            let titles: Vec<&str> =
                report["findings"].as_array().into_iter().flatten().filter_map(|f| f["title"].as_str()).collect();
            let mut unsaid = Vec::new();
            for c in report["checks"].as_array().into_iter().flatten() {
                let (Some(d), Some(name)) = (c["defence"].as_str(), c["name"].as_str()) else { continue };
                let said = if form != "fault" {
                    format!("defence held: {d}")
                } else if cat.fails.iter().any(|f| f == name) {
                    format!("defence missing: {d}")
                } else {
                    continue;
                };
                defences.push((scenario.name.clone(), said.clone()));
                if !titles.contains(&said.as_str()) {
                    unsaid.push(said);
                }
            }
            let (ok, why) = if !unsaid.is_empty() {
                (false, format!("the findings do not say: {}", unsaid.join("; ")))
            } else if form != "fault" {
                (status.code() == Some(0), format!("exit {:?}, failed: {}", status.code(), failed.join("; ")))
            } else {
                let missed: Vec<&String> = cat.fails.iter().filter(|f| !failed.contains(f)).collect();
                (
                    status.code() == Some(1) && missed.is_empty(),
                    format!(
                        "exit {:?}, failed: {} (expected at least: {})",
                        status.code(),
                        failed.join("; "),
                        cat.fails.join("; ")
                    ),
                )
            };
            rows.push(Row { name: scenario.name.clone(), form, verdict, seconds, ok, why });
        }
    }
    println!();
    println!("catalogue: the target's defences, as the findings say");
    for (name, said) in &defences {
        println!("  {name:<22} {said}");
    }
    println!();
    println!("{:<22} {:<6} {:<8} {:>7}  result", "scenario", "form", "verdict", "seconds");
    for r in &rows {
        let result = if r.ok { "ok".to_string() } else { format!("WRONG: {}", r.why) };
        println!("{:<22} {:<6} {:<8} {:>7.1}  {result}", r.name, r.form, r.verdict, r.seconds);
    }
    let wrong = rows.iter().filter(|r| !r.ok).count();
    if wrong > 0 {
        bail!("{wrong} catalogue run(s) came out wrong; reports under {}", out_root.display());
    }
    Ok(())
}
