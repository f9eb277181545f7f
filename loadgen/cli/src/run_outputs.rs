//! What `loadgen run` leaves besides report.json, for people and for other tools:
//! DIR/timeseries.jsonl (streamed each second, completed at the end), DIR/report.html,
//! `--junit FILE`, the live Prometheus endpoint of `--metrics-addr`, and the one JSON
//! line of `--quiet`. The formats are `loadgen-report`'s; this module only opens,
//! feeds and writes them, and turns their failures into one-line messages.

use std::path::{Path, PathBuf};

use loadgen_engine::stats::{Metric, RunStats, SecondStats};
use loadgen_report::prometheus::Exporter;
use loadgen_report::timeseries::{self, Streamer};
use serde_json::Value;

use crate::progress::OutputArgs;

/// Name of the HTML report in the run's directory.
pub const HTML_FILE: &str = "report.html";

/// The side outputs of one run.
pub struct Outputs {
    dir: PathBuf,
    junit: Option<PathBuf>,
    streamer: Option<Streamer>,
    exporter: Option<Exporter>,
    linger: std::time::Duration,
}

impl Outputs {
    /// Opens them before the load: binds `--metrics-addr` (a refusal is a usage error,
    /// before any connection) and starts DIR/timeseries.jsonl.
    pub fn open(output: &OutputArgs, dir: &Path) -> Result<Self, String> {
        let exporter = match output.metrics_addr {
            Some(addr) => Some(Exporter::bind(addr).map_err(|e| {
                format!("cannot serve --metrics-addr {addr}: {e} (choose a free address, or port 0 for any)")
            })?),
            None => None,
        };
        let streamer = Streamer::create(dir).map_err(|e| {
            format!("cannot write {} in {}: {e} (choose another --out)", timeseries::TIMESERIES_FILE, dir.display())
        })?;
        if let Some(junit) = &output.junit {
            probe_writable(junit)
                .map_err(|e| format!("cannot write --junit {}: {e} (choose a writable path)", junit.display()))?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            junit: output.junit.clone(),
            streamer: Some(streamer),
            exporter,
            linger: output.metrics_linger,
        })
    }

    /// Where the live metrics are served, when they are.
    pub fn metrics_url(&self) -> Option<String> {
        self.exporter.as_ref().map(|e| format!("http://{}/metrics", e.local_addr()))
    }

    /// One collected second: appended to the timeseries and published to the exporter.
    /// A timeseries that cannot be written is given up with one warning (the final
    /// file is written again at the end).
    pub fn second(&mut self, second: &SecondStats, so_far: &RunStats) {
        let line = serde_json::to_value(second).unwrap_or(Value::Null);
        if let Some(s) = self.streamer.as_mut()
            && let Err(e) = s.line(&line)
        {
            eprintln!("warning: cannot append to {}: {e}; it is written at the end", timeseries::TIMESERIES_FILE);
            self.streamer = None;
        }
        if let Some(exporter) = &self.exporter {
            let histograms: Vec<(&'static str, &hdrhistogram::Histogram<u64>)> =
                Metric::ALL.iter().map(|&m| (m.name(), so_far.histogram(m))).collect();
            exporter.update(&line, &histograms);
        }
    }

    /// The run is over and `doc` (report.json) written: writes the complete
    /// timeseries, the HTML report and the JUnit file. Returns what was written (kind,
    /// path) and the errors, each on one line.
    pub fn finish(&mut self, doc: &Value) -> (Vec<(&'static str, String)>, Vec<String>) {
        self.streamer = None;
        if let Some(exporter) = &self.exporter {
            exporter.finish(doc);
        }
        let mut written = Vec::new();
        let mut errors = Vec::new();
        let lines = timeseries::lines(doc);
        match timeseries::write(&self.dir, &lines) {
            Ok(path) => written.push(("timeseries", path.display().to_string())),
            Err(e) => {
                errors.push(format!("cannot write {} in {}: {e}", timeseries::TIMESERIES_FILE, self.dir.display()))
            }
        }
        let html = self.dir.join(HTML_FILE);
        match write_atomically(&html, loadgen_report::html::render(doc, &lines).as_bytes()) {
            Ok(()) => written.push(("html", html.display().to_string())),
            Err(e) => errors.push(format!("cannot write {}: {e}", html.display())),
        }
        if let Some(junit) = &self.junit {
            match write_atomically(junit, loadgen_report::junit::render(doc).as_bytes()) {
                Ok(()) => written.push(("junit", junit.display().to_string())),
                Err(e) => errors.push(format!("cannot write --junit {}: {e}", junit.display())),
            }
        }
        (written, errors)
    }

    /// Keeps serving the final figures for `--metrics-linger` (the endpoint closes
    /// when this is dropped).
    pub fn linger(&self) {
        if self.exporter.is_some() && !self.linger.is_zero() {
            eprintln!("metrics: serving the final figures for {:?} more", self.linger);
            std::thread::sleep(self.linger);
        }
    }
}

/// Creates `path`'s directory and checks a file can be created beside it.
fn probe_writable(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    if path.is_dir() {
        return Err(std::io::Error::other("it is a directory"));
    }
    let probe = dir.join(format!(".loadgen-probe.{}", std::process::id()));
    std::fs::write(&probe, b"probe")?;
    std::fs::remove_file(&probe)
}

/// Writes `bytes` to `path` through a temporary file beside it and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
