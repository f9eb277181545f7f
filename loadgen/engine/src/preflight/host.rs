//! Reading the host: [`HostFacts::read`] gathers the limits that decide how many
//! connections this process can hold (getrlimit, `/proc/sys`, `/proc/meminfo`,
//! `/proc/self/status`, uname), and [`raise_nofile_soft_to_hard`] lifts the soft
//! RLIMIT_NOFILE to the hard one. Only RLIMIT_NOFILE and uname are required; any other
//! fact a container hides becomes `None` plus an [`UnknownFact`] saying why, and the plan
//! turns it into a warning instead of guessing silently.

use std::fs;

use super::PreflightError;

/// A fact that could not be read, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct UnknownFact {
    /// The fact's name as the plan reports it (`fs.file-max`, `MemAvailable`, ...).
    pub fact: &'static str,
    /// What went wrong (path and OS error, or what could not be parsed).
    pub reason: String,
}

/// What the host offers, read once before a run. Plain data: tests fabricate it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HostFacts {
    /// RLIMIT_NOFILE soft limit.
    pub nofile_soft: u64,
    /// RLIMIT_NOFILE hard limit (the plan assumes the soft limit is raised to it).
    pub nofile_hard: u64,
    /// `fs.nr_open`: ceiling for any process's RLIMIT_NOFILE.
    pub nr_open: Option<u64>,
    /// `fs.file-max`: system-wide limit on open files.
    pub file_max: Option<u64>,
    /// Files in use system-wide (`fs.file-nr`: allocated minus free).
    pub files_in_use: Option<u64>,
    /// `net.ipv4.ip_local_port_range` (lo, hi), inclusive.
    pub port_range: Option<(u16, u16)>,
    /// `net.ipv4.ip_local_reserved_ports` as inclusive ranges (empty when none).
    pub reserved_ports: Option<Vec<(u16, u16)>>,
    /// `net.core.somaxconn`.
    pub somaxconn: Option<u64>,
    /// `net.ipv4.tcp_max_syn_backlog`.
    pub tcp_max_syn_backlog: Option<u64>,
    /// MemAvailable from `/proc/meminfo`, bytes.
    pub mem_available: Option<u64>,
    /// MemTotal from `/proc/meminfo`, bytes.
    pub mem_total: Option<u64>,
    /// Online CPUs (`sysconf(_SC_NPROCESSORS_ONLN)`).
    pub cpus: Option<usize>,
    /// Whether this process holds CAP_SYS_RESOURCE (CapEff bit 24) and so may raise its
    /// hard RLIMIT_NOFILE (up to `fs.nr_open`).
    pub can_raise_nofile_hard: Option<bool>,
    /// Kernel release (`uname -r`).
    pub kernel_release: String,
    /// Facts that could not be read, and why.
    pub unknown: Vec<UnknownFact>,
}

/// CAP_SYS_RESOURCE's bit in the capability sets.
const CAP_SYS_RESOURCE: u32 = 24;

impl HostFacts {
    /// Reads the real host. Fails only when RLIMIT_NOFILE or uname cannot be read; every
    /// other fact degrades to `None` with an entry in [`HostFacts::unknown`].
    pub fn read() -> Result<Self, PreflightError> {
        let (nofile_soft, nofile_hard) = nofile()?;
        let kernel_release = kernel_release()?;
        let mut unknown = Vec::new();
        let mut known = |fact: &'static str, r: Result<u64, String>| match r {
            Ok(v) => Some(v),
            Err(reason) => {
                unknown.push(UnknownFact { fact, reason });
                None
            }
        };
        let nr_open = known("fs.nr_open", sys("fs/nr_open").and_then(|s| parse_u64(&s)));
        let file_max = known("fs.file-max", sys("fs/file-max").and_then(|s| parse_u64(&s)));
        let files_in_use = known("fs.file-nr", sys("fs/file-nr").and_then(|s| parse_file_nr(&s)));
        let somaxconn = known("net.core.somaxconn", sys("net/core/somaxconn").and_then(|s| parse_u64(&s)));
        let tcp_max_syn_backlog =
            known("net.ipv4.tcp_max_syn_backlog", sys("net/ipv4/tcp_max_syn_backlog").and_then(|s| parse_u64(&s)));
        let meminfo = read("/proc/meminfo");
        let mem_available = known("MemAvailable", meminfo.clone().and_then(|s| meminfo_bytes(&s, "MemAvailable")));
        let mem_total = known("MemTotal", meminfo.and_then(|s| meminfo_bytes(&s, "MemTotal")));
        let cap = known("CAP_SYS_RESOURCE", read("/proc/self/status").and_then(|s| cap_eff(&s)));
        let can_raise_nofile_hard = cap.map(|c| c & (1 << CAP_SYS_RESOURCE) != 0);
        let cpus = known("online CPUs", online_cpus()).and_then(|n| usize::try_from(n).ok());
        let port_range = match sys("net/ipv4/ip_local_port_range").and_then(|s| parse_port_range(&s)) {
            Ok(r) => Some(r),
            Err(reason) => {
                unknown.push(UnknownFact { fact: "net.ipv4.ip_local_port_range", reason });
                None
            }
        };
        let reserved_ports = match sys("net/ipv4/ip_local_reserved_ports").and_then(|s| parse_port_list(&s)) {
            Ok(r) => Some(r),
            Err(reason) => {
                unknown.push(UnknownFact { fact: "net.ipv4.ip_local_reserved_ports", reason });
                None
            }
        };
        Ok(Self {
            nofile_soft,
            nofile_hard,
            nr_open,
            file_max,
            files_in_use,
            port_range,
            reserved_ports,
            somaxconn,
            tcp_max_syn_backlog,
            mem_available,
            mem_total,
            cpus,
            can_raise_nofile_hard,
            kernel_release,
            unknown,
        })
    }

    /// Why `fact` is unknown, if it is.
    pub fn why_unknown(&self, fact: &str) -> Option<&str> {
        self.unknown.iter().find(|u| u.fact == fact).map(|u| u.reason.as_str())
    }
}

