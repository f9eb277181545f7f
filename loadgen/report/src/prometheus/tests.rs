//! Tests of the exposition (encoded text parsed back), of the HTTP server on a loopback
//! port 0, and of the Grafana dashboard against the names the encoder emits.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::http::{MAX_CLIENTS, MAX_HEAD, OPENMETRICS_TYPE, PROMETHEUS_TYPE, READ_TIMEOUT, wants_openmetrics};
use super::snapshot::State;
use super::text::openmetrics_to_prometheus;
use super::{BUCKET_BOUNDS_US, Exporter};

const DASHBOARD: &str = include_str!("../../../../docs/grafana/loadgen-dashboard.json");
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                                 version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the samples of an exposition (either format); panics on a malformed line.
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let name_end = line.find(['{', ' ']).expect(line);
        let name = line[..name_end].to_owned();
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(mut r) = rest.strip_prefix('{') {
            rest = loop {
                r = r.trim_start_matches(',');
                if let Some(after) = r.strip_prefix('}') {
                    break after;
                }
                let (key, after) = r.split_once("=\"").expect(line);
                let mut value = String::new();
                let mut chars = after.char_indices();
                let end = loop {
                    match chars.next().expect(line) {
                        (_, '\\') => value.push(match chars.next().expect(line).1 {
                            'n' => '\n',
                            c => c,
                        }),
                        (i, '"') => break i,
                        (_, c) => value.push(c),
                    }
                };
                labels.insert(key.to_owned(), value);
                r = &after[end + 1..];
            };
        }
        let value = rest.trim();
        let value = if value == "+Inf" { f64::INFINITY } else { value.parse().expect(line) };
        out.push(Sample { name, labels, value });
    }
    out
}

fn get(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .map(|s| s.value)
}

fn encoded(state: &State) -> (Vec<Sample>, String, String) {
    let texts = state.encode().expect("encodes");
    (parse(&texts.prometheus), texts.prometheus, texts.openmetrics)
}

fn percentiles(p50: u64, p99: u64, max: u64) -> Value {
    json!({"count": 10, "p50": p50, "p90": p50 + 1, "p99": p99, "p999": max, "max": max})
}

fn line1() -> Value {
    json!({
        "second": 0,
        "connections": {"attempted": 10, "established": 9, "failed": 1, "closed": 0, "open": 9, "peak_open": 9},
        "messages": {"sent": 100, "received": 90, "bytes_sent": 1000, "bytes_received": 900, "late": 2},
        "latency_us": {"connect": percentiles(150, 900, 1000), "message_rtt": percentiles(2000, 5000, 9000)},
        "schedule_lag_us": percentiles(10, 2000, 3000),
        "cq_overflow": 3,
        "saturated": true,
        "saturation_reasons": ["schedule_lag: p99 2000 µs over 1000 µs", "cq_overflow: 3 completion-queue overflows"],
        "errors": {"connection_reset": 1},
        "phases": ["ramp"],
    })
}

fn line2() -> Value {
    json!({
        "second": 1,
        "connections": {"attempted": 5, "established": 4, "failed": 1, "closed": 3, "dropped": 2,
                        "reconnect_attempts": 2, "open": 10, "peak_open": 12},
        "messages": {"sent": 50, "received": 40, "bytes_sent": 500, "bytes_received": 400, "lost": 7},
        "latency_us": {"message_rtt": percentiles(3000, 7000, 11000)},
        "connect_lag_us": percentiles(5, 80, 120),
        "buffer_ring_exhausted": 4,
        "saturated": false,
        "errors": {"connection_reset": 2, "server_closed_tcp": 1},
        "phases": ["hold", "fault \"a\\b\"\nx"],
        "target_cpu_s": 0.25,
        "events": [{"at_s": 1.5, "action": "kill_worker", "ok": true}],
    })
}

fn histogram(values: &[u64]) -> Histogram<u64> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("bounds");
    for &v in values {
        h.record(v).expect("in range");
    }
    h
}

