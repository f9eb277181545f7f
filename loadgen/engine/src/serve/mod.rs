//! The server role of the engine (`loadgen serve`): a WebSocket server on io_uring,
//! fast enough not to be the bottleneck of loadgen's own benchmarks, and the same
//! server without WebSocket ([`ServeProtocol::RawTcp`]): the measured ceiling of this
//! machine for the I/O pattern below.
//!
//! [`start`] binds one SO_REUSEPORT listener per thread (backlog 65535, clamped by the
//! kernel to `net.core.somaxconn`), starts one thread per listener with its own ring
//! (SINGLE_ISSUER|DEFER_TASKRUN when offered), and returns once every thread accepts.
//! Connections are accepted by a multishot accept straight into direct descriptors
//! (the ring's fixed-file table, sized `min(RLIMIT_NOFILE hard − 256, 2^20)` per
//! thread after raising the soft limit to the hard one); a full table makes accepts
//! fail with ENFILE, which is counted ([`ServerHandle::live`]) while serving goes on.
//! Receives are multishot from one provided-buffer ring per thread, so an idle
//! connection holds no receive buffer; `-ENOBUFS` is counted and the receive re-armed.
//! Sends own their buffer until their completion; partial sends are resumed.
//!
//! Two protocols ([`ServeProtocol`]), one worker loop:
//! - WebSocket (default): any path upgrades; modes ([`Mode`]) echo every message, sink
//!   (count and drop), push probe payloads ([`crate::payload`]) at a total rate per
//!   thread. Pings get pongs, a client close is echoed, a protocol violation gets a
//!   close with its code.
//! - Raw TCP: no upgrade, no framing; the byte stream is the application's. Echo
//!   writes back exactly the bytes received, in order; sink counts bytes; push sends
//!   probe payloads back to back. Messages are counted as bytes ÷
//!   [`ServeConfig::raw_message_size`] when one is given, else only bytes are.
//!
//! Backpressure: a connection whose queued output passes a limit (4 MiB WebSocket,
//! 256 KiB raw) has its receive cancelled (counted: [`Summary::recv_paused`]) until
//! the output drains below a quarter of it, so a client that writes without reading
//! cannot grow the server's memory ([`Summary::peak_backlog_bytes`]); push messages
//! to such a connection are dropped and counted.
//!
//! Stopping ([`ServerHandle::stop`], or [`ServeConfig::duration`]): listeners close,
//! every open WebSocket connection gets close 1001 and 1 s to answer; raw connections
//! get their queued output flushed, then FIN; whatever is left after 1 s is reset, and
//! threads are gone within 2 s. [`ServerHandle::join`] returns the [`Summary`].
//!
//! TLS ([`ServeConfig::tls`]): every accepted connection gets its own rustls server
//! session (boxed; made at accept). Received ciphertext is decrypted into a per-thread
//! scratch buffer, so an idle connection still holds no receive buffer beyond what
//! rustls keeps in the session; every byte sent (handshake records, the 101, frames,
//! raw bytes, alerts) is a TLS record; a graceful end sends `close_notify` before the
//! FIN, and a client that just closes is a normal end. TLS failures are counted by kind
//! ([`Summary::tls_errors`]) and answered with rustls's fatal alert. Works for both
//! protocols (a raw connection is open once its handshake completes).
//!
//! Faults ([`ServeConfig::faults`], `faults.rs`, fired by the worker loop): on command
//! the server stalls, closes or resets connections, refuses or ignores upgrades, drops
//! echoes; each effect is counted in the [`Summary`].
//!
//! A listen port that another socket holds already is refused
//! ([`ServeError::AddressInUse`]) rather than shared: the listeners use SO_REUSEPORT
//! among themselves, so a probe bind without it checks the port first.
//!
//! What it does not do: TLS client certificates, permessage-deflate (offers are
//! ignored), subprotocols, IPv6 listeners, HTTP routing (any path upgrades), message
//! boundaries in raw TCP (a raw "message" is a byte count, nothing is parsed), printing.

mod conn;
mod ops;
mod session;
mod summary;
mod tls;
mod upgrade;
mod worker;

#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;

use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use loadgen_tls::{TlsError, TlsServerConfig};
pub use summary::{Live, Summary};
pub use worker::faults::{FAULT_SYNTAX, Fault};

use crate::uring::UringError;
use crate::uring::probe::Capabilities;
use summary::{Shared, ThreadReport};

/// What the server does with open connections.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// Send every text or binary message back as it came.
    Echo,
    /// Read and count messages, send nothing (but pongs and close replies).
    Sink,
    /// Send probe payloads ([`crate::payload::Probe`], binary) to the open
    /// connections, round robin; messages from clients are counted and dropped.
    Push {
        /// Messages per second per server thread, spread over its open connections.
        rate: f64,
        /// Bytes per message (at least the 36-byte probe header).
        message_size: usize,
    },
}

