//! Every violation of RFC 6455 §5 maps to its typed error and close code; the
//! deliberate-violation encoder produces exactly the violation it names.

use super::support::{decode, rng};
use crate::ProtocolError as E;
use crate::decoder::{Decoder, Role};
use crate::deflate::Inflater;
use crate::encoder::{Encoder, MessageKind};
use crate::frame::{FrameHeader, Opcode, RSV1, RSV2, RSV3};
use crate::fuzzing::Outcome;
use crate::violation::{self, Violation};

fn last(outcomes: Vec<Outcome>) -> Outcome {
    outcomes.into_iter().last().expect("at least one outcome")
}

fn server_decode(bytes: &[u8], max: usize) -> Outcome {
    last(decode(&mut Decoder::new(Role::Server, max), bytes, 1))
}

#[test]
fn violation_encoder_triggers_the_named_error_and_code() {
    let cases = [
        (Violation::Unmasked, E::UnmaskedFrame),
        (Violation::InvalidUtf8, E::InvalidUtf8),
        (Violation::ReservedOpcode(0x3), E::ReservedOpcode),
        (Violation::ReservedOpcode(0xB), E::ReservedOpcode),
        (Violation::ReservedBits(RSV2), E::ReservedBits),
        (Violation::ReservedBits(RSV3), E::ReservedBits),
        (Violation::ReservedBits(RSV1), E::ReservedBits),
        (Violation::OversizeControl, E::ControlFrameTooLong),
        (Violation::FragmentedControl, E::FragmentedControlFrame),
        (Violation::ContinuationWithoutStart, E::UnexpectedContinuation),
        (Violation::InterruptedFragments, E::ExpectedContinuation),
        (Violation::InvalidCloseCode(1005), E::InvalidCloseCode),
        (Violation::InvalidCloseCode(999), E::InvalidCloseCode),
        (Violation::OneByteClose, E::InvalidClosePayload),
        (Violation::OversizeMessage(2048), E::MessageTooBig),
    ];
    for (v, expected) in cases {
        let mut bytes = Vec::new();
        v.write(&mut bytes, &mut rng(1));
        assert_eq!(server_decode(&bytes, 1024), Outcome::Error(expected), "{}", v.name());
        assert_eq!(v.expected_close_code(), Some(expected.close_code()), "{}", v.name());
    }
}

#[test]
fn lenient_violations_decode() {
    let mut bytes = Vec::new();
    Violation::NonMinimalLength.write(&mut bytes, &mut rng(1));
    assert_eq!(bytes[1] & 0x7F, 127, "64-bit length form");
    assert_eq!(server_decode(&bytes, 1024), Outcome::Item("text", b"short".to_vec(), None));
    // A lying length looks like a slow sender: nothing is produced yet.
    let mut bytes = Vec::new();
    Violation::LyingLength { declared: 100, actual: 10 }.write(&mut bytes, &mut rng(1));
    assert!(decode(&mut Decoder::new(Role::Server, 1024), &bytes, 1).is_empty());
    assert_eq!(Violation::LyingLength { declared: 100, actual: 10 }.expected_close_code(), None);
}

#[test]
fn compressed_frame_without_negotiation_is_refused_and_with_it_inflates() {
    let mut bytes = Vec::new();
    violation::compressed_without_negotiation(&mut bytes, &mut rng(1));
    assert_eq!(server_decode(&bytes, 1024), Outcome::Error(E::ReservedBits));
    let mut dec = Decoder::new(Role::Server, 1024);
    dec.set_inflater(Some(Inflater::new(false)));
    assert_eq!(last(decode(&mut dec, &bytes, 2)), Outcome::Item("text", b"Hello".to_vec(), None));
}

#[test]
fn client_refuses_masked_server_frames() {
    let mut out = Vec::new();
    Encoder::new(Role::Client, None).message(&mut out, MessageKind::Text, b"hi", &mut rng(2)).unwrap();
    assert_eq!(last(decode(&mut Decoder::new(Role::Client, 1024), &out, 64)), Outcome::Error(E::MaskedFrame));
}

#[test]
fn compression_bit_on_control_or_continuation_is_refused() {
    let mut dec = Decoder::new(Role::Client, 1024);
    dec.set_inflater(Some(Inflater::new(false)));
    let mut ping = FrameHeader::new(true, Opcode::Ping, None, 0);
    ping.rsv = RSV1;
    let (b, n) = ping.encode();
    assert_eq!(last(decode(&mut dec, &b[..n], 1)), Outcome::Error(E::MisplacedCompressionBit));

    let mut dec = Decoder::new(Role::Client, 1024);
    dec.set_inflater(Some(Inflater::new(false)));
    let mut bytes = vec![0x01, 0x01, b'a'];
    let mut cont = FrameHeader::new(true, Opcode::Continuation, None, 1);
    cont.rsv = RSV1;
    cont.write(&mut bytes);
    bytes.push(b'b');
    assert_eq!(last(decode(&mut dec, &bytes, 1)), Outcome::Error(E::MisplacedCompressionBit));
}

