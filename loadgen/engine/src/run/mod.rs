//! Client load runs: turn a [`RunConfig`] into schedules of intended start times,
//! split them over one worker thread per core, run the workers, merge what they
//! measured. Ctrl-C (the `stop` flag) ends the hold early; workers then close their
//! connections with a bounded close handshake, so partial results are complete.

mod conn;
mod ops;
mod pool;
mod programs;
mod raw;
mod requests;
mod start_gate;
pub mod template;

pub use worker::MAX_HEADERS;
mod tls;
mod worker;

#[cfg(test)]
mod tests;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::clock::Clock;
pub use crate::driver::{Jitter, ReconnectPolicy};
use crate::report::{ProcessUsage, UsageBaseline};
use crate::schedule::{Arrivals, Phase, RateProfile, Schedule, ScheduleError};
use crate::stats::{RunStats, SaturationPolicy, SecondStats, channel};
use crate::uring::UringError;
use crate::uring::probe::Capabilities;
pub use programs::{Cohort, HandshakeMode};

/// A WebSocket target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WsTarget {
    /// Address to connect to (IPv4 for now).
    pub addr: SocketAddrV4,
    /// `Host` header.
    pub host: String,
    /// Request path.
    pub path: String,
    /// wss://: TLS first (SNI and certificate name: `host` without its port), with
    /// [`RunConfig::tls`].
    pub tls: bool,
}

impl WsTarget {
    /// The TLS server name: the `Host` header without its port (and IPv6 brackets).
    pub fn server_name(&self) -> &str {
        let host = match self.host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => &self.host,
        };
        host.trim_start_matches('[').trim_end_matches(']')
    }
}

/// What the connections speak.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// RFC 6455 WebSocket (ws://).
    #[default]
    WebSocket,
    /// Plain TCP carrying the same probe payloads back to back, no handshake and no
    /// framing: the ceiling of this engine on this host (against `loadgen serve --raw`).
    RawTcp,
    /// HTTP/1.1 keep-alive polling (http:// and https://): each "message" is a GET of
    /// the target's path, timed from its intended time to the end of the response;
    /// cookies are kept per connection and `Retry-After` on 429/503 delays that
    /// connection's next poll. One request in flight per connection.
    Http1,
}

/// How messages are paced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MessageRate {
    /// Each connection sends its next message when the previous echo arrives.
    ClosedLoop,
    /// Open model: this many messages per second in total, over the open connections.
    Total(f64),
    /// Open model per connection: each connection sends at this rate.
    PerConnection(f64),
}

/// What connections do once open.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Traffic {
    /// Hold the connection, send nothing.
    Idle,
    /// Send probe payloads of `message_size` bytes that the server echoes.
    Echo {
        /// Bytes per message (at least the probe header).
        message_size: usize,
        /// Pacing.
        rate: MessageRate,
    },
}

/// A step a real client takes right after the upgrade (subscribe, authenticate, join),
/// before the connection counts as ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnOpenStep {
    /// Text message to send.
    pub send: String,
    /// Wait for a text message containing this before the next step (`None`: go on).
    pub expect: Option<String>,
}

