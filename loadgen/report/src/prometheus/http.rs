//! The exporter's HTTP/1.x server on a std [`TcpListener`]: `GET /metrics` (or `HEAD`)
//! answers the latest exposition, in OpenMetrics text when the `Accept` header prefers
//! it, else in Prometheus text 0.0.4; other paths 404, other methods 405, malformed
//! requests 400, a request head over [`MAX_HEAD`] bytes 431. One request per connection
//! (`Connection: close`).
//!
//! Bounded against hostile clients: a client gets [`READ_TIMEOUT`] in all to send its
//! request head and [`WRITE_TIMEOUT`] per write; at most [`MAX_CLIENTS`] are served at
//! once (each on a short-lived thread), more are closed at once. Failures are never
//! reported: the client is dropped. The accept loop ends when [`Shared::stop`] is set and
//! a connection wakes it. This module does not build the exposition (see `snapshot`).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// Largest request head (request line and headers, terminator included) read.
pub(crate) const MAX_HEAD: usize = 8 * 1024;
/// Time a client has to send its whole request head.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_millis(1500);
/// Time one write of the response may block.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Clients served at once.
pub(crate) const MAX_CLIENTS: usize = 4;
/// Pause after a failed `accept` (e.g. out of file descriptors) so it cannot spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// `Content-Type` of the OpenMetrics text.
pub(crate) const OPENMETRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// `Content-Type` of the Prometheus text.
pub(crate) const PROMETHEUS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The latest exposition in both formats.
#[derive(Debug, Default)]
pub(crate) struct Texts {
    pub(crate) openmetrics: String,
    pub(crate) prometheus: String,
}

/// What the run's thread and the server share.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Swapped whole by `update`; the server clones the `Arc` and writes outside the lock.
    pub(crate) texts: Mutex<Arc<Texts>>,
    /// Set when the exporter is dropped.
    pub(crate) stop: AtomicBool,
    /// Clients being served.
    pub(crate) clients: AtomicUsize,
}

impl Shared {
    pub(crate) fn publish(&self, texts: Texts) {
        let new = Arc::new(texts);
        let old = std::mem::replace(&mut *self.texts.lock().unwrap_or_else(PoisonError::into_inner), new);
        drop(old);
    }

    fn latest(&self) -> Arc<Texts> {
        Arc::clone(&self.texts.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Why a request head could not be read.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("client closed, failed or timed out before its request head ended")]
    Gone,
    #[error("request head over {MAX_HEAD} bytes")]
    TooLarge,
}

/// The accept loop; returns once `shared.stop` is set and a connection arrives.
pub(crate) fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let accepted = listener.accept();
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        match accepted {
            Ok((stream, _)) => dispatch(stream, &shared),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => thread::sleep(ACCEPT_BACKOFF),
        }
    }
}

/// Decrements the client count when a client's thread ends, however it ends.
struct ClientSlot(Arc<Shared>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::AcqRel);
    }
}

fn dispatch(stream: TcpStream, shared: &Arc<Shared>) {
    if shared.clients.fetch_add(1, Ordering::AcqRel) >= MAX_CLIENTS {
        shared.clients.fetch_sub(1, Ordering::AcqRel);
        return; // dropping the stream closes it
    }
    let slot = ClientSlot(Arc::clone(shared));
    let spawned = thread::Builder::new().name("loadgen-metrics-client".into()).stack_size(64 * 1024).spawn(move || {
        handle(stream, &slot.0);
        drop(slot);
    });
    // On a failed spawn the closure, with the stream and the slot, is dropped.
    drop(spawned);
}

