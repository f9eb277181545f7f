//! A ring configured from the host's [`Capabilities`]: SINGLE_ISSUER and DEFER_TASKRUN
//! when available, a sparse fixed-file table for direct descriptors, and the
//! provided-buffer rings it owns. The ring must be driven by the thread that created
//! it when SINGLE_ISSUER is on.

use io_uring::IoUring;

use super::UringError;
use super::buf_ring::BufRing;
use super::probe::Capabilities;

/// How to build a ring.
#[derive(Clone, Copy, Debug)]
pub struct RingConfig {
    /// Submission queue entries.
    pub sq_entries: u32,
    /// Completion queue entries (≥ sq_entries; multishot receives need headroom).
    pub cq_entries: u32,
    /// Direct-descriptor slots to register (≤ RLIMIT_NOFILE).
    pub fixed_files: u32,
}

/// A ring and the buffer rings registered with it.
pub struct Ring {
    /// The io_uring itself (dropped after `buf_rings` are unregistered).
    pub uring: IoUring,
    buf_rings: Vec<BufRing>,
    /// Setup flags actually used, for reports.
    pub flags_used: &'static str,
    fixed_files: u32,
}

impl Ring {
    /// Builds a ring with the best flags the host accepts.
    pub fn new(config: RingConfig, caps: &Capabilities) -> Result<Self, UringError> {
        let mut builder = IoUring::builder();
        builder.setup_cqsize(config.cq_entries.max(config.sq_entries));
        let flags_used = if caps.defer_taskrun {
            builder.setup_single_issuer().setup_defer_taskrun();
            "SINGLE_ISSUER|DEFER_TASKRUN"
        } else if caps.single_issuer && caps.coop_taskrun {
            builder.setup_single_issuer().setup_coop_taskrun();
            "SINGLE_ISSUER|COOP_TASKRUN"
        } else if caps.coop_taskrun {
            builder.setup_coop_taskrun();
            "COOP_TASKRUN"
        } else {
            "none"
        };
        let uring = builder.build(config.sq_entries).map_err(UringError::Unavailable)?;
        if config.fixed_files > 0 {
            uring
                .submitter()
                .register_files_sparse(config.fixed_files)
                .map_err(|source| UringError::FixedFiles { slots: config.fixed_files, source })?;
        }
        Ok(Self { uring, buf_rings: Vec::new(), flags_used, fixed_files: config.fixed_files })
    }

    /// Direct-descriptor slots registered.
    pub fn fixed_files(&self) -> u32 {
        self.fixed_files
    }

    /// Registers a provided-buffer ring; returns its index in this ring.
    pub fn add_buf_ring(&mut self, buf_ring: BufRing) -> Result<usize, UringError> {
        // SAFETY: the memory stays valid until unregistered in `Drop` (we own it).
        unsafe {
            self.uring
                .submitter()
                .register_buf_ring_with_flags(buf_ring.ring_addr(), buf_ring.entries(), buf_ring.bgid(), 0)
                .map_err(UringError::BufRing)?;
        }
        self.buf_rings.push(buf_ring);
        Ok(self.buf_rings.len() - 1)
    }

    /// A registered buffer ring.
    pub fn buf_ring(&self, index: usize) -> &BufRing {
        &self.buf_rings[index]
    }

    /// A registered buffer ring, to recycle buffers.
    pub fn buf_ring_mut(&mut self, index: usize) -> &mut BufRing {
        &mut self.buf_rings[index]
    }
}

/// IORING_ENTER_GETEVENTS: also runs deferred task work (DEFER_TASKRUN rings post
/// completions only when their issuer enters with this flag).
const ENTER_GETEVENTS: u32 = 1;

impl Ring {
    /// Submits what is queued and reaps completions without blocking. A plain
    /// `submit()` would leave DEFER_TASKRUN completions unposted.
    pub fn submit_and_reap(&mut self) -> std::io::Result<usize> {
        let len = self.uring.submission().len() as u32;
        // SAFETY: no signal mask or extended argument is passed; the entries queued in
        // the submission ring are the caller's responsibility as with any submit.
        unsafe { self.uring.submitter().enter::<libc::sigset_t>(len, 0, ENTER_GETEVENTS, None) }
    }

    /// Registers `eventfd` to be signalled when this ring has completions (or deferred
    /// work) so a thread sleeping on another ring wakes up for it.
    pub fn register_eventfd(&self, eventfd: std::os::fd::RawFd) -> Result<(), UringError> {
        self.uring.submitter().register_eventfd(eventfd)?;
        Ok(())
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        for b in &self.buf_rings {
            let _ = self.uring.submitter().unregister_buf_ring(b.bgid());
        }
    }
}
