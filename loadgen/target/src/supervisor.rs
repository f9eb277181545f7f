//! Worker processes on one port: the supervisor reserves the port (a socket bound with
//! SO_REUSEPORT that never listens, held for the supervisor's life, so a port 0 becomes
//! one concrete port every worker shares and nobody else takes it between restarts),
//! starts N workers from a given program with the [`WORKER_ENV`] configuration, waits
//! for each to report ready, and from a monitor thread restarts any that exits (after
//! 100 ms, doubling up to 3.2 s while they keep dying within a second of starting),
//! reporting each exit and restart as a [`SupervisorEvent`]. Workers run in their own
//! process group (a terminal's Ctrl-C reaches the supervisor only) and die with it.
//!
//! Stopping sends SIGTERM to every worker (they close their WebSockets with 1001) and
//! waits for them, SIGKILL after the drain timeout. No networking besides the reservation.
//!
//! With `own_ports` (the HAProxy topology), each worker gets a port of its own on
//! 127.0.0.1, reserved the same way, so a restarted worker comes back where the
//! balancer expects it.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::TargetError;
use crate::redis_server::{die_with_parent, terminate};
use crate::worker::{READY_PREFIX, WORKER_ENV, WorkerConfig, reuseport_socket};

/// How long a starting worker has to report ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// What to supervise.
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    pub workers: u32,
    /// The program a worker runs (the `loadgen` binary, or `loadgen-target-worker`).
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// The workers' configuration; `id` and `listen` are set per worker.
    pub worker: WorkerConfig,
    /// A loopback port per worker instead of one shared port.
    pub own_ports: bool,
}

/// Something that happened to a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SupervisorEvent {
    /// A worker exited while the supervisor was running (it will be restarted).
    Exited { worker: u32, pid: u32, status: String },
    /// A worker was started again; `restarts` counts every restart so far.
    Restarted { worker: u32, pid: u32, restarts: u64 },
    /// Starting it again failed (retried later).
    RestartFailed { worker: u32, error: String },
    /// The embedded Redis exited by itself (it will be restarted on its port).
    RedisExited { pid: u32, port: u16, status: String },
    /// The embedded Redis was started again, empty; `restarts` counts them.
    RedisRestarted { pid: u32, port: u16, restarts: u64 },
    /// Starting the embedded Redis again failed (retried with backoff).
    RedisRestartFailed { error: String },
    /// HAProxy now sends new connections to a worker by this stickiness, or round
    /// robin (none: `no-sticky` switched on); open connections stay where they are.
    HaproxyBalancing { sticky: Option<crate::haproxy::Sticky> },
    /// Telling HAProxy of a `no-sticky` switch failed (tried again in 200 ms).
    HaproxySwitchFailed { error: String },
}

impl std::fmt::Display for SupervisorEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exited { worker, pid, status } => {
                write!(f, "worker {worker} (pid {pid}) exited: {status}; restarting")
            }
            Self::Restarted { worker, pid, restarts } => {
                write!(f, "worker {worker} restarted as pid {pid} ({restarts} restart(s) so far)")
            }
            Self::RestartFailed { worker, error } => write!(f, "worker {worker} could not be restarted: {error}"),
            Self::RedisExited { pid, port, status } => {
                write!(f, "embedded redis-server (pid {pid}, port {port}) exited: {status}; restarting")
            }
            Self::RedisRestarted { pid, port, restarts } => {
                write!(
                    f,
                    "embedded redis-server restarted on port {port} as pid {pid}, empty ({restarts} restart(s) so far)"
                )
            }
            Self::RedisRestartFailed { error } => write!(f, "embedded redis-server could not be restarted: {error}"),
            Self::HaproxyBalancing { sticky: None } => {
                write!(f, "haproxy: no-sticky on, new connections go round robin (open ones stay where they are)")
            }
            Self::HaproxyBalancing { sticky: Some(s) } => {
                let by = match s {
                    crate::haproxy::Sticky::User => "the user id",
                    crate::haproxy::Sticky::Cookie => "cookie or user id",
                };
                write!(f, "haproxy: no-sticky off, new connections stick to a worker by {by} again")
            }
            Self::HaproxySwitchFailed { error } => write!(f, "haproxy: cannot switch no-sticky: {error}; retrying"),
        }
    }
}

