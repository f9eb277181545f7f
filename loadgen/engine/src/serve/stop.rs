//! The end of a server thread: at a stop (asked, or the configured duration) the
//! accept is cancelled, open WebSocket connections get close 1001, raw ones flush and
//! shut down, connections still upgrading are dropped; after the grace period whatever
//! is left is aborted. Also the close 1001 itself, which the fault `close-after` /
//! `close-all-at` sends too.
//!
//! What it does not do: decide when to stop (the loop in `worker` does) or wait.

use super::{NoMask, Op, Phase, Tag, Worker, ops, tls};

impl Worker {
    /// Stop: cancel the accept (the listener closes when it ends), send close 1001 to
    /// every open WebSocket connection, drop connections still upgrading; raw
    /// connections flush what is queued, then shut down.
    pub(super) fn begin_stop(&mut self, now: u64) {
        self.stop_at = Some(now);
        if self.accept_armed {
            self.io.push(ops::cancel(Tag::global(Op::Accept)));
        } else {
            self.listener = None;
        }
        for i in 0..self.slab.conns.len() as u32 {
            let c = &mut self.slab.conns[i as usize];
            match c.phase {
                Phase::Upgrading | Phase::Unanswered => self.abort(i),
                Phase::Open if self.raw => {
                    c.phase = Phase::Draining;
                    self.sync_open(i);
                    self.advance_close(i);
                }
                Phase::Open => self.going_away(i),
                Phase::Free | Phase::Closing | Phase::Draining => {}
            }
        }
    }

    /// Sends close 1001 on an open WebSocket connection, which then waits for the
    /// client's close (`Closing`).
    pub(super) fn going_away(&mut self, i: u32) {
        let c = &mut self.slab.conns[i as usize];
        if c.pending.capacity() == 0 {
            c.pending = self.bufs.take();
        }
        let (ws, mark) = (c.ws.as_mut().expect("open connections have a codec"), c.pending.len());
        let _ = ws.encoder.close(&mut c.pending, Some(loadgen_proto::close::GOING_AWAY), "", &mut NoMask);
        c.phase = Phase::Closing;
        tls::seal(c, mark, &mut self.bufs, &mut self.counters);
        self.sync_open(i);
        self.kick_send(i);
    }

    /// The grace period is over: end every remaining connection now. One still
    /// flushing its output (Draining, no shutdown yet) counts as aborted too.
    pub(super) fn force_all(&mut self) {
        self.forced = true;
        for i in 0..self.slab.conns.len() as u32 {
            let c = &self.slab.conns[i as usize];
            if c.phase != Phase::Free {
                if c.phase == Phase::Draining && !c.shutdown_sent {
                    self.counters.aborted += 1;
                }
                self.abort(i);
                self.advance_close(i);
            }
        }
    }
}
