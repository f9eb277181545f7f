//! CPU time of a process tree from /proc: the process's own user + system time, that
//! of the children it has reaped (`cutime`, `cstime`: a crashed and restarted worker
//! still counts) and that of every live descendant. The difference of two readings is
//! what the tree spent in between; the embedded target's supervisor and its workers
//! (and HAProxy) are one tree. Linux only; `None` when /proc cannot be read.

use std::collections::BTreeSet;

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// (utime + stime, cutime + cstime) of `pid`, in ticks.
fn stat_ticks(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it are plain.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) is index 11.
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some((n(11)? + n(12)?, n(13)? + n(14)?))
}

fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(text.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    out
}

/// CPU seconds of `root` and its descendants so far (reaped children included).
pub fn tree_cpu_s(root: u32) -> Option<f64> {
    let (own, reaped) = stat_ticks(root)?;
    let mut total = own + reaped;
    let mut seen = BTreeSet::from([root]);
    let mut queue = children(root);
    while let Some(pid) = queue.pop() {
        if !seen.insert(pid) {
            continue;
        }
        if let Some((own, reaped)) = stat_ticks(pid) {
            total += own + reaped;
        }
        queue.extend(children(pid));
    }
    Some(total as f64 / ticks_per_second())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_child_counts_in_its_parents_tree() {
        let me = std::process::id();
        let before = tree_cpu_s(me).expect("/proc is readable");
        let mut child = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"])
            .spawn()
            .unwrap();
        child.wait().unwrap();
        let after = tree_cpu_s(me).unwrap();
        assert!(after - before >= 0.05, "the reaped child's CPU is counted: {before} → {after}");
        assert!(tree_cpu_s(u32::MAX).is_none());
    }
}
