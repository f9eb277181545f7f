//! The verdict and exit codes of `loadgen run` as a user meets them: 0 when the target
//! behaves, 1 with the failed checks on stderr when it drops connections or leaves
//! messages unanswered, 143 on SIGTERM with the partial report written; and the report
//! fields that say why (messages accounted, drops by cause, push delivery).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::LENIENT;
use crate::cli::serve;

use crate::runs::{out_dir, report, run, stderr, stop};

#[test]
fn a_healthy_echo_run_passes_with_every_message_answered() {
    let (server, url) = serve(&["--mode", "echo"]);
    let out = out_dir("pass");
    let dir = out.to_str().unwrap();
    let o = run(&[
        "--target",
        &url,
        "--connections",
        "20",
        "--duration",
        "2s",
        "--echo",
        // 5 a second: the saturation rule's tenth of the interval (20 ms) holds on a
        // loaded machine.
        "--rate-per-conn",
        "5",
        "--quiet",
        "--out",
        dir,
    ]);
    stop(server);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let r = report(&out);
    let m = &r["messages"];
    assert_eq!(m["answered"], m["sent"], "{m}");
    assert_eq!((m["unanswered"].as_u64(), m["lost"].as_u64(), m["late"].as_u64()), (Some(0), Some(0), Some(0)), "{m}");
    assert_eq!(r["verdict"], "pass", "{}", r["checks"]);
    assert_eq!(r["connections"]["dropped"], 0);
    assert_eq!(r["connections"]["open_at_end"], 20);
}

#[test]
fn a_server_that_never_echoes_fails_the_run_with_the_reason() {
    // `serve --mode sink` reads every message and answers none.
    let (server, url) = serve(&["--mode", "sink"]);
    let out = out_dir("sink");
    let dir = out.to_str().unwrap();
    let o = run(&[
        "--target",
        &url,
        "--connections",
        "5",
        "--duration",
        "1s",
        "--echo",
        "--rate",
        "50",
        "--quiet",
        "--out",
        dir,
    ]);
    stop(server);
    assert_eq!(o.status.code(), Some(1), "stderr: {}", stderr(&o));
    let err = stderr(&o);
    assert!(err.lines().any(|l| l.starts_with("check failed: ") && l.contains("messages got no reply")), "{err}");
    let r = report(&out);
    assert_eq!(r["messages"]["unanswered"], r["messages"]["sent"], "{}", r["messages"]);
    assert_eq!(r["verdict"], "fail");
    let failed: Vec<&str> = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["expr"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["messages.unanswered == 0"]);
}

#[test]
fn server_pushes_are_timed_and_checked_for_gaps() {
    let (server, url) = serve(&["--mode", "push", "--push-rate", "400", "--message-size", "64"]);
    let out = out_dir("push");
    let dir = out.to_str().unwrap();
    let o = run(&["--target", &url, "--connections", "4", "--duration", "1500ms", "--idle", "--quiet", "--out", dir]);
    stop(server);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let r = report(&out);
    let pushes = r["messages"]["pushes_received"].as_u64().unwrap();
    assert!(pushes >= 300, "{}", r["messages"]);
    assert_eq!(r["latency_us"]["delivery"]["count"].as_u64(), Some(pushes));
    assert_eq!(r["messages"]["lost"], 0, "{}", r["messages"]);
    assert_eq!(r["messages"]["duplicated"], 0);
}

#[test]
fn sigterm_stops_the_run_exits_143_and_writes_the_partial_report() {
    let (server, url) = serve(&["--mode", "echo"]);
    let out = out_dir("sigterm");
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["run", "--target", &url, "--connections", "10", "--duration", "60s", "--idle", "--quiet", "--out"])
        .arg(&out)
        .args(LENIENT)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "the run did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    stop(server);
    assert_eq!(status.code(), Some(143));
    let r = report(&out);
    assert_eq!(r["interrupted"], true);
    assert_eq!(r["connections"]["established"], 10);
}
