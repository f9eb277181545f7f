//! Report tests: full and sparse reports validated against [`REPORT_SCHEMA`] by a real
//! JSON Schema validator (the `jsonschema` crate, draft 2020-12), the schema's own
//! strictness (every object says which keys it allows), the absent-not-zero rule, the
//! field table and the docs/metrics.md table generated from it, and atomic replacement
//! of `report.json`.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::stats::{Recorder, SaturationPolicy, Window, channel};

fn schema() -> Value {
    serde_json::from_str(REPORT_SCHEMA).expect("the schema is JSON")
}

/// The schema as it applies to the engine's [`Report`] alone: the sections the command
/// line adds (`config`, `plan`, `generator.io_uring`) are described but not required.
fn engine_validator() -> jsonschema::Validator {
    let mut s = schema();
    let unrequire = |required: &mut Value, names: &[&str]| {
        let list = required.as_array_mut().expect("a required list");
        let before = list.len();
        list.retain(|k| !names.contains(&k.as_str().unwrap()));
        assert_eq!(list.len() + names.len(), before, "{names:?} are required by the schema");
    };
    unrequire(&mut s["required"], &["config", "plan"]);
    unrequire(&mut s["properties"]["generator"]["required"], &["io_uring"]);
    jsonschema::draft202012::new(&s).expect("a valid draft 2020-12 schema")
}

/// Violations as (JSON pointer in the instance, keyword).
fn violations(v: &Value) -> Vec<(String, String)> {
    let validator = engine_validator();
    let mut errs: Vec<(String, String)> = validator
        .iter_errors(v)
        .map(|e| (e.instance_path().as_str().to_owned(), e.kind().keyword().to_owned()))
        .collect();
    errs.sort();
    errs
}

fn check(report: &Report) -> Value {
    let v = report.to_value();
    let errs = violations(&v);
    assert!(errs.is_empty(), "schema violations: {errs:#?}\n{v:#}");
    // Round trip through text.
    let text = serde_json::to_string(report).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), v);
    v
}

/// Two workers over three seconds touching every metric, counter and saturation cause.
fn full_stats() -> RunStats {
    full_stats_with(&[])
}

/// [`full_stats`] with named windows.
fn full_stats_with(windows: &[Window]) -> RunStats {
    let (mut c, _reporters) = channel(2, SaturationPolicy::default());
    c.set_windows(windows);
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
    assert_eq!(
        v["connections"],
        json!({"attempted": 4, "established": 2, "failed": 2, "dropped": 0, "open_at_end": 0, "peak_open": 2})
    );
    for name in ["connect", "handshake", "ready", "message_rtt", "ping_rtt", "delivery"] {
        assert_eq!(v["latency_us"][name]["count"], 60, "{name}");
    }
    let lag = stats.histogram(Metric::ScheduleLag);
    assert_eq!(v["generator"]["schedule_lag_us"]["p99"], lag.value_at_quantile(0.99));
    assert_eq!(v["generator"]["schedule_lag_us"]["max"], 211);
    assert_eq!((v["messages"]["sent"].as_u64(), v["messages"]["received"].as_u64()), (Some(60), Some(60)));
    // Saturated seconds make the run invalid, whatever its checks say.
    assert_eq!(v["verdict"], "invalid");
    assert_eq!(v["generator"]["saturated_seconds"], json!([1]));
    let failed: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["expr"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["connections.failed == 0"]);
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
    assert_eq!(
        keys,
        [
            "checks",
            "duration_s",
            "generator",
            "interrupted",
            "loadgen_version",
            "schema_version",
            "started_unix_s",
            "verdict"
        ]
    );
    // Nothing ran: no check applies, and the outcome says pass only because nothing failed.
    assert_eq!((&v["verdict"], &v["checks"]), (&json!("pass"), &json!([])));
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
    assert_eq!(
        v["connections"],
        json!({"attempted": 5, "established": 0, "failed": 5, "dropped": 0, "open_at_end": 0, "peak_open": 0})
    );
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
    let mut v = Report::new(&full_stats(), &info(false)).to_value();
    assert!(violations(&v).is_empty());
    v["latency_us"] = json!({});
    v["messages"] = json!({"sent": 1, "received": 1, "answered": 1, "late": 0, "unanswered": 0, "not_sent": 0, "lost": 0, "duplicated": 0, "reordered": 0, "pushes_received": 0});
    v["timeseries"][0]["bogus"] = json!(1);
    v["generator"]["schedule_lag_us"]["count"] = json!(0);
    v["errors"]["io"] = json!("1");
    v["errors"]["Bad Kind"] = json!(1);
    v["connections"]["peak_open"] = json!(-1);
    let at = |p: &str, k: &str| (p.to_owned(), k.to_owned());
    assert_eq!(
        violations(&v),
        [
            at("/connections/peak_open", "minimum"),
            at("/errors", "propertyNames"),
            at("/errors/io", "type"),
            at("/generator/schedule_lag_us/count", "minimum"),
            at("/latency_us", "minProperties"),
            at("/messages", "required"),
            at("/timeseries/0", "additionalProperties"),
        ]
    );
    // The full schema requires what the command line adds.
    let full = jsonschema::draft202012::new(&schema()).unwrap();
    let missing: Vec<String> =
        full.iter_errors(&Report::new(&full_stats(), &info(false)).to_value()).map(|e| e.to_string()).collect();
    assert_eq!(missing.len(), 3, "{missing:?}");
    for name in ["config", "plan", "io_uring"] {
        assert!(missing.iter().any(|e| e.contains(&format!("\"{name}\""))), "{name}: {missing:?}");
    }
}

