//! `loadgen compare OLD NEW`: what changed between two runs' report.json documents and
//! whether NEW regressed beyond the [`Thresholds`]:
//!
//! - latency percentiles (p50, p90, p99, p99.9, max) of every `latency_us` metric both
//!   runs have, each with its 95% confidence interval from the run's `histograms`; a
//!   percentile regresses when NEW exceeds OLD by more than the threshold *and* the
//!   intervals do not overlap (beyond noise). Without histograms it is judged on the
//!   value alone and marked unverified. The generator's own lags
//!   (`generator.schedule_lag_us`, `connect_lag_us`) are shown apart, as the
//!   generator's health: they never regress the target, and a saturated NEW run marks
//!   its latencies untrusted;
//! - throughput (messages received and sent per second, connections established, peak
//!   open): regresses when it drops by more than its threshold;
//! - errors (failed connections, drops by cause, refusals by status, `errors` by kind,
//!   lost, late, unanswered, not sent, duplicated, reordered messages), absolute and per
//!   million messages: a class NEW has and OLD had not, or a rate grown beyond the
//!   threshold, regresses;
//! - the verdict (pass → fail or invalid regresses) and every check whose outcome
//!   changed (matched by name and phase).
//!
//! Renderings: [`Comparison::text`] (terminal table), [`Comparison::html`] (one
//! self-contained page), [`Comparison::to_json`]. This module reads documents: it does
//! not read files, run load or parse command lines (the CLI does; the thresholds'
//! parsers are here so their errors read the same everywhere).

mod counts;
mod html;
mod latency;
mod outcome;
mod text;
mod thresholds;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_render;

use std::fmt;

use serde_json::{Map, Value, json};

use crate::buckets::{BucketsError, Interval};
pub use thresholds::{
    Percentile, Thresholds, parse_latency_increase, parse_per_million, parse_percent, parse_percentiles,
    parse_throughput_drop,
};

/// The report.json `schema_version` this module reads (docs/report.schema.json).
pub const SCHEMA_VERSION: u64 = 3;

/// Which of the two runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The earlier run, the baseline.
    Old,
    /// The later run, the one judged.
    New,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Old => "OLD",
            Self::New => "NEW",
        })
    }
}

/// Why two documents cannot be compared.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CompareError {
    /// Not a loadgen run report at all.
    #[error(
        "{side} is not a loadgen run report: {why} (give the report.json a `loadgen run` wrote, or its --out directory)"
    )]
    NotAReport {
        /// Which document.
        side: Side,
        /// What is missing or wrong.
        why: String,
    },
    /// A report of another schema version, whose fields may mean other things.
    #[error(
        "{side} is a report of schema_version {found}; this loadgen reads version {SCHEMA_VERSION} (compare reports \
         written by the same major version of loadgen, or run the older one again)"
    )]
    Schema {
        /// Which document.
        side: Side,
        /// Its `schema_version`.
        found: u64,
    },
    /// A histogram that is not one.
    #[error("{side}'s histograms.{metric} is damaged: {source} (write the report again with `loadgen run`)")]
    Histogram {
        /// Which document.
        side: Side,
        /// The histogram's name.
        metric: String,
        /// What is wrong with it.
        source: BucketsError,
    },
}

impl CompareError {
    /// The document the error is about.
    pub fn side(&self) -> Side {
        match self {
            Self::NotAReport { side, .. } | Self::Schema { side, .. } | Self::Histogram { side, .. } => *side,
        }
    }
}

/// The part of a comparison a row belongs to, in the order of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    /// `verdict`.
    Verdict,
    /// `checks[]` whose outcome changed.
    Checks,
    /// `latency_us.*` percentiles.
    Latency,
    /// Messages and connections per run.
    Throughput,
    /// Error counts and rates.
    Errors,
    /// `generator.*` lags: the generator's health, never a regression of the target.
    Generator,
}

