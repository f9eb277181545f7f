//! `report.json` of a load run: the [`Report`] document built from the collector's
//! [`RunStats`] and the process's resource use, its JSON Schema ([`REPORT_SCHEMA`])
//! and a table of every field and its meaning ([`REPORT_FIELDS`], the source of
//! docs/metrics.md).
//!
//! Sections a run did not produce are absent, not zero: a latency metric without
//! samples, `messages` when nothing was sent or received, `errors` when there were
//! none, and so on. [`Report::write`] replaces `report.json` atomically (temp file +
//! rename) and works as well for an interrupted run. This module measures nothing
//! itself apart from reading /proc through [`ProcessUsage`], and formats nothing for
//! terminals.

mod schema;
pub mod verdict;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use schema::{REPORT_FIELDS, REPORT_SCHEMA};
pub use verdict::{Check, Outcome, Verdict, default_checks};

use crate::stats::{Latencies, Metric, Percentiles, RunStats, SecondStats, procfs};

/// Version of the report format; bumped when a field changes meaning or disappears.
pub const REPORT_SCHEMA_VERSION: u32 = 3;

/// Name of the report file.
pub const REPORT_FILE: &str = "report.json";

/// The whole report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// [`REPORT_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Version of loadgen that wrote the report.
    pub loadgen_version: &'static str,
    /// Wall-clock start of the run, Unix seconds.
    pub started_unix_s: u64,
    /// Length of the run, seconds.
    pub duration_s: f64,
    /// The run was stopped early; every section covers the part that ran.
    pub interrupted: bool,
    /// Connection counts (absent when nothing was attempted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<ConnectionsReport>,
    /// Latency summaries (metrics without samples absent; the section too when empty).
    #[serde(skip_serializing_if = "Latencies::is_empty")]
    pub latency_us: Latencies,
    /// Message counts (absent when nothing was sent or received).
    /// TLS handshakes and session memory (wss:// runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsReport>,
    /// permessage-deflate contexts (runs that negotiated compression).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deflate: Option<DeflateReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<MessagesReport>,
    /// The generator's own health.
    pub generator: GeneratorReport,
    /// Errors by kind (absent when none).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<&'static str, u64>,
    /// Pass, fail or invalid, with the checks (the default checks unless the run
    /// defines its own): the report's `verdict`, `checks` and `invalid_because`.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// The run's named phases, each with its own counts and latencies (absent: none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<PhaseReport>,
    /// One entry per second (absent when no second completed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timeseries: Vec<SecondStats>,
    /// Whole-run histograms of the metrics that had samples, bucket by bucket (absent
    /// when none had any): what percentile spectra and comparisons between runs are
    /// computed from.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub histograms: BTreeMap<&'static str, HistogramReport>,
}

/// `histograms.<metric>`: a whole-run histogram, every non-empty bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HistogramReport {
    /// Samples.
    pub count: u64,
    /// `[highest value of the bucket in µs, samples in it]`, values increasing.
    pub buckets: Vec<(u64, u64)>,
}

impl HistogramReport {
    /// Every non-empty bucket of `h` (`None` when it has no sample).
    pub fn of(h: &hdrhistogram::Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let buckets =
            h.iter_recorded().map(|v| (h.highest_equivalent(v.value_iterated_to()), v.count_at_value())).collect();
        Some(Self { count: h.len(), buckets })
    }
}

