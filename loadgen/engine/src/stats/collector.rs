//! From worker snapshots to per-second series and run totals.
//!
//! Transport: one `std::sync::mpsc::sync_channel` from all workers to the collector
//! (bounded at 64 snapshots per worker, so a collector a minute behind applies
//! back-pressure instead of growing memory; at one message per worker per second this
//! is far from any hot path), and one small bounded channel per worker back, on which
//! the collector returns emptied buffers. A full return channel drops the buffer, so
//! the collector never blocks on a worker. The collector empties (resets) buffers
//! before returning them, so that cost stays off the worker threads.
//!
//! Second `s` is complete when every worker has reported a second ≥ `s` or has
//! finished; complete seconds are emitted in order, gaps as empty seconds. A snapshot
//! for a second already emitted lands in the earliest open second; totals always
//! include it. This module does not read clocks: workers say which second a snapshot
//! belongs to.

use std::collections::{BTreeMap, VecDeque};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, sync_channel};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::window::{SecondTally, Window, WindowStats};
use super::{CodeCount, CodeTable, Counters, HistogramSet, Latencies, Metric, Percentiles, Recorder, Snapshot};

/// Snapshots a worker may have queued before its sends block.
const QUEUE_PER_WORKER: usize = 64;

enum Message {
    Snapshot(usize, Snapshot),
    Finished(usize),
}

/// The collector has stopped (its receiver was dropped); the snapshot is discarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the stats collector has stopped")]
pub struct CollectorGone;

/// A collector and one [`Reporter`] per worker (index `i` for worker `i`).
pub fn channel(workers: usize, policy: SaturationPolicy) -> (Collector, Vec<Reporter>) {
    let (tx, rx) = sync_channel(QUEUE_PER_WORKER * workers.max(1));
    let mut returns = Vec::with_capacity(workers);
    let reporters = (0..workers)
        .map(|worker| {
            let (back_tx, back) = sync_channel(2);
            returns.push(back_tx);
            Reporter { worker, tx: tx.clone(), back, finished: false }
        })
        .collect();
    let collector = Collector {
        rx,
        returns,
        reported: vec![None; workers],
        finished: vec![false; workers],
        carry_open: vec![0; workers],
        next_second: 0,
        pending: VecDeque::new(),
        pool: Vec::new(),
        run: RunStats { policy, ..RunStats::default() },
    };
    (collector, reporters)
}

/// A worker's end of the channel. Dropping it without [`Reporter::finish`] (a worker
/// that returned early or panicked) tells the collector the worker has finished, so
/// seconds never wait for it.
#[derive(Debug)]
pub struct Reporter {
    worker: usize,
    tx: SyncSender<Message>,
    back: Receiver<Snapshot>,
    finished: bool,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Message::Snapshot(w, s) => write!(f, "Snapshot(worker {w}, second {})", s.second),
            Message::Finished(w) => write!(f, "Finished({w})"),
        }
    }
}

impl Reporter {
    /// This reporter's worker index.
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// Recycles buffers the collector returned, then snapshots `recorder` as `second`
    /// and sends it.
    pub fn send(&mut self, recorder: &mut Recorder, second: u64) -> Result<(), CollectorGone> {
        while let Ok(s) = self.back.try_recv() {
            recorder.recycle(s);
        }
        let snapshot = recorder.snapshot(second);
        self.tx.send(Message::Snapshot(self.worker, snapshot)).map_err(|_| CollectorGone)
    }

    /// Sends the last snapshot (as `second`) and marks the worker finished.
    pub fn finish(mut self, recorder: &mut Recorder, second: u64) -> Result<(), CollectorGone> {
        let sent = self.send(recorder, second);
        self.finished = true;
        sent.and(self.tx.send(Message::Finished(self.worker)).map_err(|_| CollectorGone))
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.tx.send(Message::Finished(self.worker));
        }
    }
}

