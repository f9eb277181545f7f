//! The per-worker [`Recorder`]: interval histograms, counters and errors, owned by one
//! thread and touched only through `&mut self` (no locks, no atomics). Once a second
//! [`Recorder::snapshot`] swaps the interval out; the buffers come back through
//! [`Recorder::recycle`], so after warm-up two interval buffers alternate and nothing
//! is allocated. This module does not send snapshots anywhere (see `collector`).

use hdrhistogram::Histogram;

use super::{CodeTable, ErrorTable, HistogramSet, Metric};

/// Event counts over an interval (or, summed, over a run).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Connection starts submitted.
    pub attempted: u64,
    /// Connections that completed the upgrade (became open).
    pub established: u64,
    /// Attempts that ended in an error before becoming open (connect, handshake).
    pub failed: u64,
    /// Open connections that ended, for any reason (errors by kind say why).
    pub closed: u64,
    /// Messages sent.
    pub messages_sent: u64,
    /// Messages received.
    pub messages_received: u64,
    /// WebSocket payload bytes sent.
    pub bytes_sent: u64,
    /// WebSocket payload bytes received.
    pub bytes_received: u64,
    /// Completion-queue overflows reported by the kernel (generator saturation).
    pub cq_overflow: u64,
    /// Receives that found the provided-buffer ring empty (generator saturation).
    pub buffer_ring_exhausted: u64,
    /// TLS handshakes completed with a full handshake (wss://).
    pub tls_full_handshakes: u64,
    /// TLS handshakes that resumed an earlier session (wss://).
    pub tls_resumed_handshakes: u64,
    /// Open connections that ended without loadgen closing them (reset, closed by the
    /// server, protocol error, ...; causes in the interval's drop table).
    pub dropped: u64,
    /// Connections open when the hold ended (before the ramp-down closed them).
    pub open_at_end: u64,
    /// Echoes that came back within the reply timeout.
    pub answered: u64,
    /// Echoes that came back after the reply timeout.
    pub late: u64,
    /// Probe messages sent that got no echo by the time their connection ended.
    pub unanswered: u64,
    /// Messages that fell due but could not be sent (no open connection, connection
    /// ended with polls queued).
    pub not_sent: u64,
    /// Sequence numbers never received below the highest one received (per connection
    /// for echoes, per sender and channel for pushes), counted when the connection ends.
    pub lost: u64,
    /// Messages received twice (same sender, channel and sequence number).
    pub duplicated: u64,
    /// Messages received after a later one of the same stream.
    pub reordered: u64,
    /// Server-pushed probe messages received (delivery latency samples).
    pub pushes_received: u64,
    /// Closed loop: replies that did not come within the reply timeout (the connection
    /// then sent its next message).
    pub reply_timeouts: u64,
    /// Reconnect attempts started (also counted in `attempted`).
    pub reconnect_attempts: u64,
    /// Dropped connections that were ready again.
    pub reconnected: u64,
    /// Dropped connections whose reconnect attempts reached the policy's limit.
    pub reconnect_gave_up: u64,
    /// Reconnect attempts that landed on the server instance they had before
    /// (`RunConfig::server_id`).
    pub reconnected_same_server: u64,
    /// Reconnect attempts that landed on another server instance than before.
    pub reconnected_other_server: u64,
    /// Pings unanswered past their program's pong timeout (each ended its connection:
    /// a drop with cause `pong_timeout`).
    pub pong_timeouts: u64,
    /// Upgrades whose 101 selected one of the offered subprotocols.
    pub subprotocol_negotiated: u64,
}

