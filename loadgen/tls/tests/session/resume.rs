//! Session resumption: a second connection from the same client config resumes the
//! first one's session (TLS 1.3 ticket; TLS 1.2 ticket or session id), on both sides'
//! word (`handshake_kind()` of the client and of the server).

use loadgen_tls::{HandshakeKind, ProtocolVersion, TlsClientConfig, TlsServerConfig};

use crate::pipe::{Pair, client_config, server_config, server_config_tls12};

fn connect(client: &TlsClientConfig, server: &TlsServerConfig) -> Pair {
    let mut pair = Pair::new(client, server);
    pair.handshake().unwrap();
    // Application data flows on a resumed session too.
    let mut out = Vec::new();
    pair.client.send(b"ping", &mut out).unwrap();
    let mut plain = Vec::new();
    pair.server.receive(&out, &mut plain).unwrap();
    assert_eq!(plain, b"ping");
    pair
}

fn resumes(server: &TlsServerConfig, version: ProtocolVersion) {
    let client = client_config(server);
    let first = connect(&client, server);
    assert_eq!(first.client.protocol_version(), Some(version));
    assert_eq!(first.client.handshake_kind(), Some(HandshakeKind::Full));
    assert!(!first.client.is_resumed());
    assert!(!first.server.is_resumed());

    let second = connect(&client, server);
    assert_eq!(second.client.protocol_version(), Some(version));
    assert!(second.client.is_resumed(), "client: {:?}", second.client.handshake_kind());
    assert!(second.server.is_resumed(), "the server agrees it resumed");

    // A clone shares the cache: resumes too.
    let third = connect(&client.clone(), server);
    assert!(third.client.is_resumed());

    // A worker copy starts with an empty cache: full handshake.
    let fourth = connect(&client.for_worker(), server);
    assert!(!fourth.client.is_resumed());
}

#[test]
fn tls13_second_connection_resumes() {
    resumes(server_config(), ProtocolVersion::TLSv1_3);
}

#[test]
fn tls12_second_connection_resumes() {
    resumes(server_config_tls12(), ProtocolVersion::TLSv1_2);
}

#[test]
fn resumption_off_means_full_handshakes() {
    for server in [server_config(), server_config_tls12()] {
        let client = TlsClientConfig::builder()
            .server_name("localhost")
            .ca_pem(server.cert_pem())
            .resumption(false)
            .build()
            .unwrap();
        assert_eq!(client.resumption_cache_size(), 0);
        connect(&client, server);
        let second = connect(&client, server);
        assert!(!second.client.is_resumed());
        assert!(!second.server.is_resumed());
    }
}

#[test]
fn many_connections_from_one_worker_config_resume() {
    let client = client_config(server_config()).for_worker();
    connect(&client, server_config());
    // Each full or resumed TLS 1.3 handshake brings new tickets: every later connection
    // of the same worker resumes.
    for _ in 0..5 {
        assert!(connect(&client, server_config()).client.is_resumed());
    }
}
