//! The bugs issue 16 found, as a new user meets them: `loadgen run` against
//! `loadgen serve --fault ...`, judged from the exit code, stderr and report.json.
//! Each test fails against the server's fault and would pass against a healthy one
//! (the healthy runs are in `verdict`).

use crate::cli::serve;

use crate::runs::{out_dir, report, run, stderr, stop};

fn p(r: &serde_json::Value, metric: &str, q: &str) -> u64 {
    r["latency_us"][metric][q].as_u64().unwrap_or_else(|| panic!("latency_us.{metric}.{q} in {}", r["latency_us"]))
}

#[test]
fn connections_reset_after_the_upgrade_fail_the_run_and_come_back_with_reconnect() {
    // Was: "N established · 0 failed", exit 0.
    let (server, url) = serve(&["--mode", "echo", "--fault", "reset-after=700ms"]);
    let out = out_dir("reset");
    let o = run(&[
        "--target",
        &url,
        "--connections",
        "10",
        "--duration",
        "1500ms",
        "--idle",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("check failed: 10 open connections were ended by the target or the network (reset 10)"),
        "{}",
        stderr(&o)
    );
    let r = report(&out);
    assert_eq!(r["connections"]["dropped_by_cause"]["reset"], 10, "{}", r["connections"]);

    // With --reconnect every connection comes back (and is reset again 700 ms later).
    let out = out_dir("reset-reconnect");
    let o = run(&[
        "--target",
        &url,
        "--connections",
        "10",
        "--duration",
        "2s",
        "--idle",
        "--reconnect",
        "--reconnect-initial",
        "50ms",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    stop(server);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let r = report(&out);
    let c = &r["connections"];
    assert!(c["reconnected"].as_u64().unwrap() >= 10, "{c}");
    assert_eq!(r["latency_us"]["recover"]["count"], c["reconnected"], "{}", r["latency_us"]);
    assert!(p(&r, "recover", "max") < 700_000, "backoff ≤ 50 ms, connect and upgrade: {}", r["latency_us"]);
}

#[test]
fn a_closed_loop_over_a_stalling_server_shows_the_stall_in_its_corrected_p99() {
    // Was: closed loop p99 below 3 ms over a server that stalls 1 s every 5 s.
    let (server, url) = serve(&["--mode", "echo", "--fault", "stall=400ms/1s"]);
    let out = out_dir("stall-closed");
    let o = run(&[
        "--target",
        &url,
        "--connections",
        "4",
        "--duration",
        "3s",
        "--echo",
        "--progress",
        "plain",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = report(&out);
    let raw = p(&r, "message_rtt", "p99");
    let corrected = p(&r, "message_rtt_corrected", "p99");
    assert!(corrected >= 200_000, "the corrected p99 shows the 400 ms stalls: {}", r["latency_us"]);
    assert!(raw * 4 < corrected, "raw p99 {raw} µs hides them, corrected {corrected} µs");
    let summary = String::from_utf8_lossy(&o.stdout);
    assert!(summary.contains("corrected for coordinated omission"), "{summary}");

    // The same server in the open model: every message due in a stall waits.
    let out = out_dir("stall-open");
    let o = run(&[
        "--target",
        &url,
        "--connections",
        "4",
        "--duration",
        "3s",
        "--echo",
        "--rate",
        "200",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    stop(server);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = report(&out);
    assert!(p(&r, "message_rtt", "p99") >= 200_000, "{}", r["latency_us"]);
    assert!(r["latency_us"].get("message_rtt_corrected").is_none(), "the open model needs no correction");
}

#[test]
fn refusals_report_their_status_and_retry_after() {
    // Was: status code and Retry-After not in report.json.
    let (server, url) = serve(&["--mode", "echo", "--fault", "refuse=429:5"]);
    let out = out_dir("refuse");
    let o = run(&[
        "--target",
        &url,
        "--connections",
        "6",
        "--duration",
        "500ms",
        "--idle",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    stop(server);
    assert_eq!(o.status.code(), Some(3), "nothing could connect: {}", stderr(&o));
    let r = report(&out);
    let refused = &r["connections"]["refused"]["429"];
    assert_eq!(refused["count"], 6, "{}", r["connections"]);
    assert_eq!((refused["retry_after_min_s"].as_u64(), refused["retry_after_max_s"].as_u64()), (Some(5), Some(5)));
}

#[test]
fn dropped_echoes_are_unanswered_and_lost() {
    // Was: a server that never answers an echo → nothing missing, exit 0.
    let (server, url) = serve(&["--mode", "echo", "--fault", "drop-echo=20"]);
    let out = out_dir("drop-echo");
    let o = run(&[
        "--target",
        &url,
        "--connections",
        "4",
        "--duration",
        "3s",
        "--echo",
        // 10 a second: the saturation rule allows a tenth of the send interval
        // (10 ms), which a debug build sharing two cores with the suite keeps.
        "--rate-per-conn",
        "10",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    stop(server);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let r = report(&out);
    let m = &r["messages"];
    let (sent, unanswered, lost) =
        (m["sent"].as_u64().unwrap(), m["unanswered"].as_u64().unwrap(), m["lost"].as_u64().unwrap());
    assert!(unanswered * 100 >= sent * 10 && unanswered * 100 <= sent * 30, "≈ 20% of {sent}: {m}");
    assert!(lost <= unanswered && lost + 8 >= unanswered, "gaps below the last echo of each connection: {m}");
    assert_eq!(m["answered"].as_u64().unwrap() + unanswered + m["late"].as_u64().unwrap(), sent, "{m}");
}