/// `connections`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConnectionsReport {
    /// Connection starts submitted.
    pub attempted: u64,
    /// Connections that became open.
    pub established: u64,
    /// Attempts that failed before becoming open.
    pub failed: u64,
    /// Open connections ended by the target or the network before loadgen closed them.
    pub dropped: u64,
    /// `dropped` by cause (absent when none).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub dropped_by_cause: BTreeMap<&'static str, u64>,
    /// Close codes of the connections the server dropped with a close frame (1005: no
    /// code given; absent when none).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub close_codes: BTreeMap<String, u64>,
    /// Upgrades refused, by HTTP status (absent when none).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub refused: BTreeMap<String, RefusalReport>,
    /// Connections open when the hold ended (before the ramp-down).
    pub open_at_end: u64,
    /// Reconnect attempts of dropped connections (`--reconnect`; also in `attempted`).
    #[serde(skip_serializing_if = "is_zero")]
    pub reconnect_attempts: u64,
    /// Dropped connections that were ready again.
    #[serde(skip_serializing_if = "is_zero")]
    pub reconnected: u64,
    /// Dropped connections that gave up at the reconnect limit.
    #[serde(skip_serializing_if = "is_zero")]
    pub reconnect_gave_up: u64,
    /// Reconnects that landed on the server instance the connection had before, as
    /// the server named it in a text message (scenario `connection.server`: a JSON
    /// pointer, `/worker` of the reference target's `lgready`): sticky sessions kept.
    /// Counted once per attempt that learned its instance after an earlier attempt
    /// did, so with every reconnect learning it, `reconnected_same_server +
    /// reconnected_other_server` is `reconnected`.
    #[serde(skip_serializing_if = "is_zero")]
    pub reconnected_same_server: u64,
    /// Reconnects that landed on another server instance than before (see
    /// `reconnected_same_server`): stickiness lost.
    #[serde(skip_serializing_if = "is_zero")]
    pub reconnected_other_server: u64,
    /// Pings unanswered past their pong timeout (each a drop, cause `pong_timeout`).
    #[serde(skip_serializing_if = "is_zero")]
    pub pong_timeouts: u64,
    /// The most reconnect attempts started in one second (the whole run only).
    #[serde(skip_serializing_if = "is_zero")]
    pub reconnect_peak_per_s: u64,
    /// Upgrades whose 101 selected an offered subprotocol.
    #[serde(skip_serializing_if = "is_zero")]
    pub subprotocol_negotiated: u64,
    /// Most connections open at once.
    pub peak_open: u64,
}

/// `connections` of `stats` (absent when nothing was attempted).
fn connections_report(stats: &RunStats) -> Option<ConnectionsReport> {
    let t = &stats.totals;
    (t.attempted + t.established + t.failed > 0).then(|| zero_connections(stats))
}

/// `connections` of `stats`, present even when every count is zero.
fn zero_connections(stats: &RunStats) -> ConnectionsReport {
    let t = &stats.totals;
    ConnectionsReport {
        attempted: t.attempted,
        established: t.established,
        failed: t.failed,
        dropped: t.dropped,
        dropped_by_cause: stats.drops.clone(),
        close_codes: stats.close_codes.iter().map(|(code, n)| (code.to_string(), *n)).collect(),
        refused: stats
            .refusals
            .iter()
            .map(|(status, c)| {
                let with = c.retry_after_count > 0;
                let refusal = RefusalReport {
                    count: c.count,
                    retry_after_count: c.retry_after_count,
                    retry_after_min_s: with.then_some(c.retry_after_min_s),
                    retry_after_max_s: with.then_some(c.retry_after_max_s),
                };
                (status.to_string(), refusal)
            })
            .collect(),
        open_at_end: t.open_at_end,
        reconnect_attempts: t.reconnect_attempts,
        reconnected: t.reconnected,
        reconnect_gave_up: t.reconnect_gave_up,
        reconnected_same_server: t.reconnected_same_server,
        reconnected_other_server: t.reconnected_other_server,
        pong_timeouts: t.pong_timeouts,
        subprotocol_negotiated: t.subprotocol_negotiated,
        reconnect_peak_per_s: stats.reconnect_peak_per_s(),
        peak_open: stats.peak_open,
    }
}

/// `messages` of `stats` (absent when nothing was sent or received).
fn messages_report(stats: &RunStats) -> Option<MessagesReport> {
    let t = &stats.totals;
    (t.messages_sent + t.messages_received + t.not_sent > 0).then(|| zero_messages(stats))
}

/// `messages` of `stats`, present even when every count is zero.
fn zero_messages(stats: &RunStats) -> MessagesReport {
    let t = &stats.totals;
    MessagesReport {
        sent: t.messages_sent,
        received: t.messages_received,
        answered: t.answered,
        late: t.late,
        unanswered: t.unanswered,
        not_sent: t.not_sent,
        lost: t.lost,
        duplicated: t.duplicated,
        reordered: t.reordered,
        pushes_received: t.pushes_received,
        reply_timeouts: t.reply_timeouts,
    }
}

/// One of `phases`: a named window of the run with the whole run's counts and
/// latencies over the seconds it covers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PhaseReport {
    /// The phase's name.
    pub name: String,
    /// Its first second of the run.
    pub from_s: u64,
    /// One past its last second (absent: it lasted to the end of the run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_s: Option<u64>,
    /// Seconds of it that were collected.
    pub seconds: u64,
    /// As the run's `connections`, within the phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<ConnectionsReport>,
    /// As the run's `latency_us`, within the phase.
    #[serde(skip_serializing_if = "Latencies::is_empty")]
    pub latency_us: Latencies,
    /// As the run's `messages`, within the phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<MessagesReport>,
    /// As the run's `errors`, within the phase.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<&'static str, u64>,
}

