//! The worker against a real redis-server, seen by plain tokio-tungstenite clients and
//! a raw HTTP client: delivery in order with sequence numbers and send times,
//! subscriptions reference-counted in Redis, /healthz, /metrics, refusals of malformed
//! requests, heartbeats and idle closes, slow consumers, graceful stop.

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use loadgen_target::channel_id;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test]
async fn published_messages_arrive_in_order_with_sequence_and_send_time() {
    let redis = redis();
    bounded(async {
        let w = worker(&redis, &[], |_| {}).await;
        let (mut ws, ready) = connect(w.addr(), "user=ana&unit=7&role=medic").await;
        assert_eq!(ready["worker"], 0);
        assert_eq!(ready["channels"], json!(["person:ana", "unit:7", "role:medic", "broadcast"]));
        let answer =
            publish(w.addr(), json!({"channel": "unit:7", "count": 200, "body": {"text": "shift at 06:00"}})).await;
        assert_eq!(answer["ranges"], json!([[0, 199]]), "{answer}");
        assert_eq!((answer["first_seq"].as_u64(), answer["last_seq"].as_u64()), (Some(0), Some(199)));
        assert_eq!(answer["channel_id"], channel_id("unit:7"));
        let got = envelopes(&mut ws, 200, Duration::from_secs(10)).await;
        assert_eq!(seqs(&got), (0..200).collect::<Vec<u64>>());
        let id = channel_id("unit:7");
        for r in &got {
            let prefix = format!("{{\"lgprobe\":1,\"channel\":{id},\"seq\":");
            assert!(r.text.starts_with(&prefix), "{}", r.text);
            assert_eq!((r.json["sender"].as_u64(), r.json["worker"].as_u64()), (Some(u64::from(id)), Some(0)));
            assert_eq!((r.json["ch"].as_str(), &r.json["body"]), (Some("unit:7"), &json!({"text": "shift at 06:00"})));
            let sent = r.json["sent_us"].as_u64().unwrap();
            assert!(sent <= r.at_us && r.at_us - sent < 10_000_000, "sent {sent}, received {}", r.at_us);
        }
        let keys: Vec<&String> = got[0].json.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 8);
        // The sequence goes on; other channels have their own; paced publishing works.
        let answer = publish(w.addr(), json!({"channel": "unit:7", "count": 3, "interval_us": 20_000})).await;
        assert_eq!(answer["ranges"], json!([[200, 202]]));
        let paced = envelopes(&mut ws, 3, Duration::from_secs(5)).await;
        assert_eq!(seqs(&paced), [200, 201, 202]);
        let sent: Vec<u64> = paced.iter().map(|r| r.json["sent_us"].as_u64().unwrap()).collect();
        assert_eq!((sent[1] - sent[0], sent[2] - sent[1]), (20_000, 20_000), "intended times, 20 ms apart");
        assert_eq!(paced[0].json["body"], json!(null));
        publish(w.addr(), json!({"channel": "person:ana"})).await;
        publish(w.addr(), json!({"channel": "unit:8"})).await; // not ours
        publish(w.addr(), json!({"channel": "broadcast"})).await;
        let more = envelopes(&mut ws, 3, Duration::from_secs(2)).await;
        let names: Vec<&str> = more.iter().map(|r| r.json["ch"].as_str().unwrap()).collect();
        assert_eq!(names, ["person:ana", "broadcast"]);
        assert_eq!(seqs(&more), [0, 0]);
        close(ws).await;
        w.stop().await;
    })
    .await;
}

