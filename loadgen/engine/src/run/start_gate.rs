//! The start gate of a run's workers: each sets up its rings, then waits here; the
//! last to arrive starts the run's clock, so ring and buffer set-up is never counted as
//! schedule lag (the first connection of a run used to look milliseconds late). It
//! knows nothing of what the workers do.

use crate::clock::Clock;

/// Where the workers wait for each other before the run's clock starts.
#[derive(Debug)]
pub struct StartGate {
    barrier: std::sync::Barrier,
    clock: std::sync::OnceLock<Clock>,
}

impl StartGate {
    /// A gate for `workers` workers.
    pub fn new(workers: usize) -> Self {
        Self { barrier: std::sync::Barrier::new(workers.max(1)), clock: std::sync::OnceLock::new() }
    }

    /// Waits for every worker; the last to arrive starts the clock. Every worker must
    /// call this once, even one whose set-up failed, or the others wait forever.
    pub fn wait(&self) -> Clock {
        if self.barrier.wait().is_leader() {
            let _ = self.clock.set(Clock::start());
        }
        self.barrier.wait();
        *self.clock.get().expect("the leader started the clock")
    }

    /// The run's clock, once started.
    pub fn clock(&self) -> Option<Clock> {
        self.clock.get().copied()
    }
}
