//! Part of section 5 of `cargo xtask bench --engine-only` (issue 16): reconnect churn.
//! 20,000 idle connections against `loadgen serve --mode sink --fault reset-after=3s`
//! (every connection reset 3 s after it opened, so the run reconnects thousands a
//! second for a minute), and a plain run of the same flags and length. Figures: drops
//! and reconnects, the held count at the end, the loadgen process's fds and RSS from
//! second 30 (by then every page of the fixed allocations, histograms and pools
//! included, has been touched: RSS rises for the first ≈ 25 s while malloc's mapped
//! total stays the same) to the end of the hold, and the RSS growth per reconnect beyond what the plain
//! run grows in the same time (its per-second records). Growth per reconnect that
//! stays above zero is a leak; a level that stops rising is a high-water mark.

use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::reconnect::fd_count;
use super::{Bench, IDLE_CLOSE_RATE, Series, na, run_args, vm_rss};

const CHURN_CONNS: u64 = 20_000;
const CHURN_RATE: u64 = 10_000;
const CHURN_HOLD_S: u64 = 60;
const CHURN_RESET_AFTER: &str = "reset-after=3s";
/// The first RSS sample (seconds after the run's start).
const CHURN_FROM_S: f64 = 30.0;
const CHURN_BACKOFF: [&str; 4] = ["--reconnect-initial", "100ms", "--reconnect-max", "1s"];
/// Growth per reconnect (bytes) beyond the plain run's at most.
const CHURN_GOAL_B: f64 = 8.0;

#[derive(Default)]
struct Churn {
    dropped: Option<f64>,
    reconnected: Option<f64>,
    open_at_end: Option<f64>,
    /// Drops in the timeseries seconds from `CHURN_FROM_S` on.
    drops_after_from: Option<f64>,
    rss_from: Option<f64>,
    rss_end: Option<f64>,
    fds_from: Option<f64>,
    fds_end: Option<f64>,
}

/// RSS growth from the first sample to the last.
fn growth(c: &Churn) -> Option<f64> {
    c.rss_end.zip(c.rss_from).map(|(e, f)| e - f)
}

