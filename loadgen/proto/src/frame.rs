//! Frame headers (RFC 6455 §5.2): opcodes, the 7/16/64-bit length forms, encoding into a
//! fixed buffer and incremental parsing. No payload handling and no validation of
//! semantics (which opcodes may follow which): that is the decoder's job.

use crate::error::ProtocolError;

/// Largest header: 2 bytes + 8 bytes of extended length + 4 bytes of mask key.
pub const MAX_HEADER_LEN: usize = 14;
/// Largest control-frame payload.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// RSV1: "per-message compressed" under permessage-deflate.
pub const RSV1: u8 = 0b100;
/// RSV2 (no extension defines it).
pub const RSV2: u8 = 0b010;
/// RSV3 (no extension defines it).
pub const RSV3: u8 = 0b001;

/// The defined opcodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Opcode {
    /// Continuation of a fragmented message.
    Continuation = 0x0,
    /// Text message (UTF-8).
    Text = 0x1,
    /// Binary message.
    Binary = 0x2,
    /// Close.
    Close = 0x8,
    /// Ping.
    Ping = 0x9,
    /// Pong.
    Pong = 0xA,
}

impl Opcode {
    /// Decodes an opcode nibble; `None` for the reserved values.
    pub fn from_u8(raw: u8) -> Option<Self> {
        Some(match raw {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            _ => return None,
        })
    }

    /// Close, ping and pong.
    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// A frame header as it is on the wire. `opcode` and `rsv` are raw so that the
/// deliberate-violation encoder can write reserved values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN bit.
    pub fin: bool,
    /// RSV1..RSV3 as the low three bits (`RSV1` = 0b100).
    pub rsv: u8,
    /// Opcode nibble.
    pub opcode: u8,
    /// Masking key, if the mask bit is set.
    pub mask: Option<[u8; 4]>,
    /// Payload length.
    pub payload_len: u64,
}

impl FrameHeader {
    /// Header for a data or control frame with a defined opcode.
    pub fn new(fin: bool, opcode: Opcode, mask: Option<[u8; 4]>, payload_len: u64) -> Self {
        Self { fin, rsv: 0, opcode: opcode as u8, mask, payload_len }
    }

    /// Number of bytes [`FrameHeader::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        let ext = match self.payload_len {
            0..=125 => 0,
            126..=0xFFFF => 2,
            _ => 8,
        };
        2 + ext + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Encodes with the minimal length form; returns the buffer and the used length.
    pub fn encode(&self) -> ([u8; MAX_HEADER_LEN], usize) {
        self.encode_with_length_form(None)
    }

    /// Encodes, optionally forcing the 16-bit (`Some(2)`) or 64-bit (`Some(8)`) length
    /// form even for short payloads (non-minimal, for violation tests).
    pub fn encode_with_length_form(&self, form: Option<u8>) -> ([u8; MAX_HEADER_LEN], usize) {
        let mut buf = [0u8; MAX_HEADER_LEN];
        buf[0] = (u8::from(self.fin) << 7) | ((self.rsv & 0b111) << 4) | (self.opcode & 0x0F);
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let form = form.unwrap_or(match self.payload_len {
            0..=125 => 0,
            126..=0xFFFF => 2,
            _ => 8,
        });
        let mut n = 2;
        match form {
            0 => buf[1] = mask_bit | self.payload_len as u8,
            2 => {
                buf[1] = mask_bit | 126;
                buf[2..4].copy_from_slice(&(self.payload_len as u16).to_be_bytes());
                n = 4;
            }
            _ => {
                buf[1] = mask_bit | 127;
                buf[2..10].copy_from_slice(&self.payload_len.to_be_bytes());
                n = 10;
            }
        }
        if let Some(key) = self.mask {
            buf[n..n + 4].copy_from_slice(&key);
            n += 4;
        }
        (buf, n)
    }

    /// Appends the encoded header to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        let (buf, n) = self.encode();
        out.extend_from_slice(&buf[..n]);
    }

    /// Parses a header from the start of `buf`. `Ok(None)`: more bytes are needed.
    /// Returns the header and the number of bytes it occupied.
    #[inline]
    pub fn parse(buf: &[u8]) -> Result<Option<(Self, usize)>, ProtocolError> {
        if buf.len() < 2 {
            return Ok(None);
        }
        let b0 = buf[0];
        let b1 = buf[1];
        let masked = b1 & 0x80 != 0;
        let (payload_len, mut n) = match b1 & 0x7F {
            126 => {
                let Some(ext) = buf.get(2..4) else { return Ok(None) };
                (u64::from(u16::from_be_bytes([ext[0], ext[1]])), 4)
            }
            127 => {
                let Some(ext) = buf.get(2..10) else { return Ok(None) };
                let len = u64::from_be_bytes(ext.try_into().expect("8 bytes"));
                if len >> 63 != 0 {
                    return Err(ProtocolError::InvalidLength);
                }
                (len, 10)
            }
            short => (u64::from(short), 2),
        };
        let mask = if masked {
            let Some(key) = buf.get(n..n + 4) else { return Ok(None) };
            n += 4;
            Some([key[0], key[1], key[2], key[3]])
        } else {
            None
        };
        let header = Self { fin: b0 & 0x80 != 0, rsv: (b0 >> 4) & 0b111, opcode: b0 & 0x0F, mask, payload_len };
        Ok(Some((header, n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(h: FrameHeader) {
        let (buf, n) = h.encode();
        assert_eq!(n, h.encoded_len());
        for cut in 0..n {
            assert_eq!(FrameHeader::parse(&buf[..cut]), Ok(None), "cut {cut}");
        }
        assert_eq!(FrameHeader::parse(&buf[..n]), Ok(Some((h, n))));
    }

    #[test]
    fn all_length_forms_roundtrip() {
        for len in [0, 1, 125, 126, 127, 65535, 65536, 1 << 40, (1 << 63) - 1] {
            roundtrip(FrameHeader::new(true, Opcode::Binary, None, len));
            roundtrip(FrameHeader::new(false, Opcode::Text, Some([1, 2, 3, 4]), len));
        }
    }

    #[test]
    fn rfc6455_length_examples() {
        // §5.7: 256 bytes binary unmasked -> 0x82 0x7E 0x0100; 64 KiB -> 0x82 0x7F 0x...010000.
        let (b, n) = FrameHeader::new(true, Opcode::Binary, None, 256).encode();
        assert_eq!(&b[..n], &[0x82, 0x7E, 0x01, 0x00]);
        let (b, n) = FrameHeader::new(true, Opcode::Binary, None, 65536).encode();
        assert_eq!(&b[..n], &[0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00]);
    }

    #[test]
    fn msb_of_64_bit_length_is_rejected() {
        let buf = [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(FrameHeader::parse(&buf), Err(ProtocolError::InvalidLength));
    }

    #[test]
    fn opcode_table() {
        for raw in 0..16u8 {
            let op = Opcode::from_u8(raw);
            assert_eq!(op.is_some(), matches!(raw, 0 | 1 | 2 | 8 | 9 | 10), "{raw}");
            if let Some(op) = op {
                assert_eq!(op as u8, raw);
                assert_eq!(op.is_control(), raw >= 8);
            }
        }
    }
}
