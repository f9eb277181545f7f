//! The checks behind [`super::plan`]: rings and descriptors, ephemeral ports and source
//! addresses, system-wide files, memory, listen backlog and CPUs. Each adds refusals to
//! `problems` and advisories to `warnings`; none reads the host.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::describe::bytes;
use super::{
    AUTO_SOURCE_MAX, BASE_ORDINARY_FDS, CLIENT_POOL_KEEP, DEFAULT_PORT_RANGE, FD_RESERVE, FILE_MARGIN, FilesPlan,
    HostFacts, IORING_MAX_FIXED_FILES, KERNEL_BYTES_PER_SLOT, KERNEL_BYTES_PER_SOCKET, LoadRequest, MAX_RINGS,
    MEMORY_REFUSE_PERCENT, MEMORY_WARN_PERCENT, MESSAGE_COPIES_PER_CLIENT, MIN_BACKLOG, MemoryPlan, Problem,
    SEND_POOL_KEEP, SEND_POOL_MAX_BUFFER, SOURCE_LIST_CAP, SourceAddrs, TargetPlan, USER_BYTES_PER_CONNECTION,
    USER_BYTES_PER_RING, WIDE_PORT_RANGE, WorkerPlan, auto_source_addr, connect_ports, is_reserved, thousands,
};

/// Sockets per connection the host holds: two when the target runs here too.
fn ends(req: &LoadRequest) -> u64 {
    if req.target_on_this_host { 2 } else { 1 }
}

/// How rings are laid out.
pub(super) struct Rings {
    pub total: u64,
    pub per_ring: u32,
    pub limited_by: String,
    pub workers: Vec<WorkerPlan>,
}

/// The command that raises RLIMIT_NOFILE to `want`.
fn nofile_fix(facts: &HostFacts, want: u64) -> String {
    if facts.can_raise_nofile_hard == Some(true) {
        let nr_open = match facts.nr_open {
            Some(n) if n < want => format!("`sysctl -w fs.nr_open={want}`, then "),
            _ => String::new(),
        };
        format!("{nr_open}`ulimit -Hn {want} && ulimit -n {want}` in the shell that starts loadgen")
    } else {
        format!(
            "raise the hard limit of the user running loadgen to {want} (`nofile` in /etc/security/limits.conf or \
             `LimitNOFILE={want}` in its systemd unit; raising it in-process needs CAP_SYS_RESOURCE)"
        )
    }
}

/// Fixed-file tables per ring: `min(RLIMIT_NOFILE − reserve, IORING_MAX_FIXED_FILES)`
/// slots each; worker w holds the connections k ≡ w (mod workers), spread over
/// ⌈its connections / slots⌉ rings with balanced counts.
pub(super) fn rings(
    facts: &HostFacts,
    req: &LoadRequest,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
) -> Rings {
    let nofile = facts.nofile_hard;
    let by_nofile = nofile - FD_RESERVE.min(nofile / 2);
    let (per_ring, limited_by) = if by_nofile < IORING_MAX_FIXED_FILES {
        (by_nofile, format!("RLIMIT_NOFILE {nofile}"))
    } else {
        (IORING_MAX_FIXED_FILES, format!("IORING_MAX_FIXED_FILES {IORING_MAX_FIXED_FILES}"))
    };
    // per_ring ≤ IORING_MAX_FIXED_FILES = 2^20, so it fits.
    let mut out = Rings { total: 0, per_ring: per_ring as u32, limited_by, workers: Vec::new() };
    if per_ring == 0 {
        let needed = "at least 2 (a ring's fixed-file table may not exceed it)";
        problems.push(Problem::new("RLIMIT_NOFILE", nofile.to_string(), needed, nofile_fix(facts, 65536)));
        return out;
    }
    let w = req.workers as u64;
    let share = |i: u64| req.connections / w + u64::from(i < req.connections % w);
    out.total = (0..w).map(|i| share(i).div_ceil(per_ring)).sum();
    let found =
        format!("{} rings of {} direct descriptors ({})", thousands(out.total), thousands(per_ring), out.limited_by);
    if out.total > MAX_RINGS {
        let want = (req.connections.div_ceil(MAX_RINGS) + FD_RESERVE).min(IORING_MAX_FIXED_FILES + FD_RESERVE);
        let fix = format!("split the load over several processes or hosts, or {}", nofile_fix(facts, want));
        problems.push(Problem::new("io_uring rings", found, format!("at most {MAX_RINGS}"), fix));
        return out;
    }
    if out.total + BASE_ORDINARY_FDS > nofile {
        let want = out.total + BASE_ORDINARY_FDS + FD_RESERVE;
        let needed =
            format!("{} ordinary descriptors (one per ring plus {BASE_ORDINARY_FDS})", out.total + BASE_ORDINARY_FDS);
        problems.push(Problem::new("RLIMIT_NOFILE", format!("{nofile} for {found}"), needed, nofile_fix(facts, want)));
        return out;
    }
    out.workers = (0..w)
        .map(|i| {
            let c = share(i);
            let r = c.div_ceil(per_ring);
            WorkerPlan { connections: c, ring_connections: (0..r).map(|j| c / r + u64::from(j < c % r)).collect() }
        })
        .collect();
    let split = out.workers.iter().any(|w| w.ring_connections.len() > 1);
    if split && per_ring < IORING_MAX_FIXED_FILES && facts.can_raise_nofile_hard == Some(true) {
        let want = (req.connections.div_ceil(w) + FD_RESERVE).min(IORING_MAX_FIXED_FILES + FD_RESERVE);
        let needed = format!("{want} for one ring per worker");
        warnings.push(Problem::new("RLIMIT_NOFILE hard limit", found, needed, nofile_fix(facts, want)));
    }
    out
}

