//! Faults on real loopback sockets (`ServeConfig::faults`), and the refusal of a port
//! held by another socket. Clients are the blocking ones of `tests` (proto `Client`
//! over `std::net`) or plain `TcpStream`s that write an upgrade request by hand. Every
//! read has a timeout; timings are asserted with wide margins (a shared 2-core box).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use loadgen_proto::{MessageKind, Opcode};

use super::tests::{Got, IO_TIMEOUT, Peer, raw_exchange, serve, unix_us, wait_all_closed};
use super::{Fault, Mode, ServeConfig, ServeError, ServeProtocol, ServerHandle, Summary, start};
use crate::payload::Probe;

const UPGRADE: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

fn faults(specs: &[&str]) -> Vec<Fault> {
    specs.iter().map(|s| s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))).collect()
}

fn with_faults(protocol: ServeProtocol, mode: Mode, specs: &[&str]) -> ServerHandle {
    serve(ServeConfig { protocol, mode, faults: faults(specs), ..ServeConfig::default() })
}

fn stop(server: ServerHandle) -> Summary {
    server.stop();
    server.join()
}

fn stream(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// A plain stream that completed the upgrade (the 101 read whole).
fn upgraded_stream(addr: SocketAddr) -> TcpStream {
    let mut s = stream(addr);
    s.write_all(UPGRADE).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            Ok(_) => panic!("EOF during the upgrade: {:?}", String::from_utf8_lossy(&head)),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("upgrade: {e}"),
        }
    }
    assert!(head.starts_with(b"HTTP/1.1 101 "), "{}", String::from_utf8_lossy(&head));
    s
}

/// Reads until the stream ends; the error kind that ended it (`None`: a clean EOF).
fn read_until_end(s: &mut TcpStream) -> (Vec<u8>, Option<ErrorKind>) {
    let (mut all, mut buf) = (Vec::new(), [0u8; 4096]);
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (all, None),
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return (all, Some(e.kind())),
        }
    }
}

#[test]
fn stall_delays_echoes_by_up_to_the_stall() {
    let server = with_faults(ServeProtocol::WebSocket, Mode::Echo, &["stall=400ms/800ms"]);
    let mut peer = Peer::connect(server.addr());
    let (mut worst, mut echoes) = (Duration::ZERO, 0);
    let end = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < end {
        let sent = Instant::now();
        peer.send(MessageKind::Text, b"tick");
        assert_eq!(peer.next(), Got::Text("tick".into()));
        worst = worst.max(sent.elapsed());
        echoes += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(worst >= Duration::from_millis(250), "an echo sent during a stall waits for its end: {worst:?}");
    assert!(worst < Duration::from_millis(1500), "{worst:?}");
    let s = stop(server);
    assert!(s.stalls >= 1 && s.stalls <= 2, "{s:?}");
    assert_eq!((s.messages_in, s.messages_out), (echoes, echoes), "nothing lost, only late");
    assert_eq!(s.faults, ["stall=400ms/800ms"]);
}

/// Push stamps are intended publish times: a stall shows as latency (arrival − stamp),
/// and every message due during it is sent afterwards (rate × time, no gap in seq).
#[test]
fn push_stamps_are_intended_times_so_a_stall_shows_and_nothing_is_skipped() {
    const RATE: f64 = 1_000.0;
    let mode = Mode::Push { rate: RATE, message_size: 64 };
    let server = with_faults(ServeProtocol::WebSocket, mode, &["stall=1200ms/2s"]);
    let mut peer = Peer::connect(server.addr());
    let (mut first, mut last_seq, mut in_window, mut worst_us) = (None::<u64>, None::<u64>, 0u64, 0u64);
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < give_up, "pushes stopped coming");
        let Got::Binary(payload) = peer.next() else { panic!("pushes are binary") };
        let arrival = unix_us();
        let p = Probe::decode(&payload).expect("a probe payload");
        let s0 = *first.get_or_insert(p.sent_unix_us);
        assert_eq!(p.seq, last_seq.map_or(0, |l| l + 1), "no sequence gap (nothing dropped or skipped)");
        last_seq = Some(p.seq);
        let expected = s0 + (p.seq as f64 * 1e6 / RATE) as u64;
        assert!(p.sent_unix_us.abs_diff(expected) <= 1, "stamp k = base + k/rate: {} vs {expected}", p.sent_unix_us);
        worst_us = worst_us.max(arrival.saturating_sub(p.sent_unix_us));
        let at = p.sent_unix_us - s0;
        in_window += u64::from((500_000..2_500_000).contains(&at));
        if at >= 3_000_000 {
            break;
        }
    }
    assert!((1_999..=2_001).contains(&in_window), "{in_window} stamps in 2 s at {RATE}/s");
    assert!((900_000..2_000_000).contains(&worst_us), "the worst delivery latency is about the stall: {worst_us} µs");
    let s = stop(server);
    assert!(s.stalls >= 1 && s.push_dropped == 0, "{s:?}");
}