impl PhaseReport {
    fn new(w: &crate::stats::WindowStats) -> Self {
        let end = w.window.end_second();
        // A phase's seconds were collected, so its counts are measured even when they
        // are all zero (a pause). `open_at_end` is what was open when its last second
        // ended.
        let mut connections = connections_report(&w.stats).unwrap_or_else(|| zero_connections(&w.stats));
        connections.open_at_end = w.stats.open_at_end;
        let messages = messages_report(&w.stats).unwrap_or_else(|| zero_messages(&w.stats));
        Self {
            name: w.window.name.clone(),
            from_s: w.window.first_second(),
            to_s: (end != u64::MAX).then_some(end),
            seconds: w.seconds,
            connections: Some(connections),
            latency_us: w.stats.latencies(),
            messages: Some(messages),
            errors: w.stats.errors.clone(),
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One HTTP status of `connections.refused`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RefusalReport {
    /// Upgrades refused with this status.
    pub count: u64,
    /// How many of them carried `Retry-After` (delta-seconds).
    pub retry_after_count: u64,
    /// Smallest and largest `Retry-After` seen, seconds (absent when none carried one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_min_s: Option<u64>,
    /// See `retry_after_min_s`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_max_s: Option<u64>,
}

/// `messages`.
/// `tls` of the report (fields in [`REPORT_FIELDS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TlsReport {
    pub handshakes_full: u64,
    pub handshakes_resumed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions_held: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_per_session: Option<u64>,
}

/// `deflate` of the report (fields in [`REPORT_FIELDS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DeflateReport {
    pub contexts: u64,
    pub bytes_estimate: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_per_connection: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct MessagesReport {
    /// Data messages sent.
    pub sent: u64,
    /// Data messages received.
    pub received: u64,
    /// Echoes (HTTP: responses) back within the reply timeout.
    pub answered: u64,
    /// Echoes back after the reply timeout.
    pub late: u64,
    /// Probes sent that got no echo before their connection ended.
    pub unanswered: u64,
    /// Messages that fell due but could not be sent (no open connection, or polls
    /// queued on a connection that ended).
    pub not_sent: u64,
    /// Sequence numbers never received below the highest received, per connection
    /// (echoes) and per sender and channel (pushes).
    pub lost: u64,
    /// Messages received twice.
    pub duplicated: u64,
    /// Messages received after a later one of the same stream.
    pub reordered: u64,
    /// Server-pushed probe messages received (`latency_us.delivery` samples).
    pub pushes_received: u64,
    /// Closed loop: replies that did not come within the reply timeout (the connection
    /// then sent its next message).
    pub reply_timeouts: u64,
}

/// `generator`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct GeneratorReport {
    /// CPU seconds (user + system) of the process during the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_s: Option<f64>,
    /// Peak resident set size of the process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
    /// (peak RSS − RSS before the run) / peak open connections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_per_connection: Option<u64>,
    /// Actual − intended submission time of sends, pings and paced messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_lag_us: Option<Percentiles>,
    /// Actual − intended start of connections (the ramp).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_lag_us: Option<Percentiles>,
    /// Some second was saturated.
    pub saturated: bool,
    /// The seconds judged saturated (absent when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub saturated_seconds: Vec<u64>,
    /// Why, one line per cause (absent when not saturated).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub saturation_reasons: Vec<String>,
}

/// Resource use of the process before the run, to subtract at the end.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct UsageBaseline {
    /// CPU seconds used so far.
    pub cpu_s: Option<f64>,
    /// Resident set size now.
    pub rss_bytes: Option<u64>,
}

impl UsageBaseline {
    /// Reads /proc now (unreadable values are `None`).
    pub fn now() -> Self {
        Self { cpu_s: procfs::process_cpu_seconds().ok(), rss_bytes: procfs::rss_bytes().ok() }
    }
}

/// Resource use of the process over the run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessUsage {
    /// CPU seconds since the baseline.
    pub cpu_s: Option<f64>,
    /// Peak resident set size (VmHWM).
    pub peak_rss_bytes: Option<u64>,
    /// Resident set size at the baseline.
    pub baseline_rss_bytes: Option<u64>,
}

