//! The engine end to end on loopback against a small blocking test server built from
//! the protocol crate's server-role pieces: counts, error kinds, open-model exactness,
//! and latency from intended time (a stall is not hidden by coordinated omission).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use loadgen_proto::decoder::{Decoded, Decoder, Role};
use loadgen_proto::encoder::{Encoder, MessageKind};
use loadgen_proto::frame::Opcode;
use loadgen_proto::handshake::accept_key;

use loadgen_tls::{TlsClientConfig, TlsServerConfig};

use super::{MessageRate, RunConfig, RunOutcome, Traffic, WsTarget, run};

mod accounting;
mod deflate;
mod http;
mod program;
mod reconnect;
mod tls;
use crate::schedule::Arrivals;
use crate::stats::Metric;
use tls::TlsStream;

#[derive(Clone, Copy)]
enum Mode {
    Echo,
    /// Echo, but stall `ms` once after `after` messages.
    StallOnce {
        after: u64,
        ms: u64,
    },
    /// Accept and read, never answer the upgrade.
    NoUpgrade,
    /// Accept and close at once.
    CloseImmediately,
    /// Accept, read the request, reset the connection (RST).
    Reset,
    /// Answer the upgrade with this status.
    Reject(u16),
    /// Raw TCP: echo every byte, no WebSocket.
    RawEcho,
    /// HTTP/1.1 (see `http::Behaviour`).
    Http(http::Behaviour),
    /// Echo with faults (see `accounting::Misbehaviour`).
    Misbehave(accounting::Misbehaviour),
    /// After the upgrade, JSON notification envelopes on two interleaved channels (see
    /// `program::json_pushes`), then echo.
    JsonPush,
    /// A server's handshake timeout: an upgrade request not complete `ms` after the
    /// accept is closed (FIN, or a reset with `reset`); the bytes each connection sent
    /// before its request was complete (or it was closed) go to `program::HEAD_BYTES`.
    HandshakeTimeout {
        ms: u64,
        reset: bool,
    },
    /// A server that replays what a reconnecting client missed (see
    /// `reconnect::Resume`).
    Resume(reconnect::Resume),
}

struct TestServer {
    addr: SocketAddrV4,
    stop: Arc<AtomicBool>,
    messages: Arc<AtomicU64>,
    /// WebSocket upgrades answered so far.
    upgrades: Arc<AtomicU64>,
    tls: Option<TestTls>,
}

/// The TLS side of a wss:// test server, and the client settings that trust it.
#[derive(Clone)]
struct TestTls {
    server: Arc<TlsServerConfig>,
    client: TlsClientConfig,
}

impl TestTls {
    /// A self-signed server for 127.0.0.1, and a client trusting it.
    fn new() -> Self {
        let server = TlsServerConfig::self_signed(["127.0.0.1"]).unwrap();
        let client = TlsClientConfig::builder().ca_pem(server.cert_pem()).build().unwrap();
        Self { server: Arc::new(server), client }
    }
}

impl TestServer {
    fn start(mode: Mode) -> Self {
        Self::start_with(mode, None)
    }

    /// A wss:// server (TLS on every accepted connection).
    fn start_tls(mode: Mode, tls: TestTls) -> Self {
        Self::start_with(mode, Some(tls))
    }