/// A state after two seconds with every family populated, and the histograms it saw.
fn two_seconds() -> (State, Histogram<u64>) {
    let connect = histogram(&[1, 50, 51, 999, 1000, 1001, 5000, 300_000, 70_000_000]);
    let lag = histogram(&[3, 4, 200]);
    let mut state = State::default();
    state.apply(&line1(), &[("connect", &connect)]);
    state.apply(&line2(), &[("connect", &connect), ("schedule_lag", &lag), ("message_rtt", &histogram(&[]))]);
    (state, connect)
}

#[test]
fn before_the_first_update_only_info_is_exposed() {
    let (samples, prometheus, openmetrics) = encoded(&State::default());
    assert_eq!(samples.len(), 1, "{prometheus}");
    assert_eq!(samples[0].name, "loadgen_info");
    assert_eq!(samples[0].labels.get("version").map(String::as_str), Some(env!("CARGO_PKG_VERSION")));
    assert!(prometheus.contains("# TYPE loadgen_info gauge\n"), "{prometheus}");
    assert!(openmetrics.contains("# TYPE loadgen info\n") && openmetrics.ends_with("# EOF\n"), "{openmetrics}");
}

#[test]
fn counters_are_sums_of_deltas_and_gauges_the_last_second() {
    let (state, _) = two_seconds();
    let (s, text, _) = encoded(&state);
    let total = |name: &str| get(&s, name, &[]).unwrap_or_else(|| panic!("{name} missing:\n{text}"));
    assert_eq!(total("loadgen_connections_attempted_total"), 15.0);
    assert_eq!(total("loadgen_connections_established_total"), 13.0);
    assert_eq!(total("loadgen_connections_failed_total"), 2.0);
    assert_eq!(total("loadgen_connections_closed_total"), 3.0);
    assert_eq!(total("loadgen_connections_dropped_total"), 2.0);
    assert_eq!(total("loadgen_connections_reconnect_attempts_total"), 2.0);
    assert_eq!(total("loadgen_messages_sent_total"), 150.0);
    assert_eq!(total("loadgen_messages_received_total"), 130.0);
    assert_eq!(total("loadgen_message_bytes_sent_total"), 1500.0);
    assert_eq!(total("loadgen_message_bytes_received_total"), 1300.0);
    assert_eq!(total("loadgen_messages_late_total"), 2.0);
    assert_eq!(total("loadgen_messages_lost_total"), 7.0);
    assert_eq!(total("loadgen_cq_overflow_total"), 3.0);
    assert_eq!(total("loadgen_buffer_ring_exhausted_total"), 4.0);
    assert_eq!(get(&s, "loadgen_errors_total", &[("kind", "connection_reset")]), Some(3.0));
    assert_eq!(get(&s, "loadgen_errors_total", &[("kind", "server_closed_tcp")]), Some(1.0));
    assert_eq!(total("loadgen_connections_open"), 10.0);
    assert_eq!(total("loadgen_connections_peak_open"), 12.0);
    assert_eq!(total("loadgen_run_second"), 1.0);
    assert_eq!(total("loadgen_run_finished"), 0.0);
    assert_eq!(total("loadgen_generator_saturated"), 0.0);
    assert_eq!(total("loadgen_target_cpu_seconds"), 0.25);
    assert!(!s.iter().any(|x| x.name == "loadgen_generator_saturation_reason"), "{text}");
    assert_eq!(get(&s, "loadgen_phase", &[("phase", "hold")]), Some(1.0));
    assert_eq!(get(&s, "loadgen_phase", &[("phase", "fault \"a\\b\"\nx")]), Some(1.0), "{text}");
    assert_eq!(get(&s, "loadgen_phase", &[("phase", "ramp")]), None);
    assert!(!s.iter().any(|x| x.name == "loadgen_run_verdict"));
}