/// Raises this process's soft RLIMIT_NOFILE to its hard limit and returns the new soft
/// limit (direct-descriptor tables may be as large as the soft limit).
pub fn raise_nofile_soft_to_hard() -> Result<u64, PreflightError> {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `r` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        let reason = format!("getrlimit: {}", std::io::Error::last_os_error());
        return Err(PreflightError::HostFact { fact: "RLIMIT_NOFILE", reason });
    }
    if r.rlim_cur != r.rlim_max {
        let raised = libc::rlimit { rlim_cur: r.rlim_max, rlim_max: r.rlim_max };
        // SAFETY: `raised` is a valid rlimit, read only by the kernel.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            let reason = format!("setrlimit: {}", std::io::Error::last_os_error());
            return Err(PreflightError::RaiseNofile { hard: rlim(r.rlim_max), reason });
        }
    }
    nofile().map(|(soft, _)| soft)
}

/// (soft, hard) RLIMIT_NOFILE.
fn nofile() -> Result<(u64, u64), PreflightError> {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `r` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        let reason = format!("getrlimit: {}", std::io::Error::last_os_error());
        return Err(PreflightError::HostFact { fact: "RLIMIT_NOFILE", reason });
    }
    Ok((rlim(r.rlim_cur), rlim(r.rlim_max)))
}

/// `rlim_t` as u64 (it is narrower on some 32-bit targets).
#[allow(clippy::unnecessary_cast)]
fn rlim(v: libc::rlim_t) -> u64 {
    v as u64
}

fn kernel_release() -> Result<String, PreflightError> {
    // SAFETY: utsname is plain arrays of c_char; all zeroes is a valid value.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        let reason = format!("uname: {}", std::io::Error::last_os_error());
        return Err(PreflightError::HostFact { fact: "kernel release", reason });
    }
    let bytes: Vec<u8> = u.release.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn online_cpus() -> Result<u64, String> {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    u64::try_from(n).ok().filter(|&n| n > 0).ok_or_else(|| "sysconf(_SC_NPROCESSORS_ONLN) failed".to_string())
}

fn read(path: &str) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))
}

fn sys(rel: &str) -> Result<String, String> {
    read(&format!("/proc/sys/{rel}"))
}

pub(super) fn parse_u64(s: &str) -> Result<u64, String> {
    s.trim().parse().map_err(|_| format!("not a number: {:?}", s.trim()))
}

/// `fs.file-nr` is "allocated free max"; in use = allocated − free.
pub(super) fn parse_file_nr(s: &str) -> Result<u64, String> {
    let mut it = s.split_whitespace().map(|f| f.parse::<u64>());
    match (it.next(), it.next()) {
        (Some(Ok(allocated)), Some(Ok(free))) => Ok(allocated.saturating_sub(free)),
        _ => Err(format!("unexpected fs.file-nr: {:?}", s.trim())),
    }
}

/// `ip_local_port_range` is "lo hi".
pub(super) fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let mut it = s.split_whitespace().map(|f| f.parse::<u16>());
    match (it.next(), it.next()) {
        (Some(Ok(lo)), Some(Ok(hi))) if lo <= hi => Ok((lo, hi)),
        _ => Err(format!("unexpected ip_local_port_range: {:?}", s.trim())),
    }
}

/// `ip_local_reserved_ports` is a comma-separated list of ports and `a-b` ranges.
pub(super) fn parse_port_list(s: &str) -> Result<Vec<(u16, u16)>, String> {
    let bad = || format!("unexpected ip_local_reserved_ports: {:?}", s.trim());
    let mut out = Vec::new();
    for item in s.trim().split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (a, b) = item.split_once('-').unwrap_or((item, item));
        let a: u16 = a.trim().parse().map_err(|_| bad())?;
        let b: u16 = b.trim().parse().map_err(|_| bad())?;
        if a > b {
            return Err(bad());
        }
        out.push((a, b));
    }
    Ok(out)
}

/// A `/proc/meminfo` field ("MemAvailable:   24000000 kB") in bytes.
pub(super) fn meminfo_bytes(meminfo: &str, field: &str) -> Result<u64, String> {
    let line = meminfo
        .lines()
        .find_map(|l| l.strip_prefix(field).and_then(|r| r.strip_prefix(':')))
        .ok_or_else(|| format!("no {field} in /proc/meminfo"))?;
    let mut it = line.split_whitespace();
    let value: u64 = it.next().and_then(|v| v.parse().ok()).ok_or_else(|| format!("unexpected {field}: {line:?}"))?;
    match it.next() {
        Some("kB") => Ok(value.saturating_mul(1024)),
        None => Ok(value),
        Some(unit) => Err(format!("unexpected unit {unit:?} for {field}")),
    }
}

/// The effective capability set from `/proc/self/status` ("CapEff:\t000001fffeffffff").
pub(super) fn cap_eff(status: &str) -> Result<u64, String> {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .ok_or_else(|| "no CapEff in /proc/self/status".to_string())?;
    u64::from_str_radix(hex.trim(), 16).map_err(|_| format!("unexpected CapEff: {:?}", hex.trim()))
}
