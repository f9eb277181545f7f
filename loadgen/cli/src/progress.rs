//! Live progress of `loadgen run`, once per merged second (the engine's
//! `run_with_progress` callback, on the collecting thread):
//!
//! - `panel`: a compact block of lines redrawn in place (ANSI cursor-up and clear-line)
//!   on a terminal;
//! - `plain`: one greppable `key=value` line per second, for CI logs and pipes;
//! - `json`: one JSON object per second on stdout (fields in docs/metrics.md); the
//!   human-readable output (plan, summary, report path) then goes to stderr so stdout
//!   stays pure JSON lines;
//! - `--quiet`: nothing per second, only the summary.
//!
//! Every figure is the engine's measurement of that second (`SecondStats`), except the
//! phase (derived from the configured connect rate, connection count, hold and close
//! rate) and the generator CPU (this process's utime + stime from /proc over the wall
//! time since the previous progress update). This module does not measure latency,
//! write the report or print the summary.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::Instant;

use clap::Args;
use loadgen_engine::run::RunConfig;
use loadgen_engine::stats::{SecondStats, procfs};
use serde_json::json;

use crate::summary::{latency, thousands};

/// `--progress`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressArg {
    /// A redrawn panel when stdout is a terminal, plain lines otherwise.
    Auto,
    /// The redrawn panel (ANSI escape codes), even when stdout is not a terminal.
    Panel,
    /// One `key=value` line per second.
    Plain,
    /// One JSON object per second on stdout; the summary goes to stderr.
    Json,
}

/// Output flags of `loadgen run`.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Live progress once a second: auto (panel on a terminal, plain lines otherwise),
    /// panel, plain (one greppable line per second) or json (one JSON object per second
    /// on stdout; plan, summary and report path then go to stderr).
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
    progress: ProgressArg,
    /// Nothing per second, no plan, no summary: one JSON line on stdout at the end
    /// (verdict, exit code, key figures, failed checks, files written), for scripts.
    /// Warnings, errors and failed checks still go to stderr.
    #[arg(long, short = 'q', conflicts_with = "progress")]
    quiet: bool,
    /// Also write the verdict as JUnit XML to FILE: each check a test case (CI test
    /// reports).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<std::path::PathBuf>,
    /// Serve the live per-second figures in Prometheus text on ADDR (e.g.
    /// 127.0.0.1:9464, port 0: any free port) at /metrics while the run lasts;
    /// names in docs/prometheus.md.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// With --metrics-addr: keep serving this long after the run ended (its final
    /// figures and `loadgen_run_verdict`), so a scraper sees the end; e.g. 5s.
    #[arg(long, value_name = "DURATION", default_value = "0s", requires = "metrics_addr", value_parser = crate::run_args::parse_duration)]
    pub metrics_linger: std::time::Duration,
}

/// How progress is shown, resolved from the flags and stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Redrawn panel.
    Panel,
    /// Plain lines.
    Plain,
    /// JSON lines.
    Json,
    /// Nothing per second.
    Quiet,
}

impl OutputArgs {
    /// The mode for these flags; `auto` draws the panel when stdout is a terminal
    /// (and `TERM` is not `dumb`).
    pub fn mode(&self) -> Mode {
        match (self.quiet, self.progress) {
            (true, _) => Mode::Quiet,
            (_, ProgressArg::Panel) => Mode::Panel,
            (_, ProgressArg::Plain) => Mode::Plain,
            (_, ProgressArg::Json) => Mode::Json,
            (_, ProgressArg::Auto) => {
                let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
                if std::io::stdout().is_terminal() && !dumb { Mode::Panel } else { Mode::Plain }
            }
        }
    }
}

/// The run's planned phases, from its configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timeline {
    /// Ramp-up: connections / connect rate, seconds.
    pub ramp_s: f64,
    /// Hold, seconds.
    pub hold_s: f64,
    /// Ramp-down: connections / close rate, seconds.
    pub down_s: f64,
    /// Connections to hold.
    pub target: u64,
}