impl Counters {
    /// Adds `other` field by field.
    pub fn add(&mut self, o: &Counters) {
        self.attempted += o.attempted;
        self.established += o.established;
        self.failed += o.failed;
        self.closed += o.closed;
        self.messages_sent += o.messages_sent;
        self.messages_received += o.messages_received;
        self.bytes_sent += o.bytes_sent;
        self.bytes_received += o.bytes_received;
        self.cq_overflow += o.cq_overflow;
        self.buffer_ring_exhausted += o.buffer_ring_exhausted;
        self.tls_full_handshakes += o.tls_full_handshakes;
        self.tls_resumed_handshakes += o.tls_resumed_handshakes;
        self.dropped += o.dropped;
        self.open_at_end += o.open_at_end;
        self.answered += o.answered;
        self.late += o.late;
        self.unanswered += o.unanswered;
        self.not_sent += o.not_sent;
        self.lost += o.lost;
        self.duplicated += o.duplicated;
        self.reordered += o.reordered;
        self.pushes_received += o.pushes_received;
        self.reply_timeouts += o.reply_timeouts;
        self.reconnect_attempts += o.reconnect_attempts;
        self.reconnected += o.reconnected;
        self.reconnect_gave_up += o.reconnect_gave_up;
        self.reconnected_same_server += o.reconnected_same_server;
        self.reconnected_other_server += o.reconnected_other_server;
        self.pong_timeouts += o.pong_timeouts;
        self.subprotocol_negotiated += o.subprotocol_negotiated;
    }
}

/// One interval's measurements: the buffer that alternates between worker and
/// collector.
#[derive(Debug, Default)]
pub(super) struct Interval {
    pub(super) hist: HistogramSet,
    pub(super) counters: Counters,
    pub(super) errors: ErrorTable,
    /// Dropped connections by cause.
    pub(super) drops: ErrorTable,
    /// Close codes servers sent on connections they dropped.
    pub(super) close_codes: CodeTable,
    /// Refused upgrades by HTTP status, with the `Retry-After` values seen.
    pub(super) refusals: CodeTable,
    /// Connections open at the end of the interval.
    pub(super) open: u64,
    /// Most connections open at once during the interval.
    pub(super) peak_open: u64,
}

impl Interval {
    /// Empties the interval, keeping its buffers (cheap when already empty).
    pub(super) fn reset(&mut self) {
        self.hist.reset();
        self.counters = Counters::default();
        self.errors.clear();
        self.drops.clear();
        self.close_codes.clear();
        self.refusals.clear();
        self.open = 0;
        self.peak_open = 0;
    }
}

/// One worker's measurements over one interval, taken by [`Recorder::snapshot`].
#[derive(Debug)]
pub struct Snapshot {
    pub(super) second: u64,
    pub(super) data: Box<Interval>,
}

impl Snapshot {
    /// The second of the run (0-based) the interval is attributed to.
    pub fn second(&self) -> u64 {
        self.second
    }

    /// Histogram of `metric` over the interval.
    pub fn histogram(&self, metric: Metric) -> &Histogram<u64> {
        self.data.hist.get(metric)
    }

    /// Counters over the interval.
    pub fn counters(&self) -> &Counters {
        &self.data.counters
    }

    /// Errors over the interval.
    pub fn errors(&self) -> &ErrorTable {
        &self.data.errors
    }

    /// Dropped connections by cause over the interval.
    pub fn drops(&self) -> &ErrorTable {
        &self.data.drops
    }

    /// Connections open at the end of the interval.
    pub fn open(&self) -> u64 {
        self.data.open
    }

    /// Most connections open at once during the interval.
    pub fn peak_open(&self) -> u64 {
        self.data.peak_open
    }

    /// Address of the interval buffer (tests check that buffers are reused).
    pub fn buffer_addr(&self) -> usize {
        &*self.data as *const Interval as usize
    }
}

/// A worker's measurements. Counting is a field increment; recording a latency is one
/// histogram slot increment.
#[derive(Debug)]
pub struct Recorder {
    cur: Box<Interval>,
    spare: Option<Box<Interval>>,
    open: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// A recorder with both interval buffers allocated up front (none on the hot path).
    pub fn new() -> Self {
        Self { cur: Box::default(), spare: Some(Box::default()), open: 0 }
    }