impl Bench {
    fn churn_run(&mut self, name: &str, fault: bool) -> Result<Churn> {
        if self.catch.received() > 0 {
            bail!("interrupted (Ctrl-C)");
        }
        let ramp = CHURN_CONNS / CHURN_RATE;
        let timeout = Duration::from_secs(ramp + CHURN_HOLD_S + 120);
        let extra: Vec<String> = if fault { vec!["--fault".into(), CHURN_RESET_AFTER.into()] } else { Vec::new() };
        let mut server = self.serve_with(false, "sink", 2, timeout.as_secs() + 120, &extra)?;
        let mut args = run_args(false, server.port().context("server port")?, CHURN_CONNS);
        args.extend([
            "--idle".into(),
            "--connect-rate".into(),
            CHURN_RATE.to_string(),
            "--close-rate".into(),
            IDLE_CLOSE_RATE.to_string(),
            "--duration".into(),
            format!("{CHURN_HOLD_S}s"),
            "--reconnect".into(),
        ]);
        args.extend(CHURN_BACKOFF.iter().map(|s| s.to_string()));
        let end_s = (ramp + CHURN_HOLD_S) as f64 - 0.5;
        let mut c = Churn::default();
        let r = self.generate_sampled(name, &args, timeout, &mut |pid, t| {
            let t = t.as_secs_f64();
            if t >= CHURN_FROM_S && c.rss_from.is_none() {
                (c.rss_from, c.fds_from) = (vm_rss(pid), fd_count(pid));
            }
            if t <= end_s {
                (c.rss_end, c.fds_end) = (vm_rss(pid), fd_count(pid));
            }
        });
        server.stop();
        let (r, _, _) = r?;
        let conns = &r["connections"];
        c.dropped = conns["dropped"].as_f64().or(Some(0.0));
        c.reconnected = conns["reconnected"].as_f64().or(Some(0.0));
        c.open_at_end = conns["open_at_end"].as_f64();
        let ts = r["timeseries"].as_array().cloned().unwrap_or_default();
        let from = CHURN_FROM_S as u64;
        c.drops_after_from = Some(
            ts.iter()
                .filter(|s| s["second"].as_u64().is_some_and(|x| x >= from))
                .map(|s| s["connections"]["dropped"].as_f64().unwrap_or(0.0))
                .sum::<f64>(),
        );
        let show = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.0}"));
        println!(
            "  | {name}: dropped {}, reconnected {}, open at end {}, drops from {from} s {}, RSS {} → {} kB, fds {} → {}",
            show(c.dropped),
            show(c.reconnected),
            show(c.open_at_end),
            show(c.drops_after_from),
            show(c.rss_from.map(|b| b / 1e3)),
            show(c.rss_end.map(|b| b / 1e3)),
            show(c.fds_from),
            show(c.fds_end),
        );
        Ok(c)
    }

    /// The churn runs and their rows (section 5).
    pub(super) fn churn_section(&mut self, runs: usize) {
        let (mut churns, mut plains) = (Vec::new(), Vec::new());
        for i in 0..runs {
            for (kind, fault, into) in [("churn", true, &mut churns), ("churn-plain", false, &mut plains)] {
                match self.churn_run(&format!("reconnect-{kind}-{i}"), fault) {
                    Ok(c) => into.push(c),
                    Err(e) => eprintln!("bench: reconnect {kind} run {i} failed: {e:#}"),
                }
            }
        }
        let series = |v: &[Churn], f: fn(&Churn) -> Option<f64>| Series::of(v, f);
        let what = format!(
            "reconnect churn, 20k idle conns for {CHURN_HOLD_S} s (`serve --fault {CHURN_RESET_AFTER}`, `run --reconnect {}`)",
            CHURN_BACKOFF.join(" ")
        );
        self.row(
            5,
            format!("{what}: dropped / reconnected / `open_at_end`"),
            format!(
                "{} / {} / {}",
                series(&churns, |c| c.dropped).show("", 0),
                series(&churns, |c| c.reconnected).show("", 0),
                series(&churns, |c| c.open_at_end).show("", 0)
            ),
            "",
            None,
        );
        let kb = |v: &[Churn], f: fn(&Churn) -> Option<f64>| Series(series(v, f).0.iter().map(|b| b / 1e3).collect());
        for (label, v) in [("churn", &churns), ("plain run, same flags, no drops", &plains)] {
            self.row(
                5,
                format!("{label}: loadgen RSS at {CHURN_FROM_S} s → end of the hold"),
                format!("{} → {}", kb(v, |c| c.rss_from).show(" kB", 0), kb(v, |c| c.rss_end).show(" kB", 0)),
                "",
                None,
            );
        }
        let fd_same =
            (!churns.is_empty()).then(|| churns.iter().all(|c| c.fds_from.is_some() && c.fds_from == c.fds_end));
        let fds_text = if churns.is_empty() {
            na("churn run")
        } else {
            churns
                .iter()
                .map(|c| format!("{} → {}", c.fds_from.unwrap_or(-1.0), c.fds_end.unwrap_or(-1.0)))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        self.row(5, "churn: loadgen fds at the same points, per run", fds_text, "equal", fd_same);
        let per = series(&churns, |c| {
            let drops = c.drops_after_from.filter(|&d| d > 0.0)?;
            Some(growth(c)? / drops)
        });
        let plain = series(&plains, growth).median();
        let beyond = per
            .median()
            .zip(plain)
            .zip(churns.first().and_then(|c| c.drops_after_from))
            .map(|((p, g), d)| p - g / d.max(1.0));
        self.row(
            5,
            format!("churn: RSS growth from {CHURN_FROM_S} s ÷ drops (each reconnected) in that time"),
            per.show(" B", 1),
            "",
            None,
        );
        self.row(
            5,
            "churn: that growth per reconnect beyond the plain run's growth in the same time",
            beyond.map_or_else(|| na("churn and plain run"), |b| format!("{b:.1} B")),
            &format!("≤ {CHURN_GOAL_B} B (no growth per reconnect)"),
            beyond.map(|b| b <= CHURN_GOAL_B),
        );
    }
}

/// How the churn figures are taken (the notes of `docs/benchmarks.md`).
pub(super) fn note() -> String {
    format!(
        "Reconnect churn (section 5): 20,000 idle connections at {CHURN_RATE}/s against `loadgen serve --mode sink \
         --threads 2 --fault {CHURN_RESET_AFTER}`, `loadgen run --idle --duration {CHURN_HOLD_S}s --reconnect {}`; the \
         plain run has the same flags and no fault. VmRSS and the fd count \
         of the loadgen process are read at {CHURN_FROM_S} s and 0.5 s before the hold ends; drops are summed over the \
         timeseries seconds from {CHURN_FROM_S} s. \"Beyond the plain run\" subtracts the plain run's RSS growth (its \
         per-second records) spread over the churn run's drops.",
        CHURN_BACKOFF.join(" ")
    )
}
