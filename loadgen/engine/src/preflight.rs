//! Pre-flight checks and the capacity plan. Before a run, the host's limits
//! ([`HostFacts`], read once by [`HostFacts::read`]) are compared with the requested load
//! ([`LoadRequest`]); [`plan`] either returns a [`Plan`] (how many io_uring rings of how
//! many direct descriptors on which worker, which source addresses for which target, how
//! much memory and how many system-wide files) or refuses with *every* problem found,
//! each naming the exact command that fixes it, so a run never fails halfway on a limit
//! that was knowable beforehand.
//!
//! [`plan`] is pure and is tested with fabricated facts; only [`HostFacts::read`] and
//! [`raise_nofile_soft_to_hard`] touch the host.
//!
//! What it does not do: change sysctls or limits (it prints the commands), open sockets
//! or rings, account for connection churn (TIME_WAIT sockets keep their ports for 60 s,
//! so a run that reconnects needs headroom beyond this plan), conntrack on real NICs, or
//! the target server's own user-space memory. Memory figures are estimates from
//! measurements on the project's machines (≈ 3.9 KB of kernel memory per idle socket;
//! idle sockets hold no buffer memory), not guarantees; the buffers that scale with the
//! message size are counted as an upper bound (every connection that carries messages
//! with one in flight, and the pools full of warm message-sized buffers).

mod checks;
mod describe;
mod host;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

pub use host::{HostFacts, UnknownFact, raise_nofile_soft_to_hard};

/// Kernel cap on a ring's fixed-file table (`IORING_MAX_FIXED_FILES`).
pub const IORING_MAX_FIXED_FILES: u64 = 1 << 20;
/// Descriptors of RLIMIT_NOFILE not given to a ring's table (ordinary fds: rings, report
/// files, probes, listeners of in-process targets).
pub const FD_RESERVE: u64 = 256;
/// Ordinary descriptors the process needs besides one per ring.
pub const BASE_ORDINARY_FDS: u64 = 64;
/// More rings than this is refused: split the load over processes or hosts instead.
pub const MAX_RINGS: u64 = 4096;
/// More worker threads than this is refused.
pub const MAX_WORKERS: usize = 1024;
/// System-wide files kept free for everything else on the host.
pub const FILE_MARGIN: u64 = 4096;
/// Kernel memory per idle socket: Slab grew by 9.9 KB per loopback pair at 10k and by
/// ≈ 10.7 KB per pair at 800k (TCP object, inode, dentry, file, and the accept side).
pub const KERNEL_BYTES_PER_SOCKET: u64 = 5_500;
/// Kernel memory per fixed-file slot of a ring's table (a node pointer).
pub const KERNEL_BYTES_PER_SLOT: u64 = 8;
/// Generator user-space budget per connection (measured ≈ 300 B marginal per idle
/// connection, plus `Client`s lent to connections with bytes in flight).
pub const USER_BYTES_PER_CONNECTION: u64 = 512;
/// Generator user-space budget per ring (SQ/CQ arrays, its provided-buffer ring).
pub const USER_BYTES_PER_RING: u64 = 2 << 20;
/// Message-sized buffers a `Client` keeps (warm, also while pooled): the outgoing frame,
/// and the receive assembly buffer, which grows by doubling to up to twice the message.
pub const MESSAGE_COPIES_PER_CLIENT: u64 = 3;
/// Spare `Client`s a worker's pool keeps (`run::conn::ClientPool`), each with the warm
/// buffers of the last message it carried.
pub const CLIENT_POOL_KEEP: u64 = 4096;
/// Spare send buffers a worker's pool keeps (`bufpool::BufPool`); a send buffer holds
/// one copy of the message (sealed into TLS records on wss://).
pub const SEND_POOL_KEEP: u64 = 1024;
/// Send buffers larger than this are freed, not pooled.
pub const SEND_POOL_MAX_BUFFER: u64 = 1 << 20;
/// Memory use (percent of MemAvailable) above which the plan warns.
pub const MEMORY_WARN_PERCENT: u64 = 70;
/// Memory use (percent of MemAvailable) above which the plan refuses.
pub const MEMORY_REFUSE_PERCENT: u64 = 90;
/// Listen backlog below which a target on this host is warned about.
pub const MIN_BACKLOG: u64 = 4096;
/// The ephemeral range the fixes recommend.
pub const WIDE_PORT_RANGE: (u16, u16) = (1024, 65535);
/// The kernel's default ephemeral range, assumed when the real one cannot be read.
pub const DEFAULT_PORT_RANGE: (u16, u16) = (32768, 60999);
/// Automatic loopback sources available: 127.0.0.1 ..= 127.255.255.254.
pub const AUTO_SOURCE_MAX: u64 = (1 << 24) - 2;
/// At most this many source addresses are listed in a plan (the count is always exact).
pub const SOURCE_LIST_CAP: usize = 1024;

