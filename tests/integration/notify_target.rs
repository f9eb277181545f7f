//! `loadgen serve --mode notify` (the reference target, crate `loadgen-target`) and
//! `loadgen run` against it, end to end as a user runs them: two supervised worker
//! processes and an embedded redis-server on free loopback ports, loadgen holding idle
//! connections at `/ws?user=u{i}&unit=7`, notifications injected through `POST
//! /publish` once every connection is subscribed, and the report's push counts,
//! losses and delivery latency checked against what was published; a fault switched
//! on mid-run through `POST /admin/faults` and seen in the report; the same through
//! `--balancer haproxy`. Bounded: at most 20 connections, 1,005 messages, a 5 s run,
//! every wait capped.
//!
//! Needs `redis-server` and `haproxy` on PATH (`cargo xtask test` installs them);
//! without them the target exits 2 and the test fails saying so.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::runs::{out_dir, report, stop};

/// `loadgen serve --mode notify ARGS`; the child, the address from its first line and
/// the admin token from its third.
fn notify_target(args: &[&str]) -> (Child, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["serve", "--mode", "notify", "--duration", "60"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("loadgen serve starts");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let Some(addr) = line.trim().strip_prefix("listening on ws://").and_then(|a| a.strip_suffix('/')) else {
        let mut err = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut err);
        panic!("first line {line:?}; stderr: {err}");
    };
    let addr = addr.to_owned();
    let mut redis = String::new();
    out.read_line(&mut redis).unwrap();
    assert!(redis.starts_with("redis redis://127.0.0.1:") && redis.contains("(embedded"), "{redis:?}");
    let mut admin = String::new();
    out.read_line(&mut admin).unwrap();
    let token = admin.strip_prefix("admin token ").and_then(|t| t.trim().strip_suffix(" (generated)"));
    let token = token.unwrap_or_else(|| panic!("third line {admin:?}")).to_owned();
    // Keep draining stdout so the target never blocks on a full pipe.
    std::thread::spawn(move || for _ in out.lines() {});
    (child, addr, token)
}

/// One HTTP/1.1 request with `Connection: close`: status and body.
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    http_with(addr, method, path, "", body)
}

