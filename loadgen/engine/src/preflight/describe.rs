//! [`Plan::describe`](super::Plan::describe): the plan in a few lines a person reads
//! before a run (the report carries the plan itself, serialized).

use std::fmt::Write;

use super::{Plan, thousands};

/// Targets listed one per line before the rest are summarised.
const TARGETS_LISTED: usize = 8;

/// Bytes in binary units with one decimal ("8.2 GiB").
pub(crate) fn bytes(n: u64) -> String {
    let n_f = n as f64;
    if n >= 1 << 30 {
        format!("{:.1} GiB", n_f / f64::from(1u32 << 30))
    } else if n >= 1 << 20 {
        format!("{:.1} MiB", n_f / f64::from(1u32 << 20))
    } else {
        format!("{:.1} KiB", n_f / 1024.0)
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

pub(super) fn describe(p: &Plan) -> String {
    let mut s = String::new();
    let workers = p.workers.len() as u64;
    let per_worker = match p.rings_per_worker.split_first() {
        Some((first, rest)) if rest.iter().all(|r| r == first) => format!("{first} each"),
        _ => p.rings_per_worker.iter().map(u64::to_string).collect::<Vec<_>>().join(", "),
    };
    let _ = writeln!(
        s,
        "plan: {} connections over {} ring{} ({} direct descriptors each, {}) on {} worker{} ({per_worker})",
        thousands(p.connections),
        thousands(p.rings),
        plural(p.rings),
        thousands(u64::from(p.per_ring_capacity)),
        p.limited_by,
        workers,
        plural(workers),
    );
    let (lo, hi) = p.port_range;
    let ports = format!("{} usable ephemeral ports each in {lo}–{hi}", thousands(p.usable_ports_per_source));
    let listed = match p.source_addrs.as_slice() {
        [] => String::new(),
        [one] => one.to_string(),
        [first, .., last] if p.source_mode == "auto" => format!("{first}–{last}"),
        list => list.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
    };
    let more = if (p.source_addrs.len() as u64) < p.source_addr_count {
        format!(" … {} in all", thousands(p.source_addr_count))
    } else {
        String::new()
    };
    let _ = match (p.source_addr_count, p.source_mode) {
        (0, _) => writeln!(s, "sources: chosen by the kernel ({ports})"),
        (_, "auto") => writeln!(s, "sources: {listed}{more} (automatic loopback; {ports})"),
        _ => writeln!(s, "sources: {listed}{more} (--source-addr; {ports})"),
    };
    for t in p.targets.iter().take(TARGETS_LISTED) {
        let from = if t.kernel_chooses_source {
            "a source the kernel chooses".to_string()
        } else {
            format!("{} source{}", thousands(t.sources), plural(t.sources))
        };
        let _ = writeln!(s, "target {}: {} connections from {from}", t.addr, thousands(t.connections));
    }
    if p.targets.len() > TARGETS_LISTED {
        let _ = writeln!(s, "… and {} more targets", p.targets.len() - TARGETS_LISTED);
    }
    let m = &p.memory;
    let ends = if m.both_ends { " (both ends on this host)" } else { "" };
    let share = match (m.percent_of_available, m.available_bytes) {
        (Some(pct), Some(avail)) => format!(" = {pct:.0}% of MemAvailable {}", bytes(avail)),
        _ => " (MemAvailable unknown)".to_string(),
    };
    let messages = if m.message_bytes > 0 {
        format!(" ({} of it message buffers)", bytes(m.message_bytes))
    } else {
        String::new()
    };
    let _ = writeln!(
        s,
        "memory: kernel ≈ {}{ends} + generator ≈ {}{messages}{share}",
        bytes(m.kernel_bytes),
        bytes(m.user_bytes)
    );
    let f = &p.files;
    let _ = match (f.file_max, f.in_use) {
        (Some(max), Some(used)) => writeln!(
            s,
            "files: {} more system-wide (fs.file-max {}, {} in use)",
            thousands(f.needed),
            thousands(max),
            thousands(used)
        ),
        _ => writeln!(s, "files: {} more system-wide (fs.file-max unknown)", thousands(f.needed)),
    };
    for w in &p.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    s.truncate(s.trim_end().len());
    s
}
