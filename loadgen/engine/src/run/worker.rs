//! The one worker loop: a thread, its ring, its share of the connection schedule and
//! of the message schedule, and its connections. No locks and no shared atomics on the
//! hot path (the stop flag is read once per loop turn).
//!
//! Each turn: start every connection and message whose intended time has come, fire
//! due timers, submit, wait for completions until the next intended time, and handle
//! completions. Latency is measured from intended times; how late the loop acted is
//! recorded as schedule lag.

use std::sync::atomic::{AtomicBool, Ordering};

use loadgen_proto::{ClientConfig, MessageKind};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::conn::{ClientPool, Conn, Phase, Proto};
use super::ops::{self, Op, Tag};
use super::pool::Pool;
use super::requests::Request;
use super::{HandshakeMode, MemorySample, MessageRate, Protocol, RunConfig, RunError, Traffic};
use crate::bufpool::BufPool;
use crate::clock::Clock;
use crate::driver::{Action, Driver, Program};
use crate::payload::Probe;
use crate::schedule::Schedule;
use crate::stats::{Metric, Recorder, Reporter};
use crate::timer_wheel::TimerWheel;
use crate::uring::probe::Capabilities;
use crate::uring::reactor::{Completion, Reactor, ReactorConfig};
use crate::uring::ring::RingConfig;

pub use super::start_gate::StartGate;
pub use http::MAX_HEADERS;

#[path = "worker_close.rs"]
mod close;
#[path = "worker_connect.rs"]
mod connect;
#[path = "worker_drive.rs"]
mod drive;
#[path = "worker_http.rs"]
mod http;
#[path = "worker_recv.rs"]
mod recv;
#[path = "worker_streams.rs"]
mod streams;
#[path = "worker_timers.rs"]
mod timers;

const BGID: u16 = 1;
static ONE: i32 = 1;

/// A worker's inputs.
pub struct WorkerSetup<'a> {
    /// Worker index.
    pub index: usize,
    /// Run configuration.
    pub config: &'a RunConfig,
    /// Connection starts of this worker (intended ns).
    pub connects: Schedule,
    /// Open-model message sends of this worker (intended ns).
    pub messages: Option<Schedule>,
    /// Connections this worker will open.
    pub capacity: u32,
    /// Run clock: a placeholder until the start gate, which hands every worker the
    /// run's clock.
    pub clock: Clock,
    /// Host capabilities.
    pub caps: &'a Capabilities,
    /// End of the hold phase (ns): then every connection closes.
    pub end_ns: u64,
    /// Ctrl-C.
    pub stop: &'a AtomicBool,
    /// Hands a snapshot of the measurements to the collector once a second.
    pub reporter: Reporter,
    /// Every worker waits here once its rings are set up; the run's clock starts when
    /// all have arrived, so set-up time is never counted as schedule lag.
    pub gate: &'a StartGate,
    /// High 32 bits of this run's probe sender ids (random per run): a probe with this
    /// connection's id is its own echo; any other is a server push.
    pub sender_base: u64,
}

struct Worker<'a> {
    setup: WorkerSetup<'a>,
    /// Rings of this worker (connection `i` lives in ring `i / per_ring`, slot
    /// `i % per_ring`), submission queue, waits and completions.
    io: Reactor,
    conns: Vec<Conn>,
    next_conn: u32,
    targets: Vec<libc::sockaddr_in>,
    sources: Vec<libc::sockaddr_in>,
    /// The request of each (cohort, target), at `program * targets + target`.
    requests: Vec<Request>,
    /// HTTP polls: the expanded path and header values of the request being written.
    expand_buf: String,
    /// This worker's TLS settings (its own resumption cache) and each target's server
    /// name (`None`: ws://).
    tls_config: Option<loadgen_tls::TlsClientConfig>,
    server_names: Vec<Option<loadgen_tls::ServerName<'static>>>,
    /// Protocol memory sampled when the hold ended.
    memory: MemorySample,
    clients: ClientPool,
    rng: ChaCha20Rng,
    timers: TimerWheel,
    /// The connections' programs, by cohort (`Conn::driver` says which).
    programs: Vec<Program>,
    /// How each cohort's connections upgrade.
    handshakes: Vec<HandshakeMode>,
    /// The driver's actions of the event being handled (reused).
    actions: Vec<Action>,
    /// Ready connections the open-model messages go to.
    pool: Pool,
    message: Vec<u8>,
    rec: Recorder,
    /// The second being measured (run seconds from 0).
    second: u64,
    /// Completion-queue overflows seen so far, per ring (the kernel's counter).
    cq_overflow_seen: Vec<u32>,
    closing_all: bool,
    /// Ramp-down: when it started, the next connection index to close, and when the
    /// worker gives up waiting for the last operations.
    close_start_ns: u64,
    close_cursor: u32,
    hard_stop_ns: u64,
    /// Connections not `Free`.
    live: u32,
    next_connect: Option<u64>,
    next_message: Option<u64>,
    scratch: Vec<u64>,
    /// Completions copied out of a ring before handling (reused).
    cqe_batch: Vec<Completion>,
    send_pool: BufPool,
    /// This worker's reader of the server's own message shape, if the run gave one.
    shape: Option<crate::payload_shape::ShapeReader>,
}

