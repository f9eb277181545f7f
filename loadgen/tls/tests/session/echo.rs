//! Handshake and echo of 0 B to 1 MiB, the ciphertext split anywhere.

use loadgen_tls::{ProtocolVersion, TlsClientConfig, TlsServerConfig, TlsVersions};
use proptest::prelude::*;

use crate::pipe::{Pair, client_config, server_config, server_config_tiny_records, server_config_tls12};

/// Cuts `bytes` into pieces whose sizes cycle through `sizes` (each ≥ 1).
fn pieces<'a>(bytes: &'a [u8], sizes: &'a [usize]) -> impl Iterator<Item = std::ops::Range<usize>> + 'a {
    let mut at = 0;
    let mut i = 0;
    std::iter::from_fn(move || {
        if at >= bytes.len() {
            return None;
        }
        let size = sizes[i % sizes.len()].max(1);
        i += 1;
        let range = at..(at + size).min(bytes.len());
        at = range.end;
        Some(range)
    })
}

fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8).collect()
}

/// Sends `data` client → server in `send_sizes` pieces, the ciphertext cut by
/// `wire_sizes`; the server echoes every piece it decrypts; the echo's ciphertext
/// reaches the client cut by `wire_sizes` too. Checks the echo byte for byte.
fn echo(client: &TlsClientConfig, server: &TlsServerConfig, data: &[u8], send_sizes: &[usize], wire_sizes: &[usize]) {
    let mut pair = Pair::new(client, server);
    pair.handshake().unwrap();
    assert!(pair.client.is_handshake_complete());
    assert_eq!(pair.client.incoming_capacity(), 0, "idle after the handshake");

    let mut to_server = Vec::new();
    for range in pieces(data, send_sizes) {
        let appended = pair.client.send(&data[range.clone()], &mut to_server).unwrap();
        assert!(appended > range.len(), "ciphertext carries overhead");
    }
    let mut to_client = Vec::new();
    let mut echoed = Vec::new();
    for range in pieces(&to_server, wire_sizes) {
        pair.server_plain.clear();
        pair.server.receive(&to_server[range], &mut pair.server_plain).unwrap();
        pair.server.send(&pair.server_plain, &mut to_client).unwrap();
        echoed.extend_from_slice(&pair.server_plain);
    }
    assert_eq!(echoed.len(), data.len());

    let mut client_out = Vec::new();
    let mut received = Vec::with_capacity(data.len());
    let ranges: Vec<_> = pieces(&to_client, wire_sizes).collect();
    for range in ranges {
        pair.client.receive(&mut to_client[range], &mut client_out, &mut received).unwrap();
        assert!(pair.client.buffered_incoming() < 16 * 1024 + 256 + 70_000, "bounded partial record");
    }
    assert!(client_out.is_empty(), "nothing to answer to application data");
    assert!(received == data, "echo differs: {} bytes back for {}", received.len(), data.len());
    assert_eq!(pair.client.buffered_incoming(), 0);
    assert_eq!(pair.client.incoming_capacity(), 0, "idle after the echo: no receive buffer held");
}