#[tokio::test]
async fn subscriptions_are_reference_counted_across_local_clients() {
    let redis = redis();
    bounded(async {
        let w = worker(&redis, &[], |_| {}).await;
        let (a, _) = connect(w.addr(), "unit=9").await;
        let (mut b, _) = connect(w.addr(), "unit=9").await;
        assert_eq!(numsub(&redis, "unit:9").await, 1, "one subscriber connection per worker");
        assert_eq!(numsub(&redis, "broadcast").await, 1);
        close(a).await;
        wait_metric(w.addr(), "connections_open", Duration::from_secs(5), |n| n == 1).await;
        assert_eq!(numsub(&redis, "unit:9").await, 1, "b still listens");
        publish(w.addr(), json!({"channel": "unit:9", "count": 5})).await;
        assert_eq!(seqs(&envelopes(&mut b, 5, Duration::from_secs(5)).await), [0, 1, 2, 3, 4]);
        close(b).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while numsub(&redis, "unit:9").await != 0 || numsub(&redis, "broadcast").await != 0 {
            assert!(tokio::time::Instant::now() < deadline, "the last client left: unsubscribed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(metric(&metrics(w.addr()).await, "subscriptions"), 0);
        // And a newcomer subscribes again.
        let (mut c, _) = connect(w.addr(), "unit=9").await;
        assert_eq!(numsub(&redis, "unit:9").await, 1);
        publish(w.addr(), json!({"channel": "unit:9"})).await;
        assert_eq!(seqs(&envelopes(&mut c, 1, Duration::from_secs(5)).await), [5]);
        close(c).await;
        w.stop().await;
    })
    .await;
}

#[tokio::test]
async fn healthz_and_metrics_report_the_worker() {
    let redis = redis();
    bounded(async {
        let w = worker(&redis, &[], |c| c.id = 3).await;
        let (status, body) = http(w.addr(), "GET", "/healthz", "").await;
        assert_eq!(status, 200);
        let h: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!((h["status"].as_str(), h["worker"].as_u64()), (Some("ok"), Some(3)), "{h}");
        assert_eq!(h["pid"], std::process::id());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let (_, body) = http(w.addr(), "GET", "/healthz", "").await;
            if body.contains("\"redis\":\"up\"") {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{body}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (mut ws, ready) = connect(w.addr(), "role=medic").await;
        assert_eq!(ready["worker"], 3);
        publish(w.addr(), json!({"channel": "role:medic", "count": 4})).await;
        envelopes(&mut ws, 4, Duration::from_secs(5)).await;
        let text = metrics(w.addr()).await;
        assert!(text.contains("# TYPE loadgen_target_messages_delivered_total counter"), "{text}");
        assert!(text.contains("loadgen_target_connections_open{worker=\"3\"} 1\n"), "{text}");
        for (name, expect) in
            [("upgrades_total", 1), ("messages_published_total", 4), ("redis_messages_total", 4), ("subscriptions", 2)]
        {
            assert_eq!(metric(&text, name), expect, "{name}");
        }
        assert_eq!(wait_metric(w.addr(), "messages_delivered_total", Duration::from_secs(2), |n| n == 4).await, 4);
        for name in ["messages_dropped_slow_consumer_total", "messages_dropped_fault_total", "redis_reconnects_total"] {
            assert_eq!(metric(&text, name), 0, "{name}");
        }
        assert!(metric(&text, "queue_depth_max") >= 1);
        assert_eq!(metric(&text, "redis_connected"), 1);
        close(ws).await;
        w.stop().await;
    })
    .await;
}

#[tokio::test]
async fn malformed_requests_get_a_clear_4xx_and_the_worker_goes_on() {
    let redis = redis();
    bounded(async {
        let w = worker(&redis, &[], |_| {}).await;
        let a = w.addr();
        let one_line = |(status, body): (u16, String), expect: u16, needle: &str| {
            assert_eq!(status, expect, "{body}");
            assert_eq!(body.trim_end().lines().count(), 1, "{body}");
            let why: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert!(why["error"].as_str().unwrap().contains(needle), "{body}");
        };
        one_line(http(a, "POST", "/publish", "{").await, 400, "invalid publish request");
        one_line(http(a, "POST", "/publish", r#"{"channel":"x","colour":"red"}"#).await, 400, "unknown field `colour`");
        one_line(http(a, "POST", "/publish", r#"{"channel":"x","count":0}"#).await, 400, "count 0");
        one_line(http(a, "POST", "/publish", r#"["x"]"#).await, 400, "invalid publish request");
        one_line(http(a, "GET", "/publish", "").await, 405, "use POST");
        one_line(http(a, "DELETE", "/healthz", "").await, 405, "use GET");
        one_line(http(a, "GET", "/nope", "").await, 404, "no route /nope");
        one_line(http(a, "GET", "/ws", "").await, 426, "WebSocket endpoint");
        let big = format!(r#"{{"channel":"x","body":"{}"}}"#, "a".repeat(100_000));
        one_line(http(a, "POST", "/publish", &big).await, 413, "larger than 65536 bytes");
        let chunked = b"POST /publish HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        one_line(raw(a, chunked).await, 411, "Content-Length");
        one_line(raw(a, b"GET / HTTP/1.1\r\nContent-Length: nine\r\n\r\n").await, 400, "Content-Length");
        one_line(raw(a, b"\x16\x03\x01 not http\r\n\r\n").await, 400, "malformed request head");
        one_line(raw(a, &[b'a'; 20_000]).await, 431, "16 KiB");
        let upgrade = |path: &str| {
            format!(
                "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            )
        };
        one_line(raw(a, upgrade("/elsewhere").as_bytes()).await, 404, "upgrade at /ws");
        one_line(raw(a, upgrade("/ws?unit=%zz").as_bytes()).await, 400, "bad upgrade query");
        // A half-sent request and a silent connection do not hold anything up.
        let _silent = tokio::net::TcpStream::connect(a).await.unwrap();
        // Keep-alive: two requests on one connection.
        let two =
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        let (status, body) = raw(a, two).await;
        assert_eq!(status, 200);
        assert!(body.contains("HTTP/1.1 200 OK"), "the second answer follows the first: {body}");
        let (status, _) = http(a, "GET", "/healthz", "").await;
        assert_eq!(status, 200, "still serving");
        assert!(metric(&metrics(a).await, "upgrades_failed_total") >= 2);
        w.stop().await;
    })
    .await;
}

#[tokio::test]
async fn server_pings_and_idle_connections_are_closed() {
    let redis = redis();
    bounded(async {
        let w = worker(&redis, &[], |c| {
            c.ping_interval = Duration::from_millis(100);
            c.idle_timeout = Duration::from_millis(700);
        })
        .await;
        // A client that reads answers the pings (tungstenite does) and stays.
        let (mut live, _) = connect(w.addr(), "").await;
        let mut pings = 0;
        let until = tokio::time::Instant::now() + Duration::from_millis(1500);
        while let Ok(Some(Ok(m))) = tokio::time::timeout_at(until, live.next()).await {
            match m {
                Message::Ping(p) => {
                    assert_eq!(p.len(), 8, "the server's ping carries its send time");
                    pings += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(pings >= 5, "{pings} pings in 1.5 s at 100 ms");
        // An application-level JSON ping gets a JSON pong.
        futures_util::SinkExt::send(&mut live, Message::text(r#"{"type":"ping"}"#)).await.unwrap();
        assert_eq!(next_text(&mut live, Duration::from_secs(2)).await.unwrap(), r#"{"type":"pong","worker":0}"#);
        close(live).await;
        // A client that reads nothing sends no pongs: closed for idleness.
        let (mut idle, _) = connect(w.addr(), "").await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let frame = loop {
            match tokio::time::timeout(Duration::from_secs(5), idle.next()).await {
                Ok(Some(Ok(Message::Close(f)))) => break f.expect("a close frame"),
                Ok(Some(Ok(_))) => continue,
                other => panic!("expected a close, got {other:?}"),
            }
        };
        assert_eq!((frame.code, frame.reason.as_str()), (CloseCode::Normal, "idle timeout"));
        assert!(metric(&metrics(w.addr()).await, "idle_closed_total") >= 1);
        assert!(metric(&metrics(w.addr()).await, "pings_sent_total") >= 5);
        w.stop().await;
    })
    .await;
}

#[tokio::test]
async fn stopping_closes_with_1001() {
    let redis = redis();
    bounded(async {
        let w = worker(&redis, &[], |_| {}).await;
        let (mut ws, _) = connect(w.addr(), "unit=1").await;
        let addr = w.addr();
        let stop = tokio::spawn(w.stop());
        let frame = loop {
            match ws.next().await {
                Some(Ok(Message::Close(f))) => break f.expect("a close frame"),
                Some(Ok(_)) => continue,
                other => panic!("expected a close, got {other:?}"),
            }
        };
        assert_eq!((frame.code, frame.reason.as_str()), (CloseCode::Away, "server shutting down"));
        drop(ws);
        stop.await.unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "no longer listening");
    })
    .await;
}

/// A client that stops reading fills its socket, then its queue of 4.
async fn slow_consumer(
    redis: &loadgen_target::EmbeddedRedis,
    policy: loadgen_target::SlowConsumer,
) -> (Client, std::net::SocketAddr, loadgen_target::Worker) {
    let w = worker(redis, &[], |c| {
        c.queue_capacity = 4;
        c.slow_consumer = policy;
        c.max_body_bytes = 1 << 20;
    })
    .await;
    let (ws, _) = connect(w.addr(), "unit=slow").await;
    let body = "x".repeat(500_000);
    for _ in 0..40 {
        publish(w.addr(), json!({"channel": "unit:slow", "body": body})).await;
    }
    let addr = w.addr();
    (ws, addr, w)
}

#[tokio::test]
async fn slow_consumers_lose_the_oldest_or_are_disconnected() {
    let redis = redis();
    bounded(async {
        let (mut ws, addr, w) = slow_consumer(&redis, loadgen_target::SlowConsumer::DropOldest).await;
        let dropped =
            wait_metric(addr, "messages_dropped_slow_consumer_total", Duration::from_secs(10), |n| n > 0).await;
        assert!(dropped > 0, "a full queue dropped its oldest");
        let got = seqs(&envelopes(&mut ws, 40, Duration::from_secs(2)).await);
        assert!(got.len() < 40 && got.windows(2).all(|p| p[0] < p[1]), "{got:?}");
        assert_eq!(*got.last().unwrap(), 39, "the newest survives");
        close(ws).await;
        w.stop().await;

        let (mut ws, addr, w) = slow_consumer(&redis, loadgen_target::SlowConsumer::Disconnect).await;
        wait_metric(addr, "slow_consumer_disconnects_total", Duration::from_secs(10), |n| n == 1).await;
        let end = loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("the end comes") {
                Some(Ok(Message::Close(f))) => break f.map(|f| (f.code, f.reason.to_string())),
                Some(Ok(_)) => continue,
                None | Some(Err(_)) => break None,
            }
        };
        if let Some((code, reason)) = end {
            assert_eq!((code, reason.as_str()), (CloseCode::Policy, "slow consumer"));
        }
        drop(ws);
        assert_eq!(wait_metric(addr, "connections_open", Duration::from_secs(5), |n| n == 0).await, 0);
        w.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_lost_subscriber_connection_reconnects_and_resubscribes() {
    let redis = redis();
    bounded(async {
        let w = worker(&redis, &[], |_| {}).await;
        let (mut ws, _) = connect(w.addr(), "unit=6").await;
        // Redis drops the worker's subscriber connection.
        let client = redis::Client::open(redis.url()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let killed: u64 = redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("pubsub").query_async(&mut c).await.unwrap();
        assert_eq!(killed, 1);
        assert_eq!(wait_metric(w.addr(), "redis_reconnects_total", Duration::from_secs(10), |n| n == 1).await, 1);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while numsub(&redis, "unit:6").await != 1 {
            assert!(tokio::time::Instant::now() < deadline, "resubscribed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        publish(w.addr(), json!({"channel": "unit:6", "count": 2})).await;
        assert_eq!(seqs(&envelopes(&mut ws, 2, Duration::from_secs(5)).await), [0, 1]);
        close(ws).await;
        w.stop().await;
    })
    .await;
}
