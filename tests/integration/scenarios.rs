//! `loadgen validate`: every catalogue scenario in scenarios/ validates; a broken one
//! is refused with exit 2 and one line naming the file, the line and the problem.

use crate::cli::{loadgen, stderr, temp_dir};

fn catalogue() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .expect("scenarios/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    files
}

#[test]
fn every_catalogue_scenario_validates() {
    let files = catalogue();
    assert!(!files.is_empty(), "the catalogue has scenarios");
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let out = loadgen(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().filter(|l| l.starts_with("ok: ")).count(), files.len(), "{stdout}");
}

#[test]
fn a_broken_scenario_is_refused_on_one_line_with_its_position() {
    let dir = temp_dir("validate");
    std::fs::create_dir_all(&dir).unwrap();
    let smoke = std::fs::read_to_string(catalogue().into_iter().find(|f| f.ends_with("smoke.toml")).unwrap()).unwrap();
    let bad = dir.join("bad.toml");
    let hold = smoke.lines().find(|l| l.starts_with("hold =")).unwrap();
    std::fs::write(&bad, smoke.replacen(hold, &format!("{hold}\nhodl = 3"), 1)).unwrap();
    let line = smoke.lines().position(|l| l.starts_with("hold =")).unwrap() + 2;
    let out = loadgen(&["validate", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("error: {}:{line}:", bad.display())) && err.contains("unknown field `hodl`"),
        "{err}"
    );
    // --set can fix what the file gets wrong, and break what it gets right.
    let out = loadgen(&["validate", "--set", "load.connections=0", &catalogue()[0]]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("load.connections: at least 1"), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `toml` blocks of docs/scenarios.md.
fn documented_examples() -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/scenarios.md")).unwrap();
    doc.split("```toml\n").skip(1).filter_map(|b| b.split_once("\n```").map(|(t, _)| t.to_string())).collect()
}

#[test]
fn every_documented_example_validates() {
    let examples = documented_examples();
    assert!(!examples.is_empty(), "docs/scenarios.md has toml examples");
    let dir = temp_dir("examples");
    std::fs::create_dir_all(&dir).unwrap();
    for (k, text) in examples.iter().enumerate() {
        let file = dir.join(format!("example-{k}.toml"));
        std::fs::write(&file, text).unwrap();
        let out = loadgen(&["validate", file.to_str().unwrap()]);
        assert!(out.status.success(), "example {k} of docs/scenarios.md: {}", stderr(&out));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `loadgen run ARGS` with a bounded lag threshold (debug builds on a shared
/// machine are slow; the oracles, not the latencies, are under test).
fn run_scenario(args: &[&str]) -> std::process::Output {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--quiet", "--lag-threshold", "50ms", "--connect-lag-threshold", "200ms"]);
    loadgen(&all)
}

fn smoke() -> String {
    catalogue().into_iter().find(|f| f.ends_with("smoke.toml")).unwrap()
}

#[test]
fn a_scenario_runs_on_the_embedded_target_and_its_report_says_what_happened() {
    let out = temp_dir("scenario-smoke");
    let o = run_scenario(&[&smoke(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = crate::report_schema::validated("scenario smoke", &out);
    assert_eq!(r["verdict"], "pass", "{}", r["checks"]);
    assert_eq!(r["scenario"]["name"], "smoke");
    assert!(r["scenario"]["target"].as_str().unwrap().starts_with("embedded notify (ws://127.0.0.1:"), "{r}");
    let names: Vec<&str> = r["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names[0], "every subscriber ready", "the scenario's checks replace the default ones");
    assert_eq!(r["messages"]["pushes_received"], 20 * 200);
    let publish = &r["faults"][0];
    assert_eq!((publish["action"].as_str(), publish["ok"].as_bool()), (Some("publish"), Some(true)), "{publish}");
    assert!(publish["applied_s"].as_f64().unwrap() >= 1.5, "{publish}");
    assert!(publish["outcome"].as_str().unwrap().starts_with("200 "), "{publish}");
    assert!(r["findings"].as_array().unwrap().iter().all(|f| f["severity"] == "info"), "{}", r["findings"]);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn the_smoke_oracle_catches_dropped_fanout_and_says_which_checks_failed() {
    let out = temp_dir("scenario-smoke-fault");
    let o = run_scenario(&[&smoke(), "--set", r#"target.faults=["drop-fanout=20"]"#, "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.lines().any(|l| l.starts_with("check failed: nothing lost: observed ")), "{err}");
    let r = crate::report_schema::validated("scenario smoke with a fault", &out);
    assert_eq!(r["verdict"], "fail");
    assert_eq!(r["scenario"]["sets"], serde_json::json!([r#"target.faults=["drop-fanout=20"]"#]));
    let errors: Vec<&str> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .map(|f| f["title"].as_str().unwrap())
        .collect();
    assert_eq!(errors, ["check failed: every broadcast delivered", "check failed: nothing lost"]);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn load_flags_are_refused_with_a_file_and_bad_files_and_faults_exit_2() {
    let o = loadgen(&["run", &smoke(), "--connections", "5"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: --connections does not combine with a scenario file: set load.connections"),
        "{err}"
    );
    let o = loadgen(&["run", "/nonexistent/x.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).starts_with("error: /nonexistent/x.toml: cannot read it:"), "{}", stderr(&o));
    let o = loadgen(&["run", &smoke(), "--set", r#"target.faults=["explode"]"#]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("target.faults") && stderr(&o).contains("explode"), "{}", stderr(&o));
    let o = loadgen(&["run", "--set", "load.hold=1s", "--target", "ws://127.0.0.1:9/"]);
    assert_eq!(o.status.code(), Some(2), "--set needs a FILE");
    // A misspelt metric is refused before anything runs.
    let o = loadgen(&["validate", &smoke(), "--set", r#"checks.0.expr="messages.lsot == 0""#]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("messages.lsot: report.json has no such field"), "{}", stderr(&o));
}

/// A push server of its own shape, not built for loadgen: after the upgrade it sends
/// `{"type":"notice","data":{"id":N,"ts":MS},"room":"ward-3"}` for N in 0..50 except 25
/// (one lost), 20 ms apart, then answers the client's close.
fn foreign_push_server() -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(3) {
            let Ok(mut s) = stream else { continue };
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(20)));
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && s.read_exact(&mut byte).is_ok() {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let Some(key) = head.lines().find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.trim().eq_ignore_ascii_case("sec-websocket-key").then(|| v.trim().to_string())
                }) else {
                    return;
                };
                let accept = loadgen_proto::handshake::accept_key(&key);
                let _ = write!(
                    s,
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                );
                for id in (0..50).filter(|&id| id != 25) {
                    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
                    let text = format!(r#"{{"type":"notice","data":{{"id":{id},"ts":{ms}}},"room":"ward-3"}}"#);
                    let mut frame = vec![0x81, text.len() as u8];
                    frame.extend_from_slice(text.as_bytes());
                    if s.write_all(&frame).is_err() {
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                // The client's close (masked): answer it, then end.
                let mut header = [0u8; 2];
                while s.read_exact(&mut header).is_ok() {
                    let len = usize::from(header[1] & 0x7f) + 4;
                    let mut rest = vec![0u8; len];
                    if s.read_exact(&mut rest).is_err() {
                        return;
                    }
                    if header[0] & 0x0f == 8 {
                        let _ = s.write_all(&[0x88, 0x00]);
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn a_server_of_another_message_shape_is_measured_through_its_own_fields() {
    let addr = foreign_push_server();
    let dir = temp_dir("scenario-foreign");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("foreign.toml");
    std::fs::write(
        &file,
        format!(
            r#"name = "foreign"
[target]
url = "ws://{addr}/feed"
[load]
connections = 3
connect_rate = 100
hold = "2s"
[messages]
seq = "/data/id"
sent = "/data/ts"
sent_unit = "ms"
stream = "/room"
[[groups]]
name = "readers"
connections = 3
steps = [{{ do = "ready" }}]
[[checks]]
name = "every notice but the missing one"
expr = "messages.pushes_received == 3 * 49"
[[checks]]
name = "the gap is seen as a loss"
expr = "messages.lost == 3"
[[checks]]
expr = "latency_us.delivery.p99 < 1s"
"#
        ),
    )
    .unwrap();
    let out = dir.join("out");
    let o = run_scenario(&[file.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = crate::report_schema::validated("a server of another shape", &out);
    assert_eq!(r["latency_us"]["delivery"]["count"], 3 * 49, "{}", r["latency_us"]);
    assert_eq!((r["messages"]["duplicated"].as_u64(), r["messages"]["reordered"].as_u64()), (Some(0), Some(0)));
    // Without [messages], the same server's notices are not probes: nothing is timed,
    // and checks without data make the run invalid, not passed.
    let plain = std::fs::read_to_string(&file).unwrap();
    let start = plain.find("[messages]").unwrap();
    let end = plain.find("[[groups]]").unwrap();
    std::fs::write(&file, format!("{}{}", &plain[..start], &plain[end..])).unwrap();
    let o = run_scenario(&[file.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let r = crate::report_schema::validated("a server of another shape, no [messages]", &out);
    assert_eq!(r["verdict"], "invalid");
    assert!(r["latency_us"]["delivery"].is_null(), "{}", r["latency_us"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes `text` as a scenario file in a fresh directory: (the directory, the file).
fn scenario_file(name: &str, text: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = temp_dir(name);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("scenario.toml");
    std::fs::write(&file, text).unwrap();
    (dir, file)
}

#[test]
fn connection_phases_shape_the_arrivals_second_by_second() {
    // A ramp, a pause and a spike, against the embedded echo server.
    let (dir, file) = scenario_file(
        "scenario-phases",
        r#"name = "phases"
[target]
url = "embedded"
mode = "echo"
[load]
connections = 120
phases = [
  { name = "warm", for = "1s", rate = 20 },
  { name = "pause", for = "1s", to = 20 },
  { name = "spike", for = "1s", to = 120 },
]
hold = "1s"
[[groups]]
name = "held"
connections = 120
steps = [{ do = "ready" }]
[[checks]]
expr = "connections.established == 120"
[[checks]]
name = "warm"
phase = "warm"
expr = "connections.attempted == 20"
[[checks]]
name = "pause"
phase = "pause"
expr = "connections.attempted == 0"
[[checks]]
name = "spike"
phase = "spike"
expr = "connections.established == config.connections - 20"
[[checks]]
name = "hold"
phase = "hold"
expr = "connections.dropped == 0"
"#,
    );
    let out = dir.join("out");
    let o = run_scenario(&[file.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = crate::report_schema::validated("connection phases", &out);
    let per_second: Vec<u64> = r["timeseries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["connections"]["attempted"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(&per_second[..3], [20, 0, 100], "ramp, pause, spike: {per_second:?}");
    assert!(r["scenario"]["target"].as_str().unwrap().starts_with("embedded echo"), "{}", r["scenario"]);
    // Each phase is judged on its own seconds.
    let phases: Vec<(&str, u64, u64)> = r["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["from_s"].as_u64().unwrap(),
                p["connections"]["attempted"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(phases[..3], [("warm", 0, 20), ("pause", 1, 0), ("spike", 2, 100)], "{}", r["phases"]);
    assert_eq!(phases[3].0, "hold");
    let checks: Vec<(&str, &str, bool)> = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["phase"].as_str().unwrap(), c["passed"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        checks,
        [
            ("connections.established == 120", "run", true),
            ("warm", "warm", true),
            ("pause", "pause", true),
            ("spike", "spike", true),
            ("hold", "hold", true)
        ]
    );
    // The same spike check against the whole run fails: it saw all 120.
    let o = run_scenario(&[
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--set",
        "checks.3.phase=run",
        "--set",
        "load.hold=0.2s",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("check failed: spike: observed 120"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_check_marked_abort_stops_the_run_when_it_fails_and_says_so() {
    // Echoes flow at about 100 a second; the run may see at most 50: it must stop
    // within a few seconds of a 60-second hold.
    let (dir, file) = scenario_file(
        "scenario-abort",
        r#"name = "abort"
[target]
url = "embedded"
mode = "echo"
[load]
connections = 10
connect_rate = 100
hold = "60s"
[[groups]]
name = "echoers"
connections = 10
steps = [{ do = "ready" }, { do = "paced", every = "100ms" }]
[[checks]]
name = "patient"
expr = "connections.failed == 0"
abort = true
[[checks]]
name = "few replies"
expr = "messages.answered <= 50"
abort = true
abort_after = "1s"
"#,
    );
    let out = dir.join("out");
    let started = std::time::Instant::now();
    let o = run_scenario(&[file.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "it ran on: {:?}", started.elapsed());
    let err = stderr(&o);
    assert!(err.contains("aborted: few replies: observed "), "{err}");
    let r = crate::report_schema::validated("aborted run", &out);
    assert_eq!(r["interrupted"], true);
    assert_eq!(r["aborted"]["check"], "few replies");
    let at = r["aborted"]["at_s"].as_u64().unwrap();
    assert!((1..10).contains(&at), "{}", r["aborted"]);
    assert!(r["aborted"]["observed"].as_f64().unwrap() > 50.0, "{}", r["aborted"]);
    assert_eq!(r["verdict"], "fail");
    let few = r["checks"].as_array().unwrap().iter().find(|c| c["name"] == "few replies").unwrap();
    assert_eq!(few["passed"], false);
    assert!(few["detail"].as_str().unwrap().contains("the run was stopped there"), "{few}");
    let patient = r["checks"].as_array().unwrap().iter().find(|c| c["name"] == "patient").unwrap();
    assert_eq!(patient["passed"], true, "{patient}");
    let stop =
        r["findings"].as_array().unwrap().iter().find(|f| f["title"] == "the run was stopped by check \"few replies\"");
    assert_eq!(stop.map(|f| &f["severity"]), Some(&serde_json::json!("error")), "{}", r["findings"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn offered_subprotocols_are_negotiated_with_the_reference_target_and_counted() {
    let (dir, file) = scenario_file(
        "scenario-subprotocols",
        r#"name = "subprotocols"
[target]
url = "embedded"
workers = 1
serve = ["--subprotocol", "notify.v1"]
[load]
connections = 10
connect_rate = 100
hold = "500ms"
[connection]
subprotocols = ["notify.v2", "notify.v1"]
[[groups]]
name = "staff"
connections = 10
steps = [{ do = "wait_for", pattern = "lgready" }, { do = "ready" }]
[[checks]]
name = "every upgrade agreed on a subprotocol"
expr = "connections.subprotocol_negotiated == config.connections"
"#,
    );
    let out = dir.join("out");
    let o = run_scenario(&[file.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = crate::report_schema::validated("subprotocols", &out);
    assert_eq!(r["connections"]["subprotocol_negotiated"], 10, "{}", r["connections"]);
    // Offering only what the target does not speak: admitted, none agreed (a count of 0).
    let o = run_scenario(&[
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--set",
        r#"connection.subprotocols=["chat"]"#,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let r = crate::report_schema::validated("subprotocols none agreed", &out);
    assert_eq!(r["connections"]["established"], 10);
    assert!(r["connections"].get("subprotocol_negotiated").is_none(), "{}", r["connections"]);
    assert!(stderr(&o).contains("every upgrade agreed on a subprotocol: observed 0"), "{}", stderr(&o));
    let o = loadgen(&["validate", file.to_str().unwrap(), "--set", r#"connection.subprotocols=["a b"]"#]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("connection.subprotocols[0]: \"a b\" is not a token"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}
