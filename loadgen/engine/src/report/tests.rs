//! Report tests: full and sparse reports validated against [`REPORT_SCHEMA`] by a small
//! validator for the keywords the schema uses (it refuses any other keyword, so the
//! schema cannot silently outgrow it), the absent-not-zero rule, the field table, and
//! atomic replacement of `report.json`.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use serde_json::{Value, json};

use super::*;
use crate::stats::{Recorder, SaturationPolicy, channel};

fn schema() -> Value {
    serde_json::from_str(REPORT_SCHEMA).expect("the schema is JSON")
}

fn resolve<'a>(root: &'a Value, reference: &str) -> &'a Value {
    let pointer = reference.strip_prefix('#').expect("local references only");
    root.pointer(pointer).unwrap_or_else(|| panic!("unresolved {reference}"))
}

fn type_matches(name: &str, v: &Value) -> bool {
    match name {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_u64() || v.is_i64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        other => panic!("unknown type {other}"),
    }
}

/// Validates `v` against `node`, collecting violations as "path: what".
fn validate(root: &Value, node: &Value, v: &Value, path: &str, errs: &mut Vec<String>) {
    let node = node.as_object().expect("schema nodes are objects");
    for (k, rule) in node {
        match k.as_str() {
            "$schema" | "title" | "$defs" | "properties" | "additionalProperties" => {}
            "$ref" => validate(root, resolve(root, rule.as_str().unwrap()), v, path, errs),
            "const" if v != rule => errs.push(format!("{path}: {v} is not {rule}")),
            "type" if !type_matches(rule.as_str().unwrap(), v) => errs.push(format!("{path}: {v} is not {rule}")),
            "minimum" if v.as_f64().is_some_and(|x| x < rule.as_f64().unwrap()) => {
                errs.push(format!("{path}: {v} < {rule}"))
            }
            "required" => {
                for key in rule.as_array().unwrap().iter().map(|k| k.as_str().unwrap()) {
                    if v.as_object().is_some_and(|o| !o.contains_key(key)) {
                        errs.push(format!("{path}: missing {key}"));
                    }
                }
            }
            "minProperties" if v.as_object().is_some_and(|o| (o.len() as u64) < rule.as_u64().unwrap()) => {
                errs.push(format!("{path}: empty object present"))
            }
            "minItems" if v.as_array().is_some_and(|a| (a.len() as u64) < rule.as_u64().unwrap()) => {
                errs.push(format!("{path}: empty array present"))
            }
            "items" => {
                for (i, item) in v.as_array().into_iter().flatten().enumerate() {
                    validate(root, rule, item, &format!("{path}[{i}]"), errs);
                }
            }
            "const" | "type" | "minimum" | "minProperties" | "minItems" => {}
            other => panic!("the test validator does not implement `{other}`"),
        }
    }
    let Some(obj) = v.as_object() else { return };
    let props = node.get("properties").and_then(Value::as_object);
    for (key, value) in obj {
        let sub = format!("{path}.{key}");
        match (props.and_then(|p| p.get(key)), node.get("additionalProperties")) {
            (Some(s), _) => validate(root, s, value, &sub, errs),
            (None, Some(Value::Bool(false))) => errs.push(format!("{sub}: not in the schema")),
            (None, Some(s @ Value::Object(_))) => validate(root, s, value, &sub, errs),
            (None, _) => {}
        }
    }
}

fn check(report: &Report) -> Value {
    let v = report.to_value();
    let root = schema();
    let mut errs = Vec::new();
    validate(&root, &root, &v, "$", &mut errs);
    assert!(errs.is_empty(), "schema violations: {errs:#?}\n{v:#}");
    // Round trip through text.
    let text = serde_json::to_string(report).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), v);
    v
}