/// One run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Targets, used round robin.
    pub targets: Vec<WsTarget>,
    /// What the connections speak.
    pub protocol: Protocol,
    /// Connections to open.
    pub connections: u32,
    /// New connections per second (the ramp).
    pub connect_rate: f64,
    /// Connections closed per second at the end (the ramp-down; a close handshake
    /// for each). Closing a million at once would only measure the pile-up.
    pub close_rate: f64,
    /// How long to hold once every connection has been started.
    pub hold: Duration,
    /// What open connections do.
    pub traffic: Traffic,
    /// How open-model messages (`MessageRate::Total`) are spaced: evenly or Poisson.
    pub message_arrivals: Arrivals,
    /// Worker threads.
    pub workers: usize,
    /// Source addresses to bind (empty: let the kernel choose).
    pub sources: Vec<Ipv4Addr>,
    /// Give up a handshake after this long.
    pub handshake_timeout: Duration,
    /// Give up the close handshake after this long.
    pub close_timeout: Duration,
    /// An echo (or HTTP response) later than this after its intended time is `late`;
    /// in a closed loop the connection then stops waiting and sends its next message.
    pub reply_timeout: Duration,
    /// Closed loop: wait this long after a reply before the next send (0: at once).
    pub think_time: Duration,
    /// A second whose schedule-lag p99 exceeds this is saturated (the `schedule_lag`
    /// rule; also at most 10% of a fixed per-connection send interval).
    pub lag_threshold: Duration,
    /// A second whose connect-lag p99 exceeds this is saturated (the `connect_lag` rule).
    pub connect_lag_threshold: Duration,
    /// Bring dropped connections back (`None`: a dropped connection stays closed). HTTP
    /// pollers keep their cookies across reconnects.
    pub reconnect: Option<ReconnectPolicy>,
    /// Largest message accepted.
    pub max_message_size: usize,
    /// Provided receive buffers per worker, and their size.
    pub recv_buffers: u16,
    /// Size of each receive buffer.
    pub recv_buffer_size: u32,
    /// Steps after the upgrade; a connection is ready (and timed as `ready`) once all
    /// are done.
    pub on_open: Vec<OnOpenStep>,
    /// Send a ping this often on every ready connection and time its pong.
    pub ping_interval: Option<Duration>,
    /// Most direct descriptors per ring (a ring's table may not exceed RLIMIT_NOFILE);
    /// a worker with more connections drives several rings.
    pub max_slots_per_ring: u32,
    /// TLS settings of wss:// targets (trust, resumption); each worker derives its own
    /// session cache from it. Required when a target is wss://.
    pub tls: Option<loadgen_tls::TlsClientConfig>,
    /// Only connections `0..n` of the run (in start order) carry messages; the rest are
    /// held (`None`: all). Models a few active clients among many idle ones.
    pub echo_connections: Option<u32>,
    /// permessage-deflate offer of every connection (`None`: no compression).
    pub deflate: Option<loadgen_proto::DeflateConfig>,
    /// WebSocket subprotocols every upgrade offers, in order of preference
    /// (`Sec-WebSocket-Protocol`); a server's choice is counted
    /// (`connections.subprotocol_negotiated`), one not offered fails the handshake.
    pub subprotocols: Vec<String>,
    /// What the connections do once open, by group, replacing the programs the options
    /// above compile to (`on_open`, `ping_interval`, `traffic`, `think_time`,
    /// `reconnect`, `echo_connections`; see [`RunConfig::programs`]): the first
    /// group's `connections` are the run's connections `0..n1`, the next group's the
    /// following ones, and so on (their counts add up to `connections`). Scenarios set
    /// it; empty: the flags decide. Probe messages still take their size from `traffic`.
    pub cohorts: Vec<Cohort>,
    /// Timers due within this window of the earliest are fired together: the loop
    /// sleeps until the earliest due timer plus this, so one wake-up (one submission)
    /// serves every send and ping due meanwhile. Their lateness is schedule lag and is
    /// in the latencies (measured from intended times). Zero: wake for each deadline.
    pub timer_coalesce: Duration,
    /// Extra request headers of every connection (WebSocket upgrade and HTTP polls):
    /// `Authorization`, `Cookie`, `Origin`, `User-Agent` ... `{i}` in a value (or in a
    /// target's path) is the connection's number in the run, `{token}` its token
    /// ([`template`]). A cohort adds its own ([`Cohort::headers`]).
    pub headers: Vec<(String, String)>,
    /// Per-connection values for `{token}` in paths and header values: connection `i`
    /// of the run gets `tokens[i % len]` (signed handshake tokens the caller computed,
    /// say; [`template`]). `None`: a run whose requests use `{token}` is refused.
    pub tokens: Option<std::sync::Arc<[String]>>,
    /// Where a server's own messages keep stream, sequence number and send time (a
    /// server not built for loadgen: JSON pointers, a regex for text, or loadgen's own
    /// markers published through the system); absent: only loadgen's probe payloads
    /// and the reference target's envelope are read. Each worker reads it with its own
    /// [`crate::payload_shape::ShapeReader`].
    pub message_shape: Option<crate::payload_shape::MessageShape>,
    /// Where a server's text messages name the instance that holds the connection (a
    /// JSON pointer: `/worker` of the reference target's `lgready`); read once per
    /// connection attempt, and each reconnect counted as landing on the same instance
    /// as before or on another ([`crate::server_id`]). `None`: not read.
    pub server_id: Option<crate::server_id::ServerIdPath>,
    /// Connection arrivals in phases (how long, new connections per second), in
    /// place of `connect_rate` for the whole ramp: a ramp, a pause (rate 0), a spike.
    /// Their connections (rate × length) must add up to `connections`. Empty: one
    /// phase at `connect_rate`.
    pub connect_phases: Vec<(Duration, f64)>,
    /// Named windows of the run (its phases) whose totals and histograms are kept
    /// apart as well (`RunStats::windows`, the report's `phases`). Empty: none.
    pub windows: Vec<crate::stats::Window>,
    /// Set to the instant the run's clock starts (at the start gate, once every worker
    /// has set up its rings): what runs beside the engine (a scenario's timeline) times
    /// itself from it, so its events and the run's seconds share one zero. `None`: no
    /// one is told.
    pub clock_started: Option<std::sync::Arc<std::sync::OnceLock<std::time::Instant>>>,
}

