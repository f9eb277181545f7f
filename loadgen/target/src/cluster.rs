//! `--redis-cluster HOST:PORT,...`: Redis Cluster without the `redis` crate's cluster
//! client (its `cluster-async` feature would add crates to the lock file). The target
//! routes each command itself, which takes little: a hash slot per key, the slot map
//! from `CLUSTER SLOTS`, and a connection per master.
//!
//! - [`slot`]: CRC16 (XMODEM) of the key, or of its hash tag (`{…}`), mod 16384.
//! - [`Router`]: the slot map and one multiplexed connection per master, made when
//!   first needed. The map is read from the seeds at start, and again after a `MOVED`
//!   or `ASK` redirection or a failed connection ([`Router::refresh`]), so the target
//!   follows slots that move and masters that change.
//! - Keys: a publish script touches the channel's counter and pending list, and in
//!   sharded mode SPUBLISHes on the channel, so all of them must be in one slot.
//!   [`tagged`] names the keys `seq:{CHANNEL}` and `pending:{CHANNEL}` (the hash tag
//!   is the channel, so they share its slot). A channel whose name has its own hash tag
//!   keeps `seq:CHANNEL`, which already hashes like it. A name for which neither works
//!   (stray braces) cannot be published to in a cluster.
//! - The subscriber ([`crate::pubsub`]) holds a connection to every master. Sharded
//!   channels are SSUBSCRIBEd on the master of their slot. The classic control channel
//!   is SUBSCRIBEd on one master: a cluster relays classic messages to every node.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, RwLock};

/// Hash slots in a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// The seed nodes of `--redis-cluster`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    /// `host:port` of each seed.
    pub nodes: Vec<String>,
}

impl FromStr for ClusterConfig {
    type Err = String;

    /// `HOST:PORT,HOST:PORT,...`; the error is one line.
    fn from_str(spec: &str) -> Result<Self, String> {
        let mut nodes = Vec::new();
        for addr in spec.split(',').map(str::trim) {
            let port = addr.rsplit_once(':').and_then(|(host, p)| (!host.is_empty()).then_some(p));
            match port.map(str::parse::<u16>) {
                Some(Ok(p)) if p > 0 => nodes.push(addr.to_string()),
                _ => {
                    return Err(format!(
                        "--redis-cluster {spec:?}: {addr:?} is not HOST:PORT; expected HOST:PORT[,HOST:PORT...]"
                    ));
                }
            }
        }
        Ok(ClusterConfig { nodes })
    }
}

/// CRC16-CCITT (XMODEM), as Redis Cluster uses.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// The hash slot of `key`: of its hash tag (the bytes between the first `{` and the
/// next `}`, when not empty), else of the whole key.
pub fn slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        rest.iter().position(|&b| b == b'}').filter(|&close| close > 0).map(|close| &rest[..close])
    });
    crc16(tagged.unwrap_or(key)) % SLOTS
}

/// The key `PREFIX` + something for `channel` in the channel's own slot, if any.
pub fn tagged(prefix: &str, channel: &str) -> Option<String> {
    let want = slot(channel.as_bytes());
    [format!("{prefix}{{{channel}}}"), format!("{prefix}{channel}")].into_iter().find(|k| slot(k.as_bytes()) == want)
}

/// Which master serves which slots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotMap {
    /// (first slot, last slot, `host:port` of the master), sorted.
    ranges: Vec<(u16, u16, String)>,
}

impl SlotMap {
    /// The master of `slot`.
    pub fn node_for(&self, slot: u16) -> Option<&str> {
        self.ranges.iter().find(|(a, b, _)| (*a..=*b).contains(&slot)).map(|(_, _, n)| n.as_str())
    }

    /// Every master, once each.
    pub fn masters(&self) -> Vec<String> {
        let mut out: Vec<String> = self.ranges.iter().map(|(_, _, n)| n.clone()).collect();
        out.sort();
        out.dedup();
        out
    }

    /// Whether every slot has a master.
    pub fn complete(&self) -> bool {
        self.ranges.iter().map(|(a, b, _)| u32::from(*b) - u32::from(*a) + 1).sum::<u32>() == u32::from(SLOTS)
    }

    /// From a `CLUSTER SLOTS` answer; a master reported without an address (a node that
    /// does not know its own) is `seed_host`.
    pub fn from_cluster_slots(answer: &redis::Value, seed_host: &str) -> Option<SlotMap> {
        let redis::Value::Array(entries) = answer else { return None };
        let mut ranges = Vec::new();
        for e in entries {
            let redis::Value::Array(fields) = e else { return None };
            let (a, b) = (
                redis::from_redis_value_ref::<u16>(fields.first()?).ok()?,
                redis::from_redis_value_ref::<u16>(fields.get(1)?).ok()?,
            );
            let redis::Value::Array(master) = fields.get(2)? else { return None };
            let host: String = redis::from_redis_value_ref(master.first()?).ok()?;
            let port: u16 = redis::from_redis_value_ref(master.get(1)?).ok()?;
            let host = if host.is_empty() || host == "?" { seed_host.to_string() } else { host };
            ranges.push((a, b, format!("{host}:{port}")));
        }
        ranges.sort();
        Some(SlotMap { ranges })
    }
}

/// Routes commands to the master of their key's slot.
#[derive(Debug)]
pub struct Router {
    seeds: Vec<String>,
    /// Credentials and database come from this client.
    base: redis::Client,
    map: RwLock<SlotMap>,
    conns: Mutex<HashMap<String, redis::aio::MultiplexedConnection>>,
}