    fn start_with(mode: Mode, tls: Option<TestTls>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let std::net::SocketAddr::V4(addr) = listener.local_addr().unwrap() else { unreachable!() };
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let messages = Arc::new(AtomicU64::new(0));
        let upgrades = Arc::new(AtomicU64::new(0));
        let (s, m, u) = (stop.clone(), messages.clone(), upgrades.clone());
        let server_tls = tls.as_ref().map(|t| t.server.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (s, m, t, u) = (s.clone(), m.clone(), server_tls.clone(), u.clone());
                        std::thread::spawn(move || {
                            stream.set_nodelay(true).unwrap();
                            stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
                            match t {
                                Some(config) => serve(TlsStream::new(stream, &config), mode, &s, &m, &u),
                                None => serve(stream, mode, &s, &m, &u),
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        Self { addr, stop, messages, upgrades, tls }
    }

    fn target(&self) -> WsTarget {
        WsTarget { addr: self.addr, host: self.addr.to_string(), path: "/".into(), tls: self.tls.is_some() }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A server-side byte stream of the test server: plain TCP or TLS over it.
pub(super) trait ServerStream: Read + Write {
    /// Resets the connection (RST).
    fn reset(&self);
}

impl ServerStream for TcpStream {
    fn reset(&self) {
        let linger = libc::linger { l_onoff: 1, l_linger: 0 };
        // SAFETY: a valid socket fd and a properly sized option value.
        unsafe {
            use std::os::fd::AsRawFd;
            libc::setsockopt(
                self.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as u32,
            );
        }
    }
}

fn serve(mut stream: impl ServerStream, mode: Mode, stop: &AtomicBool, messages: &AtomicU64, upgrades: &AtomicU64) {
    if let Mode::CloseImmediately = mode {
        return;
    }
    if let Mode::Http(behaviour) = mode {
        http::serve_http(&mut stream, behaviour, stop, messages);
        return;
    }
    let mut buf = vec![0u8; 65536];
    if let Mode::RawEcho = mode {
        while !stop.load(Ordering::Relaxed) {
            match stream.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    messages.fetch_add(n as u64, Ordering::Relaxed);
                    if stream.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return,
            }
        }
        return;
    }
    let mut head = Vec::new();
    let accepted = Instant::now();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if let Mode::HandshakeTimeout { ms, reset } = mode
            && accepted.elapsed() >= Duration::from_millis(ms)
        {
            program::HEAD_BYTES.lock().unwrap().push(head.len());
            if reset {
                stream.reset();
            }
            return;
        }
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(_) if !stop.load(Ordering::Relaxed) => continue,
            Err(_) => return,
        }
    }
    if let Mode::HandshakeTimeout { .. } = mode {
        program::HEAD_BYTES.lock().unwrap().push(head.len());
    }
    match mode {
        Mode::Reset => {
            stream.reset();
            return;
        }
        Mode::NoUpgrade => {
            while !stop.load(Ordering::Relaxed) && !matches!(stream.read(&mut buf), Ok(0)) {}
            return;
        }
        Mode::Reject(status) => {
            let _ = write!(stream, "HTTP/1.1 {status} No\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n");
            return;
        }
        Mode::Misbehave(m) if m.refuse.is_some() => {
            let (status, retry) = m.refuse.unwrap();
            let _ = write!(stream, "HTTP/1.1 {status} No\r\nRetry-After: {retry}\r\nContent-Length: 0\r\n\r\n");
            return;
        }
        _ => {}
    }
    let text = String::from_utf8_lossy(&head);
    program::capture_identity(&text);
    let key = text.lines().find_map(|l| l.strip_prefix("Sec-WebSocket-Key: ")).unwrap().trim().to_owned();
    // permessage-deflate when offered: accepted as offered (context takeover or not).
    let offer = text.lines().find_map(|l| l.strip_prefix("Sec-WebSocket-Extensions: ")).map(str::to_owned);
    let no_takeover = offer.as_deref().is_some_and(|o| o.contains("client_no_context_takeover"));
    let extension = match &offer {
        Some(_) if no_takeover => {
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"
        }
        Some(_) => "Sec-WebSocket-Extensions: permessage-deflate\r\n",
        None => "",
    };
    let _ = write!(
        stream,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n{extension}\r\n",
        accept_key(&key)
    );
    let mut dec = Decoder::new(Role::Server, 1 << 20);
    let mut enc = Encoder::new(Role::Server, None);
    if offer.is_some() {
        dec.set_inflater(Some(loadgen_proto::deflate::Inflater::new(no_takeover)));
        enc.set_deflater(Some(loadgen_proto::deflate::Deflater::new(15, no_takeover, 1)));
    }
    let mut rng = rand_chacha::ChaCha8Rng::from_seed_u64(1);
    let mut out = Vec::new();
    let mut stalled = false;
    let upgrade = upgrades.fetch_add(1, Ordering::Relaxed) + 1;
    if let Mode::Resume(r) = mode {
        return reconnect::serve_resume(&mut stream, &mut enc, &text, r, upgrade);
    }
    let mut faults = match mode {
        Mode::Misbehave(m) => Some(accounting::Faults::new(m, upgrade)),
        _ => None,
    };
    if let Mode::JsonPush = mode {
        for text in program::json_pushes() {
            enc.message(&mut out, MessageKind::Text, text.as_bytes(), &mut rng).unwrap();
        }
        if stream.write_all(&out).is_err() {
            return;
        }
        out.clear();
    }
    while !stop.load(Ordering::Relaxed) {
        if let Some(f) = faults.as_mut() {
            match f.tick(&mut enc, &mut out, &mut rng) {
                accounting::Tick::Go => {}
                accounting::Tick::Reset => return stream.reset(),
                accounting::Tick::Closed => {
                    let _ = stream.write_all(&out);
                    // Wait for the client's close reply (or its FIN), then end.
                    let _ = stream.read(&mut buf);
                    return;
                }
            }
            if !out.is_empty() {
                if stream.write_all(&out).is_err() {
                    return;
                }
                out.clear();
            }
        }
        let n = match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(_) => continue,
        };
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let (used, item) = match dec.decode(rest) {
                Ok(step) => step,
                Err(e) => {
                    // A protocol violation: fail the connection with its close code
                    // (RFC 6455 §7.1.7), then read until the client closes too, so the
                    // close frame is not lost to a reset.
                    out.clear();
                    enc.close(&mut out, Some(e.close_code()), "", &mut rng).unwrap();
                    let _ = stream.write_all(&out);
                    let until = Instant::now() + Duration::from_secs(2);
                    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                        match stream.read(&mut buf) {
                            Ok(0) => return,
                            Ok(_) => {}
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                ) => {}
                            Err(_) => return,
                        }
                    }
                    return;
                }
            };
            rest = &rest[used..];
            match item {
                Some(Decoded::Binary(b)) => {
                    let count = messages.fetch_add(1, Ordering::Relaxed) + 1;
                    if let Mode::StallOnce { after, ms } = mode
                        && count > after
                        && !stalled
                    {
                        stalled = true;
                        std::thread::sleep(Duration::from_millis(ms));
                    }
                    let copies = faults.as_mut().map_or(1, |f| f.echoes(count));
                    for _ in 0..copies {
                        enc.message(&mut out, MessageKind::Binary, b, &mut rng).unwrap();
                    }
                }
                Some(Decoded::Text(t)) => enc.message(&mut out, MessageKind::Text, t.as_bytes(), &mut rng).unwrap(),
                Some(Decoded::Ping(p)) if faults.as_ref().is_none_or(|f| f.pongs()) => {
                    enc.control(&mut out, Opcode::Pong, p, &mut rng).unwrap()
                }
                Some(Decoded::Close { code, .. }) => {
                    if code == Some(program::CLOSE_CODE) {
                        program::CLOSES_SEEN.fetch_add(1, Ordering::Relaxed);
                    }
                    enc.close(&mut out, code, "", &mut rng).unwrap();
                    let _ = stream.write_all(&out);
                    return;
                }
                _ => {}
            }
        }
        if stream.write_all(&out).is_err() {
            return;
        }
        out.clear();
    }
}

