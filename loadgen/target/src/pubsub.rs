//! Which Pub/Sub the target uses and the subscriber's Redis connection in either
//! protocol.
//!
//! - [`PubSubMode::Classic`]: `PUBLISH` and `SUBSCRIBE`. Every node of a cluster relays
//!   every message.
//! - [`PubSubMode::Sharded`]: `SPUBLISH` and `SSUBSCRIBE` (Redis 7 or later). A channel
//!   lives on the shard of its hash slot, which is what a cluster wants. The control
//!   channel of [`crate::control`] stays classic in both modes.
//!
//! The subscriber speaks RESP3 where the server does ([`RedisProtocol::Auto`], the
//! default, falls back to RESP2 when the server refuses `HELLO 3`): one multiplexed
//! connection of the `redis` crate whose push messages (`message`, `smessage`, the
//! confirmations, and the crate's own `Disconnection`) arrive on a channel. Under RESP2
//! it is the crate's `PubSub` connection, which has no `SSUBSCRIBE`, so sharded Pub/Sub
//! needs RESP3.
//!
//! The redis crate (1.8) has `subscribe`, `unsubscribe` and the pattern forms on a
//! RESP3 connection but no sharded ones outside its cluster client, so the sharded
//! commands are sent raw: one `SSUBSCRIBE ch` per channel, whose single `ssubscribe`
//! confirmation is its reply. A raw `SUNSUBSCRIBE`'s confirmation is set aside by the
//! crate (it reads it as a cluster node's unprompted notice, its issue 2533), so the
//! unsubscribes are followed by a `PING` in the same pipeline and the `PONG` is the one
//! reply waited for.

use std::time::Duration;

use futures_util::StreamExt;
use redis::{Msg, ProtocolVersion, PushInfo, PushKind};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// Classic or sharded Pub/Sub (`--pubsub`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PubSubMode {
    #[default]
    Classic,
    Sharded,
}

impl PubSubMode {
    /// The publishing command, as the Lua scripts call it.
    pub fn publish_command(self) -> &'static str {
        match self {
            PubSubMode::Classic => "PUBLISH",
            PubSubMode::Sharded => "SPUBLISH",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PubSubMode::Classic => "classic",
            PubSubMode::Sharded => "sharded",
        }
    }
}

impl std::str::FromStr for PubSubMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "classic" => Ok(PubSubMode::Classic),
            "sharded" => Ok(PubSubMode::Sharded),
            other => Err(format!("--pubsub {other:?}: expected classic or sharded")),
        }
    }
}

/// The protocol of the subscriber connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisProtocol {
    /// RESP3 if the server accepts `HELLO 3`, else RESP2.
    #[default]
    Auto,
    Resp2,
    Resp3,
}

/// How long a subscriber command may wait for its confirmations.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The subscriber's connection(s).
pub(crate) enum SubConn {
    Resp2 {
        sink: redis::aio::PubSubSink,
        stream: redis::aio::PubSubStream,
    },
    /// One connection per master in a cluster (`map` says which serves which slot), one
    /// otherwise (`map` is empty); their pushes share one channel. `leaving` holds the
    /// shard channels whose SUNSUBSCRIBE confirmation is still to come: any other
    /// `sunsubscribe` is a cluster node's notice that the channel's slot moved.
    Resp3 {
        conns: Vec<(String, redis::aio::MultiplexedConnection)>,
        map: crate::cluster::SlotMap,
        pushes: mpsc::UnboundedReceiver<PushInfo>,
        leaving: std::collections::HashMap<Vec<u8>, usize>,
    },
}

impl std::fmt::Debug for SubConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SubConn::Resp2 { .. } => "SubConn::Resp2",
            SubConn::Resp3 { .. } => "SubConn::Resp3",
        })
    }
}

/// `client` with its protocol set to RESP3.
fn resp3_client(client: &redis::Client) -> redis::RedisResult<redis::Client> {
    let info = client.get_connection_info().clone();
    let settings = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
    redis::Client::open(info.set_redis_settings(settings))
}

fn resp3_config(tx: &mpsc::UnboundedSender<PushInfo>) -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new()
        .set_push_sender(tx.clone())
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_connection_timeout(Some(RESPONSE_TIMEOUT))
}