#[test]
fn close_after_sends_going_away_or_fin_in_raw() {
    let server = with_faults(ServeProtocol::WebSocket, Mode::Echo, &["close-after=300ms"]);
    let opened = Instant::now();
    let mut peer = Peer::connect(server.addr());
    assert_eq!(peer.next(), Got::Closed(Some(1001)));
    let waited = opened.elapsed();
    assert!(waited >= Duration::from_millis(250) && waited < Duration::from_secs(3), "{waited:?}");
    assert_eq!(peer.next(), Got::Eof, "TCP closes after the close handshake");
    wait_all_closed(&server);
    let s = stop(server);
    assert_eq!((s.closed_by_fault, s.closes_in, s.aborted), (1, 1, 0), "{s:?}");

    let server = with_faults(ServeProtocol::RawTcp, Mode::Echo, &["close-after=200ms"]);
    let mut s = stream(server.addr());
    s.write_all(b"abc").unwrap();
    let (echoed, error) = read_until_end(&mut s);
    assert_eq!((echoed.as_slice(), error), (&b"abc"[..], None), "the echo, then a FIN");
    assert_eq!(stop(server).closed_by_fault, 1);
}

/// A connection's fault timer stays with that connection: one that left early leaves
/// a stale timer in the wheel, which must not close the next connection given the
/// same slab entry (a new generation) before its own time.
#[test]
fn a_stale_close_timer_does_not_close_the_next_connection_in_its_slot() {
    let server = with_faults(ServeProtocol::WebSocket, Mode::Echo, &["close-after=700ms"]);
    let first = upgraded_stream(server.addr());
    drop(first);
    wait_all_closed(&server);
    // The first connection's timer (due ≈ 700 ms after it opened) is still in the wheel.
    std::thread::sleep(Duration::from_millis(350));
    let opened = Instant::now();
    let mut peer = Peer::connect(server.addr());
    assert_eq!(peer.next(), Got::Closed(Some(1001)));
    let waited = opened.elapsed();
    assert!(waited >= Duration::from_millis(600), "closed by its own timer, not the stale one: {waited:?}");
    assert_eq!(peer.next(), Got::Eof);
    wait_all_closed(&server);
    let s = stop(server);
    assert_eq!((s.upgraded, s.closed_by_fault), (2, 1), "only the second was open when a timer fired: {s:?}");
}

#[test]
fn reset_after_gives_the_client_econnreset() {
    let server = with_faults(ServeProtocol::WebSocket, Mode::Echo, &["reset-after=200ms"]);
    let opened = Instant::now();
    let mut s = upgraded_stream(server.addr());
    let (rest, error) = read_until_end(&mut s);
    assert_eq!((rest.len(), error), (0, Some(ErrorKind::ConnectionReset)));
    assert!(opened.elapsed() >= Duration::from_millis(150), "{:?}", opened.elapsed());
    wait_all_closed(&server);
    let summary = stop(server);
    assert_eq!((summary.reset_by_fault, summary.upgraded), (1, 1), "{summary:?}");

    let server = with_faults(ServeProtocol::RawTcp, Mode::Echo, &["reset-after=200ms"]);
    let mut s = stream(server.addr());
    s.write_all(b"abc").unwrap();
    let (echoed, error) = read_until_end(&mut s);
    assert_eq!((echoed.as_slice(), error), (&b"abc"[..], Some(ErrorKind::ConnectionReset)));
    assert_eq!(stop(server).reset_by_fault, 1);
}

#[test]
fn close_all_and_reset_all_fire_once_for_every_connection() {
    let server = with_faults(ServeProtocol::WebSocket, Mode::Echo, &["close-all-at=400ms"]);
    let mut peers: Vec<Peer> = (0..3).map(|_| Peer::connect(server.addr())).collect();
    for p in &mut peers {
        assert_eq!(p.next(), Got::Closed(Some(1001)));
    }
    // One opened after the moment is left alone.
    let mut late = Peer::connect(server.addr());
    late.send(MessageKind::Text, b"still here");
    assert_eq!(late.next(), Got::Text("still here".into()));
    let s = stop(server);
    assert_eq!(s.closed_by_fault, 3, "{s:?}");

    let server = with_faults(ServeProtocol::WebSocket, Mode::Sink, &["reset-all-at=400ms"]);
    let mut streams: Vec<TcpStream> = (0..3).map(|_| upgraded_stream(server.addr())).collect();
    for s in &mut streams {
        assert_eq!(read_until_end(s).1, Some(ErrorKind::ConnectionReset));
    }
    wait_all_closed(&server);
    assert_eq!(stop(server).reset_by_fault, 3);
}

