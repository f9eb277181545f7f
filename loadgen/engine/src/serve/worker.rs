//! One server thread: its listener, its ring (direct descriptors, one provided-buffer
//! ring), its connections, and the loop that drives them. No locks and no shared
//! atomics on the hot path (the stop flag is read once per loop turn; the open-count
//! atomics change once per connection).
//!
//! Each turn: start stopping if asked, carry out what the thread's schedule and the
//! connections' timers hold (the server-side programs of `driver::serve`, on the same
//! timer wheel and clock as the client; a stall sleeps, then the turn starts over),
//! send due pushes, publish live counters (every 20 ms at most), submit, wait for
//! completions (bounded, so the stop flag, the timers and the push schedule are
//! honoured), handle them.
//! A connection's life: accept into a fixed slot → multishot receive armed → upgrade
//! → frames → Draining (flush, shutdown, close of the slot) → slab entry freed when the
//! Close completes. Raw TCP is the same life without the upgrade (Open from the accept)
//! and with the client's EOF as its normal end; the few places that differ branch on
//! `raw`. Nothing is freed while the kernel may still use it: the in-flight Send owns
//! its buffer, and Close is only submitted once no Send or receive is armed.
//!
//! With TLS, bytes pass through the connection's session on the way in and out (see
//! `tls`); the loop itself only adds `close_notify` before a graceful shutdown.
//!
//! What it does not do: parse HTTP or frames (see `session`), TLS (see `tls`), schedule
//! pushes (see `push`), fire faults (see `faults`), stop (see `stop`), or print anything.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::Duration;

use io_uring::cqueue;

use super::conn::{BufPool, CodecPool, Phase, Slab};
use super::ops::{self, Op, Tag};
use super::session::{Ctx, NoMask};
use super::summary::{Counters, Shared, ThreadReport, errno_name, thread_cpu};
use super::{Mode, ServeConfig, ServeProtocol, pin_to_cpu, tls};
use crate::clock::Clock;
use crate::driver::serve::{PushSchedule, ServeAction, ServeProgram, ThreadSchedule};
use crate::payload::Probe;
use crate::timer_wheel::TimerWheel;
use crate::uring::UringError;
use crate::uring::probe::Capabilities;
use crate::uring::reactor::{Completion, Reactor, ReactorConfig};
use crate::uring::ring::RingConfig;

#[path = "faults.rs"]
pub(super) mod faults;
#[path = "push.rs"]
mod push;
#[path = "stop.rs"]
mod stop;

use faults::Draws;
use push::Push;

const BGID: u16 = 0;
/// Longest wait for completions, so the stop flag is seen promptly.
const MAX_WAIT: Duration = Duration::from_millis(50);
/// After a stop: how long clients get to answer our close frames.
const CLOSE_GRACE: Duration = Duration::from_millis(1000);
/// After a stop: leave even if some connections have not finished closing.
const HARD_STOP: Duration = Duration::from_millis(1600);
/// Output queued on a WebSocket connection above which its receive is paused
/// (cancelled) ...
const OUT_HIGH: usize = 4 << 20;
/// ... and below which it is re-armed.
const OUT_LOW: usize = 1 << 20;
/// The same for raw TCP, where nothing needs a whole (large) message queued at once.
pub(super) const RAW_OUT_HIGH: usize = 256 << 10;
const RAW_OUT_LOW: usize = 64 << 10;
/// How often live counters are added to the shared ones.
const PUBLISH_EVERY: Duration = Duration::from_millis(20);

/// A thread's inputs.
pub(super) struct WorkerSetup {
    pub index: usize,
    pub listener: OwnedFd,
    pub config: ServeConfig,
    pub fixed_files: u32,
    pub caps: Capabilities,
    pub shared: Arc<Shared>,
    /// The server's clock, started once for every thread (fault times count from it).
    pub clock: Clock,
    pub ready: Sender<Result<(), String>>,
}

