//! Resilience and the faults that break it, against a real redis-server that the test
//! stops and restarts: resubscribing after a Redis restart (and `no-resubscribe`, deaf
//! after it), the publishing circuit breaker (closed, open, half-open, closed), a
//! backlog of 1 with a slow accept (`tiny-backlog`), and `stall-reads`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// POST /publish until it is answered 200 (Redis coming back), within 10 s.
async fn publish_when_up(addr: std::net::SocketAddr, request: serde_json::Value) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = http(addr, "POST", "/publish", &request.to_string()).await;
        if status == 200 {
            return serde_json::from_str(&body).unwrap();
        }
        assert!(Instant::now() < deadline, "still {status} after 10 s: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn after_a_redis_restart_clients_hear_again_unless_no_resubscribe() {
    let mut redis = redis();
    for (faults, deaf) in [(&[][..], false), (&["no-resubscribe"][..], true)] {
        // As a target's supervisor does at start: this run's list replaces what the last
        // one left (its worker stored its list again in the restarted Redis).
        let list = loadgen_target::faults::parse_all(faults).unwrap();
        loadgen_target::control::store_blocking(redis.url(), &list).unwrap();
        let w = bounded(worker(&redis, faults, |_| {})).await;
        let (mut ws, _) = bounded(connect(w.addr(), "unit=1")).await;
        bounded(publish(w.addr(), json!({"channel": "unit:1"}))).await;
        assert_eq!(bounded(envelopes(&mut ws, 1, Duration::from_secs(5))).await.len(), 1);
        // Blocking, on the test's own thread: the server dies with the thread that
        // started it.
        redis.restart().expect("redis restarts on its port");
        bounded(async {
            let reconnects = wait_metric(w.addr(), "redis_reconnects_total", Duration::from_secs(10), |n| n >= 1).await;
            assert_eq!(reconnects, 1);
            publish_when_up(w.addr(), json!({"channel": "unit:1", "count": 3})).await;
            let got = envelopes(&mut ws, 3, Duration::from_millis(if deaf { 500 } else { 5000 })).await;
            if deaf {
                assert!(got.is_empty(), "no-resubscribe: deaf after the restart");
                assert_eq!(metric(&metrics(w.addr()).await, "subscriptions"), 0);
            } else {
                assert_eq!(seqs(&got), [0, 1, 2], "resubscribed (the restarted Redis counts from 0)");
            }
            close(ws).await;
            w.stop().await;
        })
        .await;
    }
}

#[tokio::test]
async fn the_breaker_opens_after_five_failures_refuses_at_once_and_closes_after_a_good_trial() {
    let mut redis = redis();
    let w = bounded(worker(&redis, &[], |_| {})).await;
    let a = w.addr();
    bounded(publish(a, json!({"channel": "unit:2"}))).await;
    redis.stop();
    bounded(async {
        for i in 0..5 {
            let (status, body) = http(a, "POST", "/publish", r#"{"channel":"unit:2"}"#).await;
            assert_eq!(status, 503, "failure {i}: {body}");
            assert!(body.contains("redis unavailable"), "{body}");
        }
        let started = Instant::now();
        let (status, body) = raw(
            a,
            b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\nConnection: close\r\n\r\n{\"channel\":\"unit:2\"}",
        )
        .await;
        assert_eq!(status, 503);
        assert!(body.contains("circuit breaker is open"), "{body}");
        assert!(started.elapsed() < Duration::from_millis(200), "refused at once");
        let m = metrics(a).await;
        assert_eq!((metric(&m, "breaker_state"), metric(&m, "breaker_opened_total")), (1, 1), "open");
        assert_eq!(metric(&m, "publish_rejected_total"), 1);
        let (_, health) = http(a, "GET", "/healthz", "").await;
        assert!(health.contains(r#""breaker":"open""#), "{health}");
    })
    .await;
    redis.restart().expect("redis restarts");
    bounded(async {
        tokio::time::sleep(loadgen_target::breaker::COOLDOWN + Duration::from_millis(100)).await;
        assert_eq!(metric(&metrics(a).await, "breaker_state"), 2, "half-open after the cooldown");
        let answer = publish(a, json!({"channel": "unit:2"})).await;
        assert_eq!(answer["first_seq"], 0, "the trial went through");
        let m = metrics(a).await;
        assert_eq!((metric(&m, "breaker_state"), metric(&m, "breaker_opened_total")), (0, 1), "closed again");
        w.stop().await;
    })
    .await;
}

#[tokio::test]
async fn tiny_backlog_makes_a_burst_of_connections_wait_for_the_slow_accept() {
    let redis = redis();
    bounded(async {
        let mut took = Vec::new();
        for faults in [&[][..], &["tiny-backlog"][..]] {
            let w = worker(&redis, faults, |_| {}).await;
            let started = Instant::now();
            let clients = futures_util::future::join_all((0..8).map(|_| connect(w.addr(), ""))).await;
            took.push(started.elapsed());
            for (ws, _) in clients {
                close(ws).await;
            }
            w.stop().await;
        }
        assert!(took[0] < Duration::from_millis(600), "a normal accept: {:?}", took[0]);
        assert!(took[1] >= Duration::from_millis(700), "eight accepts 100 ms apart: {:?}", took[1]);
    })
    .await;
}

#[tokio::test]
async fn stall_reads_leaves_a_client_unanswered_until_switched_off() {
    let redis = redis();
    bounded(async {
        let w = worker(&redis, &[], |c| c.admin_token = Some("t".into())).await;
        let (mut ws, _) = connect(w.addr(), "unit=3").await;
        assert_eq!(admin(w.addr(), "t", json!({"on": ["stall-reads"]})).await.0, 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
        ws.send(Message::text(r#"{"type":"ping"}"#)).await.unwrap();
        publish(w.addr(), json!({"channel": "unit:3", "count": 2})).await;
        let got = envelopes(&mut ws, 3, Duration::from_millis(500)).await;
        assert_eq!(seqs(&got), [0, 1], "deliveries still flow, the ping is not read");
        assert_eq!(admin(w.addr(), "t", json!({"off": ["stall-reads"]})).await.0, 200);
        let pong = next_text(&mut ws, Duration::from_secs(5)).await.expect("answered once reading again");
        assert!(pong.contains(r#""type":"pong""#), "{pong}");
        close(ws).await;
        w.stop().await;
    })
    .await;
}