/// Source addresses for outgoing connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceAddrs {
    /// For IPv4 loopback targets 127.0.0.1, 127.0.0.2, ... as many as needed; for other
    /// targets the kernel chooses (one address).
    Auto,
    /// These addresses (bound with IP_BIND_ADDRESS_NO_PORT), spread round-robin over
    /// each target's connections; only those of the target's family are used for it.
    Explicit(Vec<IpAddr>),
}

/// The load a run asks for.
#[derive(Clone, Debug)]
pub struct LoadRequest {
    /// Connections held at the peak.
    pub connections: u64,
    /// Target addresses; connection k goes to target k mod len.
    pub targets: Vec<SocketAddr>,
    /// Source addresses.
    pub sources: SourceAddrs,
    /// Worker threads; connection k belongs to worker k mod workers.
    pub workers: usize,
    /// The targets run on this host, so kernel memory and files count both ends.
    pub target_on_this_host: bool,
    /// Bytes of each message the generator sends (0: none, an idle run).
    pub message_size: u64,
    /// Connections that carry messages (the rest are held idle); `None`: all of them.
    pub messaging_connections: Option<u64>,
}

impl LoadRequest {
    /// A request with automatic sources; the target counts as on this host when every
    /// target is a loopback address.
    pub fn new(connections: u64, targets: Vec<SocketAddr>, workers: usize) -> Self {
        let target_on_this_host = !targets.is_empty() && targets.iter().all(|t| t.ip().is_loopback());
        Self {
            connections,
            targets,
            sources: SourceAddrs::Auto,
            workers,
            target_on_this_host,
            message_size: 0,
            messaging_connections: None,
        }
    }

    /// The same request sending messages of `size` bytes on `connections` of its
    /// connections (`None`: on all of them).
    pub fn with_messages(mut self, size: u64, connections: Option<u64>) -> Self {
        self.message_size = size;
        self.messaging_connections = connections;
        self
    }
}

/// One problem: what, what was found, what is needed, and the command that fixes it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The limit or resource.
    pub what: String,
    /// What the host has.
    pub found: String,
    /// What the run needs.
    pub needed: String,
    /// The exact fix (a command where there is one).
    pub fix: String,
}

impl Problem {
    fn new(
        what: impl Into<String>,
        found: impl Into<String>,
        needed: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self { what: what.into(), found: found.into(), needed: needed.into(), fix: fix.into() }
    }

    /// A warning that `fact` could not be read, so `consequence`.
    fn unknown(facts: &HostFacts, fact: &str, consequence: &str) -> Self {
        let reason = facts.why_unknown(fact).unwrap_or("not read");
        Self::new(format!("{fact} unknown"), reason, "a readable value", consequence)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: found {}, need {}; fix: {}", self.what, self.found, self.needed, self.fix)
    }
}

/// Why a run cannot start. Every Display is one line naming the problem and the fix.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// The host cannot carry the requested load: every problem found, each with its fix.
    #[error("{}", refused_line(.0))]
    Refused(Vec<Problem>),
    /// A fact the plan cannot do without could not be read.
    #[error("cannot read {fact}: {reason} (loadgen needs it to plan the run; is /proc mounted?)")]
    HostFact {
        /// The fact.
        fact: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// The soft RLIMIT_NOFILE could not be raised to the hard one.
    #[error("cannot raise the RLIMIT_NOFILE soft limit to the hard limit {hard}: {reason}; fix: `ulimit -n {hard}`")]
    RaiseNofile {
        /// The hard limit.
        hard: u64,
        /// What went wrong.
        reason: String,
    },
}

