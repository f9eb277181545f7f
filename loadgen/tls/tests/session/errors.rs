//! Failures: certificates, configuration, corrupted and truncated records. Every error
//! is classified; nothing panics; a failed session stays failed.

use loadgen_tls::{TlsClientConfig, TlsError, TlsErrorKind, TlsServerConfig, TlsSession};
use proptest::prelude::*;

use crate::pipe::{Failure, Pair, client_config, server_config, server_config_tls12};

fn assert_failed_for_good(session: &mut TlsSession, kind: TlsErrorKind) {
    assert_eq!(session.failed(), Some(kind));
    assert_eq!(session.incoming_capacity(), 0, "a failed session holds no buffer");
    let mut out = Vec::new();
    let err = session.send(b"x", &mut out).unwrap_err();
    assert!(matches!(err, TlsError::Failed(k) if k == kind), "{err}");
    let err = session.receive(&mut [0x17, 3, 3, 0, 1, 0], &mut out, &mut Vec::new()).unwrap_err();
    assert_eq!(err.kind(), kind);
}

#[test]
fn wrong_server_name_is_bad_certificate() {
    let config = client_config(server_config());
    let session = TlsSession::new(&config, "not-localhost.example").unwrap();
    let mut pair = Pair::with_session(session, server_config());
    let err = pair.handshake().unwrap_err().client();
    assert_eq!(err.kind(), TlsErrorKind::BadCertificate, "{err}");
    assert_failed_for_good(&mut pair.client, TlsErrorKind::BadCertificate);

    // The client queued a fatal alert; the server learns why.
    assert!(!pair.to_server.is_empty(), "the alert is in the outgoing buffer");
    let err = pair.server.receive(&pair.to_server, &mut Vec::new()).unwrap_err();
    assert_eq!(err.kind(), TlsErrorKind::BadCertificate, "{err}");
}

#[test]
fn ip_address_name_verifies_against_ip_san() {
    let config = client_config(server_config());
    let session = TlsSession::new(&config, "127.0.0.1").unwrap();
    let mut pair = Pair::with_session(session, server_config());
    pair.handshake().unwrap();
    let session = TlsSession::new(&config, "127.0.0.2").unwrap();
    let mut pair = Pair::with_session(session, server_config());
    assert_eq!(pair.handshake().unwrap_err().client().kind(), TlsErrorKind::BadCertificate);
}

#[test]
fn untrusted_ca_is_bad_certificate() {
    // Trusts the TLS 1.2 server's certificate, talks to the other server.
    let config = client_config(server_config_tls12());
    let mut pair = Pair::new(&config, server_config());
    let err = pair.handshake().unwrap_err().client();
    assert_eq!(err.kind(), TlsErrorKind::BadCertificate, "{err}");
    // Both rcgen certificates carry the same subject: webpki finds the "issuer" by name,
    // then its signature fails (BadSignature); a different CA would give UnknownIssuer.
    assert!(err.to_string().contains("invalid peer certificate"), "{err}");
}

#[test]
fn insecure_mode_connects_to_self_signed_under_any_name() {
    let config = TlsClientConfig::builder().server_name("whatever.invalid").insecure_skip_verify(true).build().unwrap();
    assert!(config.is_insecure());
    for server in [server_config(), server_config_tls12()] {
        let mut pair = Pair::new(&config, server);
        pair.handshake().unwrap();
        let mut out = Vec::new();
        pair.client.send(b"hi", &mut out).unwrap();
        let mut plain = Vec::new();
        pair.server.receive(&out, &mut plain).unwrap();
        assert_eq!(plain, b"hi");
    }
}

#[test]
fn configuration_errors_are_config_kind() {
    let err = TlsClientConfig::builder().build().unwrap_err();
    assert!(matches!(err, TlsError::NoTrustRoots));
    assert_eq!(err.kind(), TlsErrorKind::Config);

    let err = TlsClientConfig::builder().ca_file("/nonexistent/ca.pem").build().unwrap_err();
    assert!(matches!(err, TlsError::CaFile { .. }), "{err}");
    assert_eq!(err.kind(), TlsErrorKind::Config);

    let err = TlsClientConfig::builder().ca_pem("no pem here").build().unwrap_err();
    assert!(matches!(err, TlsError::NoTrustRoots), "{err}");
    let broken = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
    let err = TlsClientConfig::builder().ca_pem(broken).build().unwrap_err();
    assert_eq!(err.kind(), TlsErrorKind::Config, "{err}");

    let err = TlsClientConfig::builder().insecure_skip_verify(true).server_name("bad name!").build().unwrap_err();
    assert!(matches!(err, TlsError::InvalidServerName(_)), "{err}");
    let config = TlsClientConfig::builder().insecure_skip_verify(true).build().unwrap();
    assert!(matches!(TlsSession::for_target(&config).unwrap_err(), TlsError::NoServerName));
    assert_eq!(TlsSession::new(&config, "").unwrap_err().kind(), TlsErrorKind::Config);

    let err = TlsServerConfig::from_pem(b"", b"").unwrap_err();
    assert_eq!(err.kind(), TlsErrorKind::Config);
}

#[test]
fn ca_file_is_read() {
    let path = std::env::temp_dir().join(format!("loadgen-tls-ca-{}.pem", std::process::id()));
    std::fs::write(&path, server_config().cert_pem()).unwrap();
    let config = TlsClientConfig::builder().server_name("localhost").ca_file(&path).build();
    std::fs::remove_file(&path).unwrap();
    Pair::new(&config.unwrap(), server_config()).handshake().unwrap();
}

