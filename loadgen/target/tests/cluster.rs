//! `--redis-cluster` against a real 3-master Redis Cluster started by the test
//! (`redis-server --cluster-enabled yes` on free loopback ports, then `redis-cli
//! --cluster create`). A target process routes by hash slot with sharded Pub/Sub: a
//! tokio-tungstenite client hears its person, unit and broadcast channels (three
//! slots, SSUBSCRIBEd each on its master), a reminder and a fault switch work, and when
//! the slot of its unit channel is moved to another master (`CLUSTER SETSLOT`,
//! `MIGRATE`), the worker follows: it resubscribes there and publishes there, and the
//! client keeps receiving with the sequence going on.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use loadgen_target::pubsub::PubSubMode;
use loadgen_target::{EmbeddedRedis, Target, TargetConfig, WorkerConfig};
use serde_json::json;

fn node() -> EmbeddedRedis {
    EmbeddedRedis::start_cluster_node().unwrap_or_else(|e| panic!("{e}"))
}

async fn query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> redis::RedisResult<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let mut c = client.get_multiplexed_async_connection().await?;
    cmd.query_async(&mut c).await
}

fn cmd(args: &[&str]) -> redis::Cmd {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c
}

/// Polls `check` every 100 ms until it holds, failing after `within`.
async fn until<F: std::future::Future<Output = bool>>(what: &str, within: Duration, check: impl Fn() -> F) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The port of the master serving `slot`.
async fn owner(ports: &[u16], slot: u16) -> u16 {
    let slots: redis::Value = query(ports[0], &cmd(&["CLUSTER", "SLOTS"])).await.unwrap();
    let map = loadgen_target::cluster::SlotMap::from_cluster_slots(&slots, "127.0.0.1").unwrap();
    map.node_for(slot).unwrap().rsplit_once(':').unwrap().1.parse().unwrap()
}

async fn shard_numsub(port: u16, channel: &str) -> u64 {
    let (_, n): (String, u64) = query(port, &cmd(&["PUBSUB", "SHARDNUMSUB", channel])).await.unwrap();
    n
}

/// Moves `slot` from the master on `from` to the one on `to`, keys included.
async fn move_slot(ports: &[u16], slot: u16, from: u16, to: u16) {
    let id = |p| async move { query::<String>(p, &cmd(&["CLUSTER", "MYID"])).await.unwrap() };
    let (from_id, to_id) = (id(from).await, id(to).await);
    let s = slot.to_string();
    let _: () = query(to, &cmd(&["CLUSTER", "SETSLOT", &s, "IMPORTING", &from_id])).await.unwrap();
    let _: () = query(from, &cmd(&["CLUSTER", "SETSLOT", &s, "MIGRATING", &to_id])).await.unwrap();
    let keys: Vec<String> = query(from, &cmd(&["CLUSTER", "GETKEYSINSLOT", &s, "100"])).await.unwrap();
    if !keys.is_empty() {
        let to_port = to.to_string();
        let mut migrate = vec!["MIGRATE", "127.0.0.1", &to_port, "", "0", "5000", "KEYS"];
        migrate.extend(keys.iter().map(String::as_str));
        let _: String = query(from, &cmd(&migrate)).await.unwrap();
    }
    for p in ports {
        let _: () = query(*p, &cmd(&["CLUSTER", "SETSLOT", &s, "NODE", &to_id])).await.unwrap();
    }
}

