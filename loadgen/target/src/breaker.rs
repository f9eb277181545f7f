//! The circuit breaker around a worker's publishing (`POST /publish` and WebSocket
//! publishers): closed, it lets every publish through and counts consecutive Redis
//! failures; at [`FAILURES_TO_OPEN`] it opens, and for [`COOLDOWN`] every publish is
//! refused at once (the fallback: `503` with `Retry-After`, nothing published, the
//! client is to retry) instead of waiting on a Redis that is down; then it is
//! half-open: one publish is let through as a trial, and its outcome closes the
//! breaker or opens it again. Each worker has its own. Time is a parameter.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Consecutive failures that open the breaker.
pub const FAILURES_TO_OPEN: u32 = 5;
/// How long it stays open before a trial.
pub const COOLDOWN: Duration = Duration::from_secs(1);

/// The state, as exported (`breaker_state` gauge: 0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half-open",
        }
    }

    pub fn gauge(self) -> u64 {
        match self {
            State::Closed => 0,
            State::Open => 1,
            State::HalfOpen => 2,
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: State,
    failures: u32,
    open_until: Instant,
    /// A half-open trial is under way.
    trial: bool,
    opened: u64,
}

/// The breaker.
#[derive(Debug)]
pub struct Breaker {
    inner: Mutex<Inner>,
}

impl Default for Breaker {
    fn default() -> Self {
        let now = Instant::now();
        Self {
            inner: Mutex::new(Inner { state: State::Closed, failures: 0, open_until: now, trial: false, opened: 0 }),
        }
    }
}

impl Breaker {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a publish may go ahead now; if not, how long until it may be tried.
    pub fn allow(&self, now: Instant) -> Result<(), Duration> {
        let mut b = self.lock();
        if b.state == State::Open && now >= b.open_until {
            b.state = State::HalfOpen;
            b.trial = false;
        }
        match b.state {
            State::Closed => Ok(()),
            State::Open => Err(b.open_until - now),
            State::HalfOpen if !b.trial => {
                b.trial = true;
                Ok(())
            }
            State::HalfOpen => Err(COOLDOWN),
        }
    }

    /// A publish that went ahead succeeded.
    pub fn success(&self) {
        let mut b = self.lock();
        b.state = State::Closed;
        b.failures = 0;
        b.trial = false;
    }

    /// A publish that went ahead failed in Redis.
    pub fn failure(&self, now: Instant) {
        let mut b = self.lock();
        b.failures += 1;
        if b.state == State::HalfOpen || b.failures >= FAILURES_TO_OPEN {
            if b.state != State::Open {
                b.opened += 1;
            }
            b.state = State::Open;
            b.open_until = now + COOLDOWN;
            b.trial = false;
        }
    }

    /// The state now (an open breaker past its cooldown reads half-open).
    pub fn state(&self, now: Instant) -> State {
        let b = self.lock();
        if b.state == State::Open && now >= b.open_until { State::HalfOpen } else { b.state }
    }

    /// Times it opened.
    pub fn opened(&self) -> u64 {
        self.lock().opened
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_open_half_open_closed() {
        let (b, t0) = (Breaker::default(), Instant::now());
        for _ in 0..FAILURES_TO_OPEN - 1 {
            assert!(b.allow(t0).is_ok());
            b.failure(t0);
        }
        assert_eq!(b.state(t0), State::Closed);
        b.failure(t0);
        assert_eq!((b.state(t0), b.opened()), (State::Open, 1));
        assert_eq!(b.allow(t0 + Duration::from_millis(400)), Err(Duration::from_millis(600)));
        let later = t0 + COOLDOWN;
        assert_eq!(b.state(later), State::HalfOpen);
        assert!(b.allow(later).is_ok(), "one trial");
        assert!(b.allow(later).is_err(), "only one");
        b.failure(later);
        assert_eq!((b.state(later), b.opened()), (State::Open, 2), "a failed trial opens it again");
        let later = later + COOLDOWN;
        assert!(b.allow(later).is_ok());
        b.success();
        assert_eq!(b.state(later), State::Closed);
        assert!(b.allow(later).is_ok() && b.allow(later).is_ok());
    }
}
