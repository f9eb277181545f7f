use serde_json::{Value, json};

use super::*;

fn schema() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(TIMESERIES_SCHEMA).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("the schema compiles")
}

fn second(s: u64) -> Value {
    json!({
        "second": s,
        "connections": {"attempted": 0, "established": 0, "failed": 0, "closed": 0, "open": 10, "peak_open": 10},
        "messages": {"sent": 5, "received": 5, "bytes_sent": 320, "bytes_received": 320},
        "latency_us": {"message_rtt": {"count": 5, "p50": 100, "p90": 120, "p99": 130, "p999": 130, "max": 130}},
        "saturated": false,
    })
}

fn report() -> Value {
    json!({
        "timeseries": [second(0), second(1), second(2), second(3)],
        "phases": [{"name": "ramp", "from_s": 0, "to_s": 1}, {"name": "hold", "from_s": 1}],
        "faults": [
            {"action": "kill_worker", "at_s": 2.0, "applied_s": 2.0004, "detail": "worker 0", "ok": true, "outcome": "200"},
            {"action": "publish", "at_s": 2.5, "detail": null, "ok": false},
        ],
        "scenario": {"target_cpu_s_by_second": [0.25, null, 0.125, 0.5]},
    })
}

#[test]
fn lines_complete_each_second_from_the_report() {
    let lines = lines(&report());
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["phases"], json!(["ramp"]));
    assert_eq!(lines[1]["phases"], json!(["hold"]), "to_s is exclusive, no to_s runs to the end");
    assert_eq!(lines[3]["phases"], json!(["hold"]));
    assert!(lines[0].get("events").is_none() && lines[3].get("events").is_none());
    let events = lines[2]["events"].as_array().expect("both events fall in second 2");
    assert_eq!(events.len(), 2);
    assert_eq!(events[0], json!({"at_s": 2.0004, "action": "kill_worker", "detail": "worker 0", "ok": true}));
    assert_eq!(events[1]["at_s"], 2.5, "without applied_s, the planned time");
    assert_eq!(lines[0]["target_cpu_s"], 0.25);
    assert!(lines[1].get("target_cpu_s").is_none(), "no reading, no figure");
    assert_eq!(lines[2]["messages"], report()["timeseries"][2]["messages"], "the report's figures, untouched");
    let validator = schema();
    for line in &lines {
        let errors: Vec<String> =
            validator.iter_errors(line).map(|e| format!("{e} at {}", e.instance_path())).collect();
        assert!(errors.is_empty(), "{line}: {errors:?}");
    }
}

#[test]
fn a_report_without_seconds_has_no_lines() {
    assert!(lines(&json!({"duration_s": 0.2})).is_empty());
}

#[test]
fn the_line_schema_is_the_report_schema_of_a_second_plus_three_keys() {
    let report: Value = serde_json::from_str(include_str!("../../../../docs/report.schema.json")).unwrap();
    let line: Value = serde_json::from_str(TIMESERIES_SCHEMA).unwrap();
    let item = &report["properties"]["timeseries"]["items"];
    let props = item["properties"].as_object().unwrap();
    for (key, def) in props {
        let ours = &line["properties"][key];
        if key == "latency_us" {
            assert_eq!(line["$defs"]["latencies"], report["properties"]["latency_us"]);
        } else {
            assert_eq!(ours, def, "timeseries.schema.json `{key}` drifted from report.schema.json");
        }
    }
    for (name, def) in line["$defs"].as_object().unwrap() {
        if name != "latencies" {
            assert_eq!(def, &report["$defs"][name], "$defs/{name} drifted");
        }
    }
    let mut extra: Vec<&String> =
        line["properties"].as_object().unwrap().keys().filter(|k| !props.contains_key(*k)).collect();
    extra.sort();
    assert_eq!(extra, ["events", "phases", "target_cpu_s"]);
    assert_eq!(line["required"], item["required"]);
    assert_eq!(line["additionalProperties"], false);
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("loadgen-report-ts-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn written_lines_read_back_and_streamed_lines_are_flushed() {
    let dir = temp_dir("roundtrip");
    let mut s = Streamer::create(&dir).unwrap();
    s.line(&second(0)).unwrap();
    // Flushed at once: a reader sees it while the streamer is still open.
    assert_eq!(read(&dir.join(TIMESERIES_FILE)).unwrap(), vec![second(0)]);
    drop(s);
    let lines = lines(&report());
    let path = write(&dir, &lines).unwrap();
    assert_eq!(read(&path).unwrap(), lines);
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().filter_map(Result::ok).map(|e| e.file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no temp file left: {leftovers:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_cut_last_line_is_dropped_and_damage_elsewhere_is_named() {
    let dir = temp_dir("damage");
    let path = dir.join(TIMESERIES_FILE);
    let a = serde_json::to_string(&second(0)).unwrap();
    std::fs::write(&path, format!("{a}\n\n{a}\n{}", &a[..a.len() / 2])).unwrap();
    assert_eq!(read(&path).unwrap().len(), 2, "the half-written last line is dropped");
    std::fs::write(&path, format!("{a}\n{{\"second\": oops}}\n{a}\n")).unwrap();
    let e = read(&path).unwrap_err().to_string();
    assert!(e.contains(":2: not a JSON object"), "{e}");
    std::fs::write(&path, format!("{a}\n[1, 2]\n")).unwrap();
    assert!(read(&path).unwrap_err().to_string().contains(":2: not a JSON object: not an object"));
    let missing = read(&dir.join("nope.jsonl")).unwrap_err().to_string();
    assert!(missing.starts_with("cannot read ") && missing.contains("nope.jsonl"), "{missing}");
    let _ = std::fs::remove_dir_all(&dir);
}