/// Ports and source addresses.
pub(super) struct Ports {
    pub range: (u16, u16),
    pub usable: u64,
    pub targets: Vec<TargetPlan>,
    pub source_count: u64,
    pub source_addrs: Vec<IpAddr>,
}

/// `ip_local_reserved_ports` value: the existing ranges plus `extra` ports.
fn reserved_list(existing: &[(u16, u16)], extra: &BTreeSet<u16>) -> String {
    let mut all: Vec<(u16, u16)> = existing.to_vec();
    all.extend(extra.iter().filter(|&&p| !is_reserved(p, existing)).map(|&p| (p, p)));
    all.sort_unstable();
    let items: Vec<String> =
        all.iter().map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect();
    items.join(",")
}

/// With IP_BIND_ADDRESS_NO_PORT a connection needs a unique 4-tuple, so a (source,
/// target) pair offers one connection per usable ephemeral port: connections to a target
/// must not exceed its sources × usable ports.
pub(super) fn ports(
    facts: &HostFacts,
    req: &LoadRequest,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
) -> Ports {
    let range = facts.port_range.unwrap_or_else(|| {
        let (lo, hi) = DEFAULT_PORT_RANGE;
        let then = format!("assumed the default {lo}-{hi}; check `sysctl net.ipv4.ip_local_port_range`");
        warnings.push(Problem::unknown(facts, "net.ipv4.ip_local_port_range", &then));
        DEFAULT_PORT_RANGE
    });
    let reserved = facts.reserved_ports.clone().unwrap_or_else(|| {
        let then = "assumed none; check `sysctl net.ipv4.ip_local_reserved_ports`";
        warnings.push(Problem::unknown(facts, "net.ipv4.ip_local_reserved_ports", then));
        Vec::new()
    });
    // The kernel gives a connect() whose port it chooses (no bind, or bound with
    // IP_BIND_ADDRESS_NO_PORT) only about half of the range: it prefers ports of one
    // parity. Measured here (range 1024-65535, one source): 32,332 of 45,000 connects
    // completed, the rest stalled in SYN retransmits; with two sources all 45,000 did.
    // So each source address is budgeted half of the usable ports.
    let usable = connect_ports(range, &reserved);
    let server_ports: BTreeSet<u16> = if req.target_on_this_host {
        req.targets.iter().map(|t| t.port()).filter(|&p| p >= WIDE_PORT_RANGE.0).collect()
    } else {
        BTreeSet::new()
    };
    let wide_usable = {
        let mut r = reserved.clone();
        r.extend(server_ports.iter().map(|&p| (p, p)));
        connect_ports(WIDE_PORT_RANGE, &r)
    };
    let (lo, hi) = range;
    let t = req.targets.len() as u64;
    let (mut auto_count, mut targets, mut exposed) = (0u64, Vec::new(), BTreeSet::new());
    for (i, &addr) in req.targets.iter().enumerate() {
        let connections = req.connections / t + u64::from((i as u64) < req.connections % t);
        let need = |per: u64| if per == 0 { u64::MAX } else { connections.div_ceil(per) };
        let v4_loopback = matches!(addr.ip(), IpAddr::V4(ip) if ip.is_loopback());
        let (sources, kernel_chooses_source, found_sources) = match &req.sources {
            SourceAddrs::Explicit(list) => {
                let m = list.iter().filter(|ip| ip.is_ipv4() == addr.is_ipv4()).count() as u64;
                (m, false, format!("{m} source address(es) of its family (--source-addr)"))
            }
            SourceAddrs::Auto if v4_loopback => {
                let n = need(usable).min(AUTO_SOURCE_MAX);
                auto_count = auto_count.max(n);
                (n, false, format!("{} automatic loopback sources", thousands(n)))
            }
            SourceAddrs::Auto => (1, true, "1 source address (chosen by the kernel)".to_string()),
        };
        if sources.saturating_mul(usable) < connections {
            let found = format!("{found_sources} × {} usable ports (range {lo}-{hi})", thousands(usable));
            let needed = format!("{} connections (one per source and port)", thousands(connections));
            let example = if v4_loopback {
                format!(
                    ", e.g. 127.0.0.1 to {}",
                    auto_source_addr(need(usable) - 1).map_or("…".into(), |a| a.to_string())
                )
            } else if addr.ip().is_loopback() {
                " (IPv6 loopback is a single address: use an IPv4 loopback target)".to_string()
            } else {
                " (add them first: `ip addr add ADDR/32 dev IFACE`)".to_string()
            };
            let mut fix = format!(
                "give {} source addresses of the target's family (--source-addr once per address{example})",
                thousands(need(usable))
            );
            if wide_usable > usable {
                fix += &format!(
                    ", or widen the ephemeral range: `sysctl -w net.ipv4.ip_local_port_range=\"1024 65535\"` \
                     ({} addresses then)",
                    thousands(need(wide_usable))
                );
                if !server_ports.is_empty() {
                    let list = reserved_list(&reserved, &server_ports);
                    fix += &format!(
                        " after reserving the server ports: `sysctl -w net.ipv4.ip_local_reserved_ports={list}`"
                    );
                }
            }
            problems.push(Problem::new(format!("ephemeral ports to {addr}"), found, needed, fix));
        }
        if req.target_on_this_host && (lo..=hi).contains(&addr.port()) && !is_reserved(addr.port(), &reserved) {
            exposed.insert(addr.port());
        }
        targets.push(TargetPlan { addr, connections, sources, kernel_chooses_source });
    }
    if !exposed.is_empty() {
        let ports: Vec<String> = exposed.iter().map(u16::to_string).collect();
        let fix = format!(
            "`sysctl -w net.ipv4.ip_local_reserved_ports={}` (else TIME_WAIT client sockets can make the \
             server's next bind fail with EADDRINUSE)",
            reserved_list(&reserved, &exposed)
        );
        let found = format!("port {} inside the ephemeral range {lo}-{hi}, not reserved", ports.join(", "));
        warnings.push(Problem::new("server ports", found, "server ports reserved", fix));
    }
    let (source_count, source_addrs) = match &req.sources {
        SourceAddrs::Explicit(list) => (list.len() as u64, list.iter().take(SOURCE_LIST_CAP).copied().collect()),
        SourceAddrs::Auto => {
            let listed = auto_count.min(SOURCE_LIST_CAP as u64);
            (auto_count, (0..listed).filter_map(auto_source_addr).map(IpAddr::V4).collect())
        }
    };
    Ports { range, usable, targets, source_count, source_addrs }
}

