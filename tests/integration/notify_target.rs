//! `loadgen serve --mode notify` (the reference target, crate `loadgen-target`) and
//! `loadgen run` against it, end to end as a user runs them: two supervised worker
//! processes and an embedded redis-server on free loopback ports, loadgen holding idle
//! connections at `/ws?user=u{i}&unit=7`, notifications injected through `POST
//! /publish` once every connection is subscribed, and the report's push counts,
//! losses and delivery latency checked against what was published. Bounded: 20
//! connections, 1,005 messages, a 5 s run, every wait capped.
//!
//! Needs `redis-server` on PATH (`cargo xtask test` installs it); without it the
//! target exits 2 and the test fails saying so.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::runs::{out_dir, report, stop};

/// `loadgen serve --mode notify ARGS`; the child and the address from its first line.
fn notify_target(args: &[&str]) -> (Child, String) {
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
    // Keep draining stdout so the target never blocks on a full pipe.
    std::thread::spawn(move || for _ in out.lines() {});
    (child, addr)
}

/// One HTTP/1.1 request with `Connection: close`: status and body.
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
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
    let (target, addr) = notify_target(&["--workers", "2"]);
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