#[derive(Debug)]
struct Slot {
    child: Option<Child>,
    started: Instant,
    quick_failures: u32,
    next_start: Instant,
}

#[derive(Debug)]
struct Shared {
    config: SupervisorConfig,
    /// One shared address, or one per worker.
    addrs: Vec<SocketAddr>,
    slots: Mutex<Vec<Slot>>,
    stopping: AtomicBool,
    restarts: AtomicU64,
    events: Mutex<mpsc::Sender<SupervisorEvent>>,
}

/// Running workers.
#[derive(Debug)]
pub struct Supervisor {
    shared: Arc<Shared>,
    monitor: Option<JoinHandle<()>>,
    events: Mutex<mpsc::Receiver<SupervisorEvent>>,
    _reservations: Vec<socket2::Socket>,
}

pub(crate) fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}

/// Starts worker `id`; the receiver gets its address once it reports ready.
fn spawn(shared: &Shared, id: u32) -> Result<(Child, mpsc::Receiver<String>), TargetError> {
    let mut config = shared.config.worker.clone();
    config.id = id;
    config.listen = shared.addrs[id as usize % shared.addrs.len()];
    let json = serde_json::to_string(&config).expect("a worker configuration serializes");
    let mut cmd = Command::new(&shared.config.program);
    cmd.args(&shared.config.args)
        .env(WORKER_ENV, json)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0);
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| TargetError::Worker {
        id,
        what: format!("cannot start {}: {e}", shared.config.program.display()),
    })?;
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(format!("worker-{id}-stdout"))
        .spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                match line.strip_prefix(READY_PREFIX) {
                    Some(addr) => {
                        let _ = tx.send(addr.trim().to_string());
                    }
                    None => println!("worker {id}: {line}"),
                }
            }
        })
        .map_err(|e| TargetError::io("a worker's stdout thread", e))?;
    Ok((child, rx))
}

