//! The plain HTTP side of a worker's port, and the routing of every new connection:
//! each request head is read (up to 16 KiB, 10 s), and a WebSocket upgrade is handed to
//! [`crate::ws`] with the bytes read so far; anything else is answered here, keeping
//! the connection alive between requests (HTTP/1.1 unless `Connection: close`).
//!
//! Routes: `GET /healthz` (JSON: status, worker, Redis state, counts), `GET /metrics`
//! (Prometheus text), `POST /publish` ([`crate::publish`]), `POST /reminders`, `GET
//! /reminders` and `POST /shifts` ([`crate::reminders`]), `GET` and `POST
//! /admin/faults` ([`crate::control`]; 401 without the token, 403 with admin off). Errors are one-line JSON
//! `{"error": "..."}`: 400 malformed, 404 unknown path, 405 wrong method (with
//! `Allow`), 411 no length, 413 body too large, 426 `/ws` without an upgrade, 431 head
//! too large, 503 Redis unavailable. Nothing a client sends makes a worker panic.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::metrics::Metrics;
use crate::prefixed::Prefixed;
use crate::publish::{self, PublishError};
use crate::worker::State;

/// Largest request head.
const MAX_HEAD: usize = 16 * 1024;

/// What the router needs of a request head.
#[derive(Debug)]
struct Head {
    method: String,
    path: String,
    query: Option<String>,
    content_length: Option<usize>,
    chunked: bool,
    keep_alive: bool,
    upgrade: bool,
    authorization: Option<String>,
}

fn parse_head(bytes: &[u8]) -> Result<Head, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err("incomplete request head".into()),
        Err(e) => return Err(format!("malformed request head: {e}")),
    }
    let method = req.method.unwrap_or_default().to_string();
    let target = req.path.unwrap_or_default();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.to_string(), None),
    };
    let mut head = Head {
        method,
        path,
        query,
        content_length: None,
        chunked: false,
        keep_alive: req.version == Some(1),
        upgrade: false,
        authorization: None,
    };
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).unwrap_or("").trim();
        let lower = value.to_ascii_lowercase();
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = value.parse::<usize>().map_err(|_| format!("invalid Content-Length {value:?}"))?;
            if head.content_length.is_some_and(|m| m != n) {
                return Err("conflicting Content-Length headers".into());
            }
            head.content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = true;
        } else if h.name.eq_ignore_ascii_case("connection") {
            if lower.split(',').any(|t| t.trim() == "close") {
                head.keep_alive = false;
            } else if lower.split(',').any(|t| t.trim() == "keep-alive") {
                head.keep_alive = true;
            }
        } else if h.name.eq_ignore_ascii_case("authorization") {
            head.authorization = Some(value.to_string());
        } else if h.name.eq_ignore_ascii_case("upgrade") {
            head.upgrade = lower.split(',').any(|t| t.trim() == "websocket");
        }
    }
    Ok(head)
}

/// A response to write.
#[derive(Debug)]
pub(crate) struct Response {
    status: u16,
    content_type: &'static str,
    extra: String,
    body: String,
}

impl Response {
    fn json(status: u16, body: String) -> Self {
        Self { status, content_type: "application/json", extra: String::new(), body: body + "\n" }
    }

    pub(crate) fn error(status: u16, why: &str) -> Self {
        Self::json(status, serde_json::json!({ "error": why }).to_string())
    }

    fn with_header(mut self, extra: impl Into<String>) -> Self {
        self.extra = extra.into();
        self
    }

    pub(crate) fn bytes(&self, keep_alive: bool) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            411 => "Length Required",
            413 => "Content Too Large",
            426 => "Upgrade Required",
            431 => "Request Header Fields Too Large",
            503 => "Service Unavailable",
            _ => "Error",
        };
        let connection = if keep_alive { "" } else { "Connection: close\r\n" };
        format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}{connection}\r\n{}",
            self.status,
            self.content_type,
            self.body.len(),
            self.extra,
            self.body
        )
        .into_bytes()
    }
}

fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Reads more bytes into `buf`: false at EOF, error, timeout or worker shutdown. The
/// whole request head must have come by `deadline` (the handshake timeout from when
/// its first read began), however the bytes trickle in: a client sending one byte a
/// second (slowloris) is cut off like one sending nothing. No deadline under
/// `no-handshake-timeout`.
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>, state: &State, deadline: tokio::time::Instant) -> bool {
    let mut shutdown = state.shutdown.clone();
    let mut chunk = [0u8; 8192];
    let bounded = !state.faults.get().no_handshake_timeout;
    let read = async {
        if bounded {
            tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await.ok()
        } else {
            Some(stream.read(&mut chunk).await)
        }
    };
    tokio::select! {
        r = read => match r {
            Some(Ok(n)) if n > 0 => {
                buf.extend_from_slice(&chunk[..n]);
                true
            }
            None => {
                Metrics::inc(&state.metrics.handshake_timeouts);
                false
            }
            _ => false,
        },
        _ = crate::worker::stopped(&mut shutdown) => false,
    }
}