    /// Records `value_us` for `metric` (values above one hour saturate).
    #[inline]
    pub fn record(&mut self, metric: Metric, value_us: u64) {
        self.cur.hist.record(metric, value_us);
    }

    /// Records the time from `intended_ns` to `now_ns` in µs (0 if `now` is earlier).
    #[inline]
    pub fn record_since(&mut self, metric: Metric, intended_ns: u64, now_ns: u64) {
        self.record(metric, now_ns.saturating_sub(intended_ns) / 1_000);
    }

    /// Counts an error of kind `name` (never allocates).
    #[inline]
    pub fn error(&mut self, name: &'static str) {
        self.cur.errors.add(name, 1);
    }

    /// A connection start was submitted.
    #[inline]
    pub fn connection_attempted(&mut self) {
        self.cur.counters.attempted += 1;
    }

    /// A connection became open (upgrade validated).
    #[inline]
    pub fn connection_established(&mut self) {
        self.cur.counters.established += 1;
        self.open += 1;
        self.cur.peak_open = self.cur.peak_open.max(self.open);
    }

    /// An attempt failed before the connection became open.
    #[inline]
    pub fn connection_failed(&mut self) {
        self.cur.counters.failed += 1;
    }

    /// An open connection ended (cleanly or not).
    #[inline]
    pub fn connection_closed(&mut self) {
        self.cur.counters.closed += 1;
        self.open = self.open.saturating_sub(1);
    }

    /// An open connection ended without loadgen closing it, for `cause` (a stable
    /// name: `reset`, `server_close`, `eof`, a protocol or TLS error kind, ...). Also
    /// counts it as closed.
    #[inline]
    pub fn connection_dropped(&mut self, cause: &'static str) {
        self.cur.counters.dropped += 1;
        self.cur.drops.add(cause, 1);
    }

    /// The server closed a connection it dropped with this close code.
    #[inline]
    pub fn close_code(&mut self, code: u16) {
        self.cur.close_codes.add(code, None);
    }

    /// An upgrade was refused with HTTP `status` (and `Retry-After`, seconds).
    #[inline]
    pub fn refused(&mut self, status: u16, retry_after_s: Option<u64>) {
        self.cur.refusals.add(status, retry_after_s);
    }

    /// `n` connections were open when the hold ended.
    #[inline]
    pub fn open_at_end(&mut self, n: u64) {
        self.cur.counters.open_at_end += n;
    }

    /// An echo came back: within the reply timeout, or `late`.
    #[inline]
    pub fn echo_received(&mut self, late: bool) {
        if late {
            self.cur.counters.late += 1;
        } else {
            self.cur.counters.answered += 1;
        }
    }

    /// A connection ended: its sequence checks' verdicts (`unanswered` echoes, `lost`
    /// sequence numbers).
    #[inline]
    pub fn stream_ended(&mut self, unanswered: u64, lost: u64) {
        self.cur.counters.unanswered += unanswered;
        self.cur.counters.lost += lost;
    }

    /// A message fell due but could not be sent (`why`: its error kind).
    #[inline]
    pub fn not_sent(&mut self, why: &'static str) {
        self.cur.counters.not_sent += 1;
        self.cur.errors.add(why, 1);
    }

    /// A received message was a duplicate.
    #[inline]
    pub fn duplicated(&mut self) {
        self.cur.counters.duplicated += 1;
    }

    /// A received message came after a later one of its stream.
    #[inline]
    pub fn reordered(&mut self) {
        self.cur.counters.reordered += 1;
    }

    /// A server-pushed probe message arrived.
    #[inline]
    pub fn push_received(&mut self) {
        self.cur.counters.pushes_received += 1;
    }

    /// Closed loop: a reply did not come within the reply timeout.
    #[inline]
    pub fn reply_timeout(&mut self) {
        self.cur.counters.reply_timeouts += 1;
    }

