//! The sequence checks of one connection's incoming probes, judged as they arrive:
//! its own echoes (one stream, timed as round trips) and server pushes, per sender
//! (a stream per channel or publisher, timed as delivery from the intended publish
//! time). A connection may follow several push streams at once (a person's channel and
//! a broadcast, say): the first lives in the slab entry, up to [`MAX_EXTRA_STREAMS`]
//! more in its side table (`Side`, allocated only for connections that need it).
//! Beyond that, pushes are still timed and counted but not sequence-checked
//! (`push_streams_over_limit`).
//!
//! What it does not do: decide what a probe is (see `payload`, `payload_json`), or
//! account a stream at its end (`Conn::take_stream_verdict`).

use super::super::conn::{Conn, Side};
use super::recv::Outcome;
use crate::clock::Clock;
use crate::payload::Probe;
use crate::stats::seq::{Arrival, SeqTracker};
use crate::stats::{Metric, Recorder};

/// Push streams a connection checks beyond its first.
pub const MAX_EXTRA_STREAMS: usize = 15;

/// A connection's sequence state, moved out of the slab entry while a read is fed (so
/// it can change while the protocol state is borrowed apart) and stored back after.
pub(super) struct Streams {
    echo: SeqTracker,
    push: SeqTracker,
    push_sender: u64,
    side: Option<Box<Side>>,
}

impl Streams {
    pub(super) fn load(conn: &mut Conn) -> Self {
        Self { echo: conn.echo_rx, push: conn.push_rx, push_sender: conn.push_sender, side: conn.side.take() }
    }

    pub(super) fn store(&mut self, conn: &mut Conn) {
        conn.echo_rx = self.echo;
        conn.push_rx = self.push;
        conn.push_sender = self.push_sender;
        conn.side = self.side.take();
    }

    /// The push stream of `sender`, if it is followed (a new one is followed while
    /// there is room).
    fn push_stream(&mut self, sender: u64, rec: &mut Recorder) -> Option<&mut SeqTracker> {
        if self.push.is_empty() && self.push_sender != sender {
            // The first push, or the first stream ended with nothing held.
            self.push_sender = sender;
        }
        if self.push_sender == sender {
            return Some(&mut self.push);
        }
        let side = self.side.get_or_insert_with(Box::default);
        let at = match side.streams.iter().position(|(s, _)| *s == sender) {
            Some(at) => at,
            None if side.streams.len() < MAX_EXTRA_STREAMS => {
                side.streams.push((sender, SeqTracker::default()));
                side.streams.len() - 1
            }
            None => {
                rec.error("push_streams_over_limit");
                return None;
            }
        };
        Some(&mut side.streams[at].1)
    }
}

/// One received probe payload, judged: this connection's own echo (timed from its
/// intended time, checked for order and duplicates, late after the reply timeout), or a
/// server push (delivery latency from its intended publish time, checked per sender;
/// a `critical` one timed apart as well).
#[allow(clippy::too_many_arguments)]
pub(super) fn probe_arrived(
    p: Probe,
    streams: &mut Streams,
    rec: &mut Recorder,
    clock: &Clock,
    own: u64,
    sent: u64,
    reply_timeout_ns: u64,
    now: u64,
    critical: bool,
    outcome: &mut Outcome,
) {
    let intended = clock.run_ns(p.sent_unix_us);
    if p.sender == own {
        match streams.echo.observe(p.seq) {
            Arrival::Duplicate => {
                rec.duplicated();
                return;
            }
            Arrival::Reordered => rec.reordered(),
            Arrival::Ahead { .. } => {}
        }
        rec.record_since(Metric::MessageRtt, intended, now);
        rec.echo_received(now.saturating_sub(intended) > reply_timeout_ns);
        outcome.echoes += 1;
        outcome.current_echo |= p.seq.wrapping_add(1) == sent;
        return;
    }
    if let Some(stream) = streams.push_stream(p.sender, rec) {
        match stream.observe(p.seq) {
            Arrival::Duplicate => {
                rec.duplicated();
                return;
            }
            Arrival::Reordered => rec.reordered(),
            Arrival::Ahead { .. } => {}
        }
    }
    rec.push_received();
    rec.record_since(Metric::Delivery, intended, now);
    if critical {
        rec.record_since(Metric::DeliveryCritical, intended, now);
    }
}