fn refused_line(problems: &[Problem]) -> String {
    let list: Vec<String> = problems.iter().map(Problem::to_string).collect();
    let s = if problems.len() == 1 { "" } else { "s" };
    format!("pre-flight refused the run ({} problem{s}): {}", problems.len(), list.join(" | "))
}

/// One worker thread's share.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct WorkerPlan {
    /// Connections of this worker (k ≡ worker mod workers).
    pub connections: u64,
    /// Connections per ring of this worker (local index j goes to ring j mod rings).
    pub ring_connections: Vec<u64>,
}

/// One target's share.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TargetPlan {
    /// The target.
    pub addr: SocketAddr,
    /// Connections to it (k ≡ target mod targets).
    pub connections: u64,
    /// Source addresses its connections are spread over (round-robin).
    pub sources: u64,
    /// No bind: the kernel chooses the (single) source address.
    pub kernel_chooses_source: bool,
}

/// System-wide open files.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FilesPlan {
    /// Files the run adds (sockets of both ends when the target is here, rings) plus
    /// [`FILE_MARGIN`].
    pub needed: u64,
    /// `fs.file-max`.
    pub file_max: Option<u64>,
    /// Files in use before the run.
    pub in_use: Option<u64>,
}

/// Estimated memory.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MemoryPlan {
    /// Kernel memory: sockets (both ends when the target is here) and ring tables.
    pub kernel_bytes: u64,
    /// Generator user-space memory (including `message_bytes`).
    pub user_bytes: u64,
    /// The part of `user_bytes` that scales with the message size: the buffers of the
    /// `Client`s and sends that carry messages, pooled ones included, and one message
    /// template per worker.
    pub message_bytes: u64,
    /// Whether kernel memory counts the target's sockets too.
    pub both_ends: bool,
    /// MemAvailable.
    pub available_bytes: Option<u64>,
    /// (kernel + user) as a percentage of MemAvailable.
    pub percent_of_available: Option<f64>,
}

/// What the run will build. Goes into the report.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Plan {
    /// Connections held at the peak.
    pub connections: u64,
    /// Per worker thread: its connections and rings.
    pub workers: Vec<WorkerPlan>,
    /// Rings in total.
    pub rings: u64,
    /// Rings per worker.
    pub rings_per_worker: Vec<u64>,
    /// Fixed-file slots each ring may register (the most connections a ring can hold).
    pub per_ring_capacity: u32,
    /// The RLIMIT_NOFILE the plan assumes (the hard limit; the soft one is raised to it).
    pub nofile: u64,
    /// The limit that sized the rings (`RLIMIT_NOFILE 20000`, `IORING_MAX_FIXED_FILES 1048576`).
    pub limited_by: String,
    /// The ephemeral port range used for the count.
    pub port_range: (u16, u16),
    /// Ephemeral ports per (source, target) pair: the range minus reserved ports.
    pub usable_ports_per_source: u64,
    /// Per target: connections and source addresses.
    pub targets: Vec<TargetPlan>,
    /// `auto` or `explicit`.
    pub source_mode: &'static str,
    /// Source addresses in use (automatic loopback ones, or the explicit list's length).
    pub source_addr_count: u64,
    /// The source addresses, at most [`SOURCE_LIST_CAP`] of them.
    pub source_addrs: Vec<IpAddr>,
    /// System-wide files.
    pub files: FilesPlan,
    /// Memory estimate.
    pub memory: MemoryPlan,
    /// Non-fatal problems.
    pub warnings: Vec<Problem>,
}

impl Plan {
    /// (worker, ring within the worker) of connection `k` (0-based, in schedule order).
    pub fn worker_and_ring(&self, k: u64) -> (usize, usize) {
        let w = self.workers.len().max(1) as u64;
        let worker = (k % w) as usize;
        let rings = self.workers.get(worker).map_or(1, |p| p.ring_connections.len().max(1)) as u64;
        (worker, ((k / w) % rings) as usize)
    }

    /// (target index, source index among that target's sources) of connection `k`.
    pub fn target_and_source(&self, k: u64) -> (usize, u64) {
        let t = self.targets.len().max(1) as u64;
        let target = (k % t) as usize;
        let sources = self.targets.get(target).map_or(1, |p| p.sources.max(1));
        (target, (k / t) % sources)
    }

