//! DIR/timeseries.jsonl: one JSON object per second of the run, described by
//! docs/timeseries.schema.json ([`TIMESERIES_SCHEMA`]).
//!
//! While the run goes on, [`Streamer`] appends each second as the engine collected it
//! (the report's `timeseries[]` item) and flushes it, so `tail -f` follows the run and a
//! run killed outright still leaves its seconds behind. When the run ends, [`lines`]
//! completes them from the final report document (what is known only then: the named
//! phases covering each second, the timeline's events applied in it, the embedded
//! target's CPU) and [`write`] replaces the file atomically. [`read`] reads a file back
//! (for `loadgen report DIR`), naming the line of any damage.
//!
//! This module adds no measurement: every figure of a line is the report's.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// Name of the file in the run's directory.
pub const TIMESERIES_FILE: &str = "timeseries.jsonl";

/// JSON Schema (draft 2020-12) of one line: the text of docs/timeseries.schema.json.
pub const TIMESERIES_SCHEMA: &str = include_str!("../../../docs/timeseries.schema.json");

/// Why a timeseries file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TimeseriesError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// A line is not a JSON object.
    #[error("{path}:{line}: not a JSON object: {why}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        why: String,
    },
}

/// Appends live lines to DIR/timeseries.jsonl, one flushed line per second.
#[derive(Debug)]
pub struct Streamer {
    out: BufWriter<File>,
}

impl Streamer {
    /// Creates (truncates) `dir/timeseries.jsonl`.
    pub fn create(dir: &Path) -> io::Result<Self> {
        Ok(Self { out: BufWriter::new(File::create(dir.join(TIMESERIES_FILE))?) })
    }

    /// Appends one line and flushes it.
    pub fn line(&mut self, line: &Value) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, line)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }
}

/// The complete lines of a run from its report document: each `timeseries[]` item
/// with, where the report knows them, `phases` (the names of the phases whose
/// `[from_s, to_s)` holds the second), `events` (the timeline's events applied within
/// the second: `at_s` when applied, `action`, `detail`, `ok`) and `target_cpu_s` (the
/// embedded target's CPU seconds in it). A second with no reading keeps no key.
pub fn lines(report: &Value) -> Vec<Value> {
    let Some(seconds) = report["timeseries"].as_array() else { return Vec::new() };
    let phases = report["phases"].as_array().map(Vec::as_slice).unwrap_or_default();
    let faults = report["faults"].as_array().map(Vec::as_slice).unwrap_or_default();
    let cpu = report["scenario"]["target_cpu_s_by_second"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mut out = Vec::with_capacity(seconds.len());
    for (k, item) in seconds.iter().enumerate() {
        let mut line = item.clone();
        let Some(second) = item["second"].as_u64() else {
            out.push(line);
            continue;
        };
        let names: Vec<&str> = phases
            .iter()
            .filter(|p| {
                let from = p["from_s"].as_u64().unwrap_or(u64::MAX);
                let to = p["to_s"].as_u64().unwrap_or(u64::MAX);
                from <= second && second < to
            })
            .filter_map(|p| p["name"].as_str())
            .collect();
        if !names.is_empty() {
            line["phases"] = json!(names);
        }
        let events: Vec<Value> = faults
            .iter()
            .filter_map(|f| {
                let at = f["applied_s"].as_f64().or_else(|| f["at_s"].as_f64())?;
                (at >= 0.0 && at.floor() as u64 == second)
                    .then(|| json!({"at_s": at, "action": f["action"], "detail": f["detail"], "ok": f["ok"]}))
            })
            .collect();
        if !events.is_empty() {
            line["events"] = Value::Array(events);
        }
        if let Some(cpu) = cpu.get(k).and_then(Value::as_f64) {
            line["target_cpu_s"] = json!((cpu * 1e6).round() / 1e6);
        }
        out.push(line);
    }
    out
}

/// Writes `lines` as `dir/timeseries.jsonl`, replacing the file atomically (temp file
/// and rename); returns its path.
pub fn write(dir: &Path, lines: &[Value]) -> io::Result<PathBuf> {
    let path = dir.join(TIMESERIES_FILE);
    let tmp = dir.join(format!(".{TIMESERIES_FILE}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut out = BufWriter::new(File::create(&tmp)?);
        for line in lines {
            serde_json::to_writer(&mut out, line)?;
            out.write_all(b"\n")?;
        }
        out.into_inner().map_err(io::IntoInnerError::into_error)?.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map(|()| path)
}

/// Reads a timeseries file back; blank lines are skipped, and a last line cut off
/// mid-way (a run killed while writing) is dropped rather than refused.
pub fn read(path: &Path) -> Result<Vec<Value>, TimeseriesError> {
    let io_err = |source| TimeseriesError::Io { path: path.to_path_buf(), source };
    let file = File::open(path).map_err(io_err)?;
    let text: Vec<String> = BufReader::new(file).lines().collect::<Result<_, _>>().map_err(io_err)?;
    let last = text.iter().rposition(|l| !l.trim().is_empty());
    let mut out = Vec::with_capacity(text.len());
    for (i, raw) in text.iter().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(raw) {
            Ok(v) if v.is_object() => out.push(v),
            Ok(_) => {
                return Err(TimeseriesError::Line {
                    path: path.to_path_buf(),
                    line: i + 1,
                    why: "not an object".into(),
                });
            }
            Err(e) if e.is_eof() && Some(i) == last => break,
            Err(e) => return Err(TimeseriesError::Line { path: path.to_path_buf(), line: i + 1, why: e.to_string() }),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
