//! `loadgen` as a user runs it: exit codes, one-line errors, and the report file.

use std::process::{Command, Output};

use crate::servers::{Impl, InteropServer, require_or_skip};

pub(crate) fn loadgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen")).args(args).output().expect("loadgen runs")
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub(crate) fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("loadgen-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn check_writes_a_report_and_exits_zero_against_a_conformant_server() {
    if !require_or_skip(Impl::Node) {
        return;
    }
    let server = InteropServer::start(Impl::Node, "echo", true).unwrap();
    let out = temp_dir("ok");
    let o = loadgen(&[
        "check",
        "--target",
        &server.url(),
        "--deflate",
        "--server-commands",
        "--quick",
        "--connections",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "exit {:?}; stderr: {}", o.status, stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["failed"], 0);
    assert!(report["passed"].as_u64().unwrap() >= 15, "{report}");
    assert_eq!(report["echo"]["round_trips"], 2 * 500);
    assert!(report["deflate"].is_string());
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("checks: ") && stdout.contains("report: "), "{stdout}");
}

#[test]
fn check_exits_one_and_still_reports_when_the_server_misbehaves() {
    if !require_or_skip(Impl::Python) {
        return;
    }
    let server = InteropServer::start(Impl::Python, "masked-frame", false).unwrap();
    let out = temp_dir("hostile");
    let o =
        loadgen(&["check", "--target", &server.url(), "--quick", "--connections", "1", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "stderr: {}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert!(report["failed"].as_u64().unwrap() > 0);
    let details: Vec<&str> = report["checks"].as_array().unwrap().iter().filter_map(|c| c["detail"].as_str()).collect();
    assert!(details.iter().any(|d| d.starts_with("masked_frame")), "{details:?}");
}

#[test]
fn bad_url_is_a_usage_error_on_one_line() {
    let o = loadgen(&["check", "--target", "http://127.0.0.1:1/"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("ws://"), "{err}");
}

#[test]
fn unreachable_target_is_a_runtime_error_naming_the_fix() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let o = loadgen(&[
        "check",
        "--target",
        &format!("ws://127.0.0.1:{port}/"),
        "--out",
        temp_dir("unreach").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3));
    let err = stderr(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("cannot connect") && err.contains("listening"), "{err}");
}

#[test]
fn bad_flags_exit_two_and_version_exits_zero() {
    assert_eq!(loadgen(&["check", "--target", "ws://h/", "--connections", "lots"]).status.code(), Some(2));
    assert_eq!(loadgen(&["frobnicate"]).status.code(), Some(2));
    let v = loadgen(&["--version"]);
    assert!(v.status.success());
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("loadgen "));
}

pub(crate) fn report(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("report.json")).expect("report.json written")).unwrap()
}