#[test]
fn refuse_answers_every_upgrade_with_the_status_and_retry_after() {
    let server = with_faults(ServeProtocol::WebSocket, Mode::Echo, &["refuse=429:5"]);
    for _ in 0..2 {
        let answer = raw_exchange(server.addr(), UPGRADE);
        assert!(answer.starts_with("HTTP/1.1 429 Too Many Requests\r\n"), "{answer}");
        assert!(answer.contains("\r\nRetry-After: 5\r\n") && answer.contains("Connection: close\r\n"), "{answer}");
        let body = answer.split("\r\n\r\n").nth(1).unwrap();
        assert!(answer.contains(&format!("Content-Length: {}\r\n", body.len())), "{answer}");
    }
    // A request that is not a valid upgrade keeps its own refusal.
    assert!(raw_exchange(server.addr(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 426 "));
    let s = stop(server);
    assert_eq!((s.refused_by_fault, s.upgraded), (2, 0), "{s:?}");
    assert_eq!((s.refused.get(&429), s.refused.get(&426)), (Some(&2), Some(&1)));

    let server = with_faults(ServeProtocol::WebSocket, Mode::Echo, &["refuse=503"]);
    let answer = raw_exchange(server.addr(), UPGRADE);
    assert!(answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n") && !answer.contains("Retry-After"), "{answer}");
    assert_eq!(stop(server).refused_by_fault, 1);
}

#[test]
fn no_upgrade_reply_reads_the_request_and_holds_the_connection() {
    let server = with_faults(ServeProtocol::WebSocket, Mode::Echo, &["no-upgrade-reply"]);
    let mut s = stream(server.addr());
    s.set_read_timeout(Some(Duration::from_millis(400))).unwrap();
    s.write_all(UPGRADE).unwrap();
    s.write_all(b"more bytes are read and dropped").unwrap();
    let mut buf = [0u8; 64];
    let got = loop {
        match s.read(&mut buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            other => break other,
        }
    };
    assert!(
        matches!(&got, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "no answer at all: {got:?}"
    );
    assert_eq!(server.live().open, 1, "the connection is held open");
    drop(s);
    wait_all_closed(&server);
    let summary = stop(server);
    assert_eq!((summary.upgrades_unanswered, summary.upgraded), (1, 0), "{summary:?}");
}

/// Sends `n` messages and a ping; returns how many echoes came back before the pong.
fn echoes_of(server: &ServerHandle, n: usize) -> u64 {
    let mut peer = Peer::connect(server.addr());
    for k in 0..n {
        peer.send(MessageKind::Binary, &(k as u64).to_be_bytes());
    }
    peer.client.send_control(Opcode::Ping, b"end", &mut peer.rng).unwrap();
    peer.flush();
    let mut echoes = 0;
    loop {
        match peer.next() {
            Got::Binary(_) => echoes += 1,
            Got::Pong(p) if p == b"end" => return echoes,
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn drop_echo_drops_a_repeatable_share_and_counts_it() {
    let mut dropped = Vec::new();
    for _ in 0..2 {
        let server = with_faults(ServeProtocol::WebSocket, Mode::Echo, &["drop-echo=30"]);
        let echoes = echoes_of(&server, 500);
        let s = stop(server);
        assert_eq!((s.messages_in, s.messages_out, s.echoes_dropped + echoes), (500, echoes, 500), "{s:?}");
        assert!((100..200).contains(&s.echoes_dropped), "about 30 %: {}", s.echoes_dropped);
        dropped.push(s.echoes_dropped);
    }
    assert_eq!(dropped[0], dropped[1], "the same drops run after run");
}

#[test]
fn a_port_held_by_another_socket_is_refused_not_shared() {
    let first = serve(ServeConfig { threads: 2, ..ServeConfig::default() });
    let taken = first.addr();
    match start(ServeConfig { listen: taken, ..ServeConfig::default() }) {
        Err(ServeError::AddressInUse { addr }) => assert_eq!(addr, taken),
        other => panic!("expected AddressInUse, got {other:?}"),
    }
    // Port 0 still gives every thread the same free port: both threads' listeners work.
    for _ in 0..4 {
        Peer::connect(taken);
    }
    // A plain listener (no SO_REUSEPORT) is detected too.
    let plain = TcpListener::bind("127.0.0.1:0").unwrap();
    let held = plain.local_addr().unwrap();
    let e = start(ServeConfig { listen: held, ..ServeConfig::default() }).expect_err("refused");
    assert!(e.to_string().contains(&format!("cannot listen on {held}: address in use")), "{e}");
    assert_eq!(stop(first).accepted, 4);
}

#[test]
fn fault_settings_are_checked() {
    let refused = |protocol, mode, specs: &[&str]| {
        matches!(start(ServeConfig { protocol, mode, faults: faults(specs), ..ServeConfig::default() }),
            Err(ServeError::Config(m)) if m.contains("fault"))
    };
    assert!(refused(ServeProtocol::RawTcp, Mode::Echo, &["refuse=429"]));
    assert!(refused(ServeProtocol::RawTcp, Mode::Echo, &["no-upgrade-reply"]));
    assert!(refused(ServeProtocol::WebSocket, Mode::Sink, &["drop-echo=5"]));
    assert!(refused(ServeProtocol::WebSocket, Mode::Echo, &["stall=1s/2s", "stall=1s/3s"]));
    assert!(refused(ServeProtocol::WebSocket, Mode::Echo, &["refuse=429", "no-upgrade-reply"]));
}
