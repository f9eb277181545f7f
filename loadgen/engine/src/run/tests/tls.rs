//! wss:// end to end: the engine's TLS layer against a blocking rustls test server.

use loadgen_tls::TlsServerSession;

use super::*;

#[test]
fn wss_echo_works_resumes_sessions_and_reports_their_memory() {
    let server = TestServer::start_tls(Mode::Echo, TestTls::new());
    let traffic = Traffic::Echo { message_size: 3_000, rate: MessageRate::ClosedLoop };
    let out = go(&config(&server, 20, 1_000, traffic));
    let m = &out.stats;
    assert_eq!((m.totals.attempted, m.totals.established, m.totals.failed), (20, 20, 0), "{:?}", m.errors);
    assert!(m.errors.is_empty(), "close_notify and the close handshake end cleanly: {:?}", m.errors);
    assert_eq!(m.histogram(Metric::TlsHandshake).len(), 20, "every TLS handshake timed");
    assert!(
        m.histogram(Metric::Handshake).min() >= m.histogram(Metric::TlsHandshake).min(),
        "the upgrade follows the TLS handshake"
    );
    assert_eq!(m.totals.tls_full_handshakes + m.totals.tls_resumed_handshakes, 20);
    assert!(m.totals.messages_received > 50, "echoes flowed: {}", m.totals.messages_received);
    assert_eq!(m.histogram(Metric::MessageRtt).len(), m.totals.messages_received, "every echo timed");
    assert_eq!(server.messages.load(Ordering::Relaxed), m.totals.messages_sent, "the server decrypted every frame");
    assert_eq!(out.memory.tls_sessions, 20, "sampled while all were held");
    let per_session = out.memory.tls_bytes / 20;
    assert!((2_000..16_000).contains(&per_session), "TLS bytes per held connection: {per_session}");
    assert_eq!(m.open_at_end, 0);
}

#[test]
fn wss_connections_of_a_worker_resume_its_sessions() {
    let server = TestServer::start_tls(Mode::Echo, TestTls::new());
    let mut cfg = config(&server, 6, 200, Traffic::Idle);
    // One worker, connections 200 ms apart: the session tickets of one connection
    // arrive long before the next starts, even in a debug build on a busy machine.
    cfg.workers = 1;
    cfg.connect_rate = 5.0;
    let m = go(&cfg).stats;
    assert_eq!(m.totals.established, 6, "{:?}", m.errors);
    let (full, resumed) = (m.totals.tls_full_handshakes, m.totals.tls_resumed_handshakes);
    assert_eq!(full + resumed, 6);
    assert!(full >= 1 && resumed >= 4, "later connections resume: {full} full, {resumed} resumed");

    // Resumption off: every handshake is full.
    let mut cfg = config(&server, 4, 100, Traffic::Idle);
    cfg.workers = 1;
    cfg.connect_rate = 10.0;
    cfg.tls = Some(
        TlsClientConfig::builder()
            .ca_pem(server.tls.as_ref().unwrap().server.cert_pem())
            .resumption(false)
            .build()
            .unwrap(),
    );
    let m = go(&cfg).stats;
    assert_eq!((m.totals.tls_full_handshakes, m.totals.tls_resumed_handshakes), (4, 0), "{:?}", m.errors);
}

#[test]
fn wss_failures_are_counted_by_kind() {
    // A certificate nobody trusts: every connection fails the TLS handshake.
    let mut tls = TestTls::new();
    let stranger = TlsServerConfig::self_signed(["127.0.0.1"]).unwrap();
    tls.client = TlsClientConfig::builder().ca_pem(stranger.cert_pem()).build().unwrap();
    let server = TestServer::start_tls(Mode::Echo, tls);
    let m = go(&config(&server, 6, 300, Traffic::Idle)).stats;
    assert_eq!((m.totals.established, m.totals.failed), (0, 6), "{:?}", m.errors);
    assert_eq!(m.errors.get("tls_bad_certificate").copied(), Some(6), "{:?}", m.errors);

    // An upgrade refused over TLS is classified like on ws://.
    let server = TestServer::start_tls(Mode::Reject(503), TestTls::new());
    let m = go(&config(&server, 6, 300, Traffic::Idle)).stats;
    assert_eq!((m.totals.established, m.totals.failed), (0, 6), "{:?}", m.errors);
    assert_eq!(m.errors.get("service_unavailable").copied(), Some(6), "{:?}", m.errors);

    // A plain server behind a wss:// URL never answers the ClientHello: handshake timeout.
    let plain = TestServer::start(Mode::Echo);
    let mut cfg = config(&plain, 4, 1_200, Traffic::Idle);
    cfg.targets[0].tls = true;
    cfg.tls = Some(TestTls::new().client);
    let m = go(&cfg).stats;
    assert_eq!((m.totals.established, m.totals.failed), (0, 4), "{:?}", m.errors);
    assert_eq!(m.errors.get("handshake_timeout").copied(), Some(4), "{:?}", m.errors);
}