/// Two workers over three seconds touching every metric, counter and saturation cause.
fn full_stats() -> RunStats {
    let (mut c, _reporters) = channel(2, SaturationPolicy::default());
    let mut workers = [Recorder::new(), Recorder::new()];
    for s in 0..3 {
        for (w, r) in workers.iter_mut().enumerate() {
            for i in 0..10u64 {
                for m in Metric::ALL {
                    r.record(m, 100 * (w as u64 + 1) + i + s);
                }
                r.message_sent(64);
                r.message_received(64);
            }
            if s == 0 {
                r.connection_attempted();
                r.connection_attempted();
                r.connection_established();
                r.connection_failed();
                r.error("handshake_timeout");
            }
            if s == 1 && w == 0 {
                r.cq_overflow(1);
                r.buffer_ring_exhausted(4);
                r.error("io");
            }
            c.accept(w, r.snapshot(s));
        }
    }
    c.finish()
}

fn info(interrupted: bool) -> RunInfo {
    let baseline = UsageBaseline::now();
    RunInfo { started_unix_s: 1_700_000_000, duration_s: 3.2, interrupted, usage: ProcessUsage::since(&baseline) }
}

#[test]
fn full_report_has_every_section_and_matches_the_schema() {
    let stats = full_stats();
    let report = Report::new(&stats, &info(false));
    let v = check(&report);
    assert_eq!(v["schema_version"], REPORT_SCHEMA_VERSION);
    assert_eq!(v["connections"], json!({"attempted": 4, "established": 2, "failed": 2, "peak_open": 2}));
    for name in ["connect", "handshake", "ready", "message_rtt", "ping_rtt", "delivery"] {
        assert_eq!(v["latency_us"][name]["count"], 60, "{name}");
    }
    let lag = stats.histogram(Metric::ScheduleLag);
    assert_eq!(v["generator"]["schedule_lag_us"]["p99"], lag.value_at_quantile(0.99));
    assert_eq!(v["generator"]["schedule_lag_us"]["max"], 211);
    assert_eq!(v["messages"], json!({"sent": 60, "received": 60}));
    assert_eq!(v["errors"], json!({"handshake_timeout": 2, "io": 1}));
    assert!(v["generator"]["cpu_s"].as_f64().unwrap() >= 0.0);
    assert!(v["generator"]["peak_rss_bytes"].as_u64().unwrap() > 0);
    assert!(v["generator"]["bytes_per_connection"].is_u64());
    assert_eq!(v["generator"]["saturated"], true);
    let reasons = v["generator"]["saturation_reasons"].as_array().unwrap();
    assert!(reasons[0].as_str().unwrap().starts_with("cq_overflow: 1 "), "{reasons:?}");
    assert!(reasons[1].as_str().unwrap().starts_with("buffer_ring_exhausted: 4 "), "{reasons:?}");
    let ts = v["timeseries"].as_array().unwrap();
    assert_eq!(ts.len(), 3);
    assert_eq!(ts[1]["saturated"], true);
    assert_eq!(ts[1]["cq_overflow"], 1);
    assert!(ts[0].get("cq_overflow").is_none() && ts[0].get("saturation_reasons").is_none());
    assert_eq!(ts[2]["messages"]["bytes_sent"], 20 * 64);
    assert_eq!(ts[2]["connections"]["open"], 2);
    assert!(ts[2].get("errors").is_none());
}

#[test]
fn sparse_reports_leave_out_what_the_run_did_not_produce() {
    // Interrupted before anything happened.
    let empty = Report::new(&RunStats::default(), &RunInfo { interrupted: true, ..RunInfo::default() });
    let v = check(&empty);
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["duration_s", "generator", "interrupted", "loadgen_version", "schema_version", "started_unix_s"]);
    assert_eq!(v["generator"], json!({"saturated": false}));
    assert_eq!(v["interrupted"], true);

    // Every connection failed: connections present, no latency, messages or peak memory per connection.
    let (mut c, _reporters) = channel(1, SaturationPolicy::default());
    let mut r = Recorder::new();
    for _ in 0..5 {
        r.connection_attempted();
        r.record(Metric::ScheduleLag, 3);
        r.connection_failed();
        r.error("connect");
    }
    c.accept(0, r.snapshot(0));
    let v = check(&Report::new(&c.finish(), &info(false)));
    assert_eq!(v["connections"], json!({"attempted": 5, "established": 0, "failed": 5, "peak_open": 0}));
    for absent in ["latency_us", "messages"] {
        assert!(v.get(absent).is_none(), "{absent} must be absent, not zero");
    }
    assert!(v["generator"].get("bytes_per_connection").is_none());
    assert!(v["generator"].get("saturation_reasons").is_none());
    assert_eq!(v["generator"]["schedule_lag_us"]["count"], 5);
    assert_eq!(v["errors"], json!({"connect": 5}));
    let second = v["timeseries"][0].as_object().unwrap();
    assert!(!second.contains_key("latency_us") && !second.contains_key("cq_overflow"));
}