/// When a second counts as generator-saturated (rules documented in docs/metrics.md,
/// "Saturation verdict"):
/// - `schedule_lag`: the p99 of the lag of messages, pings and paced sends exceeds
///   `max_lag_p99_us` (or 10% of the per-connection send interval, if smaller);
/// - `connect_lag`: the p99 of the lag of connection starts (the ramp) exceeds
///   `max_connect_lag_p99_us`: connect and handshake latencies then include the
///   generator's delay;
/// - `cq_overflow`: the kernel reported a completion-queue overflow;
/// - `buffer_ring_exhausted`: a receive found the provided-buffer ring empty.
///
/// A lag rule needs at least `min_samples` samples in the second: with fewer, its p99
/// is one sample (the first connection of a run, a lone ping) and says nothing about
/// the generator keeping up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SaturationPolicy {
    /// Largest acceptable schedule-lag p99 in a second, µs (default 1000).
    pub max_lag_p99_us: u64,
    /// Largest acceptable connect-lag p99 in a second, µs (default 10,000).
    pub max_connect_lag_p99_us: u64,
    /// Fewest samples a lag rule judges (default 20).
    pub min_samples: u64,
    /// Intended interval between one connection's consecutive sends, µs, if the
    /// scenario sends at a fixed pace; the threshold is then also at most 10% of it.
    pub send_interval_us: Option<u64>,
}

impl Default for SaturationPolicy {
    fn default() -> Self {
        Self { max_lag_p99_us: 1_000, max_connect_lag_p99_us: 10_000, min_samples: 20, send_interval_us: None }
    }
}

impl SaturationPolicy {
    /// The schedule-lag p99 above which a second is saturated.
    pub fn lag_threshold_us(&self) -> u64 {
        match self.send_interval_us.filter(|&i| i > 0) {
            Some(i) => self.max_lag_p99_us.min(i / 10),
            None => self.max_lag_p99_us,
        }
    }

    /// The schedule lag judged by the `schedule_lag` rule, if it has enough samples.
    fn judged<'a>(&self, lag: Option<&'a Percentiles>, threshold: u64) -> Option<&'a Percentiles> {
        lag.filter(|l| l.count >= self.min_samples && l.p99 > threshold)
    }

    /// Reasons one second is saturated (empty: not saturated).
    pub fn reasons(
        &self,
        schedule_lag: Option<&Percentiles>,
        connect_lag: Option<&Percentiles>,
        counters: &Counters,
    ) -> Vec<String> {
        let mut reasons = Vec::new();
        let threshold = self.lag_threshold_us();
        if let Some(lag) = self.judged(schedule_lag, threshold) {
            let why = match self.send_interval_us.filter(|&i| i > 0 && i / 10 < self.max_lag_p99_us) {
                Some(i) => format!(" (10% of the {i} µs send interval)"),
                None => String::new(),
            };
            reasons.push(format!("schedule_lag: p99 {} µs > {threshold} µs{why}", lag.p99));
        }
        if let Some(lag) = self.judged(connect_lag, self.max_connect_lag_p99_us) {
            reasons.push(format!("connect_lag: p99 {} µs > {} µs", lag.p99, self.max_connect_lag_p99_us));
        }
        if counters.cq_overflow > 0 {
            reasons.push(format!("cq_overflow: {} completion-queue overflows", counters.cq_overflow));
        }
        if counters.buffer_ring_exhausted > 0 {
            reasons.push(format!(
                "buffer_ring_exhausted: {} receives found the buffer ring empty",
                counters.buffer_ring_exhausted
            ));
        }
        reasons
    }
}

/// Connection counts of one second (deltas, except `open` and `peak_open`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SecondConnections {
    /// Connection starts submitted.
    pub attempted: u64,
    /// Connections that became open.
    pub established: u64,
    /// Attempts that failed before becoming open.
    pub failed: u64,
    /// Open connections that ended.
    pub closed: u64,
    /// Open connections that ended without loadgen closing them (absent when 0).
    #[serde(skip_serializing_if = "is_zero")]
    pub dropped: u64,
    /// Reconnect attempts of dropped connections started (also in `attempted`;
    /// absent when 0): the shape of a reconnect wave, second by second.
    #[serde(skip_serializing_if = "is_zero")]
    pub reconnect_attempts: u64,
    /// Open at the end of the second.
    pub open: u64,
    /// Most open during the second (sum of the workers' peaks: an upper bound).
    pub peak_open: u64,
}