impl Section {
    /// The heading of the section.
    pub fn title(self) -> &'static str {
        match self {
            Self::Verdict => "verdict",
            Self::Checks => "checks that changed (or are in one run only)",
            Self::Latency => "latency",
            Self::Throughput => "throughput",
            Self::Errors => "errors (count, per 1M messages)",
            Self::Generator => "generator health (not judged)",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Self::Verdict => "verdict",
            Self::Checks => "checks",
            Self::Latency => "latency",
            Self::Throughput => "throughput",
            Self::Errors => "errors",
            Self::Generator => "generator",
        }
    }
}

/// One side's value of a row.
#[derive(Clone, Debug, PartialEq)]
pub enum Figure {
    /// A latency, µs.
    Micros(u64),
    /// A rate, per second.
    PerSecond(f64),
    /// A count.
    Count(u64),
    /// A word (`pass`, `held`).
    Word(String),
}

impl Figure {
    /// The figure as a number (`None` for a word).
    pub fn number(&self) -> Option<f64> {
        match self {
            Self::Micros(v) | Self::Count(v) => Some(*v as f64),
            Self::PerSecond(v) => Some(*v),
            Self::Word(_) => None,
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Self::Micros(v) | Self::Count(v) => json!(v),
            Self::PerSecond(v) => json!(v),
            Self::Word(w) => json!(w),
        }
    }

    fn unit(&self) -> Option<&'static str> {
        match self {
            Self::Micros(_) => Some("us"),
            Self::PerSecond(_) => Some("per_s"),
            Self::Count(_) => Some("count"),
            Self::Word(_) => None,
        }
    }
}

/// How a row came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// NEW is worse beyond the threshold (and, for latency, beyond noise): fails.
    Regressed,
    /// NEW is better beyond the threshold (and noise).
    Improved,
    /// A difference within the threshold or the noise.
    WithinNoise,
    /// The same.
    Same,
    /// Worse beyond noise, in a row that is not judged (a percentile not in
    /// `--percentiles`, the generator's health).
    Worse,
    /// Better beyond noise, in a row that is not judged.
    Better,
    /// Different, neither better nor worse (fail ↔ invalid).
    Changed,
    /// Only OLD has it.
    OnlyOld,
    /// Only NEW has it.
    OnlyNew,
}

impl Status {
    /// The word shown in the status column.
    pub fn label(self, section: Section) -> &'static str {
        match self {
            Self::Regressed => "REGRESSED",
            Self::Improved => "improved",
            Self::WithinNoise if matches!(section, Section::Latency | Section::Generator) => "within noise",
            Self::WithinNoise => "within threshold",
            Self::Same => "same",
            Self::Worse => "worse",
            Self::Better => "better",
            Self::Changed => "changed",
            Self::OnlyOld => "only in OLD",
            Self::OnlyNew => "only in NEW",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Self::Regressed => "regressed",
            Self::Improved => "improved",
            Self::WithinNoise => "within_noise",
            Self::Same => "same",
            Self::Worse => "worse",
            Self::Better => "better",
            Self::Changed => "changed",
            Self::OnlyOld => "only_old",
            Self::OnlyNew => "only_new",
        }
    }
}

/// One compared figure.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Where it belongs.
    pub section: Section,
    /// What it is: `message_rtt p99`, `received/s`, `errors.connect_refused`.
    pub metric: String,
    /// OLD's value; `None` when OLD does not have it.
    pub old: Option<Figure>,
    /// NEW's value; `None` when NEW does not have it.
    pub new: Option<Figure>,
    /// (NEW − OLD) / OLD in percent; `None` when OLD is 0 or either is missing.
    pub change_pct: Option<f64>,
    /// OLD's 95% confidence interval (latency percentiles with histograms).
    pub old_ci: Option<Interval>,
    /// NEW's 95% confidence interval.
    pub new_ci: Option<Interval>,
    /// OLD's count per million messages (errors; `None` without messages).
    pub old_per_million: Option<f64>,
    /// NEW's count per million messages.
    pub new_per_million: Option<f64>,
    /// How it came out.
    pub status: Status,
    /// Whether this row can regress (a judged percentile, throughput, errors, outcomes).
    pub judged: bool,
    /// A latency judged on its value alone: a run had no histogram of it, or it is the max.
    pub unverified: bool,
    /// NEW's generator was saturated: its latencies partly measure loadgen.
    pub untrusted: bool,
    /// Why it came out so, in one line.
    pub why: String,
}

