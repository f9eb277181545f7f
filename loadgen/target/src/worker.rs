//! One worker: its configuration, its listener (SO_REUSEPORT, so several worker
//! processes share a port), the accept loop, and its shared state (hub, fan-out,
//! publisher, counters); also the entry point of a worker process started by the
//! supervisor ([`run_worker_process`]). Graceful stop: accepting ends, every WebSocket
//! closes with 1001, connections get [`WorkerConfig::drain_timeout`] to finish.
//!
//! A worker needs Redis to deliver and publish, but starts without it: the subscriber
//! connects (and reconnects) in the background and /healthz says `"redis":"down"`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::TargetError;
use crate::fanout::Fanout;
use crate::faults::{Fault, LiveFaults};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::publish::Publisher;
use crate::queue::SlowConsumer;

/// The environment variable that makes a process a worker: its value is the
/// [`WorkerConfig`] as JSON.
pub const WORKER_ENV: &str = "LOADGEN_TARGET_WORKER";

/// What a worker process prints on stdout, followed by its address, once it accepts.
pub const READY_PREFIX: &str = "loadgen-target-worker-ready";

/// Everything a worker needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerConfig {
    /// Worker id (0-based), in envelopes, /healthz and metrics labels.
    pub id: u32,
    /// Address to listen on (port 0: a free port; several workers need the same port).
    pub listen: SocketAddr,
    /// Redis, e.g. `redis://127.0.0.1:6379/`.
    pub redis_url: String,
    /// Messages queued per connection before the slow-consumer policy applies.
    pub queue_capacity: usize,
    pub slow_consumer: SlowConsumer,
    /// Server pings every this long.
    pub ping_interval: Duration,
    /// Close a connection that sent nothing (not even a pong) for this long.
    pub idle_timeout: Duration,
    /// Drop a connection whose write has not completed in this long.
    pub write_timeout: Duration,
    /// How long stopping waits for connections to close.
    pub drain_timeout: Duration,
    /// Largest HTTP request body (POST /publish).
    pub max_body_bytes: usize,
    /// Largest WebSocket message accepted from a client.
    pub max_message_bytes: usize,
    pub faults: Vec<Fault>,
    /// The token of `/admin/faults` (`Authorization: Bearer TOKEN`); none: admin is off.
    #[serde(default)]
    pub admin_token: Option<String>,
    /// The HMAC key of handshake tokens ([`crate::auth`]); none: no token needed.
    #[serde(default)]
    pub auth_secret: Option<String>,
    /// Origins allowed to upgrade (exact, case-insensitive); empty: any. An upgrade
    /// without an Origin header (not a browser) is not refused.
    #[serde(default)]
    pub allow_origins: Vec<String>,
    /// Subprotocols the target speaks: an upgrade offering one of them (in
    /// `Sec-WebSocket-Protocol`) gets the first of its offer that is here; one offering
    /// none is admitted without a subprotocol.
    #[serde(default)]
    pub subprotocols: Vec<String>,
    /// New connections per second per client IP (burst: as many); none: unlimited.
    #[serde(default)]
    pub conn_rate_per_ip: Option<u32>,
    /// Messages per second a client may send on one connection (burst: as many);
    /// none: unlimited.
    #[serde(default)]
    pub msg_rate: Option<u32>,
    /// How long a request head (and so an upgrade) may take to arrive.
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout: Duration,
    /// When the run started (µs since the Unix epoch; 0: when this worker started),
    /// the origin of `crash-worker-at`. The supervisor sets it once for every worker.
    #[serde(default)]
    pub run_started_us: u64,
    /// How long a person's notifications are kept for a reconnect ([`crate::pending`];
    /// whole seconds, zero: not kept).
    #[serde(default = "default_pending_ttl")]
    pub pending_ttl: Duration,
    /// A fired reminder later than this after its due time counts as late
    /// (`reminders_late_total`; [`crate::reminders`]).
    #[serde(default = "default_reminder_late_after")]
    pub reminder_late_after: Duration,
    /// Classic (PUBLISH/SUBSCRIBE) or sharded (SPUBLISH/SSUBSCRIBE, Redis 7+) Pub/Sub.
    #[serde(default)]
    pub pubsub: crate::pubsub::PubSubMode,
    /// The subscriber connection's protocol (default: RESP3 where the server speaks it).
    #[serde(default)]
    pub redis_protocol: crate::pubsub::RedisProtocol,
    /// Find and follow the master through Sentinel ([`crate::sentinel`]); `redis_url`
    /// is then where the worker starts, and lends its credentials to every master found.
    #[serde(default)]
    pub redis_sentinel: Option<crate::sentinel::SentinelConfig>,
    /// Route by hash slot through these Redis Cluster nodes ([`crate::cluster`]);
    /// `redis_url` then names one of them and lends its credentials to every node.
    #[serde(default)]
    pub redis_cluster: Option<crate::cluster::ClusterConfig>,
    /// Whether `conn_rate_per_ip` is counted for all workers together (in Redis) or by
    /// each worker alone.
    #[serde(default)]
    pub conn_rate_scope: crate::limits::RateScope,
    /// How HAProxy keeps a person on one worker (`--balancer haproxy` only; read by the
    /// target when it generates HAProxy's configuration).
    #[serde(default)]
    pub haproxy_sticky: crate::haproxy::Sticky,
}

