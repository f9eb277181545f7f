//! What this host's io_uring offers: setup flags that the kernel accepts and the
//! opcodes it supports. Measured once at start by building throw-away rings, so the
//! engine uses SINGLE_ISSUER and DEFER_TASKRUN where they exist and says what it used.

use io_uring::{IoUring, Probe, opcode};
use serde::Serialize;

use super::UringError;

/// Opcodes the engine uses, with the name reported to users.
const OPCODES: &[(&str, u8, bool)] = &[
    // (name, code, required)
    ("socket", opcode::Socket::CODE, true),
    ("connect", opcode::Connect::CODE, true),
    ("send", opcode::Send::CODE, true),
    ("recv", opcode::Recv::CODE, true),
    ("accept", opcode::Accept::CODE, true),
    ("close", opcode::Close::CODE, true),
    ("shutdown", opcode::Shutdown::CODE, true),
    ("timeout", opcode::Timeout::CODE, true),
    ("async_cancel", opcode::AsyncCancel::CODE, true),
    ("send_zc", opcode::SendZc::CODE, false),
    ("bind", opcode::Bind::CODE, false),
    ("listen", opcode::Listen::CODE, false),
    ("uring_cmd", opcode::UringCmd16::CODE, false),
    ("msg_ring", opcode::MsgRingData::CODE, false),
];

/// The host's io_uring capabilities.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Capabilities {
    /// IORING_SETUP_SINGLE_ISSUER accepted.
    pub single_issuer: bool,
    /// IORING_SETUP_DEFER_TASKRUN accepted (with SINGLE_ISSUER).
    pub defer_taskrun: bool,
    /// IORING_SETUP_COOP_TASKRUN accepted.
    pub coop_taskrun: bool,
    /// Opcodes the engine knows about and whether each is supported.
    pub opcodes: Vec<(&'static str, bool)>,
}

impl Capabilities {
    /// Probes the running kernel.
    pub fn probe() -> Result<Self, UringError> {
        let ring: IoUring = IoUring::builder().build(8).map_err(UringError::Unavailable)?;
        let mut probe = Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        let opcodes = OPCODES.iter().map(|&(name, code, _)| (name, probe.is_supported(code))).collect();
        let defer =
            IoUring::<io_uring::squeue::Entry>::builder().setup_single_issuer().setup_defer_taskrun().build(8).is_ok();
        let single = defer || IoUring::<io_uring::squeue::Entry>::builder().setup_single_issuer().build(8).is_ok();
        let coop = IoUring::<io_uring::squeue::Entry>::builder().setup_coop_taskrun().build(8).is_ok();
        Ok(Self { single_issuer: single, defer_taskrun: defer, coop_taskrun: coop, opcodes })
    }

    /// Whether an opcode the engine knows is supported.
    pub fn supports(&self, name: &str) -> bool {
        self.opcodes.iter().any(|&(n, ok)| n == name && ok)
    }

    /// Fails with the first required opcode that is missing.
    pub fn require_engine_opcodes(&self) -> Result<(), UringError> {
        for &(name, _, required) in OPCODES {
            if required && !self.supports(name) {
                return Err(UringError::MissingOpcode(name));
            }
        }
        Ok(())
    }

    /// One line for `loadgen --version` and reports.
    pub fn describe(&self) -> String {
        let flags: Vec<&str> = [
            (self.single_issuer, "SINGLE_ISSUER"),
            (self.defer_taskrun, "DEFER_TASKRUN"),
            (self.coop_taskrun, "COOP_TASKRUN"),
        ]
        .iter()
        .filter(|(ok, _)| *ok)
        .map(|&(_, n)| n)
        .collect();
        let ops: Vec<&str> = self.opcodes.iter().filter(|(_, ok)| *ok).map(|&(n, _)| n).collect();
        let missing: Vec<&str> = self.opcodes.iter().filter(|(_, ok)| !*ok).map(|&(n, _)| n).collect();
        let mut s = format!("io_uring setup flags: {}; opcodes: {}", flags.join("|"), ops.join(" "));
        if !missing.is_empty() {
            s.push_str(&format!("; missing: {}", missing.join(" ")));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_agrees_with_the_kernel() {
        let caps = Capabilities::probe().expect("io_uring available on the build machines");
        caps.require_engine_opcodes().expect("kernel 6.1+ has every required opcode");
        // Every flag the probe reports must really build a ring (and the reverse is
        // checked by construction: the probe builds exactly these rings).
        if caps.defer_taskrun {
            assert!(caps.single_issuer, "DEFER_TASKRUN implies SINGLE_ISSUER");
        }
        let text = caps.describe();
        assert!(text.contains("socket") && text.contains("recv"), "{text}");
        // A socket op really works when the probe says so.
        if caps.supports("socket") {
            let mut ring: IoUring = IoUring::new(4).unwrap();
            let sqe = opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0).build().user_data(7);
            // SAFETY: the entry owns no buffers.
            unsafe { ring.submission().push(&sqe).unwrap() };
            ring.submit_and_wait(1).unwrap();
            let cqe = ring.completion().next().unwrap();
            assert_eq!(cqe.user_data(), 7);
            assert!(cqe.result() >= 0, "socket via io_uring: {}", cqe.result());
            // SAFETY: the kernel just returned this fd to us and nothing else owns it.
            unsafe { libc::close(cqe.result()) };
        }
    }
}
