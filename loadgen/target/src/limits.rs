//! Rate limits as token buckets: per client IP for new connections, and per connection
//! for the messages a client sends. A bucket holds up to `rate` tokens (one second's
//! worth, the burst) and refills at `rate` per second. Time is a parameter, so the
//! arithmetic is tested without waiting.
//!
//! The per-IP buckets are shared by every worker through Redis by default
//! ([`RateScope::Shared`], [`shared_admit`]: one Lua script per upgrade, on Redis's
//! clock), so an address gets the rate whichever workers it reaches. With
//! [`RateScope::Worker`], or while Redis does not answer within
//! [`SHARED_TIMEOUT`], each worker uses its own table ([`PerIp`]): with W workers an
//! address may then open up to W times the rate.

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

/// Where the per-IP connection buckets live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateScope {
    /// In Redis, one bucket per address for all workers.
    #[default]
    Shared,
    /// In each worker.
    Worker,
}

/// How long an upgrade waits for the shared bucket before the worker's own decides.
pub const SHARED_TIMEOUT: Duration = Duration::from_millis(250);

/// The key of `ip`'s shared bucket (one key, so one slot in a cluster).
pub fn shared_key(ip: IpAddr) -> String {
    format!("loadgen-target:conn-rate:{{{ip}}}")
}

// KEYS: the bucket (a hash of tokens and the time in ms). ARGV: the rate. Returns 0
// when a token was taken, else the µs until there is one.
const SHARED_BUCKET: &str = r"
local rate = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1]) or rate
local at = tonumber(b[2]) or now
tokens = math.min(rate, tokens + math.max(0, now - at) * rate / 1000)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) / rate * 1000000) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', string.format('%d', now))
redis.call('PEXPIRE', KEYS[1], 2000)
return wait
";

/// Takes a token from `ip`'s shared bucket: `Ok(Ok(()))`, `Ok(Err(wait))`, or the
/// Redis failure (the caller falls back to its own table).
pub async fn shared_admit(
    publisher: &crate::publish::Publisher,
    ip: IpAddr,
    rate: u32,
) -> Result<Result<(), Duration>, String> {
    let key = shared_key(ip);
    let call = async {
        let mut conn = publisher.connection(&key).await.map_err(|e| e.to_string())?;
        let script = redis::Script::new(SHARED_BUCKET);
        match script.key(&key).arg(rate).invoke_async::<u64>(&mut conn).await {
            Ok(wait) => Ok(wait),
            Err(e) => Err(publisher.failed(e).await.to_string()),
        }
    };
    match tokio::time::timeout(SHARED_TIMEOUT, call).await {
        Ok(Ok(0)) => Ok(Ok(())),
        Ok(Ok(us)) => Ok(Err(Duration::from_micros(us))),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!("no answer within {} ms", SHARED_TIMEOUT.as_millis())),
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
