//! Sections 5 and 6 of `cargo xtask bench --engine-only` (issue 16):
//!
//! 5. reconnect storm: 20,000 idle connections against `loadgen serve --mode sink
//!    --threads 2 --fault reset-all-at=5s`, `loadgen run --reconnect` with a paced
//!    backoff (full jitter, 1 s initial ceiling, 5 s largest); every dropped connection
//!    should come back into its slot. Figures: dropped, reconnected, gave up, the
//!    reconnect rate, the time to recover, the held count at the end, the loadgen
//!    process's fd count and RSS at the start and the end of the hold, and its peak RSS
//!    against a plain run of the same length (the same flags, no fault).
//! 6. regression checks (`--only regress`): held idle memory at 20k and 100k and echo
//!    CPU per 1M round trips, WebSocket and raw TCP, against the session-3 figures
//!    recorded in docs/benchmarks.md.
//!
//! `loadgen run` exits 1 when a check fails (a dropped connection is one) and 4 when
//! the generator was saturated: the storm exits 1 by design, so exit codes are not
//! judged here, report.json is.

use std::fs;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::{
    Bench, GOAL_BYTES_PER_CONN, GOAL_WS_VS_RAW_CPU, IDLE_CLOSE_RATE, Options, Series, echo_figures, na, num, run_args,
    vm_rss,
};
use crate::demo::thousands;

/// The storm: connections, connect rate, hold, when the target resets everything
/// (after its start; the run starts right after the target, the ramp takes 2 s).
const STORM_CONNS: u64 = 20_000;
const STORM_RATE: u64 = 10_000;
const STORM_HOLD_S: u64 = 15;
const STORM_RESET_AT_S: u64 = 5;
/// The second storm of the double run (`--fault close-all-at`), to tell a one-time
/// high-water mark of RSS from growth per storm.
const STORM_CLOSE_AT_S: u64 = 10;
/// `serve --threads`: each thread < 19,000 connections under RLIMIT_NOFILE 20,000.
const STORM_SERVE_THREADS: u64 = 2;
const STORM_BACKOFF: [&str; 6] = ["--reconnect-initial", "1s", "--reconnect-max", "5s", "--reconnect-limit", "8"];
/// The storm's peak RSS may exceed the plain run's by this factor at most.
const STORM_RSS_FACTOR: f64 = 1.05;

/// Session-3 figures (docs/benchmarks.md) the regression checks compare with.
const S3_WS_CPU_PER_M: f64 = 9.60;
const S3_RAW_CPU_PER_M: f64 = 8.40;
/// Marginal RSS per idle connection: session 2 (60k → 200k), session 3 (100k → 500k).
const S2_MARGINAL_B: f64 = 296.0;
const REGRESS_TOLERANCE: f64 = 0.05;
/// Regression idle sizes and rate (10,000/s: every 100k connection comes up on the
/// pinned setup, whose connect ceiling is ≈ 19k/s).
const REGRESS_IDLE: [u64; 2] = [20_000, 100_000];
const REGRESS_IDLE_RATE: u64 = 10_000;

/// One sample of the generator process: seconds since its start, fds, RSS bytes.
#[derive(Clone, Copy)]
struct Sample {
    t: f64,
    fds: Option<f64>,
    rss: Option<f64>,
}

/// The last sample at or before `t` seconds.
fn sample_at(samples: &[Sample], t: f64) -> Option<Sample> {
    samples.iter().rev().find(|s| s.t <= t).copied()
}

pub(super) fn fd_count(pid: u32) -> Option<f64> {
    Some(fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as f64)
}

/// Figures of one storm (or plain) run.
#[derive(Default)]
struct Storm {
    dropped: Option<f64>,
    causes: String,
    attempts: Option<f64>,
    reconnected: Option<f64>,
    gave_up: Option<f64>,
    open_at_end: Option<f64>,
    open_before: Option<f64>,
    open_min_after: Option<f64>,
    recover_p50: Option<f64>,
    recover_p99: Option<f64>,
    recover_max: Option<f64>,
    /// reconnected ÷ seconds from the first second with drops to the last with an
    /// establishment (timeseries, 1 s resolution), and that span.
    rate: Option<f64>,
    span_s: Option<f64>,
    peak_rss: Option<f64>,
    fds_start: Option<f64>,
    fds_end: Option<f64>,
    rss_start: Option<f64>,
    /// 0.5 s before the second storm of the double run.
    rss_mid: Option<f64>,
    rss_end: Option<f64>,
    verdict: String,
}

