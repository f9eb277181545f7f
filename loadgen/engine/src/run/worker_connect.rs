//! Starting connections, first and again: the linked socket → [bind] → connect
//! submission of a slot, and reconnects under the run's [`ReconnectPolicy`].
//!
//! A connection the target dropped (see `drop_conn`) keeps its slot and its identity
//! (connection index, hence its sender id and source address): once the slot is free
//! again (every operation completed, the direct descriptor closed), its next attempt is
//! scheduled after a backoff with full jitter (uniform in [0, min(cap, initial × 2^n)]),
//! so a storm of drops comes back spread out, never as a retry loop. A failed attempt
//! schedules the next one the same way until the policy's limit. The time from the
//! drop to the connection being ready again is recorded as `recover`. Slots are reused
//! in O(1): the slot index is the connection's own. Connections that fail their first
//! attempt are counted as failed and not retried.

use io_uring::squeue;
use rand_core::RngCore;

use loadgen_proto::Client;

use super::super::conn::{Phase, Proto};
use super::super::ops::{self, Op};
use super::super::raw::RawStream;
use super::super::tls::TlsConn;
use super::super::{Protocol, ReconnectPolicy};
use super::{BGID, ONE, Worker};
use crate::stats::Metric;

impl ReconnectPolicy {
    /// Delay before attempt `n` (0: the first after the drop): full jitter over
    /// `min(max, initial × 2^n)`, from `random`.
    pub fn delay_ns(&self, n: u32, random: u64) -> u64 {
        let initial = self.initial.as_nanos() as u64;
        let ceiling = initial.saturating_mul(1u64 << n.min(40)).min(self.max.as_nanos() as u64).max(1);
        random % (ceiling + 1)
    }
}

