//! `loadgen` as a user runs it: exit codes, one-line errors, and the report file.

use std::process::{Command, Output};

use crate::servers::{Impl, InteropServer, require_or_skip};

fn loadgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen")).args(args).output().expect("loadgen runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn temp_dir(name: &str) -> std::path::PathBuf {
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