fn handle(mut stream: TcpStream, shared: &Shared) {
    if stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_err() {
        return;
    }
    let response = match read_head(&mut stream) {
        Ok(head) => respond(&head, shared),
        Err(ReadError::TooLarge) => Response::plain(431, "Request Header Fields Too Large", "request head too large\n"),
        Err(ReadError::Gone) => return,
    };
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        response.status,
        response.reason,
        response.content_type,
        response.body.len()
    );
    if response.status == 405 {
        head.push_str("Allow: GET, HEAD\r\n");
    }
    head.push_str("\r\n");
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    if !response.head_only && stream.write_all(response.body.as_bytes()).is_err() {
        return;
    }
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
}

/// Reads up to the end of the request head (`\r\n\r\n`, or `\n\n` from lax clients).
fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, ReadError> {
    let deadline = Instant::now() + READ_TIMEOUT;
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = head_end(&head) {
            head.truncate(end);
            return Ok(head);
        }
        if head.len() >= MAX_HEAD {
            return Err(ReadError::TooLarge);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Err(ReadError::Gone);
        }
        let want = (MAX_HEAD - head.len()).min(chunk.len());
        match stream.read(&mut chunk[..want]) {
            Ok(0) => return Err(ReadError::Gone),
            Ok(n) => head.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(ReadError::Gone),
        }
    }
}

fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    body: Body,
    head_only: bool,
}

enum Body {
    Static(&'static str),
    Metrics(Arc<Texts>, bool),
}

impl Body {
    fn as_bytes(&self) -> &[u8] {
        match self {
            Body::Static(s) => s.as_bytes(),
            Body::Metrics(t, true) => t.openmetrics.as_bytes(),
            Body::Metrics(t, false) => t.prometheus.as_bytes(),
        }
    }

    fn len(&self) -> usize {
        self.as_bytes().len()
    }
}

impl Response {
    fn plain(status: u16, reason: &'static str, body: &'static str) -> Self {
        Response {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            body: Body::Static(body),
            head_only: false,
        }
    }
}

fn bad_request() -> Response {
    Response::plain(400, "Bad Request", "bad request\n")
}

/// The response to a complete request head.
fn respond(head: &[u8], shared: &Shared) -> Response {
    let Ok(head) = std::str::from_utf8(head) else { return bad_request() };
    let mut lines = head.lines();
    let Some(request_line) = lines.next() else { return bad_request() };
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return bad_request();
    };
    let token =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token(method) || !target.starts_with('/') || !matches!(version, "HTTP/1.0" | "HTTP/1.1") {
        return bad_request();
    }
    let mut accept = String::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else { return bad_request() };
        if !token(name) {
            return bad_request();
        }
        if name.eq_ignore_ascii_case("accept") {
            accept.push_str(value);
            accept.push(',');
        }
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    if path != "/metrics" {
        return Response::plain(404, "Not Found", "not found: try /metrics\n");
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Response::plain(405, "Method Not Allowed", "method not allowed\n"),
    };
    let openmetrics = wants_openmetrics(&accept);
    let content_type = if openmetrics { OPENMETRICS_TYPE } else { PROMETHEUS_TYPE };
    Response { status: 200, reason: "OK", content_type, body: Body::Metrics(shared.latest(), openmetrics), head_only }
}

/// Whether an `Accept` value prefers OpenMetrics text to Prometheus text: its best `q`
/// for `application/openmetrics-text` is above 0 and not below that of `text/plain`.
pub(crate) fn wants_openmetrics(accept: &str) -> bool {
    let (mut om, mut text) = (0.0f32, 0.0f32);
    for range in accept.split(',') {
        let mut params = range.split(';');
        let media = params.next().unwrap_or("").trim();
        let mut q = 1.0f32;
        for param in params {
            if let Some((k, v)) = param.split_once('=')
                && k.trim().eq_ignore_ascii_case("q")
            {
                q = v.trim().parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q)).unwrap_or(0.0);
            }
        }
        if media.eq_ignore_ascii_case("application/openmetrics-text") {
            om = om.max(q);
        } else if media.eq_ignore_ascii_case("text/plain") {
            text = text.max(q);
        }
    }
    om > 0.0 && om >= text
}