trait SeedU64 {
    fn from_seed_u64(seed: u64) -> Self;
}

impl SeedU64 for rand_chacha::ChaCha8Rng {
    fn from_seed_u64(seed: u64) -> Self {
        <Self as rand_core::SeedableRng>::seed_from_u64(seed)
    }
}

/// A run against `server`. Holds are generous: the suite runs tests in parallel on two
/// cores, and the thread-per-connection test server is slow to upgrade under load.
fn config(server: &TestServer, connections: u32, hold_ms: u64, traffic: Traffic) -> RunConfig {
    RunConfig {
        protocol: super::Protocol::WebSocket,
        targets: vec![server.target()],
        connections,
        connect_rate: 5_000.0,
        close_rate: 20_000.0,
        hold: Duration::from_millis(hold_ms),
        traffic,
        message_arrivals: Arrivals::Constant,
        workers: 2,
        sources: Vec::new(),
        handshake_timeout: Duration::from_millis(800),
        close_timeout: Duration::from_millis(500),
        reply_timeout: Duration::from_secs(5),
        think_time: Duration::ZERO,
        reconnect: None,
        lag_threshold: Duration::from_millis(1),
        connect_lag_threshold: Duration::from_millis(10),
        max_message_size: 1 << 20,
        recv_buffers: 256,
        recv_buffer_size: 4096,
        on_open: Vec::new(),
        ping_interval: None,
        max_slots_per_ring: 1 << 20,
        tls: server.tls.as_ref().map(|t| t.client.clone()),
        deflate: None,
        echo_connections: None,
        cohorts: Vec::new(),
        timer_coalesce: Duration::ZERO,
        headers: Vec::new(),
        tokens: None,
        message_shape: None,
        server_id: None,
        connect_phases: Vec::new(),
        windows: Vec::new(),
        subprotocols: Vec::new(),
        clock_started: None,
    }
}