#[test]
fn last_second_percentiles_are_absent_without_samples() {
    let (state, _) = two_seconds();
    let (s, text, _) = encoded(&state);
    let gauge = "loadgen_latency_last_second_seconds";
    assert_eq!(get(&s, gauge, &[("metric", "message_rtt"), ("quantile", "0.5")]), Some(0.003));
    assert_eq!(get(&s, gauge, &[("metric", "message_rtt"), ("quantile", "0.99")]), Some(0.007));
    assert_eq!(get(&s, gauge, &[("metric", "message_rtt"), ("quantile", "1")]), Some(0.011));
    assert_eq!(s.iter().filter(|x| x.name == gauge).count(), 5, "{text}");
    assert_eq!(get(&s, gauge, &[("metric", "connect")]), None, "connect had no sample in second 1:\n{text}");
    let lag = "loadgen_generator_lag_last_second_seconds";
    assert_eq!(get(&s, lag, &[("lag", "connect"), ("quantile", "0.99")]), Some(0.00008));
    assert_eq!(get(&s, lag, &[("lag", "schedule")]), None, "{text}");
}

#[test]
fn histogram_buckets_are_cumulative_up_to_the_hdr_count() {
    let (state, connect) = two_seconds();
    let (s, text, openmetrics) = encoded(&state);
    let buckets: Vec<(f64, f64)> = s
        .iter()
        .filter(|x| x.name == "loadgen_latency_seconds_bucket" && x.labels["metric"] == "connect")
        .map(|x| {
            let le = &x.labels["le"];
            (if le == "+Inf" { f64::INFINITY } else { le.parse().expect("le") }, x.value)
        })
        .collect();
    assert_eq!(buckets.len(), BUCKET_BOUNDS_US.len() + 1, "{text}");
    for (b, &bound_us) in buckets.iter().zip(BUCKET_BOUNDS_US.iter()) {
        assert!((b.0 - bound_us as f64 / 1e6).abs() < 1e-12, "{b:?} vs {bound_us}");
    }
    assert!(buckets.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1), "{buckets:?}");
    let last = buckets.last().expect("+Inf");
    assert_eq!(*last, (f64::INFINITY, connect.len() as f64));
    let count = get(&s, "loadgen_latency_seconds_count", &[("metric", "connect")]);
    assert_eq!(count, Some(connect.len() as f64));
    let at = |le: f64| buckets.iter().find(|b| b.0 == le).map(|b| b.1);
    assert_eq!(at(0.00005), Some(2.0), "1 and 50 µs");
    assert_eq!(at(0.001), Some(5.0), "up to 1000 µs");
    assert_eq!(at(0.005), Some(7.0), "5000 µs is in HdrHistogram's bucket [5000, 5003]");
    for (&bound, b) in BUCKET_BOUNDS_US.iter().zip(&buckets) {
        assert_eq!(b.1, connect.count_between(0, bound) as f64, "le {bound} µs is count_between(0, {bound})");
    }
    assert_eq!(at(0.5), Some(8.0), "all but the 70 s sample");
    assert_eq!(at(60.0), Some(8.0));
    let sum = get(&s, "loadgen_latency_seconds_sum", &[("metric", "connect")]).expect("sum");
    let exact = [1u64, 50, 51, 999, 1000, 1001, 5000, 300_000, 70_000_000].iter().sum::<u64>() as f64 / 1e6;
    assert!((sum - exact).abs() / exact < 1e-3, "{sum} vs {exact}");
    let lag = get(&s, "loadgen_generator_lag_seconds_count", &[("lag", "schedule")]);
    assert_eq!(lag, Some(3.0), "{text}");
    assert_eq!(get(&s, "loadgen_latency_seconds_count", &[("metric", "schedule_lag")]), None);
    assert_eq!(get(&s, "loadgen_latency_seconds_count", &[("metric", "message_rtt")]), None, "empty: absent");
    assert!(openmetrics.contains("# UNIT loadgen_latency_seconds seconds\n"));
    assert!(text.contains("# TYPE loadgen_latency_seconds histogram\n") && !text.contains("# UNIT"));
    assert!(text.contains("# TYPE loadgen_connections_attempted_total counter\n"), "{text}");
    assert!(text.contains("# HELP loadgen_connections_attempted_total "), "{text}");
    assert!(!text.contains("# EOF") && openmetrics.ends_with("# EOF\n"));
    assert_eq!(parse(&openmetrics).len(), s.len(), "same samples in both formats");
}

