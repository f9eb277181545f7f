//! `--redis-sentinel NAME@HOST:PORT,HOST:PORT,...`: the master is found through Redis
//! Sentinel, and followed when Sentinel promotes another one.
//!
//! - At start ([`resolve_blocking`], the supervisor's), each sentinel in turn is asked
//!   `SENTINEL get-master-addr-by-name NAME`. The first answer is the master, and the
//!   workers are started on it.
//! - Each worker then runs [`follow`]. It holds a connection to one sentinel and listens
//!   there on `+switch-master` (`NAME OLD_IP OLD_PORT NEW_IP NEW_PORT`). It also asks
//!   again every second, so a message lost while it was reconnecting, or a sentinel that
//!   restarted, changes nothing. A new address switches the worker's
//!   [`Endpoint`](crate::endpoint::Endpoint): the subscriber reconnects and
//!   resubscribes, and the publisher's next call connects to the new master. Both are
//!   counted in `redis_master_switches_total`. A sentinel that does not answer is left
//!   for the next one in the list, with backoff (100 ms doubling to 2 s).
//!
//! The password, user and database of `--redis` URL settings are kept for the master
//! found (sentinels themselves are reached without them).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::TargetError;
use crate::endpoint::Endpoint;
use crate::metrics::Metrics;

/// The channel Sentinel announces a new master on.
pub const SWITCH_CHANNEL: &str = "+switch-master";

/// How often a worker asks its sentinel for the master again.
pub const RECHECK: Duration = Duration::from_secs(1);

/// A master name and the sentinels that know it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentinelConfig {
    pub master: String,
    /// `host:port` of each sentinel.
    pub sentinels: Vec<String>,
}

impl FromStr for SentinelConfig {
    type Err = String;

    /// `NAME@HOST:PORT,HOST:PORT,...`; the error is one line.
    fn from_str(spec: &str) -> Result<Self, String> {
        let syntax = "expected NAME@HOST:PORT[,HOST:PORT...]";
        let (master, list) = spec.split_once('@').ok_or_else(|| format!("--redis-sentinel {spec:?}: {syntax}"))?;
        if master.is_empty() || master.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("--redis-sentinel {spec:?}: the master name must be a word; {syntax}"));
        }
        let mut sentinels = Vec::new();
        for addr in list.split(',').map(str::trim) {
            let port = addr.rsplit_once(':').and_then(|(host, p)| (!host.is_empty()).then_some(p));
            match port.map(str::parse::<u16>) {
                Some(Ok(p)) if p > 0 => sentinels.push(addr.to_string()),
                _ => return Err(format!("--redis-sentinel {spec:?}: {addr:?} is not HOST:PORT; {syntax}")),
            }
        }
        Ok(SentinelConfig { master: master.to_string(), sentinels })
    }
}

impl std::fmt::Display for SentinelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.master, self.sentinels.join(","))
    }
}

fn sentinel_client(addr: &str) -> redis::RedisResult<redis::Client> {
    redis::Client::open(format!("redis://{addr}/"))
}

fn get_master(config: &SentinelConfig) -> redis::Cmd {
    let mut cmd = redis::cmd("SENTINEL");
    cmd.arg("get-master-addr-by-name").arg(&config.master);
    cmd
}

/// `(host, port)` from a `get-master-addr-by-name` answer (nil: the sentinel does not
/// know the name).
fn master_of(answer: Option<(String, u16)>, config: &SentinelConfig, sentinel: &str) -> Result<(String, u16), String> {
    answer.ok_or_else(|| format!("sentinel {sentinel} knows no master named {:?}", config.master))
}

/// Asks each sentinel in turn for the master (blocking, 2 s each): `host:port`.
pub fn resolve_blocking(config: &SentinelConfig) -> Result<(String, u16), TargetError> {
    let mut why = Vec::new();
    for addr in &config.sentinels {
        let answer = sentinel_client(addr)
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
            .and_then(|mut conn| get_master(config).query::<Option<(String, u16)>>(&mut conn));
        match answer.map_err(|e| e.to_string()).and_then(|a| master_of(a, config, addr)) {
            Ok(master) => return Ok(master),
            Err(e) => why.push(format!("{addr}: {e}")),
        }
    }
    Err(TargetError::Config(format!("--redis-sentinel {config}: no sentinel gave the master ({})", why.join("; "))))
}

