//! close_notify both ways, and the receive buffer of an idle session.

use loadgen_tls::{TlsError, TlsErrorKind};

use crate::pipe::{Pair, client_config, server_config, server_config_tls12};

fn established(tls12: bool) -> Pair {
    let server = if tls12 { server_config_tls12() } else { server_config() };
    let mut pair = Pair::new(&client_config(server), server);
    pair.handshake().unwrap();
    pair
}

#[test]
fn client_closes_first() {
    for tls12 in [false, true] {
        let mut pair = established(tls12);
        let mut out = Vec::new();
        pair.client.close(&mut out).unwrap();
        assert!(pair.client.close_sent());
        assert!(!out.is_empty());
        pair.client.close(&mut out).unwrap(); // idempotent, nothing more appended
        let err = pair.client.send(b"late", &mut Vec::new()).unwrap_err();
        assert!(matches!(err, TlsError::Closed));
        assert_eq!(err.kind(), TlsErrorKind::Closed);

        let mut plain = Vec::new();
        pair.server.receive(&out, &mut plain).unwrap();
        assert!(pair.server.peer_closed());
        // The server still answers with data, then its own close_notify.
        let mut to_client = Vec::new();
        pair.server.send(b"last words", &mut to_client).unwrap();
        pair.server.close();
        pair.server.poll_transmit(&mut to_client).unwrap();
        let mut reply = Vec::new();
        pair.client.receive(&mut to_client, &mut Vec::new(), &mut reply).unwrap();
        assert_eq!(reply, b"last words");
        assert!(pair.client.peer_closed());
        assert!(pair.client.is_closed());
        pair.client.receive_eof().unwrap();
        assert_eq!(pair.client.incoming_capacity(), 0);
    }
}

#[test]
fn server_closes_first() {
    for tls12 in [false, true] {
        let mut pair = established(tls12);
        let mut to_client = Vec::new();
        pair.server.send(b"bye", &mut to_client).unwrap();
        pair.server.close();
        pair.server.poll_transmit(&mut to_client).unwrap();
        // Bytes after close_notify are ignored.
        to_client.extend_from_slice(&[0x17, 3, 3, 0, 5, 1, 2, 3]);
        let mut out = Vec::new();
        let mut plain = Vec::new();
        pair.client.receive(&mut to_client, &mut out, &mut plain).unwrap();
        assert_eq!(plain, b"bye");
        assert!(pair.client.peer_closed());
        assert!(!pair.client.is_closed());
        assert_eq!(pair.client.incoming_capacity(), 0, "trailing bytes dropped");
        assert_eq!(pair.client.receive(&mut [1, 2, 3], &mut out, &mut plain).unwrap(), 0);
        pair.client.receive_eof().unwrap();

        // We may still send before closing our side.
        pair.client.send(b"ack", &mut out).unwrap();
        pair.client.close(&mut out).unwrap();
        assert!(pair.client.is_closed());
        let mut server_plain = Vec::new();
        pair.server.receive(&out, &mut server_plain).unwrap();
        assert_eq!(server_plain, b"ack");
        assert!(pair.server.peer_closed());
    }
}

#[test]
fn close_during_handshake_is_refused() {
    let mut pair = Pair::new(&client_config(server_config()), server_config());
    let err = pair.client.close(&mut Vec::new()).unwrap_err();
    assert!(matches!(err, TlsError::HandshakeNotComplete));
    pair.handshake().unwrap();
}

#[test]
fn idle_session_holds_no_receive_buffer() {
    for tls12 in [false, true] {
        let mut pair = established(tls12);
        assert_eq!(pair.client.incoming_capacity(), 0);
        let mut records = Vec::new();
        pair.server.send(&[7u8; 5000], &mut records).unwrap();
        pair.server.send(&[8u8; 10], &mut records).unwrap();
        let mut out = Vec::new();
        let mut plain = Vec::new();
        // Part of the first record: kept.
        pair.client.receive(&mut records[..100], &mut out, &mut plain).unwrap();
        assert_eq!(pair.client.buffered_incoming(), 100);
        assert!(pair.client.incoming_capacity() > 0);
        // The rest of the first record and part of the second: the tail is kept.
        let first_len = 5 + u16::from_be_bytes([records[3], records[4]]) as usize;
        pair.client.receive(&mut records[100..first_len + 3], &mut out, &mut plain).unwrap();
        assert_eq!(plain.len(), 5000);
        assert_eq!(pair.client.buffered_incoming(), 3);
        // The end: nothing kept, nothing allocated.
        let end = records.len();
        pair.client.receive(&mut records[first_len + 3..end], &mut out, &mut plain).unwrap();
        assert_eq!(plain.len(), 5010);
        assert_eq!(pair.client.buffered_incoming(), 0);
        assert_eq!(pair.client.incoming_capacity(), 0);
        assert!(out.is_empty());
        assert!(pair.client.heap_bytes_estimate() > 0);
    }
}
