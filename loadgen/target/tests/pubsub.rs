//! Classic and sharded Pub/Sub against a real redis-server (7.x here), over RESP3 and
//! RESP2, as a plain tokio-tungstenite client sees them: sharded subscriptions show in
//! `PUBSUB SHARDNUMSUB` (not in NUMSUB), are dropped when the last client leaves, come
//! back after a Redis restart; publishes, reminders and fault switches all work in
//! sharded mode; RESP2 still works, and sharded over RESP2 is refused.

mod common;

use std::time::Duration;

use common::*;
use loadgen_target::pubsub::{PubSubMode, RedisProtocol};
use serde_json::json;

/// Subscribers Redis counts on the shard channel `channel` (PUBSUB SHARDNUMSUB).
async fn shard_numsub(redis: &loadgen_target::EmbeddedRedis, channel: &str) -> u64 {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let (_, n): (String, u64) = redis::cmd("PUBSUB").arg("SHARDNUMSUB").arg(channel).query_async(&mut c).await.unwrap();
    n
}

/// Waits (up to 5 s) until `f` gives `want`.
async fn eventually<F: std::future::Future<Output = u64>>(want: u64, f: impl Fn() -> F) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let v = f().await;
        if v == want || tokio::time::Instant::now() >= deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn sharded_pubsub_subscribes_publishes_and_unsubscribes_with_the_s_commands() {
    let redis = redis();
    loadgen_target::target::check_sharded(redis.url()).expect("this redis-server has sharded pub/sub (7+)");
    bounded(async {
        let w = worker(&redis, &[], |c| {
            c.pubsub = PubSubMode::Sharded;
            c.admin_token = Some("t".into());
        })
        .await;
        let a = w.addr();
        let (mut ws, _) = connect(a, "unit=5&user=ana").await;
        assert_eq!(shard_numsub(&redis, "unit:5").await, 1, "SSUBSCRIBEd");
        assert_eq!(numsub(&redis, "unit:5").await, 0, "not SUBSCRIBEd");
        assert_eq!(metric(&metrics(a).await, "redis_protocol"), 3, "RESP3 where the server speaks it");
        publish(a, json!({"channel": "unit:5", "count": 100})).await;
        assert_eq!(seqs(&envelopes(&mut ws, 100, Duration::from_secs(5)).await), (0..100).collect::<Vec<u64>>());
        // Reminders fire with SPUBLISH too.
        let (status, body) =
            http(a, "POST", "/reminders", &json!({"channel": "person:ana", "in_ms": 50}).to_string()).await;
        assert_eq!(status, 200, "{body}");
        let got = envelopes(&mut ws, 1, Duration::from_secs(3)).await;
        assert_eq!((got[0].json["ch"].as_str(), got[0].json["reminder"].as_bool()), (Some("person:ana"), Some(true)));
        // The control channel stays classic: a fault switch reaches the worker.
        let (status, answer) = admin(a, "t", json!({"on": ["drop-fanout=100"]})).await;
        assert_eq!((status, answer["workers_notified"].as_u64()), (200, Some(1)), "{answer}");
        publish(a, json!({"channel": "unit:5"})).await;
        assert!(envelopes(&mut ws, 1, Duration::from_millis(300)).await.is_empty(), "dropped by the fault");
        assert_eq!(admin(a, "t", json!({"faults": []})).await.0, 200);
        // The last client leaves: SUNSUBSCRIBE; a new one subscribes again.
        close(ws).await;
        assert_eq!(eventually(0, || shard_numsub(&redis, "unit:5")).await, 0, "SUNSUBSCRIBEd");
        assert_eq!(eventually(0, || async { metric(&metrics(a).await, "subscriptions") }).await, 0);
        let (mut ws, _) = connect(a, "unit=5").await;
        assert_eq!(shard_numsub(&redis, "unit:5").await, 1);
        publish(a, json!({"channel": "unit:5", "count": 2})).await;
        assert_eq!(seqs(&envelopes(&mut ws, 2, Duration::from_secs(5)).await), [101, 102]);
        // A plain PUBLISH on the same name does not reach a shard subscriber.
        let client = redis::Client::open(redis.url()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let text = loadgen_target::envelope::EnvelopeParts::new("unit:5", 9, None).assemble(7, 1);
        let _: u64 = redis::cmd("PUBLISH").arg("unit:5").arg(&text).query_async(&mut c).await.unwrap();
        assert!(
            envelopes(&mut ws, 1, Duration::from_millis(300)).await.is_empty(),
            "classic and shard channels are apart"
        );
        close(ws).await;
        w.stop().await;
    })
    .await;
}

#[tokio::test]
async fn sharded_subscribers_come_back_after_a_redis_restart() {
    let mut redis = redis();
    let w = bounded(worker(&redis, &[], |c| c.pubsub = PubSubMode::Sharded)).await;
    let (mut ws, _) = bounded(connect(w.addr(), "unit=2")).await;
    redis.restart().expect("redis restarts on its port");
    bounded(async {
        wait_metric(w.addr(), "redis_reconnects_total", Duration::from_secs(10), |n| n >= 1).await;
        assert_eq!(eventually(1, || shard_numsub(&redis, "unit:2")).await, 1, "SSUBSCRIBEd again");
        publish(w.addr(), json!({"channel": "unit:2", "count": 3})).await;
        assert_eq!(seqs(&envelopes(&mut ws, 3, Duration::from_secs(5)).await), [0, 1, 2]);
        close(ws).await;
        w.stop().await;
    })
    .await;
}

#[tokio::test]
async fn resp2_still_works_and_sharded_over_resp2_is_refused() {
    let redis = redis();
    bounded(async {
        let w = worker(&redis, &[], |c| c.redis_protocol = RedisProtocol::Resp2).await;
        let (mut ws, _) = connect(w.addr(), "unit=1").await;
        assert_eq!(metric(&metrics(w.addr()).await, "redis_protocol"), 2);
        assert_eq!(numsub(&redis, "unit:1").await, 1);
        publish(w.addr(), json!({"channel": "unit:1", "count": 3})).await;
        assert_eq!(seqs(&envelopes(&mut ws, 3, Duration::from_secs(5)).await), [0, 1, 2]);
        close(ws).await;
        w.stop().await;
        let mut config = loadgen_target::WorkerConfig::new(0, "127.0.0.1:0".parse().unwrap(), redis.url());
        (config.pubsub, config.redis_protocol) = (PubSubMode::Sharded, RedisProtocol::Resp2);
        let e = loadgen_target::Worker::start(config).await.unwrap_err().to_string();
        assert!(e.contains("needs RESP3"), "{e}");
    })
    .await;
}
