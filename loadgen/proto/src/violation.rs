//! Deliberately invalid client frames, for testing a server's defences (malformed
//! frames, oversize messages, protocol confusion). Each [`Violation`] knows the close
//! code a compliant server answers with, so a scenario can assert the defence.
//!
//! This module only writes bytes; sending them and judging the answer is the caller's.

use rand_core::RngCore;

use crate::close;
use crate::frame::{FrameHeader, Opcode, RSV1};
use crate::mask::extend_masked;

/// A kind of protocol violation a client can commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Violation {
    /// A text frame without the mask bit (clients must mask).
    Unmasked,
    /// A text frame whose payload is not UTF-8.
    InvalidUtf8,
    /// A frame with a reserved opcode (3..=7 or 0xB..=0xF).
    ReservedOpcode(u8),
    /// A text frame with reserved bits set (RSV1 without deflate, RSV2, RSV3).
    ReservedBits(u8),
    /// A ping with a 126-byte payload.
    OversizeControl,
    /// A ping without FIN.
    FragmentedControl,
    /// A continuation frame with no message started.
    ContinuationWithoutStart,
    /// A text frame without FIN followed by a new text frame.
    InterruptedFragments,
    /// A close frame with a code that may not be sent.
    InvalidCloseCode(u16),
    /// A close frame with a one-byte payload.
    OneByteClose,
    /// A frame whose header declares `declared` bytes but carries `actual`.
    LyingLength {
        /// Length in the header.
        declared: u64,
        /// Bytes actually written.
        actual: usize,
    },
    /// A valid binary message of this size, to trip a server's size limit.
    OversizeMessage(usize),
    /// A 5-byte text frame in the 64-bit length form (legal to decode, never minimal).
    NonMinimalLength,
}

impl Violation {
    /// The close code a compliant server answers with, if the violation is decidable
    /// from the bytes alone (`None` for a lying length, which looks like a slow sender).
    pub fn expected_close_code(self) -> Option<u16> {
        match self {
            Self::InvalidUtf8 => Some(close::INVALID_PAYLOAD),
            Self::OversizeMessage(_) => Some(close::MESSAGE_TOO_BIG),
            Self::LyingLength { .. } | Self::NonMinimalLength => None,
            _ => Some(close::PROTOCOL_ERROR),
        }
    }

    /// Stable snake_case name for scenario files and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unmasked => "unmasked",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::ReservedOpcode(_) => "reserved_opcode",
            Self::ReservedBits(_) => "reserved_bits",
            Self::OversizeControl => "oversize_control",
            Self::FragmentedControl => "fragmented_control",
            Self::ContinuationWithoutStart => "continuation_without_start",
            Self::InterruptedFragments => "interrupted_fragments",
            Self::InvalidCloseCode(_) => "invalid_close_code",
            Self::OneByteClose => "one_byte_close",
            Self::LyingLength { .. } => "lying_length",
            Self::OversizeMessage(_) => "oversize_message",
            Self::NonMinimalLength => "non_minimal_length",
        }
    }

    /// Appends the offending bytes to `out`.
    pub fn write(self, out: &mut Vec<u8>, rng: &mut impl RngCore) {
        let mut key = || Some(rng.next_u32().to_ne_bytes());
        match self {
            Self::Unmasked => raw(out, true, 0, Opcode::Text as u8, None, b"unmasked", None),
            Self::InvalidUtf8 => raw(out, true, 0, Opcode::Text as u8, key(), b"\xce\xba\xed\xa0\x80bad", None),
            Self::ReservedOpcode(op) => raw(out, true, 0, op & 0x0F, key(), b"reserved", None),
            Self::ReservedBits(bits) => raw(out, true, bits & 0b111, Opcode::Text as u8, key(), b"rsv", None),
            Self::OversizeControl => raw(out, true, 0, Opcode::Ping as u8, key(), &[b'p'; 126], None),
            Self::FragmentedControl => raw(out, false, 0, Opcode::Ping as u8, key(), b"ping", None),
            Self::ContinuationWithoutStart => raw(out, true, 0, Opcode::Continuation as u8, key(), b"orphan", None),
            Self::InterruptedFragments => {
                raw(out, false, 0, Opcode::Text as u8, key(), b"first half", None);
                raw(out, true, 0, Opcode::Text as u8, key(), b"new message", None);
            }
            Self::InvalidCloseCode(code) => {
                let mut p = code.to_be_bytes().to_vec();
                p.extend_from_slice(b"bad code");
                raw(out, true, 0, Opcode::Close as u8, key(), &p, None);
            }
            Self::OneByteClose => raw(out, true, 0, Opcode::Close as u8, key(), &[0x03], None),
            Self::LyingLength { declared, actual } => {
                let h =
                    FrameHeader { fin: true, rsv: 0, opcode: Opcode::Binary as u8, mask: key(), payload_len: declared };
                h.write(out);
                extend_masked(out, &vec![0xAB; actual], h.mask.expect("masked"));
            }
            Self::OversizeMessage(size) => raw(out, true, 0, Opcode::Binary as u8, key(), &vec![0x5A; size], None),
            Self::NonMinimalLength => raw(out, true, 0, Opcode::Text as u8, key(), b"short", Some(8)),
        }
    }
}

/// Writes any frame, valid or not.
fn raw(out: &mut Vec<u8>, fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8], form: Option<u8>) {
    let h = FrameHeader { fin, rsv, opcode, mask, payload_len: payload.len() as u64 };
    let (buf, n) = h.encode_with_length_form(form);
    out.extend_from_slice(&buf[..n]);
    match mask {
        Some(key) => extend_masked(out, payload, key),
        None => out.extend_from_slice(payload),
    }
}

/// Appends one valid, masked, uncompressed text frame whose payload is `len` ASCII
/// bytes (`x`), without a payload buffer: the filler is written and masked in place
/// in `out`. For size-limit tests (a message just under or over a server's limit);
/// valid with or without permessage-deflate (RSV1 clear: not compressed).
pub fn filled_text(out: &mut Vec<u8>, len: usize, rng: &mut impl RngCore) {
    let key = rng.next_u32().to_ne_bytes();
    let h = FrameHeader { fin: true, rsv: 0, opcode: Opcode::Text as u8, mask: Some(key), payload_len: len as u64 };
    h.write(out);
    let start = out.len();
    out.resize(start + len, b'x');
    crate::mask::apply_mask(&mut out[start..], key, 0);
}

/// Writes an RSV1 (compressed) text frame, for servers that did not negotiate deflate.
pub fn compressed_without_negotiation(out: &mut Vec<u8>, rng: &mut impl RngCore) {
    raw(
        out,
        true,
        RSV1,
        Opcode::Text as u8,
        Some(rng.next_u32().to_ne_bytes()),
        &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
        None,
    );
}
