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