impl RunConfig {
    /// How long the connections take to start: the phases, or connections ÷ rate.
    pub fn ramp(&self) -> Duration {
        if self.connect_phases.is_empty() {
            let secs = f64::from(self.connections) / self.connect_rate;
            Duration::from_nanos((secs * 1e9).ceil().clamp(0.0, u64::MAX as f64) as u64)
        } else {
            self.connect_phases.iter().map(|(d, _)| *d).sum()
        }
    }
}

/// Why a run could not start or continue.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// io_uring setup or use failed.
    #[error(transparent)]
    Uring(#[from] UringError),
    /// The schedule is invalid.
    #[error("invalid schedule: {0}")]
    Schedule(#[from] ScheduleError),
    /// Anything else that prevents the run, with its fix.
    #[error("{0}")]
    Setup(String),
}

impl From<std::io::Error> for RunError {
    fn from(e: std::io::Error) -> Self {
        Self::Uring(UringError::Io(e))
    }
}

/// What a run measured.
#[derive(Debug)]
pub struct RunOutcome {
    /// Merged measurements: totals, per-second series, histograms, errors.
    pub stats: RunStats,
    /// CPU and memory of this process over the run.
    pub usage: ProcessUsage,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Unix seconds at the start.
    pub started_unix_s: u64,
    /// What the host's io_uring offered (setup flags and opcodes used).
    pub ring_flags: String,
    /// Memory of TLS sessions and compression contexts, sampled at the end of the hold.
    pub memory: MemorySample,
}

impl RunOutcome {
    /// The run's verdict by the default checks (a run without checks of its own).
    pub fn verdict(&self) -> crate::report::Verdict {
        crate::report::Verdict::new(&self.stats, crate::report::default_checks(&self.stats))
    }
}

/// Protocol memory the workers hold, sampled when the hold ends (before any
/// connection closes): what a held connection costs beyond its slab entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemorySample {
    /// Open connections with a TLS session.
    pub tls_sessions: u64,
    /// Heap and inline bytes of those sessions (rustls state, unfinished records).
    pub tls_bytes: u64,
    /// Live permessage-deflate contexts (compressors and decompressors, in use or pooled).
    pub deflate_contexts: u64,
    /// Their estimated bytes (zlib's documented sizes for the negotiated window).
    pub deflate_bytes: u64,
}

impl MemorySample {
    fn add(&mut self, o: &MemorySample) {
        self.tls_sessions += o.tls_sessions;
        self.tls_bytes += o.tls_bytes;
        self.deflate_contexts += o.deflate_contexts;
        self.deflate_bytes += o.deflate_bytes;
    }
}

