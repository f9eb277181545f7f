//! `--redis-sentinel` against real Redis Sentinel: a master, a replica and a
//! `redis-sentinel` started by the test on free loopback ports. The target (a worker
//! process, as `loadgen serve` runs it) finds the master through the sentinel; after a
//! forced failover (`SENTINEL FAILOVER`) it follows `+switch-master`, and a
//! tokio-tungstenite client that stayed connected keeps receiving, the sequence going
//! on. A missing `redis-sentinel` fails with the install hint.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use loadgen_target::{EmbeddedRedis, Target, TargetConfig, WorkerConfig};
use serde_json::{Value, json};

fn started(r: Result<EmbeddedRedis, loadgen_target::TargetError>) -> EmbeddedRedis {
    r.unwrap_or_else(|e| panic!("{e}"))
}

async fn query<T: redis::FromRedisValue>(url: &str, cmd: &redis::Cmd) -> redis::RedisResult<T> {
    let client = redis::Client::open(url)?;
    let mut c = client.get_multiplexed_async_connection().await?;
    cmd.query_async(&mut c).await
}

/// Polls `check` every 100 ms until it holds, failing after `within`.
async fn until<F: std::future::Future<Output = bool>>(what: &str, within: Duration, check: impl Fn() -> F) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn healthz(addr: std::net::SocketAddr) -> Value {
    let (status, body) = http(addr, "GET", "/healthz", "").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn the_target_follows_a_sentinel_failover_and_clients_keep_receiving() {
    // Started on the test's own thread: each server dies with the thread that started it.
    let master = redis();
    let replica = started(EmbeddedRedis::start_replica_of(master.port()));
    let sentinel = started(EmbeddedRedis::start_sentinel("lgmaster", master.port()));
    bounded(until("the replica in sync", Duration::from_secs(15), || async {
        let info: String = query(replica.url(), redis::cmd("INFO").arg("replication")).await.unwrap_or_default();
        info.contains("master_link_status:up")
    }))
    .await;
    bounded(until("the sentinel knowing the replica", Duration::from_secs(15), || async {
        let cmd = redis::cmd("SENTINEL").arg("replicas").arg("lgmaster").clone();
        query::<Vec<redis::Value>>(sentinel.url(), &cmd).await.is_ok_and(|r| !r.is_empty())
    }))
    .await;

    let mut worker = WorkerConfig::new(0, "127.0.0.1:0".parse().unwrap(), "");
    worker.redis_sentinel = Some(format!("lgmaster@127.0.0.1:{}", sentinel.port()).parse().unwrap());
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
    assert_eq!(target.redis_url(), format!("redis://127.0.0.1:{}/0", master.port()), "the master, from the sentinel");
    let a = target.addr();
    bounded(async {
        let (mut ws, _) = connect(a, "unit=1").await;
        publish(a, json!({"channel": "unit:1", "count": 3})).await;
        assert_eq!(seqs(&envelopes(&mut ws, 3, Duration::from_secs(5)).await), [0, 1, 2]);
        assert_eq!(healthz(a).await["redis_addr"], format!("127.0.0.1:{}", master.port()));

        let failover = redis::cmd("SENTINEL").arg("FAILOVER").arg("lgmaster").clone();
        until("SENTINEL FAILOVER accepted", Duration::from_secs(15), || async {
            query::<String>(sentinel.url(), &failover).await.is_ok()
        })
        .await;
        let switched = Instant::now();
        let new_master = format!("127.0.0.1:{}", replica.port());
        until("the worker on the new master", Duration::from_secs(20), || async {
            healthz(a).await["redis_addr"] == new_master.as_str() && healthz(a).await["redis"] == "up"
        })
        .await;
        eprintln!("the worker was on the new master {:?} after SENTINEL FAILOVER", switched.elapsed());
        // Publishing goes to the new master; the same client, never reconnected, hears
        // the sequence go on (the counter was replicated).
        let deadline = Instant::now() + Duration::from_secs(10);
        let published = loop {
            let (status, body) =
                http(a, "POST", "/publish", &json!({"channel": "unit:1", "count": 3}).to_string()).await;
            if status == 200 {
                break serde_json::from_str::<Value>(&body).unwrap();
            }
            assert!(Instant::now() < deadline, "publishing after the failover: {status} {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(published["ranges"], json!([[3, 5]]));
        assert_eq!(seqs(&envelopes(&mut ws, 3, Duration::from_secs(5)).await), [3, 4, 5]);
        let numsub = redis::cmd("PUBSUB").arg("NUMSUB").arg("unit:1").clone();
        let (_, n): (String, u64) = query(replica.url(), &numsub).await.unwrap();
        assert_eq!(n, 1, "subscribed on the new master");
        assert_eq!(metric(&metrics(a).await, "redis_master_switches_total"), 1);
        close(ws).await;
    })
    .await;
    target.stop();
}

#[tokio::test]
async fn no_answering_sentinel_is_one_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut worker = WorkerConfig::new(0, "127.0.0.1:0".parse().unwrap(), "");
    worker.redis_sentinel = Some(format!("lgmaster@127.0.0.1:{port}").parse().unwrap());
    let config = TargetConfig {
        redis: None,
        workers: 1,
        worker,
        program: PathBuf::from(env!("CARGO_BIN_EXE_loadgen-target-worker")),
        args: Vec::new(),
        balancer: Default::default(),
    };
    let e = Target::start(config).unwrap_err().to_string();
    assert!(e.starts_with("--redis-sentinel lgmaster@127.0.0.1:") && e.contains("no sentinel gave the master"), "{e}");
    assert!(!e.contains('\n'), "{e}");
}