fn go(config: &RunConfig) -> RunOutcome {
    run(config, &AtomicBool::new(false)).expect("run completes")
}

#[test]
fn idle_connections_are_all_established() {
    let server = TestServer::start(Mode::Echo);
    let told = std::sync::Arc::new(std::sync::OnceLock::new());
    let before = std::time::Instant::now();
    let out = go(&RunConfig { clock_started: Some(told.clone()), ..config(&server, 200, 1_000, Traffic::Idle) });
    // The clock's start was told, after the run was asked for, and the run's length
    // is measured from it.
    let started = *told.get().expect("the start gate told the clock's start");
    assert!(started >= before);
    let since = started.elapsed();
    assert!(
        since >= out.elapsed && since - out.elapsed < std::time::Duration::from_millis(500),
        "{since:?} vs {:?}",
        out.elapsed
    );
    let m = &out.stats;
    assert_eq!((m.totals.attempted, m.totals.established, m.totals.failed), (200, 200, 0), "errors: {:?}", m.errors);
    assert_eq!(m.histogram(Metric::Connect).len(), 200);
    assert_eq!(m.histogram(Metric::Handshake).len(), 200);
    assert!(m.histogram(Metric::Handshake).min() >= m.histogram(Metric::Connect).min(), "handshake includes connect");
    assert_eq!(m.open_at_end, 0, "every connection closed at the end");
    assert!(m.errors.is_empty(), "{:?}", m.errors);
}

#[test]
fn closed_loop_echo_measures_every_round_trip() {
    let server = TestServer::start(Mode::Echo);
    let traffic = Traffic::Echo { message_size: 64, rate: MessageRate::ClosedLoop };
    let out = go(&config(&server, 20, 500, traffic));
    let m = &out.stats;
    assert_eq!(m.totals.established, 20);
    assert!(m.totals.messages_received > 100, "received {}", m.totals.messages_received);
    assert_eq!(m.histogram(Metric::MessageRtt).len(), m.totals.messages_received, "every echo timed");
    assert!(
        m.totals.messages_sent >= m.totals.messages_received
            && m.totals.messages_sent - m.totals.messages_received <= 20,
        "at most one in flight per connection"
    );
    assert_eq!(server.messages.load(Ordering::Relaxed), m.totals.messages_sent);
}