/// What is spoken on accepted connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServeProtocol {
    /// RFC 6455 WebSocket: HTTP upgrade, then frames.
    #[default]
    WebSocket,
    /// Plain TCP: no upgrade and no framing; the modes act on the byte stream.
    RawTcp,
}

impl ServeProtocol {
    /// Name for people (`WebSocket`, `raw TCP`).
    pub fn name(self) -> &'static str {
        match self {
            Self::WebSocket => "WebSocket",
            Self::RawTcp => "raw TCP",
        }
    }
}

/// How to serve.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Address to listen on (IPv4; port 0 picks a free port shared by all threads).
    pub listen: SocketAddr,
    /// WebSocket or raw TCP.
    pub protocol: ServeProtocol,
    /// What to do with messages (raw TCP: with the byte stream).
    pub mode: Mode,
    /// Server threads, each with its own listener and ring.
    pub threads: usize,
    /// Pin thread `i` to CPU `pin_cpu + i`.
    pub pin_cpu: Option<usize>,
    /// Stop by itself after this long.
    pub duration: Option<Duration>,
    /// Buffers in each thread's provided-buffer ring (rounded up to a power of two).
    pub recv_buffers: u16,
    /// Size of each receive buffer.
    pub recv_buffer_size: u32,
    /// Largest message accepted (larger: close 1009).
    pub max_message_size: usize,
    /// Caps the fixed-file table (connections per thread) below what RLIMIT_NOFILE allows.
    pub max_connections_per_thread: Option<u32>,
    /// Raw TCP only: bytes per application message, so that messages are counted as
    /// bytes ÷ size (received; and sent, in echo). `None`: raw messages are not counted.
    pub raw_message_size: Option<usize>,
    /// Speak TLS on every connection with this certificate (wss://; with
    /// [`ServeProtocol::RawTcp`], TLS around the byte stream). `None`: plain TCP.
    pub tls: Option<Arc<TlsServerConfig>>,
    /// Misbehaviour on command (at most one fault of each kind).
    pub faults: Vec<Fault>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            protocol: ServeProtocol::WebSocket,
            mode: Mode::Echo,
            threads: 1,
            pin_cpu: None,
            duration: None,
            recv_buffers: 4096,
            recv_buffer_size: 4096,
            max_message_size: 16 << 20,
            max_connections_per_thread: None,
            raw_message_size: None,
            tls: None,
            faults: Vec::new(),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A setting is out of range.
    #[error("invalid server configuration: {0}")]
    Config(String),
    /// Binding or listening failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// Address asked for.
        addr: SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
    /// Another socket (another process, or another server in this one) holds the port.
    #[error("cannot listen on {addr}: address in use (another process holds it)")]
    AddressInUse {
        /// Address asked for.
        addr: SocketAddr,
    },
    /// io_uring is missing something the server needs.
    #[error(transparent)]
    Uring(#[from] UringError),
    /// A server thread failed while setting up.
    #[error("{0}")]
    Thread(String),
}

/// A running server.
pub struct ServerHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<ThreadReport>>,
    started: Instant,
    rss_at_ready: u64,
    fixed_files: u32,
    recv_buffer_bytes: u64,
    protocol: ServeProtocol,
    mode: Mode,
    raw_message_size: Option<usize>,
    tls: bool,
    faults: Vec<String>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle").field("addr", &self.addr).field("threads", &self.threads.len()).finish()
    }
}

impl ServerHandle {
    /// The address the server listens on (with the port chosen for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Asks every thread to stop (returns at once; [`ServerHandle::join`] waits).
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }

    /// Whether every thread has ended (after a stop or the configured duration).
    pub fn is_finished(&self) -> bool {
        self.threads.iter().all(JoinHandle::is_finished)
    }

    /// Live figures (connections, accepts refused for a full table, bytes, paused
    /// receives); the byte and pause counts lag by up to 50 ms.
    pub fn live(&self) -> Live {
        self.shared.live()
    }

    /// Direct-descriptor slots per thread: the most connections a thread can hold.
    pub fn connections_per_thread(&self) -> u32 {
        self.fixed_files
    }

    /// Waits for every thread to end (it does not stop them: call
    /// [`ServerHandle::stop`] first, or configure a duration) and returns the summary.
    pub fn join(mut self) -> Summary {
        self.join_threads()
    }

    fn join_threads(&mut self) -> Summary {
        let mut s = Summary::default();
        for t in self.threads.drain(..) {
            match t.join() {
                Ok(report) => s.add(report),
                Err(_) => s.errors.push("a server thread panicked".to_string()),
            }
        }
        s.peak_open = self.shared.peak_open.load(Ordering::Relaxed);
        s.elapsed = self.started.elapsed();
        s.rss_at_ready_bytes = self.rss_at_ready;
        s.peak_rss_bytes = summary::peak_rss_bytes().max(summary::rss_bytes()).max(self.rss_at_ready);
        s.recv_buffer_bytes = self.recv_buffer_bytes;
        s.protocol = self.protocol;
        s.tls = self.tls;
        s.faults.clone_from(&self.faults);
        if let (ServeProtocol::RawTcp, Some(size)) = (self.protocol, self.raw_message_size) {
            let size = size as u64;
            s.messages_in = s.bytes_in / size;
            if self.mode == Mode::Echo {
                s.messages_out = s.bytes_out / size;
            }
        }
        s
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop();
            self.join_threads();
        }
    }
}

