//! Rate limits as token buckets: per client IP for new connections (a worker's own
//! table: with W workers an address may open up to W times the rate), and per
//! connection for the messages a client sends. A bucket holds up to `rate` tokens (one
//! second's worth, the burst) and refills at `rate` per second. Time is a parameter,
//! so the arithmetic is tested without waiting.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept before full (idle) buckets are forgotten.
const PRUNE_AT: usize = 10_000;

/// One bucket.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub fn full(rate: u32, now: Instant) -> Self {
        Self { tokens: f64::from(rate), at: now }
    }

    fn refill(&mut self, rate: u32, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * f64::from(rate)).min(f64::from(rate));
        self.at = now;
    }

    /// Takes a token: `Ok`, or how long until one is there.
    pub fn take(&mut self, rate: u32, now: Instant) -> Result<(), Duration> {
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / f64::from(rate.max(1))))
        }
    }
}

/// New connections per client IP.
#[derive(Debug, Default)]
pub struct PerIp {
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl PerIp {
    /// Admits a connection from `ip` at `rate` per second, or says when to come back.
    pub fn admit(&self, ip: IpAddr, rate: u32, now: Instant) -> Result<(), Duration> {
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= PRUNE_AT {
            map.retain(|_, b| {
                b.refill(rate, now);
                b.tokens < f64::from(rate)
            });
        }
        map.entry(ip).or_insert_with(|| Bucket::full(rate, now)).take(rate, now)
    }
}

/// Whole seconds for `Retry-After` (at least 1).
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_allow_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::full(5, t0);
        assert!((0..5).all(|_| b.take(5, t0).is_ok()));
        let wait = b.take(5, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(200));
        assert!(b.take(5, t0 + Duration::from_millis(199)).is_err());
        assert!(b.take(5, t0 + Duration::from_millis(400)).is_ok());
        assert_eq!(retry_after_secs(wait), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(2100)), 3);
    }

    #[test]
    fn addresses_have_their_own_buckets() {
        let (t0, ips) = (Instant::now(), PerIp::default());
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        assert!(ips.admit(a, 2, t0).is_ok() && ips.admit(a, 2, t0).is_ok());
        assert!(ips.admit(a, 2, t0).is_err());
        assert!(ips.admit(b, 2, t0).is_ok(), "another address is not limited by the first");
        assert!(ips.admit(a, 2, t0 + Duration::from_millis(500)).is_ok());
    }
}