impl Timeline {
    /// The timeline of `config`.
    pub fn of(config: &RunConfig) -> Self {
        let n = f64::from(config.connections);
        Self {
            ramp_s: config.ramp().as_secs_f64(),
            hold_s: config.hold.as_secs_f64(),
            down_s: n / config.close_rate,
            target: u64::from(config.connections),
        }
    }

    /// Planned length of the run, seconds.
    pub fn planned_s(&self) -> f64 {
        self.ramp_s + self.hold_s + self.down_s
    }

    /// The phase at `t` seconds after the start (`stopping` after Ctrl-C).
    pub fn phase(&self, t: f64, stopping: bool) -> &'static str {
        if stopping {
            "stopping"
        } else if t <= self.ramp_s {
            "ramp-up"
        } else if t <= self.ramp_s + self.hold_s {
            "hold"
        } else {
            "ramp-down"
        }
    }
}

/// What one progress update shows.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Second of the run (from 0).
    pub second: u64,
    /// Seconds elapsed at the end of that second.
    pub elapsed_s: u64,
    /// Planned length of the run, seconds.
    pub planned_s: f64,
    /// Phase at the end of that second.
    pub phase: &'static str,
    /// Open connections at the end of the second.
    pub open: u64,
    /// Connections to hold.
    pub target: u64,
    /// Connection starts submitted in the second.
    pub attempted: u64,
    /// Connections established in the second (the connect rate achieved).
    pub established: u64,
    /// Attempts that failed in the second.
    pub failed: u64,
    /// Open connections that ended in the second.
    pub closed: u64,
    /// Messages sent in the second.
    pub sent: u64,
    /// Messages received in the second.
    pub received: u64,
    /// Message round trip p50 in the second, µs (from the intended send time).
    pub rtt_p50_us: Option<u64>,
    /// Message round trip p99 in the second, µs.
    pub rtt_p99_us: Option<u64>,
    /// Schedule-lag p99 in the second, µs.
    pub lag_p99_us: Option<u64>,
    /// Errors by kind in the second.
    pub errors: BTreeMap<&'static str, u64>,
    /// Errors since the start of the run.
    pub errors_total: u64,
    /// Generator CPU in cores (1.0 = one core busy) since the previous update.
    pub cpu_cores: Option<f64>,
    /// The second was saturated.
    pub saturated: bool,
    /// Why.
    pub saturation_reasons: Vec<String>,
}

impl Sample {
    /// Builds the sample of `s`.
    pub fn new(s: &SecondStats, timeline: &Timeline, stopping: bool, errors_total: u64, cpu: Option<f64>) -> Self {
        let elapsed_s = s.second + 1;
        let rtt = s.latency_us.message_rtt;
        Self {
            second: s.second,
            elapsed_s,
            planned_s: timeline.planned_s(),
            phase: timeline.phase(elapsed_s as f64, stopping),
            open: s.connections.open,
            target: timeline.target,
            attempted: s.connections.attempted,
            established: s.connections.established,
            failed: s.connections.failed,
            closed: s.connections.closed,
            sent: s.messages.sent,
            received: s.messages.received,
            rtt_p50_us: rtt.map(|p| p.p50),
            rtt_p99_us: rtt.map(|p| p.p99),
            lag_p99_us: s.schedule_lag_us.map(|p| p.p99),
            errors: s.errors.clone(),
            errors_total,
            cpu_cores: cpu,
            saturated: s.saturated,
            saturation_reasons: s.saturation_reasons.clone(),
        }
    }