#[test]
fn open_model_rate_is_exact_and_everything_is_echoed() {
    let server = TestServer::start(Mode::Echo);
    let traffic = Traffic::Echo { message_size: 100, rate: MessageRate::Total(1_000.0) };
    let mut cfg = config(&server, 10, 1_000, traffic);
    cfg.connect_rate = 1_000.0; // ramp 10 ms, then 1 s of messages
    let out = go(&cfg);
    let m = &out.stats;
    let unplaced = m.errors.get("no_open_connection_for_message").copied().unwrap_or(0);
    assert_eq!(m.totals.messages_sent + unplaced, 1_000, "exactly R×T intended sends, errors {:?}", m.errors);
    // Messages start 10 ms after the first connect; a busy test server may upgrade a
    // few connections late (those messages are counted, never lost).
    assert!(unplaced < 50, "connections are open when messages start: {unplaced}");
    assert_eq!(m.totals.messages_received, m.totals.messages_sent, "all echoed");
}

#[test]
fn a_stall_shows_up_from_intended_time() {
    // One connection, 200 messages/s; the server stalls 300 ms once. Measured from
    // intended send times, every message scheduled during the stall is late: about 60
    // samples above 0 ms, many above 100 ms. A closed-loop client would record one.
    let server = TestServer::start(Mode::StallOnce { after: 50, ms: 300 });
    let traffic = Traffic::Echo { message_size: 64, rate: MessageRate::Total(200.0) };
    let mut cfg = config(&server, 1, 1_200, traffic);
    cfg.workers = 1;
    let out = go(&cfg);
    let m = &out.stats;
    assert!(m.histogram(Metric::MessageRtt).max() >= 250_000, "max {} µs", m.histogram(Metric::MessageRtt).max());
    let slow = m.histogram(Metric::MessageRtt).count_between(100_000, 10_000_000);
    assert!(slow >= 20, "{slow} samples ≥ 100 ms: the stall is not hidden");
    assert_eq!(m.totals.messages_received, m.totals.messages_sent);
}

#[test]
fn failures_are_counted_by_kind() {
    let closed_port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let std::net::SocketAddr::V4(a) = l.local_addr().unwrap() else { unreachable!() };
        a
    };
    let mut cfg = config(&TestServer::start(Mode::Echo), 10, 50, Traffic::Idle);
    cfg.targets = vec![WsTarget { addr: closed_port, host: "x".into(), path: "/".into(), tls: false }];
    let m = go(&cfg).stats;
    assert_eq!((m.totals.failed, m.errors.get("connect_refused").copied()), (10, Some(10)), "{:?}", m.errors);

    let cases: [(Mode, &str); 4] = [
        (Mode::NoUpgrade, "handshake_timeout"),
        (Mode::Reset, "connection_reset"),
        (Mode::Reject(429), "too_many_requests"),
        (Mode::Reject(401), "unauthorized"),
    ];
    for (mode, kind) in cases {
        let server = TestServer::start(mode);
        let t0 = Instant::now();
        // The hold outlasts the 800 ms handshake timeout.
        let m = go(&config(&server, 8, 1_200, Traffic::Idle)).stats;
        assert_eq!(m.totals.established, 0, "{kind}");
        assert_eq!(m.totals.failed, 8, "{kind}: {:?}", m.errors);
        assert_eq!(m.errors.get(kind).copied(), Some(8), "{kind}: {:?}", m.errors);
        assert!(t0.elapsed() < Duration::from_secs(5), "{kind}: bounded");
    }
    // A server that closes before the upgrade: FIN seen as such, or a reset when our
    // request crossed its close; both are counted, never lost.
    let server = TestServer::start(Mode::CloseImmediately);
    let m = go(&config(&server, 8, 300, Traffic::Idle)).stats;
    let closed = m.errors.get("closed_during_handshake").copied().unwrap_or(0);
    let reset = m.errors.get("connection_reset").copied().unwrap_or(0);
    assert_eq!((m.totals.failed, closed + reset), (8, 8), "{:?}", m.errors);
    // Handshakes still pending when the run ends are counted apart, not as failures.
    let server = TestServer::start(Mode::NoUpgrade);
    let m = go(&config(&server, 8, 50, Traffic::Idle)).stats;
    assert_eq!((m.totals.established, m.totals.failed), (0, 0));
    assert_eq!(m.errors.get("unfinished_at_end").copied(), Some(8), "{:?}", m.errors);
}

