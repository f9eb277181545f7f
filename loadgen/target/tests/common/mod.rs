//! What the target's tests share: a real redis-server per test (a missing one fails
//! with the install hint), an in-process worker, a minimal HTTP client, WebSocket
//! clients written with tokio-tungstenite (not with loadgen), and time bounds.
#![allow(dead_code)] // each test binary uses its own part

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use loadgen_target::{EmbeddedRedis, Worker, WorkerConfig};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Every test ends within this.
pub const TEST_BOUND: Duration = Duration::from_secs(60);

/// Runs `f`, failing the test if it takes longer than [`TEST_BOUND`].
pub async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEST_BOUND, f).await.expect("the test took longer than its bound")
}

/// A redis-server of this test's own, on a free loopback port.
pub fn redis() -> EmbeddedRedis {
    match EmbeddedRedis::start() {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    }
}

/// An in-process worker 0 on 127.0.0.1, a free port, with these faults.
pub async fn worker(redis: &EmbeddedRedis, faults: &[&str], tweak: impl FnOnce(&mut WorkerConfig)) -> Worker {
    let mut config = WorkerConfig::new(0, "127.0.0.1:0".parse().unwrap(), redis.url());
    config.faults = loadgen_target::faults::parse_all(faults).unwrap();
    tweak(&mut config);
    Worker::start(config).await.expect("worker starts")
}

/// One HTTP/1.1 request with `Connection: close`: the status and the body.
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    raw(addr, format!("{head}{body}").as_bytes()).await
}

/// One HTTP/1.1 request with extra header lines (each ending in CRLF).
pub async fn http_with(addr: SocketAddr, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    raw(addr, format!("{head}{body}").as_bytes()).await
}

/// `POST /admin/faults` with `Authorization: Bearer TOKEN`: status and body as JSON.
pub async fn admin(addr: SocketAddr, token: &str, body: Value) -> (u16, Value) {
    let auth = format!("Authorization: Bearer {token}\r\n");
    let (status, text) = http_with(addr, "POST", "/admin/faults", &auth, &body.to_string()).await;
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}")))
}

/// Sends `bytes` as they are, reads the answer to the end: status and body.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut answer)).await.expect("an answer").ok();
    parse_response(&answer)
}

pub fn parse_response(answer: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(answer).to_string();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status: {text:?}"));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// POST /publish; the answer as JSON (asserting 200).
pub async fn publish(addr: SocketAddr, request: Value) -> Value {
    let (status, body) = http(addr, "POST", "/publish", &request.to_string()).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// A client upgraded at `/ws?QUERY`, past its `lgready` message (returned).
pub async fn connect(addr: SocketAddr, query: &str) -> (Client, Value) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?{query}")).await.expect("upgrade");
    let ready = next_text(&mut ws, Duration::from_secs(10)).await.expect("the ready message");
    let ready: Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["lgready"], 1, "{ready}");
    (ws, ready)
}

/// The next text message within `wait` (pings and pongs skipped), or none.
pub async fn next_text(ws: &mut Client, wait: Duration) -> Option<String> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return Some(t.to_string()),
            Ok(Some(Ok(Message::Close(f)))) => panic!("closed by the server: {f:?}"),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => panic!("connection failed: {e}"),
            Ok(None) | Err(_) => return None,
        }
    }
}

/// A received envelope: its JSON, its raw text, and when it arrived (Unix µs).
pub struct Received {
    pub json: Value,
    pub text: String,
    pub at_us: u64,
}

/// Up to `n` envelopes, each within `wait` of the previous one.
pub async fn envelopes(ws: &mut Client, n: usize, wait: Duration) -> Vec<Received> {
    let mut out = Vec::new();
    while out.len() < n {
        let Some(text) = next_text(ws, wait).await else { break };
        let at_us = loadgen_target::unix_us();
        let json: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["lgprobe"], 1, "{text}");
        out.push(Received { json, text, at_us });
    }
    out
}

pub fn seqs(r: &[Received]) -> Vec<u64> {
    r.iter().map(|r| r.json["seq"].as_u64().unwrap()).collect()
}

/// The value of one series in a /metrics text.
pub fn metric(text: &str, name: &str) -> u64 {
    let prefix = format!("loadgen_target_{name}{{");
    let line = text.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {name} in {text}"));
    line.rsplit_once(' ').unwrap().1.parse().unwrap()
}

pub async fn metrics(addr: SocketAddr) -> String {
    let (status, body) = http(addr, "GET", "/metrics", "").await;
    assert_eq!(status, 200);
    body
}

/// Waits until `cond` holds on the worker's metrics (bounded by `wait`).
pub async fn wait_metric(addr: SocketAddr, name: &str, wait: Duration, cond: impl Fn(u64) -> bool) -> u64 {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let v = metric(&metrics(addr).await, name);
        if cond(v) || tokio::time::Instant::now() >= deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Closes a client politely (best effort).
pub async fn close(mut ws: Client) {
    let _ = ws.close(None).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), async { while let Some(Ok(_)) = ws.next().await {} }).await;
}

/// Subscribers Redis counts on `channel` (PUBSUB NUMSUB).
pub async fn numsub(redis: &EmbeddedRedis, channel: &str) -> u64 {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let (_, n): (String, u64) = redis::cmd("PUBSUB").arg("NUMSUB").arg(channel).query_async(&mut c).await.unwrap();
    n
}
