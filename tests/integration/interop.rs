//! loadgen-proto against implementations nobody here wrote: the full conformance suite
//! (0 B to 1 MiB, fragmentation, ping/pong, both closes, permessage-deflate) and hostile
//! servers the client must fail against with the right close code, without hanging.

use std::time::{Duration, Instant};

use loadgen_conformance::{CheckOptions, ConnectOptions, Connection, DriverError, OwnedEvent, Target};
use loadgen_proto::{ClientConfig, MessageKind, ProtocolError, State};

use crate::servers::{Impl, InteropServer, require_or_skip};

fn suite(imp: Impl, deflate: bool) {
    if !require_or_skip(imp) {
        return;
    }
    let server = InteropServer::start(imp, "echo", deflate).unwrap();
    let options = CheckOptions {
        target: server.url(),
        deflate,
        server_commands: true,
        quick: false,
        connections: 4,
        round_trips: 200,
        message_size: 256,
    };
    let report = loadgen_conformance::run(&options, &mut |_| {}).unwrap();
    let failed: Vec<_> =
        report.checks.iter().filter(|c| !c.passed).map(|c| format!("{}: {}", c.name, c.detail)).collect();
    assert!(failed.is_empty(), "{} failed checks: {failed:#?}", imp.name());
    let names: Vec<&str> = report.checks.iter().map(|c| c.name.as_str()).collect();
    for required in
        ["echo_text_1048576", "echo_binary_65535", "fragmented_send", "server_close", "server_ping", "client_close"]
    {
        assert!(names.contains(&required), "{required} ran");
    }
    assert_eq!(report.deflate.is_some(), deflate, "deflate negotiated iff offered");
    if deflate {
        assert!(names.contains(&"deflate_compresses") && names.contains(&"deflate_no_context_takeover"));
    }
    let echo = report.echo.expect("echo measurement ran");
    assert_eq!(echo.round_trips, 4 * 200, "every round trip completed: {:?}", echo.errors);
    assert!(echo.errors.is_empty());
    assert!(echo.rtt_us.p50 > 0 && echo.rtt_us.max >= echo.rtt_us.p99);
}

#[test]
fn python_websockets_conformance() {
    suite(Impl::Python, false);
}

#[test]
fn python_websockets_conformance_with_deflate() {
    suite(Impl::Python, true);
}

#[test]
fn node_ws_conformance() {
    suite(Impl::Node, false);
}

#[test]
fn node_ws_conformance_with_deflate() {
    suite(Impl::Node, true);
}

/// Connects to a hostile server, provokes it, and returns the error and elapsed time.
fn provoke(imp: Impl, mode: &str, client: ClientConfig) -> Option<(DriverError, Duration, Connection)> {
    if !require_or_skip(imp) {
        return None;
    }
    let server = InteropServer::start(imp, mode, false).unwrap();
    let options = ConnectOptions { client, idle_limit: Duration::from_secs(5), ..ConnectOptions::default() };
    let mut conn = Connection::open(&Target::parse(&server.url()).unwrap(), &options).unwrap();
    let t0 = Instant::now();
    conn.send(MessageKind::Text, b"provoke").unwrap();
    loop {
        match conn.next_event() {
            Ok(Some(OwnedEvent::Text(_))) | Ok(Some(OwnedEvent::Ping(_))) => continue,
            Ok(other) => panic!("{} {mode}: expected a failure, got {other:?}", imp.name()),
            Err(e) => return Some((e, t0.elapsed(), conn)),
        }
    }
}

fn hostile(imp: Impl) {
    let cases = [
        ("masked-frame", ProtocolError::MaskedFrame, 1002),
        ("invalid-utf8", ProtocolError::InvalidUtf8, 1007),
        ("oversize-frame", ProtocolError::MessageTooBig, 1009),
        ("oversize-control", ProtocolError::ControlFrameTooLong, 1002),
        ("reserved-opcode", ProtocolError::ReservedOpcode, 1002),
        ("rsv-bits", ProtocolError::ReservedBits, 1002),
    ];
    for (mode, expected, code) in cases {
        let client = ClientConfig { max_message_size: 1 << 20, ..ClientConfig::default() };
        let Some((err, elapsed, conn)) = provoke(imp, mode, client) else { return };
        match err {
            DriverError::Protocol { error, close_code } => {
                assert_eq!((error, close_code), (expected, code), "{} {mode}", imp.name());
            }
            other => panic!("{} {mode}: expected {expected:?}, got {other}", imp.name()),
        }
        assert_eq!(conn.client().state(), State::Closed, "{mode}: connection failed");
        assert!(conn.client().pending_transmit().is_empty(), "{mode}: failing close frame was written");
        assert!(elapsed < Duration::from_secs(3), "{mode}: failed promptly, not by timeout ({elapsed:?})");
    }
}

#[test]
fn python_hostile_servers_fail_with_the_right_close_code() {
    hostile(Impl::Python);
}

#[test]
fn node_hostile_servers_fail_with_the_right_close_code() {
    hostile(Impl::Node);
}

fn unanswered_close(imp: Impl) {
    if !require_or_skip(imp) {
        return;
    }
    let server = InteropServer::start(imp, "no-close-reply", false).unwrap();
    let client = ClientConfig { close_timeout_us: 500_000, ..ClientConfig::default() };
    let options = ConnectOptions { client, ..ConnectOptions::default() };
    let mut conn = Connection::open(&Target::parse(&server.url()).unwrap(), &options).unwrap();
    conn.send(MessageKind::Text, b"before close").unwrap();
    assert_eq!(conn.next_event_within(Duration::from_secs(5)).unwrap(), OwnedEvent::Text("before close".into()));
    let t0 = Instant::now();
    conn.close(1000, "bye").unwrap();
    let err = loop {
        match conn.next_event() {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    let waited = t0.elapsed();
    assert!(matches!(err, DriverError::CloseTimedOut), "{}: {err}", imp.name());
    assert!(waited >= Duration::from_millis(450) && waited < Duration::from_secs(3), "waited {waited:?}");
    assert_eq!(conn.client().state(), State::Closed);
}

#[test]
fn python_server_that_never_answers_close_times_out() {
    unanswered_close(Impl::Python);
}

#[test]
fn node_server_that_never_answers_close_times_out() {
    unanswered_close(Impl::Node);
}
