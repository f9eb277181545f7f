//! The end of a worker's connections: the paced ramp-down (a close handshake per open
//! connection at `RunConfig::close_rate`, bounded by the close timeout), shutting a
//! socket down, freeing a slot once its last operation completed, and failed connects.
//!
//! Connections still connecting or upgrading when the end comes are shut down at
//! once and counted as `unfinished_at_end`: they were neither established nor failed.

use io_uring::squeue;

use super::super::conn::{Phase, Proto};
use super::super::ops::{self, Op};
use super::Worker;

impl Worker<'_> {
    /// The end of the hold (or Ctrl-C): no new work; unfinished connections are shut
    /// down now, open ones close at the close rate from here on.
    pub(super) fn begin_close(&mut self, now: u64) {
        self.closing_all = true;
        self.close_start_ns = now;
        self.sample_memory();
        self.close_cursor = 0;
        self.pool.clear(&mut self.conns);
        let ramp_down_ns = (f64::from(self.next_conn) / self.close_rate_per_worker() * 1e9).min(3_600e9) as u64;
        self.hard_stop_ns = now + ramp_down_ns + self.setup.config.close_timeout.as_nanos() as u64 + 2_000_000_000;
        let open = self.conns[..self.next_conn as usize].iter().filter(|c| c.phase == Phase::Open).count();
        self.rec.open_at_end(open as u64);
        for conn in &mut self.conns[..self.next_conn as usize] {
            if conn.driver.is_reconnecting() && conn.phase == Phase::Free {
                // Dropped and waiting for its next attempt when the run ended: its
                // push streams end here.
                self.rec.error("reconnect_pending_at_end");
                let (_, lost) = conn.take_stream_verdict(false);
                self.rec.stream_ended(0, lost);
            }
        }
        for index in 0..self.next_conn {
            if matches!(self.conns[index as usize].phase, Phase::Connecting | Phase::Handshaking) {
                // Neither established nor failed: the run ended first.
                self.rec.error("unfinished_at_end");
                self.shutdown(index);
            }
        }
    }

    /// Protocol memory of the connections held right now (before any closes).
    fn sample_memory(&mut self) {
        let mut m = super::MemorySample::default();
        for conn in &self.conns[..self.next_conn as usize] {
            if let Some(tls) = conn.tls.as_ref().filter(|_| conn.phase == Phase::Open) {
                m.tls_sessions += 1;
                m.tls_bytes += tls.memory_bytes() as u64;
            }
            if let Proto::Live(client) = &conn.proto {
                let (contexts, bytes) = client.deflate_memory();
                m.deflate_contexts += u64::from(contexts);
                m.deflate_bytes += bytes as u64;
            }
        }
        let (contexts, bytes) = self.clients.deflate_memory();
        m.deflate_contexts += contexts;
        m.deflate_bytes += bytes;
        self.memory = m;
    }

    /// Closes the open connections whose turn in the ramp-down has come.
    pub(super) fn close_due(&mut self, now: u64) {
        let elapsed_s = now.saturating_sub(self.close_start_ns) as f64 / 1e9;
        let due = ((elapsed_s * self.close_rate_per_worker()) as u64 + 1).min(u64::from(self.next_conn)) as u32;
        while self.close_cursor < due {
            let index = self.close_cursor;
            self.close_cursor += 1;
            self.close_one(index, 1000, now);
        }
    }

    /// Whether connections are still waiting for their turn to close.
    pub(super) fn closes_pending(&self) -> bool {
        self.closing_all && self.close_cursor < self.next_conn
    }

    /// When the next connection's turn to close comes.
    pub(super) fn next_close_ns(&self) -> Option<u64> {
        if !self.closes_pending() {
            return None;
        }
        Some(self.close_start_ns + (f64::from(self.close_cursor) / self.close_rate_per_worker() * 1e9) as u64)
    }

    /// This worker's share of the close rate (connections per second).
    fn close_rate_per_worker(&self) -> f64 {
        (self.setup.config.close_rate / self.setup.config.workers as f64).max(1e-3)
    }

    /// loadgen closes open connection `index` (WebSocket: with `code`), unless its
    /// close is already under way.
    pub(super) fn close_one(&mut self, index: u32, code: u16, now: u64) {
        let conn = &mut self.conns[index as usize];
        if conn.phase != Phase::Open || conn.closing_by_us {
            return;
        }
        conn.closing_by_us = true;
        if conn.driver.reading_paused() {
            // A program that stopped reading reads again: the close needs the reply.
            self.resume_reading(index);
        }
        let conn = &mut self.conns[index as usize];
        if matches!(conn.proto, Proto::Raw(_)) && conn.seq > conn.echo_rx.unique() {
            // Raw TCP has no close handshake: half-close and read the echoes still in
            // flight until the server's FIN, so they are not cut off (counted
            // unanswered) by loadgen's own close. Bounded by the close timeout. A send
            // still in flight goes first: its completion half-closes (`send_drained`),
            // since io_uring does not order a shutdown after it.
            conn.draining = true;
            if !conn.send_inflight {
                self.io.push(ops::shutdown_write(self.io.slot(index), conn.tag(index, Op::Drain)));
            }
            let deadline = now + self.setup.config.close_timeout.as_nanos() as u64;
            conn.deadline_timer = Some(self.timers.insert(deadline, conn.tag(index, Op::Close).encode()));
            return;
        }
        if matches!(conn.proto, Proto::Http(_)) && conn.awaiting_echo {
            // A poll in flight: its response ends the connection (http_response_done),
            // so loadgen's own close does not cut it off (counted unanswered). Bounded
            // by the close timeout (it replaces the response deadline).
            conn.draining = true;
            let deadline = now + self.setup.config.close_timeout.as_nanos() as u64;
            if let Some(old) = conn.deadline_timer.take() {
                self.timers.cancel(old);
            }
            conn.deadline_timer = Some(self.timers.insert(deadline, conn.tag(index, Op::Close).encode()));
            return;
        }
        if matches!(conn.proto, Proto::Raw(_) | Proto::Http(_)) {
            // No close handshake in HTTP (or nothing in flight): shut down and close.
            self.shutdown(index);
            return;
        }
        let tag = conn.tag(index, Op::Close).encode();
        let Some(client) = conn.client(&mut self.clients) else { return };
        if client.close(code, "", now / 1_000, &mut self.rng).is_ok() {
            if let Some(deadline) = client.poll_timeout() {
                conn.deadline_timer = Some(self.timers.insert(deadline * 1_000, tag));
            }
            self.send_more(index);
            self.conns[index as usize].park(&mut self.clients);
        } else {
            self.shutdown(index);
        }
    }

    /// A send completed on a raw-TCP connection whose drain waited for it: the
    /// half-close follows now.
    pub(super) fn send_drained(&mut self, index: u32) {
        let conn = &self.conns[index as usize];
        if conn.draining && conn.phase == Phase::Open && matches!(conn.proto, Proto::Raw(_)) && !conn.send_inflight {
            self.io.push(ops::shutdown_write(self.io.slot(index), conn.tag(index, Op::Drain)));
        }
    }

    /// An open connection ends without loadgen having closed it (`cause`: `reset`,
    /// `server_close`, `eof`, a protocol or TLS error kind): counted as dropped, then
    /// shut down. Connections not open, or whose close loadgen started, are only shut
    /// down.
    pub(super) fn drop_conn(&mut self, index: u32, cause: &'static str) {
        let conn = &self.conns[index as usize];
        if conn.phase == Phase::Open && !conn.closing_by_us {
            self.rec.connection_dropped(cause);
            if !self.closing_all {
                let now = self.setup.clock.now_ns();
                let conn = &mut self.conns[index as usize];
                conn.driver.dropped(&self.programs[usize::from(conn.driver.program())], now);
            }
        }
        self.shutdown(index);
    }

    /// Shuts the socket down and closes its slot; the connection is freed when every
    /// operation on it has completed.
    pub(super) fn shutdown(&mut self, index: u32) {
        if matches!(self.conns[index as usize].phase, Phase::Free | Phase::Closing) {
            return;
        }
        self.drop_http_backlog(index);
        if self.conns[index as usize].phase == Phase::Open {
            self.rec.connection_closed();
            self.pool.leave(&mut self.conns, index);
        }
        let conn = &mut self.conns[index as usize];
        // A hard link: the close runs even when the shutdown fails (the peer reset
        // first), so the slot is always emptied.
        let link = |e: squeue::Entry| e.flags(squeue::Flags::IO_HARDLINK);
        // wss:// and https://: close_notify before the FIN, best effort: only when nothing
        // else is being written, and not linked, so a peer that stopped reading cannot
        // hold the shutdown back (the send then fails and is not counted).
        if let Some(tls) = conn.tls.as_mut()
            && tls.session.is_handshake_complete()
            && !conn.send_inflight
        {
            let mut buf = self.send_pool.take();
            if tls.session.close(&mut buf).is_ok() && !buf.is_empty() {
                conn.sending = buf;
                let sqe = conn.submit_send(index, self.io.slot(index));
                self.io.push(sqe);
            } else {
                self.send_pool.put(buf);
            }
        }
        conn.phase = Phase::Closing;
        conn.closing_ops = 2;
        self.io.push(link(ops::shutdown(self.io.slot(index), conn.tag(index, Op::Shutdown))));
        self.io.push(ops::close(self.io.slot(index), conn.tag(index, Op::Close)));
    }

    pub(super) fn maybe_free(&mut self, index: u32) {
        let conn = &mut self.conns[index as usize];
        if conn.phase == Phase::Closing && conn.closing_ops == 0 && !conn.recv_armed && !conn.send_inflight {
            conn.phase = Phase::Free;
            // A connection coming back keeps what it has seen of its push streams.
            let coming_back = conn.driver.is_reconnecting() && !self.closing_all;
            let (unanswered, lost) = conn.take_stream_verdict(coming_back);
            self.rec.stream_ended(unanswered, lost);
            conn.release(&mut self.clients);
            if let Some(timer) = conn.deadline_timer.take() {
                self.timers.cancel(timer);
            }
            conn.generation = conn.generation.wrapping_add(1);
            self.live -= 1;
            let now = self.setup.clock.now_ns();
            self.driver_freed(index, now);
            let conn = &mut self.conns[index as usize];
            if coming_back && !conn.driver.is_reconnecting() {
                // It gave up: its push streams end here.
                let (_, lost) = conn.take_stream_verdict(false);
                self.rec.stream_ended(0, lost);
            }
        }
    }

    pub(super) fn connect_failed(&mut self, index: u32, op: Op, result: i32) {
        let conn = &mut self.conns[index as usize];
        if conn.phase != Phase::Connecting {
            return;
        }
        // The link cancels what follows the failed step; count the cause once.
        if result != -libc::ECANCELED {
            self.rec.connection_failed();
            self.rec.error(match (op, -result) {
                (_, libc::ECONNREFUSED) => "connect_refused",
                (_, libc::ETIMEDOUT) => "connect_timeout",
                (_, libc::EADDRNOTAVAIL) | (_, libc::EADDRINUSE) => "no_source_port",
                (Op::Socket, _) => "socket_error",
                (Op::Bind, _) | (Op::SockOpt, _) => "bind_error",
                _ => "connect_error",
            });
        }
        if op == Op::Connect || result != -libc::ECANCELED {
            // The slot may hold a socket: close it (a close of an empty slot fails
            // harmlessly with EBADF).
            conn.phase = Phase::Closing;
            conn.closing_ops = 1;
            self.io.push(ops::close(self.io.slot(index), conn.tag(index, Op::Close)));
        }
    }
}