#[tokio::test]
async fn the_target_routes_by_slot_and_follows_a_moved_slot() {
    // Started on the test's own thread: each server dies with the thread that started it.
    let nodes = [node(), node(), node()];
    let ports: Vec<u16> = nodes.iter().map(EmbeddedRedis::port).collect();
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let created = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .arg("--cluster-yes")
        .output()
        .unwrap_or_else(|e| panic!("redis-cli: {e}: install it (apt-get install redis-tools)"));
    assert!(created.status.success(), "redis-cli --cluster create: {}", String::from_utf8_lossy(&created.stdout));
    bounded(until("cluster_state:ok on every node", Duration::from_secs(20), || async {
        let mut ok = true;
        for p in &ports {
            let info: String = query(*p, &cmd(&["CLUSTER", "INFO"])).await.unwrap_or_default();
            ok &= info.contains("cluster_state:ok");
        }
        ok
    }))
    .await;

    let mut worker = WorkerConfig::new(0, "127.0.0.1:0".parse().unwrap(), "");
    worker.redis_cluster = Some(addrs.join(",").parse().unwrap());
    worker.pubsub = PubSubMode::Sharded;
    worker.admin_token = Some("t".into());
    let config = TargetConfig {
        redis: None,
        workers: 1,
        worker,
        program: PathBuf::from(env!("CARGO_BIN_EXE_loadgen-target-worker")),
        args: Vec::new(),
        balancer: Default::default(),
    };
    let target = Target::start(config).unwrap_or_else(|e| panic!("{e}"));
    assert!(!target.redis_embedded());
    let a = target.addr();
    bounded(async {
        let (mut ws, _) = connect(a, "user=ana&unit=1").await;
        let channels = ["person:ana", "unit:1", "broadcast"];
        let slots: Vec<u16> = channels.iter().map(|c| loadgen_target::cluster::slot(c.as_bytes())).collect();
        for (ch, slot) in channels.iter().zip(&slots) {
            assert_eq!(shard_numsub(owner(&ports, *slot).await, ch).await, 1, "{ch} SSUBSCRIBEd on its master");
        }
        for ch in channels {
            publish(a, json!({"channel": ch, "count": 2})).await;
        }
        let got = envelopes(&mut ws, 6, Duration::from_secs(5)).await;
        let mut heard: Vec<(String, u64)> =
            got.iter().map(|r| (r.json["ch"].as_str().unwrap().to_string(), r.json["seq"].as_u64().unwrap())).collect();
        heard.sort();
        assert_eq!(heard.len(), 6);
        assert_eq!(heard[0], ("broadcast".into(), 0));
        // A reminder (claimed on the set's master, published on the channel's) and a
        // fault switch (the classic control channel, relayed by the cluster).
        let (status, body) =
            http(a, "POST", "/reminders", &json!({"channel": "unit:1", "in_ms": 50}).to_string()).await;
        assert_eq!(status, 200, "{body}");
        let got = envelopes(&mut ws, 1, Duration::from_secs(3)).await;
        assert_eq!((got[0].json["seq"].as_u64(), got[0].json["reminder"].as_bool()), (Some(2), Some(true)));
        let (status, answer) = admin(a, "t", json!({"on": ["drop-fanout=100"]})).await;
        assert_eq!((status, answer["workers_notified"].as_u64()), (200, Some(1)), "{answer}");
        publish(a, json!({"channel": "unit:1"})).await;
        assert!(envelopes(&mut ws, 1, Duration::from_millis(300)).await.is_empty(), "dropped by the fault");
        assert_eq!(admin(a, "t", json!({"faults": []})).await.0, 200);

        // Move unit:1's slot to another master.
        let from = owner(&ports, slots[1]).await;
        let to = *ports.iter().find(|p| **p != from).unwrap();
        let moved = Instant::now();
        move_slot(&ports, slots[1], from, to).await;
        until("unit:1 SSUBSCRIBEd on its new master", Duration::from_secs(10), || async {
            shard_numsub(to, "unit:1").await == 1
        })
        .await;
        eprintln!("the worker resubscribed on the slot's new master {:?} after the move", moved.elapsed());
        let p = publish(a, json!({"channel": "unit:1", "count": 2})).await;
        assert_eq!(p["ranges"], json!([[4, 5]]), "the counter moved with its slot");
        assert_eq!(seqs(&envelopes(&mut ws, 2, Duration::from_secs(5)).await), [4, 5]);
        publish(a, json!({"channel": "person:ana"})).await;
        assert_eq!(seqs(&envelopes(&mut ws, 1, Duration::from_secs(5)).await), [2], "the other slots unaffected");
        close(ws).await;
    })
    .await;
    target.stop();
}