fn default_reminder_late_after() -> Duration {
    Duration::from_millis(250)
}

fn default_pending_ttl() -> Duration {
    Duration::from_secs(60)
}

fn default_handshake_timeout() -> Duration {
    Duration::from_secs(10)
}

/// The size limit that `no-size-limit` raises client messages to.
pub const NO_SIZE_LIMIT_CAP: usize = 64 << 20;

impl WorkerConfig {
    /// Defaults: queue 1024 drop-oldest, pings every 20 s, idle timeout 60 s, write
    /// timeout 10 s, drain 5 s, bodies up to 64 KiB, client messages up to 64 KiB.
    pub fn new(id: u32, listen: SocketAddr, redis_url: impl Into<String>) -> Self {
        Self {
            id,
            listen,
            redis_url: redis_url.into(),
            queue_capacity: 1024,
            slow_consumer: SlowConsumer::DropOldest,
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(5),
            max_body_bytes: 64 << 10,
            max_message_bytes: 64 << 10,
            faults: Vec::new(),
            admin_token: None,
            auth_secret: None,
            allow_origins: Vec::new(),
            subprotocols: Vec::new(),
            conn_rate_per_ip: None,
            msg_rate: None,
            handshake_timeout: default_handshake_timeout(),
            run_started_us: 0,
            pending_ttl: default_pending_ttl(),
            reminder_late_after: default_reminder_late_after(),
            pubsub: crate::pubsub::PubSubMode::Classic,
            redis_protocol: crate::pubsub::RedisProtocol::Auto,
            redis_sentinel: None,
            redis_cluster: None,
            conn_rate_scope: crate::limits::RateScope::Shared,
            haproxy_sticky: crate::haproxy::Sticky::User,
        }
    }

    /// Refuses values the worker cannot run with.
    pub fn validate(&self) -> Result<(), TargetError> {
        let bad = |what: &str| Err(TargetError::Config(what.to_string()));
        if self.queue_capacity == 0 {
            return bad("the queue size must be at least 1");
        }
        if self.ping_interval.is_zero()
            || self.idle_timeout.is_zero()
            || self.write_timeout.is_zero()
            || self.handshake_timeout.is_zero()
        {
            return bad("ping interval, idle timeout, write timeout and handshake timeout must be positive");
        }
        if self.conn_rate_per_ip == Some(0) || self.msg_rate == Some(0) {
            return bad("a rate limit must be at least 1 per second");
        }
        if self.auth_secret.as_deref() == Some("") {
            return bad("the auth secret must not be empty");
        }
        if self.redis_cluster.is_some() && self.redis_sentinel.is_some() {
            return bad("--redis-cluster and --redis-sentinel do not go together");
        }
        if self.redis_cluster.is_some() && self.redis_protocol == crate::pubsub::RedisProtocol::Resp2 {
            return bad("--redis-cluster needs RESP3 on the subscriber connection");
        }
        if self.pubsub == crate::pubsub::PubSubMode::Sharded
            && self.redis_protocol == crate::pubsub::RedisProtocol::Resp2
        {
            return bad(
                "--pubsub sharded needs RESP3 on the subscriber connection (the redis crate has no SSUBSCRIBE over RESP2)",
            );
        }
        if !(1..=NO_SIZE_LIMIT_CAP).contains(&self.max_message_bytes) {
            return bad("the largest client message must be from 1 byte to 64 MiB");
        }
        if !self.listen.ip().is_loopback() && !self.listen.ip().is_unspecified() {
            tracing::info!(addr = %self.listen, "listening beyond loopback");
        }
        Ok(())
    }
}