/// Runs a worker to completion on the calling thread; returns the protocol memory it
/// sampled when the hold ended.
pub fn run(setup: WorkerSetup<'_>) -> Result<MemorySample, RunError> {
    let gate = setup.gate;
    match build_reactor(&setup) {
        Ok(io) => run_rings(setup, io),
        Err(e) => {
            // The others wait for every worker at the gate.
            gate.wait();
            Err(e)
        }
    }
}

fn build_reactor(setup: &WorkerSetup<'_>) -> Result<Reactor, RunError> {
    let cfg = setup.config;
    let capacity = setup.capacity.max(1);
    let per_ring = cfg.max_slots_per_ring.clamp(1, 1 << 20).min(capacity);
    let rings = capacity.div_ceil(per_ring) as usize;
    // The receive pool is split over the rings (each ring has its own buffer group).
    let buffers = (usize::from(cfg.recv_buffers) / rings).clamp(64, 1 << 15) as u16;
    let config = ReactorConfig {
        rings,
        ring: RingConfig { sq_entries: 4096, cq_entries: 16384, fixed_files: per_ring },
        bgid: BGID,
        buffers,
        buffer_size: cfg.recv_buffer_size,
    };
    Ok(Reactor::new(config, setup.caps)?)
}

fn run_rings(setup: WorkerSetup<'_>, io: Reactor) -> Result<MemorySample, RunError> {
    let cfg = setup.config;
    let ring_count = io.rings();
    let mut seed = [0u8; 32];
    if let Err(e) = getrandom::getrandom(&mut seed) {
        setup.gate.wait();
        return Err(RunError::Setup(format!("OS randomness unavailable: {e}")));
    }
    let size = match cfg.traffic {
        Traffic::Echo { message_size, .. } => message_size,
        Traffic::Idle => 0,
    };
    let (programs, requests) = match cfg.programs().and_then(|p| Ok((cfg.requests(p.len())?, p))) {
        Ok((requests, programs)) => (programs, requests),
        Err(e) => {
            setup.gate.wait();
            return Err(e);
        }
    };
    let mut message = Vec::new();
    Probe { channel: 0, seq: 0, sent_unix_us: 0, sender: 0 }.encode_into(size, &mut message);
    // The run's clock starts at the gate, after every worker's set-up: now is 0.
    let now = 0;
    let mut w = Worker {
        targets: cfg.targets.iter().map(|t| ops::sockaddr_in(t.addr)).collect(),
        sources: cfg.sources.iter().map(|ip| ops::sockaddr_in(std::net::SocketAddrV4::new(*ip, 0))).collect(),
        requests,
        expand_buf: String::new(),
        tls_config: cfg.tls.as_ref().map(loadgen_tls::TlsClientConfig::for_worker),
        server_names: cfg
            .targets
            .iter()
            .map(|t| t.tls.then(|| loadgen_tls::config::parse_server_name(t.server_name()).ok()).flatten())
            .collect(),
        memory: MemorySample::default(),
        clients: ClientPool::new(ClientConfig {
            max_message_size: cfg.max_message_size,
            handshake_timeout_us: Some(cfg.handshake_timeout.as_micros() as u64),
            close_timeout_us: cfg.close_timeout.as_micros() as u64,
            ..ClientConfig::default()
        }),
        conns: (0..setup.capacity).map(|_| Conn::free()).collect(),
        next_conn: 0,
        rng: ChaCha20Rng::from_seed(seed),
        timers: TimerWheel::new(100_000, 4096, now),
        handshakes: (0..programs.len()).map(|p| cfg.handshake_mode(p as u8)).collect(),
        programs,
        actions: Vec::with_capacity(16),
        pool: Pool::default(),
        message,
        rec: Recorder::new(),
        second: now / 1_000_000_000,
        cq_overflow_seen: vec![0; ring_count],
        closing_all: false,
        close_start_ns: 0,
        close_cursor: 0,
        hard_stop_ns: u64::MAX,
        live: 0,
        next_connect: None,
        next_message: None,
        scratch: Vec::new(),
        cqe_batch: Vec::with_capacity(256),
        send_pool: BufPool::new(
            crate::preflight::SEND_POOL_MAX_BUFFER as usize,
            crate::preflight::SEND_POOL_KEEP as usize,
        ),
        shape: cfg.message_shape.as_ref().map(crate::payload_shape::ShapeReader::new),
        io,
        setup,
    };
    w.setup.clock = w.setup.gate.wait();
    w.next_connect = w.setup.connects.next();
    w.next_message = w.setup.messages.as_mut().and_then(Iterator::next);
    let result = w.run_loop();
    let Worker { setup, mut rec, second, memory, .. } = w;
    // The last (partial) second, and the end of this worker, even after an error.
    let _ = setup.reporter.finish(&mut rec, second);
    result.map(|()| memory)
}