/// Every object the schema describes says which keys it allows: fixed keys
/// (`additionalProperties: false`) or a schema for any key (`errors`). Without that, a
/// field nobody described would pass unnoticed.
#[test]
fn every_object_in_the_schema_is_closed() {
    fn walk(node: &Value, path: &str, open: &mut Vec<String>) {
        match node {
            Value::Object(o) => {
                let is_object = o
                    .get("type")
                    .is_some_and(|t| t == "object" || t.as_array().is_some_and(|a| a.contains(&json!("object"))));
                if is_object && !o.contains_key("additionalProperties") {
                    open.push(path.to_owned());
                }
                if let Some(required) = o.get("required").and_then(Value::as_array) {
                    let props = o.get("properties").and_then(Value::as_object);
                    for k in required {
                        if !props.is_some_and(|p| p.contains_key(k.as_str().unwrap())) {
                            open.push(format!("{path}: required {k} is not among the properties"));
                        }
                    }
                }
                for (k, sub) in o {
                    walk(sub, &format!("{path}/{k}"), open);
                }
            }
            Value::Array(a) => a.iter().enumerate().for_each(|(i, sub)| walk(sub, &format!("{path}/{i}"), open)),
            _ => {}
        }
    }
    let root = schema();
    jsonschema::meta::validate(&root).expect("the schema is a valid JSON Schema");
    let mut open = Vec::new();
    walk(&root, "#", &mut open);
    assert!(open.is_empty(), "objects without additionalProperties: {open:#?}");
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

/// docs/metrics.md, whose run-report table is generated from [`REPORT_FIELDS`].
const METRICS_MD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/metrics.md");
const TABLE_BEGIN: &str = "<!-- report-fields: generated from REPORT_FIELDS (loadgen/engine/src/report/schema.rs) by `LOADGEN_BLESS=1 cargo test -p loadgen-engine --lib report`; edit there, not here -->";
const TABLE_END: &str = "<!-- /report-fields -->";

fn fields_table() -> String {
    let mut table = String::from("| field | meaning |\n| --- | --- |\n");
    for (path, meaning) in REPORT_FIELDS {
        table.push_str(&format!("| `{path}` | {} |\n", meaning.replace('|', "\\|")));
    }
    table
}

/// The table in docs/metrics.md is the one generated from [`REPORT_FIELDS`];
/// `LOADGEN_BLESS=1` rewrites it.
#[test]
fn metrics_md_table_is_generated_from_the_field_table() {
    let text = std::fs::read_to_string(METRICS_MD).expect("docs/metrics.md");
    let (head, rest) = text.split_once(TABLE_BEGIN).expect("docs/metrics.md has the report-fields begin marker");
    let (table, tail) = rest.split_once(TABLE_END).expect("docs/metrics.md has the report-fields end marker");
    let want = format!("\n{}", fields_table());
    if table == want {
        return;
    }
    if std::env::var_os("LOADGEN_BLESS").is_some() {
        std::fs::write(METRICS_MD, format!("{head}{TABLE_BEGIN}{want}{TABLE_END}{tail}")).unwrap();
        return;
    }
    let (found, generated): (Vec<&str>, Vec<&str>) = (table.lines().collect(), want.lines().collect());
    let first_difference =
        (0..found.len().max(generated.len())).map(|i| (found.get(i), generated.get(i))).find(|(a, b)| a != b);
    panic!(
        "docs/metrics.md's run-report table is not the one generated from REPORT_FIELDS; run \
         `LOADGEN_BLESS=1 cargo test -p loadgen-engine --lib report` and commit docs/metrics.md. \
         First difference (found, generated): {first_difference:#?}"
    );
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

/// Checks address report fields by dotted paths (`connections.close_codes.1008`): the
/// code tables are keyed by the code as a string, so each segment is an object key.
#[test]
fn close_codes_and_refusals_are_reachable_by_dotted_paths() {
    let (mut c, _reporters) = channel(2, SaturationPolicy::default());
    for w in 0..2 {
        let mut r = Recorder::new();
        r.connection_attempted();
        r.connection_established();
        r.pong_timeout();
        r.connection_dropped("pong_timeout");
        r.close_code(1008);
        r.refused(401, None);
        r.refused(429, Some(3));
        c.accept(w, r.snapshot(0));
    }
    // Valid against the schema, too.
    let v = check(&Report::new(&c.finish(), &info(false)));
    let at = |path: &str| path.split('.').try_fold(&v, |v, k| v.get(k)).and_then(Value::as_u64);
    assert_eq!(at("connections.close_codes.1008"), Some(2), "{}", v["connections"]);
    assert_eq!(at("connections.refused.401.count"), Some(2));
    assert_eq!(at("connections.refused.401.retry_after_count"), Some(0));
    assert_eq!(at("connections.refused.429.retry_after_max_s"), Some(3));
    assert_eq!(at("connections.pong_timeouts"), Some(2));
    assert_eq!(at("connections.dropped_by_cause.pong_timeout"), Some(2));
    assert_eq!(at("errors.pong_timeout"), Some(2));
    assert_eq!(at("connections.close_codes.1000"), None, "unseen codes are absent, not 0");
}

#[test]
fn phases_hold_the_counts_and_exact_percentiles_of_their_own_seconds() {
    let w =
        |name: &str, from_ms: u64, to: Duration| Window { name: name.into(), from: Duration::from_millis(from_ms), to };
    let windows = [
        w("ramp", 0, Duration::from_millis(1_500)),
        w("hold", 1_500, Duration::MAX),
        w("later", 10_000, Duration::from_secs(12)),
    ];
    let stats = full_stats_with(&windows);
    let v = check(&Report::new(&stats, &info(false)));
    let phases = v["phases"].as_array().unwrap();
    // The window the run never reached is left out.
    assert_eq!(phases.iter().map(|p| p["name"].as_str().unwrap()).collect::<Vec<_>>(), ["ramp", "hold"]);
    let (ramp, hold) = (&phases[0], &phases[1]);
    assert_eq!((ramp["from_s"].as_u64(), ramp["to_s"].as_u64(), ramp["seconds"].as_u64()), (Some(0), Some(2), Some(2)));
    assert_eq!((hold["from_s"].as_u64(), hold.get("to_s"), hold["seconds"].as_u64()), (Some(1), None, Some(2)));
    assert_eq!(ramp["connections"]["attempted"], 4);
    assert_eq!(ramp["connections"]["failed"], 2);
    // Nothing connected in seconds 1-2: measured zeros, not absent.
    assert_eq!(hold["connections"]["attempted"], 0, "{hold}");
    assert_eq!(hold["connections"]["open_at_end"], 2, "open when its last second ended: {hold}");
    assert_eq!(ramp["errors"], json!({"handshake_timeout": 2, "io": 1}));
    assert_eq!(hold["errors"], json!({"io": 1}));
    // Second 1 holds the boundary: it counts in both.
    assert_eq!(ramp["messages"]["sent"], 40);
    assert_eq!(hold["messages"]["sent"], 40);
    // Percentiles of the phase's own samples, not of the run's.
    let mut h = crate::stats::histogram();
    for s in 1..3u64 {
        for wk in 0..2u64 {
            for i in 0..10u64 {
                h.record(100 * (wk + 1) + i + s).unwrap();
            }
        }
    }
    assert_eq!(hold["latency_us"]["connect"]["count"], 40);
    assert_eq!(hold["latency_us"]["connect"]["p50"], h.value_at_quantile(0.5));
    assert_eq!(hold["latency_us"]["connect"]["max"], h.max());
    assert_eq!(hold["latency_us"]["connect"]["p90"], h.value_at_quantile(0.9));
    assert_eq!(v["latency_us"]["connect"]["count"], 60);
    // No phases, no section.
    assert!(check(&Report::new(&full_stats(), &info(false))).get("phases").is_none());
}

#[test]
fn the_reconnect_wave_is_counted_second_by_second_and_its_peak_reported() {
    let (mut c, _reporters) = channel(1, SaturationPolicy::default());
    let mut r = Recorder::new();
    for (s, attempts) in [(0u64, 0u32), (1, 7), (2, 3)] {
        r.connection_attempted();
        for _ in 0..attempts {
            r.reconnect_attempted();
        }
        c.accept(0, r.snapshot(s));
    }
    let v = check(&Report::new(&c.finish(), &info(false)));
    let wave: Vec<u64> = v["timeseries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["connections"]["reconnect_attempts"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(wave, [0, 7, 3]);
    assert_eq!(v["connections"]["reconnect_peak_per_s"], 7);
    assert!(v["timeseries"][0]["connections"].get("reconnect_attempts").is_none(), "absent when 0");
}