#[test]
fn size_limit_counts_all_fragments_and_fails_on_the_header() {
    // Two 600-byte fragments against a 1000-byte limit: the second header already fails.
    let mut bytes = Vec::new();
    FrameHeader::new(false, Opcode::Binary, None, 600).write(&mut bytes);
    bytes.extend_from_slice(&[0; 600]);
    FrameHeader::new(true, Opcode::Continuation, None, 600).write(&mut bytes);
    let out = decode(&mut Decoder::new(Role::Client, 1000), &bytes, 4096);
    assert_eq!(out, [Outcome::Error(E::MessageTooBig)]);
    // A 64 MiB announcement fails before any payload is read.
    let header = [0x82, 0x7F, 0, 0, 0, 0, 0x04, 0, 0, 0];
    assert_eq!(last(decode(&mut Decoder::new(Role::Client, 1 << 20), &header, 10)), Outcome::Error(E::MessageTooBig));
}

#[test]
fn invalid_utf8_fails_before_the_message_ends() {
    // First fragment carries an encoded surrogate; the error must come without FIN.
    let mut bytes = vec![0x01, 0x05];
    bytes.extend_from_slice(b"ab\xed\xa0\x80");
    let out = decode(&mut Decoder::new(Role::Client, 1024), &bytes, 1);
    assert_eq!(out, [Outcome::Error(E::InvalidUtf8)]);
    // Split code points across fragments are fine.
    let euro = "€".as_bytes();
    let mut bytes = vec![0x01, 0x01, euro[0], 0x00, 0x01, euro[1], 0x80, 0x01, euro[2]];
    assert_eq!(decode(&mut Decoder::new(Role::Client, 1024), &bytes, 1), [Outcome::Item("text", euro.to_vec(), None)]);
    // Truncated code point at the end of the message.
    bytes.truncate(6);
    bytes.extend_from_slice(&[0x80, 0x00]);
    assert_eq!(last(decode(&mut Decoder::new(Role::Client, 1024), &bytes, 1)), Outcome::Error(E::InvalidUtf8));
}

#[test]
fn control_frames_interleave_with_fragments() {
    let bytes = [0x01, 0x02, b'H', b'e', 0x89, 0x01, b'p', 0x8A, 0x00, 0x80, 0x01, b'y'];
    let out = decode(&mut Decoder::new(Role::Client, 1024), &bytes, 1);
    assert_eq!(
        out,
        [
            Outcome::Item("ping", b"p".to_vec(), None),
            Outcome::Item("pong", vec![], None),
            Outcome::Item("text", b"Hey".to_vec(), None)
        ]
    );
}

#[test]
fn close_payloads() {
    let cases: [(&[u8], Outcome); 5] = [
        (&[0x88, 0x00], Outcome::Item("close", vec![], None)),
        (&[0x88, 0x02, 0x03, 0xE8], Outcome::Item("close", vec![], Some(1000))),
        (&[0x88, 0x04, 0x0F, 0xA0, b'o', b'k'], Outcome::Item("close", b"ok".to_vec(), Some(4000))),
        (&[0x88, 0x03, 0x03, 0xE8, 0xFF], Outcome::Error(E::InvalidUtf8)),
        (&[0x88, 0x02, 0x03, 0xEE], Outcome::Error(E::InvalidCloseCode)),
    ];
    for (bytes, expected) in cases {
        assert_eq!(last(decode(&mut Decoder::new(Role::Client, 1024), bytes, 1)), expected, "{bytes:?}");
    }
}

#[test]
fn zero_length_frames_and_back_to_back_messages() {
    let bytes = [0x81, 0x00, 0x82, 0x00, 0x01, 0x00, 0x80, 0x00, 0x81, 0x01, b'z'];
    for chunk in [1, 3, usize::MAX] {
        let out = decode(&mut Decoder::new(Role::Client, 16), &bytes, chunk);
        assert_eq!(
            out,
            [
                Outcome::Item("text", vec![], None),
                Outcome::Item("binary", vec![], None),
                Outcome::Item("text", vec![], None),
                Outcome::Item("text", b"z".to_vec(), None),
            ],
            "chunk {chunk}"
        );
    }
}

#[test]
fn every_error_has_a_name_and_a_close_code_in_the_allowed_set() {
    use crate::close::{INVALID_PAYLOAD, MESSAGE_TOO_BIG, PROTOCOL_ERROR};
    let all = [
        E::MaskedFrame,
        E::UnmaskedFrame,
        E::ReservedBits,
        E::MisplacedCompressionBit,
        E::ReservedOpcode,
        E::ControlFrameTooLong,
        E::FragmentedControlFrame,
        E::UnexpectedContinuation,
        E::ExpectedContinuation,
        E::InvalidLength,
        E::MessageTooBig,
        E::InvalidUtf8,
        E::InvalidCloseCode,
        E::InvalidClosePayload,
        E::DecompressionFailed,
    ];
    let names: std::collections::HashSet<_> = all.iter().map(|e| e.name()).collect();
    assert_eq!(names.len(), all.len(), "names are unique");
    for e in all {
        assert!([PROTOCOL_ERROR, INVALID_PAYLOAD, MESSAGE_TOO_BIG].contains(&e.close_code()), "{e:?}");
    }
    assert_eq!(E::InvalidUtf8.close_code(), INVALID_PAYLOAD);
    assert_eq!(E::MessageTooBig.close_code(), MESSAGE_TOO_BIG);
}
