//! Measurement: what each worker records and how the records become per-second time
//! series and run totals.
//!
//! - [`Recorder`] (one per worker thread, `&mut` only, no locks or atomics): latency
//!   histograms per [`Metric`] for the current one-second interval, counters, and error
//!   counts by kind in a fixed [`ErrorTable`] that never allocates.
//! - Once a second a worker's [`Reporter`] swaps the interval out as a [`Snapshot`] and
//!   sends it to the [`Collector`], which merges the workers' snapshots per second into
//!   [`SecondStats`] and into whole-run histograms ([`RunStats`]), then sends the
//!   snapshot's buffers back so steady state allocates nothing.
//! - Generator self-monitoring: schedule lag is a metric like the others; completion
//!   queue overflows and buffer-ring exhaustion are counters; [`SaturationPolicy`]
//!   turns them into a per-second `saturated` verdict with reasons; [`procfs`] reads CPU
//!   time, softirq share and peak RSS.
//!
//! All values are microseconds. Percentiles always come from merged histograms, never
//! from averaging percentiles. This module does not decide what to measure or when
//! (the worker loop does), and does not format or write reports ([`crate::report`]).

mod codes;
mod collector;
mod errors;
pub mod procfs;
mod recorder;
pub mod seq;
mod window;

#[cfg(test)]
mod tests;

use hdrhistogram::Histogram;
use serde::Serialize;

pub use codes::{CODE_KINDS, CodeCount, CodeTable};
pub use collector::{
    Collector, CollectorGone, Reporter, RunStats, SaturationPolicy, SecondConnections, SecondMessages, SecondStats,
    channel,
};
pub use errors::{ERROR_KINDS, ErrorTable, OTHER_ERROR};
pub use recorder::{Counters, Recorder, Snapshot};
pub use window::{Window, WindowStats};

/// Largest value a histogram tracks: one hour in µs. Larger values saturate here.
pub const HISTOGRAM_MAX_US: u64 = 3_600_000_000;

/// A latency histogram of microseconds: 1 µs to one hour, 3 significant digits. It
/// never auto-resizes; [`Recorder::record`] saturates values above the top (an
/// auto-resizing histogram fed through `saturating_record` clamps to its small initial
/// range instead).
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, 3).expect("static bounds are valid")
}

/// What a latency histogram measures. Every latency is taken from the *intended* time
/// of the action, so a late generator or a stalled target shows up in the numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// Intended connection start → TCP connected.
    Connect,
    /// Intended connection start → 101 response validated.
    Handshake,
    /// Intended connection start → connection ready for traffic (scenario's first
    /// message exchanged, or equal to the handshake when there is none).
    Ready,
    /// Intended send time → matching echo received.
    MessageRtt,
    /// Ping send time (in the ping payload) → matching pong received.
    PingRtt,
    /// Timestamp in the probe payload → message received (server push / fan-out).
    Delivery,
    /// Actual submission − intended time of connects and sends (generator health).
    ScheduleLag,
    /// Intended connection start → TLS handshake complete (wss:// only).
    TlsHandshake,
    /// Actual submission − intended time of connection starts (the ramp's own
    /// generator-health metric, judged by its own saturation rule).
    ConnectLag,
    /// A dropped connection's time to recover: drop → ready again (reconnects).
    Recover,
    /// Attack handshakes (stalled or slow upgrades): intended connection start → the
    /// server closed the connection (FIN or reset) before answering the upgrade.
    HandshakeClosed,
    /// Like [`Metric::Delivery`], for the messages marked critical alone (they are in
    /// `Delivery` too): critical latency beside that of all traffic.
    DeliveryCritical,
}

impl Metric {
    /// Number of metrics.
    pub const COUNT: usize = 12;

    /// Every metric, in declaration order (the index of a metric is `metric as usize`).
    pub const ALL: [Metric; Self::COUNT] = [
        Metric::Connect,
        Metric::Handshake,
        Metric::Ready,
        Metric::MessageRtt,
        Metric::PingRtt,
        Metric::Delivery,
        Metric::ScheduleLag,
        Metric::TlsHandshake,
        Metric::ConnectLag,
        Metric::Recover,
        Metric::HandshakeClosed,
        Metric::DeliveryCritical,
    ];