struct Worker {
    // Dropped first: the ring's teardown cancels whatever still references the
    // buffers owned by the fields below.
    io: Reactor,
    listener: Option<OwnedFd>,
    accept_armed: bool,
    index: usize,
    config: ServeConfig,
    shared: Arc<Shared>,
    clock: Clock,
    /// When the server's `--duration` ends (ns on `clock`).
    deadline: Option<u64>,
    slab: Slab,
    bufs: BufPool,
    codecs: CodecPool,
    counters: Counters,
    cqes: Vec<Completion>,
    /// Open connections (for push round robin).
    open: Vec<u32>,
    push: Option<Push>,
    stop_at: Option<u64>,
    forced: bool,
    next_sender: u64,
    /// Raw TCP (no upgrade, no frames).
    raw: bool,
    /// Backpressure thresholds of the protocol (`OUT_HIGH`/`OUT_LOW` or the raw ones).
    out_high: usize,
    out_low: usize,
    /// Decrypted bytes of the receive being handled (TLS only; one per thread).
    tls_plain: Vec<u8>,
    /// Counters as last published to `shared` (bytes in, bytes out, receives paused).
    published: [u64; 3],
    next_publish: u64,
    /// What every connection does (the mode and `--fault`s), ...
    program: ServeProgram,
    /// ... what this thread does at its times, ...
    schedule: ThreadSchedule,
    /// ... the connections' timers (tokens: tags of timer ops), ...
    timers: TimerWheel,
    /// ... and the draws the program asks for (`drop-echo`).
    draws: Draws,
    /// Scratch: timers fired this turn, actions of a program.
    fired: Vec<u64>,
    actions: Vec<ServeAction>,
}

/// Runs one server thread to its end; reports readiness through `setup.ready` first.
pub(super) fn run(setup: WorkerSetup) -> ThreadReport {
    let ready = setup.ready.clone();
    let mut worker = match Worker::new(setup) {
        Ok(w) => w,
        Err(e) => {
            let _ = ready.send(Err(e.clone()));
            return ThreadReport { error: Some(e), ..ThreadReport::default() };
        }
    };
    let _ = ready.send(Ok(()));
    drop(ready);
    let error = worker.run_loop().err().map(|e| format!("server thread {}: {e}", worker.index));
    worker.publish();
    ThreadReport {
        counters: std::mem::take(&mut worker.counters),
        cpu: thread_cpu(),
        error,
        flags: worker.io.flags_used(),
    }
}

impl Worker {
    fn new(s: WorkerSetup) -> Result<Self, String> {
        if let Some(first) = s.config.pin_cpu {
            pin_to_cpu(first + s.index)?;
        }
        let config = ReactorConfig {
            rings: 1,
            ring: RingConfig { sq_entries: 4096, cq_entries: 32768, fixed_files: s.fixed_files },
            bgid: BGID,
            buffers: s.config.recv_buffers,
            buffer_size: s.config.recv_buffer_size,
        };
        let io = Reactor::new(config, &s.caps).map_err(|e: UringError| format!("server thread {}: {e}", s.index))?;
        let push = match s.config.mode {
            Mode::Push { rate, message_size } => {
                let mut payload = Vec::new();
                Probe { channel: 0, seq: 0, sent_unix_us: 0, sender: 0 }.encode_into(message_size, &mut payload);
                Some(Push::new(PushSchedule::new(rate, s.clock.now_ns()), payload))
            }
            _ => None,
        };
        let raw = s.config.protocol == ServeProtocol::RawTcp;
        let (out_high, out_low) = if raw { (RAW_OUT_HIGH, RAW_OUT_LOW) } else { (OUT_HIGH, OUT_LOW) };
        let (program, schedule) = faults::compile(s.config.mode, &s.config.faults);
        let now = s.clock.now_ns();
        let mut w = Worker {
            io,
            accept_armed: true,
            index: s.index,
            deadline: s.config.duration.map(|d| d.as_nanos() as u64),
            clock: s.clock,
            bufs: BufPool::new(256 << 10, 4096),
            codecs: CodecPool::new(s.config.max_message_size, 64 << 10),
            config: s.config,
            shared: s.shared,
            slab: Slab::default(),
            counters: Counters::default(),
            cqes: Vec::with_capacity(256),
            open: Vec::new(),
            push,
            stop_at: None,
            forced: false,
            next_sender: 0,
            listener: None,
            raw,
            out_high,
            out_low,
            tls_plain: Vec::new(),
            published: [0; 3],
            next_publish: now,
            program,
            schedule,
            timers: TimerWheel::new(100_000, 4096, now),
            draws: Draws::new(s.index as u64),
            fired: Vec::new(),
            actions: Vec::new(),
        };
        w.io.push(ops::accept_multi(s.listener.as_raw_fd()));
        w.listener = Some(s.listener);
        w.io.wait(Duration::ZERO).map_err(|e| format!("server thread {}: {e}", w.index))?;
        Ok(w)
    }

