//! What a server run counted: per-thread [`Counters`] (plain integers, no atomics on
//! the hot path) merged into one [`Summary`] at the end, plus the few live figures
//! shared between threads and the handle ([`Shared`]).
//!
//! What it does not do: format anything for a terminal (the CLI does).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use loadgen_tls::TlsErrorKind;
use serde::Serialize;

/// Counters of one thread.
#[derive(Clone, Debug, Default)]
pub(super) struct Counters {
    pub accepted: u64,
    pub upgraded: u64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub pings: u64,
    pub closes_in: u64,
    pub enobufs: u64,
    pub push_dropped: u64,
    pub aborted: u64,
    /// Receives cancelled because a connection's output passed the backpressure limit.
    pub recv_paused: u64,
    /// Most output queued on one connection (bytes).
    pub peak_backlog: u64,
    pub accept_errors: BTreeMap<&'static str, u64>,
    pub refused: BTreeMap<u16, u64>,
    pub protocol_errors: BTreeMap<&'static str, u64>,
    /// TLS handshakes completed.
    pub tls_handshakes: u64,
    /// TLS sessions that failed before their handshake completed.
    pub tls_handshakes_failed: u64,
    /// TLS failures by kind (indexed by `TlsErrorKind::index`).
    pub tls_errors: [u64; TlsErrorKind::ALL.len()],
    /// Fault effects (see `faults`).
    pub stalls: u64,
    pub closed_by_fault: u64,
    pub reset_by_fault: u64,
    pub refused_by_fault: u64,
    pub upgrades_unanswered: u64,
    pub echoes_dropped: u64,
}

/// Live figures shared by the threads and the handle.
#[derive(Debug, Default)]
pub(super) struct Shared {
    pub stop: AtomicBool,
    pub open: AtomicU64,
    pub peak_open: AtomicU64,
    pub accepted: AtomicU64,
    pub accept_table_full: AtomicU64,
    // Published by each thread every few tens of milliseconds, not per operation.
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub recv_paused: AtomicU64,
}

impl Shared {
    pub fn opened(&self) {
        let now = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak_open.fetch_max(now, Ordering::Relaxed);
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub fn closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    /// Adds what a thread counted since its last publication.
    pub fn publish(&self, bytes_in: u64, bytes_out: u64, recv_paused: u64) {
        for (a, v) in [(&self.bytes_in, bytes_in), (&self.bytes_out, bytes_out), (&self.recv_paused, recv_paused)] {
            if v > 0 {
                a.fetch_add(v, Ordering::Relaxed);
            }
        }
    }
}

/// A snapshot of a running server, for progress lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Live {
    /// Connections accepted so far.
    pub accepted: u64,
    /// Connections open now.
    pub open: u64,
    /// Accepts refused because a ring's direct-descriptor table was full (ENFILE).
    pub accept_table_full: u64,
    /// Bytes received so far (TCP payload; published by each thread every ≤ 50 ms).
    pub bytes_in: u64,
    /// Bytes sent so far (as `bytes_in`).
    pub bytes_out: u64,
    /// Receives paused so far for backpressure (as `bytes_in`).
    pub recv_paused: u64,
}

impl Shared {
    pub fn live(&self) -> Live {
        Live {
            accepted: self.accepted.load(Ordering::Relaxed),
            open: self.open.load(Ordering::Relaxed),
            accept_table_full: self.accept_table_full.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            recv_paused: self.recv_paused.load(Ordering::Relaxed),
        }
    }
}

/// What one thread reports when it ends.
#[derive(Debug, Default)]
pub(super) struct ThreadReport {
    pub counters: Counters,
    pub cpu: Duration,
    pub error: Option<String>,
    pub flags: &'static str,
}

