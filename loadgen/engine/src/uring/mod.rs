//! io_uring building blocks of the engine: what the host's kernel offers
//! ([`probe`]), rings configured from it ([`ring`]), provided-buffer rings shared by
//! a core's connections ([`buf_ring`]), so an idle connection holds no receive buffer,
//! and the reactor both roles' threads host ([`reactor`]: their rings, wakes,
//! submission routing, waiting and reaping).
//!
//! Sockets are io_uring *direct descriptors* (slots of a ring's fixed-file table): they
//! do not use process file descriptors, which is how one process holds more
//! connections than RLIMIT_NOFILE. A ring's table may not exceed RLIMIT_NOFILE itself,
//! so large runs use several rings (see `preflight`). This module does not know about
//! WebSocket or connections' life cycles.

pub mod buf_ring;
pub mod ops;
pub mod probe;
pub mod reactor;
pub mod ring;

#[cfg(test)]
mod tests;

/// An io_uring failure while setting up or driving a ring.
#[derive(Debug, thiserror::Error)]
pub enum UringError {
    /// io_uring_setup failed (kernel too old, io_uring disabled by sysctl or seccomp).
    #[error(
        "io_uring is unavailable: {0} (needs Linux ≥ 6.1 with io_uring enabled; check `sysctl kernel.io_uring_disabled`)"
    )]
    Unavailable(std::io::Error),
    /// A required opcode is missing.
    #[error("the kernel lacks io_uring {0}, which loadgen needs (needs Linux ≥ 6.1)")]
    MissingOpcode(&'static str),
    /// Registering the fixed-file table failed.
    #[error(
        "cannot register {slots} direct descriptors: {source} (a ring's table may not exceed RLIMIT_NOFILE; raise `ulimit -n`)"
    )]
    FixedFiles {
        /// Slots requested.
        slots: u32,
        /// OS error.
        source: std::io::Error,
    },
    /// Registering a provided-buffer ring failed.
    #[error("cannot register a provided-buffer ring: {0} (needs Linux ≥ 5.19)")]
    BufRing(std::io::Error),
    /// Another I/O error from io_uring_enter or registration.
    #[error("io_uring: {0}")]
    Io(#[from] std::io::Error),
}
