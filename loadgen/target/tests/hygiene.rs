//! Connection hygiene and the faults that switch it off, as a plain client sees them
//! (tokio-tungstenite, or raw bytes where a library would refuse to misbehave):
//! handshake tokens (401 without or with a bad one, 403 for another unit), the Origin
//! allowlist (403), the per-IP connection rate (429 with Retry-After), the message
//! rate (close 1008), the message size (close 1009), protocol violations (1002, 1007),
//! the handshake timeout and idle reaping, each with its fault.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use loadgen_target::auth::{Claims, mint};
use loadgen_target::limits::RateScope;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, http};

const SECRET: &str = "k3y";

fn token(user: &str, unit: &str, exp_in_s: i64) -> String {
    let exp = (loadgen_target::unix_us() / 1_000_000) as i64 + exp_in_s;
    mint(SECRET.as_bytes(), &Claims { user: user.into(), unit: unit.into(), exp: exp as u64 })
}

/// Upgrades at `/ws?QUERY` with extra headers: the client past `lgready` (returned),
/// or the refusal's status, body and Retry-After.
async fn upgrade(
    addr: SocketAddr,
    query: &str,
    headers: &[(&str, &str)],
) -> Result<(Client, serde_json::Value), (u16, String, Option<String>)> {
    let mut req = format!("ws://{addr}/ws?{query}").into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((mut ws, _)) => {
            let ready = next_text(&mut ws, Duration::from_secs(10)).await.expect("lgready");
            Ok((ws, serde_json::from_str(&ready).unwrap()))
        }
        Err(WsError::Http(resp)) => {
            let body = resp.body().as_ref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
            let retry = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
            Err((resp.status().as_u16(), body, retry))
        }
        Err(e) => panic!("upgrade failed otherwise: {e}"),
    }
}

/// The close frame the server sends next (other messages skipped).
async fn close_code(ws: &mut Client) -> Option<CloseCode> {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(f))) => return f.map(|f| f.code),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("closed in time")
}

