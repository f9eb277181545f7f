//! The whole reference target as `loadgen serve --mode notify` runs it: Redis (the
//! embedded server, or a given URL checked with a PING first) and the supervised
//! worker processes on one port. Blocking API, no runtime of its own: the workers
//! carry the tokio runtimes. Stopping stops the workers first, then the embedded Redis.
//!
//! With [`Balancer::Haproxy`], the workers get loopback ports of their own and a
//! `haproxy` child listens on the public address in front of them
//! ([`crate::haproxy`]); it is stopped after the workers, before Redis. A thread
//! follows the fault list in Redis and switches `no-sticky` in HAProxy
//! ([`crate::haproxy_follow`]).
//!
//! The embedded Redis is watched ([`crate::redis_watch`]): when it dies by itself it
//! is started again on its port, and [`Target::events`] reports both.
//!
//! Before the workers start, the `--fault` list is stored in Redis (what `POST
//! /admin/faults` changes later), and an admin token is generated unless one is given.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::TargetError;
use crate::redis_server::EmbeddedRedis;
use crate::supervisor::{Supervisor, SupervisorConfig, SupervisorEvent};
use crate::worker::WorkerConfig;

/// What to start.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    /// An existing Redis (`redis://HOST:PORT`); none: start the embedded one.
    pub redis: Option<String>,
    pub workers: u32,
    /// The workers' settings (`listen` is the shared address; `redis_url` is replaced).
    pub worker: WorkerConfig,
    /// The program and arguments that run a worker process.
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub balancer: Balancer,
}

/// How connections reach the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balancer {
    /// Every worker on the one port, the kernel picks (SO_REUSEPORT).
    #[default]
    ReusePort,
    /// Workers on their own ports behind HAProxy (sticky by user id).
    Haproxy,
}

/// A running target.
#[derive(Debug)]
pub struct Target {
    supervisor: Option<Supervisor>,
    haproxy: Option<crate::haproxy::Haproxy>,
    embedded: Option<crate::redis_watch::RedisWatch>,
    side_events: std::sync::Mutex<std::sync::mpsc::Receiver<SupervisorEvent>>,
    redis_url: String,
    admin_token: String,
    admin_token_generated: bool,
}

/// Connections one worker process is sized for: a process here holds at most 20,000
/// descriptors, so 18,000 leaves room for Redis, listeners and files.
pub const CONNECTIONS_PER_WORKER: u64 = 18_000;

/// The default worker count: the larger of the core count and `connections` ÷
/// [`CONNECTIONS_PER_WORKER`] (rounded up), at most 256.
pub fn default_workers(cores: usize, connections: Option<u64>) -> u32 {
    let by_fds = connections.map_or(0, |c| c.div_ceil(CONNECTIONS_PER_WORKER));
    (cores as u64).max(by_fds).clamp(1, 256) as u32
}

/// Checks that `url` is a Redis that answers PING within 2 s.
pub fn check_redis(url: &str) -> Result<(), TargetError> {
    let err = |source| TargetError::Redis { url: url.to_string(), source };
    let client = redis::Client::open(url).map_err(err)?;
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(2)).map_err(err)?;
    let _: String = redis::cmd("PING").query(&mut conn).map_err(err)?;
    Ok(())
}

/// `redis://[USER:PASSWORD@]HOST:PORT/DB` of a TCP connection.
fn connection_url(info: &redis::ConnectionInfo) -> String {
    let r = info.redis_settings();
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    let auth = match (r.username(), r.password()) {
        (Some(u), Some(p)) => format!("{}:{}@", enc(u), enc(p)),
        (None, Some(p)) => format!(":{}@", enc(p)),
        _ => String::new(),
    };
    format!("redis://{auth}{}/{}", info.addr(), r.db())
}

/// Checks that `url`'s Redis has sharded Pub/Sub (version 7 or later).
pub fn check_sharded(url: &str) -> Result<(), TargetError> {
    let err = |source| TargetError::Redis { url: url.to_string(), source };
    let client = redis::Client::open(url).map_err(err)?;
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(2)).map_err(err)?;
    let info: String = redis::cmd("INFO").arg("server").query(&mut conn).map_err(err)?;
    match crate::pubsub::server_version(&info) {
        Some(v) if v >= (7, 0) => Ok(()),
        Some((major, minor)) => Err(TargetError::Config(format!(
            "--pubsub sharded needs Redis 7 or later (SPUBLISH/SSUBSCRIBE); this one is {major}.{minor}"
        ))),
        None => Err(TargetError::Config("--pubsub sharded: cannot tell the Redis version (INFO server)".into())),
    }
}