impl ProcessUsage {
    /// Reads /proc now and subtracts `baseline`.
    pub fn since(baseline: &UsageBaseline) -> Self {
        // Rounded to the microsecond: clock ticks are 10 ms anyway, and a rounded value
        // survives a trip through JSON text unchanged.
        let cpu_s = procfs::process_cpu_seconds()
            .ok()
            .map(|now| ((now - baseline.cpu_s.unwrap_or(0.0)).max(0.0) * 1e6).round() / 1e6);
        Self { cpu_s, peak_rss_bytes: procfs::peak_rss_bytes().ok(), baseline_rss_bytes: baseline.rss_bytes }
    }
}

/// What the report needs besides the collector's statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RunInfo {
    /// Wall-clock start, Unix seconds.
    pub started_unix_s: u64,
    /// Length of the run, seconds.
    pub duration_s: f64,
    /// Stopped early.
    pub interrupted: bool,
    /// Resource use of the process.
    pub usage: ProcessUsage,
}

impl Report {
    /// Builds the report of a run (complete or partial).
    pub fn new(stats: &RunStats, info: &RunInfo) -> Self {
        let histograms = Metric::ALL
            .iter()
            .filter_map(|&m| HistogramReport::of(stats.histogram(m)).map(|h| (m.name(), h)))
            .collect();
        Self { timeseries: stats.seconds.clone(), histograms, ..Self::summary(stats, info) }
    }

    /// [`Report::new`] without the time series: what live checks read each second.
    pub fn summary(stats: &RunStats, info: &RunInfo) -> Self {
        let t = &stats.totals;
        let connections = connections_report(stats);
        let messages = messages_report(stats);
        let u = &info.usage;
        let bytes_per_connection = match (u.peak_rss_bytes, stats.peak_open) {
            (Some(peak), open) if open > 0 => Some(peak.saturating_sub(u.baseline_rss_bytes.unwrap_or(0)) / open),
            _ => None,
        };
        let saturation_reasons = stats.saturation_reasons();
        Self {
            schema_version: REPORT_SCHEMA_VERSION,
            loadgen_version: env!("CARGO_PKG_VERSION"),
            started_unix_s: info.started_unix_s,
            duration_s: info.duration_s,
            interrupted: info.interrupted,
            connections,
            latency_us: stats.latencies(),
            tls: (t.tls_full_handshakes + t.tls_resumed_handshakes > 0).then_some(TlsReport {
                handshakes_full: t.tls_full_handshakes,
                handshakes_resumed: t.tls_resumed_handshakes,
                sessions_held: None,
                bytes_per_session: None,
            }),
            deflate: None,
            messages,
            generator: GeneratorReport {
                cpu_s: u.cpu_s,
                peak_rss_bytes: u.peak_rss_bytes,
                bytes_per_connection,
                schedule_lag_us: Percentiles::from_nonempty(stats.histogram(Metric::ScheduleLag)),
                connect_lag_us: Percentiles::from_nonempty(stats.histogram(Metric::ConnectLag)),
                saturated: !saturation_reasons.is_empty(),
                saturated_seconds: stats.saturated_seconds(),
                saturation_reasons,
            },
            errors: stats.errors.clone(),
            verdict: Verdict::new(stats, default_checks(stats)),
            phases: stats.windows.iter().filter(|w| w.seconds > 0).map(PhaseReport::new).collect(),
            timeseries: Vec::new(),
            histograms: BTreeMap::new(),
        }
    }

    /// The report as a JSON value.
    /// Adds what the workers sampled of protocol memory when the hold ended.
    pub fn with_protocol_memory(mut self, m: &crate::run::MemorySample, connections_held: u64) -> Self {
        if let Some(tls) = self.tls.as_mut().filter(|_| m.tls_sessions > 0) {
            tls.sessions_held = Some(m.tls_sessions);
            tls.bytes_per_session = Some(m.tls_bytes / m.tls_sessions);
        }
        if m.deflate_contexts > 0 {
            self.deflate = Some(DeflateReport {
                contexts: m.deflate_contexts,
                bytes_estimate: m.deflate_bytes,
                bytes_per_connection: (connections_held > 0).then(|| m.deflate_bytes / connections_held),
            });
        }
        self
    }

    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("the report serializes")
    }

    /// Writes `dir/report.json` (creating `dir`), replacing an existing report
    /// atomically: the JSON goes to a temporary file in `dir`, is synced, then renamed
    /// over the old one, so readers see the old report or the new one, never a torn
    /// file. Returns the path.
    pub fn write(&self, dir: &Path) -> io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(REPORT_FILE);
        let tmp = dir.join(format!(".{REPORT_FILE}.{}.tmp", std::process::id()));
        let result = (|| {
            let mut json = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
            json.push(b'\n');
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&json)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result?;
        // Make the rename durable too (best effort: some filesystems refuse).
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(path)
    }
}