/// The worker answers an application ping on this connection.
async fn answers_app_ping(ws: &mut Client) {
    ws.send(Message::text(r#"{"type":"ping"}"#)).await.unwrap();
    let pong = next_text(ws, Duration::from_secs(5)).await.expect("an answer");
    assert!(pong.contains(r#""type":"pong""#), "{pong}");
}

#[tokio::test]
async fn tokens_401_without_or_bad_403_for_another_unit_and_accept_no_auth() {
    let redis = redis();
    bounded(async {
        let w = worker(&redis, &[], |c| {
            c.auth_secret = Some(SECRET.into());
            c.admin_token = Some("adm".into());
        })
        .await;
        let a = w.addr();
        let (status, body, _) = upgrade(a, "unit=7", &[]).await.unwrap_err();
        assert_eq!(status, 401);
        assert!(body.contains("a token is required"), "{body}");
        let forged = token("ana", "7", 60).replace('.', ".x");
        assert_eq!(upgrade(a, &format!("token={forged}"), &[]).await.unwrap_err().0, 401);
        let (status, body, _) = upgrade(a, &format!("token={}", token("ana", "7", -1)), &[]).await.unwrap_err();
        assert_eq!(status, 401);
        assert!(body.contains("expired"), "{body}");
        let good = token("ana", "7", 60);
        let (status, body, _) = upgrade(a, &format!("unit=8&token={good}"), &[]).await.unwrap_err();
        assert_eq!(status, 403);
        assert!(body.contains(r#"unit \"7\", not \"8\""#), "{body}");
        assert_eq!(upgrade(a, &format!("user=bob&token={good}"), &[]).await.unwrap_err().0, 403);

        // Header, query and cookie all work; the token's user and unit are the channels.
        let bearer = format!("Bearer {good}");
        let (ws1, ready) = upgrade(a, "role=medic", &[("authorization", &bearer)]).await.unwrap();
        assert_eq!(ready["channels"], json!(["person:ana", "unit:7", "role:medic", "broadcast"]));
        let (ws2, _) = upgrade(a, &format!("unit=7&token={good}"), &[]).await.unwrap();
        let cookie = format!("theme=dark; token={good}");
        let (mut ws3, _) = upgrade(a, "", &[("cookie", &cookie)]).await.unwrap();
        publish(a, json!({"channel": "person:ana", "count": 1})).await;
        assert_eq!(seqs(&envelopes(&mut ws3, 1, Duration::from_secs(5)).await), [0]);
        let m = metrics(a).await;
        assert_eq!((metric(&m, "upgrades_refused_401_total"), metric(&m, "upgrades_refused_403_total")), (3, 2));

        // accept-no-auth, switched on mid-run: no token needed any more.
        assert_eq!(admin(a, "adm", json!({"on": ["accept-no-auth"]})).await.0, 200);
        let (ws4, _) = upgrade(a, "unit=9", &[]).await.unwrap();
        for ws in [ws1, ws2, ws3, ws4] {
            close(ws).await;
        }
        w.stop().await;
    })
    .await;
}

#[tokio::test]
async fn origins_outside_the_allowlist_get_403_unless_ignore_origin() {
    let redis = redis();
    bounded(async {
        let w = worker(&redis, &[], |c| c.allow_origins = vec!["https://ops.example".into()]).await;
        let a = w.addr();
        let (status, body, _) = upgrade(a, "", &[("origin", "https://evil.example")]).await.unwrap_err();
        assert_eq!(status, 403);
        assert!(body.contains("origin \\\"https://evil.example\\\" is not allowed"), "{body}");
        let (ok1, _) = upgrade(a, "", &[("origin", "https://OPS.example")]).await.unwrap();
        let (ok2, _) = upgrade(a, "", &[]).await.unwrap();
        close(ok1).await;
        close(ok2).await;
        w.stop().await;
        let w = worker(&redis, &["ignore-origin"], |c| c.allow_origins = vec!["https://ops.example".into()]).await;
        let (ws, _) = upgrade(w.addr(), "", &[("origin", "https://evil.example")]).await.unwrap();
        close(ws).await;
        w.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_connection_rate_is_shared_by_the_workers_through_redis_unless_per_worker() {
    let redis = redis();
    bounded(async {
        for (scope, shared) in [(RateScope::Shared, true), (RateScope::Worker, false)] {
            let set = |id| {
                move |c: &mut loadgen_target::WorkerConfig| {
                    (c.id, c.conn_rate_per_ip, c.conn_rate_scope) = (id, Some(2), scope);
                }
            };
            let (a, b) = (worker(&redis, &[], set(0)).await, worker(&redis, &[], set(1)).await);
            let mut open =
                vec![upgrade(a.addr(), "", &[]).await.unwrap().0, upgrade(a.addr(), "", &[]).await.unwrap().0];
            let third = upgrade(b.addr(), "", &[]).await;
            if shared {
                let (status, _, retry) = third.unwrap_err();
                assert_eq!((status, retry.as_deref()), (429, Some("1")), "the other worker counts the same bucket");
                assert_eq!(metric(&metrics(b.addr()).await, "upgrades_refused_429_total"), 1);
            } else {
                open.push(third.unwrap().0);
                open.push(upgrade(b.addr(), "", &[]).await.unwrap().0);
                assert_eq!(upgrade(b.addr(), "", &[]).await.unwrap_err().0, 429, "each worker its own bucket");
            }
            drop(open);
            a.stop().await;
            b.stop().await;
            tokio::time::sleep(Duration::from_millis(1100)).await; // the buckets fill again
        }
        // Redis not answering: each worker's own bucket decides.
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let mut config =
            loadgen_target::WorkerConfig::new(0, "127.0.0.1:0".parse().unwrap(), format!("redis://{dead}/"));
        config.conn_rate_per_ip = Some(2);
        let w = loadgen_target::Worker::start(config).await.unwrap();
        // The upgrade's status only (without Redis, no lgready would come).
        let status = |addr: SocketAddr| async move {
            match tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await {
                Ok((ws, r)) => (r.status().as_u16(), Some(ws)),
                Err(WsError::Http(r)) => (r.status().as_u16(), None),
                Err(e) => panic!("{e}"),
            }
        };
        let (first, second) = (status(w.addr()).await, status(w.addr()).await);
        assert_eq!((first.0, second.0), (101, 101));
        assert_eq!(status(w.addr()).await.0, 429, "the fallback still limits");
        drop((first, second));
        w.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_connection_rate_per_ip_answers_429_with_retry_after_unless_no_rate_limit() {
    let redis = redis();
    bounded(async {
        let w = worker(&redis, &[], |c| c.conn_rate_per_ip = Some(3)).await;
        let mut open = Vec::new();
        for _ in 0..3 {
            open.push(upgrade(w.addr(), "", &[]).await.unwrap().0);
        }
        let (status, body, retry) = upgrade(w.addr(), "", &[]).await.unwrap_err();
        assert_eq!((status, retry.as_deref()), (429, Some("1")), "{body}");
        assert!(body.contains("at most 3 per second"), "{body}");
        assert_eq!(metric(&metrics(w.addr()).await, "upgrades_refused_429_total"), 1);
        w.stop().await;
        let w = worker(&redis, &["no-rate-limit"], |c| c.conn_rate_per_ip = Some(3)).await;
        for _ in 0..10 {
            open.push(upgrade(w.addr(), "", &[]).await.unwrap().0);
        }
        w.stop().await;
    })
    .await;
}

#[tokio::test]
async fn sending_too_fast_closes_1008_unless_no_rate_limit() {
    let redis = redis();
    bounded(async {
        let w = worker(&redis, &[], |c| c.msg_rate = Some(5)).await;
        let (mut ws, _) = connect(w.addr(), "").await;
        for i in 0..20 {
            if ws.send(Message::text(format!("m{i}"))).await.is_err() {
                break;
            }
        }
        assert_eq!(close_code(&mut ws).await, Some(CloseCode::Policy));
        assert_eq!(metric(&metrics(w.addr()).await, "closed_message_rate_total"), 1);
        w.stop().await;
        let w = worker(&redis, &["no-rate-limit"], |c| c.msg_rate = Some(5)).await;
        let (mut ws, _) = connect(w.addr(), "").await;
        for i in 0..20 {
            ws.send(Message::text(format!("m{i}"))).await.unwrap();
        }
        answers_app_ping(&mut ws).await;
        close(ws).await;
        w.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_message_over_the_limit_closes_1009_unless_no_size_limit() {
    let redis = redis();
    bounded(async {
        let w = worker(&redis, &[], |c| c.max_message_bytes = 1024).await;
        let (mut ws, _) = connect(w.addr(), "").await;
        ws.send(Message::text("x".repeat(2000))).await.unwrap();
        assert_eq!(close_code(&mut ws).await, Some(CloseCode::Size));
        assert_eq!(metric(&metrics(w.addr()).await, "closed_too_big_total"), 1);
        w.stop().await;
        let w = worker(&redis, &["no-size-limit"], |c| c.max_message_bytes = 1024).await;
        let (mut ws, _) = connect(w.addr(), "").await;
        ws.send(Message::text("x".repeat(200_000))).await.unwrap();
        answers_app_ping(&mut ws).await;
        close(ws).await;
        w.stop().await;
    })
    .await;
}

/// A raw upgrade: the stream past the 101 and the `lgready` frame.
async fn raw_upgrade(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    let frame = read_frame(&mut s).await;
    assert_eq!(frame.0, 0x1, "the lgready text");
    s
}

/// One server frame: opcode and payload.
async fn read_frame(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut h)).await.expect("a frame").unwrap();
    let len = match h[1] & 0x7f {
        126 => {
            let mut l = [0u8; 2];
            s.read_exact(&mut l).await.unwrap();
            u16::from_be_bytes(l) as usize
        }
        l => l as usize,
    };
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).await.unwrap();
    (h[0] & 0x0f, payload)
}

/// A text frame, unmasked (a violation from a client) or masked with key 0.
fn text_frame(payload: &[u8], masked: bool) -> Vec<u8> {
    let mut f = vec![0x81, payload.len() as u8 | if masked { 0x80 } else { 0 }];
    if masked {
        f.extend([0, 0, 0, 0]);
    }
    f.extend(payload);
    f
}

#[tokio::test]
async fn violations_close_1002_and_1007_unless_lenient_frames_accepts_unmasked_frames() {
    let redis = redis();
    bounded(async {
        let w = worker(&redis, &[], |_| {}).await;
        let mut s = raw_upgrade(w.addr()).await;
        s.write_all(&text_frame(br#"{"type":"ping"}"#, false)).await.unwrap();
        let (op, payload) = read_frame(&mut s).await;
        assert_eq!((op, u16::from_be_bytes([payload[0], payload[1]])), (0x8, 1002), "unmasked: protocol error");
        let mut s = raw_upgrade(w.addr()).await;
        s.write_all(&text_frame(b"\xff\xfe", true)).await.unwrap();
        let (op, payload) = read_frame(&mut s).await;
        assert_eq!((op, u16::from_be_bytes([payload[0], payload[1]])), (0x8, 1007), "invalid UTF-8");
        assert_eq!(metric(&metrics(w.addr()).await, "closed_protocol_total"), 2);
        w.stop().await;
        let w = worker(&redis, &["lenient-frames"], |_| {}).await;
        let mut s = raw_upgrade(w.addr()).await;
        s.write_all(&text_frame(br#"{"type":"ping"}"#, false)).await.unwrap();
        let (op, payload) = read_frame(&mut s).await;
        assert_eq!(op, 0x1, "the unmasked ping is answered");
        assert!(String::from_utf8_lossy(&payload).contains("pong"));
        w.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_half_sent_upgrade_is_dropped_after_the_handshake_timeout_unless_no_handshake_timeout() {
    let redis = redis();
    bounded(async {
        let tweak = |c: &mut loadgen_target::WorkerConfig| c.handshake_timeout = Duration::from_millis(300);
        let w = worker(&redis, &[], tweak).await;
        let mut s = TcpStream::connect(w.addr()).await.unwrap();
        s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "closed by the server: {read:?}");
        assert_eq!(metric(&metrics(w.addr()).await, "handshake_timeouts_total"), 1);
        w.stop().await;
        let w = worker(&redis, &["no-handshake-timeout"], tweak).await;
        let mut s = TcpStream::connect(w.addr()).await.unwrap();
        s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let read = tokio::time::timeout(Duration::from_millis(1200), s.read(&mut buf)).await;
        assert!(read.is_err(), "still open after 4 handshake timeouts: {read:?}");
        drop(s);
        w.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_head_trickled_a_byte_at_a_time_is_cut_off_at_the_handshake_timeout() {
    // Found by the catalogue's slowloris scenario: the timeout used to restart on every
    // read, so a byte every 100 ms kept an upgrade open forever.
    let redis = redis();
    bounded(async {
        let tweak = |c: &mut loadgen_target::WorkerConfig| c.handshake_timeout = Duration::from_millis(400);
        let w = worker(&redis, &[], tweak).await;
        let mut s = TcpStream::connect(w.addr()).await.unwrap();
        let started = std::time::Instant::now();
        let mut closed_after = None;
        for byte in b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n".iter().cycle().take(40) {
            if s.write_all(&[*byte]).await.is_err() {
                closed_after = Some(started.elapsed());
                break;
            }
            let mut buf = [0u8; 64];
            if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await {
                closed_after = Some(started.elapsed());
                break;
            }
        }
        let after = closed_after.expect("the server closed the trickling connection within 4 s");
        assert!(after >= Duration::from_millis(350) && after < Duration::from_millis(1500), "{after:?}");
        assert_eq!(metric(&metrics(w.addr()).await, "handshake_timeouts_total"), 1);
        w.stop().await;
    })
    .await;
}

#[tokio::test]
async fn idle_connections_are_closed_unless_leak_idle() {
    let redis = redis();
    bounded(async {
        let tweak = |c: &mut loadgen_target::WorkerConfig| c.idle_timeout = Duration::from_millis(300);
        let w = worker(&redis, &[], tweak).await;
        let (mut ws, _) = connect(w.addr(), "").await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(close_code(&mut ws).await, Some(CloseCode::Normal), "idle timeout");
        w.stop().await;
        let w = worker(&redis, &["leak-idle"], tweak).await;
        let (mut ws, _) = connect(w.addr(), "").await;
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let m = metrics(w.addr()).await;
        assert_eq!((metric(&m, "connections_open"), metric(&m, "idle_closed_total")), (1, 0), "never reaped");
        assert!(next_text(&mut ws, Duration::from_millis(300)).await.is_none());
        w.stop().await;
    })
    .await;
}