/// Which faults the target is given.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Faults {
    None,
    Reset,
    /// `reset-all-at=5s` then `close-all-at=10s`.
    ResetThenClose,
}

fn field(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// The storm's figures from report.json; `reset_at` the reset's time after the run's
/// start (seconds), `hold_end` the end of the hold.
fn storm_figures(r: &Value, samples: &[Sample], reset_at: f64, hold_end: f64) -> Storm {
    let c = &r["connections"];
    let rec = &r["latency_us"]["recover"];
    let ts = r["timeseries"].as_array().cloned().unwrap_or_default();
    let conn = |s: &Value, k: &str| s["connections"][k].as_f64().unwrap_or(0.0);
    let drop_sec = ts.iter().position(|s| conn(s, "dropped") > 0.0);
    let mut st = Storm {
        dropped: field(&c["dropped"]).or(Some(0.0)),
        causes: c["dropped_by_cause"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "))
            .unwrap_or_default(),
        attempts: field(&c["reconnect_attempts"]).or(Some(0.0)),
        reconnected: field(&c["reconnected"]).or(Some(0.0)),
        gave_up: field(&c["reconnect_gave_up"]).or(Some(0.0)),
        open_at_end: field(&c["open_at_end"]),
        recover_p50: field(&rec["p50"]),
        recover_p99: field(&rec["p99"]),
        recover_max: field(&rec["max"]),
        peak_rss: field(&r["generator"]["peak_rss_bytes"]),
        verdict: r["verdict"].as_str().unwrap_or("?").to_string(),
        ..Storm::default()
    };
    // Before the reset: the level at the end of the second before the first drop (a
    // plain run: the sample point's second).
    let before = drop_sec.map_or(reset_at as usize, |d| d.saturating_sub(1));
    st.open_before = ts.get(before).map(|s| conn(s, "open"));
    if let Some(d) = drop_sec {
        st.open_min_after = ts[d..].iter().map(|s| conn(s, "open")).reduce(f64::min);
        if let Some(last) = ts.iter().rposition(|s| conn(s, "established") > 0.0).filter(|&l| l >= d) {
            let span = (last - d + 1) as f64;
            st.span_s = Some(span);
            st.rate = st.reconnected.map(|n| n / span);
        }
    }
    let start = sample_at(samples, reset_at - 0.5);
    let end = sample_at(samples, hold_end - 0.5);
    st.fds_start = start.and_then(|s| s.fds);
    st.fds_end = end.and_then(|s| s.fds);
    st.rss_start = start.and_then(|s| s.rss);
    st.rss_end = end.and_then(|s| s.rss);
    st.rss_mid = sample_at(samples, STORM_CLOSE_AT_S as f64 - 0.5).and_then(|s| s.rss);
    st
}

impl Bench {
    /// One 20k idle run; the target resets every connection at 5 s (and closes every
    /// one at 10 s) as `faults` says.
    fn storm_run(&mut self, name: &str, faults: Faults) -> Result<Storm> {
        if self.catch.received() > 0 {
            bail!("interrupted (Ctrl-C)");
        }
        let ramp = STORM_CONNS / STORM_RATE;
        let timeout = Duration::from_secs(ramp + STORM_HOLD_S + 120);
        let mut extra: Vec<String> = Vec::new();
        if faults != Faults::None {
            extra.extend(["--fault".into(), format!("reset-all-at={STORM_RESET_AT_S}s")]);
        }
        if faults == Faults::ResetThenClose {
            extra.extend(["--fault".into(), format!("close-all-at={STORM_CLOSE_AT_S}s")]);
        }
        let mut server = self.serve_with(false, "sink", STORM_SERVE_THREADS, timeout.as_secs() + 120, &extra)?;
        let mut args = run_args(false, server.port().context("server port")?, STORM_CONNS);
        args.extend([
            "--idle".into(),
            "--connect-rate".into(),
            STORM_RATE.to_string(),
            "--close-rate".into(),
            IDLE_CLOSE_RATE.to_string(),
            "--duration".into(),
            format!("{STORM_HOLD_S}s"),
            "--reconnect".into(),
        ]);
        args.extend(STORM_BACKOFF.iter().map(|s| s.to_string()));
        let mut samples = Vec::new();
        let r = self.generate_sampled(name, &args, timeout, &mut |pid, t| {
            samples.push(Sample { t: t.as_secs_f64(), fds: fd_count(pid), rss: vm_rss(pid) });
        });
        server.stop();
        let (r, _, _) = r?;
        let st = storm_figures(&r, &samples, STORM_RESET_AT_S as f64, (ramp + STORM_HOLD_S) as f64);
        println!(
            "  | {name}: dropped {} ({}), reconnected {}, attempts {}, gave up {}, open before {} / min after {} / at \
             end {}, recover p50/p99/max {}/{}/{} µs, rate {}/s over {} s, fds {} → {}, RSS {} → {} → {} MB, peak \
             {} MB, verdict {}",
            show(st.dropped),
            st.causes,
            show(st.reconnected),
            show(st.attempts),
            show(st.gave_up),
            show(st.open_before),
            show(st.open_min_after),
            show(st.open_at_end),
            show(st.recover_p50),
            show(st.recover_p99),
            show(st.recover_max),
            show(st.rate),
            show(st.span_s),
            show(st.fds_start),
            show(st.fds_end),
            show(st.rss_start.map(|b| b / 1e6)),
            show(st.rss_mid.map(|b| b / 1e6)),
            show(st.rss_end.map(|b| b / 1e6)),
            show(st.peak_rss.map(|b| b / 1e6)),
            st.verdict,
        );
        Ok(st)
    }

    /// Section 5: the reconnect storm and a plain run of the same length, alternating.
    pub(super) fn reconnect_section(&mut self, _opts: &Options, runs: usize) {
        let (mut storms, mut plains, mut doubles) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..runs {
            for (kind, faults, into) in [
                ("storm", Faults::Reset, &mut storms),
                ("plain", Faults::None, &mut plains),
                ("double", Faults::ResetThenClose, &mut doubles),
            ] {
                match self.storm_run(&format!("reconnect-{kind}-{i}"), faults) {
                    Ok(s) => into.push(s),
                    Err(e) => eprintln!("bench: reconnect {kind} run {i} failed: {e:#}"),
                }
            }
        }
        let series = |v: &[Storm], f: fn(&Storm) -> Option<f64>| Series::of(v, f);
        let n = thousands(STORM_CONNS);
        let what = format!(
            "reconnect storm, {n} idle conns (`serve --mode sink --threads {STORM_SERVE_THREADS} --fault \
             reset-all-at={STORM_RESET_AT_S}s`, `run --reconnect {}`)",
            STORM_BACKOFF.join(" ")
        );
        let dropped = series(&storms, |s| s.dropped);
        let all = STORM_CONNS as f64;
        self.row(
            5,
            format!("{what}: connections dropped (`connections.dropped`)"),
            dropped.show("", 0),
            &n,
            dropped.median().map(|d| d >= all),
        );
        let causes = if storms.is_empty() {
            na("storm run")
        } else {
            storms.iter().map(|s| s.causes.clone()).collect::<Vec<_>>().join(" / ")
        };
        self.row(5, "storm: dropped by cause, per run", causes, "", None);
        let reconnected = series(&storms, |s| s.reconnected);
        let gave_up = series(&storms, |s| s.gave_up);
        let every = (!storms.is_empty())
            .then(|| storms.iter().all(|s| s.reconnected >= s.dropped && s.gave_up.unwrap_or(0.0) == 0.0));
        self.row(5, "storm: reconnected (`connections.reconnected`)", reconnected.show("", 0), "all dropped", every);
        self.row(5, "storm: gave up (`connections.reconnect_gave_up`)", gave_up.show("", 0), "0", every);
        self.row(
            5,
            "storm: reconnect attempts (`connections.reconnect_attempts`)",
            series(&storms, |s| s.attempts).show("", 0),
            "",
            None,
        );
        self.row(
            5,
            "storm: reconnect rate (reconnected ÷ seconds from the first second with drops to the last with an \
             establishment)",
            series(&storms, |s| s.rate).show("/s", 0),
            "",
            None,
        );
        self.row(5, "storm: that span", series(&storms, |s| s.span_s).show(" s", 0), "", None);
        self.row(
            5,
            "storm: reconnected ÷ time to recover max (the storm's own pace)",
            series(&storms, |s| s.reconnected.zip(s.recover_max).map(|(n, us)| n / (us / 1e6))).show("/s", 0),
            "",
            None,
        );
        for (label, f) in [
            ("p50", (|s: &Storm| s.recover_p50) as fn(&Storm) -> Option<f64>),
            ("p99", |s: &Storm| s.recover_p99),
            ("max", |s: &Storm| s.recover_max),
        ] {
            let ms = series(&storms, f);
            let ms = Series(ms.0.iter().map(|us| us / 1e3).collect());
            self.row(5, format!("storm: time to recover {label} (`latency_us.recover`)"), ms.show(" ms", 0), "", None);
        }
        self.row(
            5,
            "storm: held before the reset / lowest after / `open_at_end`",
            format!(
                "{} / {} / {}",
                series(&storms, |s| s.open_before).show("", 0),
                series(&storms, |s| s.open_min_after).show("", 0),
                series(&storms, |s| s.open_at_end).show("", 0)
            ),
            &format!("`open_at_end` {n}"),
            (!storms.is_empty()).then(|| storms.iter().all(|s| s.open_at_end >= Some(all))),
        );
        let fds = |v: &[Storm]| {
            if v.is_empty() {
                return na("run");
            }
            v.iter().map(|s| format!("{} → {}", show(s.fds_start), show(s.fds_end))).collect::<Vec<_>>().join(" / ")
        };
        let fd_same =
            (!storms.is_empty()).then(|| storms.iter().all(|s| s.fds_start.is_some() && s.fds_start == s.fds_end));
        self.row(
            5,
            "storm: loadgen fds (`ls /proc/PID/fd`) before the reset → end of the hold, per run",
            fds(&storms),
            "equal",
            fd_same,
        );
        self.row(5, "plain 20k run (no fault): fds at the same points, per run", fds(&plains), "", None);
        let mb = |v: &[Storm], f: fn(&Storm) -> Option<f64>| {
            Series(series(v, f).0.iter().map(|b| b / 1e6).collect::<Vec<_>>())
        };
        self.row(
            5,
            "storm: loadgen RSS before the reset → end of the hold",
            format!("{} → {}", mb(&storms, |s| s.rss_start).show(" MB", 1), mb(&storms, |s| s.rss_end).show(" MB", 1)),
            "",
            None,
        );
        self.row(
            5,
            "plain 20k run: loadgen RSS at the same points",
            format!("{} → {}", mb(&plains, |s| s.rss_start).show(" MB", 1), mb(&plains, |s| s.rss_end).show(" MB", 1)),
            "",
            None,
        );
        self.row(
            5,
            format!(
                "double storm (`--fault reset-all-at={STORM_RESET_AT_S}s --fault close-all-at={STORM_CLOSE_AT_S}s`): \
                 dropped / reconnected / `open_at_end`"
            ),
            format!(
                "{} / {} / {}",
                series(&doubles, |s| s.dropped).show("", 0),
                series(&doubles, |s| s.reconnected).show("", 0),
                series(&doubles, |s| s.open_at_end).show("", 0)
            ),
            "",
            None,
        );
        self.row(
            5,
            "double storm: loadgen RSS before the first storm → before the second → end of the hold",
            format!(
                "{} → {} → {}",
                mb(&doubles, |s| s.rss_start).show(" MB", 1),
                mb(&doubles, |s| s.rss_mid).show(" MB", 1),
                mb(&doubles, |s| s.rss_end).show(" MB", 1)
            ),
            "no growth by the 2nd storm",
            {
                let (m, e) = (mb(&doubles, |s| s.rss_mid).median(), mb(&doubles, |s| s.rss_end).median());
                m.zip(e).map(|(m, e)| e <= m * 1.02)
            },
        );
        self.row(5, "double storm: fds, per run", fds(&doubles), "equal", {
            (!doubles.is_empty()).then(|| doubles.iter().all(|s| s.fds_start.is_some() && s.fds_start == s.fds_end))
        });
        let (sp, pp) = (mb(&storms, |s| s.peak_rss), mb(&plains, |s| s.peak_rss));
        self.row(5, "storm: generator peak RSS (`generator.peak_rss_bytes`)", sp.show(" MB", 1), "", None);
        self.row(5, "plain 20k run, same flags and length, no fault: generator peak RSS", pp.show(" MB", 1), "", None);
        match sp.median().zip(pp.median()) {
            Some((s, p)) => self.row(
                5,
                "storm peak RSS ÷ plain peak RSS",
                format!("{:.3}×", s / p),
                "≤ 1.05×",
                Some(s / p <= STORM_RSS_FACTOR),
            ),
            None => self.row(5, "storm peak RSS ÷ plain peak RSS", na("storm and plain run"), "≤ 1.05×", None),
        }
        let verdicts = storms.iter().map(|s| s.verdict.clone()).collect::<Vec<_>>().join(" / ");
        self.row(5, "storm: report verdict, per run (a drop fails the default checks)", verdicts, "", None);
    }

    /// Section 6: idle memory at 20k/100k and echo CPU against session 3.
    pub(super) fn regress_section(&mut self, opts: &Options, runs: usize) {
        let mut meds: Vec<(u64, Option<f64>, Option<f64>)> = Vec::new();
        for &n in &REGRESS_IDLE {
            let (mut est, mut rss, mut bpc) = (Series::default(), Series::default(), Series::default());
            for i in 0..runs {
                let name = format!("regress-idle-{n}-{i}");
                match self.conns(&name, n, REGRESS_IDLE_RATE, false, 5, false) {
                    Ok(c) => {
                        est.push(Some(c.established));
                        rss.push(c.peak_rss);
                        bpc.push(c.bytes_per_conn);
                    }
                    Err(e) => eprintln!("bench: {name} failed: {e:#}"),
                }
            }
            let label = format!("regress: idle {} at {}/s", thousands(n), thousands(REGRESS_IDLE_RATE));
            self.row(6, format!("{label}: established"), est.show("", 0), "all", est.median().map(|e| e >= n as f64));
            self.row(
                6,
                format!("{label}: generator peak RSS"),
                Series(rss.0.iter().map(|b| b / 1e6).collect()).show(" MB", 1),
                "",
                None,
            );
            self.row(6, format!("{label}: `generator.bytes_per_connection`"), bpc.show(" B", 0), "", None);
            meds.push((n, est.median(), rss.median()));
        }
        let figure = "regress: idle marginal RSS, peak RSS delta ÷ established delta, 20,000 → 100,000";
        match (meds[0], meds[1]) {
            ((_, Some(e1), Some(r1)), (_, Some(e2), Some(r2))) if e2 > e1 => {
                let per = (r2 - r1) / (e2 - e1);
                self.row(
                    6,
                    format!("{figure} (session 2, 60k → 200k: {S2_MARGINAL_B:.0} B)"),
                    format!("{per:.0} B"),
                    "≤ 512 B",
                    Some(per <= GOAL_BYTES_PER_CONN),
                );
            }
            _ => self.row(6, figure, na("pair of idle runs"), "≤ 512 B", None),
        }

        let hold = opts.echo_hold_s();
        let (mut ws_cpu, mut raw_cpu, mut ws_rate, mut raw_rate) = Default::default();
        for i in 0..runs {
            for (raw, cpu, rate) in [(false, &mut ws_cpu, &mut ws_rate), (true, &mut raw_cpu, &mut raw_rate)] {
                let name = format!("regress-echo-{}-{i}", if raw { "raw" } else { "ws" });
                match self.loadgen_echo(&name, raw, hold, None) {
                    Ok(r) => {
                        let e = echo_figures(&r);
                        Series::push(cpu, e.cpu_per_m);
                        Series::push(rate, e.rate);
                    }
                    Err(e) => eprintln!("bench: {name} failed: {e:#}"),
                }
            }
        }
        let what = format!("1,000 conns, 64 B, closed loop, {hold} s");
        self.row(6, format!("regress: echo {what}: WebSocket round trips/s"), ws_rate.show("", 0), "", None);
        self.row(6, "regress: echo: raw-TCP round trips/s", raw_rate.show("", 0), "", None);
        for (label, s, before) in [("WebSocket", &ws_cpu, S3_WS_CPU_PER_M), ("raw-TCP", &raw_cpu, S3_RAW_CPU_PER_M)] {
            let m = s.median();
            let measured = match m {
                Some(v) => {
                    format!("{} ({:+.1}% vs session 3's {before:.2})", s.show("", 2), 100.0 * (v / before - 1.0))
                }
                None => s.show("", 2),
            };
            self.row(
                6,
                format!("regress: echo: {label} generator CPU-s per 1M round trips"),
                measured,
                &format!("within 5% of {before:.2} (or lower)"),
                m.map(|v| v <= before * (1.0 + REGRESS_TOLERANCE)),
            );
        }
        match ws_cpu.median().zip(raw_cpu.median()) {
            Some((w, r)) => self.row(
                6,
                "regress: echo: WebSocket CPU ÷ raw-TCP CPU per round trip (session 3: 1.14×)",
                format!("{:.2}×", w / r),
                "≤ 1.2×",
                Some(w / r <= GOAL_WS_VS_RAW_CPU),
            ),
            None => self.row(6, "regress: echo: WebSocket CPU ÷ raw-TCP CPU", na("echo runs"), "≤ 1.2×", None),
        }
    }
}

fn show(v: Option<f64>) -> String {
    v.map_or("?".into(), |v| num(v, 0))
}

/// How section 5 is measured, for the table's notes.
pub(super) fn note() -> String {
    format!(
        "(5) {} idle connections at {}/s against `serve --mode sink --threads {STORM_SERVE_THREADS} --fault \
         reset-all-at={STORM_RESET_AT_S}s` (T counts from the target's start; the run starts right after it, so the \
         reset falls ≈ {} s into the {STORM_HOLD_S} s hold), `run --reconnect {}` (full jitter). Each storm run is \
         followed by a plain run with the same flags and no fault, and a double storm (`--fault \
         close-all-at={STORM_CLOSE_AT_S}s` added: every connection dropped twice), whose RSS 0.5 s before each storm \
         and at the end tells a one-time high-water mark from growth per storm. Reconnect rate: `connections.reconnected` ÷ the \
         timeseries seconds from the first with `connections.dropped` > 0 to the last with `connections.established` \
         > 0 (1 s resolution). fds: `/proc/PID/fd` of the loadgen process 0.5 s before the reset and 0.5 s before \
         the hold ends (io_uring direct descriptors are not fds: this shows no leak of real fds); RSS: VmRSS at the \
         same points. Exit codes are not judged (a drop fails the default checks, exit 1); report.json is.",
        thousands(STORM_CONNS),
        thousands(STORM_RATE),
        STORM_RESET_AT_S - STORM_CONNS / STORM_RATE,
        STORM_BACKOFF.join(" "),
    )
}

pub(super) fn regress_note() -> String {
    format!(
        "(6) `--only regress`: idle {} and {} at {}/s (5 s hold, `serve --threads` as in (1)) and closed-loop echo \
         as in (3), WebSocket and raw TCP alternating, compared with session 3 of docs/benchmarks.md (9.60 and \
         8.40 CPU-s per 1M round trips; marginal idle RSS ≈ 300 B per connection).",
        thousands(REGRESS_IDLE[0]),
        thousands(REGRESS_IDLE[1]),
        thousands(REGRESS_IDLE_RATE),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn storm_figures_from_timeseries() {
        let sec = |est: u64, dropped: u64, open: u64| json!({"connections": {"established": est, "dropped": dropped, "open": open}});
        let r = json!({
            "connections": {"dropped": 100, "reconnected": 100, "open_at_end": 100, "reconnect_attempts": 120},
            "latency_us": {"recover": {"p50": 500_000, "p99": 990_000, "max": 1_200_000}},
            "generator": {"peak_rss_bytes": 1e7},
            "verdict": "fail",
            "timeseries": [sec(60, 0, 60), sec(40, 0, 100), sec(0, 0, 100), sec(30, 100, 30), sec(70, 0, 100), sec(0, 0, 100)],
        });
        let samples =
            [Sample { t: 2.4, fds: Some(9.0), rss: Some(1.0) }, Sample { t: 5.4, fds: Some(9.0), rss: Some(2.0) }];
        let st = storm_figures(&r, &samples, 3.0, 6.0);
        assert_eq!(st.open_before, Some(100.0));
        assert_eq!(st.open_min_after, Some(30.0));
        assert_eq!(st.span_s, Some(2.0));
        assert_eq!(st.rate, Some(50.0));
        assert_eq!(st.gave_up, Some(0.0));
        assert_eq!((st.fds_start, st.fds_end), (Some(9.0), Some(9.0)));
        assert_eq!((st.rss_start, st.rss_end), (Some(1.0), Some(2.0)));
        assert_eq!(st.verdict, "fail");
    }
}
