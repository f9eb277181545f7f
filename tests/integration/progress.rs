//! Live progress, the end-of-run summary, `--version` and `loadgen doctor`, as a user
//! sees them: `loadgen run` in a real pseudo-terminal (the redrawn panel), with stdout
//! a pipe (plain lines), in json mode and quiet; each run small (50 connections, a 2 s
//! hold) against `loadgen serve` on port 0.

use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub(crate) fn loadgen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("loadgen-it-progress-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// `loadgen serve --mode echo` on a free port, stopped (SIGTERM) on drop.
pub(crate) struct Server {
    child: Child,
    pub(crate) url: String,
}

impl Server {
    pub(crate) fn start() -> Self {
        let mut child = loadgen()
            .args(["serve", "--mode", "echo", "--threads", "1", "--duration", "60"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("loadgen serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("first line {line:?}")).to_owned();
        Self { child, url }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// A small echo run: 50 connections, a 2 s hold, 200 messages/s.
pub(crate) fn run_args(url: &str, out: &std::path::Path) -> Vec<String> {
    [
        "run",
        "--lag-threshold",
        "100ms",
        "--connect-lag-threshold",
        "500ms",
        "--target",
        url,
        "--connections",
        "50",
        "--duration",
        "2s",
        "--echo",
        "--rate",
        "200",
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([out.to_str().unwrap().to_string()])
    .collect()
}

fn report(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("report.json")).expect("report.json written")).unwrap()
}

fn output_with_timeout(mut cmd: Command) -> Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("loadgen starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    }
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("loadgen did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Output { status: child.wait().unwrap(), stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
}

/// Runs `loadgen args` with stdin, stdout and stderr on the slave side of a new
/// pseudo-terminal (80×24) and returns everything written to it and the exit code.
fn run_in_pty(args: &[String]) -> (String, Option<i32>) {
    let (mut master, mut slave) = (-1, -1);
    let ws = libc::winsize { ws_row: 24, ws_col: 80, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: openpty writes two descriptors into the valid pointers; name and termios
    // may be null; the winsize is only read.
    let rc = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &ws) };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just returned to us and are owned by nothing else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    for fd in [&master, &slave] {
        // Keep them out of processes other tests spawn meanwhile (else the slave stays
        // open there and the master never sees the end).
        // SAFETY: fcntl on a descriptor we own.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    let mut cmd = loadgen();
    cmd.args(args).env("TERM", "xterm");
    cmd.stdin(Stdio::from(slave.try_clone().unwrap()));
    cmd.stdout(Stdio::from(slave.try_clone().unwrap()));
    cmd.stderr(Stdio::from(slave));
    let mut child = cmd.spawn().expect("loadgen starts in the pty");
    drop(cmd); // closes the parent's copies of the slave
    let mut file = std::fs::File::from(master);
    let mut captured = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut exited_at = None;
    loop {
        let mut pfd = libc::pollfd { fd: file.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: poll on one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, 100) };
        if ready > 0 {
            let mut buf = [0u8; 4096];
            match file.read(&mut buf) {
                Ok(0) | Err(_) => break, // EIO: every slave descriptor is closed
                Ok(n) => captured.extend_from_slice(&buf[..n]),
            }
            continue;
        }
        if exited_at.is_none() && child.try_wait().unwrap().is_some() {
            exited_at = Some(Instant::now());
        }
        if exited_at.is_some_and(|t| t.elapsed() > Duration::from_secs(2)) {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("loadgen in the pty did not finish: {}", text(&captured));
        }
    }
    (text(&captured), child.wait().unwrap().code())
}

#[test]
fn panel_is_drawn_and_redrawn_in_a_terminal() {
    let server = Server::start();
    let out = temp_dir("pty");
    let (screen, code) = run_in_pty(&run_args(&server.url, &out));
    assert_eq!(code, Some(0), "{screen}");
    // Redraws move the cursor up over the panel and clear each line.
    assert!(screen.contains("\x1b[6A"), "cursor-up over the 6-line panel: {screen:?}");
    assert!(screen.contains("\r\x1b[2K"), "clear-line: {screen:?}");
    let elapsed: Vec<u64> = screen
        .split("loadgen run  ")
        .skip(1)
        .filter_map(|rest| rest.split_once("s / ").and_then(|(n, _)| n.parse().ok()))
        .collect();
    assert!(elapsed.len() >= 2, "at least two draws: {screen:?}");
    let mut distinct = elapsed.clone();
    distinct.dedup();
    assert!(distinct.len() >= 2 && elapsed.windows(2).all(|w| w[0] < w[1]), "elapsed advances: {elapsed:?}");
    assert!(screen.contains("connections  50 / 50 open"), "{screen:?}");
    assert!(screen.contains("hold"), "{screen:?}");
    // The panel stays; the summary follows it.
    let summary = screen.rsplit_once("summary (").expect("summary after the panel").1;
    assert!(summary.contains("message round trip") && summary.contains("verdict"), "{summary}");
    assert!(!summary.contains("\x1b["), "no escape codes in the summary: {summary:?}");
}

/// Parses a plain progress line into its `key=value` pairs, checking the fixed keys.
fn plain_fields(line: &str) -> Vec<(&str, &str)> {
    const KEYS: [&str; 12] = [
        "t",
        "planned",
        "phase",
        "open",
        "conn/s",
        "sent/s",
        "recv/s",
        "rtt_p50_us",
        "rtt_p99_us",
        "errors",
        "cpu",
        "saturated",
    ];
    let fields: Vec<(&str, &str)> = line
        .split(' ')
        .map(|kv| kv.split_once('=').unwrap_or_else(|| panic!("not key=value: {kv:?} in {line}")))
        .collect();
    let keys: Vec<&str> = fields.iter().map(|(k, _)| *k).take(KEYS.len()).collect();
    assert_eq!(keys, KEYS, "{line}");
    let v = |k: &str| fields.iter().find(|(key, _)| *key == k).unwrap().1;
    let number = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    assert!(v("t").strip_suffix('s').is_some_and(number), "{line}");
    assert!(["ramp-up", "hold", "ramp-down", "stopping"].contains(&v("phase")), "{line}");
    assert!(v("open").strip_suffix("/50").is_some_and(number), "{line}");
    for k in ["conn/s", "sent/s", "recv/s", "errors"] {
        assert!(number(v(k)), "{k} in {line}");
    }
    for k in ["rtt_p50_us", "rtt_p99_us"] {
        assert!(v(k) == "-" || number(v(k)), "{k} in {line}");
    }
    assert!(v("cpu") == "-" || v("cpu").strip_suffix('%').is_some_and(number), "{line}");
    assert!(["yes", "no"].contains(&v("saturated")), "{line}");
    fields
}

#[test]
fn plain_lines_once_a_second_when_stdout_is_a_pipe() {
    let server = Server::start();
    let out = temp_dir("plain");
    let mut cmd = loadgen();
    cmd.args(run_args(&server.url, &out));
    let o = output_with_timeout(cmd);
    assert!(o.status.success(), "exit {:?}; stderr: {}", o.status, text(&o.stderr));
    let stdout = text(&o.stdout);
    assert!(!stdout.contains('\x1b'), "no escape codes in a pipe: {stdout:?}");
    let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with("t=")).collect();
    assert!((2..=6).contains(&lines.len()), "one line per second of a ~2 s run: {stdout}");
    let get = |f: &[(&str, &str)], k: &str| f.iter().find(|(key, _)| *key == k).unwrap().1.to_string();
    let (mut sent, mut received, mut ts) = (0, 0, Vec::new());
    for line in &lines {
        let f = plain_fields(line);
        ts.push(get(&f, "t").trim_end_matches('s').parse::<u64>().unwrap());
        sent += get(&f, "sent/s").parse::<u64>().unwrap();
        received += get(&f, "recv/s").parse::<u64>().unwrap();
    }
    assert_eq!(ts, (1..=lines.len() as u64).collect::<Vec<_>>(), "consecutive seconds: {stdout}");
    assert!(lines.iter().any(|l| l.contains("phase=hold open=50/50")), "{stdout}");
    let r = report(&out);
    assert_eq!(r["messages"]["sent"], sent, "per-second lines add up to the run: {stdout}");
    assert_eq!(r["messages"]["received"], received, "{stdout}");
    assert!(sent >= 300, "{sent}");
    // The summary follows, with thousands separators and units.
    let summary = stdout.split_once("\nsummary (").expect("summary").1;
    assert!(summary.contains("connections  50 attempted · 50 established · 0 failed"), "{summary}");
    assert!(
        summary.contains("message round trip") && (summary.contains(" µs") || summary.contains(" ms")),
        "{summary}"
    );
    assert!(summary.contains("verdict") && summary.contains("io_uring: ") && summary.contains("report: "), "{summary}");
}

#[test]
fn json_progress_lines_carry_the_documented_fields() {
    let server = Server::start();
    let out = temp_dir("json");
    let mut cmd = loadgen();
    cmd.args(run_args(&server.url, &out)).args(["--progress", "json"]);
    let o = output_with_timeout(cmd);
    assert!(o.status.success(), "exit {:?}; stderr: {}", o.status, text(&o.stderr));
    let stdout = text(&o.stdout);
    let objects: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("stdout holds only JSON lines: {l:?}: {e}")))
        .collect();
    assert!(objects.len() >= 2, "{stdout}");
    let mut established = 0;
    for (i, v) in objects.iter().enumerate() {
        assert_eq!(v["second"], i as u64, "{v}");
        assert_eq!(v["elapsed_s"], i as u64 + 1, "{v}");
        assert!(v["planned_s"].as_f64().unwrap() > 1.9, "{v}");
        assert!(["ramp-up", "hold", "ramp-down", "stopping"].contains(&v["phase"].as_str().unwrap()), "{v}");
        for k in ["open", "target", "attempted", "established", "failed", "closed"] {
            assert!(v["connections"][k].is_u64(), "connections.{k}: {v}");
        }
        assert_eq!(v["connections"]["target"], 50);
        for k in ["sent", "received"] {
            assert!(v["messages"][k].is_u64(), "messages.{k}: {v}");
        }
        for k in ["rtt_p50_us", "rtt_p99_us", "schedule_lag_p99_us", "cpu_cores", "cpu_percent"] {
            assert!(v[k].is_null() || v[k].is_number(), "{k}: {v}");
        }
        assert!(v["errors"].is_object() && v["errors_total"].is_u64(), "{v}");
        assert!(v["saturated"].is_boolean() && v["saturation_reasons"].is_array(), "{v}");
        established += v["connections"]["established"].as_u64().unwrap();
    }
    assert_eq!(established, 50);
    assert!(objects.iter().any(|v| v["rtt_p99_us"].is_u64()), "round trips timed: {stdout}");
    let stderr = text(&o.stderr);
    assert!(stderr.contains("summary (") && stderr.contains("report: "), "summary on stderr: {stderr}");
}

#[test]
fn quiet_prints_one_json_line_and_the_run_leaves_its_files() {
    let server = Server::start();
    let out = temp_dir("quiet");
    let junit = out.join("ci").join("junit.xml");
    let mut cmd = loadgen();
    cmd.args(run_args(&server.url, &out)).arg("--quiet").arg("--junit").arg(&junit);
    let o = output_with_timeout(cmd);
    assert!(o.status.success(), "exit {:?}; stderr: {}", o.status, text(&o.stderr));
    let stdout = text(&o.stdout);
    assert_eq!(stdout.lines().count(), 1, "exactly one line: {stdout}");
    let line: serde_json::Value = serde_json::from_str(stdout.trim()).expect("the line is JSON");
    let r = report(&out);
    assert_eq!(line["verdict"], "pass");
    assert_eq!(line["exit_code"], 0);
    assert_eq!(line["connections"]["established"], 50);
    assert_eq!(line["messages"]["received"], r["messages"]["received"]);
    assert_eq!(line["p99_us"]["message_rtt"], r["latency_us"]["message_rtt"]["p99"]);
    assert_eq!(line["checks"]["total"], r["checks"].as_array().unwrap().len());
    assert_eq!(line["checks"]["failed"], 0);
    assert_eq!(line["files"]["report"], out.join("report.json").display().to_string());
    assert_eq!(line["files"]["junit"], junit.display().to_string());
    // timeseries.jsonl: the report's seconds, one valid line each.
    let lines = loadgen_report::timeseries::read(&out.join("timeseries.jsonl")).expect("timeseries.jsonl");
    let schema: serde_json::Value = serde_json::from_str(loadgen_report::timeseries::TIMESERIES_SCHEMA).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let seconds = r["timeseries"].as_array().unwrap();
    assert_eq!(lines.len(), seconds.len());
    for (line, second) in lines.iter().zip(seconds) {
        assert_eq!(line["messages"], second["messages"]);
        let errors: Vec<String> = validator.iter_errors(line).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{line}: {errors:?}");
    }
    assert!(lines.iter().any(|l| l["phases"] == serde_json::json!(["hold"])), "phases named: {lines:?}");
    // JUnit: a test case per check, plus the generator's.
    let xml = std::fs::read_to_string(&junit).unwrap();
    let cases = xml.matches("<testcase ").count();
    assert_eq!(cases, r["checks"].as_array().unwrap().len() + 1, "{xml}");
    assert!(!xml.contains("<failure"), "{xml}");
    // The HTML report, and `loadgen report DIR` renders the same file from the files.
    let html = std::fs::read_to_string(out.join("report.html")).expect("report.html");
    assert!(html.contains("PASS"), "the verdict is shown");
    std::fs::remove_file(out.join("report.html")).unwrap();
    let o = loadgen().args(["report", out.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(std::fs::read_to_string(out.join("report.html")).unwrap(), html, "re-rendered identically");
    let o = loadgen().args(["report", server.url.as_str()]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(text(&o.stderr).trim().lines().count(), 1, "{}", text(&o.stderr));
}

#[test]
fn version_names_io_uring_and_doctor_exits_by_feasibility() {
    let o = loadgen().arg("--version").output().unwrap();
    assert!(o.status.success());
    let v = text(&o.stdout);
    assert!(v.starts_with(&format!("loadgen {}\n", env!("CARGO_PKG_VERSION"))), "{v}");
    assert!(v.lines().any(|l| l.starts_with("io_uring setup flags: ") && l.contains("socket")), "{v}");
    assert!(v.contains("RLIMIT_NOFILE") && v.lines().any(|l| l.starts_with("BPF: ")), "{v}");

    let o = loadgen().args(["doctor", "--connections", "1000"]).output().unwrap();
    let stdout = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}{}", text(&o.stderr));
    assert!(stdout.contains("RLIMIT_NOFILE") && stdout.contains("plan: 1,000 connections"), "{stdout}");
    assert!(stdout.contains("verdict: feasible"), "{stdout}");

    let o = loadgen().args(["doctor", "--connections", "50000000"]).output().unwrap();
    let stdout = text(&o.stdout);
    assert_eq!(o.status.code(), Some(2), "{stdout}{}", text(&o.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    let refused = lines.iter().position(|l| l.starts_with("refused: ")).expect("a refusal");
    assert!(lines[refused + 1].starts_with("  fix: ") && lines[refused + 1].len() > 10, "{stdout}");
    assert!(stdout.contains("verdict: refused"), "{stdout}");
}

#[test]
fn refused_upgrade_is_one_error_line_naming_the_fix() {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    let out = temp_dir("403");
    let o = loadgen()
        .args([
            "run",
            "--lag-threshold",
            "100ms",
            "--connect-lag-threshold",
            "500ms",
            "--target",
            &url,
            "--connections",
            "3",
            "--duration",
            "100ms",
            "--progress",
            "plain",
        ])
        .args(["--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    let errors: Vec<String> = text(&o.stderr).lines().filter(|l| l.starts_with("error:")).map(String::from).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("forbidden") && errors[0].contains("401/403"), "{errors:?}");
    let stdout = text(&o.stdout);
    assert!(stdout.contains("failed by kind") && stdout.contains("forbidden 3"), "{stdout}");
    // A mistyped flag: one line, with the help to read.
    let o = loadgen().args(["run", "--target", &url, "--ech"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("'--echo'") && err.contains("loadgen run --help"), "{err}");
}