/// Starts the server; returns when every thread accepts connections.
///
/// Raises this process's soft RLIMIT_NOFILE to the hard limit (the fixed-file table of
/// a ring may not exceed it).
pub fn start(config: ServeConfig) -> Result<ServerHandle, ServeError> {
    validate(&config)?;
    let SocketAddr::V4(listen) = config.listen else {
        return Err(ServeError::Config("IPv6 listen addresses are not supported yet".into()));
    };
    let hard = raise_nofile_limit();
    let mut fixed_files = hard.saturating_sub(256).clamp(16, 1 << 20) as u32;
    if let Some(cap) = config.max_connections_per_thread {
        fixed_files = fixed_files.min(cap.max(1));
    }
    // Probed on a throw-away thread: tearing the probe's rings down later queues task
    // work on the thread that created them, which interrupts that thread's blocking
    // socket calls with EINTR (when they have a timeout). Better not the caller's.
    let caps = std::thread::scope(|s| s.spawn(Capabilities::probe).join())
        .map_err(|_| ServeError::Thread("the io_uring probe panicked".into()))??;
    caps.require_engine_opcodes()?;
    if let Some(f) = config.faults.iter().find(|f| f.resets())
        && !caps.supports("uring_cmd")
    {
        return Err(ServeError::Config(format!(
            "fault {} needs io_uring's setsockopt command (Linux 6.7 or later), which this kernel lacks",
            f.kind()
        )));
    }
    let in_use = |e: &std::io::Error| e.raw_os_error() == Some(libc::EADDRINUSE);
    let listen_error = |source: std::io::Error| match in_use(&source) {
        true => ServeError::AddressInUse { addr: SocketAddr::V4(listen) },
        false => ServeError::Listen { addr: SocketAddr::V4(listen), source },
    };
    if listen.port() != 0 {
        // Our listeners share the port through SO_REUSEPORT, and so would anyone
        // else's: a bind without it fails if any socket holds the port.
        drop(bind_socket(listen, false).map_err(listen_error)?);
    }
    let started = Instant::now();
    let clock = crate::clock::Clock::start();
    let mut listeners = Vec::with_capacity(config.threads);
    let mut addr = listen;
    for _ in 0..config.threads {
        let (fd, bound) = listen_reuseport(addr).map_err(listen_error)?;
        addr = bound;
        listeners.push(fd);
    }
    let shared = Arc::new(Shared::default());
    let (tx, rx) = std::sync::mpsc::channel();
    let mut handle = ServerHandle {
        addr: SocketAddr::V4(addr),
        shared: Arc::clone(&shared),
        threads: Vec::with_capacity(config.threads),
        started,
        rss_at_ready: 0,
        fixed_files,
        recv_buffer_bytes: (config.threads as u64)
            * u64::from(config.recv_buffers.next_power_of_two())
            * u64::from(config.recv_buffer_size),
        protocol: config.protocol,
        mode: config.mode,
        raw_message_size: config.raw_message_size,
        tls: config.tls.is_some(),
        faults: config.faults.iter().map(Fault::to_string).collect(),
    };
    for (index, listener) in listeners.into_iter().enumerate() {
        let setup = worker::WorkerSetup {
            index,
            listener,
            config: config.clone(),
            fixed_files,
            caps: caps.clone(),
            shared: Arc::clone(&shared),
            clock,
            ready: tx.clone(),
        };
        let spawned = std::thread::Builder::new().name(format!("serve-{index}")).spawn(move || worker::run(setup));
        match spawned {
            Ok(t) => handle.threads.push(t),
            Err(e) => return Err(ServeError::Thread(format!("cannot start a server thread: {e}"))),
        }
    }
    drop(tx);
    for _ in 0..config.threads {
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(ServeError::Thread(e)),
            Err(_) => return Err(ServeError::Thread("a server thread ended during setup".into())),
        }
    }
    handle.rss_at_ready = summary::rss_bytes();
    Ok(handle)
}