/// What a worker's tasks share.
#[derive(Debug)]
pub(crate) struct State {
    pub config: WorkerConfig,
    pub metrics: Arc<Metrics>,
    pub hub: Arc<Hub>,
    pub faults: Arc<LiveFaults>,
    pub publisher: Publisher,
    pub shutdown: watch::Receiver<bool>,
    pub next_conn: AtomicU64,
    pub per_ip: crate::limits::PerIp,
    /// Wakes the reminder scheduler (a reminder was scheduled through this worker).
    pub reminders_wake: tokio::sync::Notify,
    /// The Redis in use now.
    pub endpoint: Arc<crate::endpoint::Endpoint>,
}

/// A listening socket with SO_REUSEADDR and SO_REUSEPORT, set before bind.
pub fn reuseport_socket(addr: SocketAddr) -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s)
}

fn listen(addr: SocketAddr, backlog: i32) -> Result<TcpListener, TargetError> {
    let err = |source| TargetError::Listen { addr, source };
    let s = reuseport_socket(addr).map_err(err)?;
    s.listen(backlog).map_err(err)?;
    TcpListener::from_std(s.into()).map_err(err)
}

/// A running worker (on the current tokio runtime).
#[derive(Debug)]
pub struct Worker {
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
    accept: JoinHandle<()>,
    subscriber: JoinHandle<()>,
    reminders: JoinHandle<()>,
    sentinel: Option<JoinHandle<()>>,
    faults: Arc<LiveFaults>,
}

impl Worker {
    /// Binds, starts the subscriber and the accept loop.
    pub async fn start(config: WorkerConfig) -> Result<Worker, TargetError> {
        config.validate()?;
        let client = redis::Client::open(config.redis_url.as_str())
            .map_err(|source| TargetError::Redis { url: config.redis_url.clone(), source })?;
        let faults = Arc::new(LiveFaults::new(&config.faults, config.id));
        let listener = listen(config.listen, if faults.get().tiny_backlog { 1 } else { 1024 })?;
        let addr = listener.local_addr().map_err(|e| TargetError::io("local address", e))?;
        let (stop, shutdown) = watch::channel(false);
        let metrics = Arc::new(Metrics::default());
        let (hub, commands) = Hub::new();
        let hub = Arc::new(hub);
        let fanout = Arc::new(Fanout::new(config.id, hub.clone(), metrics.clone(), faults.clone()));
        let options = crate::subscriber::SubscriberOptions { mode: config.pubsub, protocol: config.redis_protocol };
        let router = config.redis_cluster.as_ref().map(|c| Arc::new(crate::cluster::Router::new(c, client.clone())));
        let endpoint = crate::endpoint::Endpoint::new(client);
        let subscriber = tokio::spawn(crate::subscriber::run(
            endpoint.clone(),
            options,
            router.clone(),
            hub.clone(),
            commands,
            fanout,
            faults.clone(),
            metrics.clone(),
            shutdown.clone(),
        ));
        let state = Arc::new(State {
            publisher: {
                let p = Publisher::new(endpoint.clone(), config.id, config.pending_ttl).with_pubsub(config.pubsub);
                match router {
                    Some(r) => p.with_cluster(r),
                    None => p,
                }
            },
            config,
            metrics: metrics.clone(),
            hub,
            faults,
            shutdown,
            next_conn: AtomicU64::new(0),
            per_ip: crate::limits::PerIp::default(),
            reminders_wake: tokio::sync::Notify::new(),
            endpoint: endpoint.clone(),
        });
        let sentinel = state
            .config
            .redis_sentinel
            .clone()
            .map(|s| tokio::spawn(crate::sentinel::follow(s, endpoint, metrics.clone(), state.shutdown.clone())));
        let reminders = tokio::spawn(crate::reminders::run(state.clone()));
        let accept = tokio::spawn(accept_loop(listener, state.clone()));
        Ok(Worker { addr, metrics, stop, accept, subscriber, reminders, sentinel, faults: state.faults.clone() })
    }