    fn run_loop(&mut self) -> Result<(), UringError> {
        loop {
            let now = self.clock.now_ns();
            let asked = self.shared.stop.load(std::sync::atomic::Ordering::Relaxed);
            if self.stop_at.is_none() && (asked || self.deadline.is_some_and(|d| now >= d)) {
                self.begin_stop(now);
            }
            let mut wait = MAX_WAIT;
            if let Some(at) = self.stop_at {
                let waited = Duration::from_nanos(now.saturating_sub(at));
                if !self.forced && waited >= CLOSE_GRACE {
                    self.force_all();
                }
                if (self.slab.live() == 0 && !self.accept_armed) || waited >= HARD_STOP {
                    return Ok(());
                }
            } else {
                match self.run_timers(now) {
                    Some(next) => wait = wait.min(next),
                    None => continue,
                }
                if self.push.is_some() {
                    wait = wait.min(self.send_due_pushes(now));
                }
                if let Some(d) = self.deadline {
                    wait = wait.min(Duration::from_nanos(d.saturating_sub(now)));
                }
            }
            if now >= self.next_publish {
                self.publish();
                self.next_publish = now + PUBLISH_EVERY.as_nanos() as u64;
            }
            self.submit_and_wait(wait)?;
            self.reap();
        }
    }

    /// Adds what was counted since the last publication to the shared live counters.
    fn publish(&mut self) {
        let c = &self.counters;
        let now = [c.bytes_in, c.bytes_out, c.recv_paused];
        let [a, b, p] = [0, 1, 2].map(|k| now[k] - self.published[k]);
        self.shared.publish(a, b, p);
        self.published = now;
    }

    fn submit_and_wait(&mut self, wait: Duration) -> Result<(), UringError> {
        self.io.wait(wait.max(Duration::from_micros(10)))
    }

    fn reap(&mut self) {
        let mut cqes = std::mem::take(&mut self.cqes);
        while self.io.next_batch(&mut cqes) {
            for &(data, res, flags) in &cqes {
                let Some(tag) = Tag::decode(data) else { continue };
                match tag.op {
                    Op::Accept => self.on_accept(res, flags),
                    Op::Recv => self.on_recv(tag, res, flags),
                    Op::Send => self.on_send(tag, res),
                    Op::Shutdown => self.on_shutdown(tag),
                    Op::Close => self.on_close(tag),
                    Op::SockOpt => self.on_reset_sockopt(tag, res),
                    Op::Cancel | Op::CloseOrphan | Op::CloseTimer | Op::ResetTimer | Op::GraceTimer => {}
                }
            }
        }
        self.cqes = cqes;
    }

    fn tag(&self, i: u32, op: Op) -> Tag {
        Tag { conn: i, generation: self.slab.conns[i as usize].generation, op }
    }

