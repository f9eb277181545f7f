//! The I/O core one thread of either role hosts (`run`'s workers and `serve`'s
//! threads): its rings, one provided-buffer ring each, the eventfd wakes that let the
//! thread sleep on ring 0 while the other rings complete, the queue of submissions
//! routed to the ring of their connection, submitting, sleeping until a deadline, and
//! reaping completions in batches.
//!
//! A thread needs several rings when its connections outnumber what one ring's
//! fixed-file table may hold (RLIMIT_NOFILE): connection `i` lives in ring
//! `i / per_ring`, slot `i % per_ring` ([`Reactor::slot`]). Entries are routed by the
//! connection index in their `user_data` (bits 32-63, see [`super::ops`]); entries of
//! no connection (index `u32::MAX`: a listener's accept, say) go to ring 0. Operation
//! code 0 is the reactor's own (the wakes); callers' operation enums start at 1, and
//! their completions are the only ones handed out.
//!
//! What it does not do: know connections, protocols or time (the caller says how long
//! to sleep), or own the memory entries point at (the caller keeps it alive until the
//! completion, as every `unsafe` push here relies on).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types};

use super::UringError;
use super::buf_ring::BufRing;
use super::ops::{pack, unpack};
use super::probe::Capabilities;
use super::ring::{Ring, RingConfig};

/// How to build a reactor.
#[derive(Clone, Copy, Debug)]
pub struct ReactorConfig {
    /// Rings (at least 1).
    pub rings: usize,
    /// Each ring (its fixed-file table holds `per_ring` slots).
    pub ring: RingConfig,
    /// Buffer group id of every ring's provided-buffer ring.
    pub bgid: u16,
    /// Provided receive buffers per ring, and their size.
    pub buffers: u16,
    /// Size of each receive buffer.
    pub buffer_size: u32,
}

/// One completion: `user_data`, result, flags.
pub type Completion = (u64, i32, u32);

/// A thread's rings and what drives them.
pub struct Reactor {
    rings: Vec<Ring>,
    /// Eventfds of rings 1.., polled by ring 0 so the thread sleeps on one ring.
    eventfds: Vec<OwnedFd>,
    /// Rings with submissions (or signalled completions) since they were last entered.
    dirty: Vec<bool>,
    per_ring: u32,
    pending: Vec<squeue::Entry>,
    /// The ring the next batch is reaped from.
    cursor: usize,
}

/// The reactor's own operation code (wakes of ring 0 by the other rings).
const WAKE: u8 = 0;

impl Reactor {
    /// Builds the rings (each with its buffer ring; rings 1.. signal an eventfd that
    /// ring 0 polls).
    pub fn new(config: ReactorConfig, caps: &Capabilities) -> Result<Self, UringError> {
        let count = config.rings.max(1);
        let mut rings = Vec::with_capacity(count);
        let mut eventfds = Vec::new();
        for r in 0..count {
            let mut ring = Ring::new(config.ring, caps)?;
            ring.add_buf_ring(BufRing::new(config.bgid, config.buffers, config.buffer_size))?;
            if r > 0 {
                // SAFETY: plain eventfd creation; the result is checked.
                let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
                if fd < 0 {
                    return Err(UringError::Io(std::io::Error::last_os_error()));
                }
                // SAFETY: a fresh fd that nothing else owns.
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                ring.register_eventfd(fd.as_raw_fd())?;
                eventfds.push(fd);
            }
            rings.push(ring);
        }
        let mut reactor = Self {
            dirty: vec![false; count],
            per_ring: config.ring.fixed_files.max(1),
            rings,
            eventfds,
            pending: Vec::with_capacity(1024),
            cursor: 0,
        };
        for r in 1..count {
            reactor.arm_wake(r);
        }
        Ok(reactor)
    }

    /// Rings.
    pub fn rings(&self) -> usize {
        self.rings.len()
    }

    /// Connections per ring.
    pub fn per_ring(&self) -> u32 {
        self.per_ring
    }

    /// The fixed slot of connection `conn` in its ring.
    pub fn slot(&self, conn: u32) -> u32 {
        conn % self.per_ring
    }

    /// The ring of connection `conn`.
    pub fn ring_of(&self, conn: u32) -> usize {
        ((conn / self.per_ring) as usize).min(self.rings.len() - 1)
    }

    /// Ring `r` (its completion queue's overflow counter, say).
    pub fn ring_mut(&mut self, r: usize) -> &mut Ring {
        &mut self.rings[r]
    }

