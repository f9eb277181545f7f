//! `loadgen --version`: the version, then what this host offers loadgen: the kernel,
//! io_uring setup flags and opcodes (the engine's capability probe), the open-file
//! limit (soft/hard, `fs.nr_open`), and whether BPF programs can be loaded (a minimal
//! socket-filter program `r0 = 0; exit` through bpf(2) BPF_PROG_LOAD).
//!
//! Every probe degrades to a line saying what is missing and why; nothing here panics
//! or fails the command. It does not check whether a given load fits (that is
//! `loadgen doctor`).

use std::io;

use loadgen_engine::preflight::HostFacts;
use loadgen_engine::uring::probe::Capabilities;

use crate::summary::thousands;

/// Whether bpf(2) can load a program here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bpf {
    /// A socket filter loaded (and was closed again).
    Usable,
    /// The kernel refused (EPERM/EACCES): needs root or CAP_BPF, or unprivileged BPF
    /// is disabled.
    NotPermitted(String),
    /// No bpf(2) (ENOSYS) or no socket filters (EINVAL).
    NotSupported(String),
    /// Anything else.
    Failed(String),
}

/// Loads `r0 = 0; exit` as a socket filter and closes it.
pub fn probe_bpf() -> Bpf {
    // struct bpf_insn: code, dst:4|src:4, off (i16), imm (i32); little-endian fields.
    let insns: [[u8; 8]; 2] = [
        [0xb7, 0, 0, 0, 0, 0, 0, 0], // BPF_ALU64 | BPF_MOV | BPF_K: r0 = 0
        [0x95, 0, 0, 0, 0, 0, 0, 0], // BPF_JMP | BPF_EXIT
    ];
    let license = c"GPL";
    /// The leading fields of `union bpf_attr` for BPF_PROG_LOAD; the rest stays zero.
    #[repr(C)]
    struct ProgLoad {
        prog_type: u32,
        insn_cnt: u32,
        insns: u64,
        license: u64,
        log_level: u32,
        log_size: u32,
        log_buf: u64,
        kern_version: u32,
        prog_flags: u32,
        rest: [u8; 64],
    }
    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_PROG_TYPE_SOCKET_FILTER: u32 = 1;
    let attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_SOCKET_FILTER,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
        rest: [0; 64],
    };
    // SAFETY: `attr` is a valid, fully initialised bpf_attr prefix whose pointers
    // (instructions, license) outlive the call; the kernel only reads it.
    let fd = unsafe {
        libc::syscall(libc::SYS_bpf, BPF_PROG_LOAD, &attr as *const ProgLoad, std::mem::size_of::<ProgLoad>() as u32)
    };
    if fd >= 0 {
        // SAFETY: the kernel just returned this descriptor to us.
        unsafe { libc::close(fd as libc::c_int) };
        return Bpf::Usable;
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => Bpf::NotPermitted(err.to_string()),
        Some(libc::ENOSYS | libc::EINVAL) => Bpf::NotSupported(err.to_string()),
        _ => Bpf::Failed(err.to_string()),
    }
}

impl Bpf {
    /// One line for `--version`.
    pub fn describe(&self) -> String {
        match self {
            Bpf::Usable => "BPF: usable (a minimal socket filter loaded through bpf(2))".into(),
            Bpf::NotPermitted(e) => {
                let unpriv = std::fs::read_to_string("/proc/sys/kernel/unprivileged_bpf_disabled")
                    .map(|s| format!(", kernel.unprivileged_bpf_disabled={}", s.trim()))
                    .unwrap_or_default();
                format!("BPF: not permitted ({e}{unpriv}): needs root or CAP_BPF")
            }
            Bpf::NotSupported(e) => format!("BPF: not supported by this kernel ({e}; CONFIG_BPF_SYSCALL)"),
            Bpf::Failed(e) => format!("BPF: not usable ({e})"),
        }
    }
}

/// The io_uring line: setup flags and opcodes, or why io_uring is unavailable.
pub fn io_uring_line() -> String {
    match Capabilities::probe() {
        Ok(caps) => {
            let missing = match caps.require_engine_opcodes() {
                Ok(()) => String::new(),
                Err(e) => format!(" — loadgen run/serve cannot work here: {e}"),
            };
            format!("{}{missing}", caps.describe())
        }
        Err(e) => format!(
            "io_uring: unavailable ({e}); loadgen run and serve need Linux ≥ 6.1 with io_uring enabled \
             (sysctl kernel.io_uring_disabled=0, a seccomp profile that allows io_uring_setup)"
        ),
    }
}

/// The open-file limit line.
pub fn nofile_line(facts: &HostFacts) -> String {
    let nr_open = facts.nr_open.map_or(String::new(), |n| format!(", fs.nr_open {}", thousands(n)));
    format!(
        "open files (RLIMIT_NOFILE): soft {}, hard {}{nr_open} (loadgen raises soft to hard; connections are io_uring \
         direct descriptors, a ring's table at most the limit)",
        thousands(facts.nofile_soft),
        thousands(facts.nofile_hard)
    )
}

/// The report's `host`: the machine the run ran on (what could be read of it).
pub fn report_section() -> serde_json::Value {
    let mut host = serde_json::Map::new();
    if let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        host.insert("hostname".into(), name.trim().into());
    }
    if let Ok(f) = HostFacts::read() {
        host.insert("kernel".into(), f.kernel_release.clone().into());
        if let Some(cpus) = f.cpus {
            host.insert("cpus".into(), cpus.into());
        }
        if let Some(mem) = f.mem_total {
            host.insert("memory_bytes".into(), mem.into());
        }
    }
    host.insert("io_uring".into(), io_uring_line().into());
    serde_json::Value::Object(host)
}

/// The whole `--version` text.
pub fn version_text() -> String {
    let mut lines = vec![format!("loadgen {}", env!("CARGO_PKG_VERSION"))];
    match HostFacts::read() {
        Ok(f) => {
            let cpus = f.cpus.map_or("CPUs unknown".to_string(), |c| format!("{c} CPUs"));
            lines.push(format!("host: Linux {}, {cpus}", f.kernel_release));
            lines.push(io_uring_line());
            lines.push(nofile_line(&f));
        }
        Err(e) => {
            lines.push(io_uring_line());
            lines.push(format!("open files: unknown ({e})"));
        }
    }
    lines.push(probe_bpf().describe());
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpf_probe_answers_without_panicking() {
        let line = probe_bpf().describe();
        assert!(line.starts_with("BPF: "), "{line}");
        // As root on the build machines the filter loads; elsewhere the line says why not.
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            assert!(matches!(probe_bpf(), Bpf::Usable | Bpf::NotPermitted(_)), "{line}");
        }
    }

    #[test]
    fn version_text_starts_with_the_version_and_names_io_uring() {
        let text = version_text();
        assert!(text.starts_with(&format!("loadgen {}\n", env!("CARGO_PKG_VERSION"))), "{text}");
        assert!(text.contains("io_uring"), "{text}");
        assert!(text.contains("RLIMIT_NOFILE"), "{text}");
    }
}