/// Serves one accepted connection to its end.
pub(crate) async fn serve(mut stream: TcpStream, peer: IpAddr, state: Arc<State>) {
    let mut buf: Vec<u8> = Vec::with_capacity(2048);
    loop {
        let deadline = tokio::time::Instant::now() + state.config.handshake_timeout;
        let head_len = loop {
            if let Some(n) = head_end(&buf) {
                break n;
            }
            if buf.len() > MAX_HEAD {
                let r = Response::error(431, "request head larger than 16 KiB");
                let _ = stream.write_all(&r.bytes(false)).await;
                return;
            }
            if !read_more(&mut stream, &mut buf, &state, deadline).await {
                return;
            }
        };
        let head = match parse_head(&buf[..head_len]) {
            Ok(h) => h,
            Err(why) => {
                let _ = stream.write_all(&Response::error(400, &why).bytes(false)).await;
                return;
            }
        };
        if head.upgrade && head.method == "GET" {
            if head.path == "/ws" {
                crate::ws::serve(Prefixed::new(buf, stream), head.query, peer, state).await;
            } else if head.path == "/publish" {
                crate::ws_publish::serve(Prefixed::new(buf, stream), head.query, peer, state).await;
            } else {
                Metrics::inc(&state.metrics.upgrades_failed);
                let why = format!("no WebSocket endpoint at {}; upgrade at /ws, or /publish to publish", head.path);
                let _ = stream.write_all(&Response::error(404, &why).bytes(false)).await;
            }
            return;
        }
        let len = match (head.content_length, head.chunked) {
            (_, true) => {
                let r = Response::error(411, "chunked request bodies are not accepted; send Content-Length");
                let _ = stream.write_all(&r.bytes(false)).await;
                return;
            }
            (Some(n), _) => n,
            (None, _) => 0,
        };
        if len > state.config.max_body_bytes {
            let why = format!("request body of {len} bytes is larger than {} bytes", state.config.max_body_bytes);
            let _ = stream.write_all(&Response::error(413, &why).bytes(false)).await;
            return;
        }
        // The body, up to 64 KiB, gets a deadline of its own, as long as the head's.
        let body_deadline = tokio::time::Instant::now() + state.config.handshake_timeout;
        while buf.len() < head_len + len {
            if !read_more(&mut stream, &mut buf, &state, body_deadline).await {
                return;
            }
        }
        let response = route(&head, &buf[head_len..head_len + len], &state).await;
        Metrics::inc(&state.metrics.http_requests);
        let keep_alive = head.keep_alive && !*state.shutdown.borrow();
        if stream.write_all(&response.bytes(keep_alive)).await.is_err() || !keep_alive {
            return;
        }
        buf.drain(..head_len + len);
    }
}

async fn route(head: &Head, body: &[u8], state: &State) -> Response {
    let m = head.method.as_str();
    match (head.path.as_str(), m) {
        ("/healthz", "GET") => healthz(state),
        ("/metrics", "GET") => {
            let (breaker, opened) = state.publisher.breaker();
            state.metrics.breaker_state.store(breaker.gauge(), std::sync::atomic::Ordering::Relaxed);
            state.metrics.breaker_opened.store(opened, std::sync::atomic::Ordering::Relaxed);
            Response {
                status: 200,
                content_type: "text/plain; version=0.0.4",
                extra: String::new(),
                body: state.metrics.render(state.config.id),
            }
        }
        ("/publish", "POST") => match publish::parse_request(body) {
            Err(e) => Response::error(400, &e.to_string()),
            Ok(req) => match state.publisher.publish(&req, &state.metrics).await {
                Ok(p) => Response::json(200, serde_json::to_string(&p).expect("serializes")),
                Err(e @ PublishError::Invalid(_)) => Response::error(400, &e.to_string()),
                Err(e @ PublishError::Redis(_)) => Response::error(503, &e.to_string()),
                Err(e @ PublishError::Open(wait)) => Response::error(503, &e.to_string())
                    .with_header(format!("Retry-After: {}\r\n", crate::limits::retry_after_secs(wait))),
            },
        },
        ("/reminders" | "/shifts", "POST") => schedule_reminder(head, body, state).await,
        ("/reminders", "GET") => match crate::reminders::waiting(&state.publisher).await {
            Ok(v) => Response::json(200, v.to_string()),
            Err(e) => Response::error(503, &e.to_string()),
        },
        ("/reminders", _) => Response::error(405, &format!("{m} not allowed on /reminders; use GET or POST"))
            .with_header("Allow: GET, POST\r\n"),
        ("/shifts", _) => {
            Response::error(405, &format!("{m} not allowed on /shifts; use POST")).with_header("Allow: POST\r\n")
        }
        ("/admin/faults", "GET" | "POST") => admin(head, body, state).await,
        ("/admin/faults", _) => Response::error(405, &format!("{m} not allowed on /admin/faults; use GET or POST"))
            .with_header("Allow: GET, POST\r\n"),
        ("/healthz" | "/metrics", _) => {
            Response::error(405, &format!("{m} not allowed on {}; use GET", head.path)).with_header("Allow: GET\r\n")
        }
        ("/publish", _) => {
            Response::error(405, &format!("{m} not allowed on /publish; use POST")).with_header("Allow: POST\r\n")
        }
        ("/ws", _) => Response::error(426, "/ws is a WebSocket endpoint: send an upgrade request")
            .with_header("Upgrade: websocket\r\n"),
        (path, _) => {
            let routes = "/ws, /healthz, /metrics, /publish, /reminders, /shifts, /admin/faults";
            Response::error(404, &format!("no route {path}; routes: {routes}"))
        }
    }
}