fn validate(c: &ServeConfig) -> Result<(), ServeError> {
    let bad = |m: String| Err(ServeError::Config(m));
    if c.threads == 0 || c.threads > 1024 {
        return bad(format!("threads must be 1 to 1024, not {}", c.threads));
    }
    if c.recv_buffers == 0 || c.recv_buffers > 1 << 15 {
        return bad(format!("receive buffers must be 1 to 32768, not {}", c.recv_buffers));
    }
    if !(64..=1 << 20).contains(&c.recv_buffer_size) {
        return bad(format!("receive buffer size must be 64 B to 1 MiB, not {}", c.recv_buffer_size));
    }
    if c.max_message_size == 0 {
        return bad("the largest message size must be positive".into());
    }
    match (c.protocol, c.raw_message_size) {
        (_, Some(0)) => return bad("the raw message size must be positive".into()),
        (ServeProtocol::WebSocket, Some(_)) => {
            return bad("a raw message size applies to raw TCP only (WebSocket counts frames)".into());
        }
        _ => {}
    }
    worker::faults::validate(&c.faults, c.protocol == ServeProtocol::RawTcp, c.mode == Mode::Echo)
        .map_err(ServeError::Config)?;
    if let Mode::Push { rate, message_size } = c.mode {
        if !(rate.is_finite() && rate > 0.0) {
            return bad(format!("push rate must be a positive number of messages per second, not {rate}"));
        }
        if message_size < crate::payload::HEADER_LEN || message_size > c.max_message_size {
            return bad(format!(
                "push message size must be {} B (the probe header) to {} B, not {message_size}",
                crate::payload::HEADER_LEN,
                c.max_message_size
            ));
        }
    }
    Ok(())
}

/// Pins the calling thread to `cpu`.
fn pin_to_cpu(cpu: usize) -> Result<(), String> {
    // SAFETY: cpu_set_t is plain data; CPU_SET bounds-checks against its size;
    // sched_setaffinity(0, ..) applies to the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if cpu >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
            return Err(format!("CPU {cpu} is out of range"));
        }
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(format!("cannot pin to CPU {cpu}: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the (new) soft limit.
fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read or write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

fn check(r: libc::c_int) -> std::io::Result<libc::c_int> {
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(r) }
}

/// A TCP socket bound to `addr` with SO_REUSEADDR and TCP_NODELAY (inherited by
/// accepted sockets), and SO_REUSEPORT when `reuseport`; not listening.
fn bind_socket(addr: SocketAddrV4, reuseport: bool) -> std::io::Result<OwnedFd> {
    // SAFETY: plain socket syscalls on a descriptor we own; pointers are to locals that
    // live through each call.
    unsafe {
        let fd = OwnedFd::from_raw_fd(check(libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0))?);
        let raw = fd.as_raw_fd();
        let one: libc::c_int = 1;
        let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        for (level, opt) in [
            (libc::SOL_SOCKET, libc::SO_REUSEADDR),
            (libc::SOL_SOCKET, libc::SO_REUSEPORT),
            (libc::IPPROTO_TCP, libc::TCP_NODELAY),
        ] {
            if opt != libc::SO_REUSEPORT || reuseport {
                check(libc::setsockopt(raw, level, opt, (&one as *const libc::c_int).cast(), len))?;
            }
        }
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: addr.port().to_be(),
            sin_addr: libc::in_addr { s_addr: u32::from(*addr.ip()).to_be() },
            sin_zero: [0; 8],
        };
        let sa_len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        check(libc::bind(raw, (&sa as *const libc::sockaddr_in).cast(), sa_len))?;
        Ok(fd)
    }
}

/// A listening TCP socket with SO_REUSEADDR, SO_REUSEPORT and TCP_NODELAY (inherited
/// by accepted sockets), backlog 65535. Returns it and the address it is bound to.
fn listen_reuseport(addr: SocketAddrV4) -> std::io::Result<(OwnedFd, SocketAddrV4)> {
    let fd = bind_socket(addr, true)?;
    let raw = fd.as_raw_fd();
    // SAFETY: plain socket syscalls on a descriptor we own; pointers are to locals that
    // live through each call.
    unsafe {
        check(libc::listen(raw, 65535))?;
        let sa_len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let mut bound: libc::sockaddr_in = std::mem::zeroed();
        let mut bound_len = sa_len;
        check(libc::getsockname(raw, (&mut bound as *mut libc::sockaddr_in).cast(), &mut bound_len))?;
        Ok((fd, SocketAddrV4::new(*addr.ip(), u16::from_be(bound.sin_port))))
    }
}