/// An established pair and one server record carrying `len` bytes of application data.
fn established_with_record(server: &'static TlsServerConfig, len: usize) -> (Pair, Vec<u8>) {
    let mut pair = Pair::new(&client_config(server), server);
    pair.handshake().unwrap();
    let mut record = Vec::new();
    pair.server.send(&vec![0xAB; len], &mut record).unwrap();
    (pair, record)
}

fn receive_then_eof(session: &mut TlsSession, bytes: &mut [u8]) -> Result<usize, TlsError> {
    let mut out = Vec::new();
    let mut plain = Vec::new();
    session.receive(bytes, &mut out, &mut plain)?;
    session.receive_eof()?;
    Ok(plain.len())
}

#[test]
fn corrupted_payload_is_decrypt() {
    for server in [server_config(), server_config_tls12()] {
        let (mut pair, mut record) = established_with_record(server, 100);
        let last = record.len() - 1;
        record[last] ^= 1; // in the AEAD tag
        let err = receive_then_eof(&mut pair.client, &mut record).unwrap_err();
        assert_eq!(err.kind(), TlsErrorKind::Decrypt, "{err}");
        assert_failed_for_good(&mut pair.client, TlsErrorKind::Decrypt);
    }
}

#[test]
fn corrupted_header_is_protocol() {
    let (mut pair, mut record) = established_with_record(server_config(), 100);
    record[0] = 0x99; // content type
    let err = receive_then_eof(&mut pair.client, &mut record).unwrap_err();
    assert_eq!(err.kind(), TlsErrorKind::Protocol, "{err}");

    let (mut pair, mut record) = established_with_record(server_config(), 100);
    record[3] = 0xFF; // length far beyond the largest record
    record[4] = 0xFF;
    let err = receive_then_eof(&mut pair.client, &mut record).unwrap_err();
    assert_eq!(err.kind(), TlsErrorKind::Protocol, "{err}");
}

#[test]
fn truncated_stream_is_protocol() {
    let (mut pair, mut record) = established_with_record(server_config(), 1000);
    let cut = record.len() / 2;
    let mut out = Vec::new();
    let got = pair.client.receive(&mut record[..cut], &mut out, &mut Vec::new()).unwrap();
    assert_eq!(got, 0);
    assert_eq!(pair.client.buffered_incoming(), cut, "the unfinished record is kept");
    assert!(pair.client.incoming_capacity() >= cut);
    let err = pair.client.receive_eof().unwrap_err();
    assert!(matches!(err, TlsError::UnexpectedEof { partial_bytes } if partial_bytes == cut), "{err}");
    assert_eq!(err.kind(), TlsErrorKind::Protocol);
    assert_failed_for_good(&mut pair.client, TlsErrorKind::Protocol);

    // Truncated between records (no close_notify) is Protocol too.
    let (mut pair, _) = established_with_record(server_config(), 10);
    assert_eq!(pair.client.receive_eof().unwrap_err().kind(), TlsErrorKind::Protocol);
}

#[test]
fn handshake_failure_from_server_alert() {
    // The server offers only h2; the client only http/1.1: no application protocol.
    let server = TlsServerConfig::self_signed(["localhost"]).unwrap().with_alpn(["h2"]).unwrap();
    let mut pair = Pair::new(&client_config(&server), &server);
    match pair.handshake().unwrap_err() {
        Failure::Server(e) => assert_eq!(e.kind(), TlsErrorKind::HandshakeFailure, "{e}"),
        Failure::Client(e) => panic!("server should fail first: {e}"),
    }
    // The server's alert reached the client.
    assert_eq!(pair.client.failed(), Some(TlsErrorKind::HandshakeFailure));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any single corruption of an application-data record (and any truncation) ends in
    /// Decrypt or Protocol, never a panic, never wrong plaintext.
    #[test]
    fn corrupted_records_never_panic(
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
        tls12 in any::<bool>(),
    ) {
        let server = if tls12 { server_config_tls12() } else { server_config() };
        let (mut pair, mut record) = established_with_record(server, 300);
        let i = at.index(record.len());
        record[i] ^= xor;
        let end = if truncate { cut.index(record.len()) } else { record.len() };
        let err = receive_then_eof(&mut pair.client, &mut record[..end]).unwrap_err();
        prop_assert!(matches!(err.kind(), TlsErrorKind::Decrypt | TlsErrorKind::Protocol), "{}", err);
    }

    /// Corrupting the server's handshake flight fails the handshake without panicking.
    #[test]
    fn corrupted_handshake_never_panics(at in any::<prop::sample::Index>(), xor in 1u8..=255, tls12 in any::<bool>()) {
        let server = if tls12 { server_config_tls12() } else { server_config() };
        let mut pair = Pair::new(&client_config(server), server);
        let mut plain = Vec::new();
        pair.server.receive(&pair.to_server, &mut plain).unwrap();
        let mut flight = Vec::new();
        pair.server.poll_transmit(&mut flight).unwrap();
        let i = at.index(flight.len());
        flight[i] ^= xor;
        let mut out = Vec::new();
        let result = pair.client.receive(&mut flight, &mut out, &mut plain).and_then(|_| pair.client.receive_eof());
        prop_assert!(result.is_err());
        prop_assert!(plain.is_empty());
    }
}
