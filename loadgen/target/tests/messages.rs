//! Message features, as a plain tokio-tungstenite client sees them: critical messages
//! overtake a backlog in the client's queue (and wait in line under `no-priority`),
//! the WebSocket publisher role publishes like `POST /publish`, and a person coming
//! back with `since=SEQ` gets the notifications kept for them (none under
//! `drop-pending`, nor after the pending TTL).

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Where the critical message landed among everything received, and how many unit
/// messages came after it.
async fn critical_position(faults: &[&str]) -> (usize, usize) {
    let redis = redis();
    let w = worker(&redis, faults, |c| c.queue_capacity = 5000).await;
    let mut ws = small_window_client(w.addr(), "user=ana&unit=1").await;
    // 4,000 messages of 8 KB (32 MB), far more than the socket buffers hold (the client's is
    // 64 KiB): the client reads nothing yet, so most of them wait in its queue.
    let body = "x".repeat(8000);
    publish(w.addr(), json!({"channel": "unit:1", "count": 4000, "body": body})).await;
    let depth = wait_metric(w.addr(), "queue_depth_max", Duration::from_secs(10), |d| d > 500).await;
    assert!(depth > 500, "a backlog in the queue: {depth}");
    publish(w.addr(), json!({"channel": "person:ana", "critical": true, "body": "evacuate"})).await;
    // Read only once the worker has every message from Redis, the critical one last.
    let from_redis = wait_metric(w.addr(), "redis_messages_total", Duration::from_secs(20), |n| n == 4001).await;
    assert_eq!(from_redis, 4001);
    let got = envelopes(&mut ws, 4001, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 4001);
    let at = got.iter().position(|r| r.json["ch"] == "person:ana").expect("the critical message");
    assert_eq!(got[at].json["critical"], true);
    assert!(got[at].text.ends_with(r#""body":"evacuate","critical":true}"#), "{}", got[at].text);
    let units: Vec<u64> =
        got.iter().filter(|r| r.json["ch"] == "unit:1").map(|r| r.json["seq"].as_u64().unwrap()).collect();
    assert_eq!(units, (0..4000).collect::<Vec<u64>>(), "the others in order");
    close(ws).await;
    w.stop().await;
    (at, got.len() - 1 - at)
}

/// A client whose receive buffer is fixed at 64 KiB (no autotuning up to 32 MB), past
/// its `lgready`.
async fn small_window_client(addr: std::net::SocketAddr, query: &str) -> Client {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(64 << 10).unwrap();
    s.connect(&addr.into()).unwrap();
    s.set_nonblocking(true).unwrap();
    let stream = tokio::net::TcpStream::from_std(s.into()).unwrap();
    let url = format!("ws://{addr}/ws?{query}");
    let (mut ws, _) =
        tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(stream)).await.unwrap();
    let ready = next_text(&mut ws, Duration::from_secs(5)).await.unwrap();
    assert!(ready.contains("lgready"), "{ready}");
    ws
}

#[tokio::test]
async fn a_critical_message_overtakes_the_queue_unless_no_priority() {
    let (_, after) = bounded(critical_position(&[])).await;
    assert!(after > 1000, "overtook the queued messages: {after} arrived after it");
    let (at, after) = bounded(critical_position(&["no-priority"])).await;
    assert_eq!((at, after), (4000, 0), "no-priority: it waited behind all 4,000");
}

#[tokio::test]
async fn a_websocket_publisher_publishes_like_post_publish() {
    let redis = redis();
    bounded(async {
        let w = worker(&redis, &[], |_| {}).await;
        let (mut sub, _) = connect(w.addr(), "unit=4").await;
        let (mut publisher, _) = tokio_tungstenite::connect_async(format!("ws://{}/publish", w.addr())).await.unwrap();
        let ready: Value =
            serde_json::from_str(&next_text(&mut publisher, Duration::from_secs(5)).await.unwrap()).unwrap();
        assert_eq!(ready, json!({"lgready": 1, "worker": 0, "publisher": true}));
        publisher.send(Message::text(r#"{"channel":"unit:4","count":3,"body":{"k":1}}"#)).await.unwrap();
        let answer: Value =
            serde_json::from_str(&next_text(&mut publisher, Duration::from_secs(5)).await.unwrap()).unwrap();
        assert_eq!(answer["ranges"], json!([[0, 2]]), "{answer}");
        let got = envelopes(&mut sub, 3, Duration::from_secs(5)).await;
        assert_eq!(seqs(&got), [0, 1, 2]);
        assert_eq!(got[0].json["body"], json!({"k": 1}));
        // A bad request is answered with the reason; the connection stays usable.
        publisher.send(Message::text(r#"{"channel":"unit:4","count":0}"#)).await.unwrap();
        let error = next_text(&mut publisher, Duration::from_secs(5)).await.unwrap();
        assert!(error.contains("outside 1..="), "{error}");
        publisher.send(Message::binary(vec![1, 2])).await.unwrap();
        assert!(next_text(&mut publisher, Duration::from_secs(5)).await.unwrap().contains("not binary"));
        publisher.send(Message::text(r#"{"channel":"unit:4"}"#)).await.unwrap();
        let answer: Value =
            serde_json::from_str(&next_text(&mut publisher, Duration::from_secs(5)).await.unwrap()).unwrap();
        assert_eq!(answer["first_seq"], 3);
        assert_eq!(seqs(&envelopes(&mut sub, 1, Duration::from_secs(5)).await), [3]);
        assert_eq!(metric(&metrics(w.addr()).await, "ws_publish_requests_total"), 3, "three text requests");
        close(publisher).await;
        close(sub).await;
        w.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_person_reconnecting_with_since_gets_what_they_missed_unless_drop_pending() {
    let redis = redis();
    bounded(async {
        let w = worker(&redis, &[], |c| c.admin_token = Some("t".into())).await;
        let a = w.addr();
        let (mut ws, _) = connect(a, "user=bo").await;
        publish(a, json!({"channel": "person:bo", "count": 3})).await;
        assert_eq!(seqs(&envelopes(&mut ws, 3, Duration::from_secs(5)).await), [0, 1, 2]);
        drop(ws); // cut off, as when its worker crashes
        publish(a, json!({"channel": "person:bo", "count": 2})).await;
        let (mut ws, _) = connect(a, "user=bo&since=2").await;
        assert_eq!(seqs(&envelopes(&mut ws, 2, Duration::from_secs(5)).await), [3, 4], "replayed");
        publish(a, json!({"channel": "person:bo"})).await;
        assert_eq!(seqs(&envelopes(&mut ws, 1, Duration::from_secs(5)).await), [5], "then live, once");
        assert!(envelopes(&mut ws, 1, Duration::from_millis(300)).await.is_empty(), "no copies");
        assert_eq!(metric(&metrics(a).await, "pending_replayed_total"), 2);
        drop(ws);
        // drop-pending: the same reconnect gets nothing, a gap.
        publish(a, json!({"channel": "person:bo", "count": 2})).await;
        assert_eq!(admin(a, "t", json!({"on": ["drop-pending"]})).await.0, 200);
        let (mut ws, _) = connect(a, "user=bo&since=5").await;
        publish(a, json!({"channel": "person:bo"})).await;
        assert_eq!(seqs(&envelopes(&mut ws, 1, Duration::from_secs(5)).await), [8], "6 and 7 lost");
        assert_eq!(metric(&metrics(a).await, "pending_dropped_total"), 2);
        close(ws).await;
        w.stop().await;
        // Kept for the TTL only.
        let w = worker(&redis, &[], |c| c.pending_ttl = Duration::from_secs(1)).await;
        publish(w.addr(), json!({"channel": "person:cy", "count": 2})).await;
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let (mut ws, _) = connect(w.addr(), "user=cy&since=0").await;
        assert!(envelopes(&mut ws, 1, Duration::from_millis(300)).await.is_empty(), "expired");
        let upgrade = b"GET /ws?user=cy&since=x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        let (status, body) = raw(w.addr(), upgrade).await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("not a sequence number"), "{body}");
        close(ws).await;
        w.stop().await;
    })
    .await;
}