    fn errors_second(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The plain line: `t=12s planned=25s phase=hold open=50000/50000 conn/s=0
    /// sent/s=1000 recv/s=1000 rtt_p50_us=312 rtt_p99_us=1250 errors=0 cpu=23%
    /// saturated=no`, then ` error_kinds=kind:n,...` when the second had errors. Absent
    /// values are `-`.
    pub fn plain(&self) -> String {
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        let mut line = format!(
            "t={}s planned={:.0}s phase={} open={}/{} conn/s={} sent/s={} recv/s={} rtt_p50_us={} rtt_p99_us={} \
             errors={} cpu={} saturated={}",
            self.elapsed_s,
            self.planned_s.round(),
            self.phase,
            self.open,
            self.target,
            self.established,
            self.sent,
            self.received,
            opt(self.rtt_p50_us),
            opt(self.rtt_p99_us),
            self.errors_second(),
            self.cpu_cores.map_or("-".to_string(), |c| format!("{:.0}%", c * 100.0)),
            if self.saturated { "yes" } else { "no" },
        );
        if !self.errors.is_empty() {
            let kinds: Vec<String> = self.errors.iter().map(|(k, n)| format!("{k}:{n}")).collect();
            line.push_str(&format!(" error_kinds={}", kinds.join(",")));
        }
        line
    }

    /// The JSON object (one line; fields in docs/metrics.md).
    pub fn json(&self) -> serde_json::Value {
        json!({
            "second": self.second,
            "elapsed_s": self.elapsed_s,
            "planned_s": (self.planned_s * 1e3).round() / 1e3,
            "phase": self.phase,
            "connections": {
                "open": self.open,
                "target": self.target,
                "attempted": self.attempted,
                "established": self.established,
                "failed": self.failed,
                "closed": self.closed,
            },
            "messages": { "sent": self.sent, "received": self.received },
            "rtt_p50_us": self.rtt_p50_us,
            "rtt_p99_us": self.rtt_p99_us,
            "schedule_lag_p99_us": self.lag_p99_us,
            "errors": self.errors,
            "errors_total": self.errors_total,
            "cpu_cores": self.cpu_cores.map(|c| (c * 1e3).round() / 1e3),
            "cpu_percent": self.cpu_cores.map(|c| (c * 1e3).round() / 10.0),
            "saturated": self.saturated,
            "saturation_reasons": self.saturation_reasons,
        })
    }

    /// The panel's lines (at most `width` characters each).
    pub fn panel(&self, totals: &BTreeMap<&'static str, u64>, width: usize) -> Vec<String> {
        const BAR: usize = 20;
        let done = if self.planned_s > 0.0 { (self.elapsed_s as f64 / self.planned_s).min(1.0) } else { 1.0 };
        let filled = (done * BAR as f64).round() as usize;
        let bar = format!("[{}{}]", "#".repeat(filled), "-".repeat(BAR - filled));
        let rtt = match (self.rtt_p50_us, self.rtt_p99_us) {
            (Some(p50), Some(p99)) => {
                format!("p50 {}  p99 {}  (last second, from intended send)", latency(p50), latency(p99))
            }
            _ => "no round trip completed in the last second".into(),
        };
        let errors = if self.errors_total == 0 {
            "none".to_string()
        } else {
            let mut kinds: Vec<(&str, u64)> = totals.iter().map(|(k, n)| (*k, *n)).collect();
            kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            let list: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {}", thousands(*n))).collect();
            format!(
                "{} in the last second, {} in all: {}",
                thousands(self.errors_second()),
                thousands(self.errors_total),
                list.join(", ")
            )
        };
        let cpu = self.cpu_cores.map_or("cpu unknown".to_string(), |c| format!("cpu {:.0}% ({c:.2} cores)", c * 100.0));
        let saturated = if self.saturated {
            format!("SATURATED: {}", self.saturation_reasons.join("; "))
        } else {
            "not saturated".to_string()
        };
        let lines = [
            format!("loadgen run  {}s / {:.0}s  {bar}  {}", self.elapsed_s, self.planned_s.round(), self.phase),
            format!(
                "  connections  {} / {} open  {}/s connected",
                thousands(self.open),
                thousands(self.target),
                thousands(self.established)
            ),
            format!("  messages     {}/s sent  {}/s received", thousands(self.sent), thousands(self.received)),
            format!("  round trip   {rtt}"),
            format!("  errors       {errors}"),
            format!("  generator    {cpu}  {saturated}"),
        ];
        lines.into_iter().map(|l| l.chars().take(width).collect()).collect()
    }
}

/// CPU of this process per wall second between updates.
#[derive(Debug)]
struct CpuMeter {
    last: Option<(f64, Instant)>,
    cores: Option<f64>,
}

impl CpuMeter {
    fn start() -> Self {
        Self { last: procfs::process_cpu_seconds().ok().map(|c| (c, Instant::now())), cores: None }
    }