impl Target {
    /// Starts Redis (unless given) and the workers; returns once every worker accepts.
    pub fn start(config: TargetConfig) -> Result<Target, TargetError> {
        let (redis_tx, redis_rx) = std::sync::mpsc::channel();
        let sentinel = config.worker.redis_sentinel.clone();
        let cluster = config.worker.redis_cluster.clone();
        let (embedded, redis_url) = match (&config.redis, &sentinel) {
            (_, None) if cluster.is_some() => {
                // The first seed that answers, with the credentials of --redis if given.
                let seeds = &cluster.as_ref().expect("just checked").nodes;
                let base = config.redis.as_deref().unwrap_or("redis://127.0.0.1/");
                let err = |source| TargetError::Redis { url: base.to_string(), source };
                let client = redis::Client::open(base).map_err(err)?;
                let mut last = None;
                let mut found = None;
                for seed in seeds {
                    let (host, port) = seed.rsplit_once(':').unwrap_or((seed, "6379"));
                    let port = port.parse().unwrap_or(6379);
                    let url = connection_url(
                        crate::sentinel::client_at(&client, host, port).map_err(err)?.get_connection_info(),
                    );
                    match check_redis(&url) {
                        Ok(()) => {
                            found = Some(url);
                            break;
                        }
                        Err(e) => last = Some(e),
                    }
                }
                match found {
                    Some(url) => (None, url),
                    None => return Err(last.unwrap_or_else(|| TargetError::Config("--redis-cluster: no node".into()))),
                }
            }
            (_, Some(s)) => {
                // The master Sentinel names, with the credentials of --redis if given.
                let (host, port) = crate::sentinel::resolve_blocking(s)?;
                let base = config.redis.as_deref().unwrap_or("redis://127.0.0.1/");
                let err = |source| TargetError::Redis { url: base.to_string(), source };
                let client = redis::Client::open(base).map_err(err)?;
                let client = crate::sentinel::client_at(&client, &host, port).map_err(err)?;
                let url = connection_url(client.get_connection_info());
                check_redis(&url)?;
                (None, url)
            }
            (Some(url), None) => {
                check_redis(url)?;
                (None, url.clone())
            }
            (None, None) => {
                let r = EmbeddedRedis::start()?;
                let url = r.url().to_string();
                (Some(crate::redis_watch::RedisWatch::start(r, redis_tx.clone())), url)
            }
        };
        let mut worker = config.worker;
        worker.redis_url = redis_url.clone();
        if worker.pubsub == crate::pubsub::PubSubMode::Sharded {
            check_sharded(&redis_url)?;
        }
        let admin_token_generated = worker.admin_token.is_none();
        let admin_token = match worker.admin_token.take() {
            Some(t) => t,
            None => crate::control::generate_token().map_err(|e| TargetError::io("generating an admin token", e))?,
        };
        worker.admin_token = Some(admin_token.clone());
        crate::control::store_blocking(&redis_url, &worker.faults)
            .map_err(|source| TargetError::Redis { url: redis_url.clone(), source })?;
        let own_ports = config.balancer == Balancer::Haproxy;
        let (sticky, no_sticky) = (worker.haproxy_sticky, worker.faults.contains(&crate::Fault::NoSticky));
        let public = worker.listen;
        let supervisor = Supervisor::start(SupervisorConfig {
            workers: config.workers,
            program: config.program,
            args: config.args,
            worker,
            own_ports,
        })?;
        let haproxy = if own_ports {
            let mut h = crate::haproxy::Haproxy::start(None, public, supervisor.worker_addrs(), sticky, no_sticky)?;
            let source = crate::haproxy_follow::FaultSource { url: redis_url.clone(), sentinel };
            h.follow_faults(source, no_sticky, redis_tx)?;
            Some(h)
        } else {
            None
        };
        Ok(Target {
            supervisor: Some(supervisor),
            haproxy,
            embedded,
            side_events: std::sync::Mutex::new(redis_rx),
            redis_url,
            admin_token,
            admin_token_generated,
        })
    }

    /// The token of `/admin/faults`, and whether it was generated (not given).
    pub fn admin_token(&self) -> (&str, bool) {
        (&self.admin_token, self.admin_token_generated)
    }

    /// The address clients connect to: every worker's, or HAProxy's.
    pub fn addr(&self) -> SocketAddr {
        self.haproxy.as_ref().map_or_else(|| self.supervisor().addr(), |h| h.addr())
    }

    /// Each worker's own address.
    pub fn worker_addrs(&self) -> Vec<SocketAddr> {
        self.supervisor().worker_addrs()
    }

    /// The Redis in use.
    pub fn redis_url(&self) -> &str {
        &self.redis_url
    }

    /// Whether that Redis is the embedded one.
    pub fn redis_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    fn supervisor(&self) -> &Supervisor {
        self.supervisor.as_ref().expect("running until stopped")
    }

    pub fn restarts(&self) -> u64 {
        self.supervisor().restarts()
    }

    pub fn worker_pids(&self) -> Vec<Option<u32>> {
        self.supervisor().worker_pids()
    }

    /// Worker exits and restarts, the embedded Redis's, and HAProxy's `no-sticky`
    /// switches, since the last call.
    pub fn events(&self) -> Vec<SupervisorEvent> {
        let mut events = self.supervisor().events();
        events.extend(self.side_events.lock().unwrap_or_else(|p| p.into_inner()).try_iter());
        events
    }

    /// Times the embedded Redis was restarted after dying by itself.
    pub fn redis_restarts(&self) -> u64 {
        self.embedded.as_ref().map_or(0, crate::redis_watch::RedisWatch::restarts)
    }

    /// The embedded Redis's pid now (none without one, or while it is down).
    pub fn redis_pid(&self) -> Option<u32> {
        self.embedded.as_ref().and_then(crate::redis_watch::RedisWatch::pid)
    }

    /// Stops the workers gracefully, then the embedded Redis; how each worker ended.
    pub fn stop(mut self) -> Vec<Option<String>> {
        let ended = self.supervisor.take().map(Supervisor::stop).unwrap_or_default();
        if let Some(mut h) = self.haproxy.take() {
            h.stop();
        }
        if let Some(r) = self.embedded.take() {
            r.stop();
        }
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_workers_are_cores_or_what_the_connections_need() {
        assert_eq!(default_workers(2, None), 2);
        assert_eq!(default_workers(2, Some(30_000)), 2);
        assert_eq!(default_workers(2, Some(100_000)), 6);
        assert_eq!(default_workers(0, None), 1);
        assert_eq!(default_workers(4, Some(u64::MAX)), 256);
    }
}