/// The outcome of a server run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// What was served.
    pub protocol: super::ServeProtocol,
    /// Whether connections spoke TLS (wss://, or TLS around raw TCP).
    pub tls: bool,
    /// Server threads (one ring each).
    pub threads: usize,
    /// io_uring setup flags used.
    pub ring_flags: String,
    /// TCP connections accepted.
    pub accepted: u64,
    /// Most connections open at once (all threads).
    pub peak_open: u64,
    /// Connections that completed the WebSocket upgrade (0 in raw TCP).
    pub upgraded: u64,
    /// Upgrade requests refused, by HTTP status.
    pub refused: BTreeMap<u16, u64>,
    /// Data messages received. Raw TCP: `bytes_in` ÷ the configured raw message size
    /// (0 without one).
    pub messages_in: u64,
    /// Data messages sent (echoes and pushes). Raw TCP: pushes, or in echo `bytes_out`
    /// ÷ the configured raw message size (0 without one).
    pub messages_out: u64,
    /// Bytes received (TCP payload, upgrade requests included).
    pub bytes_in: u64,
    /// Bytes sent (TCP payload, upgrade answers included).
    pub bytes_out: u64,
    /// Pings answered.
    pub pings: u64,
    /// Close frames received from clients; raw TCP: connections the client ended with
    /// EOF or, with TLS, `close_notify` (the normal end of a raw connection).
    pub closes_in: u64,
    /// Connections ended without a close handshake (reset, receive or send error,
    /// forced at stop; WebSocket: also EOF without a close frame).
    pub aborted: u64,
    /// Failed accepts by errno name (`ENFILE`: direct-descriptor table full).
    pub accept_errors: BTreeMap<String, u64>,
    /// Client protocol violations by kind (each answered with a close code).
    pub protocol_errors: BTreeMap<String, u64>,
    /// TLS handshakes completed (0 without TLS).
    pub tls_handshakes: u64,
    /// TLS sessions that failed before their handshake completed (each also counted
    /// in `tls_errors`). A client that goes away mid-handshake is not a failure: it is
    /// counted in `aborted`.
    pub tls_handshakes_failed: u64,
    /// TLS failures by kind ([`TlsErrorKind::name`]: `tls_protocol`,
    /// `tls_handshake_failure`, `tls_decrypt`, ...), each answered with the fatal alert
    /// rustls chose and a close. A client that closes without `close_notify` is not one.
    pub tls_errors: BTreeMap<String, u64>,
    /// Multishot receives ended by an empty provided-buffer ring (`-ENOBUFS`).
    pub buffer_ring_exhausted: u64,
    /// Push messages dropped because a connection had too much output queued.
    pub push_dropped: u64,
    /// Receives paused (cancelled, re-armed once the output drains) because a client
    /// did not read what it was sent and its connection's output passed the limit.
    pub recv_paused: u64,
    /// Most output queued on one connection at once, in bytes (the backpressure limit
    /// plus at most what the receives of one completion batch held).
    pub peak_backlog_bytes: u64,
    /// Wall time from start to the end of the last thread.
    pub elapsed: Duration,
    /// CPU time (user + system) of the server threads.
    pub cpu: Duration,
    /// Resident memory of the process when the server became ready.
    pub rss_at_ready_bytes: u64,
    /// Peak resident memory of the process (VmHWM, which the kernel updates lazily:
    /// a lower bound of the true peak, and never below the resident size at ready).
    pub peak_rss_bytes: u64,
    /// Memory of the provided-buffer rings (all threads): resident once the buffers
    /// have cycled, whatever the number of connections.
    pub recv_buffer_bytes: u64,
    /// Faults the server was told to commit (`--fault` specs, canonical form).
    pub faults: Vec<String>,
    /// Stalls of the server loop (fault `stall`; every thread stalls on the same
    /// schedule, so this is the most any thread had, not a sum).
    pub stalls: u64,
    /// Connections closed by a fault (`close-after`, `close-all-at`): close 1001, or
    /// FIN in raw TCP.
    pub closed_by_fault: u64,
    /// Connections reset by a fault (`reset-after`, `reset-all-at`).
    pub reset_by_fault: u64,
    /// Valid upgrade requests refused by the fault `refuse` (also in `refused` by status).
    pub refused_by_fault: u64,
    /// Upgrade requests read and never answered (fault `no-upgrade-reply`).
    pub upgrades_unanswered: u64,
    /// Echoes not sent (fault `drop-echo`); the messages are still in `messages_in`.
    pub echoes_dropped: u64,
    /// Threads that failed (io_uring errors); empty when all is well.
    pub errors: Vec<String>,
}

