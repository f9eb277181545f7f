//! The server with TLS on real loopback sockets: blocking `std::net` clients driving a
//! `loadgen_tls::TlsSession` (client) and, for wss://, loadgen-proto's `Client` on the
//! plaintext. Every socket has a timeout and every wait a deadline, so a failure is an
//! error, not a hang. No test asserts a latency.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use loadgen_proto::{Client, ClientConfig, Event, HandshakeRequest, MessageKind, Opcode};
use loadgen_tls::{TlsClientConfig, TlsServerConfig, TlsSession};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use super::{Mode, ServeConfig, ServeProtocol, ServerHandle, start};
use crate::payload::Probe;

const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// One self-signed certificate for the whole test binary, for the names `loadgen serve
/// --tls` uses.
fn server_tls() -> Arc<TlsServerConfig> {
    static CONFIG: OnceLock<Arc<TlsServerConfig>> = OnceLock::new();
    CONFIG.get_or_init(|| Arc::new(TlsServerConfig::self_signed(["localhost", "127.0.0.1", "::1"]).unwrap())).clone()
}

fn client_tls() -> TlsClientConfig {
    TlsClientConfig::builder().server_name("127.0.0.1").ca_pem(server_tls().cert_pem()).build().unwrap()
}

fn serve_tls(protocol: ServeProtocol, mode: Mode) -> ServerHandle {
    start(ServeConfig { protocol, mode, tls: Some(server_tls()), ..ServeConfig::default() }).expect("server starts")
}

fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// A read tolerating EINTR (io_uring ring teardowns poke the creating thread); 0 at EOF
/// or reset.
fn read_some(s: &mut TcpStream, buf: &mut [u8]) -> usize {
    loop {
        match s.read(buf) {
            Ok(n) => return n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return 0,
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// A blocking TLS client: bytes in and out of a `TlsSession` over a `TcpStream`.
struct TlsStream {
    stream: TcpStream,
    tls: TlsSession,
    out: Vec<u8>,
    buf: Vec<u8>,
}

impl TlsStream {
    fn connect(addr: SocketAddr, config: &TlsClientConfig) -> Self {
        let mut s = Self {
            stream: tcp(addr),
            tls: TlsSession::for_target(config).unwrap(),
            out: Vec::new(),
            buf: vec![0; 32 << 10],
        };
        s.tls.poll_transmit(&mut s.out).unwrap();
        let mut plain = Vec::new();
        while !s.tls.is_handshake_complete() {
            s.flush();
            assert!(s.read_into(&mut plain), "the server closed during the handshake");
        }
        s.flush();
        assert!(plain.is_empty());
        s
    }

    fn flush(&mut self) {
        if !self.out.is_empty() {
            // The server may already have closed (a reply racing its shutdown).
            let _ = self.stream.write_all(&self.out);
            self.out.clear();
        }
    }

    fn send(&mut self, plaintext: &[u8]) {
        self.tls.send(plaintext, &mut self.out).unwrap();
        self.flush();
    }

    /// Reads once and decrypts into `plain`; false at EOF.
    fn read_into(&mut self, plain: &mut Vec<u8>) -> bool {
        let n = read_some(&mut self.stream, &mut self.buf);
        if n == 0 {
            return false;
        }
        self.tls.receive(&mut self.buf[..n], &mut self.out, plain).expect("valid records from the server");
        self.flush();
        true
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Got {
    Open,
    Text(String),
    Binary(Vec<u8>),
    Pong(Vec<u8>),
    Closed(Option<u16>),
    /// The server's TCP EOF; `true` when its close_notify came first.
    Eof {
        close_notify: bool,
    },
}

/// A blocking wss:// client.
struct WssPeer {
    io: TlsStream,
    ws: Client,
    rng: ChaCha8Rng,
    plain: Vec<u8>,
    start: usize,
}

impl WssPeer {
    fn connect(addr: SocketAddr, config: &TlsClientConfig, seed: u64) -> Self {
        let io = TlsStream::connect(addr, config);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let ws = Client::new(ClientConfig::default(), &HandshakeRequest::new("127.0.0.1", "/"), 0, &mut rng).unwrap();
        let mut peer = Self { io, ws, rng, plain: Vec::new(), start: 0 };
        peer.flush();
        assert_eq!(peer.next(), Got::Open, "a 101 over TLS");
        peer
    }

    fn flush(&mut self) {
        let n = self.ws.pending_transmit().len();
        if n > 0 {
            self.io.tls.send(self.ws.pending_transmit(), &mut self.io.out).unwrap();
            self.ws.advance_transmit(n);
            self.io.flush();
        }
    }

    fn send(&mut self, kind: MessageKind, payload: &[u8]) {
        self.ws.send(kind, payload, &mut self.rng).unwrap();
        self.flush();
    }

    fn next(&mut self) -> Got {
        loop {
            while self.start < self.plain.len() {
                let (n, event) = self.ws.receive(&self.plain[self.start..], &mut self.rng).expect("valid frames");
                self.start += n;
                let got = match event {
                    None | Some(Event::Ping(_)) => continue,
                    Some(Event::Open) => Got::Open,
                    Some(Event::Text(t)) => Got::Text(t.to_string()),
                    Some(Event::Binary(b)) => Got::Binary(b.to_vec()),
                    Some(Event::Pong(p)) => Got::Pong(p.to_vec()),
                    Some(Event::Closed { code, .. }) => Got::Closed(code),
                };
                self.flush();
                return got;
            }
            self.plain.clear();
            self.start = 0;
            if !self.io.read_into(&mut self.plain) {
                return Got::Eof { close_notify: self.io.tls.peer_closed() };
            }
        }
    }
}

fn wait_all_closed(server: &ServerHandle) {
    let deadline = Instant::now() + IO_TIMEOUT;
    while server.live().open > 0 {
        assert!(Instant::now() < deadline, "{:?}", server.live());
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn temp_file(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("loadgen-serve-tls-{}-{name}", std::process::id()))
}

#[test]
fn wss_echo_is_byte_exact_across_record_boundaries_and_closes_with_close_notify() {
    // The client trusts the certificate through a PEM file, as `--tls-cert-out` then
    // `--ca-file` do, and checks the 127.0.0.1 IP name.
    let cert_file = temp_file("cert.pem");
    std::fs::write(&cert_file, server_tls().cert_pem()).unwrap();
    let config = TlsClientConfig::builder().server_name("127.0.0.1").ca_file(&cert_file).build().unwrap();
    let _ = std::fs::remove_file(&cert_file);
    let server = serve_tls(ServeProtocol::WebSocket, Mode::Echo);
    let mut peer = WssPeer::connect(server.addr(), &config, 1);
    // 16 KiB is a record's largest plaintext: sizes around it and well past it span
    // several records each way, and a frame header straddles a record boundary.
    let sizes = [0, 1, 125, 126, 16_377, 16_384, 16_385, 40_000, 300_000];
    for &n in &sizes {
        let binary: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
        peer.send(MessageKind::Binary, &binary);
        assert_eq!(peer.next(), Got::Binary(binary), "binary of {n} bytes");
        let text: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        peer.send(MessageKind::Text, text.as_bytes());
        assert_eq!(peer.next(), Got::Text(text), "text of {n} bytes");
    }
    peer.ws.send_control(Opcode::Ping, b"tls?", &mut peer.rng).unwrap();
    peer.flush();
    assert_eq!(peer.next(), Got::Pong(b"tls?".to_vec()));
    peer.ws.close(1000, "bye", 0, &mut peer.rng).unwrap();
    peer.flush();
    assert_eq!(peer.next(), Got::Closed(Some(1000)));
    assert_eq!(peer.next(), Got::Eof { close_notify: true }, "close_notify, then FIN");
    wait_all_closed(&server);
    server.stop();
    let s = server.join();
    let n = 2 * sizes.len() as u64;
    assert!(s.tls && s.tls_handshakes == 1 && s.tls_handshakes_failed == 0, "{s:?}");
    assert!(s.tls_errors.is_empty() && s.protocol_errors.is_empty() && s.errors.is_empty(), "{s:?}");
    assert_eq!((s.upgraded, s.messages_in, s.messages_out, s.pings, s.closes_in, s.aborted), (1, n, n, 1, 1, 0));
    let payload = 2 * sizes.iter().sum::<usize>() as u64;
    assert!(s.bytes_in > payload && s.bytes_out > payload, "ciphertext counted: {s:?}");
}

#[test]
fn wss_push_delivers_probes_and_stop_closes_over_tls() {
    let server = serve_tls(ServeProtocol::WebSocket, Mode::Push { rate: 400.0, message_size: 100 });
    let config = client_tls();
    let mut peers: Vec<WssPeer> = (0..2).map(|i| WssPeer::connect(server.addr(), &config, i)).collect();
    for peer in &mut peers {
        let mut last = None;
        for _ in 0..20 {
            let Got::Binary(payload) = peer.next() else { panic!("pushes are binary messages") };
            let probe = Probe::decode(&payload).expect("a probe payload");
            assert_eq!(payload.len(), 100);
            assert!(last.is_none_or(|l| probe.seq > l), "sequence numbers increase");
            last = Some(probe.seq);
        }
    }
    server.stop();
    for peer in &mut peers {
        // Pushes still in flight, then close 1001 (answered by the client), then
        // close_notify and FIN.
        let got = loop {
            match peer.next() {
                Got::Binary(_) => {}
                other => break other,
            }
        };
        assert_eq!(got, Got::Closed(Some(1001)));
        assert_eq!(peer.next(), Got::Eof { close_notify: true });
    }
    let s = server.join();
    assert!(s.messages_out >= 40 && s.tls_handshakes == 2 && s.tls_errors.is_empty(), "{s:?}");
    assert_eq!((s.closes_in, s.aborted), (2, 0), "{s:?}");
}

#[test]
fn garbage_instead_of_a_client_hello_is_counted_and_others_are_still_served() {
    let server = serve_tls(ServeProtocol::WebSocket, Mode::Echo);
    // Plain HTTP to the TLS port: a fatal alert record comes back, then EOF.
    let mut plain_http = tcp(server.addr());
    plain_http.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        let n = read_some(&mut plain_http, &mut buf);
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    assert_eq!(answer.first(), Some(&0x15), "a TLS alert record: {answer:?}");
    // A well-behaved client meanwhile.
    let mut peer = WssPeer::connect(server.addr(), &client_tls(), 7);
    peer.send(MessageKind::Text, b"still served");
    assert_eq!(peer.next(), Got::Text("still served".into()));
    // Random bytes shaped like a handshake record header.
    let mut fake = tcp(server.addr());
    fake.write_all(&[0x16, 0x03, 0x01, 0x00, 0x08, 1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
    while read_some(&mut fake, &mut buf) > 0 {}
    peer.send(MessageKind::Binary, &[9; 20_000]);
    assert_eq!(peer.next(), Got::Binary(vec![9; 20_000]));
    wait_all_closed_but(&server, 1);
    server.stop();
    let s = server.join();
    let errors: u64 = s.tls_errors.values().sum();
    assert_eq!((errors, s.tls_handshakes_failed, s.tls_handshakes), (2, 2, 1), "{s:?}");
    assert!(s.tls_errors.keys().all(|k| k.starts_with("tls_")), "{s:?}");
    assert_eq!(s.tls_errors.get("tls_protocol"), Some(&2), "malformed records: {s:?}");
    assert!(s.errors.is_empty(), "{s:?}");
}

/// Waits (bounded) until the server has `open` connections left.
fn wait_all_closed_but(server: &ServerHandle, open: u64) {
    let deadline = Instant::now() + IO_TIMEOUT;
    while server.live().open > open {
        assert!(Instant::now() < deadline, "{:?}", server.live());
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn clients_vanishing_mid_handshake_free_their_slots_without_tls_errors() {
    let server = serve_tls(ServeProtocol::WebSocket, Mode::Echo);
    let config = client_tls();
    let mut hello = Vec::new();
    TlsSession::for_target(&config).unwrap().poll_transmit(&mut hello).unwrap();
    // Nothing sent; half a ClientHello; a whole one, the server's flight left unread;
    // a whole handshake, then gone before the upgrade.
    drop(tcp(server.addr()));
    tcp(server.addr()).write_all(&hello[..hello.len() / 2]).unwrap();
    let mut whole = tcp(server.addr());
    whole.write_all(&hello).unwrap();
    let mut buf = [0u8; 5];
    assert_eq!(read_some(&mut whole, &mut buf), 5, "the server answers the ClientHello");
    drop(whole);
    drop(TlsStream::connect(server.addr(), &config));
    let deadline = Instant::now() + IO_TIMEOUT;
    while server.live().accepted < 4 {
        assert!(Instant::now() < deadline, "{:?}", server.live());
        std::thread::sleep(Duration::from_millis(2));
    }
    wait_all_closed(&server);
    // The slots are reusable: a full session still works.
    let mut peer = WssPeer::connect(server.addr(), &config, 3);
    peer.send(MessageKind::Text, b"after");
    assert_eq!(peer.next(), Got::Text("after".into()));
    peer.ws.close(1000, "", 0, &mut peer.rng).unwrap();
    peer.flush();
    assert_eq!(peer.next(), Got::Closed(Some(1000)));
    assert_eq!(peer.next(), Got::Eof { close_notify: true });
    server.stop();
    let s = server.join();
    assert!(s.tls_errors.is_empty() && s.tls_handshakes_failed == 0, "going away is not a TLS error: {s:?}");
    assert_eq!((s.accepted, s.tls_handshakes, s.upgraded, s.aborted, s.closes_in), (5, 2, 1, 4, 1), "{s:?}");
}

#[test]
fn raw_tcp_over_tls_echoes_the_stream_and_ends_with_close_notify() {
    let server = serve_tls(ServeProtocol::RawTcp, Mode::Echo);
    let mut client = TlsStream::connect(server.addr(), &client_tls());
    let data: Vec<u8> = (0..100_000).map(|i| (i % 253) as u8).collect();
    let (mut got, mut sent) = (Vec::new(), 0);
    for chunk in data.chunks(7_000) {
        client.send(chunk);
        sent += chunk.len();
        while got.len() < sent {
            assert!(client.read_into(&mut got), "EOF after {} of {sent} bytes", got.len());
        }
    }
    assert!(got == data, "the same bytes in the same order");
    client.tls.close(&mut client.out).unwrap();
    client.flush();
    while client.read_into(&mut got) {}
    assert!(client.tls.peer_closed() && got.len() == data.len(), "close_notify back, nothing else");
    wait_all_closed(&server);
    server.stop();
    let s = server.join();
    assert!(s.tls && s.tls_handshakes == 1 && s.tls_errors.is_empty(), "{s:?}");
    assert_eq!((s.closes_in, s.aborted, s.upgraded), (1, 0, 0), "{s:?}");
}

#[test]
fn raw_push_over_tls_waits_for_the_handshake() {
    let server = serve_tls(ServeProtocol::RawTcp, Mode::Push { rate: 500.0, message_size: 64 });
    // A connection still handshaking gets no pushes queued (they would be plaintext).
    let mut idle = tcp(server.addr());
    std::thread::sleep(Duration::from_millis(50));
    let mut client = TlsStream::connect(server.addr(), &client_tls());
    let mut got = Vec::new();
    while got.len() < 64 * 10 {
        assert!(client.read_into(&mut got), "EOF");
    }
    for (seq, probe) in got.chunks_exact(64).take(10).enumerate() {
        assert_eq!(Probe::decode(probe).expect("back-to-back probes").seq, seq as u64);
    }
    idle.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    let nothing = idle.read(&mut [0u8; 16]).map_err(|e| e.kind());
    assert!(
        matches!(nothing, Err(ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "{nothing:?}: nothing before a ClientHello"
    );
    server.stop();
    let s = server.join();
    assert!(s.messages_out >= 10 && s.tls_handshakes == 1 && s.tls_errors.is_empty(), "{s:?}");
}

#[test]
fn a_corrupt_record_after_the_handshake_is_counted_and_ends_only_that_connection() {
    let server = serve_tls(ServeProtocol::WebSocket, Mode::Echo);
    let config = client_tls();
    let mut victim = WssPeer::connect(server.addr(), &config, 11);
    let mut neighbour = WssPeer::connect(server.addr(), &config, 12);
    // An application-data record whose tag cannot verify.
    let mut record = vec![0x17, 0x03, 0x03, 0x00, 0x40];
    record.extend((0..0x40).map(|i| i as u8));
    victim.io.stream.write_all(&record).unwrap();
    let mut buf = [0u8; 256];
    let mut answer = Vec::new();
    loop {
        let n = read_some(&mut victim.io.stream, &mut buf);
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(!answer.is_empty(), "an alert, then EOF");
    neighbour.send(MessageKind::Text, b"unaffected");
    assert_eq!(neighbour.next(), Got::Text("unaffected".into()));
    neighbour.ws.close(1000, "", 0, &mut neighbour.rng).unwrap();
    neighbour.flush();
    assert_eq!(neighbour.next(), Got::Closed(Some(1000)));
    wait_all_closed(&server);
    server.stop();
    let s = server.join();
    assert_eq!(s.tls_errors.get("tls_decrypt"), Some(&1), "{s:?}");
    assert_eq!((s.tls_handshakes, s.tls_handshakes_failed), (2, 0), "{s:?}");
}