    /// A reconnect attempt started.
    #[inline]
    pub fn reconnect_attempted(&mut self) {
        self.cur.counters.reconnect_attempts += 1;
    }

    /// A dropped connection is ready again.
    #[inline]
    pub fn reconnected(&mut self) {
        self.cur.counters.reconnected += 1;
    }

    /// A reconnect landed on the server instance the connection had before.
    #[inline]
    pub fn reconnected_same_server(&mut self) {
        self.cur.counters.reconnected_same_server += 1;
    }

    /// A reconnect landed on another server instance than before.
    #[inline]
    pub fn reconnected_other_server(&mut self) {
        self.cur.counters.reconnected_other_server += 1;
    }

    /// A dropped connection's attempts reached the policy's limit.
    #[inline]
    pub fn reconnect_gave_up(&mut self) {
        self.cur.counters.reconnect_gave_up += 1;
    }

    /// A ping went unanswered past its pong timeout (also an error of kind
    /// `pong_timeout`; the drop that follows is counted by `connection_dropped`).
    #[inline]
    pub fn pong_timeout(&mut self) {
        self.cur.counters.pong_timeouts += 1;
        self.cur.errors.add("pong_timeout", 1);
    }

    /// An upgrade's 101 selected one of the offered subprotocols.
    #[inline]
    pub fn subprotocol_negotiated(&mut self) {
        self.cur.counters.subprotocol_negotiated += 1;
    }

    /// A message of `payload_bytes` was sent.
    #[inline]
    pub fn message_sent(&mut self, payload_bytes: u64) {
        self.cur.counters.messages_sent += 1;
        self.cur.counters.bytes_sent += payload_bytes;
    }

    /// A message of `payload_bytes` was received.
    #[inline]
    pub fn message_received(&mut self, payload_bytes: u64) {
        self.cur.counters.messages_received += 1;
        self.cur.counters.bytes_received += payload_bytes;
    }

    /// The kernel reported `n` completion-queue overflows.
    #[inline]
    pub fn cq_overflow(&mut self, n: u64) {
        self.cur.counters.cq_overflow += n;
    }

    /// `n` receives found the provided-buffer ring empty.
    #[inline]
    pub fn buffer_ring_exhausted(&mut self, n: u64) {
        self.cur.counters.buffer_ring_exhausted += n;
    }

    /// A TLS handshake completed, resumed or full.
    #[inline]
    pub fn tls_handshake_done(&mut self, resumed: bool) {
        if resumed {
            self.cur.counters.tls_resumed_handshakes += 1;
        } else {
            self.cur.counters.tls_full_handshakes += 1;
        }
    }

    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.open
    }

    /// Addresses of the current and spare interval buffers (0: no spare), so tests can
    /// check that buffers are reused rather than reallocated.
    pub fn buffer_addrs(&self) -> [usize; 2] {
        [&*self.cur as *const Interval as usize, self.spare.as_deref().map_or(0, |s| s as *const Interval as usize)]
    }

    /// Counters of the current interval.
    pub fn counters(&self) -> &Counters {
        &self.cur.counters
    }

    /// Ends the current interval, attributing it to `second`, and starts the next one
    /// in the spare buffer (allocating only if none has come back yet).
    pub fn snapshot(&mut self, second: u64) -> Snapshot {
        let mut next = self.spare.take().unwrap_or_default();
        next.peak_open = self.open;
        self.cur.open = self.open;
        std::mem::swap(&mut self.cur, &mut next);
        Snapshot { second, data: next }
    }

    /// Takes a snapshot's buffers back for reuse (one spare is kept; extras are freed).
    /// The collector empties buffers before returning them, so the reset here only
    /// checks that they are empty and costs the worker nothing.
    pub fn recycle(&mut self, mut snapshot: Snapshot) {
        if self.spare.is_none() {
            snapshot.data.reset();
            self.spare = Some(snapshot.data);
        }
    }
}
