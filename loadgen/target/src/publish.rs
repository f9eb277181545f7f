//! `POST /publish`: the request body, its validation, and publishing through Redis with
//! per-channel sequence numbers.
//!
//! Body: `{"channel": "...", "count": N, "body": <any JSON>, "interval_us": U,
//! "critical": B}` (`count` defaults to 1, `body` to null, `critical` to false: a
//! critical message overtakes the receivers' queues; `interval_us` paces the messages: message i
//! is due at start + i·U and stamped with that intended time; without it all are due
//! at once). Unknown members, a bad channel name, `count` outside 1..=1,000,000 or a
//! run longer than 10 minutes are refused with a one-line reason.
//!
//! Each batch of up to [`BATCH`] messages is one Lua script in Redis: `INCRBY
//! seq:<channel> n` reserves n consecutive sequence numbers and the script PUBLISHes
//! the n envelopes in that order, so within a channel Redis order is sequence order
//! whichever worker publishes. A paced request publishes one message per script call.
//! Concurrent publishers to one channel may interleave between batches; the answer
//! lists the ranges this request got.
//!
//! Messages to a person (`person:*`) are also kept in Redis, in the list
//! `pending:<channel>` (the last [`PENDING_MAX`], for the pending TTL after the latest),
//! so a person reconnecting with `since=SEQ` gets what they missed ([`crate::pending`]).
//!
//! In sharded mode ([`crate::pubsub`]) the script calls SPUBLISH instead of PUBLISH.
//!
//! Every publish passes the worker's circuit breaker ([`crate::breaker`]): while it is
//! open a request is refused at once ([`PublishError::Open`], a 503 with
//! `Retry-After`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::Mutex;

use crate::envelope::{EnvelopeParts, channel_id, valid_channel};
use crate::metrics::Metrics;

/// Messages per script call.
pub const BATCH: usize = 1000;
/// Most messages one request may publish.
pub const MAX_COUNT: u64 = 1_000_000;
/// Longest paced run one request may ask for.
pub const MAX_RUN: Duration = Duration::from_secs(600);

/// Messages kept per person.
pub const PENDING_MAX: usize = 1000;

// KEYS: seq counter, pending list. ARGV: channel, head, mid, tail, keep-seconds (0: do
// not keep), PUBLISH or SPUBLISH, then one send time per message.
const SCRIPT: &str = r"
local n = #ARGV - 6
local last = redis.call('INCRBY', KEYS[1], n)
local first = last - n
local keep = tonumber(ARGV[5])
for i = 1, n do
  local text = ARGV[2] .. string.format('%d', first + i - 1) .. ARGV[3] .. ARGV[6 + i] .. ARGV[4]
  redis.call(ARGV[6], ARGV[1], text)
  if keep > 0 then redis.call('RPUSH', KEYS[2], text) end
end
if keep > 0 then
  redis.call('LTRIM', KEYS[2], -1000, -1)
  redis.call('EXPIRE', KEYS[2], keep)
end
return first
";

/// A publish request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    pub channel: String,
    #[serde(default = "one")]
    pub count: u64,
    #[serde(default)]
    pub body: Option<Box<RawValue>>,
    #[serde(default)]
    pub interval_us: Option<u64>,
    #[serde(default)]
    pub critical: bool,
}

fn one() -> u64 {
    1
}

/// The answer: the channel, its id, and the sequence numbers given out.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Published {
    pub channel: String,
    pub channel_id: u32,
    pub count: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Inclusive ranges, merged; one range unless another publisher interleaved.
    pub ranges: Vec<[u64; 2]>,
}

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The request is unusable (400).
    #[error("{0}")]
    Invalid(String),
    /// Redis failed (503).
    #[error("redis unavailable: {0}")]
    Redis(String),
    /// The circuit breaker is open (503 with Retry-After): retry after this long.
    #[error("publishing is suspended: the circuit breaker is open after repeated Redis failures; retry later")]
    Open(Duration),
}