impl SubConn {
    /// Connects in `protocol` (under `Auto`, RESP3 first); in a cluster, to every master
    /// (RESP3 only), reading the slot map again first.
    pub async fn connect(
        client: &redis::Client,
        protocol: RedisProtocol,
        cluster: Option<&crate::cluster::Router>,
    ) -> redis::RedisResult<SubConn> {
        if let Some(router) = cluster {
            router.refresh().await?;
            let map = router.map().await?;
            let (tx, pushes) = mpsc::unbounded_channel();
            let mut conns = Vec::new();
            for node in map.masters() {
                let c = resp3_client(&router.client(&node)?)?;
                conns.push((node, c.get_multiplexed_async_connection_with_config(&resp3_config(&tx)).await?));
            }
            return Ok(SubConn::Resp3 { conns, map, pushes, leaving: Default::default() });
        }
        if protocol == RedisProtocol::Resp2 {
            return Self::resp2(client).await;
        }
        match Self::resp3(client).await {
            Ok(c) => Ok(c),
            // A server that answers but refuses HELLO 3 speaks RESP2 only.
            Err(e) if protocol == RedisProtocol::Auto && !e.is_io_error() && !e.is_timeout() => {
                tracing::info!(error = %e, "redis: no RESP3 (HELLO 3 refused); subscribing over RESP2");
                Self::resp2(client).await
            }
            Err(e) => Err(e),
        }
    }

    async fn resp2(client: &redis::Client) -> redis::RedisResult<SubConn> {
        let (sink, stream) = client.get_async_pubsub().await?.split();
        Ok(SubConn::Resp2 { sink, stream })
    }

    async fn resp3(client: &redis::Client) -> redis::RedisResult<SubConn> {
        let (tx, pushes) = mpsc::unbounded_channel();
        let conn = resp3_client(client)?.get_multiplexed_async_connection_with_config(&resp3_config(&tx)).await?;
        let node = client.get_connection_info().addr().to_string();
        Ok(SubConn::Resp3 { conns: vec![(node, conn)], map: Default::default(), pushes, leaving: Default::default() })
    }

    /// The channels grouped by the connection that serves them: by slot in a cluster.
    fn by_node(
        conns: &[(String, redis::aio::MultiplexedConnection)],
        map: &crate::cluster::SlotMap,
        channels: &[String],
    ) -> Vec<(usize, Vec<String>)> {
        let mut groups: Vec<(usize, Vec<String>)> = Vec::new();
        for ch in channels {
            let node = map.node_for(crate::cluster::slot(ch.as_bytes()));
            let i = node.and_then(|n| conns.iter().position(|(a, _)| a == n)).unwrap_or(0);
            match groups.iter_mut().find(|(j, _)| *j == i) {
                Some((_, g)) => g.push(ch.clone()),
                None => groups.push((i, vec![ch.clone()])),
            }
        }
        groups
    }

    /// 2 or 3.
    pub fn protocol(&self) -> u64 {
        match self {
            SubConn::Resp2 { .. } => 2,
            SubConn::Resp3 { .. } => 3,
        }
    }

    /// Subscribes to `channels` (sharded: with SSUBSCRIBE, one command per channel).
    pub async fn subscribe(&mut self, channels: &[String], mode: PubSubMode) -> redis::RedisResult<()> {
        if channels.is_empty() {
            return Ok(());
        }
        match (self, mode) {
            (SubConn::Resp2 { sink, .. }, PubSubMode::Classic) => sink.subscribe(channels).await,
            // In a cluster, classic messages reach every node: one is enough.
            (SubConn::Resp3 { conns, .. }, PubSubMode::Classic) => conns[0].1.subscribe(channels).await,
            (SubConn::Resp3 { conns, map, .. }, PubSubMode::Sharded) => {
                for (i, group) in Self::by_node(conns, map, channels) {
                    let mut pipe = redis::pipe();
                    for c in group {
                        pipe.cmd("SSUBSCRIBE").arg(c);
                    }
                    pipe.exec_async(&mut conns[i].1).await?;
                }
                Ok(())
            }
            (SubConn::Resp2 { .. }, PubSubMode::Sharded) => Err(sharded_needs_resp3()),
        }
    }

