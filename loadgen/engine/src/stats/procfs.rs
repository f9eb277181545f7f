//! The generator's own resource use from `/proc`: CPU seconds of this process
//! (`/proc/self/stat` utime + stime over `sysconf(_SC_CLK_TCK)`), resident memory
//! (`/proc/self/status` VmRSS and its high-water mark VmHWM) and the system-wide
//! softirq share of CPU time (`/proc/stat`, between two samples). Parsers are separate
//! from the reads so they are tested on fixed text. Nothing here samples periodically;
//! callers decide when.

use std::io;

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("unexpected format of {what}"))
}

/// CPU time (user + system) this process has used, in seconds.
pub fn process_cpu_seconds() -> io::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks <= 0 {
        return Err(io::Error::other("sysconf(_SC_CLK_TCK) failed"));
    }
    parse_cpu_ticks(&stat).map(|t| t as f64 / ticks as f64).ok_or_else(|| invalid("/proc/self/stat"))
}

/// utime + stime (clock ticks) from the text of `/proc/<pid>/stat`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may contain spaces or ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // Fields from 3 (state) on: utime is field 14, stime field 15.
    let mut fields = rest.split_whitespace().skip(14 - 3);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Peak resident set size of this process in bytes (VmHWM).
pub fn peak_rss_bytes() -> io::Result<u64> {
    status_kb("VmHWM:")
}

/// Current resident set size of this process in bytes (VmRSS), e.g. a baseline
/// before connections open.
pub fn rss_bytes() -> io::Result<u64> {
    status_kb("VmRSS:")
}

fn status_kb(key: &str) -> io::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    parse_status_bytes(&status, key).ok_or_else(|| invalid("/proc/self/status"))
}

/// A `kB` line of `/proc/<pid>/status` (`key` with its colon), in bytes.
pub fn parse_status_bytes(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix(key))?;
    let mut parts = line.split_whitespace();
    let kb: u64 = parts.next()?.parse().ok()?;
    (parts.next()? == "kB").then_some(kb * 1024)
}

/// System-wide CPU time counters (clock ticks, all CPUs) from one read of `/proc/stat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// Time spent servicing softirqs (network receive and transmit processing).
    pub softirq: u64,
    /// All time: user, nice, system, idle, iowait, irq, softirq, steal.
    pub total: u64,
}

impl CpuTimes {
    /// Reads `/proc/stat` now.
    pub fn read() -> io::Result<Self> {
        Self::parse(&std::fs::read_to_string("/proc/stat")?).ok_or_else(|| invalid("/proc/stat"))
    }

    /// Parses the aggregate `cpu` line of `/proc/stat`.
    pub fn parse(stat: &str) -> Option<Self> {
        let line = stat.lines().find_map(|l| l.strip_prefix("cpu "))?;
        let v: Vec<u64> = line.split_whitespace().take(8).map(str::parse).collect::<Result<_, _>>().ok()?;
        // guest and guest_nice (fields 9, 10) are already included in user and nice.
        (v.len() >= 7).then(|| Self { softirq: v[6], total: v.iter().sum() })
    }

    /// Share of all CPU time spent in softirq between `earlier` and `self`, in 0..=1
    /// (`None` if no time passed).
    pub fn softirq_share_since(&self, earlier: &CpuTimes) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total).filter(|&t| t > 0)?;
        Some(self.softirq.saturating_sub(earlier.softirq) as f64 / total as f64)
    }
}
