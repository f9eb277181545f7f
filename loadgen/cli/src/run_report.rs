//! report.json of `loadgen run`: the engine's [`Report`] (fields in docs/metrics.md,
//! sections a run did not produce absent) plus what only the command line knows: the
//! run's configuration (`config`), the pre-flight plan (`plan`), the io_uring
//! features used (`generator.io_uring`) and the machine (`host`). The whole document is described by
//! docs/report.schema.json (`loadgen_engine::report::REPORT_SCHEMA`); the integration
//! test `report_schema` validates what every kind of run writes against it. Written
//! atomically (temp file + rename), also for an interrupted run.

use std::path::{Path, PathBuf};

use loadgen_engine::preflight::Plan;
use loadgen_engine::report::{ProcessUsage, Report, RunInfo};
use loadgen_engine::run::{Protocol, RunConfig, RunOutcome};
use loadgen_engine::stats::RunStats;
use serde_json::{Value, json};

/// Builds the report document.
pub fn document(o: &RunOutcome, config: &RunConfig, plan: &Plan, interrupted: bool) -> Value {
    let info =
        RunInfo { started_unix_s: o.started_unix_s, duration_s: o.elapsed.as_secs_f64(), interrupted, usage: o.usage };
    let mut doc = Report::new(&o.stats, &info).with_protocol_memory(&o.memory, o.stats.peak_open).to_value();
    doc["config"] = config_section(config);
    doc["plan"] = serde_json::to_value(plan).unwrap_or(Value::Null);
    doc["generator"]["io_uring"] = json!(o.ring_flags);
    doc["host"] = crate::host_info::report_section();
    doc
}

/// The report of the run so far, for checks judged while it goes on: the totals,
/// latencies and phases collected up to `second` and the run's `config` (no time
/// series, plan or resource use).
pub fn live_document(so_far: &RunStats, second: u64, config: &Value) -> Value {
    let info = RunInfo {
        started_unix_s: 0,
        duration_s: (second + 1) as f64,
        interrupted: false,
        usage: ProcessUsage::default(),
    };
    let mut doc = Report::summary(so_far, &info).to_value();
    doc["config"] = config.clone();
    doc
}

/// The report's `config`: the run as configured.
pub fn config_section(config: &RunConfig) -> Value {
    let (protocol, schemes) = match config.protocol {
        Protocol::WebSocket => ("websocket", ["ws", "wss"]),
        Protocol::RawTcp => ("raw_tcp", ["ws", "wss"]),
        Protocol::Http1 => ("http1", ["http", "https"]),
    };
    json!({
        "protocol": protocol,
        "targets": config
            .targets
            .iter()
            .map(|t| format!("{}://{}{}", schemes[usize::from(t.tls)], t.host, t.path))
            .collect::<Vec<_>>(),
        "connections": config.connections,
        "connect_rate": config.connect_rate,
        "hold_s": config.hold.as_secs_f64(),
        "workers": config.workers,
        "traffic": format!("{:?}", config.traffic),
        "on_open_steps": config.on_open.len(),
        "ping_interval_s": config.ping_interval.map(|d| d.as_secs_f64()),
        "deflate": config.deflate.as_ref().map(|d| d.offer()),
        "tls_resumption": config.tls.as_ref().map(|t| t.resumption_cache_size() > 0),
        "reply_timeout_s": config.reply_timeout.as_secs_f64(),
        "think_time_s": config.think_time.as_secs_f64(),
        "coalesce_us": config.timer_coalesce.as_secs_f64() * 1e6,
        "reconnect": config.reconnect.map(|p| json!({
            "initial_s": p.initial.as_secs_f64(),
            "max_s": p.max.as_secs_f64(),
            "limit": p.limit,
        })),
    })
}

/// Writes `doc` as `dir/report.json` (temp file and rename); returns its path.
pub fn write(doc: &Value, dir: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("report.json");
    let bytes = serde_json::to_vec_pretty(doc).map_err(std::io::Error::other)?;
    crate::run_outputs::write_atomically(&path, &bytes)?;
    Ok(path)
}