#[test]
fn wss_without_trust_settings_is_refused_up_front() {
    let server = TestServer::start_tls(Mode::Echo, TestTls::new());
    let mut cfg = config(&server, 1, 100, Traffic::Idle);
    cfg.tls = None;
    let err = run(&cfg, &AtomicBool::new(false)).expect_err("no trust settings");
    assert!(err.to_string().contains("--ca-file"), "{err}");
}

/// A TLS server that appends `records` bogus application-data records to its first
/// handshake flight (a hostile or broken server).
fn garbage_after_flight_server(records: usize) -> TestServer {
    let tls = TestTls::new();
    let server_cfg = tls.server.clone();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let std::net::SocketAddr::V4(addr) = listener.local_addr().unwrap() else { unreachable!() };
    listener.set_nonblocking(true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            let Ok((mut stream, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            };
            let (s, config) = (s.clone(), server_cfg.clone());
            std::thread::spawn(move || {
                stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
                let mut session = TlsServerSession::new(&config).unwrap();
                let (mut buf, mut plain, mut sent_flight) = ([0u8; 16_384], Vec::new(), false);
                while !s.load(Ordering::Relaxed) {
                    match stream.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => {
                            let _ = session.receive(&buf[..n], &mut plain);
                            let mut wire = Vec::new();
                            let _ = session.poll_transmit(&mut wire);
                            if !sent_flight && !wire.is_empty() {
                                sent_flight = true;
                                for _ in 0..records {
                                    wire.extend_from_slice(&[0x17, 0x03, 0x03, 0x00, 0x20]);
                                    wire.extend_from_slice(&[0xAB; 32]);
                                }
                            }
                            if stream.write_all(&wire).is_err() {
                                return;
                            }
                        }
                        Err(_) => {}
                    }
                }
            });
        }
    });
    TestServer {
        addr,
        stop,
        messages: Arc::new(AtomicU64::new(0)),
        upgrades: Arc::new(AtomicU64::new(0)),
        tls: Some(tls),
    }
}

#[test]
fn a_tls_failure_is_counted_once_per_connection() {
    // 64 bad records after the flight, read 256 B at a time: many receive completions
    // arrive after the session failed; the failure still counts once.
    let server = garbage_after_flight_server(64);
    let mut cfg = config(&server, 4, 300, Traffic::Idle);
    cfg.recv_buffer_size = 256;
    let m = go(&cfg).stats;
    assert_eq!((m.totals.attempted, m.totals.established, m.totals.failed), (4, 0, 4), "{:?}", m.errors);
    let tls_errors: u64 = m.errors.iter().filter(|(k, _)| k.starts_with("tls_")).map(|(_, n)| n).sum();
    assert_eq!(tls_errors, 4, "{:?}", m.errors);

    // https://: the read that completes the handshake also holds the bad record; the
    // connection counts as established (then ended by the error), never also as failed.
    let server = garbage_after_flight_server(1);
    let mut cfg = config(&server, 4, 300, Traffic::Echo { message_size: 64, rate: MessageRate::PerConnection(5.0) });
    cfg.protocol = crate::run::Protocol::Http1;
    let m = go(&cfg).stats;
    assert_eq!(m.totals.attempted, 4);
    assert_eq!(m.totals.established + m.totals.failed, 4, "each attempt counted once: {:?}", m.errors);
}

/// Blocking TLS over a `TcpStream`, for the test server.
pub(super) struct TlsStream {
    tcp: TcpStream,
    session: TlsServerSession,
    plain: Vec<u8>,
    wire: Vec<u8>,
}

impl TlsStream {
    pub(super) fn new(tcp: TcpStream, config: &TlsServerConfig) -> Self {
        Self { tcp, session: TlsServerSession::new(config).unwrap(), plain: Vec::new(), wire: Vec::new() }
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut raw = [0u8; 16_384];
        while self.plain.is_empty() {
            let n = self.tcp.read(&mut raw)?;
            if n == 0 {
                return Ok(0);
            }
            let received = self.session.receive(&raw[..n], &mut self.plain);
            self.session.poll_transmit(&mut self.wire).map_err(std::io::Error::other)?;
            self.tcp.write_all(&self.wire)?;
            self.wire.clear();
            received.map_err(std::io::Error::other)?;
            if self.session.peer_closed() && self.plain.is_empty() {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.plain.len());
        buf[..n].copy_from_slice(&self.plain[..n]);
        self.plain.drain(..n);
        Ok(n)
    }
}

impl Write for TlsStream {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.session.send(data, &mut self.wire).map_err(std::io::Error::other)?;
        self.tcp.write_all(&self.wire)?;
        self.wire.clear();
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl ServerStream for TlsStream {
    fn reset(&self) {
        self.tcp.reset();
    }
}