    /// The faults in force.
    pub fn faults(&self) -> &Arc<LiveFaults> {
        &self.faults
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Stops gracefully: no more accepts, WebSockets closed with 1001, then the
    /// subscriber and the reminder scheduler.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.accept.await;
        let _ = self.subscriber.await;
        let _ = self.reminders.await;
        if let Some(s) = self.sentinel {
            let _ = s.await;
        }
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    let mut shutdown = state.shutdown.clone();
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = crate::worker::stopped(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    conns.spawn(crate::http::serve(stream, peer.ip(), state.clone()));
                    if state.faults.get().tiny_backlog {
                        // A slow accept behind a backlog of 1: the queue overflows.
                        tokio::time::sleep(TINY_BACKLOG_ACCEPT_GAP).await;
                    }
                }
                Err(e) => {
                    // Out of descriptors or a connection reset in the queue: go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let drained =
        tokio::time::timeout(state.config.drain_timeout, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(left = conns.len(), "connections still open after the drain timeout: dropped");
        conns.abort_all();
    }
}

/// How long `tiny-backlog` waits after each accept.
pub const TINY_BACKLOG_ACCEPT_GAP: Duration = Duration::from_millis(100);

/// The exit code of a worker crashed by `crash-worker-at`.
pub const CRASH_EXIT_CODE: i32 = 70;

/// Exits the process at `crash-worker-at` seconds into the run, if this worker was
/// started before then (so its restarted successor does not crash again).
async fn crash_watch(faults: Arc<LiveFaults>, id: u32, run_started_us: u64) {
    let started_us = crate::unix_us();
    let origin = if run_started_us == 0 { started_us } else { run_started_us };
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let Some(at) = faults.get().crash_at else { continue };
        let due = origin + at.as_micros() as u64;
        if started_us < due && crate::unix_us() >= due {
            eprintln!("worker {id}: crash-worker-at={}: exiting abruptly", at.as_secs_f64());
            std::process::exit(CRASH_EXIT_CODE);
        }
    }
}

/// Diagnostics on stderr, at the level of `LOADGEN_TARGET_LOG` (error, warn, info,
/// debug, trace; default warn). Harmless if called twice.
pub fn init_tracing() {
    let level = match std::env::var("LOADGEN_TARGET_LOG").as_deref() {
        Ok("error") => tracing::Level::ERROR,
        Ok("info") => tracing::Level::INFO,
        Ok("debug") => tracing::Level::DEBUG,
        Ok("trace") => tracing::Level::TRACE,
        _ => tracing::Level::WARN,
    };
    use std::io::IsTerminal as _;
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_max_level(level)
        .with_target(false)
        .try_init();
}

/// The body of a worker process: `config_json` is the value of [`WORKER_ENV`]. Prints
/// [`READY_PREFIX`] and the address on stdout once accepting, runs until SIGTERM or
/// SIGINT, then stops gracefully.
pub fn run_worker_process(config_json: &str) -> Result<(), TargetError> {
    use std::io::Write as _;
    init_tracing();
    let config: WorkerConfig = serde_json::from_str(config_json)
        .map_err(|e| TargetError::Config(format!("{WORKER_ENV} is not a worker configuration: {e}")))?;
    let id = config.id;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TargetError::io("tokio runtime", e))?;
    runtime.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(|e| TargetError::io("SIGTERM handler", e))?;
        let mut int = signal(SignalKind::interrupt()).map_err(|e| TargetError::io("SIGINT handler", e))?;
        let run_started_us = config.run_started_us;
        let worker = Worker::start(config).await?;
        tokio::spawn(crash_watch(worker.faults().clone(), id, run_started_us));
        let mut out = std::io::stdout();
        writeln!(out, "{READY_PREFIX} {}", worker.addr())
            .and_then(|()| out.flush())
            .map_err(|e| TargetError::Worker { id, what: format!("cannot report readiness: {e}") })?;
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!(worker = id, "stopping");
        worker.stop().await;
        Ok(())
    })
}

/// Resolves once `shutdown` is true (or its sender is gone).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}