    /// Stable snake_case name, used as the report key.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Connect => "connect",
            Metric::Handshake => "handshake",
            Metric::Ready => "ready",
            Metric::MessageRtt => "message_rtt",
            Metric::PingRtt => "ping_rtt",
            Metric::Delivery => "delivery",
            Metric::ScheduleLag => "schedule_lag",
            Metric::TlsHandshake => "tls_handshake",
            Metric::ConnectLag => "connect_lag",
            Metric::Recover => "recover",
            Metric::HandshakeClosed => "handshake_closed",
            Metric::DeliveryCritical => "delivery_critical",
        }
    }
}

/// One histogram per metric.
#[derive(Clone, Debug)]
pub struct HistogramSet {
    hist: [Histogram<u64>; Metric::COUNT],
}

impl Default for HistogramSet {
    fn default() -> Self {
        Self { hist: std::array::from_fn(|_| histogram()) }
    }
}

impl HistogramSet {
    /// The histogram of `metric`.
    pub fn get(&self, metric: Metric) -> &Histogram<u64> {
        &self.hist[metric as usize]
    }

    /// Records `value_us`, saturating at one hour.
    #[inline]
    pub fn record(&mut self, metric: Metric, value_us: u64) {
        self.hist[metric as usize].saturating_record(value_us);
    }

    /// Adds every histogram of `other` (same bounds, so this cannot fail).
    pub fn add(&mut self, other: &HistogramSet) {
        for (a, b) in self.hist.iter_mut().zip(&other.hist) {
            a.add(b).expect("histograms share bounds");
        }
    }

    /// Empties every histogram, keeping its buffer. Empty histograms are skipped, so
    /// buffers of metrics a run never uses are not touched (and not made resident).
    pub fn reset(&mut self) {
        for h in &mut self.hist {
            if !h.is_empty() {
                h.reset();
            }
        }
    }

    /// Summaries of the latency metrics (schedule lag excluded).
    pub fn latencies(&self) -> Latencies {
        let p = |m| Percentiles::from_nonempty(self.get(m));
        Latencies {
            connect: p(Metric::Connect),
            handshake: p(Metric::Handshake),
            ready: p(Metric::Ready),
            message_rtt: p(Metric::MessageRtt),
            ping_rtt: p(Metric::PingRtt),
            delivery: p(Metric::Delivery),
            tls_handshake: p(Metric::TlsHandshake),
            recover: p(Metric::Recover),
            handshake_closed: p(Metric::HandshakeClosed),
            delivery_critical: p(Metric::DeliveryCritical),
            message_rtt_corrected: None,
        }
    }
}

/// A latency distribution in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest sample.
    pub max: u64,
}

impl Percentiles {
    /// Summarises a histogram (values are the highest equivalent value of the bucket).
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        Self {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }

    /// Summarises a histogram; `None` when it holds no sample (absent, not zero).
    pub fn from_nonempty(h: &Histogram<u64>) -> Option<Self> {
        (!h.is_empty()).then(|| Self::from_histogram(h))
    }
}

/// The latency metrics a run or a second produced; metrics without samples are absent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Latencies {
    /// [`Metric::Connect`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect: Option<Percentiles>,
    /// [`Metric::Handshake`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshake: Option<Percentiles>,
    /// [`Metric::Ready`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<Percentiles>,
    /// [`Metric::MessageRtt`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_rtt: Option<Percentiles>,
    /// [`Metric::PingRtt`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ping_rtt: Option<Percentiles>,
    /// [`Metric::Delivery`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Percentiles>,
    /// [`Metric::TlsHandshake`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_handshake: Option<Percentiles>,
    /// [`Metric::Recover`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recover: Option<Percentiles>,
    /// [`Metric::HandshakeClosed`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshake_closed: Option<Percentiles>,
    /// [`Metric::DeliveryCritical`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_critical: Option<Percentiles>,
    /// Closed loop only: [`Metric::MessageRtt`] corrected for coordinated omission
    /// (HdrHistogram's correction with the expected interval between one connection's
    /// sends: think time + the median round trip), so a stall that held every
    /// connection's one message back weighs as the sends it prevented.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_rtt_corrected: Option<Percentiles>,
}

impl Latencies {
    /// No metric has samples.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}