#[test]
fn stop_flag_ends_the_hold_early_and_closes_cleanly() {
    let server = TestServer::start(Mode::Echo);
    let cfg = config(&server, 50, 30_000, Traffic::Idle);
    let stop = AtomicBool::new(false);
    let t0 = Instant::now();
    let out = std::thread::scope(|s| {
        let h = s.spawn(|| run(&cfg, &stop));
        std::thread::sleep(Duration::from_millis(1_000));
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap().unwrap()
    });
    assert!(t0.elapsed() < Duration::from_secs(6), "stopped early: {:?}", t0.elapsed());
    let m = &out.stats;
    // Every attempt is accounted for: upgraded (then closed) or cut short by the stop.
    let unfinished = m.errors.get("unfinished_at_end").copied().unwrap_or(0);
    assert_eq!(m.totals.attempted, 50);
    assert_eq!(m.totals.established + m.totals.failed + unfinished, 50, "{:?}", m.errors);
    assert!(m.totals.established > 0);
    assert_eq!(m.open_at_end, 0, "every open connection closed");
}

#[test]
fn source_addresses_are_bound() {
    let server = TestServer::start(Mode::Echo);
    // A generous hold: the thread-per-connection server is slow on a busy machine.
    let mut cfg = config(&server, 20, 1_000, Traffic::Idle);
    cfg.sources = vec![Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3)];
    let m = go(&cfg).stats;
    assert_eq!(m.totals.established, 20, "{:?}", m.errors);
}

#[test]
fn several_rings_per_worker_share_one_thread() {
    // 30 slots per ring: each worker's 100 connections live in 4 rings; completions of
    // rings 1-3 must wake the thread sleeping on ring 0.
    let server = TestServer::start(Mode::Echo);
    let traffic = Traffic::Echo { message_size: 64, rate: MessageRate::ClosedLoop };
    let mut cfg = config(&server, 200, 3_000, traffic);
    cfg.max_slots_per_ring = 30;
    cfg.recv_buffers = 512;
    let m = go(&cfg).stats;
    assert_eq!((m.totals.established, m.totals.failed), (200, 0), "{:?}", m.errors);
    assert!(m.totals.messages_received >= 200, "every connection echoed: {}", m.totals.messages_received);
    assert_eq!(m.histogram(Metric::MessageRtt).len(), m.totals.messages_received);
    assert_eq!(m.open_at_end, 0);
}

#[test]
fn on_open_steps_gate_readiness_and_are_timed() {
    use super::OnOpenStep;
    let server = TestServer::start(Mode::Echo);
    let traffic = Traffic::Echo { message_size: 64, rate: MessageRate::ClosedLoop };
    let mut cfg = config(&server, 20, 1_000, traffic);
    cfg.on_open = vec![
        OnOpenStep { send: "auth token-1".into(), expect: None },
        OnOpenStep { send: "subscribe:unit-7".into(), expect: Some("subscribe:unit-7".into()) },
    ];
    let m = go(&cfg).stats;
    assert_eq!(m.totals.established, 20);
    assert_eq!(m.histogram(Metric::Ready).len(), 20, "every connection finished its steps");
    assert!(m.histogram(Metric::Ready).min() >= m.histogram(Metric::Handshake).min(), "ready comes after the upgrade");
    assert!(m.histogram(Metric::MessageRtt).len() > 20, "traffic started once ready");

    // A reply that never comes: no connection becomes ready, no probe is sent.
    cfg.on_open = vec![OnOpenStep { send: "join".into(), expect: Some("welcome".into()) }];
    let m = go(&cfg).stats;
    assert_eq!(
        (m.totals.established, m.histogram(Metric::Ready).len(), m.histogram(Metric::MessageRtt).len()),
        (20, 0, 0)
    );
}

