//! The run's clock: monotonic nanoseconds since the start of the run (what schedules
//! and latencies use) and a fixed offset to Unix microseconds (what probe payloads
//! carry), captured once so the two never drift apart within a run.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A run clock, shared read-only by all workers (it is `Copy`).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
    start_unix_us: u64,
}

impl Clock {
    /// Starts the clock now.
    pub fn start() -> Self {
        let start = Instant::now();
        let start_unix_us = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
        Self { start, start_unix_us }
    }

    /// The instant the clock started.
    pub fn started_at(&self) -> Instant {
        self.start
    }

    /// Nanoseconds since the start of the run.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Unix microseconds of a run time.
    #[inline]
    pub fn unix_us(&self, run_ns: u64) -> u64 {
        self.start_unix_us + run_ns / 1_000
    }

    /// Run nanoseconds of a Unix-microsecond stamp made with this clock.
    #[inline]
    pub fn run_ns(&self, unix_us: u64) -> u64 {
        unix_us.saturating_sub(self.start_unix_us) * 1_000
    }

    /// Unix seconds at the start of the run.
    pub fn start_unix_s(&self) -> u64 {
        self.start_unix_us / 1_000_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_roundtrip_at_microsecond_precision() {
        let c = Clock::start();
        let t = 12_345_678_901;
        assert_eq!(c.run_ns(c.unix_us(t)), t / 1_000 * 1_000);
        assert!(c.now_ns() < 5_000_000_000);
        assert!(c.start_unix_s() > 1_700_000_000);
    }
}
