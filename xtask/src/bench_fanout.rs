//! Section 7 of `cargo xtask bench --engine-only` (issue 17): fan-out through the
//! reference target. `loadgen run scenarios/broadcast-fanout.toml` (the catalogue's
//! scenario, sizes set with `--set`) on the embedded target (`loadgen serve --mode
//! notify`, its own Redis, the default worker count for the size): N subscribers wait
//! for their subscriptions, then 10 broadcasts a second apart are fanned out to all of
//! them. Figures: how many were held, delivery latency from each message's intended
//! publish time (`latency_us.delivery`), deliveries received of those expected, and the
//! target's CPU per delivered message (`scenario.target_cpu_us_per_delivery`: its
//! supervisor and workers from /proc, Redis not included). Goals of issue 17: ≥ 100,000
//! held; p99 ≤ 250 ms at 10,000 subscribers and ≤ 1 s at 100,000.
//!
//! Generator and target share this host's cores (no pinning: the target's workers need
//! them), so the figures are this machine's, and the generator's own CPU is in each
//! report.

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::{Bench, Series};
use crate::cmd::Cmd;

/// Upgrades per second the ramp asks for (the target upgrades about 3,000 a second).
const FANOUT_CONNECT_RATE: u64 = 3_000;
const FANOUT_PUBLISHES: u64 = 10;

#[derive(Default)]
struct Fanout {
    held: Option<f64>,
    p50: Option<f64>,
    p99: Option<f64>,
    max: Option<f64>,
    delivered_share: Option<f64>,
    cpu_us: Option<f64>,
}

impl Bench {
    fn fanout_run(&self, name: &str, subscribers: u64) -> Result<Fanout> {
        if self.catch.received() > 0 {
            bail!("interrupted (Ctrl-C)");
        }
        let dir = self.out.join(name);
        let _ = std::fs::remove_file(dir.join("report.json"));
        let ramp_s = subscribers.div_ceil(FANOUT_CONNECT_RATE);
        let first = ramp_s + 5;
        let hold = first + FANOUT_PUBLISHES + 5;
        let sets = [
            format!("load.connections={subscribers}"),
            format!("groups.0.connections={subscribers}"),
            format!("load.connect_rate={FANOUT_CONNECT_RATE}"),
            format!("load.hold={hold}s"),
            "groups.0.steps.0.timeout=60s".to_string(),
            format!("timeline.0.at={first}s"),
            format!("timeline.0.count={FANOUT_PUBLISHES}"),
            "timeline.0.interval=1s".to_string(),
        ];
        let mut cmd = Cmd::new(&self.loadgen).arg("run").arg(self.root.join("scenarios/broadcast-fanout.toml"));
        for s in &sets {
            cmd = cmd.arg("--set").arg(s);
        }
        cmd = cmd.args(["--progress", "plain", "--out"]).arg(&dir);
        println!("bench: {}", cmd.display());
        let status = cmd.status()?;
        let report: Value = serde_json::from_slice(
            &std::fs::read(dir.join("report.json"))
                .with_context(|| format!("loadgen run exited {status} without report.json"))?,
        )?;
        let d = &report["latency_us"]["delivery"];
        let expected = (subscribers * FANOUT_PUBLISHES) as f64;
        Ok(Fanout {
            held: report["connections"]["open_at_end"].as_f64(),
            p50: d["p50"].as_f64(),
            p99: d["p99"].as_f64(),
            max: d["max"].as_f64(),
            delivered_share: report["messages"]["pushes_received"].as_f64().map(|n| n / expected),
            cpu_us: report["scenario"]["target_cpu_us_per_delivery"].as_f64(),
        })
    }

    pub(super) fn fanout_section(&mut self, runs: usize) {
        let sizes: &[(u64, f64)] = if self.quick { &[(10_000, 250e3)] } else { &[(10_000, 250e3), (100_000, 1e6)] };
        for &(n, goal_us) in sizes {
            let mut v = Vec::new();
            for i in 0..runs {
                match self.fanout_run(&format!("fanout-{n}-{i}"), n) {
                    Ok(f) => v.push(f),
                    Err(e) => eprintln!("bench: fan-out to {n} run {i} failed: {e:#}"),
                }
            }
            let what = format!(
                "fan-out of {FANOUT_PUBLISHES} broadcasts to {} subscribers (reference target)",
                super::num(n as f64, 0)
            );
            let held = Series::of(&v, |f| f.held);
            self.row(7, format!("{what}: held at the end"), held.show("", 0), "", None);
            let p99 = Series::of(&v, |f| f.p99);
            let ms = |s: Series| Series(s.0.iter().map(|u| u / 1e3).collect());
            self.row(
                7,
                format!("{what}: delivery p50 / p99 / max"),
                format!(
                    "{} / {} / {}",
                    ms(Series::of(&v, |f| f.p50)).show(" ms", 1),
                    ms(Series::of(&v, |f| f.p99)).show(" ms", 1),
                    ms(Series::of(&v, |f| f.max)).show(" ms", 1)
                ),
                &format!("p99 ≤ {} ms", goal_us / 1e3),
                p99.median().map(|m| m <= goal_us),
            );
            self.row(
                7,
                format!("{what}: deliveries received of those expected"),
                Series(Series::of(&v, |f| f.delivered_share).0.iter().map(|s| s * 100.0).collect()).show(" %", 2),
                "",
                None,
            );
            self.row(
                7,
                format!("{what}: target CPU per delivered message"),
                Series::of(&v, |f| f.cpu_us).show(" µs", 2),
                "",
                None,
            );
            if n == 100_000 {
                self.row(
                    7,
                    "reference target: connections held",
                    held.show("", 0),
                    "≥ 100,000",
                    held.median().map(|m| m >= 100_000.0),
                );
            }
        }
    }
}
