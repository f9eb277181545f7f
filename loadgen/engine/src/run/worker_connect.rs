//! Starting connections, first and again: the linked socket → [bind] → connect
//! submission of a slot, and reconnects under the run's [`ReconnectPolicy`].
//!
//! A connection the target dropped (see `drop_conn`) keeps its slot and its identity
//! (connection index, hence its sender id and source address). Its driver decides when
//! it comes back (`Driver::freed`: once the slot is free again, every operation
//! completed and the direct descriptor closed, after a backoff with full jitter under
//! the program's policy), so a storm of drops comes back spread out, never as a retry
//! loop; this file starts the attempt when its timer fires. The time from the drop to
//! the connection being ready again is recorded as `recover`. Slots are reused in O(1):
//! the slot index is the connection's own. Connections that fail their first attempt
//! are counted as failed and not retried.

use io_uring::squeue;

use loadgen_proto::Client;

use super::super::conn::{Phase, Proto};
use super::super::ops::{self, Op};
use super::super::raw::RawStream;
use super::super::tls::TlsConn;
use super::super::{HandshakeMode, Protocol, template};
use super::{BGID, ONE, Worker};
use crate::stats::Metric;

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
        conn.draining = false;
        conn.awaiting_echo = false;
        conn.cancel_pending = false;
        conn.server_learned = false;
        // The program starts over (a reconnect keeps its attempts and time to recover).
        conn.driver.restart();
        let link = |e: squeue::Entry| e.flags(squeue::Flags::IO_LINK);
        self.io.push(link(ops::socket(self.io.slot(index), conn.tag(index, Op::Socket))));
        if !self.sources.is_empty() {
            let src = &self.sources[((global / targets) % self.sources.len() as u64) as usize];
            self.io.push(link(ops::bind_no_port(self.io.slot(index), &ONE, conn.tag(index, Op::SockOpt))));
            self.io.push(link(ops::bind(self.io.slot(index), src, conn.tag(index, Op::Bind))));
        }
        self.io.push(ops::connect(self.io.slot(index), &self.targets[target], conn.tag(index, Op::Connect)));
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
        self.io.push(ops::recv_multi(self.io.slot(index), BGID, conn.tag(index, Op::Recv)));
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
        let expanded;
        let global = self.global_index(index);
        let spec = &self.requests[self.request_index(index)];
        let request = if spec.templated {
            // Each connection its own identity: `{i}` is its number in the run,
            // `{token}` its token, `{since}` the highest number it has received.
            let token = template::token_of(self.setup.config.tokens.as_deref(), global);
            let ids = template::Ids { i: global, token, since: self.conns[index as usize].push_rx.highest() };
            let mut r = spec.upgrade.clone();
            r.path = template::expand_path(&r.path, ids);
            for (_, value) in &mut r.headers {
                *value = template::expand(value, ids);
            }
            expanded = r;
            &expanded
        } else {
            &spec.upgrade
        };
        let conn = &mut self.conns[index as usize];
        match Client::new(self.clients.config().clone(), request, now / 1_000, &mut self.rng) {
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
        // (A stalled or slow upgrade sends only TLS's own records here.)
        self.send_more(index);
        if let HandshakeMode::Slow { .. } = self.handshake_of(index) {
            self.slow_byte(index, now);
        }
    }

    /// A slow upgrade's next byte (slowloris): one byte of the request now, if no send
    /// is in flight (on wss://, once TLS lets data through), and the timer for the
    /// next while bytes remain.
    pub(super) fn slow_byte(&mut self, index: u32, now: u64) {
        let HandshakeMode::Slow { interval } = self.handshake_of(index) else { return };
        if !self.upgrade_attack(index) {
            return;
        }
        self.send_limited(index, 1);
        let conn = &self.conns[index as usize];
        let more = matches!(&conn.proto, Proto::Live(c) if !c.pending_transmit().is_empty());
        if more && conn.phase == Phase::Handshaking {
            self.timers.insert(now + interval.as_nanos() as u64, conn.tag(index, Op::SlowTimer).encode());
        }
    }

    /// The server closed (FIN or reset) a stalled or slow upgrade before answering it:
    /// counted as `handshake_closed_by_server`, timed from the intended start
    /// (`handshake_closed`), and the attempt fails.
    pub(super) fn handshake_closed_by_server(&mut self, index: u32, now: u64) {
        let conn = &self.conns[index as usize];
        self.rec.record_since(Metric::HandshakeClosed, conn.intended_ns, now);
        self.rec.error("handshake_closed_by_server");
        self.rec.connection_failed();
        self.shutdown(index);
    }

    /// A reconnect's time has come.
    pub(super) fn reconnect_due(&mut self, index: u32, now: u64) {
        let conn = &self.conns[index as usize];
        if conn.phase != Phase::Free || !conn.driver.is_reconnecting() || self.closing_all {
            return;
        }
        self.rec.reconnect_attempted();
        let intended = conn.intended_ns;
        self.start_connection(index, intended, now);
    }
}