/// How long connecting to a node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

impl Router {
    pub fn new(config: &ClusterConfig, base: redis::Client) -> Self {
        Self { seeds: config.nodes.clone(), base, map: RwLock::new(SlotMap::default()), conns: Mutex::default() }
    }

    /// The client of the node at `addr` (with the base client's credentials).
    pub fn client(&self, addr: &str) -> redis::RedisResult<redis::Client> {
        let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "6379"));
        let port = port.parse().map_err(|_| redis::RedisError::from((redis::ErrorKind::Client, "bad node port")))?;
        crate::sentinel::client_at(&self.base, host, port)
    }

    /// The slot map now (read again first if it is empty).
    pub async fn map(&self) -> redis::RedisResult<SlotMap> {
        if self.map.read().await.ranges.is_empty() {
            self.refresh().await?;
        }
        Ok(self.map.read().await.clone())
    }

    /// Reads the slot map again, from the known masters first and then the seeds, and
    /// forgets every connection (the next command connects afresh).
    pub async fn refresh(&self) -> redis::RedisResult<()> {
        let mut candidates = self.map.read().await.masters();
        candidates.extend(self.seeds.iter().cloned());
        let mut last = None;
        for addr in candidates {
            let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h).to_string();
            let answer = async {
                let client = self.client(&addr)?;
                let mut c = tokio::time::timeout(CONNECT_TIMEOUT, client.get_multiplexed_async_connection())
                    .await
                    .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "connect timed out")))??;
                redis::cmd("CLUSTER").arg("SLOTS").query_async::<redis::Value>(&mut c).await
            }
            .await;
            match answer.map(|v| SlotMap::from_cluster_slots(&v, &host)) {
                Ok(Some(map)) if !map.ranges.is_empty() => {
                    if !map.complete() {
                        tracing::warn!(node = %addr, "redis cluster: not every slot has a master");
                    }
                    tracing::debug!(node = %addr, masters = ?map.masters(), "redis cluster: slot map read");
                    *self.map.write().await = map;
                    self.conns.lock().await.clear();
                    return Ok(());
                }
                Ok(_) => {
                    last = Some(redis::RedisError::from((redis::ErrorKind::Parse, "no usable CLUSTER SLOTS answer")))
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| redis::RedisError::from((redis::ErrorKind::Client, "no cluster node given"))))
    }

    /// A connection to the master of `key`'s slot.
    pub async fn connection_for(&self, key: &str) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let map = self.map().await?;
        let node = map
            .node_for(slot(key.as_bytes()))
            .ok_or_else(|| redis::RedisError::from((redis::ErrorKind::Client, "no master serves this slot")))?
            .to_string();
        let mut conns = self.conns.lock().await;
        if let Some(c) = conns.get(&node) {
            return Ok(c.clone());
        }
        let client = self.client(&node)?;
        let c = tokio::time::timeout(CONNECT_TIMEOUT, client.get_multiplexed_async_connection())
            .await
            .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "connect timed out")))??;
        conns.insert(node, c.clone());
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from `CLUSTER KEYSLOT`.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"bar"), 5061);
        assert_eq!(slot(b"123456789"), 12739);
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_eq!(slot(b"foo{}{bar}"), slot(b"foo{}{bar}"), "an empty tag: the whole key");
        assert_ne!(slot(b"foo{}{bar}"), slot(b"bar"));
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
    }

    #[test]
    fn keys_share_the_channel_slot() {
        for ch in ["unit:7", "person:ana", "broadcast", "unit:{x}", "a{"] {
            let k = tagged("seq:", ch).unwrap_or_else(|| panic!("{ch}"));
            assert_eq!(slot(k.as_bytes()), slot(ch.as_bytes()), "{ch}: {k}");
        }
        assert_eq!(tagged("seq:", "unit:7").unwrap(), "seq:{unit:7}");
        assert_eq!(tagged("seq:", "unit:{x}").unwrap(), "seq:unit:{x}");
        assert_eq!(tagged("seq:", "a}b"), None, "a stray brace");
        assert_eq!(tagged("seq:", "a{}b"), None, "an empty tag");
    }

    #[test]
    fn specs_and_slot_maps() {
        let c: ClusterConfig = "127.0.0.1:7000, 127.0.0.1:7001".parse().unwrap();
        assert_eq!(c.nodes, ["127.0.0.1:7000", "127.0.0.1:7001"]);
        assert!("127.0.0.1".parse::<ClusterConfig>().unwrap_err().contains("not HOST:PORT"));
        use redis::Value::{Array, BulkString, Int};
        let node = |h: &str, p| Array(vec![BulkString(h.as_bytes().to_vec()), Int(p), BulkString(b"id".to_vec())]);
        let answer = Array(vec![
            Array(vec![Int(8192), Int(16383), node("127.0.0.1", 7001)]),
            Array(vec![Int(0), Int(8191), node("", 7000)]),
        ]);
        let map = SlotMap::from_cluster_slots(&answer, "127.0.0.2").unwrap();
        assert!(map.complete());
        assert_eq!(map.node_for(0), Some("127.0.0.2:7000"));
        assert_eq!(map.node_for(16383), Some("127.0.0.1:7001"));
        assert_eq!(map.masters().len(), 2);
    }
}
