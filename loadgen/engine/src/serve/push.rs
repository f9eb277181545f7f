//! Push mode of a server thread: probe payloads at a total rate, round robin over the
//! thread's open connections, each with its own sequence numbers and sender id, and
//! a CLOCK_REALTIME microsecond stamp so a client on the same host can compute
//! delivery latency. WebSocket: one binary message per probe; raw TCP: the payloads
//! back to back on the byte stream, unframed; with TLS, encrypted as they are queued.
//! Messages to a connection with too much output queued are dropped and counted, so a
//! client that stops reading cannot grow the server's memory.
//!
//! After a stall of the loop, the messages that fell due are sent at once (the rate
//! holds over any second); beyond one second of them the rest are skipped, not sent.
//! Nothing is queued while no connection is open.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use loadgen_proto::MessageKind;

use super::{MAX_WAIT, NoMask, Worker, tls};
use crate::payload::Probe;

/// Output queued above which push messages to a connection are dropped (counted).
const PUSH_QUEUE_LIMIT: usize = 256 << 10;

pub(super) struct Push {
    rate: f64,
    base: Instant,
    sent: u64,
    cursor: usize,
    payload: Vec<u8>,
}

impl Push {
    pub(super) fn new(rate: f64, payload: Vec<u8>) -> Self {
        Self { rate, base: Instant::now(), sent: 0, cursor: 0, payload }
    }
}

impl Worker {
    /// Sends the pushes whose time has come, round robin over open connections.
    /// Returns how long until the next one is due.
    pub(super) fn send_due_pushes(&mut self, now: Instant) -> Duration {
        let Some(mut p) = self.push.take() else { return MAX_WAIT };
        if self.open.is_empty() {
            // Nobody to push to: no backlog builds up.
            p.base = now;
            p.sent = 0;
            self.push = Some(p);
            return MAX_WAIT;
        }
        let due = ((now - p.base).as_secs_f64() * p.rate) as u64;
        let mut n = due.saturating_sub(p.sent);
        // A loop that fell behind by more than a second of messages skips the excess.
        let cap = (p.rate as u64).max(1);
        if n > cap {
            p.sent = due - cap;
            n = cap;
        }
        if n > 0 {
            let unix_us = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
            for _ in 0..n {
                if self.open.is_empty() {
                    break;
                }
                let i = self.open[p.cursor % self.open.len()];
                p.cursor = p.cursor.wrapping_add(1);
                let c = &mut self.slab.conns[i as usize];
                if c.outbound() > PUSH_QUEUE_LIMIT {
                    self.counters.push_dropped += 1;
                    continue;
                }
                Probe { channel: 0, seq: c.seq, sent_unix_us: unix_us, sender: c.sender }.write_header(&mut p.payload);
                c.seq += 1;
                if c.pending.capacity() == 0 {
                    c.pending = self.bufs.take();
                }
                let mark = c.pending.len();
                if self.raw {
                    c.pending.extend_from_slice(&p.payload);
                } else {
                    let ws = c.ws.as_mut().expect("open connections have a codec");
                    let _ = ws.encoder.message(&mut c.pending, MessageKind::Binary, &p.payload, &mut NoMask);
                }
                tls::seal(c, mark, &mut self.bufs, &mut self.counters);
                self.counters.peak_backlog = self.counters.peak_backlog.max(c.outbound() as u64);
                self.counters.messages_out += 1;
                self.sync_open(i);
                self.kick_send(i);
            }
            p.sent += n;
        }
        let next = p.base + Duration::from_secs_f64((p.sent + 1) as f64 / p.rate);
        self.push = Some(p);
        // Pushes go in batches at most once a millisecond: cheaper than a wake-up per
        // message at high rates, and the timestamp is taken when the batch is built.
        next.saturating_duration_since(now).max(Duration::from_millis(1))
    }
}