impl Summary {
    pub(super) fn add(&mut self, r: ThreadReport) {
        let c = r.counters;
        self.threads += 1;
        if self.ring_flags.is_empty() {
            self.ring_flags = r.flags.to_string();
        }
        self.accepted += c.accepted;
        self.upgraded += c.upgraded;
        self.messages_in += c.messages_in;
        self.messages_out += c.messages_out;
        self.bytes_in += c.bytes_in;
        self.bytes_out += c.bytes_out;
        self.pings += c.pings;
        self.closes_in += c.closes_in;
        self.aborted += c.aborted;
        self.buffer_ring_exhausted += c.enobufs;
        self.push_dropped += c.push_dropped;
        self.recv_paused += c.recv_paused;
        self.peak_backlog_bytes = self.peak_backlog_bytes.max(c.peak_backlog);
        self.cpu += r.cpu;
        self.stalls = self.stalls.max(c.stalls);
        self.closed_by_fault += c.closed_by_fault;
        self.reset_by_fault += c.reset_by_fault;
        self.refused_by_fault += c.refused_by_fault;
        self.upgrades_unanswered += c.upgrades_unanswered;
        self.echoes_dropped += c.echoes_dropped;
        for (k, v) in c.refused {
            *self.refused.entry(k).or_default() += v;
        }
        for (k, v) in c.accept_errors {
            *self.accept_errors.entry(k.to_string()).or_default() += v;
        }
        for (k, v) in c.protocol_errors {
            *self.protocol_errors.entry(k.to_string()).or_default() += v;
        }
        self.tls_handshakes += c.tls_handshakes;
        self.tls_handshakes_failed += c.tls_handshakes_failed;
        for (kind, &v) in TlsErrorKind::ALL.iter().zip(&c.tls_errors) {
            if v > 0 {
                *self.tls_errors.entry(kind.name().to_string()).or_default() += v;
            }
        }
        self.errors.extend(r.error);
    }

    /// Peak resident memory above the ready baseline and the receive buffers, per
    /// connection at peak, in bytes: a rough upper bound of what a connection costs in
    /// user space (the kernel's socket memory is not in RSS).
    pub fn rss_per_peak_connection(&self) -> Option<u64> {
        let grown = self.peak_rss_bytes.saturating_sub(self.rss_at_ready_bytes).saturating_sub(self.recv_buffer_bytes);
        (self.peak_open > 0).then(|| grown / self.peak_open)
    }
}

/// Name of an errno for counters.
pub(super) fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::ENOMEM => "ENOMEM",
        libc::ENOBUFS => "ENOBUFS",
        libc::EPERM => "EPERM",
        libc::EINVAL => "EINVAL",
        libc::EBADF => "EBADF",
        libc::EPROTO => "EPROTO",
        libc::ECANCELED => "ECANCELED",
        _ => "other",
    }
}

/// Resident set size of this process, from `/proc/self/statm`.
pub(super) fn rss_bytes() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .map_or(0, |pages| pages * page)
}

/// Peak resident set size (VmHWM) of this process.
pub(super) fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// CPU time (user + system) of the calling thread.
pub(super) fn thread_cpu() -> Duration {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a rusage into the pointer we own.
    let ru = unsafe {
        if libc::getrusage(libc::RUSAGE_THREAD, ru.as_mut_ptr()) != 0 {
            return Duration::ZERO;
        }
        ru.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}