impl Worker<'_> {
    fn run_loop(&mut self) -> Result<(), RunError> {
        loop {
            let now = self.setup.clock.now_ns();
            self.tick_second(now);
            if !self.closing_all {
                // What was due before the end still goes out (and is counted): every
                // intended time of the schedules lies before `end_ns`.
                self.start_due_connections(now);
                self.send_due_messages(now);
                if now >= self.setup.end_ns || self.setup.stop.load(Ordering::Relaxed) {
                    self.begin_close(now);
                }
            }
            if self.closing_all {
                self.close_due(now);
            }
            self.fire_timers(now);
            self.io.flush().map_err(|e| RunError::Uring(e.into()))?;
            if self.closing_all && !self.closes_pending() && self.live == 0 {
                return Ok(());
            }
            if now > self.hard_stop_ns {
                self.rec.error("worker_stop_timeout");
                return Ok(());
            }
            let wait_until = self.next_wakeup(now).min(self.hard_stop_ns);
            self.wait(now, wait_until)?;
            self.handle_completions();
        }
    }

    /// Once a second: counts completion-queue overflows and hands the second's
    /// measurements to the collector.
    fn tick_second(&mut self, now: u64) {
        let second = now / 1_000_000_000;
        if second == self.second {
            return;
        }
        for r in 0..self.io.rings() {
            let overflow = self.io.ring_mut(r).uring.completion().overflow();
            let delta = overflow.wrapping_sub(self.cq_overflow_seen[r]);
            if delta > 0 {
                self.rec.cq_overflow(u64::from(delta));
                self.cq_overflow_seen[r] = overflow;
            }
        }
        if self.setup.reporter.send(&mut self.rec, self.second).is_err() {
            // The collector is gone (the run is being torn down): keep measuring
            // locally; nothing more can be reported.
        }
        self.second = second;
    }

    fn next_wakeup(&self, now: u64) -> u64 {
        let mut t = (now + 50_000_000).min((self.second + 1) * 1_000_000_000);
        if !self.closing_all {
            t = t.min(self.setup.end_ns);
            if let Some(c) = self.next_connect {
                t = t.min(c);
            }
            if let Some(m) = self.next_message {
                t = t.min(m);
            }
        }
        if let Some(d) = self.timers.next_deadline() {
            t = t.min(d.saturating_add(self.setup.config.timer_coalesce.as_nanos() as u64));
        }
        if let Some(c) = self.next_close_ns() {
            t = t.min(c.max(now + 100_000));
        }
        t
    }

    /// Submits everywhere, then sleeps on ring 0 until `until` or a completion on any
    /// ring.
    fn wait(&mut self, now: u64, until: u64) -> Result<(), RunError> {
        Ok(self.io.wait(std::time::Duration::from_nanos(until.saturating_sub(now)))?)
    }

    fn start_due_connections(&mut self, now: u64) {
        while let Some(intended) = self.next_connect.filter(|&t| t <= now) {
            self.next_connect = self.setup.connects.next();
            if self.next_conn >= self.setup.capacity {
                continue;
            }
            let index = self.next_conn;
            self.next_conn += 1;
            let cohort = self.setup.config.program_of(self.global_index(index));
            self.conns[index as usize].driver = Driver::new(cohort, index);
            self.start_connection(index, intended, now);
        }
    }

    fn send_due_messages(&mut self, now: u64) {
        while let Some(intended) = self.next_message.filter(|&t| t <= now) {
            self.next_message = self.setup.messages.as_mut().and_then(Iterator::next);
            if self.pool.is_empty() {
                self.rec.not_sent("no_open_connection_for_message");
                continue;
            }
            let index = if self.setup.config.protocol == Protocol::Http1 {
                // One request in flight per connection: the next idle poller takes it.
                match self.idle_poller(now) {
                    Some(index) => index,
                    None => {
                        self.rec.not_sent("no_idle_connection_for_request");
                        continue;
                    }
                }
            } else {
                match self.pool.next() {
                    Some(index) => index,
                    None => continue,
                }
            };
            self.rec.record_since(Metric::ScheduleLag, intended, now);
            self.send_probe(index, intended);
        }
    }

    pub(super) fn message_rate(&self) -> MessageRate {
        match self.setup.config.traffic {
            Traffic::Echo { rate, .. } => rate,
            Traffic::Idle => MessageRate::ClosedLoop,
        }
    }

    /// Queues a probe message on `index`, stamped with its intended time.
    pub(super) fn send_probe(&mut self, index: u32, intended_ns: u64) {
        let unix_us = self.setup.clock.unix_us(intended_ns);
        let sender = self.setup.sender_base | self.global_index(index);
        let conn = &mut self.conns[index as usize];
        if conn.phase != Phase::Open || !conn.driver.is_ready() || self.closing_all {
            return;
        }
        if matches!(conn.proto, Proto::Http(_)) {
            let now = self.setup.clock.now_ns();
            self.poll_due(index, intended_ns, now);
            return;
        }
        let probe = Probe { channel: 0, seq: conn.seq, sent_unix_us: unix_us, sender };
        probe.write_header(&mut self.message);
        let sent = if let Proto::Raw(raw) = &mut conn.proto {
            raw.queue(&self.message);
            Ok(())
        } else {
            let Some(client) = conn.client(&mut self.clients) else { return };
            client.send(MessageKind::Binary, &self.message, &mut self.rng)
        };
        match sent {
            Ok(()) => {
                self.rec.message_sent(self.message.len() as u64);
                conn.seq += 1;
            }
            Err(e) => self.rec.error(e_name(e)),
        }
        self.send_more(index);
        self.conns[index as usize].park(&mut self.clients);
    }

    /// Where the request of connection `index` (its cohort's, for its target) is in
    /// `requests`.
    pub(super) fn request_index(&self, index: u32) -> usize {
        let conn = &self.conns[index as usize];
        usize::from(conn.driver.program()) * self.targets.len() + usize::from(conn.target)
    }

    /// How connection `index`'s cohort upgrades.
    pub(super) fn handshake_of(&self, index: u32) -> HandshakeMode {
        self.handshakes[usize::from(self.conns[index as usize].driver.program())]
    }

    /// Connection `index` is upgrading in an attack mode (stalled or slow).
    pub(super) fn upgrade_attack(&self, index: u32) -> bool {
        let conn = &self.conns[index as usize];
        conn.phase == Phase::Handshaking && matches!(conn.proto, Proto::Live(_)) && self.handshake_of(index).is_attack()
    }

    /// The connection's number in the whole run (all workers).
    pub(super) fn global_index(&self, index: u32) -> u64 {
        u64::from(index) * self.setup.config.workers as u64 + self.setup.index as u64
    }

    /// A connection with no upgrade to wait for (raw TCP, plain HTTP) is open as soon as
    /// it is connected: established, then closed at once if the end already came, else
    /// its traffic starts.
    pub(super) fn open_now(&mut self, index: u32, now: u64) {
        self.conns[index as usize].phase = Phase::Open;
        self.rec.connection_established();
        if self.closing_all {
            self.shutdown(index);
        } else {
            self.drive(index, now, |d, p, out| d.opened(p, now, out));
        }
    }

    /// Submits what the connection has queued, if no send is in flight; a TLS failure
    /// while sealing ends the connection (counted by kind).
    pub(super) fn send_more(&mut self, index: u32) {
        // An attack upgrade holds its request back (a slow one sends it from its timer).
        let limit = if self.upgrade_attack(index) { 0 } else { usize::MAX };
        self.send_limited(index, limit);
    }

    /// [`Self::send_more`] with at most `limit` bytes of the protocol's output.
    pub(super) fn send_limited(&mut self, index: u32, limit: usize) {
        let conn = &mut self.conns[index as usize];
        match conn.next_send(index, self.io.slot(index), &mut self.send_pool, limit) {
            Ok(Some(sqe)) => self.io.push(sqe),
            Ok(None) => {}
            Err(kind) => {
                self.rec.error(kind);
                if conn.phase == Phase::Handshaking {
                    self.rec.connection_failed();
                }
                self.shutdown(index);
            }
        }
    }

    fn handle_completions(&mut self) {
        let mut batch = std::mem::take(&mut self.cqe_batch);
        while self.io.next_batch(&mut batch) {
            for &(data, result, flags) in &batch {
                self.handle(data, result, flags);
            }
        }
        self.cqe_batch = batch;
    }

    fn handle(&mut self, data: u64, result: i32, flags: u32) {
        let Some(tag) = Tag::decode(data) else { return };
        let index = tag.conn;
        let Some(conn) = self.conns.get_mut(index as usize) else { return };
        if conn.generation != tag.generation {
            return;
        }
        let now = self.setup.clock.now_ns();
        match tag.op {
            Op::Socket | Op::SockOpt | Op::Bind => {
                if result < 0 {
                    self.connect_failed(index, tag.op, result);
                }
            }
            Op::Connect => {
                if result < 0 {
                    self.connect_failed(index, tag.op, result);
                    return;
                }
                self.connected(index, now);
            }
            Op::Send => {
                if result < 0 && self.upgrade_attack(index) && matches!(-result, libc::EPIPE | libc::ECONNRESET) {
                    // The server closed a stalled or slow upgrade while it was sending.
                    let conn = &mut self.conns[index as usize];
                    conn.send_inflight = false;
                    self.send_pool.put(std::mem::take(&mut conn.sending));
                    self.handshake_closed_by_server(index, now);
                    self.maybe_free(index);
                    return;
                }
                let conn = &mut self.conns[index as usize];
                if result < 0 {
                    conn.send_inflight = false;
                    self.send_pool.put(std::mem::take(&mut conn.sending));
                    if conn.phase != Phase::Closing {
                        // (A close_notify racing the peer's reset is no news.)
                        self.rec.error("send_error");
                    }
                    if conn.phase == Phase::Handshaking {
                        self.rec.connection_failed();
                    }
                    self.drop_conn(index, if -result == libc::ECONNRESET { "reset" } else { "send_error" });
                    self.maybe_free(index);
                    return;
                }
                if let Some(sqe) = conn.send_done(index, self.io.slot(index), result as usize, &mut self.send_pool) {
                    self.io.push(sqe);
                } else if conn.draining && matches!(conn.proto, Proto::Raw(_)) {
                    self.send_drained(index);
                } else {
                    self.send_more(index);
                }
                self.maybe_free(index);
            }
            Op::Recv => self.on_recv(index, result, flags, now),
            Op::Cancel => {
                if result < 0 && conn.cancel_pending {
                    // Nothing was cancelled (the receive had ended, or was completing):
                    // no cancelled receive will report back.
                    conn.cancel_pending = false;
                    if !self.reading_paused(index) {
                        self.resume_reading(index);
                    }
                }
            }
            Op::PingTimer
            | Op::RetryTimer
            | Op::ReplyTimer
            | Op::ReconnectTimer
            | Op::StepTimer
            | Op::PongTimer
            | Op::SlowTimer
            | Op::Drain => {}
            Op::Shutdown | Op::Close => {
                conn.closing_ops = conn.closing_ops.saturating_sub(1);
                self.maybe_free(index);
            }
        }
        self.conns[index as usize].park(&mut self.clients);
    }
}

fn e_name(e: loadgen_proto::SendError) -> &'static str {
    match e {
        loadgen_proto::SendError::NotOpen => "send_not_open",
        loadgen_proto::SendError::ControlTooLong => "send_control_too_long",
        loadgen_proto::SendError::InvalidCloseCode => "send_invalid_close_code",
        loadgen_proto::SendError::FragmentSequence => "send_fragment_sequence",
    }
}