    /// Multi-line human description (see `describe.rs`).
    pub fn describe(&self) -> String {
        describe::describe(self)
    }
}

/// The `i`-th automatic loopback source (0 → 127.0.0.1), up to 127.255.255.254.
pub fn auto_source_addr(i: u64) -> Option<Ipv4Addr> {
    (i < AUTO_SOURCE_MAX).then(|| Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 1)) + i as u32))
}

/// Ephemeral ports in `range` that are not reserved.
pub fn usable_ports(range: (u16, u16), reserved: &[(u16, u16)]) -> u64 {
    let (lo, hi) = range;
    if lo > hi {
        return 0;
    }
    let mut clipped: Vec<(u16, u16)> =
        reserved.iter().filter_map(|&(a, b)| Some((a.max(lo), b.min(hi))).filter(|(a, b)| a <= b)).collect();
    clipped.sort_unstable();
    let (mut covered, mut next_free) = (0u64, u64::from(lo));
    for (a, b) in clipped {
        let start = u64::from(a).max(next_free);
        if start <= u64::from(b) {
            covered += u64::from(b) - start + 1;
            next_free = u64::from(b) + 1;
        }
    }
    u64::from(hi) - u64::from(lo) + 1 - covered
}

/// Ports one source address can use for connects whose port the kernel chooses: half of
/// [`usable_ports`], because the kernel prefers ports of one parity for them.
pub fn connect_ports(range: (u16, u16), reserved: &[(u16, u16)]) -> u64 {
    usable_ports(range, reserved) / 2
}

/// Whether `port` lies in a reserved range.
fn is_reserved(port: u16, reserved: &[(u16, u16)]) -> bool {
    reserved.iter().any(|&(a, b)| (a..=b).contains(&port))
}

/// `n` with thousands separators: 1234567 → "1,234,567" (the plan's and the CLI's
/// number format).
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Checks the host against the request: a plan, or every problem with its fix.
pub fn plan(facts: &HostFacts, req: &LoadRequest) -> Result<Plan, PreflightError> {
    let mut problems = validate(req);
    if !problems.is_empty() {
        return Err(PreflightError::Refused(problems));
    }
    let mut warnings = Vec::new();
    let rings = checks::rings(facts, req, &mut problems, &mut warnings);
    let ports = checks::ports(facts, req, &mut problems, &mut warnings);
    let files = checks::files(facts, req, rings.total, &mut problems, &mut warnings);
    let memory = checks::memory(facts, req, &rings, &mut problems, &mut warnings);
    checks::backlog_and_cpus(facts, req, &mut warnings);
    if !problems.is_empty() {
        return Err(PreflightError::Refused(problems));
    }
    Ok(Plan {
        connections: req.connections,
        rings_per_worker: rings.workers.iter().map(|w| w.ring_connections.len() as u64).collect(),
        workers: rings.workers,
        rings: rings.total,
        per_ring_capacity: rings.per_ring,
        nofile: facts.nofile_hard,
        limited_by: rings.limited_by,
        port_range: ports.range,
        usable_ports_per_source: ports.usable,
        targets: ports.targets,
        source_mode: if matches!(req.sources, SourceAddrs::Auto) { "auto" } else { "explicit" },
        source_addr_count: ports.source_count,
        source_addrs: ports.source_addrs,
        files,
        memory,
        warnings,
    })
}

/// Requests that cannot be planned at all.
fn validate(req: &LoadRequest) -> Vec<Problem> {
    let mut problems = Vec::new();
    if req.connections == 0 {
        problems.push(Problem::new("connections", "0", "at least 1", "ask for one or more connections"));
    }
    if req.workers == 0 || req.workers > MAX_WORKERS {
        let needed = format!("1 to {MAX_WORKERS}");
        problems.push(Problem::new(
            "worker threads",
            req.workers.to_string(),
            needed,
            "set --workers (default: one per CPU)",
        ));
    }
    if req.targets.is_empty() {
        problems.push(Problem::new("targets", "none", "at least 1", "give a target address"));
    }
    if matches!(&req.sources, SourceAddrs::Explicit(list) if list.is_empty()) {
        let fix = "give --source-addr at least once, or leave it out for automatic sources";
        problems.push(Problem::new("source addresses", "an empty list", "at least 1", fix));
    }
    problems
}