    /// Setup flags the rings use, for reports.
    pub fn flags_used(&self) -> &'static str {
        self.rings[0].flags_used
    }

    /// The provided-buffer ring of connection `conn`'s ring.
    pub fn buffers(&self, conn: u32) -> &BufRing {
        self.rings[self.ring_of(conn)].buf_ring(0)
    }

    /// The same, to recycle a buffer or decrypt in place.
    pub fn buffers_mut(&mut self, conn: u32) -> &mut BufRing {
        let r = self.ring_of(conn);
        self.rings[r].buf_ring_mut(0)
    }

    /// Queues an entry for the ring of the connection in its `user_data`.
    pub fn push(&mut self, entry: squeue::Entry) {
        self.pending.push(entry);
    }

    /// Entries queued and not yet in a submission queue.
    pub fn queued(&self) -> usize {
        self.pending.len()
    }

    fn route(&self, user_data: u64) -> usize {
        let (conn, _, op) = unpack(user_data);
        match (op, conn) {
            (WAKE, _) | (_, u32::MAX) => 0,
            _ => self.ring_of(conn),
        }
    }

    /// Moves queued entries into their rings' submission queues, submitting a ring
    /// whose queue is full. If the kernel is busy (its completion queue needs reaping
    /// first), what is left stays queued for the next turn.
    pub fn flush(&mut self) -> std::io::Result<()> {
        let mut done = 0;
        let mut submitted_to = usize::MAX;
        while done < self.pending.len() {
            let e = &self.pending[done];
            let r = self.route(e.get_user_data());
            let ring = &mut self.rings[r];
            // SAFETY: every entry points at memory its caller keeps alive until the
            // entry's completion (module docs).
            if unsafe { ring.uring.submission().push(e) }.is_ok() {
                self.dirty[r] = true;
                done += 1;
                submitted_to = usize::MAX;
                continue;
            }
            if submitted_to == r {
                // Still full right after a submit: leave the rest for the next turn.
                break;
            }
            submitted_to = r;
            match ring.submit_and_reap() {
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::EAGAIN | libc::EINTR)) => break,
                Err(e) => {
                    self.pending.drain(..done);
                    return Err(e);
                }
            }
        }
        self.pending.drain(..done);
        Ok(())
    }

    /// Flushes, submits everywhere, then sleeps on ring 0 for at most `timeout` or until
    /// a completion on any ring (the other rings wake ring 0 through their eventfd).
    pub fn wait(&mut self, timeout: Duration) -> Result<(), UringError> {
        self.flush()?;
        for r in 1..self.rings.len() {
            if std::mem::take(&mut self.dirty[r]) {
                tolerate(self.rings[r].submit_and_reap())?;
            }
        }
        self.dirty[0] = false;
        let others_ready = self.rings[1..].iter_mut().any(|r| !r.uring.completion().is_empty());
        if timeout.is_zero() || others_ready {
            return tolerate(self.rings[0].submit_and_reap());
        }
        let ts = types::Timespec::from(timeout);
        let args = types::SubmitArgs::new().timespec(&ts);
        tolerate(self.rings[0].uring.submitter().submit_with_args(1, &args))
    }

    /// Fills `batch` with up to 256 completions of one ring (the reactor's own are
    /// handled here and left out); `false` once every ring's queue is empty.
    pub fn next_batch(&mut self, batch: &mut Vec<Completion>) -> bool {
        batch.clear();
        let mut empty_rings = 0;
        while empty_rings < self.rings.len() {
            let r = self.cursor;
            for c in self.rings[r].uring.completion().take(256) {
                batch.push((c.user_data(), c.result(), c.flags()));
            }
            if batch.is_empty() {
                self.cursor = (self.cursor + 1) % self.rings.len();
                empty_rings += 1;
                continue;
            }
            let mut i = 0;
            while i < batch.len() {
                let (data, _, flags) = batch[i];
                if unpack(data).2 == WAKE {
                    self.woken(unpack(data).0 as usize, flags);
                    batch.swap_remove(i);
                } else {
                    i += 1;
                }
            }
            if !batch.is_empty() {
                return true;
            }
        }
        false
    }

    /// Ring `r` signalled its eventfd: it has completions; reset the eventfd and keep
    /// polling it.
    fn woken(&mut self, r: usize, flags: u32) {
        let Some(fd) = self.eventfds.get(r.wrapping_sub(1)) else { return };
        self.dirty[r] = true;
        let mut counter = [0u8; 8];
        // SAFETY: reading 8 bytes into a local buffer from our own eventfd resets it.
        unsafe { libc::read(fd.as_raw_fd(), counter.as_mut_ptr().cast(), 8) };
        if !cqueue::more(flags) {
            self.arm_wake(r);
        }
    }

    /// A multishot poll of ring `r`'s eventfd, on ring 0.
    fn arm_wake(&mut self, r: usize) {
        let fd = self.eventfds[r - 1].as_raw_fd();
        let entry = opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(pack(r as u32, 0, WAKE));
        self.pending.push(entry);
    }
}

/// A wait that ended by timeout, a signal or a busy kernel is no failure.
fn tolerate(result: std::io::Result<usize>) -> Result<(), UringError> {
    match result {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)) => Ok(()),
        Err(e) => Err(UringError::Io(e)),
    }
}