/// The client of `base` (its credentials and database) pointed at `host:port`.
pub fn client_at(base: &redis::Client, host: &str, port: u16) -> redis::RedisResult<redis::Client> {
    let info = base.get_connection_info().clone().set_addr(redis::ConnectionAddr::Tcp(host.to_string(), port));
    redis::Client::open(info)
}

/// A worker's follower: runs until `shutdown`.
pub(crate) async fn follow(
    config: SentinelConfig,
    endpoint: Arc<Endpoint>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    for addr in config.sentinels.iter().cycle() {
        if *shutdown.borrow() {
            return;
        }
        match follow_one(addr, &config, &endpoint, &metrics, &mut shutdown).await {
            Ok(()) => return,
            Err(e) => tracing::warn!(sentinel = %addr, error = %e, "sentinel: lost or unusable; trying the next"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = crate::worker::stopped(&mut shutdown) => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Follows through one sentinel until it fails (an error) or the worker stops (Ok).
async fn follow_one(
    addr: &str,
    config: &SentinelConfig,
    endpoint: &Endpoint,
    metrics: &Metrics,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let timeout = Duration::from_secs(3);
    let client = sentinel_client(addr).map_err(|e| e.to_string())?;
    let connect = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(SWITCH_CHANNEL).await?;
        let conn = client.get_multiplexed_async_connection().await?;
        Ok::<_, redis::RedisError>((pubsub, conn))
    };
    let (pubsub, mut conn) = tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let mut stream = pubsub.into_on_message();
    let mut tick = tokio::time::interval(RECHECK);
    loop {
        tokio::select! {
            _ = crate::worker::stopped(shutdown) => return Ok(()),
            _ = tick.tick() => {
                let ask = get_master(config);
                let answer = tokio::time::timeout(timeout, ask.query_async(&mut conn))
                    .await
                    .map_err(|_| "no answer to get-master-addr-by-name".to_string())?
                    .map_err(|e| e.to_string())?;
                let (host, port) = master_of(answer, config, addr)?;
                switch(endpoint, metrics, &host, port);
            }
            msg = stream.next() => {
                let msg = msg.ok_or("connection lost")?;
                let text: String = msg.get_payload().unwrap_or_default();
                let words: Vec<&str> = text.split_whitespace().collect();
                if let [name, _, _, host, port] = words[..]
                    && name == config.master
                    && let Ok(port) = port.parse()
                {
                    tracing::info!(sentinel = %addr, announced = %text, "sentinel: +switch-master");
                    switch(endpoint, metrics, host, port);
                }
            }
        }
    }
}

/// Switches `endpoint` to `host:port` unless it is there already.
fn switch(endpoint: &Endpoint, metrics: &Metrics, host: &str, port: u16) {
    if endpoint.addr() == format!("{host}:{port}") {
        return;
    }
    match client_at(&endpoint.current().1, host, port) {
        Ok(client) => {
            tracing::warn!(from = %endpoint.addr(), to = %format!("{host}:{port}"), "redis: the master switched");
            endpoint.switch(client);
            Metrics::inc(&metrics.redis_master_switches);
        }
        Err(e) => tracing::warn!(error = %e, "sentinel: unusable master address {host}:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_or_are_refused_in_one_line() {
        let c: SentinelConfig = "mymaster@127.0.0.1:26379, localhost:26380".parse().unwrap();
        assert_eq!(c.master, "mymaster");
        assert_eq!(c.sentinels, ["127.0.0.1:26379", "localhost:26380"]);
        assert_eq!(c.to_string(), "mymaster@127.0.0.1:26379,localhost:26380");
        for (spec, says) in [
            ("127.0.0.1:26379", "expected NAME@"),
            ("@127.0.0.1:1", "must be a word"),
            ("a b@127.0.0.1:1", "must be a word"),
            ("m@127.0.0.1", "not HOST:PORT"),
            ("m@:5", "not HOST:PORT"),
            ("m@h:0", "not HOST:PORT"),
            ("m@h:1,", "not HOST:PORT"),
        ] {
            let e = spec.parse::<SentinelConfig>().unwrap_err();
            assert!(e.contains(says) && !e.contains('\n'), "{spec}: {e}");
        }
    }

    #[test]
    fn the_found_master_keeps_the_credentials() {
        let base = redis::Client::open("redis://u:secret@127.0.0.1:6379/3").unwrap();
        let c = client_at(&base, "127.0.0.9", 7000).unwrap();
        let info = c.get_connection_info();
        assert_eq!(info.addr().to_string(), "127.0.0.9:7000");
        assert_eq!((info.redis_settings().password(), info.redis_settings().db()), (Some("secret"), 3));
    }
}