/// `POST /reminders` or `POST /shifts`: validates, stores the occurrences in Redis and
/// wakes this worker's scheduler.
async fn schedule_reminder(head: &Head, body: &[u8], state: &State) -> Response {
    let now = crate::unix_us();
    let parsed = if head.path == "/shifts" {
        crate::reminders::parse_shift(body, now)
    } else {
        crate::reminders::parse_reminder(body, now)
    };
    let schedule = match parsed {
        Ok(s) => s,
        Err(why) => return Response::error(400, &why),
    };
    match crate::reminders::schedule(&state.publisher, &schedule, state.config.id).await {
        Ok(done) => {
            Metrics::add(&state.metrics.reminders_scheduled, u64::from(done.count));
            state.reminders_wake.notify_one();
            Response::json(200, serde_json::to_string(&done).expect("serializes"))
        }
        Err(e) => Response::error(503, &e.to_string()),
    }
}

/// `/admin/faults`: the fault list in force (GET), or a change to it for every worker
/// (POST).
async fn admin(head: &Head, body: &[u8], state: &State) -> Response {
    let Some(token) = state.config.admin_token.as_deref() else {
        return Response::error(403, "admin is off: this worker has no admin token (--admin-token)");
    };
    if !crate::control::authorized(head.authorization.as_deref(), token) {
        return Response::error(401, "/admin/faults needs Authorization: Bearer <the admin token>")
            .with_header("WWW-Authenticate: Bearer\r\n");
    }
    let shown = |list: &[crate::faults::Fault]| list.iter().map(ToString::to_string).collect::<Vec<_>>();
    if head.method == "GET" {
        return Response::json(200, serde_json::json!({ "faults": shown(&state.faults.list()) }).to_string());
    }
    let change = match crate::control::parse_request(body) {
        Ok(c) => c,
        Err(why) => return Response::error(400, &why),
    };
    let list = change.apply(&state.faults.list());
    match crate::control::store_and_announce(&state.publisher, &list).await {
        Ok(heard) => {
            state.faults.set(&list);
            Response::json(200, serde_json::json!({ "faults": shown(&list), "workers_notified": heard }).to_string())
        }
        Err(e) => Response::error(503, &e.to_string()),
    }
}

fn healthz(state: &State) -> Response {
    let m = &state.metrics;
    let body = serde_json::json!({
        "status": "ok",
        "worker": state.config.id,
        "pid": std::process::id(),
        "redis": if m.redis_up() { "up" } else { "down" },
        "redis_addr": state.endpoint.addr(),
        "connections": m.connections_open.load(std::sync::atomic::Ordering::Relaxed),
        "subscriptions": m.subscriptions.load(std::sync::atomic::Ordering::Relaxed),
        "breaker": state.publisher.breaker().0.name(),
    });
    Response::json(200, body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_parsed_and_refused_with_reasons() {
        let h = parse_head(b"POST /publish?x=1 HTTP/1.1\r\nContent-Length: 12\r\nConnection: close\r\n\r\n").unwrap();
        assert_eq!((h.method.as_str(), h.path.as_str(), h.query.as_deref()), ("POST", "/publish", Some("x=1")));
        assert_eq!((h.content_length, h.keep_alive, h.upgrade), (Some(12), false, false));
        let h = parse_head(b"GET /ws HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\r\n").unwrap();
        assert!(h.upgrade && h.keep_alive);
        assert!(!parse_head(b"GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
        assert!(parse_head(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n").unwrap_err().contains("Content-Length"));
        assert!(parse_head(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n").is_err());
        assert!(parse_head(b"\x00\x01 nonsense\r\n\r\n").unwrap_err().starts_with("malformed"));
    }

    #[test]
    fn responses_are_framed() {
        let r = Response::error(405, "no").with_header("Allow: GET\r\n");
        let text = String::from_utf8(r.bytes(false)).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\nContent-Length: 15\r\nAllow: GET\r\n\
             Connection: close\r\n\r\n{\"error\":\"no\"}\n"
        );
    }
}