    /// Cores used since the previous sample; seconds handed over in a burst (less than
    /// 200 ms apart, e.g. at the end of the run) keep the previous value.
    fn sample(&mut self) -> Option<f64> {
        let now = Instant::now();
        match (self.last, procfs::process_cpu_seconds().ok()) {
            (Some((cpu0, t0)), Some(cpu)) => {
                let wall = now.duration_since(t0).as_secs_f64();
                if wall >= 0.2 {
                    self.cores = Some(((cpu - cpu0) / wall).max(0.0));
                    self.last = Some((cpu, now));
                }
            }
            (None, Some(cpu)) => self.last = Some((cpu, now)),
            _ => {}
        }
        self.cores
    }
}

/// The progress display of one run.
#[derive(Debug)]
pub struct Progress {
    mode: Mode,
    timeline: Timeline,
    cpu: CpuMeter,
    totals: BTreeMap<&'static str, u64>,
    drawn: usize,
    width: usize,
}

impl Progress {
    /// Starts the display (reads the CPU baseline now).
    pub fn new(mode: Mode, config: &RunConfig) -> Self {
        Self {
            mode,
            timeline: Timeline::of(config),
            cpu: CpuMeter::start(),
            totals: BTreeMap::new(),
            drawn: 0,
            width: terminal_width().unwrap_or(100).max(20) - 1,
        }
    }

    /// Shows one second. Write errors (a closed pipe) are ignored.
    pub fn second(&mut self, s: &SecondStats, stopping: bool) {
        for (&k, &n) in &s.errors {
            *self.totals.entry(k).or_insert(0) += n;
        }
        if self.mode == Mode::Quiet {
            return;
        }
        let total = self.totals.values().sum();
        let sample = Sample::new(s, &self.timeline, stopping, total, self.cpu.sample());
        let mut out = std::io::stdout().lock();
        let _ = match self.mode {
            Mode::Plain => writeln!(out, "{}", sample.plain()),
            Mode::Json => writeln!(out, "{}", sample.json()),
            Mode::Panel => {
                let mut text = String::new();
                if self.drawn > 0 {
                    text.push_str(&format!("\x1b[{}A", self.drawn));
                }
                let lines = sample.panel(&self.totals, self.width);
                for l in &lines {
                    text.push_str("\r\x1b[2K");
                    text.push_str(l);
                    text.push('\n');
                }
                self.drawn = lines.len();
                out.write_all(text.as_bytes())
            }
            Mode::Quiet => Ok(()),
        };
        let _ = out.flush();
    }
}

/// Columns of the terminal on stdout, if it is one.
fn terminal_width() -> Option<usize> {
    // SAFETY: winsize is plain integers; TIOCGWINSZ writes one into the valid pointer.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: ioctl on fd 1 with a pointer to a local winsize.
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_col > 0).then_some(usize::from(ws.ws_col))
}

#[cfg(test)]
mod tests {
    use loadgen_engine::stats::{Percentiles, SecondConnections, SecondMessages};

    use super::*;