/// Message counts of one second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SecondMessages {
    /// Messages sent.
    pub sent: u64,
    /// Messages received.
    pub received: u64,
    /// Payload bytes sent.
    pub bytes_sent: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Echoes that came back after the reply timeout (absent when 0).
    #[serde(skip_serializing_if = "is_zero")]
    pub late: u64,
    /// Sequence numbers found missing when connections ended (absent when 0).
    #[serde(skip_serializing_if = "is_zero")]
    pub lost: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// All workers' measurements in one second of the run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SecondStats {
    /// Second of the run, from 0 (covers `[second, second + 1)` s after the start).
    pub second: u64,
    /// Connection counts.
    pub connections: SecondConnections,
    /// Message counts.
    pub messages: SecondMessages,
    /// Latencies that had samples in this second.
    #[serde(skip_serializing_if = "Latencies::is_empty")]
    pub latency_us: Latencies,
    /// Schedule lag (absent when nothing was scheduled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_lag_us: Option<Percentiles>,
    /// Lag of connection starts (absent when none started).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_lag_us: Option<Percentiles>,
    /// Completion-queue overflows (absent when 0).
    #[serde(skip_serializing_if = "is_zero")]
    pub cq_overflow: u64,
    /// Receives that found the buffer ring empty (absent when 0).
    #[serde(skip_serializing_if = "is_zero")]
    pub buffer_ring_exhausted: u64,
    /// The generator was saturated in this second.
    pub saturated: bool,
    /// Why (absent when not saturated).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub saturation_reasons: Vec<String>,
    /// Errors by kind (absent when none).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<&'static str, u64>,
}

/// What the collector accumulated over the whole run.
#[derive(Debug, Default)]
pub struct RunStats {
    /// Every complete second, in order.
    pub seconds: Vec<SecondStats>,
    /// Counters summed over the run.
    pub totals: Counters,
    /// Errors by kind over the run.
    pub errors: BTreeMap<&'static str, u64>,
    /// Dropped connections by cause.
    pub drops: BTreeMap<&'static str, u64>,
    /// Close codes of connections the server dropped with a close frame.
    pub close_codes: BTreeMap<u16, u64>,
    /// Refused upgrades by HTTP status.
    pub refusals: BTreeMap<u16, CodeCount>,
    /// Closed loop: the think time between a reply and the next send, µs (`None`: not
    /// a closed loop). Enables the coordinated-omission-corrected round trip.
    pub closed_loop_think_us: Option<u64>,
    /// Most connections open at once (largest per-second sum of worker peaks).
    pub peak_open: u64,
    /// Connections open at the end of the last second.
    pub open_at_end: u64,
    /// The saturation policy the seconds were judged by.
    pub policy: SaturationPolicy,
    /// The run's named windows (its phases), each with what it accumulated.
    pub windows: Vec<WindowStats>,
    histograms: HistogramSet,
}

impl RunStats {
    /// Adds `h` to the whole-run histograms.
    pub(crate) fn add_histograms(&mut self, h: &HistogramSet) {
        self.histograms.add(h);
    }

    /// Whole-run histogram of `metric` (the merge of every worker's intervals).
    pub fn histogram(&self, metric: Metric) -> &Histogram<u64> {
        self.histograms.get(metric)
    }

    /// Whole-run latency summaries (metrics without samples absent), with the
    /// coordinated-omission-corrected round trip of a closed loop.
    pub fn latencies(&self) -> Latencies {
        let mut l = self.histograms.latencies();
        l.message_rtt_corrected = self.corrected_rtt().as_ref().and_then(Percentiles::from_nonempty);
        l
    }