/// The same with extra header lines (each ending in CRLF).
fn http_with(addr: &str, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(format!("{head}{body}").as_bytes()).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{answer:?}"));
    (status, answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
}

/// Waits until the workers together hold `n` WebSocket connections (each /healthz is
/// answered by whichever worker the kernel picks, so the last count of each is kept).
fn wait_connections(addr: &str, n: u64, within: Duration) {
    let deadline = Instant::now() + within;
    let mut seen: HashMap<u64, u64> = HashMap::new();
    while seen.values().sum::<u64>() != n {
        assert!(Instant::now() < deadline, "connections per worker after {within:?}: {seen:?}, expected {n} in all");
        let (status, body) = http(addr, "GET", "/healthz", "");
        assert_eq!(status, 200, "{body}");
        let h: Value = serde_json::from_str(&body).unwrap();
        seen.insert(h["worker"].as_u64().unwrap(), h["connections"].as_u64().unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn publish(addr: &str, request: &str) -> Value {
    let (status, body) = http(addr, "POST", "/publish", request);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn loadgen_run_against_the_notify_target_receives_every_push() {
    let (target, addr, _) = notify_target(&["--workers", "2"]);
    let out = out_dir("notify-target");
    let url = format!("ws://{addr}/ws?user=u{{i}}&unit=7&role=medic");
    let run = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["run", "--target", &url, "--connections", "20", "--connect-rate", "200", "--duration", "5s"])
        .args(["--idle", "--quiet", "--out", out.to_str().unwrap()])
        .args(crate::LENIENT)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("loadgen run starts");
    wait_connections(&addr, 20, Duration::from_secs(15));
    // Redis confirms subscriptions before the `lgready` message; give that a moment.
    std::thread::sleep(Duration::from_millis(300));
    let unit = publish(&addr, r#"{"channel":"unit:7","count":1000,"interval_us":1000,"body":{"text":"drill"}}"#);
    assert_eq!((unit["first_seq"].as_u64(), unit["last_seq"].as_u64()), (Some(0), Some(999)), "{unit}");
    let person = publish(&addr, r#"{"channel":"person:u3","count":5}"#);
    assert_eq!(person["ranges"], serde_json::json!([[0, 4]]), "{person}");

    let run = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    stop(target);
    assert_eq!(run.status.code(), Some(0), "the verdict passes: {stderr}");
    let r = report(&out);
    let m = &r["messages"];
    assert_eq!(r["connections"]["established"], 20, "{r}");
    assert_eq!(m["pushes_received"], 20 * 1000 + 5, "every client got every unit push, u3 its own five: {m}");
    assert_eq!(m["received"], 20 * 1000 + 5 + 20, "the pushes and one `lgready` per connection: {m}");
    assert_eq!((m["lost"].as_u64(), m["duplicated"].as_u64(), m["reordered"].as_u64()), (Some(0), Some(0), Some(0)));
    assert_eq!(m["sent"], 0, "idle clients: {m}");
    let delivery = &r["latency_us"]["delivery"];
    let p50 = delivery["p50"].as_f64().unwrap_or_else(|| panic!("delivery latency: {delivery}"));
    assert!(p50 > 0.0 && p50 < 1_000_000.0, "delivery p50 {p50} µs on loopback: {delivery}");
    assert_eq!(delivery["count"], 20 * 1000 + 5, "every push timed: {delivery}");
}

#[test]
fn a_fault_switched_on_mid_run_shows_in_loadgen_s_report() {
    // One worker: drop-fanout acts on worker 0, so every client is on it.
    let (target, addr, token) = notify_target(&["--workers", "1"]);
    let out = out_dir("notify-target-admin");
    let url = format!("ws://{addr}/ws?unit=9");
    let run = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["run", "--target", &url, "--connections", "10", "--connect-rate", "200", "--duration", "4s"])
        .args(["--idle", "--quiet", "--out", out.to_str().unwrap()])
        .args(crate::LENIENT)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("loadgen run starts");
    wait_connections(&addr, 10, Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(300));
    let auth = format!("Authorization: Bearer {token}\r\n");
    let switch = |body: &str| {
        let (status, answer) = http_with(&addr, "POST", "/admin/faults", &auth, body);
        assert_eq!(status, 200, "{answer}");
    };
    let hundred = r#"{"channel":"unit:9","count":100}"#;
    publish(&addr, hundred);
    switch(r#"{"on":["drop-fanout=50"]}"#);
    publish(&addr, hundred);
    switch(r#"{"off":["drop-fanout"]}"#);
    assert_eq!(publish(&addr, hundred)["last_seq"], 299);

    let run = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    stop(target);
    assert_eq!(run.status.code(), Some(1), "lost messages fail the verdict: {stderr}");
    let m = &report(&out)["messages"];
    assert_eq!(m["pushes_received"], 10 * 250, "half of the middle hundred dropped for each client: {m}");
    assert_eq!(m["lost"], 10 * 50, "{m}");
    assert_eq!((m["duplicated"].as_u64(), m["reordered"].as_u64()), (Some(0), Some(0)), "{m}");
}

#[test]
fn loadgen_run_through_haproxy_receives_every_push() {
    let (target, addr, _) = notify_target(&["--workers", "2", "--balancer", "haproxy"]);
    let out = out_dir("notify-target-haproxy");
    let url = format!("ws://{addr}/ws?user=u{{i}}");
    let run = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["run", "--target", &url, "--connections", "20", "--connect-rate", "200", "--duration", "4s"])
        .args(["--idle", "--quiet", "--out", out.to_str().unwrap()])
        .args(crate::LENIENT)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("loadgen run starts");
    // /healthz through HAProxy reaches either worker (round robin without a user).
    wait_connections(&addr, 20, Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(publish(&addr, r#"{"channel":"broadcast","count":500,"interval_us":1000}"#)["last_seq"], 499);
    let run = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    stop(target);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    let m = &report(&out)["messages"];
    assert_eq!(m["pushes_received"], 20 * 500, "{m}");
    assert_eq!(m["lost"], 0, "{m}");
}
