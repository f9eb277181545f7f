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
    told: Option<std::sync::Arc<std::sync::OnceLock<std::time::Instant>>>,
}

impl StartGate {
    /// A gate for `workers` workers; `told` is set to the clock's start when it starts.
    pub fn new(workers: usize, told: Option<std::sync::Arc<std::sync::OnceLock<std::time::Instant>>>) -> Self {
        Self { barrier: std::sync::Barrier::new(workers.max(1)), clock: std::sync::OnceLock::new(), told }
    }

    /// Waits for every worker; the last to arrive starts the clock. Every worker must
    /// call this once, even one whose set-up failed, or the others wait forever.
    pub fn wait(&self) -> Clock {
        if self.barrier.wait().is_leader() {
            let clock = Clock::start();
            let _ = self.clock.set(clock);
            if let Some(told) = &self.told {
                let _ = told.set(clock.started_at());
            }
        }
        self.barrier.wait();
        *self.clock.get().expect("the leader started the clock")
    }

    /// The run's clock, once started.
    pub fn clock(&self) -> Option<Clock> {
        self.clock.get().copied()
    }
}
