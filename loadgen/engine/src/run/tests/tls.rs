//! wss:// end to end: the engine's TLS layer against a blocking rustls test server.

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