#[test]
fn run_echo_against_node_ws_writes_the_report() {
    if !require_or_skip(Impl::Node) {
        return;
    }
    let server = InteropServer::start(Impl::Node, "echo", false).unwrap();
    let out = temp_dir("run-echo");
    let o = loadgen(&[
        "run",
        "--lag-threshold",
        "100ms",
        "--connect-lag-threshold",
        "500ms",
        "--target",
        &server.url(),
        "--connections",
        "50",
        "--duration",
        "1s",
        "--echo",
        "--rate",
        "500",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "exit {:?}; stderr: {}", o.status, stderr(&o));
    let r = report(&out);
    assert_eq!(r["connections"]["attempted"], 50);
    assert_eq!(r["connections"]["established"], 50, "{r}");
    assert_eq!(r["connections"]["failed"], 0);
    let sent = r["messages"]["sent"].as_u64().unwrap();
    // Messages intended while no connection was open yet are counted, never lost.
    let unplaced = r["errors"]["no_open_connection_for_message"].as_u64().unwrap_or(0);
    assert_eq!(sent + unplaced, 500, "R×T = 500 intended sends: {r}");
    assert!(sent >= 400, "{sent}");
    assert_eq!(r["messages"]["received"], sent, "all echoed");
    assert_eq!(r["latency_us"]["message_rtt"]["count"], sent);
    assert_eq!(r["latency_us"]["handshake"]["count"], 50);
    assert!(r["latency_us"].get("delivery").is_none(), "sections not produced are absent");
    assert_eq!(r["interrupted"], false);
}

#[test]
fn run_interrupted_by_ctrl_c_writes_the_report_and_exits_130() {
    if !require_or_skip(Impl::Node) {
        return;
    }
    let server = InteropServer::start(Impl::Node, "echo", false).unwrap();
    let out = temp_dir("run-int");
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "run",
            "--lag-threshold",
            "100ms",
            "--connect-lag-threshold",
            "500ms",
            "--target",
            &server.url(),
            "--connections",
            "20",
            "--duration",
            "60s",
            "--idle",
        ])
        .args(["--out", out.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let t0 = std::time::Instant::now();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(t0.elapsed() < std::time::Duration::from_secs(10), "bounded close after Ctrl-C");
    let r = report(&out);
    assert_eq!(r["interrupted"], true);
    assert_eq!(r["connections"]["established"], 20, "{r}");
}

#[test]
fn run_against_nothing_exits_3_and_bad_flags_exit_2() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = temp_dir("run-refused");
    let url = format!("ws://127.0.0.1:{port}/");
    let o = loadgen(&[
        "run",
        "--target",
        &url,
        "--connections",
        "5",
        "--duration",
        "100ms",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "stderr: {}", stderr(&o));
    assert!(stderr(&o).contains("connect_refused"), "{}", stderr(&o));
    assert_eq!(report(&out)["errors"]["connect_refused"], 5, "the report is written even so");
    // More than this host can hold: refused before anything starts, with the fix.
    let o = loadgen(&["run", "--target", &url, "--connections", "50000000", "--duration", "1s"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("pre-flight refused") && err.contains("fix:"), "{err}");
    for bad in [
        vec!["run", "--target", &url, "--echo", "--rate", "-5"],
        vec!["run", "--target", &url, "--echo", "--message-size", "10"],
        vec!["run", "--target", "http://x/"],
        vec!["run", "--target", &url, "--duration", "5 parsecs"],
        vec!["run", "--target", &url, "--raw", "--ping-interval", "1s"],
        vec!["run", "--target", &url, "--close-rate", "0"],
        vec!["run", "--target", &url, "--arrivals", "poisson"],
    ] {
        let o = loadgen(&bad);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{bad:?}");
    }
}

/// Starts `loadgen serve` and reads its first line for the port.
pub(crate) fn serve(args: &[&str]) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("serve")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("loadgen serve starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("first line {line:?}")).to_owned();
    (child, url)
}

#[test]
fn run_against_loadgen_serve_and_serve_stops_on_sigterm() {
    let (mut server, url) = serve(&["--mode", "echo", "--threads", "2"]);
    let out = temp_dir("run-serve");
    let o = loadgen(&[
        "run",
        "--lag-threshold",
        "100ms",
        "--connect-lag-threshold",
        "500ms",
        "--target",
        &url,
        "--connections",
        "300",
        "--duration",
        "2s",
        "--echo",
        // 5 a second: the saturation rule allows a tenth of the send interval (20 ms),
        // which a debug build sharing two cores with the suite keeps.
        "--rate-per-conn",
        "5",
        "--ping-interval",
        "250ms",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "exit {:?}; stderr: {}", o.status, stderr(&o));
    let r = report(&out);
    assert_eq!(r["connections"]["established"], 300, "{r}");
    let sent = r["messages"]["sent"].as_u64().unwrap();
    assert!((2_400..=3_600).contains(&sent), "~300 × 5/s over ~2 s: {sent}");
    assert_eq!(r["messages"]["received"], sent, "every probe echoed by our own server");
    assert!(r["latency_us"]["ping_rtt"]["count"].as_u64().unwrap() >= 600, "{r}");
    assert!(r["timeseries"].as_array().unwrap().len() >= 2);
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let status = server.wait().unwrap();
    assert_eq!(status.code(), Some(0), "serve exits cleanly on SIGTERM");
}

/// 30,000 connections from one process although RLIMIT_NOFILE is 20,000 here: sockets
/// are direct descriptors spread over several rings, sources over 127.0.0.0/8.
#[test]
fn thirty_thousand_connections_despite_the_open_file_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit with a valid pointer to a local struct.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    let (mut server, url) = serve(&["--mode", "sink", "--threads", "2", "--duration", "60"]);
    let out = temp_dir("run-30k");
    let o = loadgen(&[
        "run",
        "--lag-threshold",
        "100ms",
        "--connect-lag-threshold",
        "500ms",
        "--target",
        &url,
        "--connections",
        "30000",
        // Modest rates: the suite runs tests in parallel on two cores.
        "--connect-rate",
        "6000",
        "--close-rate",
        "6000",
        "--duration",
        "1s",
        "--idle",
        "--out",
        out.to_str().unwrap(),
    ]);
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let _ = server.wait();
    assert!(o.status.success(), "exit {:?}; stderr: {}", o.status, stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let r = report(&out);
    assert_eq!(r["connections"]["established"], 30_000, "{stdout}\n{}", r["errors"]);
    assert_eq!(r["connections"]["peak_open"], 30_000);
    assert_eq!(r["connections"]["failed"], 0);
    assert!(r.get("errors").is_none(), "clean ramp-up and ramp-down: {}", r["errors"]);
    if lim.rlim_max < 30_000 {
        assert!(stdout.contains("rings"), "the plan says how it got past the fd limit: {stdout}");
    }
}

/// wss:// end to end: `loadgen serve --tls` writes its certificate, `loadgen run`
/// trusts it with --ca-file, resumes sessions, and reports TLS and deflate memory.
#[test]
fn wss_run_against_serve_tls_with_resumption_and_deflate() {
    let out = temp_dir("run-wss");
    std::fs::create_dir_all(&out).unwrap();
    let cert = out.join("cert.pem");
    let (mut server, url) =
        serve(&["--mode", "echo", "--threads", "2", "--tls", "--tls-cert-out", cert.to_str().unwrap()]);
    assert!(url.starts_with("wss://127.0.0.1:"), "{url}");
    let o = loadgen(&[
        "run",
        "--lag-threshold",
        "100ms",
        "--connect-lag-threshold",
        "500ms",
        "--target",
        &url,
        "--ca-file",
        cert.to_str().unwrap(),
        "--connections",
        "200",
        // Debug builds on two busy cores: a session ticket can take 100 ms to arrive.
        "--connect-rate",
        "400",
        "--duration",
        "1s",
        "--echo",
        "--rate",
        "1000",
        "--deflate",
        "--progress",
        "plain",
        "--out",
        out.to_str().unwrap(),
    ]);
    // Without trust settings a wss:// run is refused up front, on one line.
    let refused = loadgen(&["run", "--target", &url, "--connections", "1", "--duration", "1s"]);
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let _ = server.wait();
    assert!(o.status.success(), "exit {:?}; stderr: {}", o.status, stderr(&o));
    let r = report(&out);
    assert_eq!(r["connections"]["established"], 200, "{}", r["errors"]);
    assert!(r.get("errors").is_none(), "clean TLS run: {}", r["errors"]);
    assert_eq!(r["latency_us"]["tls_handshake"]["count"], 200, "{r}");
    let (full, resumed) =
        (r["tls"]["handshakes_full"].as_u64().unwrap(), r["tls"]["handshakes_resumed"].as_u64().unwrap());
    assert_eq!(full + resumed, 200);
    assert!(resumed >= 50, "a worker's later connections resume: {full} full, {resumed} resumed");
    let per_session = r["tls"]["bytes_per_session"].as_u64().unwrap();
    assert!((2_000..16_000).contains(&per_session), "{per_session} B per held TLS session");
    let sent = r["messages"]["sent"].as_u64().unwrap();
    assert!(sent >= 900 && r["messages"]["received"] == sent, "echoed over TLS: {}", r["messages"]);
    let offer = r["config"]["deflate"].as_str().unwrap();
    assert!(offer.starts_with("permessage-deflate; server_no_context_takeover; client_no_context_takeover"), "{offer}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("tls ") && stdout.contains("resumed"), "summary names TLS: {stdout}");
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("--ca-file"), "{}", stderr(&refused));
    assert_eq!(stderr(&refused).trim().lines().count(), 1, "{}", stderr(&refused));
}