#[test]
fn malformed_lines_are_skipped_without_panicking() {
    let mut state = State::default();
    let garbage = [
        json!(null),
        json!([1, 2]),
        json!("second"),
        json!({"connections": "x", "messages": [1], "latency_us": [1], "errors": {"a": -1, "b": "x"},
               "saturation_reasons": "x", "phases": [1, null, ""], "second": -3, "saturated": "yes",
               "target_cpu_s": -1.0, "schedule_lag_us": {"count": 0, "p50": 1}}),
        json!({"latency_us": {"connect": {"count": 3, "p50": -5, "p99": "x", "max": 1e300}, "ping_rtt": 7}}),
    ];
    for line in &garbage {
        state.apply(line, &[]);
        state.encode().expect("encodes");
    }
    let (s, text, _) = encoded(&state);
    assert_eq!(get(&s, "loadgen_connections_attempted_total", &[]), Some(0.0));
    assert_eq!(get(&s, "loadgen_errors_total", &[("kind", "a")]), Some(0.0));
    assert_eq!(get(&s, "loadgen_run_second", &[]), None, "{text}");
    assert_eq!(get(&s, "loadgen_generator_saturated", &[]), None);
    assert_eq!(get(&s, "loadgen_target_cpu_seconds", &[]), None);
    assert_eq!(get(&s, "loadgen_generator_lag_last_second_seconds", &[]), None);
    let connect = |q| get(&s, "loadgen_latency_last_second_seconds", &[("metric", "connect"), ("quantile", q)]);
    assert_eq!((connect("0.5"), connect("0.99"), connect("1")), (None, None, Some(1e294)), "{text}");
    state.apply(&line1(), &[]);
    let (s, _, _) = encoded(&state);
    assert_eq!(get(&s, "loadgen_connections_attempted_total", &[]), Some(10.0));
    assert_eq!(get(&s, "loadgen_run_second", &[]), Some(0.0));
}

#[test]
fn finish_exposes_the_verdict() {
    let (mut state, _) = two_seconds();
    state.finish(&json!({"verdict": "fail"}));
    let (s, _, _) = encoded(&state);
    assert_eq!(get(&s, "loadgen_run_finished", &[]), Some(1.0));
    assert_eq!(get(&s, "loadgen_run_verdict", &[("verdict", "fail")]), Some(1.0));
    assert_eq!(get(&s, "loadgen_connections_attempted_total", &[]), Some(15.0), "figures kept");
}

#[test]
fn accept_negotiation() {
    assert!(wants_openmetrics(PROMETHEUS_ACCEPT));
    assert!(wants_openmetrics("application/openmetrics-text"));
    assert!(!wants_openmetrics("text/plain;version=0.0.4"));
    assert!(!wants_openmetrics(""));
    assert!(!wants_openmetrics("*/*"));
    assert!(!wants_openmetrics("application/openmetrics-text;q=0,text/plain"));
    assert!(!wants_openmetrics("application/openmetrics-text;q=0.4,text/plain;q=0.5"));
    assert!(!wants_openmetrics("application/openmetrics-text;q=NaN"));
}

#[test]
fn prometheus_rewrite_keeps_unknown_lines() {
    let om = "# HELP a_b A b.\n# TYPE a_b counter\na_b_total 1\n# HELP x X.\n# TYPE x unknown\nx 2\n# EOF\n";
    let want = "# HELP a_b_total A b.\n# TYPE a_b_total counter\na_b_total 1\n# HELP x X.\n# TYPE x untyped\nx 2\n";
    assert_eq!(openmetrics_to_prometheus(om), want);
}