impl Worker<'_> {
    /// Starts connection `index` (a free slot) at `now`, due at `intended`.
    pub(super) fn start_connection(&mut self, index: u32, intended: u64, now: u64) {
        self.rec.connection_attempted();
        self.rec.record_since(Metric::ConnectLag, intended, now);
        // Global connection number → target and source address (round robin).
        let global = self.global_index(index);
        let targets = self.targets.len() as u64;
        let target = (global % targets) as usize;
        let conn = &mut self.conns[index as usize];
        self.live += 1;
        conn.phase = Phase::Connecting;
        conn.target = target as u16;
        conn.intended_ns = intended;
        conn.closing_by_us = false;
        conn.reply_timer = false;
        conn.draining = false;
        conn.awaiting_echo = false;
        conn.ready = false;
        conn.on_open_step = 0;
        let link = |e: squeue::Entry| e.flags(squeue::Flags::IO_LINK);
        self.pending.push(link(ops::socket(index % self.per_ring, conn.tag(index, Op::Socket))));
        if !self.sources.is_empty() {
            let src = &self.sources[((global / targets) % self.sources.len() as u64) as usize];
            self.pending.push(link(ops::bind_no_port(index % self.per_ring, &ONE, conn.tag(index, Op::SockOpt))));
            self.pending.push(link(ops::bind(index % self.per_ring, src, conn.tag(index, Op::Bind))));
        }
        self.pending.push(ops::connect(index % self.per_ring, &self.targets[target], conn.tag(index, Op::Connect)));
    }

    /// The TCP connection of `index` is established: arm its receive and start what
    /// the protocol speaks first (raw TCP is open at once; TLS, the upgrade or HTTP).
    pub(super) fn connected(&mut self, index: u32, now: u64) {
        let conn = &mut self.conns[index as usize];
        if conn.phase != Phase::Connecting {
            // The end came first (`unfinished_at_end`): its shutdown is under way.
            return;
        }
        self.rec.record_since(Metric::Connect, conn.intended_ns, now);
        conn.recv_armed = true;
        self.pending.push(ops::recv_multi(index % self.per_ring, BGID, conn.tag(index, Op::Recv)));
        if self.setup.config.protocol == Protocol::RawTcp {
            conn.proto = Proto::Raw(Box::new(RawStream::new(self.message.len())));
            self.open_now(index, now);
            return;
        }
        let target = usize::from(conn.target);
        if let (Some(config), Some(name)) = (&self.tls_config, &self.server_names[target]) {
            match TlsConn::start(config, name) {
                Ok(tls) => conn.tls = Some(tls),
                Err(kind) => {
                    self.rec.error(kind.name());
                    self.rec.connection_failed();
                    self.shutdown(index);
                    return;
                }
            }
        }
        if self.setup.config.protocol == Protocol::Http1 {
            self.http_connected(index, now);
            return;
        }
        match Client::new(self.clients.config().clone(), &self.requests[target], now / 1_000, &mut self.rng) {
            Ok(client) => conn.proto = Proto::Live(self.clients.adopt(client)),
            Err(_) => {
                self.rec.error("invalid_request");
                self.rec.connection_failed();
                self.shutdown(index);
                return;
            }
        }
        conn.phase = Phase::Handshaking;
        if let Some(deadline) = conn.client(&mut self.clients).and_then(|c| c.poll_timeout()) {
            conn.deadline_timer = Some(self.timers.insert(deadline * 1_000, conn.tag(index, Op::Close).encode()));
        }
        self.send_more(index);
    }

    /// A connection was dropped: it comes back if the run has a reconnect policy (and
    /// the end has not come). Called before the slot is shut down.
    pub(super) fn plan_reconnect(&mut self, index: u32) {
        let protocol = self.setup.config.protocol;
        if self.setup.config.reconnect.is_none() || self.closing_all || protocol == Protocol::Http1 {
            return;
        }
        let now = self.setup.clock.now_ns();
        let conn = &mut self.conns[index as usize];
        if !conn.reconnecting {
            conn.reconnecting = true;
            conn.recover_from_ns = now;
            conn.attempt = 0;
        }
    }

    /// The slot of a reconnecting connection is free: schedule its next attempt (or
    /// give up at the policy's limit).
    pub(super) fn schedule_reconnect(&mut self, index: u32) {
        let Some(policy) = self.setup.config.reconnect else { return };
        let conn = &self.conns[index as usize];
        if !conn.reconnecting || self.closing_all {
            return;
        }
        let attempt = u32::from(conn.attempt);
        if policy.limit.is_some_and(|limit| attempt >= limit) {
            self.rec.reconnect_gave_up();
            self.conns[index as usize].reconnecting = false;
            return;
        }
        let delay = policy.delay_ns(attempt, self.rng.next_u64());
        let now = self.setup.clock.now_ns();
        let conn = &mut self.conns[index as usize];
        conn.attempt = conn.attempt.saturating_add(1);
        conn.intended_ns = now + delay;
        self.timers.insert(conn.intended_ns, conn.tag(index, Op::ReconnectTimer).encode());
    }

    /// A reconnect's time has come.
    pub(super) fn reconnect_due(&mut self, index: u32, now: u64) {
        let conn = &self.conns[index as usize];
        if conn.phase != Phase::Free || !conn.reconnecting || self.closing_all {
            return;
        }
        self.rec.reconnect_attempted();
        let intended = conn.intended_ns;
        self.start_connection(index, intended, now);
    }

    /// A connection became ready: if it was coming back from a drop, it has recovered.
    pub(super) fn recovered(&mut self, index: u32, now: u64) {
        let conn = &mut self.conns[index as usize];
        if conn.reconnecting {
            conn.reconnecting = false;
            self.rec.record_since(Metric::Recover, conn.recover_from_ns, now);
            self.rec.reconnected();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::ReconnectPolicy;

    #[test]
    fn backoff_has_full_jitter_under_a_doubling_capped_ceiling() {
        let p = ReconnectPolicy { initial: Duration::from_millis(100), max: Duration::from_secs(2), limit: None };
        assert_eq!(p.delay_ns(0, u64::MAX), u64::MAX % 100_000_001);
        for (n, ceiling_ms) in [(0u32, 100u64), (1, 200), (3, 800), (4, 1_600), (5, 2_000), (60, 2_000)] {
            let ceiling = ceiling_ms * 1_000_000;
            assert_eq!(p.delay_ns(n, ceiling), ceiling, "attempt {n}: the ceiling itself is reachable");
            assert_eq!(p.delay_ns(n, ceiling + 1), 0, "attempt {n}: wraps within [0, ceiling]");
            assert!((0..1000u64).all(|r| p.delay_ns(n, r * 7_919_000_003) <= ceiling));
        }
    }
}