/// Direct descriptors still allocate a `struct file`, so `fs.file-max` counts them.
pub(super) fn files(
    facts: &HostFacts,
    req: &LoadRequest,
    rings: u64,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
) -> FilesPlan {
    let sockets = req.connections.saturating_mul(ends(req));
    let needed = sockets.saturating_add(rings).saturating_add(FILE_MARGIN);
    match (facts.file_max, facts.files_in_use) {
        (Some(max), Some(in_use)) if in_use.saturating_add(needed) > max => {
            let want = in_use.saturating_add(needed).checked_next_power_of_two().unwrap_or(u64::MAX);
            let both = if ends(req) == 2 { ", both ends" } else { "" };
            problems.push(Problem::new(
                "system-wide open files (fs.file-max)",
                format!("{} with {} in use", thousands(max), thousands(in_use)),
                format!(
                    "{} more ({} sockets{both}, rings, margin {FILE_MARGIN})",
                    thousands(needed),
                    thousands(sockets)
                ),
                format!("`sysctl -w fs.file-max={want}`"),
            ));
        }
        (Some(_), Some(_)) => {}
        (max, _) => {
            let fact = if max.is_none() { "fs.file-max" } else { "fs.file-nr" };
            let then = "system-wide files not checked; check `sysctl fs.file-max fs.file-nr`";
            warnings.push(Problem::unknown(facts, fact, then));
        }
    }
    FilesPlan { needed, file_max: facts.file_max, in_use: facts.files_in_use }
}