/// Reads and validates a request body.
pub fn parse_request(body: &[u8]) -> Result<PublishRequest, PublishError> {
    // serde would also take a struct as a JSON array; only an object is a request.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(PublishError::Invalid("invalid publish request: expected a JSON object".into()));
    }
    let req: PublishRequest =
        serde_json::from_slice(body).map_err(|e| PublishError::Invalid(format!("invalid publish request: {e}")))?;
    check_channel(&req.channel).map_err(PublishError::Invalid)?;
    if !(1..=MAX_COUNT).contains(&req.count) {
        return Err(PublishError::Invalid(format!("count {} is outside 1..={MAX_COUNT}", req.count)));
    }
    if let Some(us) = req.interval_us
        && us.saturating_mul(req.count - 1) > MAX_RUN.as_micros() as u64
    {
        return Err(PublishError::Invalid(format!(
            "count × interval_us spans more than {} s; publish less or faster",
            MAX_RUN.as_secs()
        )));
    }
    Ok(req)
}

/// Whether a client may publish (or schedule) to `channel`: a usable name, not one of
/// the target's own (`loadgen-target:*`). The error is one line.
pub(crate) fn check_channel(channel: &str) -> Result<(), String> {
    if !valid_channel(channel) {
        return Err(format!("invalid channel {channel:?}: 1 to 200 bytes, no control characters"));
    }
    if channel.starts_with("loadgen-target:") {
        return Err(format!("channel {channel:?} is reserved for the target's control (loadgen-target:*)"));
    }
    Ok(())
}

/// A worker's publishing side: one multiplexed Redis connection, made when first
/// needed, again after it failed, and again when the endpoint switched to another
/// master ([`crate::endpoint`]).
#[derive(Debug)]
pub struct Publisher {
    endpoint: std::sync::Arc<crate::endpoint::Endpoint>,
    worker: u32,
    /// The connection and the endpoint generation it was made for.
    conn: Mutex<Option<(u64, redis::aio::MultiplexedConnection)>>,
    script: redis::Script,
    breaker: crate::breaker::Breaker,
    pending_ttl: Duration,
    pubsub: crate::pubsub::PubSubMode,
    cluster: Option<std::sync::Arc<crate::cluster::Router>>,
}

impl Publisher {
    /// A publisher of `worker`; messages to persons are kept for `pending_ttl` (zero:
    /// not kept).
    pub fn new(endpoint: std::sync::Arc<crate::endpoint::Endpoint>, worker: u32, pending_ttl: Duration) -> Self {
        Self {
            pending_ttl,
            endpoint,
            worker,
            conn: Mutex::new(None),
            script: redis::Script::new(SCRIPT),
            breaker: crate::breaker::Breaker::default(),
            pubsub: crate::pubsub::PubSubMode::Classic,
            cluster: None,
        }
    }

    /// The same, publishing with `mode`'s command (PUBLISH or SPUBLISH).
    pub fn with_pubsub(mut self, mode: crate::pubsub::PubSubMode) -> Self {
        self.pubsub = mode;
        self
    }

    /// The Pub/Sub mode it publishes in.
    pub fn pubsub(&self) -> crate::pubsub::PubSubMode {
        self.pubsub
    }

    /// The breaker's state now, and how often it opened.
    pub fn breaker(&self) -> (crate::breaker::State, u64) {
        (self.breaker.state(std::time::Instant::now()), self.breaker.opened())
    }

    /// The same, routing by hash slot in a Redis Cluster ([`crate::cluster`]).
    pub fn with_cluster(mut self, router: std::sync::Arc<crate::cluster::Router>) -> Self {
        self.cluster = Some(router);
        self
    }

