//! Push mode of a server thread: probe payloads at a total rate, round robin over the
//! thread's open connections, each with its own sequence numbers and sender id.
//! WebSocket: one binary message per probe; raw TCP: the payloads back to back on the
//! byte stream, unframed; with TLS, encrypted as they are queued.
//!
//! Message k of the schedule is due at base + k / rate ([`PushSchedule`], sans-IO, in
//! `driver::serve`) and is stamped with that *intended* publish time (Unix µs on the
//! server's clock, whose offset to the wall clock was read once), not with the time it
//! left: a client on the same host computes delivery
//! latency as arrival − stamp, and a stall of the server loop (fault `stall`, or a
//! slow host) shows up in it. Nothing is skipped: after a stall every message that fell
//! due is sent at once, or dropped *and counted* ([`crate::serve::Summary::push_dropped`])
//! when its connection has too much output queued (so a client that stops reading
//! cannot grow the server's memory); a dropped message still takes its connection's
//! next sequence number, so the client sees the gap as a loss. Batches go at most
//! once a millisecond.
//!
//! The schedule starts when the first connection opens and starts over whenever no
//! connection is open: nothing is due while there is no one to push to.

use std::time::Duration;

use loadgen_proto::MessageKind;

use super::{MAX_WAIT, NoMask, Worker, tls};
use crate::driver::serve::PushSchedule;
use crate::payload::Probe;

/// Output queued above which push messages to a connection are dropped (counted).
const PUSH_QUEUE_LIMIT: usize = 256 << 10;
/// Batches go at most this often.
const BATCH_EVERY_NS: u64 = 1_000_000;

pub(super) struct Push {
    schedule: PushSchedule,
    cursor: usize,
    payload: Vec<u8>,
}

impl Push {
    pub(super) fn new(schedule: PushSchedule, payload: Vec<u8>) -> Self {
        Self { schedule, cursor: 0, payload }
    }
}

impl Worker {
    /// Sends the pushes whose time has come (`now`: ns on the server's clock), round
    /// robin over open connections. Returns how long until the next one is due.
    pub(super) fn send_due_pushes(&mut self, now: u64) -> Duration {
        let Some(mut p) = self.push.take() else { return MAX_WAIT };
        if self.open.is_empty() {
            // Nobody to push to: the schedule starts over when someone comes.
            p.schedule.restart(now);
            self.push = Some(p);
            return MAX_WAIT;
        }
        while !self.open.is_empty() {
            let Some(intended_ns) = p.schedule.next_due(now) else { break };
            let stamp = self.clock.unix_us(intended_ns);
            let i = self.open[p.cursor % self.open.len()];
            p.cursor = p.cursor.wrapping_add(1);
            let c = &mut self.slab.conns[i as usize];
            let seq = c.seq;
            c.seq += 1;
            if c.outbound() > PUSH_QUEUE_LIMIT {
                self.counters.push_dropped += 1;
                continue;
            }
            Probe { channel: 0, seq, sent_unix_us: stamp, sender: c.sender }.write_header(&mut p.payload);
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
        let next = p.schedule.next_deadline();
        self.push = Some(p);
        // Pushes go in batches at most once a millisecond: cheaper than a wake-up per
        // message at high rates (each message keeps its own intended stamp).
        Duration::from_nanos(next.saturating_sub(now).max(BATCH_EVERY_NS))
    }
}