/// Copies of one message the generator may hold at once (an upper bound): every
/// connection carrying messages has a `Client` (outgoing frame and assembly buffer,
/// [`MESSAGE_COPIES_PER_CLIENT`]) and a send buffer in flight; each worker's pools keep
/// up to [`CLIENT_POOL_KEEP`] spare `Client`s and [`SEND_POOL_KEEP`] send buffers (those
/// of at most [`SEND_POOL_MAX_BUFFER`] bytes) warm, never more than there are
/// connections; each worker holds one message template.
pub(super) fn message_copies(req: &LoadRequest) -> u64 {
    if req.message_size == 0 {
        return 0;
    }
    let active = req.messaging_connections.map_or(req.connections, |n| n.min(req.connections));
    let w = req.workers as u64;
    let held = |keep: u64| active.saturating_add(keep.saturating_mul(w)).min(req.connections);
    let sends = if req.message_size <= SEND_POOL_MAX_BUFFER { held(SEND_POOL_KEEP) } else { active };
    held(CLIENT_POOL_KEEP).saturating_mul(MESSAGE_COPIES_PER_CLIENT).saturating_add(sends).saturating_add(w)
}

/// Kernel memory per socket (both ends when the target is here) and ring tables, plus
/// the generator's budget (message buffers included), against MemAvailable.
pub(super) fn memory(
    facts: &HostFacts,
    req: &LoadRequest,
    rings: &Rings,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
) -> MemoryPlan {
    let kernel_per_conn = KERNEL_BYTES_PER_SOCKET * ends(req);
    let ring_kernel = rings.total.saturating_mul(u64::from(rings.per_ring)).saturating_mul(KERNEL_BYTES_PER_SLOT);
    let ring_user = rings.total.saturating_mul(USER_BYTES_PER_RING);
    let kernel_bytes = req.connections.saturating_mul(kernel_per_conn).saturating_add(ring_kernel);
    let copies = message_copies(req);
    let message_bytes = req.message_size.saturating_mul(copies);
    let user_bytes = req
        .connections
        .saturating_mul(USER_BYTES_PER_CONNECTION)
        .saturating_add(ring_user)
        .saturating_add(message_bytes);
    let mut plan = MemoryPlan {
        kernel_bytes,
        user_bytes,
        message_bytes,
        both_ends: ends(req) == 2,
        available_bytes: facts.mem_available,
        percent_of_available: None,
    };
    let Some(avail) = facts.mem_available.filter(|&a| a > 0) else {
        warnings.push(Problem::unknown(facts, "MemAvailable", "memory not checked; check `free -g`"));
        return plan;
    };
    let total = u128::from(kernel_bytes) + u128::from(user_bytes);
    plan.percent_of_available = Some(total as f64 * 100.0 / avail as f64);
    let pct = total * 100 / u128::from(avail);
    let found = format!("MemAvailable {}", bytes(avail));
    let both = if plan.both_ends { ", both ends" } else { "" };
    let of_it = if message_bytes > 0 {
        format!(", {} of it for messages of {} bytes", bytes(message_bytes), thousands(req.message_size))
    } else {
        String::new()
    };
    let needed = format!(
        "≈ {} ({} kernel{both} + {} generator{of_it}), {pct}% of it",
        bytes(u64::try_from(total).unwrap_or(u64::MAX)),
        bytes(kernel_bytes),
        bytes(user_bytes)
    );
    if pct > u128::from(MEMORY_REFUSE_PERCENT) {
        let budget = u128::from(avail) * u128::from(MEMORY_REFUSE_PERCENT) / 100;
        let without_messages = total - u128::from(message_bytes);
        let elsewhere = if plan.both_ends { ", or run the target on another host" } else { "" };
        let fix = if message_bytes > 0 && without_messages < budget {
            let fit = u64::try_from((budget - without_messages) / u128::from(copies.max(1))).unwrap_or(u64::MAX);
            format!(
                "send smaller messages: at most {} bytes ({}) fit (--message-size), or carry them on fewer \
                 connections (--echo-connections), or add memory",
                thousands(fit),
                bytes(fit)
            )
        } else {
            let per_conn = u128::from(kernel_per_conn + USER_BYTES_PER_CONNECTION)
                + u128::from(req.message_size) * u128::from(MESSAGE_COPIES_PER_CLIENT + 1);
            let fit = budget.saturating_sub(u128::from(ring_kernel) + u128::from(ring_user)) / per_conn;
            format!(
                "run at most {} connections here (under {MEMORY_REFUSE_PERCENT}% of MemAvailable), or add \
                 memory{elsewhere}",
                thousands(u64::try_from(fit).unwrap_or(u64::MAX))
            )
        };
        problems.push(Problem::new("memory", found, needed, fix));
    } else if pct > u128::from(MEMORY_WARN_PERCENT) {
        let fix = if message_bytes > u64::try_from(total / 2).unwrap_or(u64::MAX) {
            "leave headroom: smaller messages, fewer connections carrying them, or more memory"
        } else {
            "leave headroom: fewer connections, more memory, or the target on another host"
        };
        warnings.push(Problem::new(format!("memory above {MEMORY_WARN_PERCENT}%"), found, needed, fix));
    }
    plan
}