    /// Subscribes to the classic `channel` on every connection: in a cluster, `PUBLISH`
    /// answers how many subscribers the node it ran on has, so with a subscription on
    /// every master that count is every worker (each one hears the message once per
    /// master, which changes nothing for the idempotent control messages).
    pub async fn subscribe_everywhere(&mut self, channel: &str) -> redis::RedisResult<()> {
        match self {
            SubConn::Resp2 { sink, .. } => sink.subscribe(channel).await,
            SubConn::Resp3 { conns, .. } => {
                for (_, c) in conns.iter_mut() {
                    c.subscribe(channel).await?;
                }
                Ok(())
            }
        }
    }

    /// Unsubscribes from `channels`.
    pub async fn unsubscribe(&mut self, channels: &[String], mode: PubSubMode) -> redis::RedisResult<()> {
        if channels.is_empty() {
            return Ok(());
        }
        match (self, mode) {
            (SubConn::Resp2 { sink, .. }, PubSubMode::Classic) => sink.unsubscribe(channels).await,
            (SubConn::Resp3 { conns, .. }, PubSubMode::Classic) => conns[0].1.unsubscribe(channels).await,
            (SubConn::Resp3 { conns, map, leaving, .. }, PubSubMode::Sharded) => {
                use redis::aio::ConnectionLike as _;
                for (i, group) in Self::by_node(conns, map, channels) {
                    let mut pipe = redis::pipe();
                    for c in group {
                        *leaving.entry(c.as_bytes().to_vec()).or_default() += 1;
                        pipe.cmd("SUNSUBSCRIBE").arg(c);
                    }
                    pipe.cmd("PING");
                    // The confirmations are set aside by the crate; the PONG is the reply.
                    conns[i].1.req_packed_commands(&pipe, 0, 1).await?;
                }
                Ok(())
            }
            (SubConn::Resp2 { .. }, PubSubMode::Sharded) => Err(sharded_needs_resp3()),
        }
    }

    /// The next message on a subscribed channel; `None` once a connection is lost or a
    /// shard channel's slot moved (the caller connects again, to the new map).
    pub async fn next(&mut self) -> Option<Msg> {
        match self {
            SubConn::Resp2 { stream, .. } => stream.next().await,
            SubConn::Resp3 { pushes, leaving, .. } => loop {
                let push = pushes.recv().await?;
                match push.kind {
                    PushKind::Disconnection => return None,
                    PushKind::Message | PushKind::SMessage => {
                        if let Some(m) = Msg::from_push_info(push) {
                            return Some(m);
                        }
                    }
                    PushKind::SUnsubscribe => {
                        let channel = match push.data.first() {
                            Some(redis::Value::BulkString(b)) => b.clone(),
                            _ => Vec::new(),
                        };
                        match leaving.get_mut(&channel) {
                            Some(n) if *n > 1 => *n -= 1,
                            Some(_) => {
                                leaving.remove(&channel);
                            }
                            None => {
                                let ch = String::from_utf8_lossy(&channel);
                                tracing::info!(channel = %ch, "redis: the shard channel's slot moved; resubscribing");
                                return None;
                            }
                        }
                    }
                    _ => {}
                }
            },
        }
    }
}

fn sharded_needs_resp3() -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::Client,
        "sharded pub/sub needs a RESP3 subscriber connection (the redis crate has no SSUBSCRIBE over RESP2)",
    ))
}

/// The server's version (`INFO server`'s `redis_version`), as (major, minor).
pub fn server_version(info: &str) -> Option<(u32, u32)> {
    let v = info.lines().find_map(|l| l.strip_prefix("redis_version:"))?.trim();
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next().flatten().unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_versions() {
        assert_eq!("sharded".parse::<PubSubMode>(), Ok(PubSubMode::Sharded));
        assert!("both".parse::<PubSubMode>().unwrap_err().contains("classic or sharded"));
        assert_eq!(PubSubMode::Sharded.publish_command(), "SPUBLISH");
        assert_eq!(serde_json::to_string(&PubSubMode::Sharded).unwrap(), r#""sharded""#);
        assert_eq!(serde_json::to_string(&RedisProtocol::Resp3).unwrap(), r#""resp3""#);
        assert_eq!(server_version("# Server\r\nredis_version:7.0.15\r\nx:1\r\n"), Some((7, 0)));
        assert_eq!(server_version("redis_version:6\r\n"), Some((6, 0)));
        assert_eq!(server_version("nothing"), None);
    }
}