#[test]
fn handshake_negotiates_tls13_and_alpn() {
    let mut pair = Pair::new(&client_config(server_config()), server_config());
    assert!(!pair.client.is_handshake_complete());
    pair.handshake().unwrap();
    assert_eq!(pair.client.protocol_version(), Some(ProtocolVersion::TLSv1_3));
    assert_eq!(pair.client.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert!(!pair.client.is_resumed());
    assert_eq!(pair.client.failed(), None);
    assert_eq!(pair.client.incoming_capacity(), 0);
}

#[test]
fn handshake_negotiates_tls12() {
    let server = server_config_tls12();
    let mut pair = Pair::new(&client_config(server), server);
    pair.handshake().unwrap();
    assert_eq!(pair.client.protocol_version(), Some(ProtocolVersion::TLSv1_2));
    assert_eq!(pair.client.incoming_capacity(), 0);
    echo(&client_config(server), server, &payload(100_000, 7), &[1000, 17_000], &[3, 4096, 20_000]);
}

#[test]
fn handshake_bytes_split_one_at_a_time() {
    let server = server_config();
    let mut pair = Pair::new(&client_config(server), server);
    for _ in 0..16 {
        let mut plain = Vec::new();
        pair.server.receive(&std::mem::take(&mut pair.to_server), &mut plain).unwrap();
        pair.server.poll_transmit(&mut pair.to_client).unwrap();
        let mut bytes = std::mem::take(&mut pair.to_client);
        for i in 0..bytes.len() {
            pair.client.receive(&mut bytes[i..i + 1], &mut pair.to_server, &mut plain).unwrap();
        }
        if pair.client.is_handshake_complete() && pair.server.is_handshake_complete() && pair.to_server.is_empty() {
            break;
        }
    }
    assert!(pair.client.is_handshake_complete());
    assert_eq!(pair.client.incoming_capacity(), 0);
    echo(&client_config(server), server, &payload(65_536, 1), &[65_536], &[1]);
}

#[test]
fn empty_and_one_mebibyte() {
    let config = client_config(server_config());
    echo(&config, server_config(), &[], &[1], &[1]);
    echo(&config, server_config(), &payload(1 << 20, 3), &[1 << 20], &[65_536]);
    echo(&config, server_config(), &payload(1 << 20, 4), &[100_000, 7], &[16_406, 16_405, 1, 9000]);
}

#[test]
fn send_before_handshake_is_refused_without_failing() {
    let config = client_config(server_config());
    let mut pair = Pair::new(&config, server_config());
    let mut out = Vec::new();
    let err = pair.client.send(b"early", &mut out).unwrap_err();
    assert!(matches!(err, loadgen_tls::TlsError::HandshakeNotComplete), "{err}");
    assert_eq!(pair.client.failed(), None);
    pair.handshake().unwrap();
    pair.client.send(b"now", &mut out).unwrap();
}

#[test]
fn tls13_only_client_against_tls12_only_server_fails_handshake() {
    let server = server_config_tls12();
    let client = TlsClientConfig::builder()
        .server_name("localhost")
        .ca_pem(server.cert_pem())
        .versions(TlsVersions::Tls13Only)
        .build()
        .unwrap();
    let mut pair = Pair::new(&client, server);
    let err = pair.handshake().unwrap_err();
    let kind = match err {
        crate::pipe::Failure::Client(e) | crate::pipe::Failure::Server(e) => e.kind(),
    };
    assert_eq!(kind, loadgen_tls::TlsErrorKind::HandshakeFailure);
}

fn data_len() -> impl Strategy<Value = usize> {
    prop_oneof![0usize..=64, 0usize..=40_000, 0usize..=(1 << 20)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// 64-byte records: handshake messages span records, so the client keeps processed
    /// bytes of a message in reassembly between calls, whatever the receive splits.
    #[test]
    fn tiny_records_any_split(
        len in 0usize..20_000,
        sizes in prop::collection::vec(1usize..300, 1..6),
        tls12 in any::<bool>(),
    ) {
        let server = server_config_tiny_records(tls12);
        let config = client_config(server);
        let mut pair = Pair::new(&config, server);
        pair.handshake_split(&sizes).unwrap();
        prop_assert_eq!(pair.client.incoming_capacity(), 0);
        let mut second = Pair::new(&config, server);
        second.handshake_split(&sizes).unwrap();
        prop_assert!(second.client.is_resumed());
        echo(&config, server, &payload(len, 9), &[len.max(1)], &sizes);
    }

    #[test]
    fn echo_any_size_any_split(
        len in data_len(),
        seed in any::<u8>(),
        send_sizes in prop::collection::vec(1usize..40_000, 1..6),
        wire_sizes in prop::collection::vec(1usize..70_000, 1..8),
        tls12 in any::<bool>(),
    ) {
        let server = if tls12 { server_config_tls12() } else { server_config() };
        // Tiny pieces only for small payloads: keeps the case count × time small.
        let wire_sizes: Vec<usize> =
            wire_sizes.iter().map(|&s| if len > 65_536 { s.max(1024) } else { s }).collect();
        echo(&client_config(server), server, &payload(len, seed), &send_sizes, &wire_sizes);
    }
}
