//! Frame encoder: messages and control frames out, masked with a fresh key per frame
//! (client role), optionally compressed (permessage-deflate) and fragmented.
//!
//! Frames are appended to a caller-owned `Vec<u8>` whose capacity is reused, so steady
//! state does not allocate. Keys come from the caller's RNG; nothing here reads a
//! clock or does I/O.

use rand_core::RngCore;

use crate::close;
use crate::decoder::Role;
use crate::deflate::Deflater;
use crate::error::SendError;
use crate::frame::{FrameHeader, MAX_CONTROL_PAYLOAD, Opcode, RSV1};
use crate::mask::extend_masked;

/// Kind of a data message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// UTF-8 text.
    Text,
    /// Binary.
    Binary,
}

impl MessageKind {
    fn opcode(self) -> Opcode {
        match self {
            Self::Text => Opcode::Text,
            Self::Binary => Opcode::Binary,
        }
    }
}

/// Encodes frames for one connection.
#[derive(Debug)]
pub struct Encoder {
    role: Role,
    deflater: Option<Deflater>,
    scratch: Vec<u8>,
    /// Outgoing fragment size; `None` sends every message as one frame.
    fragment_size: Option<usize>,
    /// A streamed (fragmented by the caller) message is open: (compressed).
    streaming: Option<bool>,
}

impl Encoder {
    /// An encoder for `role` (clients mask, servers do not).
    pub fn new(role: Role, fragment_size: Option<usize>) -> Self {
        Self {
            role,
            deflater: None,
            scratch: Vec::new(),
            fragment_size: fragment_size.filter(|&n| n > 0),
            streaming: None,
        }
    }

    /// Enables permessage-deflate on the send side.
    pub fn set_deflater(&mut self, deflater: Option<Deflater>) {
        self.deflater = deflater;
    }

    /// The deflater, if permessage-deflate is on.
    pub fn deflater(&self) -> Option<&Deflater> {
        self.deflater.as_ref()
    }

    /// The deflater, to reset it.
    pub fn deflater_mut(&mut self) -> Option<&mut Deflater> {
        self.deflater.as_mut()
    }

    /// Whether no caller-streamed message is open.
    pub fn at_message_boundary(&self) -> bool {
        self.streaming.is_none()
    }

    /// Forgets a streamed message in progress (buffers and deflater are kept).
    pub fn reset(&mut self) {
        self.streaming = None;
        self.scratch.clear();
    }

    /// Capacity held by the encoder's scratch buffer, for memory accounting.
    pub fn buffer_capacity(&self) -> usize {
        self.scratch.capacity()
    }

    fn mask_key(&self, rng: &mut impl RngCore) -> Option<[u8; 4]> {
        match self.role {
            Role::Client => Some(rng.next_u32().to_ne_bytes()),
            Role::Server => None,
        }
    }

    fn frame(&self, out: &mut Vec<u8>, fin: bool, rsv: u8, opcode: Opcode, payload: &[u8], rng: &mut impl RngCore) {
        let mut header = FrameHeader::new(fin, opcode, self.mask_key(rng), payload.len() as u64);
        header.rsv = rsv;
        header.write(out);
        match header.mask {
            Some(key) => extend_masked(out, payload, key),
            None => out.extend_from_slice(payload),
        }
    }

    /// Appends one whole message, compressed if negotiated and fragmented if configured.
    pub fn message(
        &mut self,
        out: &mut Vec<u8>,
        kind: MessageKind,
        payload: &[u8],
        rng: &mut impl RngCore,
    ) -> Result<(), SendError> {
        if self.streaming.is_some() {
            return Err(SendError::FragmentSequence);
        }
        let (body, rsv) = match self.deflater.as_mut() {
            Some(d) => {
                let mut scratch = std::mem::take(&mut self.scratch);
                scratch.clear();
                d.compress(payload, &mut scratch, true);
                (Some(scratch), RSV1)
            }
            None => (None, 0),
        };
        let bytes = body.as_deref().unwrap_or(payload);
        match self.fragment_size {
            Some(size) if bytes.len() > size => {
                let mut chunks = bytes.chunks(size).peekable();
                let mut opcode = kind.opcode();
                let mut first_rsv = rsv;
                while let Some(chunk) = chunks.next() {
                    self.frame(out, chunks.peek().is_none(), first_rsv, opcode, chunk, rng);
                    opcode = Opcode::Continuation;
                    first_rsv = 0;
                }
            }
            _ => self.frame(out, true, rsv, kind.opcode(), bytes, rng),
        }
        if let Some(scratch) = body {
            self.scratch = scratch;
        }
        Ok(())
    }

    /// Starts a message the caller sends in pieces; control frames may be encoded
    /// between the pieces.
    pub fn begin_fragmented(
        &mut self,
        out: &mut Vec<u8>,
        kind: MessageKind,
        first: &[u8],
        rng: &mut impl RngCore,
    ) -> Result<(), SendError> {
        if self.streaming.is_some() {
            return Err(SendError::FragmentSequence);
        }
        let compressed = self.deflater.is_some();
        self.streaming = Some(compressed);
        self.piece(out, kind.opcode(), if compressed { RSV1 } else { 0 }, first, false, rng);
        Ok(())
    }

    /// Sends the next piece of a message started with [`Encoder::begin_fragmented`];
    /// `fin` ends the message.
    pub fn continue_fragmented(
        &mut self,
        out: &mut Vec<u8>,
        piece: &[u8],
        fin: bool,
        rng: &mut impl RngCore,
    ) -> Result<(), SendError> {
        if self.streaming.is_none() {
            return Err(SendError::FragmentSequence);
        }
        self.piece(out, Opcode::Continuation, 0, piece, fin, rng);
        if fin {
            self.streaming = None;
        }
        Ok(())
    }

    fn piece(&mut self, out: &mut Vec<u8>, opcode: Opcode, rsv: u8, data: &[u8], fin: bool, rng: &mut impl RngCore) {
        match (self.streaming, self.deflater.as_mut()) {
            (Some(true), Some(d)) => {
                let mut scratch = std::mem::take(&mut self.scratch);
                scratch.clear();
                d.compress(data, &mut scratch, fin);
                self.frame(out, fin, rsv, opcode, &scratch, rng);
                self.scratch = scratch;
            }
            _ => self.frame(out, fin, rsv, opcode, data, rng),
        }
    }

    /// Appends a ping, pong or close frame.
    pub fn control(
        &mut self,
        out: &mut Vec<u8>,
        opcode: Opcode,
        payload: &[u8],
        rng: &mut impl RngCore,
    ) -> Result<(), SendError> {
        debug_assert!(opcode.is_control());
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(SendError::ControlTooLong);
        }
        self.frame(out, true, 0, opcode, payload, rng);
        Ok(())
    }

    /// Appends a close frame with `code` and `reason` (`code` `None`: empty payload).
    pub fn close(
        &mut self,
        out: &mut Vec<u8>,
        code: Option<u16>,
        reason: &str,
        rng: &mut impl RngCore,
    ) -> Result<(), SendError> {
        let Some(code) = code else { return self.control(out, Opcode::Close, &[], rng) };
        if !close::is_valid_wire_code(code) {
            return Err(SendError::InvalidCloseCode);
        }
        if reason.len() > close::MAX_REASON_LEN {
            return Err(SendError::ControlTooLong);
        }
        let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
        payload[..2].copy_from_slice(&code.to_be_bytes());
        payload[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
        self.control(out, Opcode::Close, &payload[..2 + reason.len()], rng)
    }
}