    /// Closed loop: the round-trip histogram corrected for coordinated omission, with
    /// the expected interval between one connection's sends (think time + median round
    /// trip); `None` in an open model or without samples.
    pub fn corrected_rtt(&self) -> Option<Histogram<u64>> {
        let think = self.closed_loop_think_us?;
        let raw = self.histogram(Metric::MessageRtt);
        if raw.is_empty() {
            return None;
        }
        let interval = (think + raw.value_at_quantile(0.5)).max(1);
        Some(raw.clone_correct(interval))
    }

    /// The most reconnect attempts started in one second (0: none): a wave of
    /// reconnects packed into one second is a thundering herd.
    pub fn reconnect_peak_per_s(&self) -> u64 {
        self.seconds.iter().map(|s| s.connections.reconnect_attempts).max().unwrap_or(0)
    }

    /// Seconds judged saturated, in order.
    pub fn saturated_seconds(&self) -> Vec<u64> {
        self.seconds.iter().filter(|s| s.saturated).map(|s| s.second).collect()
    }

    /// Why the run as a whole was saturated (empty: it was not): one line per cause,
    /// with how many seconds it affected.
    pub fn saturation_reasons(&self) -> Vec<String> {
        let threshold = self.policy.lag_threshold_us();
        let lagging: Vec<(u64, u64)> = self
            .seconds
            .iter()
            .filter_map(|s| self.policy.judged(s.schedule_lag_us.as_ref(), threshold).map(|l| (s.second, l.p99)))
            .collect();
        let mut reasons = Vec::new();
        if let Some(&(second, worst)) = lagging.iter().max_by_key(|&&(s, p)| (p, std::cmp::Reverse(s))) {
            reasons.push(format!(
                "schedule_lag: p99 above {threshold} µs in {} of {} s ({}; worst {worst} µs in second {second})",
                lagging.len(),
                self.seconds.len(),
                seconds_list(lagging.iter().map(|&(s, _)| s))
            ));
        }
        let connect_threshold = self.policy.max_connect_lag_p99_us;
        let ramp: Vec<(u64, u64)> = self
            .seconds
            .iter()
            .filter_map(|s| self.policy.judged(s.connect_lag_us.as_ref(), connect_threshold).map(|l| (s.second, l.p99)))
            .collect();
        if let Some(&(second, worst)) = ramp.iter().max_by_key(|&&(s, p)| (p, std::cmp::Reverse(s))) {
            reasons.push(format!(
                "connect_lag: connection starts' p99 above {connect_threshold} µs in {} of {} s ({}; worst {worst} µs in second {second})",
                ramp.len(),
                self.seconds.len(),
                seconds_list(ramp.iter().map(|&(s, _)| s))
            ));
        }
        let mut counted = |name: &str, what: &str, f: fn(&SecondStats) -> u64| {
            let hit: Vec<&SecondStats> = self.seconds.iter().filter(|s| f(s) > 0).collect();
            if let Some(first) = hit.first() {
                let total: u64 = hit.iter().map(|s| f(s)).sum();
                reasons.push(format!("{name}: {total} {what} in {} s (first in second {})", hit.len(), first.second));
            }
        };
        counted("cq_overflow", "completion-queue overflows", |s| s.cq_overflow);
        counted("buffer_ring_exhausted", "receives found the buffer ring empty", |s| s.buffer_ring_exhausted);
        reasons
    }
}

/// `seconds` (ascending) as ranges: "seconds 0, 3-5".
fn seconds_list(seconds: impl Iterator<Item = u64>) -> String {
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for s in seconds {
        match ranges.last_mut() {
            Some((_, end)) if *end + 1 == s => *end = s,
            _ => ranges.push((s, s)),
        }
    }
    let parts: Vec<String> =
        ranges.iter().map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect();
    format!("second{} {}", if ranges.len() == 1 && ranges[0].0 == ranges[0].1 { "" } else { "s" }, parts.join(", "))
}