    fn second() -> SecondStats {
        let mut s = SecondStats {
            second: 11,
            connections: SecondConnections {
                attempted: 0,
                established: 0,
                failed: 0,
                closed: 0,
                dropped: 0,
                reconnect_attempts: 0,
                open: 500,
                peak_open: 500,
            },
            messages: SecondMessages {
                sent: 1000,
                received: 998,
                bytes_sent: 64_000,
                bytes_received: 63_872,
                late: 0,
                lost: 0,
            },
            latency_us: Default::default(),
            schedule_lag_us: Some(Percentiles { count: 1000, p50: 20, p90: 40, p99: 90, p999: 120, max: 130 }),
            connect_lag_us: None,
            cq_overflow: 0,
            buffer_ring_exhausted: 0,
            saturated: false,
            saturation_reasons: Vec::new(),
            errors: BTreeMap::from([("server_closed", 2)]),
        };
        s.latency_us.message_rtt =
            Some(Percentiles { count: 998, p50: 312, p90: 600, p99: 1250, p999: 2000, max: 2100 });
        s
    }

    const TIMELINE: Timeline = Timeline { ramp_s: 0.5, hold_s: 20.0, down_s: 0.5, target: 500 };

    #[test]
    fn phases_follow_the_configured_ramp_hold_and_ramp_down() {
        assert_eq!(TIMELINE.planned_s(), 21.0);
        assert_eq!(TIMELINE.phase(0.4, false), "ramp-up");
        assert_eq!(TIMELINE.phase(1.0, false), "hold");
        assert_eq!(TIMELINE.phase(20.5, false), "hold");
        assert_eq!(TIMELINE.phase(21.0, false), "ramp-down");
        assert_eq!(TIMELINE.phase(3.0, true), "stopping");
    }

    #[test]
    fn plain_line_is_greppable() {
        let s = Sample::new(&second(), &TIMELINE, false, 5, Some(0.234));
        assert_eq!(
            s.plain(),
            "t=12s planned=21s phase=hold open=500/500 conn/s=0 sent/s=1000 recv/s=998 rtt_p50_us=312 \
             rtt_p99_us=1250 errors=2 cpu=23% saturated=no error_kinds=server_closed:2"
        );
        let mut quiet = second();
        quiet.errors.clear();
        quiet.latency_us.message_rtt = None;
        let line = Sample::new(&quiet, &TIMELINE, false, 0, None).plain();
        assert!(line.ends_with("rtt_p50_us=- rtt_p99_us=- errors=0 cpu=- saturated=no"), "{line}");
    }

    #[test]
    fn json_carries_the_documented_fields() {
        let v = Sample::new(&second(), &TIMELINE, false, 5, Some(0.234)).json();
        assert_eq!(v["second"], 11);
        assert_eq!(v["elapsed_s"], 12);
        assert_eq!(v["phase"], "hold");
        assert_eq!(v["connections"]["open"], 500);
        assert_eq!(v["connections"]["target"], 500);
        assert_eq!(v["messages"]["received"], 998);
        assert_eq!(v["rtt_p99_us"], 1250);
        assert_eq!(v["schedule_lag_p99_us"], 90);
        assert_eq!(v["errors"]["server_closed"], 2);
        assert_eq!(v["errors_total"], 5);
        assert_eq!(v["cpu_percent"], 23.4);
        assert_eq!(v["saturated"], false);
        assert!(!v.to_string().contains('\n'));
    }

    #[test]
    fn panel_has_fixed_lines_within_the_width() {
        let totals = BTreeMap::from([("server_closed", 5)]);
        let sample = Sample::new(&second(), &TIMELINE, false, 5, Some(1.5));
        let narrow = sample.panel(&totals, 40);
        assert_eq!(narrow.len(), 6);
        assert!(narrow.iter().all(|l| l.chars().count() <= 40), "{narrow:#?}");
        let lines = sample.panel(&totals, 200);
        assert!(lines[0].starts_with("loadgen run  12s / 21s  [###########---------]  hold"), "{}", lines[0]);
        assert!(lines[3].contains("p50 312 µs  p99 1.25 ms"), "{}", lines[3]);
        assert!(lines[4].contains("2 in the last second, 5 in all: server_closed 5"), "{}", lines[4]);
        assert!(lines[5].contains("cpu 150% (1.50 cores)"), "{}", lines[5]);
    }
}