impl Row {
    fn new(section: Section, metric: impl Into<String>, old: Option<Figure>, new: Option<Figure>) -> Self {
        let change_pct = match (old.as_ref().and_then(Figure::number), new.as_ref().and_then(Figure::number)) {
            (Some(o), Some(n)) if o > 0.0 => Some((n - o) / o * 100.0),
            _ => None,
        };
        Self {
            section,
            metric: metric.into(),
            old,
            new,
            change_pct,
            old_ci: None,
            new_ci: None,
            old_per_million: None,
            new_per_million: None,
            status: Status::Same,
            judged: true,
            unverified: false,
            untrusted: false,
            why: String::new(),
        }
    }

    fn judged_as(mut self, status: Status, why: impl Into<String>) -> Self {
        self.status = status;
        self.why = why.into();
        self
    }

    /// The status with its qualifiers: `REGRESSED (unverified)`.
    pub fn status_text(&self) -> String {
        let mut flags = Vec::new();
        if self.unverified && !matches!(self.status, Status::Same | Status::OnlyOld | Status::OnlyNew) {
            flags.push("unverified");
        }
        if self.untrusted {
            flags.push("NEW saturated");
        }
        let label = self.status.label(self.section);
        if flags.is_empty() { label.to_string() } else { format!("{label} ({})", flags.join(", ")) }
    }
}

/// What one run is, for the headings: where it came from and when it ran.
#[derive(Clone, Debug, PartialEq)]
pub struct RunInfo {
    /// What the caller called it (a path), else `OLD`/`NEW`.
    pub label: String,
    /// `loadgen_version`.
    pub loadgen_version: Option<String>,
    /// `started_unix_s`.
    pub started_unix_s: Option<u64>,
    /// `duration_s`.
    pub duration_s: Option<f64>,
    /// `verdict`.
    pub verdict: Option<String>,
    /// `scenario.name`.
    pub scenario: Option<String>,
}

/// The comparison of two runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// The baseline.
    pub old: RunInfo,
    /// The judged run.
    pub new: RunInfo,
    /// The thresholds it was judged by.
    pub thresholds: Thresholds,
    /// Every compared figure, by section.
    pub rows: Vec<Row>,
    /// What the reader must know to trust the rows: missing histograms, saturation,
    /// different configurations or lengths, interruptions.
    pub notes: Vec<String>,
}

/// Compares report documents `old` and `new` (parsed report.json).
pub fn compare(old: &Value, new: &Value, thresholds: &Thresholds) -> Result<Comparison, CompareError> {
    check_report(old, Side::Old)?;
    check_report(new, Side::New)?;
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    outcome::rows(old, new, &mut rows, &mut notes);
    latency::rows(old, new, thresholds, &mut rows, &mut notes)?;
    counts::throughput(old, new, thresholds, &mut rows, &mut notes);
    counts::errors(old, new, thresholds, &mut rows);
    rows.sort_by_key(|r| r.section);
    Ok(Comparison {
        old: run_info(old, Side::Old),
        new: run_info(new, Side::New),
        thresholds: thresholds.clone(),
        rows,
        notes,
    })
}

fn check_report(doc: &Value, side: Side) -> Result<(), CompareError> {
    let not = |why: &str| Err(CompareError::NotAReport { side, why: why.to_string() });
    if !doc.is_object() {
        return not("not a JSON object");
    }
    let Some(version) = doc["schema_version"].as_u64() else { return not("no schema_version") };
    if version == 1 && doc.get("target").is_some() {
        return not("a `loadgen check` report (schema_version 1), not a run's");
    }
    if version != SCHEMA_VERSION {
        return Err(CompareError::Schema { side, found: version });
    }
    if !doc["verdict"].is_string() || !doc["generator"].is_object() {
        return not("no verdict or generator section");
    }
    Ok(())
}