#[test]
fn pings_are_timed_from_their_intended_time() {
    let server = TestServer::start(Mode::Echo);
    let mut cfg = config(&server, 10, 600, Traffic::Idle);
    cfg.ping_interval = Some(Duration::from_millis(50));
    let m = go(&cfg).stats;
    assert_eq!(m.totals.established, 10);
    // ~12 pings per connection over 600 ms; allow the first and last interval.
    assert!((80..=130).contains(&m.histogram(Metric::PingRtt).len()), "{} pongs", m.histogram(Metric::PingRtt).len());
    assert!(
        m.histogram(Metric::PingRtt).max() < 100_000,
        "loopback pongs are fast: {} µs",
        m.histogram(Metric::PingRtt).max()
    );
}

#[test]
fn raw_tcp_mode_echoes_probes_without_websocket() {
    let server = TestServer::start(Mode::RawEcho);
    let mut cfg = config(&server, 20, 1_000, Traffic::Echo { message_size: 100, rate: MessageRate::ClosedLoop });
    cfg.protocol = super::Protocol::RawTcp;
    let out = go(&cfg);
    let m = &out.stats;
    assert_eq!((m.totals.attempted, m.totals.established, m.totals.failed), (20, 20, 0), "errors: {:?}", m.errors);
    assert_eq!(m.histogram(Metric::Handshake).len(), 0, "raw TCP has no upgrade");
    let (sent, received) = (m.totals.messages_sent, m.totals.messages_received);
    assert!(received > 1_000, "closed loop ran: {received} round trips");
    // The close half-closes and drains: the message each connection had in flight
    // still comes back, so none is cut off by loadgen's own close.
    assert_eq!(sent, received, "every probe came back before the close");
    assert_eq!((m.totals.unanswered, m.totals.answered), (0, sent), "{:?}", m.totals);
    assert_eq!(m.histogram(Metric::MessageRtt).len(), received, "every echo is timed from its intended send");
    assert_eq!(server.messages.load(Ordering::Relaxed), sent * 100, "the server saw exactly the probe bytes");
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    assert_eq!(m.open_at_end, 0);
}

#[test]
fn raw_tcp_mode_refuses_websocket_only_features() {
    let server = TestServer::start(Mode::RawEcho);
    let mut cfg = config(&server, 1, 100, Traffic::Idle);
    cfg.protocol = super::Protocol::RawTcp;
    cfg.ping_interval = Some(Duration::from_secs(1));
    let err = run(&cfg, &AtomicBool::new(false)).expect_err("pings need WebSocket");
    assert!(err.to_string().contains("raw-TCP"), "{err}");
}

#[test]
fn progress_sees_every_second_once_in_order_while_the_run_lasts() {
    let server = TestServer::start(Mode::Echo);
    let cfg = config(&server, 20, 2_200, Traffic::Echo { message_size: 64, rate: MessageRate::Total(200.0) });
    let t0 = Instant::now();
    let mut seen: Vec<(u64, Duration)> = Vec::new();
    let out = super::run_with_progress(&cfg, &AtomicBool::new(false), &mut |s, _| seen.push((s.second, t0.elapsed())))
        .expect("run completes");
    let seconds: Vec<u64> = out.stats.seconds.iter().map(|s| s.second).collect();
    assert_eq!(seen.iter().map(|&(s, _)| s).collect::<Vec<_>>(), seconds, "each merged second, once, in order");
    assert!(seconds.len() >= 3, "{seconds:?}");
    // Live: the first second is handed over long before the run ends.
    assert!(seen[0].1 + Duration::from_millis(1_000) < out.elapsed, "first at {:?} of {:?}", seen[0].1, out.elapsed);
}

#[test]
fn only_the_echo_connections_carry_messages() {
    let server = TestServer::start(Mode::Echo);
    let traffic = Traffic::Echo { message_size: 64, rate: MessageRate::PerConnection(20.0) };
    let mut cfg = config(&server, 40, 1_000, traffic);
    cfg.echo_connections = Some(5);
    let m = go(&cfg).stats;
    assert_eq!(m.totals.established, 40, "every connection held: {:?}", m.errors);
    // 5 connections × 20/s × ~1 s (not 40 × 20).
    assert!((80..=120).contains(&m.totals.messages_sent), "sent {}", m.totals.messages_sent);
    assert_eq!(m.totals.messages_received, m.totals.messages_sent);
}