/// Listen backlog of a target on this host; workers against CPUs and connections.
pub(super) fn backlog_and_cpus(facts: &HostFacts, req: &LoadRequest, warnings: &mut Vec<Problem>) {
    if req.target_on_this_host {
        for (name, value) in
            [("net.core.somaxconn", facts.somaxconn), ("net.ipv4.tcp_max_syn_backlog", facts.tcp_max_syn_backlog)]
        {
            match value {
                Some(v) if v < MIN_BACKLOG => warnings.push(Problem::new(
                    format!("listen backlog {name}"),
                    v.to_string(),
                    format!("at least {MIN_BACKLOG} (a short backlog turns a ramp into SYN retransmits)"),
                    format!("`sysctl -w {name}=65535`, and have the target listen with an explicit backlog"),
                )),
                Some(_) => {}
                None => warnings.push(Problem::unknown(facts, name, &format!("not checked; check `sysctl {name}`"))),
            }
        }
    }
    match facts.cpus {
        Some(c) if req.workers > c => warnings.push(Problem::new(
            "worker threads",
            format!("{} workers on {c} online CPUs", req.workers),
            format!("at most {c}"),
            format!("--workers {c} (workers sharing a core add their delays to the measurements)"),
        )),
        Some(_) => {}
        None => warnings.push(Problem::unknown(facts, "online CPUs", "workers not compared with CPUs")),
    }
    if req.workers as u64 > req.connections {
        let fix = format!("--workers {}", req.connections);
        let found = format!("{} workers for {} connections", req.workers, req.connections);
        warnings.push(Problem::new("idle workers", found, "at most one worker per connection", fix));
    }
}