    fn on_accept(&mut self, res: i32, flags: u32) {
        if !cqueue::more(flags) {
            self.accept_armed = false;
        }
        let mut rearm = true;
        if res >= 0 {
            let slot = res as u32;
            if self.stop_at.is_some() {
                self.io.push(ops::close(slot, Tag::global(Op::CloseOrphan)));
            } else {
                let plain_raw = self.raw && self.config.tls.is_none();
                let i = self.slab.alloc(slot, if plain_raw { Phase::Open } else { Phase::Upgrading });
                self.counters.accepted += 1;
                self.shared.opened();
                self.slab.conns[i as usize].sender = ((self.index as u64) << 40) | self.next_sender;
                self.next_sender += 1;
                self.sync_open(i);
                if tls::attach(&mut self.slab.conns[i as usize], self.config.tls.as_deref(), &mut self.counters) {
                    self.arm_recv(i);
                } else {
                    self.abort(i);
                }
            }
        } else if !(res == -libc::ECANCELED && self.stop_at.is_some()) {
            *self.counters.accept_errors.entry(errno_name(-res)).or_default() += 1;
            if res == -libc::ENFILE {
                self.shared.accept_table_full.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            // The listener itself is unusable: do not spin re-arming it.
            rearm = !matches!(-res, libc::EINVAL | libc::EBADF | libc::ENOTSOCK | libc::EOPNOTSUPP);
        }
        if !self.accept_armed {
            match (&self.listener, self.stop_at) {
                (Some(l), None) if rearm => {
                    self.io.push(ops::accept_multi(l.as_raw_fd()));
                    self.accept_armed = true;
                }
                _ => self.listener = None,
            }
        }
    }

    fn arm_recv(&mut self, i: u32) {
        let tag = self.tag(i, Op::Recv);
        let c = &mut self.slab.conns[i as usize];
        c.recv_armed = true;
        self.io.push(ops::recv_multi(c.slot, BGID, tag));
    }

    fn on_recv(&mut self, tag: Tag, res: i32, flags: u32) {
        let bid = cqueue::buffer_select(flags);
        if self.slab.get(tag.conn, tag.generation).is_none() {
            if let Some(bid) = bid {
                self.io.buffers_mut(0).recycle(bid);
            }
            return;
        }
        let i = tag.conn;
        let more = cqueue::more(flags);
        if !more {
            self.slab.conns[i as usize].recv_armed = false;
        }
        if res > 0 {
            self.counters.bytes_in += res as u64;
            let bid = bid.expect("a receive with data names its buffer");
            {
                let data = self.io.buffers(0).buffer(bid, res as usize);
                let mut ctx = Ctx {
                    protocol: self.config.protocol,
                    program: &self.program,
                    draws: &mut self.draws,
                    bufs: &mut self.bufs,
                    codecs: &mut self.codecs,
                    counters: &mut self.counters,
                    max_message_size: self.config.max_message_size,
                    decoder_keep: 64 << 10,
                };
                tls::on_bytes(&mut self.slab.conns[i as usize], data, &mut ctx, &mut self.tls_plain);
            }
            self.io.buffers_mut(0).recycle(bid);
            self.sync_open(i);
            self.kick_send(i);
            self.check_backpressure(i);
        } else if res == 0 {
            // The client closed its side (EOF): the normal end of a raw connection (what
            // is queued is still sent), an abort for WebSocket (no close frame came).
            let c = &mut self.slab.conns[i as usize];
            if c.phase != Phase::Draining {
                let open = c.phase == Phase::Open;
                c.phase = Phase::Draining;
                if self.raw && open {
                    self.counters.closes_in += 1;
                } else {
                    self.counters.aborted += 1;
                }
                self.sync_open(i);
            }
        } else if res == -libc::ENOBUFS {
            // The buffer ring ran dry: buffers are recycled as their completions are
            // handled (all of this batch's before the re-arm below is submitted).
            if let Some(bid) = bid {
                self.io.buffers_mut(0).recycle(bid);
            }
            self.counters.enobufs += 1;
        } else if res != -libc::ECANCELED {
            self.abort(i);
        }
        let c = &self.slab.conns[i as usize];
        if !c.recv_armed && c.wants_read() && !c.recv_paused {
            self.arm_recv(i);
        }
        self.advance_close(i);
    }

    /// Keeps the list of open connections (push targets) in step with phases.
    fn sync_open(&mut self, i: u32) {
        let c = &mut self.slab.conns[i as usize];
        let listed = c.open_pos != u32::MAX;
        if c.phase == Phase::Open && !listed {
            c.open_pos = self.open.len() as u32;
            self.open.push(i);
            self.program_opened(i);
        } else if c.phase != Phase::Open && listed {
            let pos = c.open_pos as usize;
            c.open_pos = u32::MAX;
            self.open.swap_remove(pos);
            if let Some(&moved) = self.open.get(pos) {
                self.slab.conns[moved as usize].open_pos = pos as u32;
            }
        }
    }

    fn kick_send(&mut self, i: u32) {
        let c = &mut self.slab.conns[i as usize];
        if c.send_inflight || c.pending.is_empty() || c.shutdown_sent {
            return;
        }
        // `inflight` is empty here; the swap hands its capacity to `pending`.
        std::mem::swap(&mut c.inflight, &mut c.pending);
        c.inflight_pos = 0;
        self.submit_send(i);
    }

    fn submit_send(&mut self, i: u32) {
        let tag = self.tag(i, Op::Send);
        let c = &mut self.slab.conns[i as usize];
        let rest = &c.inflight[c.inflight_pos..];
        let len = rest.len().min(u32::MAX as usize) as u32;
        self.io.push(ops::send(c.slot, rest.as_ptr(), len, tag));
        c.send_inflight = true;
    }

    fn on_send(&mut self, tag: Tag, res: i32) {
        let Some(c) = self.slab.get(tag.conn, tag.generation) else { return };
        let i = tag.conn;
        c.send_inflight = false;
        if res > 0 {
            self.counters.bytes_out += res as u64;
            c.inflight_pos += res as usize;
            if c.inflight_pos < c.inflight.len() && !c.shutdown_sent {
                self.submit_send(i);
                return;
            }
            c.inflight.clear();
            c.inflight_pos = 0;
            if c.pending.is_empty() {
                self.bufs.put(std::mem::take(&mut c.inflight));
                self.bufs.put(std::mem::take(&mut c.pending));
            } else {
                self.kick_send(i);
            }
        } else {
            c.inflight.clear();
            c.inflight_pos = 0;
            self.abort(i);
        }
        let c = &mut self.slab.conns[i as usize];
        if c.recv_paused && c.outbound() < self.out_low {
            c.recv_paused = false;
            if !c.recv_armed && c.wants_read() {
                self.arm_recv(i);
            }
        }
        self.advance_close(i);
    }

    /// Pauses reading from a client that does not read what it is sent: an armed
    /// receive is cancelled, an ended one is not re-armed (whatever ended it) until
    /// the output drains. What the receive delivers until the cancel lands is still
    /// handled, so the output may pass the limit by what one batch of completions held
    /// (at most the buffer ring). Also keeps the peak of queued output.
    fn check_backpressure(&mut self, i: u32) {
        let tag = self.tag(i, Op::Recv);
        let c = &mut self.slab.conns[i as usize];
        let out = c.outbound();
        self.counters.peak_backlog = self.counters.peak_backlog.max(out as u64);
        if !c.recv_paused && out > self.out_high {
            c.recv_paused = true;
            self.counters.recv_paused += 1;
            if c.recv_armed {
                self.io.push(ops::cancel(tag));
            }
        }
    }

    /// Ends a connection without flushing: shutdown now, close when nothing is armed.
    fn abort(&mut self, i: u32) {
        let tag = self.tag(i, Op::Shutdown);
        let c = &mut self.slab.conns[i as usize];
        if c.phase == Phase::Free {
            return;
        }
        if c.phase != Phase::Draining {
            c.phase = Phase::Draining;
            self.counters.aborted += 1;
        }
        c.pending.clear();
        if !c.shutdown_sent {
            c.shutdown_sent = true;
            self.io.push(ops::shutdown(c.slot, tag));
        }
        self.sync_open(i);
    }

    /// Draining: shutdown once the output is flushed, close once nothing is armed. A
    /// reset (fault) skips the shutdown: its slot closes once SO_LINGER is set.
    fn advance_close(&mut self, i: u32) {
        let c = &mut self.slab.conns[i as usize];
        if c.phase != Phase::Draining {
            return;
        }
        if c.reset && !(c.shutdown_done && !c.recv_armed && !c.send_inflight && !c.close_sent) {
            return;
        }
        if !c.shutdown_sent {
            if !c.send_inflight && c.pending.is_empty() {
                if tls::close_notify(c, &mut self.bufs) {
                    self.kick_send(i);
                    return;
                }
                c.shutdown_sent = true;
                let tag = Tag { conn: i, generation: c.generation, op: Op::Shutdown };
                self.io.push(ops::shutdown(c.slot, tag));
            }
            return;
        }
        if c.shutdown_done && !c.recv_armed && !c.send_inflight && !c.close_sent {
            c.close_sent = true;
            let tag = Tag { conn: i, generation: c.generation, op: Op::Close };
            self.io.push(ops::close(c.slot, tag));
        }
    }

    fn on_shutdown(&mut self, tag: Tag) {
        let Some(c) = self.slab.get(tag.conn, tag.generation) else { return };
        c.shutdown_done = true;
        if c.recv_armed {
            // A shut-down socket ends the receive by itself; cancel in case it did not.
            let recv = Tag { op: Op::Recv, ..tag };
            self.io.push(ops::cancel(recv));
        }
        self.advance_close(tag.conn);
    }

    fn on_close(&mut self, tag: Tag) {
        if self.slab.get(tag.conn, tag.generation).is_none() {
            return;
        }
        self.sync_open(tag.conn);
        self.slab.release(tag.conn, &mut self.bufs, &mut self.codecs);
        self.shared.closed();
    }
}