    /// A connection for commands on `key` (in a cluster, to the master of its slot).
    pub(crate) async fn connection(&self, key: &str) -> Result<redis::aio::MultiplexedConnection, PublishError> {
        if let Some(router) = &self.cluster {
            return router.connection_for(key).await.map_err(|e| PublishError::Redis(e.to_string()));
        }
        let mut slot = self.conn.lock().await;
        let (generation, client) = self.endpoint.current();
        if let Some((g, c)) = slot.as_ref()
            && *g == generation
        {
            return Ok(c.clone());
        }
        let connect = client.get_multiplexed_async_connection();
        let c = tokio::time::timeout(Duration::from_secs(3), connect)
            .await
            .map_err(|_| PublishError::Redis("connect timed out".into()))?
            .map_err(|e| PublishError::Redis(e.to_string()))?;
        *slot = Some((generation, c.clone()));
        Ok(c)
    }

    async fn forget(&self) {
        *self.conn.lock().await = None;
    }

    /// A Redis failure as a [`PublishError`], forgetting the connection when it is the
    /// connection that failed (the next call makes a new one), and in a cluster reading
    /// the slot map again after a redirection.
    pub(crate) async fn failed(&self, e: redis::RedisError) -> PublishError {
        let lost = e.is_io_error() || e.is_connection_dropped() || e.is_timeout();
        if lost {
            self.forget().await;
        }
        if let Some(router) = &self.cluster
            && (lost || e.redirect_node().is_some())
            && let Err(r) = router.refresh().await
        {
            tracing::warn!(error = %r, "redis cluster: cannot read the slot map");
        }
        PublishError::Redis(e.to_string())
    }

    /// The key `PREFIX:<channel>`, or in a cluster one in the channel's slot.
    pub(crate) fn key(&self, prefix: &str, channel: &str) -> Result<String, PublishError> {
        if self.cluster.is_none() {
            return Ok(format!("{prefix}{channel}"));
        }
        crate::cluster::tagged(prefix, channel).ok_or_else(|| {
            PublishError::Invalid(format!(
                "channel {channel:?} cannot be published to in a Redis Cluster: its braces make a hash tag of another slot"
            ))
        })
    }

    /// One script call: publishes one envelope per send time, returns the first seq.
    async fn batch(&self, parts: &EnvelopeParts, req: &PublishRequest, sent: &[u64]) -> Result<u64, PublishError> {
        let result = self.batch_unguarded(parts, req, sent).await;
        match &result {
            Ok(_) => self.breaker.success(),
            Err(_) => self.breaker.failure(std::time::Instant::now()),
        }
        result
    }

    async fn batch_unguarded(
        &self,
        parts: &EnvelopeParts,
        req: &PublishRequest,
        sent: &[u64],
    ) -> Result<u64, PublishError> {
        self.publish_parts(&req.channel, parts, sent).await
    }

    /// One script call, no breaker: publishes on `channel` one envelope of `parts` per
    /// send time, numbered in a row; the first number. A redirection in a cluster (a
    /// slot that moved) is retried once on the new map.
    pub(crate) async fn publish_parts(
        &self,
        channel: &str,
        parts: &EnvelopeParts,
        sent: &[u64],
    ) -> Result<u64, PublishError> {
        let seq_key = self.key("seq:", channel)?;
        let pending_key = self.key("pending:", channel)?;
        let keep = if channel.starts_with("person:") { self.pending_ttl.as_secs() } else { 0 };
        for attempt in 0..2 {
            let mut conn = self.connection(&seq_key).await?;
            let mut inv = self.script.key(&seq_key);
            inv.key(&pending_key);
            inv.arg(channel).arg(&parts.head).arg(&parts.mid).arg(&parts.tail).arg(keep);
            inv.arg(self.pubsub.publish_command());
            for s in sent {
                inv.arg(*s);
            }
            match inv.invoke_async::<u64>(&mut conn).await {
                Ok(first) => return Ok(first),
                // A redirection in a cluster, or a connection kept from before a Redis
                // restart that fails on its first write (broken pipe: the script never
                // reached the new server): once more on a fresh connection.
                Err(e) if attempt == 0 && (self.cluster.is_some() && e.redirect_node().is_some() || stale(&e)) => {
                    let _ = self.failed(e).await;
                }
                Err(e) => return Err(self.failed(e).await),
            }
        }
        Err(PublishError::Redis("still redirected after reading the slot map again".into()))
    }