#[test]
fn the_validator_catches_violations() {
    let root = schema();
    let mut v = Report::new(&full_stats(), &info(false)).to_value();
    v["latency_us"] = json!({});
    v["messages"] = json!({"sent": 1});
    v["timeseries"][0]["bogus"] = json!(1);
    v["generator"]["schedule_lag_us"]["count"] = json!(0);
    v["errors"]["io"] = json!("1");
    let mut errs = Vec::new();
    validate(&root, &root, &v, "$", &mut errs);
    errs.sort();
    assert_eq!(
        errs,
        [
            "$.errors.io: \"1\" is not \"integer\"",
            "$.generator.schedule_lag_us.count: 0 < 1",
            "$.latency_us: empty object present",
            "$.messages: missing received",
            "$.timeseries[0].bogus: not in the schema",
        ]
    );
}

fn schema_paths(node: &Value, path: &str, out: &mut Vec<String>) {
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (k, sub) in props {
            let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
            out.push(p.clone());
            schema_paths(sub, &p, out);
        }
    }
    if let Some(items) = node.get("items") {
        schema_paths(items, &format!("{path}[]"), out);
    }
}

#[test]
fn field_table_documents_exactly_the_schema() {
    let root = schema();
    assert_eq!(root["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(root["properties"]["schema_version"]["const"], REPORT_SCHEMA_VERSION);
    let mut from_schema = Vec::new();
    schema_paths(&root, "", &mut from_schema);
    from_schema.sort();
    let mut documented: Vec<String> = REPORT_FIELDS.iter().map(|(p, _)| p.to_string()).collect();
    documented.sort();
    assert_eq!(documented, from_schema);
    assert!(REPORT_FIELDS.iter().all(|(_, meaning)| meaning.len() > 10));
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("loadgen-report-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn write_replaces_the_report_atomically() {
    let dir = scratch_dir("write");
    let nested = dir.join("a/b");
    let stats = full_stats();
    let first = Report::new(&stats, &info(false));
    let path = first.write(&nested).unwrap();
    assert_eq!(path, nested.join("report.json"));
    let read = |p: &Path| serde_json::from_slice::<Value>(&std::fs::read(p).unwrap()).unwrap();
    assert_eq!(read(&path), first.to_value());

    // A reader holding the old file keeps the whole old report: the new one replaced it
    // by rename, not by rewriting it in place.
    let mut old = std::fs::File::open(&path).unwrap();
    let old_ino = old.metadata().unwrap().ino();
    let second = Report::new(&RunStats::default(), &RunInfo { interrupted: true, ..RunInfo::default() });
    second.write(&nested).unwrap();
    let mut old_text = String::new();
    old.read_to_string(&mut old_text).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&old_text).unwrap(), first.to_value());
    assert_ne!(std::fs::metadata(&path).unwrap().ino(), old_ino);
    assert_eq!(read(&path), second.to_value());
    assert_eq!(read(&path)["interrupted"], true);
    let entries: Vec<_> = std::fs::read_dir(&nested).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(entries, ["report.json"], "no temporary file is left behind");

    // A directory that cannot be created is an error, not a panic.
    let blocker = dir.join("file");
    std::fs::write(&blocker, b"x").unwrap();
    assert!(second.write(&blocker.join("sub")).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