/// Sends `raw` and reads the whole response: (status, head, body).
fn request(addr: SocketAddr, raw: &[u8]) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).expect("connects");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream.write_all(raw).expect("writes");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("reads");
    let end = response.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
    let head = String::from_utf8(response[..end].to_vec()).expect("utf-8");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status");
    (status, head, response[end..].to_vec())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| l.split_once(": ").filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

fn loopback_exporter() -> Exporter {
    Exporter::bind("127.0.0.1:0".parse().expect("addr")).expect("binds")
}

#[test]
fn server_answers_metrics_in_the_format_asked_for() {
    let exporter = loopback_exporter();
    let addr = exporter.local_addr();
    assert_ne!(addr.port(), 0);
    let (status, _, body) = request(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200);
    assert_eq!(parse(std::str::from_utf8(&body).expect("utf-8")).len(), 1, "info only before an update");

    let connect = histogram(&[100, 200]);
    exporter.update(&line1(), &[("connect", &connect)]);
    let (status, head, body) = request(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let body = String::from_utf8(body).expect("utf-8");
    assert_eq!(status, 200);
    assert_eq!(header(&head, "content-type"), Some(PROMETHEUS_TYPE));
    assert_eq!(header(&head, "content-length"), Some(body.len().to_string().as_str()));
    assert_eq!(get(&parse(&body), "loadgen_connections_open", &[]), Some(9.0), "{body}");
    assert!(!body.contains("# EOF"));

    let raw = format!("GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\nAccept: {PROMETHEUS_ACCEPT}\r\n\r\n");
    let (status, head, body) = request(addr, raw.as_bytes());
    let body = String::from_utf8(body).expect("utf-8");
    assert_eq!((status, header(&head, "content-type")), (200, Some(OPENMETRICS_TYPE)));
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert_eq!(get(&parse(&body), "loadgen_latency_seconds_count", &[("metric", "connect")]), Some(2.0));

    let (status, head, body) = request(addr, b"HEAD /metrics HTTP/1.0\r\n\r\n");
    assert_eq!(status, 200);
    assert!(body.is_empty());
    assert!(header(&head, "content-length").and_then(|l| l.parse::<usize>().ok()).is_some_and(|l| l > 100));
}

#[test]
fn server_refuses_what_is_not_a_metrics_request() {
    let exporter = loopback_exporter();
    let addr = exporter.local_addr();
    assert_eq!(request(addr, b"GET /other HTTP/1.1\r\n\r\n").0, 404);
    assert_eq!(request(addr, b"GET /metricsx HTTP/1.1\r\n\r\n").0, 404);
    assert_eq!(request(addr, b"hello there\r\n\r\n").0, 400);
    assert_eq!(request(addr, b"\x16\x03\x01\x00\xff\r\n\r\n").0, 400);
    assert_eq!(request(addr, b"GET /metrics HTTP/1.1\r\nno colon\r\n\r\n").0, 400);
    assert_eq!(request(addr, b"GET metrics HTTP/1.1\r\n\r\n").0, 400);
    let (status, head, _) = request(addr, b"POST /metrics HTTP/1.1\r\n\r\n");
    assert_eq!((status, header(&head, "allow")), (405, Some("GET, HEAD")));
    let mut huge = b"GET /metrics HTTP/1.1\r\nX-Big: ".to_vec();
    huge.resize(MAX_HEAD + 100, b'a');
    huge.extend_from_slice(b"\r\n\r\n");
    assert_eq!(request(addr, &huge).0, 431);
    assert_eq!(request(addr, b"GET /metrics HTTP/1.1\r\n\r\n").0, 200, "still serving");
}

/// Reads until the server closes; returns how long that took.
fn wait_closed(stream: &mut TcpStream) -> Duration {
    let start = Instant::now();
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    start.elapsed()
}

#[test]
fn server_survives_silent_clients_and_bounds_them() {
    let exporter = loopback_exporter();
    let addr = exporter.local_addr();
    let mut silent = vec![TcpStream::connect(addr).expect("connects")];
    let start = Instant::now();
    assert_eq!(request(addr, b"GET /metrics HTTP/1.1\r\n\r\n").0, 200, "not held up by a silent client");
    assert!(start.elapsed() < READ_TIMEOUT, "{:?}", start.elapsed());
    std::thread::sleep(Duration::from_millis(100)); // the answered client's slot frees
    silent.extend((1..MAX_CLIENTS).map(|_| TcpStream::connect(addr).expect("connects")));
    std::thread::sleep(Duration::from_millis(100));
    let mut over = TcpStream::connect(addr).expect("connects");
    assert!(wait_closed(&mut over) < READ_TIMEOUT, "over the bound: closed at once");
    for s in &mut silent {
        let waited = wait_closed(s);
        assert!(waited < READ_TIMEOUT + Duration::from_secs(3), "{waited:?}");
    }
    assert!(start.elapsed() >= READ_TIMEOUT, "the silent ones were held until their timeout");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(request(addr, b"GET /metrics HTTP/1.1\r\n\r\n").0, 200, "serving after the timeouts");
}

#[test]
fn server_stops_when_dropped() {
    let exporter = loopback_exporter();
    let addr = exporter.local_addr();
    assert_eq!(request(addr, b"GET /metrics HTTP/1.1\r\n\r\n").0, 200);
    let start = Instant::now();
    drop(exporter);
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
    assert!(TcpStream::connect(addr).is_err(), "the port refuses once dropped");
}

/// Every `loadgen_…` name in `text`.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("loadgen_") {
        let boundary = i == 0 || !rest.as_bytes()[i - 1].is_ascii_alphanumeric() && rest.as_bytes()[i - 1] != b'_';
        let len = rest[i..].bytes().take_while(|b| b.is_ascii_lowercase() || *b == b'_').count();
        if boundary {
            out.insert(rest[i..i + len].to_owned());
        }
        rest = &rest[i + len..];
    }
    out
}