impl Supervisor {
    /// Reserves the port, starts every worker and waits until all are ready.
    pub fn start(config: SupervisorConfig) -> Result<Supervisor, TargetError> {
        if config.workers == 0 {
            return Err(TargetError::Config("at least one worker is needed".into()));
        }
        let listen = config.worker.listen;
        let (bind, count) =
            if config.own_ports { (SocketAddr::from(([127, 0, 0, 1], 0)), config.workers) } else { (listen, 1) };
        let mut reservations = Vec::new();
        let mut addrs = Vec::new();
        for _ in 0..count {
            let reservation = reuseport_socket(bind).map_err(|source| TargetError::Listen { addr: bind, source })?;
            let addr = reservation
                .local_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .ok_or_else(|| TargetError::Config(format!("cannot read the address bound for {bind}")))?;
            reservations.push(reservation);
            addrs.push(addr);
        }
        let (events_tx, events_rx) = mpsc::channel();
        let mut config = config;
        if config.worker.run_started_us == 0 {
            config.worker.run_started_us = crate::unix_us();
        }
        let shared = Arc::new(Shared {
            config,
            addrs,
            slots: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
            restarts: AtomicU64::new(0),
            events: Mutex::new(events_tx),
        });
        let mut started: Vec<(Child, mpsc::Receiver<String>)> = Vec::new();
        let fail = |started: Vec<(Child, mpsc::Receiver<String>)>, e: TargetError| {
            for (child, _) in started {
                terminate(child, Duration::from_secs(2));
            }
            Err(e)
        };
        for id in 0..shared.config.workers {
            match spawn(&shared, id) {
                Ok(s) => started.push(s),
                Err(e) => return fail(started, e),
            }
        }
        let deadline = Instant::now() + READY_TIMEOUT;
        for id in 0..started.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if started[id].1.recv_timeout(left).is_err() {
                let status = started[id].0.try_wait().ok().flatten().map_or("still running".into(), describe);
                let what = format!("not ready within {} s ({status}); its errors are above", READY_TIMEOUT.as_secs());
                return fail(started, TargetError::Worker { id: id as u32, what });
            }
        }
        let now = Instant::now();
        *shared.slots.lock().expect("not poisoned") = started
            .into_iter()
            .map(|(child, _)| Slot { child: Some(child), started: now, quick_failures: 0, next_start: now })
            .collect();
        let monitor = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("target-supervisor".into())
                .spawn(move || monitor(&shared))
                .map_err(|e| TargetError::io("the supervisor thread", e))?
        };
        Ok(Supervisor { shared, monitor: Some(monitor), events: Mutex::new(events_rx), _reservations: reservations })
    }

    /// The port every worker listens on.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addrs[0]
    }

    /// Each worker's address (all the same unless `own_ports`).
    pub fn worker_addrs(&self) -> Vec<SocketAddr> {
        (0..self.shared.config.workers as usize).map(|i| self.shared.addrs[i % self.shared.addrs.len()]).collect()
    }

    /// Restarts so far.
    pub fn restarts(&self) -> u64 {
        self.shared.restarts.load(Ordering::Relaxed)
    }

    /// Each worker's pid (none while it is down).
    pub fn worker_pids(&self) -> Vec<Option<u32>> {
        let slots = self.shared.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.iter().map(|s| s.child.as_ref().map(Child::id)).collect()
    }

    /// Events since the last call.
    pub fn events(&self) -> Vec<SupervisorEvent> {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).try_iter().collect()
    }

    /// Stops every worker gracefully (SIGTERM; SIGKILL after the drain timeout + 2 s)
    /// and returns how each ended.
    pub fn stop(mut self) -> Vec<Option<String>> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Vec<Option<String>> {
        self.shared.stopping.store(true, Ordering::Relaxed);
        if let Some(m) = self.monitor.take() {
            let _ = m.join();
        }
        let children: Vec<Option<Child>> = {
            let mut slots = self.shared.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.iter_mut().map(|s| s.child.take()).collect()
        };
        let grace = self.shared.config.worker.drain_timeout + Duration::from_secs(2);
        // Signal all first, then wait, so they drain in parallel.
        for c in children.iter().flatten() {
            // SAFETY: kill(2) on our unreaped child.
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
            }
        }
        children.into_iter().map(|c| c.and_then(|c| terminate(c, grace)).map(describe)).collect()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if self.monitor.is_some() {
            self.shutdown();
        }
    }
}

fn monitor(shared: &Shared) {
    while !shared.stopping.load(Ordering::Relaxed) {
        let mut events = Vec::new();
        {
            let mut slots = shared.slots.lock().unwrap_or_else(|p| p.into_inner());
            for (id, slot) in slots.iter_mut().enumerate() {
                let id = id as u32;
                if let Some(child) = slot.child.as_mut()
                    && let Ok(Some(status)) = child.try_wait()
                {
                    let pid = child.id();
                    slot.child = None;
                    let quick = slot.started.elapsed() < Duration::from_secs(1);
                    slot.quick_failures = if quick { slot.quick_failures + 1 } else { 0 };
                    let backoff = Duration::from_millis(100) * (1 << slot.quick_failures.min(5));
                    slot.next_start = Instant::now() + backoff;
                    tracing::info!(worker = id, pid, status = %describe(status), "worker exited");
                    events.push(SupervisorEvent::Exited { worker: id, pid, status: describe(status) });
                }
                if slot.child.is_none() && Instant::now() >= slot.next_start {
                    match spawn(shared, id) {
                        Ok((child, _ready)) => {
                            let restarts = shared.restarts.fetch_add(1, Ordering::Relaxed) + 1;
                            events.push(SupervisorEvent::Restarted { worker: id, pid: child.id(), restarts });
                            slot.child = Some(child);
                            slot.started = Instant::now();
                        }
                        Err(e) => {
                            slot.next_start = Instant::now() + Duration::from_secs(1);
                            events.push(SupervisorEvent::RestartFailed { worker: id, error: e.to_string() });
                        }
                    }
                }
            }
        }
        let tx = shared.events.lock().unwrap_or_else(|p| p.into_inner());
        for e in events {
            let _ = tx.send(e);
        }
        drop(tx);
        std::thread::sleep(Duration::from_millis(25));
    }
}
