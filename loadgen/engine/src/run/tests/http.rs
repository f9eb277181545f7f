//! HTTP/1.1 keep-alive polling on the engine: responses timed, cookies kept per
//! connection, `Retry-After` honoured, over plain TCP and TLS.

use std::sync::atomic::AtomicU64;

use super::*;
use crate::run::Protocol;

/// Smallest gap (ms) the retry server saw between a connection's 503 and its next
/// request (one test uses it).
static MIN_RETRY_GAP_MS: AtomicU64 = AtomicU64::new(u64::MAX);

/// How the HTTP test server answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Behaviour {
    /// A cookie on the first response, 200s after (length-delimited, then chunked).
    KeepAlive,
    /// The first answer is a 503 with `Retry-After: 1`, then as `KeepAlive`.
    RetryFirst,
    /// Reads requests, never answers.
    NeverAnswer,
    /// Answers the first request with `Connection: close` and closes.
    CloseAfterOne,
    /// Answers the first request with a body delimited by the end of the connection.
    CloseDelimited,
    /// As `KeepAlive`, each response 300 ms after its request.
    Slow,
    /// A cookie for requests without one; `Connection: close` on every second response
    /// of a connection.
    CookieThenClose,
}

/// Answers requests on one connection. `messages` counts the requests that carried the
/// cookie the first response set (every request but the first, if cookies work).
pub(super) fn serve_http(
    stream: &mut impl ServerStream,
    behaviour: Behaviour,
    stop: &AtomicBool,
    messages: &AtomicU64,
) {
    let retry_first = behaviour == Behaviour::RetryFirst;
    let mut buf = vec![0u8; 16_384];
    let mut pending = Vec::new();
    let mut served = 0u64;
    let mut refused_at: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") else {
            match stream.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return,
            }
            continue;
        };
        let head = String::from_utf8_lossy(&pending[..end]).into_owned();
        super::program::capture_identity(&head);
        pending.drain(..end + 4);
        assert!(head.starts_with("GET /poll"), "{head}");
        if head.lines().any(|l| l == "Cookie: queue=ticket-7") {
            messages.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(t) = refused_at.take() {
            MIN_RETRY_GAP_MS.fetch_min(t.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
        match behaviour {
            Behaviour::NeverAnswer => continue,
            Behaviour::CloseAfterOne => {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
                return;
            }
            Behaviour::CloseDelimited => {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\n\r\nuntil the end");
                return;
            }
            Behaviour::Slow => std::thread::sleep(Duration::from_millis(300)),
            Behaviour::CookieThenClose => {
                served += 1;
                let with_cookie = head.lines().any(|l| l == "Cookie: queue=ticket-7");
                let cookie = if with_cookie { "" } else { "Set-Cookie: queue=ticket-7\r\n" };
                let close = if served.is_multiple_of(2) { "Connection: close\r\n" } else { "" };
                let response = format!("HTTP/1.1 200 OK\r\n{cookie}{close}Content-Length: 2\r\n\r\nok");
                if stream.write_all(response.as_bytes()).is_err() || !close.is_empty() {
                    return;
                }
                continue;
            }
            Behaviour::KeepAlive | Behaviour::RetryFirst => {}
        }
        let response: &[u8] = if served == 0 && retry_first {
            refused_at = Some(Instant::now());
            b"HTTP/1.1 503 Busy\r\nRetry-After: 1\r\nSet-Cookie: queue=ticket-7\r\nContent-Length: 4\r\n\r\nwait"
        } else if served == 0 {
            b"HTTP/1.1 200 OK\r\nSet-Cookie: queue=ticket-7\r\nContent-Length: 9\r\n\r\nposition1"
        } else {
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nadmit\r\n0\r\n\r\n"
        };
        served += 1;
        if stream.write_all(response).is_err() {
            return;
        }
    }
}

fn http_config(server: &TestServer, connections: u32, hold_ms: u64, rate: MessageRate) -> RunConfig {
    let mut cfg = config(server, connections, hold_ms, Traffic::Echo { message_size: 64, rate });
    cfg.protocol = Protocol::Http1;
    cfg.targets[0].path = "/poll".into();
    cfg
}

#[test]
fn http_polling_times_every_response_and_keeps_cookies() {
    let server = TestServer::start(Mode::Http(Behaviour::KeepAlive));
    let out = go(&http_config(&server, 10, 1_000, MessageRate::PerConnection(20.0)));
    let m = &out.stats;
    assert_eq!((m.totals.attempted, m.totals.established, m.totals.failed), (10, 10, 0), "{:?}", m.errors);
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    assert_eq!(m.histogram(Metric::Handshake).len(), 0, "HTTP has no upgrade");
    // 20 polls/s per connection for about 1 s.
    assert!((150..=230).contains(&m.totals.messages_sent), "polls sent: {}", m.totals.messages_sent);
    // Including the poll in flight at the end: loadgen's close waits for its response.
    assert_eq!(m.totals.messages_received, m.totals.messages_sent, "every poll answered");
    assert_eq!(m.totals.unanswered, 0, "loadgen's own close cut no poll off");
    assert_eq!(m.histogram(Metric::MessageRtt).len(), m.totals.messages_received, "every response timed");
    assert_eq!(
        server.messages.load(Ordering::Relaxed),
        m.totals.messages_sent - 10,
        "every request after a connection's first carried the cookie it was given"
    );
    assert_eq!(m.open_at_end, 0);
}

#[test]
fn http_polling_honours_retry_after_and_counts_statuses() {
    let server = TestServer::start(Mode::Http(Behaviour::RetryFirst));
    let m = go(&http_config(&server, 4, 1_600, MessageRate::ClosedLoop)).stats;
    assert_eq!(m.totals.established, 4, "{:?}", m.errors);
    assert_eq!(m.errors.get("http_503").copied(), Some(4), "{:?}", m.errors);
    let gap = MIN_RETRY_GAP_MS.load(Ordering::Relaxed);
    assert!((990..1_500).contains(&gap), "the next poll waited for Retry-After: {gap} ms");
    assert!(m.totals.messages_received > 40, "closed loop resumed: {}", m.totals.messages_received);
}

#[test]
fn open_model_polls_go_to_idle_connections_and_over_tls() {
    let server = TestServer::start_tls(Mode::Http(Behaviour::KeepAlive), TestTls::new());
    let mut cfg = http_config(&server, 8, 1_000, MessageRate::Total(200.0));
    cfg.targets[0].tls = true;
    cfg.connect_rate = 1_000.0;
    let m = go(&cfg).stats;
    assert_eq!((m.totals.established, m.totals.failed), (8, 0), "{:?}", m.errors);
    assert_eq!(m.histogram(Metric::TlsHandshake).len(), 8, "https: TLS first");
    let dropped = m.errors.get("no_idle_connection_for_request").copied().unwrap_or(0);
    let unplaced = m.errors.get("no_open_connection_for_message").copied().unwrap_or(0);
    assert_eq!(m.totals.messages_sent + dropped + unplaced, 200, "R×T intended polls, each accounted: {:?}", m.errors);
    assert!(dropped + unplaced < 10, "8 idle pollers keep up with 200/s: {:?}", m.errors);
    assert_eq!(m.totals.messages_received, m.totals.messages_sent);
    assert_eq!(server.messages.load(Ordering::Relaxed) + 8, m.totals.messages_sent, "cookies over TLS too");
}

#[test]
fn http_polls_of_ending_connections_are_counted_never_lost() {
    // Never answered: each connection's response times out; the polls that came due
    // meanwhile are counted as not sent.
    let server = TestServer::start(Mode::Http(Behaviour::NeverAnswer));
    let m = go(&http_config(&server, 2, 1_200, MessageRate::PerConnection(20.0))).stats;
    assert_eq!(m.totals.established, 2, "{:?}", m.errors);
    assert_eq!(m.errors.get("http_response_timeout").copied(), Some(2), "{:?}", m.errors);
    let not_sent = m.errors.get("http_poll_not_sent").copied().unwrap_or(0);
    assert_eq!(m.totals.messages_sent, 2, "one request each, never answered");
    assert!(not_sent >= 20, "polls due during the 800 ms wait are accounted: {:?}", m.errors);

    // `Connection: close`: the response counts, and nothing is sent on the dead connection.
    let server = TestServer::start(Mode::Http(Behaviour::CloseAfterOne));
    let m = go(&http_config(&server, 4, 300, MessageRate::ClosedLoop)).stats;
    assert_eq!((m.totals.messages_sent, m.totals.messages_received), (4, 4), "{:?}", m.errors);
    assert_eq!(m.errors.get("http_connection_close").copied(), Some(4), "{:?}", m.errors);
    assert_eq!(m.errors.get("http_invalid_request"), None, "{:?}", m.errors);

    // A body delimited by the end of the connection is a complete, timed response.
    let server = TestServer::start(Mode::Http(Behaviour::CloseDelimited));
    let m = go(&http_config(&server, 4, 300, MessageRate::ClosedLoop)).stats;
    assert_eq!((m.totals.messages_sent, m.totals.messages_received), (4, 4), "{:?}", m.errors);
    assert_eq!(m.histogram(Metric::MessageRtt).len(), 4);
    assert_eq!(m.errors.get("http_connection_close").copied(), Some(4), "{:?}", m.errors);
}

#[test]
fn loadgen_closing_waits_for_the_poll_in_flight_within_the_close_timeout() {
    // Polls every 300 ms; the one in flight when the run ends is still answered.
    let server = TestServer::start(Mode::Http(Behaviour::Slow));
    let m = go(&http_config(&server, 2, 1_000, MessageRate::ClosedLoop)).stats;
    assert!(m.totals.messages_sent >= 6, "{}", m.totals.messages_sent);
    assert_eq!(m.totals.messages_received, m.totals.messages_sent, "{:?}", m.errors);
    assert_eq!((m.totals.unanswered, m.totals.dropped), (0, 0), "{:?}", m.errors);
    assert_eq!(m.errors.get("close_timeout"), None, "{:?}", m.errors);

    // A response that never comes is unanswered once the close timeout (500 ms) is
    // over: loadgen's own close, so not a drop.
    let server = TestServer::start(Mode::Http(Behaviour::NeverAnswer));
    let mut cfg = http_config(&server, 2, 300, MessageRate::ClosedLoop);
    cfg.handshake_timeout = Duration::from_secs(5);
    let m = go(&cfg).stats;
    assert_eq!((m.totals.messages_sent, m.totals.messages_received), (2, 0), "{:?}", m.errors);
    assert_eq!((m.totals.unanswered, m.totals.dropped), (2, 0), "{:?}", m.errors);
    assert_eq!(m.errors.get("close_timeout").copied(), Some(2), "{:?}", m.errors);
    assert_eq!(m.errors.get("http_response_timeout"), None, "{:?}", m.errors);
}

#[test]
fn pollers_the_server_closes_reconnect_and_keep_their_cookies() {
    let server = TestServer::start(Mode::Http(Behaviour::CookieThenClose));
    let mut cfg = http_config(&server, 3, 1_500, MessageRate::PerConnection(10.0));
    cfg.reconnect = Some(crate::run::ReconnectPolicy {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(50),
        limit: None,
        jitter: crate::run::Jitter::Full,
    });
    let m = go(&cfg).stats;
    let t = &m.totals;
    // Every second response closes: about 15 polls each, a reconnect after every other.
    assert!(t.reconnected >= 9, "{t:?} {:?}", m.errors);
    // Each drop came back, but for those still backing off when the run ended.
    assert!(t.dropped >= t.reconnected && t.dropped - t.reconnected <= 3, "{t:?}");
    assert_eq!(m.errors.get("http_connection_close").copied(), Some(t.dropped), "{:?}", m.errors);
    assert_eq!(m.histogram(Metric::Recover).len(), t.reconnected);
    assert_eq!(t.established, 3 + t.reconnected, "{t:?}");
    assert_eq!(
        server.messages.load(Ordering::Relaxed),
        t.messages_sent - 3,
        "only each poller's very first request lacked the cookie: the jar survived the reconnects"
    );
    assert_eq!(t.failed, 0, "{:?}", m.errors);
}

#[test]
fn https_handshake_has_a_deadline() {
    // A plain server behind an https:// URL never answers the ClientHello.
    let server = TestServer::start(Mode::Http(Behaviour::KeepAlive));
    let mut cfg = http_config(&server, 3, 1_500, MessageRate::ClosedLoop);
    cfg.targets[0].tls = true;
    cfg.tls = Some(TestTls::new().client);
    let m = go(&cfg).stats;
    assert_eq!((m.totals.established, m.totals.failed), (0, 3), "{:?}", m.errors);
    assert_eq!(m.errors.get("handshake_timeout").copied(), Some(3), "{:?}", m.errors);
}