/// Direct-descriptor slots per ring this process may register: RLIMIT_NOFILE (soft
/// limit raised to the hard limit first) minus a margin for ordinary descriptors.
pub fn default_slots_per_ring() -> u32 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    (lim.rlim_cur.saturating_sub(256)).clamp(64, 1 << 20) as u32
}

/// Runs the load described by `config` until done or until `stop` is set.
pub fn run(config: &RunConfig, stop: &AtomicBool) -> Result<RunOutcome, RunError> {
    run_with_progress(config, stop, &mut |_, _| {})
}

/// [`run`], calling `on_second` on the collecting thread with each second as soon as
/// every worker has reported it (live progress), and what has been collected up to it
/// (totals, windows: live checks). The callback must return quickly: the workers'
/// snapshots queue behind it (they never block on it).
pub fn run_with_progress(
    config: &RunConfig,
    stop: &AtomicBool,
    on_second: &mut dyn FnMut(&SecondStats, &RunStats),
) -> Result<RunOutcome, RunError> {
    if config.targets.is_empty() || config.workers == 0 || config.connections == 0 {
        return Err(RunError::Setup("a run needs at least one target, one worker and one connection".into()));
    }
    if config.protocol == Protocol::RawTcp
        && (!config.on_open.is_empty() || config.ping_interval.is_some() || config.deflate.is_some())
    {
        return Err(RunError::Setup(
            "on-open steps, pings and compression are WebSocket features; drop them for a raw-TCP run".into(),
        ));
    }
    if config.protocol == Protocol::Http1
        && (!config.on_open.is_empty() || config.ping_interval.is_some() || config.deflate.is_some())
    {
        return Err(RunError::Setup(
            "on-open steps, pings and compression are WebSocket features; drop them for an HTTP polling run".into(),
        ));
    }
    if config.targets.iter().any(|t| t.tls) {
        if config.protocol == Protocol::RawTcp {
            return Err(RunError::Setup("raw-TCP runs speak plain TCP; use a ws:// target with --raw".into()));
        }
        if config.tls.is_none() {
            return Err(RunError::Setup(
                "wss:// targets need trust settings: pass --ca-file FILE (or --insecure for a test server)".into(),
            ));
        }
        for t in config.targets.iter().filter(|t| t.tls) {
            loadgen_tls::config::parse_server_name(t.server_name())
                .map_err(|e| RunError::Setup(format!("{e}: use a DNS name or an IP address in the wss:// URL")))?;
        }
    }
    let programs = config.programs()?.len();
    config.requests(programs)?;
    if config.hold.is_zero() {
        return Err(RunError::Setup("the hold must be longer than 0 (e.g. 10s)".into()));
    }
    if config.lag_threshold.is_zero() || config.connect_lag_threshold.is_zero() {
        return Err(RunError::Setup("the lag thresholds must be longer than 0 (e.g. 1ms and 10ms)".into()));
    }
    if config.reply_timeout.is_zero() {
        return Err(RunError::Setup("the reply timeout must be longer than 0 (e.g. 5s)".into()));
    }
    for (name, rate) in [("connect rate", config.connect_rate), ("close rate", config.close_rate)] {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(RunError::Setup(format!("the {name} must be a positive number of connections per second")));
        }
    }
    let caps = Capabilities::probe()?;
    caps.require_engine_opcodes()?;
    let can_bind = caps.supports("bind") && caps.supports("uring_cmd");
    if !config.sources.is_empty() && !can_bind {
        return Err(RunError::Setup(
            "binding source addresses through io_uring needs Linux ≥ 6.11 (IORING_OP_BIND); drop --source-addr".into(),
        ));
    }
    let clock = Clock::start();
    let ramp_ns = config.ramp().as_nanos() as u64;
    let connects = if config.connect_phases.is_empty() {
        RateProfile::constant(config.connect_rate, ramp_ns.max(1))?
    } else {
        let expected: f64 = config.connect_phases.iter().map(|(d, r)| d.as_secs_f64() * r).sum();
        if (expected - f64::from(config.connections)).abs() >= 0.5 {
            return Err(RunError::Setup(format!(
                "the connection phases open {expected:.0} connections but the run has {}; make them add up",
                config.connections
            )));
        }
        RateProfile::new(config.connect_phases.iter().map(|(d, r)| Phase::hold(d.as_nanos() as u64, *r)).collect())?
    };
    let end_ns = ramp_ns + config.hold.as_nanos() as u64;
    let messages = match config.traffic {
        // Messages start with the hold, once the ramp has opened the connections.
        Traffic::Echo { rate: MessageRate::Total(r), .. } => {
            Some(RateProfile::new(vec![Phase::hold(ramp_ns, 0.0), Phase::hold(config.hold.as_nanos() as u64, r)])?)
        }
        _ => None,
    };
    let per_worker = config.connections.div_ceil(config.workers as u32);
    let send_interval_us = match config.traffic {
        Traffic::Echo { rate: MessageRate::PerConnection(r), .. } => Some((1e6 / r) as u64),
        _ => None,
    };
    let policy = SaturationPolicy {
        send_interval_us,
        // Lateness the coalescing window asks for is not saturation: the rule allows it
        // on top of the threshold.
        max_lag_p99_us: (config.lag_threshold + config.timer_coalesce).as_micros() as u64,
        max_connect_lag_p99_us: config.connect_lag_threshold.as_micros() as u64,
        ..Default::default()
    };
    let (mut collector, reporters) = channel(config.workers, policy);
    collector.set_windows(&config.windows);
    let baseline = UsageBaseline::now();
    let gate = worker::StartGate::new(config.workers, config.clock_started.clone());
    let mut nonce = [0u8; 4];
    getrandom::getrandom(&mut nonce).map_err(|e| RunError::Setup(format!("OS randomness unavailable: {e}")))?;
    // Never 0, so no sender id of this run equals a bare connection index.
    let sender_base = u64::from(u32::from_le_bytes(nonce) | 1) << 32;
    let (stats, results) = std::thread::scope(|s| {
        let handles: Vec<_> = reporters
            .into_iter()
            .enumerate()
            .map(|(index, reporter)| {
                let setup = worker::WorkerSetup {
                    index,
                    config,
                    connects: Schedule::new(connects.clone(), Arrivals::Constant, index, config.workers),
                    messages: messages
                        .clone()
                        .map(|m| Schedule::new(m, config.message_arrivals, index, config.workers)),
                    capacity: per_worker,
                    clock,
                    caps: &caps,
                    end_ns,
                    stop,
                    reporter,
                    gate: &gate,
                    sender_base,
                };
                s.spawn(move || worker::run(setup))
            })
            .collect();
        // The collector merges seconds while the workers run; it returns when every
        // worker has finished (or dropped its reporter).
        let mut shown = 0;
        while collector.step(Duration::from_millis(100)) {
            for second in &collector.seconds()[shown..] {
                on_second(second, collector.stats());
            }
            shown = collector.seconds().len();
        }
        let stats = collector.finish();
        for second in &stats.seconds[shown..] {
            on_second(second, &stats);
        }
        let results: Vec<Result<MemorySample, RunError>> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(RunError::Setup("a worker panicked".into()))))
            .collect();
        (stats, results)
    });
    let mut stats = stats;
    if let Traffic::Echo { rate: MessageRate::ClosedLoop, .. } = config.traffic
        && config.protocol != Protocol::Http1
    {
        stats.closed_loop_think_us = Some(config.think_time.as_micros() as u64);
        for w in &mut stats.windows {
            w.stats.closed_loop_think_us = stats.closed_loop_think_us;
        }
    }
    let mut memory = MemorySample::default();
    for r in results {
        memory.add(&r?);
    }
    let clock = gate.clock().unwrap_or(clock);
    Ok(RunOutcome {
        stats,
        usage: ProcessUsage::since(&baseline),
        elapsed: Duration::from_nanos(clock.now_ns()),
        started_unix_s: clock.start_unix_s(),
        ring_flags: caps.describe(),
        memory,
    })
}
