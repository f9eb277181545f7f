//! Each fault changes what a plain tokio-tungstenite client observes, against a real
//! redis-server: drop-fanout=100 (nothing arrives, the worker counts it), delay=300
//! (every delivery ≥ 300 ms late), duplicate=100 (every message twice), reorder
//! (consecutive messages swapped), stop-pong (the client's pings go unanswered).

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn drop_fanout_100_delivers_nothing_and_counts_it() {
    let redis = redis();
    bounded(async {
        let w = worker(&redis, &["drop-fanout=100"], |_| {}).await;
        let (mut ws, _) = connect(w.addr(), "unit=1").await;
        publish(w.addr(), json!({"channel": "unit:1", "count": 50})).await;
        assert_eq!(
            wait_metric(w.addr(), "messages_dropped_fault_total", Duration::from_secs(5), |n| n == 50).await,
            50
        );
        assert!(envelopes(&mut ws, 1, Duration::from_millis(500)).await.is_empty(), "nothing delivered");
        let m = metrics(w.addr()).await;
        assert_eq!((metric(&m, "redis_messages_total"), metric(&m, "messages_delivered_total")), (50, 0));
        close(ws).await;
        w.stop().await;
        // Only worker 0 drops: worker 1 with the same faults delivers.
        let w1 = worker(&redis, &["drop-fanout=100"], |c| c.id = 1).await;
        let (mut ws, _) = connect(w1.addr(), "unit=1").await;
        publish(w1.addr(), json!({"channel": "unit:1", "count": 5})).await;
        assert_eq!(seqs(&envelopes(&mut ws, 5, Duration::from_secs(5)).await), [50, 51, 52, 53, 54]);
        close(ws).await;
        w1.stop().await;
    })
    .await;
}

#[tokio::test]
async fn delay_300_makes_every_delivery_at_least_300_ms_late() {
    let redis = redis();
    bounded(async {
        let w = worker(&redis, &["delay=300"], |_| {}).await;
        let (mut ws, _) = connect(w.addr(), "unit=2").await;
        publish(w.addr(), json!({"channel": "unit:2", "count": 10})).await;
        let got = envelopes(&mut ws, 10, Duration::from_secs(5)).await;
        assert_eq!(seqs(&got), (0..10).collect::<Vec<u64>>(), "in order");
        for r in &got {
            let late = r.at_us - r.json["sent_us"].as_u64().unwrap();
            assert!((300_000..2_000_000).contains(&late), "delivered {late} µs after its publish time");
        }
        close(ws).await;
        w.stop().await;
    })
    .await;
}

#[tokio::test]
async fn duplicate_100_delivers_every_message_twice() {
    let redis = redis();
    bounded(async {
        let w = worker(&redis, &["duplicate=100"], |_| {}).await;
        let (mut ws, _) = connect(w.addr(), "unit=3").await;
        publish(w.addr(), json!({"channel": "unit:3", "count": 20})).await;
        let got = seqs(&envelopes(&mut ws, 40, Duration::from_secs(5)).await);
        let expect: Vec<u64> = (0..20).flat_map(|s| [s, s]).collect();
        assert_eq!(got, expect);
        assert!(envelopes(&mut ws, 1, Duration::from_millis(300)).await.is_empty(), "no third copy");
        assert_eq!(metric(&metrics(w.addr()).await, "messages_duplicated_fault_total"), 20);
        close(ws).await;
        w.stop().await;
    })
    .await;
}

#[tokio::test]
async fn reorder_swaps_consecutive_messages() {
    let redis = redis();
    bounded(async {
        let w = worker(&redis, &["reorder"], |_| {}).await;
        let (mut ws, _) = connect(w.addr(), "unit=4").await;
        publish(w.addr(), json!({"channel": "unit:4", "count": 9})).await;
        let got = seqs(&envelopes(&mut ws, 9, Duration::from_secs(5)).await);
        assert_eq!(got, [1, 0, 3, 2, 5, 4, 7, 6, 8], "pairs swapped, the odd one out released alone");
        close(ws).await;
        w.stop().await;
    })
    .await;
}

/// Sends a ping and waits up to `wait` for its pong.
async fn pong_within(ws: &mut Client, wait: Duration) -> bool {
    ws.send(Message::Ping(b"are you there".to_vec().into())).await.unwrap();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Pong(p)))) => return &p[..] == b"are you there",
            Ok(Some(Ok(_))) => continue,
            Ok(other) => panic!("connection ended: {other:?}"),
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn stop_pong_leaves_the_clients_pings_unanswered() {
    let redis = redis();
    bounded(async {
        let plain = worker(&redis, &[], |_| {}).await;
        let (mut ws, _) = connect(plain.addr(), "").await;
        assert!(pong_within(&mut ws, Duration::from_secs(2)).await, "a plain worker answers");
        close(ws).await;
        plain.stop().await;

        let w = worker(&redis, &["stop-pong"], |_| {}).await;
        let (mut ws, _) = connect(w.addr(), "unit=5").await;
        assert!(!pong_within(&mut ws, Duration::from_secs(1)).await, "no pong under stop-pong");
        assert_eq!(metric(&metrics(w.addr()).await, "pongs_suppressed_total"), 1);
        // Everything else still flows.
        publish(w.addr(), json!({"channel": "unit:5", "count": 3})).await;
        assert_eq!(seqs(&envelopes(&mut ws, 3, Duration::from_secs(5)).await), [0, 1, 2]);
        close(ws).await;
        w.stop().await;
    })
    .await;
}

#[tokio::test]
async fn drop_fanout_50_takes_half_of_every_clients_deliveries() {
    let redis = redis();
    bounded(async {
        let w = worker(&redis, &["drop-fanout=50"], |_| {}).await;
        let (mut a, _) = connect(w.addr(), "unit=6").await;
        let (mut b, _) = connect(w.addr(), "unit=6").await;
        publish(w.addr(), json!({"channel": "unit:6", "count": 10})).await;
        for ws in [&mut a, &mut b] {
            let got = seqs(&envelopes(ws, 5, Duration::from_secs(5)).await);
            assert_eq!(got, [0, 2, 4, 6, 8], "every other one, for each client: gaps a client can see");
            assert!(envelopes(ws, 1, Duration::from_millis(200)).await.is_empty());
        }
        assert_eq!(metric(&metrics(w.addr()).await, "messages_dropped_fault_total"), 10);
        close(a).await;
        close(b).await;
        w.stop().await;
    })
    .await;
}