fn exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", Value::String(s)) => out.push(s.clone()),
                    ("query" | "definition", Value::String(s)) => out.push(s.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[test]
fn dashboard_queries_only_names_the_exporter_emits() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    assert!(dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
    let inputs = dashboard["__inputs"].as_array().expect("__inputs");
    assert!(inputs.iter().any(|i| i["name"] == "DS_PROMETHEUS" && i["pluginId"] == "prometheus"));
    let panels = dashboard["panels"].as_array().expect("panels");
    let ids: BTreeSet<u64> = panels.iter().filter_map(|p| p["id"].as_u64()).collect();
    assert_eq!(ids.len(), panels.len(), "every panel has a unique id");
    for p in panels.iter().filter(|p| p["type"] != "row") {
        assert_eq!(p["datasource"]["uid"], "${DS_PROMETHEUS}", "{}", p["title"]);
        assert!(p["gridPos"]["w"].as_u64().is_some(), "{}", p["title"]);
        let targets = p["targets"].as_array().map_or(0, Vec::len);
        assert!(targets > 0, "{} has no query", p["title"]);
    }

    // Names emitted after any update: some families live only in some seconds.
    let (mut state, _) = two_seconds();
    let mut emitted: BTreeSet<String> = encoded(&state).0.into_iter().map(|s| s.name).collect();
    state.apply(&line1(), &[]);
    state.finish(&json!({"verdict": "pass"}));
    emitted.extend(encoded(&state).0.into_iter().map(|s| s.name));
    let mut queries = Vec::new();
    exprs(&dashboard, &mut queries);
    assert!(queries.len() >= 10, "{queries:?}");
    let mut used = BTreeSet::new();
    for q in &queries {
        for name in names_in(q) {
            assert!(emitted.contains(&name), "{name} (in `{q}`) is not emitted; emitted: {emitted:?}");
            used.insert(name);
        }
    }
    for must in ["loadgen_connections_open", "loadgen_latency_seconds_bucket", "loadgen_errors_total"] {
        assert!(used.contains(must), "the dashboard does not show {must}");
    }
}
