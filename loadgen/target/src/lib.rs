//! `loadgen-target`: the reference target of loadgen (`loadgen serve --mode notify`), a
//! real-time notification system of the kind the project's first seed describes:
//! WebSocket workers fanning notifications out to staff through Redis Pub/Sub.
//!
//! It is an independent implementation on purpose: tokio, tokio-tungstenite and the
//! `redis` crate, never loadgen's protocol crate, engine or TLS crate, so every run of
//! loadgen against it is also an interop check of loadgen's client.
//!
//! What is here (see `docs/target.md` for the wire contract):
//! - [`redis_server`]: an embedded `redis-server` child on a free loopback port.
//! - [`worker`]: one worker (a TCP listener with SO_REUSEPORT on a tokio runtime):
//!   WebSocket upgrades at `/ws?user=U&unit=N&role=R`, and on the same port `GET
//!   /healthz`, `GET /metrics`, `POST /publish`, `/admin/faults` ([`control`]).
//! - [`hub`] and [`subscriber`]: channel subscriptions reference-counted across a
//!   worker's clients over one Redis subscriber connection; [`fanout`] delivers each
//!   Redis message to the local clients through bounded per-connection queues
//!   ([`queue`]), with the faults of [`faults`] applied.
//! - [`envelope`]: the JSON envelope of every delivered notification.
//! - `admit`, [`auth`], [`limits`]: the handshake defences (tokens, Origins, rate
//!   limits); the per-connection policing is in `ws`.
//! - [`supervisor`]: N worker processes on one port, restarted when they exit;
//!   [`target`]: Redis plus supervised workers, what the CLI starts.
//!
//! - [`breaker`] (publishing), [`pending`] (notifications kept for reconnects), the
//!   WebSocket publisher role (`ws_publish`), [`control`] (faults at run time).
//!
//! - [`haproxy`]: the HAProxy topology (workers on their own ports behind it);
//!   [`haproxy_follow`]: `no-sticky` switched in HAProxy when the fault list changes.
//! - [`reminders`]: scheduled reminders kept in Redis, fired by whichever worker
//!   claims them first, with their lateness recorded.
//!
//! - [`pubsub`]: classic or sharded Pub/Sub, the subscriber over RESP3 or RESP2.
//!
//! - [`sentinel`] and [`endpoint`]: the master found through Redis Sentinel and
//!   followed across failovers.
//!
//! - [`cluster`]: Redis Cluster, commands routed by hash slot, the slot map followed.
//!
//! Everything issue 17 lists for Redis is here; `docs/target.md` says what is not.

mod admit;
pub mod auth;
pub mod breaker;
pub mod cluster;
pub mod control;
pub mod endpoint;
pub mod envelope;
pub mod fanout;
pub mod faults;
pub mod haproxy;
pub mod haproxy_follow;
mod http;
pub mod hub;
pub mod limits;
pub mod metrics;
pub mod pending;
mod pong_filter;
mod prefixed;
pub mod publish;
pub mod pubsub;
pub mod queue;
pub mod redis_server;
pub mod redis_watch;
pub mod reminders;
pub mod sentinel;
pub mod subscriber;
pub mod supervisor;
pub mod target;
pub mod worker;
mod ws;
mod ws_publish;

pub use envelope::{Envelope, channel_id};
pub use faults::{FAULT_SYNTAX, Fault, Faults};
pub use queue::SlowConsumer;
pub use redis_server::EmbeddedRedis;
pub use supervisor::{Supervisor, SupervisorEvent};
pub use target::{Target, TargetConfig};
pub use worker::{WORKER_ENV, Worker, WorkerConfig, run_worker_process};

use std::net::SocketAddr;

/// Everything that can go wrong in the target, for people: each message says what
/// failed and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// `redis-server` is not on PATH (or not at the path given).
    #[error("redis-server not found: install it (apt-get install redis-server) or pass --redis redis://HOST:PORT")]
    RedisServerNotFound,
    /// `redis-sentinel` is not on PATH (the Sentinel tests start one).
    #[error("redis-sentinel not found: install it (apt-get install redis-sentinel)")]
    RedisSentinelNotFound,
    /// `haproxy` is not on PATH (`--balancer haproxy`).
    #[error("haproxy not found: install it (apt-get install haproxy) or use the default --balancer reuseport")]
    HaproxyNotFound,
    /// HAProxy did not come up.
    #[error("haproxy did not start: {0}")]
    HaproxyStart(String),
    /// The embedded `redis-server` did not come up.
    #[error("redis-server did not start: {0}")]
    RedisServerStart(String),
    /// A Redis command or connection failed.
    #[error("redis at {url}: {source}")]
    Redis {
        url: String,
        #[source]
        source: redis::RedisError,
    },
    /// Binding or listening failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// A configuration value is unusable (one line, naming the value).
    #[error("{0}")]
    Config(String),
    /// Spawning or talking to a worker process failed.
    #[error("worker {id}: {what}")]
    Worker { id: u32, what: String },
    /// Any other I/O failure.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl TargetError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io { what: what.into(), source }
    }
}

/// Microseconds since the Unix epoch, now.
pub fn unix_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}
