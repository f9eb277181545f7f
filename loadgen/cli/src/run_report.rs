//! report.json of `loadgen run`, with the fields of docs/metrics.md. Sections a run
//! did not produce are absent, not zero. Written atomically (temp file + rename), also
//! for an interrupted run.

use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use loadgen_engine::preflight::Plan;
use loadgen_engine::run::{RunConfig, RunOutcome};
use serde_json::{Map, Value, json};

fn percentiles(h: &Histogram<u64>) -> Value {
    json!({
        "count": h.len(),
        "p50": h.value_at_quantile(0.5),
        "p90": h.value_at_quantile(0.9),
        "p99": h.value_at_quantile(0.99),
        "p999": h.value_at_quantile(0.999),
        "max": h.max(),
    })
}

/// Builds the report document.
pub fn document(o: &RunOutcome, config: &RunConfig, plan: &Plan, interrupted: bool) -> Value {
    let m = &o.metrics;
    let mut latency = Map::new();
    for (name, h) in [
        ("connect", &m.connect),
        ("handshake", &m.handshake),
        ("ready", &m.ready),
        ("message_rtt", &m.message_rtt),
        ("ping_rtt", &m.ping_rtt),
    ] {
        if !h.is_empty() {
            latency.insert(name.into(), percentiles(h));
        }
    }
    let mut doc = json!({
        "schema_version": 1,
        "loadgen_version": env!("CARGO_PKG_VERSION"),
        "started_unix_s": o.started_unix_s,
        "duration_s": o.elapsed.as_secs_f64(),
        "interrupted": interrupted,
        "config": {
            "targets": config.targets.iter().map(|t| format!("ws://{}{}", t.host, t.path)).collect::<Vec<_>>(),
            "connections": config.connections,
            "connect_rate": config.connect_rate,
            "hold_s": config.hold.as_secs_f64(),
            "workers": config.workers,
            "traffic": format!("{:?}", config.traffic),
        },
        "connections": {
            "attempted": m.attempted,
            "established": m.established,
            "failed": m.failed,
            "peak_open": m.peak_open,
        },
        "generator": {
            "schedule_lag_us": percentiles(&m.schedule_lag),
            "buffer_ring_empty": m.buffer_ring_empty,
            "io_uring": o.ring_flags,
        },
    });
    doc["plan"] = serde_json::to_value(plan).unwrap_or(Value::Null);
    if !latency.is_empty() {
        doc["latency_us"] = Value::Object(latency);
    }
    if m.sent + m.received > 0 {
        doc["messages"] = json!({ "sent": m.sent, "received": m.received });
    }
    if !m.errors.is_empty() {
        doc["errors"] = json!(m.errors);
    }
    doc
}

/// Writes `dir/report.json`; returns its path.
pub fn write(
    o: &RunOutcome,
    config: &RunConfig,
    plan: &Plan,
    interrupted: bool,
    dir: &Path,
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("report.json");
    let tmp = dir.join(".report.json.tmp");
    let bytes = serde_json::to_vec_pretty(&document(o, config, plan, interrupted)).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}
