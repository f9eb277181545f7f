//! What one worker measured: latency histograms (µs, from intended times), counters
//! and errors by kind. Owned by the worker thread; merged after the run.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

/// A histogram of microseconds, 1 µs to one hour, 3 significant digits, saturating.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds are valid")
}

/// One worker's measurements.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Intended connection start → TCP connected.
    pub connect: Histogram<u64>,
    /// Intended connection start → 101 validated.
    pub handshake: Histogram<u64>,
    /// Intended connection start → on-open steps done (only with on-open steps).
    pub ready: Histogram<u64>,
    /// Intended send → echo received.
    pub message_rtt: Histogram<u64>,
    /// Intended ping → pong received.
    pub ping_rtt: Histogram<u64>,
    /// Actual submission − intended time, for connects and messages.
    pub schedule_lag: Histogram<u64>,
    /// Connections whose start was attempted.
    pub attempted: u64,
    /// Connections upgraded.
    pub established: u64,
    /// Connections that failed before or during the handshake.
    pub failed: u64,
    /// Connections open at the peak.
    pub peak_open: u64,
    /// Open now.
    pub open: u64,
    /// Messages sent.
    pub sent: u64,
    /// Messages received.
    pub received: u64,
    /// Receives that found the provided-buffer ring empty.
    pub buffer_ring_empty: u64,
    /// Errors by kind.
    pub errors: BTreeMap<&'static str, u64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            connect: histogram(),
            handshake: histogram(),
            ready: histogram(),
            message_rtt: histogram(),
            ping_rtt: histogram(),
            schedule_lag: histogram(),
            attempted: 0,
            established: 0,
            failed: 0,
            peak_open: 0,
            open: 0,
            sent: 0,
            received: 0,
            buffer_ring_empty: 0,
            errors: BTreeMap::new(),
        }
    }
}

impl Metrics {
    /// Counts an error of `kind` (allocates only the first time a kind is seen).
    pub fn error(&mut self, kind: &'static str) {
        *self.errors.entry(kind).or_insert(0) += 1;
    }

    /// Records `ns` as microseconds.
    pub fn record(h: &mut Histogram<u64>, ns: u64) {
        h.saturating_record(ns / 1_000);
    }

    /// Adds another worker's measurements.
    pub fn merge(&mut self, other: &Metrics) {
        for (a, b) in [
            (&mut self.connect, &other.connect),
            (&mut self.handshake, &other.handshake),
            (&mut self.ready, &other.ready),
            (&mut self.message_rtt, &other.message_rtt),
            (&mut self.ping_rtt, &other.ping_rtt),
            (&mut self.schedule_lag, &other.schedule_lag),
        ] {
            a.add(b).expect("same bounds");
        }
        self.attempted += other.attempted;
        self.established += other.established;
        self.failed += other.failed;
        self.peak_open += other.peak_open;
        self.open += other.open;
        self.sent += other.sent;
        self.received += other.received;
        self.buffer_ring_empty += other.buffer_ring_empty;
        for (k, v) in &other.errors {
            *self.errors.entry(k).or_insert(0) += v;
        }
    }
}
