//! The worked examples of RFC 6455 §5.7, byte for byte, in both directions.

use super::support::{FixedKey, decode, rng};
use crate::decoder::{Decoder, Role};
use crate::encoder::{Encoder, MessageKind};
use crate::frame::Opcode;
use crate::fuzzing::Outcome;

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn item(kind: &'static str, bytes: &[u8]) -> Outcome {
    Outcome::Item(kind, bytes.to_vec(), None)
}

#[test]
fn single_frame_unmasked_text() {
    let wire = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    assert_eq!(decode(&mut Decoder::new(Role::Client, 1024), &wire, 1), [item("text", b"Hello")]);
    let mut out = Vec::new();
    Encoder::new(Role::Server, None).message(&mut out, MessageKind::Text, b"Hello", &mut rng(0)).unwrap();
    assert_eq!(out, wire);
}

#[test]
fn single_frame_masked_text() {
    let wire = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
    assert_eq!(decode(&mut Decoder::new(Role::Server, 1024), &wire, 3), [item("text", b"Hello")]);
    let mut out = Vec::new();
    Encoder::new(Role::Client, None).message(&mut out, MessageKind::Text, b"Hello", &mut FixedKey(KEY)).unwrap();
    assert_eq!(out, wire);
}

#[test]
fn fragmented_unmasked_text() {
    let wire = [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f];
    for chunk in [1, 2, 5, 9] {
        assert_eq!(decode(&mut Decoder::new(Role::Client, 1024), &wire, chunk), [item("text", b"Hello")]);
    }
    let mut out = Vec::new();
    let mut enc = Encoder::new(Role::Server, None);
    enc.begin_fragmented(&mut out, MessageKind::Text, b"Hel", &mut rng(0)).unwrap();
    enc.continue_fragmented(&mut out, b"lo", true, &mut rng(0)).unwrap();
    assert_eq!(out, wire);
}

#[test]
fn ping_and_masked_pong() {
    let ping = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    assert_eq!(decode(&mut Decoder::new(Role::Client, 1024), &ping, 1), [item("ping", b"Hello")]);
    let pong = [0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
    assert_eq!(decode(&mut Decoder::new(Role::Server, 1024), &pong, 1), [item("pong", b"Hello")]);
    let mut out = Vec::new();
    Encoder::new(Role::Client, None).control(&mut out, Opcode::Pong, b"Hello", &mut FixedKey(KEY)).unwrap();
    assert_eq!(out, pong);
}

#[test]
fn binary_256_bytes_and_64_kib() {
    for (len, header) in [(256usize, vec![0x82, 0x7E, 0x01, 0x00]), (65536, vec![0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0])] {
        let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut wire = header.clone();
        wire.extend_from_slice(&payload);
        let mut out = Vec::new();
        Encoder::new(Role::Server, None).message(&mut out, MessageKind::Binary, &payload, &mut rng(0)).unwrap();
        assert_eq!(out, wire, "{len} bytes");
        for chunk in [1, 7, 4096, usize::MAX] {
            assert_eq!(
                decode(&mut Decoder::new(Role::Client, 1 << 20), &wire, chunk),
                [item("binary", &payload)],
                "{len} bytes in chunks of {chunk}"
            );
        }
    }
}

#[test]
fn every_client_frame_gets_a_fresh_mask_key() {
    let mut out = Vec::new();
    let mut enc = Encoder::new(Role::Client, None);
    let mut r = rng(7);
    let mut keys = std::collections::HashSet::new();
    for _ in 0..1000 {
        out.clear();
        enc.message(&mut out, MessageKind::Binary, b"x", &mut r).unwrap();
        assert_eq!(out[1] & 0x80, 0x80, "mask bit set");
        keys.insert([out[2], out[3], out[4], out[5]]);
    }
    assert!(keys.len() > 990, "keys repeat: {} distinct of 1000", keys.len());
}