    /// Publishes `req`, counting each message published in `metrics`.
    pub async fn publish(&self, req: &PublishRequest, metrics: &Metrics) -> Result<Published, PublishError> {
        if let Err(wait) = self.breaker.allow(std::time::Instant::now()) {
            Metrics::inc(&metrics.publish_rejected);
            return Err(PublishError::Open(wait));
        }
        let mut parts = EnvelopeParts::new(&req.channel, self.worker, req.body.as_deref());
        if req.critical {
            parts = parts.critical();
        }
        let mut ranges: Vec<[u64; 2]> = Vec::new();
        let mut record = |first: u64, n: u64| {
            Metrics::add(&metrics.published, n);
            match ranges.last_mut() {
                Some(r) if r[1] + 1 == first => r[1] = first + n - 1,
                _ => ranges.push([first, first + n - 1]),
            }
        };
        match req.interval_us {
            Some(us) if req.count > 1 => {
                let (start, start_us) = (tokio::time::Instant::now(), crate::unix_us());
                for i in 0..req.count {
                    let offset = Duration::from_micros(us * i);
                    tokio::time::sleep_until(start + offset).await;
                    let first = self.batch(&parts, req, &[start_us + us * i]).await?;
                    record(first, 1);
                }
            }
            _ => {
                let mut left = req.count;
                while left > 0 {
                    let n = left.min(BATCH as u64);
                    // Due now: the intended publish time is when the batch goes out.
                    let sent = vec![crate::unix_us(); n as usize];
                    let first = self.batch(&parts, req, &sent).await?;
                    record(first, n);
                    left -= n;
                }
            }
        }
        Ok(Published {
            channel: req.channel.clone(),
            channel_id: channel_id(&req.channel),
            count: req.count,
            first_seq: ranges.first().map_or(0, |r| r[0]),
            last_seq: ranges.last().map_or(0, |r| r[1]),
            ranges,
        })
    }
}

/// A connection that died before this call (a Redis restart): its first write fails.
fn stale(e: &redis::RedisError) -> bool {
    e.is_connection_dropped() && e.to_string().contains("roken pipe")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(body: &str) -> String {
        match parse_request(body.as_bytes()) {
            Err(PublishError::Invalid(why)) => {
                assert!(!why.contains('\n'), "{why}");
                why
            }
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn requests_are_validated_with_one_line_reasons() {
        let r = parse_request(br#"{"channel":"unit:1","count":3,"body":{"a":[1]}}"#).unwrap();
        assert_eq!((r.channel.as_str(), r.count, r.body.unwrap().get()), ("unit:1", 3, r#"{"a":[1]}"#));
        assert_eq!(parse_request(br#"{"channel":"b"}"#).unwrap().count, 1);
        assert!(invalid("{").starts_with("invalid publish request: EOF"));
        assert!(invalid(r#"["a", 1]"#).ends_with("expected a JSON object"));
        assert!(invalid("").ends_with("expected a JSON object"));
        assert!(invalid(r#"{"channel":"a","colour":1}"#).contains("unknown field `colour`"));
        assert!(invalid(r#"{"count":1}"#).contains("missing field `channel`"));
        assert!(invalid(r#"{"channel":"a","count":-1}"#).contains("invalid value"));
        assert!(invalid(r#"{"channel":"a","count":0}"#).contains("outside 1..="));
        assert!(invalid(r#"{"channel":"a\nb"}"#).starts_with("invalid channel"));
        assert!(invalid(r#"{"channel":"loadgen-target:control"}"#).contains("reserved"));
        assert!(invalid(r#"{"channel":"a","count":1000,"interval_us":1000000}"#).contains("more than 600 s"));
    }
}