fn run_info(doc: &Value, side: Side) -> RunInfo {
    let text = |v: &Value| v.as_str().map(str::to_string);
    RunInfo {
        label: side.to_string(),
        loadgen_version: text(&doc["loadgen_version"]),
        started_unix_s: doc["started_unix_s"].as_u64(),
        duration_s: doc["duration_s"].as_f64(),
        verdict: text(&doc["verdict"]),
        scenario: text(&doc["scenario"]["name"]),
    }
}

impl Comparison {
    /// Names the runs (their paths, say) in every rendering instead of OLD and NEW.
    pub fn with_labels(mut self, old: impl Into<String>, new: impl Into<String>) -> Self {
        self.old.label = old.into();
        self.new.label = new.into();
        self
    }

    /// Whether NEW regressed: any row regressed.
    pub fn regressed(&self) -> bool {
        self.rows.iter().any(|r| r.status == Status::Regressed)
    }

    /// The regressed rows, in table order.
    pub fn regressions(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.status == Status::Regressed)
    }

    /// The terminal table: regressions first (one line each, why), then every section.
    pub fn text(&self) -> String {
        text::render(self)
    }

    /// One self-contained HTML page (inline CSS; no script, no network).
    pub fn html(&self) -> String {
        html::render(self)
    }

    /// The machine form: `regressed`, `regressions`, `thresholds`, `old`, `new`,
    /// `rows[]` (absent values left out, never zero), `notes`.
    pub fn to_json(&self) -> Value {
        let info = |r: &RunInfo| {
            let mut m = Map::new();
            m.insert("label".into(), json!(r.label));
            put(&mut m, "loadgen_version", r.loadgen_version.as_ref().map(|v| json!(v)));
            put(&mut m, "started_unix_s", r.started_unix_s.map(|v| json!(v)));
            put(&mut m, "duration_s", r.duration_s.map(|v| json!(v)));
            put(&mut m, "verdict", r.verdict.as_ref().map(|v| json!(v)));
            put(&mut m, "scenario", r.scenario.as_ref().map(|v| json!(v)));
            Value::Object(m)
        };
        let t = &self.thresholds;
        json!({
            "regressed": self.regressed(),
            "regressions": self.regressions().count(),
            "thresholds": {
                "max_latency_increase_pct": t.max_latency_increase_pct,
                "percentiles": t.percentiles.iter().map(|p| p.key()).collect::<Vec<_>>(),
                "max_throughput_drop_pct": t.max_throughput_drop_pct,
                "max_error_increase_per_million": t.max_error_increase_per_million,
            },
            "old": info(&self.old),
            "new": info(&self.new),
            "rows": self.rows.iter().map(row_json).collect::<Vec<_>>(),
            "notes": self.notes,
        })
    }
}

fn put(m: &mut Map<String, Value>, key: &str, v: Option<Value>) {
    if let Some(v) = v {
        m.insert(key.into(), v);
    }
}

fn row_json(r: &Row) -> Value {
    let ci = |i: &Option<Interval>| i.map(|i| json!({"low": i.low, "high": i.high}));
    let mut m = Map::new();
    m.insert("section".into(), json!(r.section.key()));
    m.insert("metric".into(), json!(r.metric));
    put(&mut m, "unit", r.old.as_ref().or(r.new.as_ref()).and_then(Figure::unit).map(|u| json!(u)));
    put(&mut m, "old", r.old.as_ref().map(Figure::to_json));
    put(&mut m, "new", r.new.as_ref().map(Figure::to_json));
    put(&mut m, "change_pct", r.change_pct.map(|v| json!(v)));
    put(&mut m, "old_ci", ci(&r.old_ci));
    put(&mut m, "new_ci", ci(&r.new_ci));
    put(&mut m, "old_per_million", r.old_per_million.map(|v| json!(v)));
    put(&mut m, "new_per_million", r.new_per_million.map(|v| json!(v)));
    m.insert("status".into(), json!(r.status.key()));
    m.insert("judged".into(), json!(r.judged));
    m.insert("unverified".into(), json!(r.unverified));
    m.insert("untrusted".into(), json!(r.untrusted));
    m.insert("why".into(), json!(r.why));
    Value::Object(m)
}