/// One second being assembled from the workers' snapshots.
struct Pending {
    hist: Option<HistogramSet>,
    counters: Counters,
    errors: BTreeMap<&'static str, u64>,
    drops: BTreeMap<&'static str, u64>,
    close_codes: CodeTable,
    refusals: CodeTable,
    open: Vec<Option<u64>>,
    peak: Vec<Option<u64>>,
}

/// Merges worker snapshots into [`SecondStats`] and [`RunStats`]. Runs on its own
/// thread (or is stepped by the engine's control loop).
pub struct Collector {
    rx: Receiver<Message>,
    returns: Vec<SyncSender<Snapshot>>,
    reported: Vec<Option<u64>>,
    finished: Vec<bool>,
    carry_open: Vec<u64>,
    next_second: u64,
    pending: VecDeque<Pending>,
    pool: Vec<HistogramSet>,
    run: RunStats,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("workers", &self.finished.len())
            .field("next_second", &self.next_second)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Collector {
    /// Accumulates the run's named windows (its phases) beside the whole run, each
    /// over the seconds it covers (`RunStats::windows`).
    pub fn set_windows(&mut self, windows: &[Window]) {
        self.run.windows = windows.iter().cloned().map(WindowStats::new).collect();
    }

    /// What has been collected so far: every complete second, the totals and the
    /// windows up to the last of them (live checks read it).
    pub fn stats(&self) -> &RunStats {
        &self.run
    }

    /// Complete seconds so far.
    pub fn seconds(&self) -> &[SecondStats] {
        &self.run.seconds
    }

    /// Every worker has finished.
    pub fn all_finished(&self) -> bool {
        self.finished.iter().all(|&f| f)
    }

    /// Waits up to `timeout` for a message, then handles everything queued. Returns
    /// false once every worker has finished (or every reporter is gone).
    pub fn step(&mut self, timeout: Duration) -> bool {
        match self.rx.recv_timeout(timeout) {
            Ok(m) => self.handle(m),
            Err(RecvTimeoutError::Timeout) => return true,
            Err(RecvTimeoutError::Disconnected) => return false,
        }
        loop {
            match self.rx.try_recv() {
                Ok(m) => self.handle(m),
                Err(TryRecvError::Empty) => return !self.all_finished(),
                Err(TryRecvError::Disconnected) => return false,
            }
        }
    }

    /// Collects until every worker has finished, then returns the run's statistics.
    pub fn run(mut self) -> RunStats {
        while !self.all_finished() {
            match self.rx.recv() {
                Ok(m) => self.handle(m),
                Err(_) => break,
            }
        }
        self.finish()
    }

    /// Ends collection now (a partial or interrupted run): handles what is queued,
    /// treats every worker as finished and emits every pending second.
    pub fn finish(mut self) -> RunStats {
        while let Ok(m) = self.rx.try_recv() {
            self.handle(m);
        }
        self.finished.fill(true);
        self.emit_ready();
        self.run
    }

    fn handle(&mut self, m: Message) {
        match m {
            Message::Snapshot(w, s) => self.accept(w, s),
            Message::Finished(w) => self.worker_finished(w),
        }
    }

    /// Merges one snapshot of `worker` (what the channel does; public for engines
    /// that drive the collector directly).
    pub fn accept(&mut self, worker: usize, mut snapshot: Snapshot) {
        assert!(worker < self.finished.len(), "worker {worker} out of range");
        let second = snapshot.second.max(self.next_second);
        let workers = self.finished.len();
        while self.pending.len() as u64 <= second - self.next_second {
            self.pending.push_back(Pending {
                hist: None,
                counters: Counters::default(),
                errors: BTreeMap::new(),
                drops: BTreeMap::new(),
                close_codes: CodeTable::default(),
                refusals: CodeTable::default(),
                open: vec![None; workers],
                peak: vec![None; workers],
            });
        }
        let p = &mut self.pending[(second - self.next_second) as usize];
        let d = &snapshot.data;
        if Metric::ALL.iter().any(|&m| !d.hist.get(m).is_empty()) {
            p.hist.get_or_insert_with(|| self.pool.pop().unwrap_or_default()).add(&d.hist);
        }
        p.counters.add(&d.counters);
        for (name, n) in d.errors.iter() {
            *p.errors.entry(name).or_insert(0) += n;
        }
        for (name, n) in d.drops.iter() {
            *p.drops.entry(name).or_insert(0) += n;
        }
        for c in d.close_codes.iter() {
            p.close_codes.merge(c);
        }
        for c in d.refusals.iter() {
            p.refusals.merge(c);
        }
        p.open[worker] = Some(d.open);
        p.peak[worker] = Some(p.peak[worker].unwrap_or(0).max(d.peak_open));
        self.reported[worker] = self.reported[worker].max(Some(second));
        snapshot.data.reset();
        let _ = self.returns[worker].try_send(snapshot);
        self.emit_ready();
    }

    /// Marks `worker` finished: seconds no longer wait for it.
    pub fn worker_finished(&mut self, worker: usize) {
        self.finished[worker] = true;
        self.emit_ready();
    }

    fn complete(&self, second: u64) -> bool {
        self.finished.iter().zip(&self.reported).all(|(&f, &r)| f || r.is_some_and(|r| r >= second))
    }

    fn emit_ready(&mut self) {
        while !self.pending.is_empty() && self.complete(self.next_second) {
            let p = self.pending.pop_front().expect("not empty");
            self.emit(p);
            self.next_second += 1;
        }
    }

    fn emit(&mut self, mut p: Pending) {
        let mut peak = 0;
        for (w, carry) in self.carry_open.iter_mut().enumerate() {
            if let Some(open) = p.open[w] {
                *carry = open;
            }
            peak += p.peak[w].unwrap_or(*carry);
        }
        let open = self.carry_open.iter().sum();
        let (latency_us, schedule_lag_us, connect_lag_us) = match &p.hist {
            Some(h) => (
                h.latencies(),
                Percentiles::from_nonempty(h.get(Metric::ScheduleLag)),
                Percentiles::from_nonempty(h.get(Metric::ConnectLag)),
            ),
            None => (Latencies::default(), None, None),
        };
        let c = &p.counters;
        let saturation_reasons = self.run.policy.reasons(schedule_lag_us.as_ref(), connect_lag_us.as_ref(), c);
        let second = SecondStats {
            second: self.next_second,
            connections: SecondConnections {
                attempted: c.attempted,
                established: c.established,
                failed: c.failed,
                closed: c.closed,
                dropped: c.dropped,
                reconnect_attempts: c.reconnect_attempts,
                open,
                peak_open: peak,
            },
            messages: SecondMessages {
                sent: c.messages_sent,
                received: c.messages_received,
                bytes_sent: c.bytes_sent,
                bytes_received: c.bytes_received,
                late: c.late,
                lost: c.lost,
            },
            latency_us,
            schedule_lag_us,
            connect_lag_us,
            cq_overflow: c.cq_overflow,
            buffer_ring_exhausted: c.buffer_ring_exhausted,
            saturated: !saturation_reasons.is_empty(),
            saturation_reasons,
            errors: std::mem::take(&mut p.errors),
        };
        let tally = SecondTally {
            hist: p.hist.as_ref(),
            counters: c,
            errors: &second.errors,
            drops: &p.drops,
            close_codes: &p.close_codes,
            refusals: &p.refusals,
            peak_open: peak,
            open,
        };
        let run = &mut self.run;
        tally.add_to(run);
        for w in run.windows.iter_mut().filter(|w| w.window.covers(second.second)) {
            tally.add_to(&mut w.stats);
            w.seconds += 1;
        }
        if let Some(mut h) = p.hist.take() {
            h.reset();
            self.pool.push(h);
        }
        run.seconds.push(second);
    }
}
