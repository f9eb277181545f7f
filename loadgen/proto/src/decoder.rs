//! Incremental frame decoder: bytes in (split anywhere), whole messages and control
//! frames out, with every RFC 6455 §5 check.
//!
//! A frame that is a whole uncompressed message and arrives in one read is handed out
//! straight from the caller's input (no copy). Otherwise payloads are assembled in
//! buffers owned by the decoder and reused for every message, so steady state does not
//! allocate. Text is validated incrementally, so bad UTF-8 fails before the message
//! ends. The decoder does not write anything: replies (pong, close) are the caller's.

use crate::deflate::Inflater;
use crate::error::ProtocolError;
use crate::frame::{FrameHeader, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, Opcode, RSV1};
use crate::mask::apply_mask;
use crate::utf8::Utf8Validator;

/// Which end of the connection decodes: it decides whether frames must be masked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Receives server frames, which must not be masked.
    Client,
    /// Receives client frames, which must be masked.
    Server,
}

/// What the decoder produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A complete text message.
    Text(&'a str),
    /// A complete binary message.
    Binary(&'a [u8]),
    /// A ping with its payload.
    Ping(&'a [u8]),
    /// A pong with its payload.
    Pong(&'a [u8]),
    /// A close frame; `code` is `None` for an empty payload.
    Close {
        /// Status code, if present.
        code: Option<u16>,
        /// Reason (valid UTF-8, possibly empty).
        reason: &'a str,
    },
}

#[derive(Clone, Copy, Debug)]
enum State {
    Header,
    Payload { header: FrameHeader, opcode: Opcode, remaining: u64, offset: usize },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ready {
    Borrowed { start: usize, end: usize, text: bool },
    Message { text: bool },
    Control(Opcode),
}

/// The decoder. One per connection; reuse it for the connection's whole life.
#[derive(Debug)]
pub struct Decoder {
    role: Role,
    max_message_size: usize,
    state: State,
    header_buf: [u8; MAX_HEADER_LEN],
    header_len: usize,
    /// Kind of the fragmented or buffered message in progress: (text, compressed).
    message: Option<(bool, bool)>,
    message_buf: Vec<u8>,
    compressed_buf: Vec<u8>,
    utf8: Utf8Validator,
    control_buf: [u8; MAX_CONTROL_PAYLOAD],
    control_len: usize,
    inflater: Option<Inflater>,
}

impl Decoder {
    /// A decoder for `role`, refusing messages over `max_message_size` bytes
    /// (after decompression).
    pub fn new(role: Role, max_message_size: usize) -> Self {
        Self {
            role,
            max_message_size,
            state: State::Header,
            header_buf: [0; MAX_HEADER_LEN],
            header_len: 0,
            message: None,
            message_buf: Vec::new(),
            compressed_buf: Vec::new(),
            utf8: Utf8Validator::default(),
            control_buf: [0; MAX_CONTROL_PAYLOAD],
            control_len: 0,
            inflater: None,
        }
    }

    /// Enables permessage-deflate on the receive side (RSV1 becomes legal).
    pub fn set_inflater(&mut self, inflater: Option<Inflater>) {
        self.inflater = inflater;
    }

    /// Capacity held by the decoder's buffers, for memory accounting.
    pub fn buffer_capacity(&self) -> usize {
        self.message_buf.capacity() + self.compressed_buf.capacity()
    }

    /// Whether the decoder is between frames (no partial header or payload buffered).
    pub fn at_frame_boundary(&self) -> bool {
        matches!(self.state, State::Header) && self.header_len == 0
    }

    /// Whether the decoder is between messages: between frames and no fragmented
    /// message open. Nothing but the configuration and buffer capacity is held then.
    pub fn at_message_boundary(&self) -> bool {
        self.at_frame_boundary() && self.message.is_none()
    }

    /// The inflater, if permessage-deflate is on.
    pub fn inflater(&self) -> Option<&Inflater> {
        self.inflater.as_ref()
    }

    /// The inflater, to reset or reconfigure it.
    pub fn inflater_mut(&mut self) -> Option<&mut Inflater> {
        self.inflater.as_mut()
    }

    /// Forgets any frame or message in progress (buffers and inflater are kept), so the
    /// decoder can serve a fresh or resumed connection.
    pub fn reset(&mut self) {
        self.state = State::Header;
        self.header_len = 0;
        self.message = None;
        self.message_buf.clear();
        self.compressed_buf.clear();
        self.utf8.reset();
        self.control_len = 0;
    }

    /// Decodes from `input`. Returns how many bytes were consumed and, if one completed,
    /// a message or control frame. Call again with the rest of the input until it is
    /// consumed; `(n, None)` always means all `n == input.len()` bytes were absorbed.
    /// After an error the decoder must not be used again.
    #[inline]
    pub fn decode<'a>(&'a mut self, input: &'a [u8]) -> Result<(usize, Option<Decoded<'a>>), ProtocolError> {
        if let Some(fast) = self.whole_frame(input) {
            return fast;
        }
        let (consumed, ready) = self.advance(input)?;
        let Some(ready) = ready else { return Ok((consumed, None)) };
        let decoded = match ready {
            Ready::Borrowed { start, end, text: true } => {
                Decoded::Text(std::str::from_utf8(&input[start..end]).map_err(|_| ProtocolError::InvalidUtf8)?)
            }
            Ready::Borrowed { start, end, text: false } => Decoded::Binary(&input[start..end]),
            Ready::Message { text: true } => {
                debug_assert!(std::str::from_utf8(&self.message_buf).is_ok());
                // SAFETY: `finish_frame` only reports a text message after validating all of
                // `message_buf`: incrementally (uncompressed) or whole (after inflating).
                Decoded::Text(unsafe { std::str::from_utf8_unchecked(&self.message_buf) })
            }
            Ready::Message { text: false } => Decoded::Binary(&self.message_buf),
            Ready::Control(op) => {
                let payload = &self.control_buf[..self.control_len];
                match op {
                    Opcode::Ping => Decoded::Ping(payload),
                    Opcode::Pong => Decoded::Pong(payload),
                    _ => parse_close(payload)?,
                }
            }
        };
        Ok((consumed, Some(decoded)))
    }

    /// Fast path for the common case: between messages, a client receives one whole
    /// unmasked, uncompressed, unfragmented data frame. Anything else (or an invalid
    /// header) takes the general path, which does every check.
    #[inline]
    fn whole_frame<'a>(&self, input: &'a [u8]) -> Option<Result<(usize, Option<Decoded<'a>>), ProtocolError>> {
        if self.role != Role::Client || self.header_len != 0 || self.message.is_some() {
            return None;
        }
        if !matches!(self.state, State::Header) {
            return None;
        }
        let (&b0, &b1) = (input.first()?, input.get(1)?);
        // FIN, no RSV, text or binary; no mask; 7-bit length.
        let len = usize::from(b1);
        if b1 > 125 || !(b0 == 0x81 || b0 == 0x82) || len > self.max_message_size {
            return None;
        }
        let payload = input.get(2..2 + len)?;
        Some(if b0 == 0x82 {
            Ok((2 + len, Some(Decoded::Binary(payload))))
        } else {
            match std::str::from_utf8(payload) {
                Ok(text) => Ok((2 + len, Some(Decoded::Text(text)))),
                Err(_) => return None,
            }
        })
    }

    fn advance(&mut self, input: &[u8]) -> Result<(usize, Option<Ready>), ProtocolError> {
        let mut pos = 0;
        loop {
            match self.state {
                State::Header => {
                    let Some(header) = self.read_header(input, &mut pos)? else {
                        return Ok((pos, None));
                    };
                    let opcode = self.check_header(&header)?;
                    self.state = State::Payload { header, opcode, remaining: header.payload_len, offset: 0 };
                    if opcode.is_control() {
                        self.control_len = 0;
                    }
                    // Zero-copy: a whole, unmasked, uncompressed message in this input.
                    let len = header.payload_len as usize;
                    if header.fin
                        && header.mask.is_none()
                        && header.rsv == 0
                        && matches!(opcode, Opcode::Text | Opcode::Binary)
                        && input.len() - pos >= len
                    {
                        let text = opcode == Opcode::Text;
                        self.state = State::Header;
                        self.message = None;
                        return Ok((pos + len, Some(Ready::Borrowed { start: pos, end: pos + len, text })));
                    }
                    if header.payload_len == 0
                        && let Some(ready) = self.finish_frame(header, opcode)?
                    {
                        return Ok((pos, Some(ready)));
                    }
                }
                State::Payload { header, opcode, remaining, offset } => {
                    let available = input.len() - pos;
                    if available == 0 {
                        return Ok((pos, None));
                    }
                    let take = remaining.min(available as u64) as usize;
                    self.absorb(&header, opcode, &input[pos..pos + take], offset)?;
                    pos += take;
                    let remaining = remaining - take as u64;
                    if remaining > 0 {
                        self.state = State::Payload { header, opcode, remaining, offset: offset + take };
                        return Ok((pos, None));
                    }
                    if let Some(ready) = self.finish_frame(header, opcode)? {
                        return Ok((pos, Some(ready)));
                    }
                }
            }
        }
    }

    /// Reads a header from the partial-header buffer plus `input`, advancing `pos`.
    #[inline]
    fn read_header(&mut self, input: &[u8], pos: &mut usize) -> Result<Option<FrameHeader>, ProtocolError> {
        if self.header_len == 0
            && let Some((header, n)) = FrameHeader::parse(&input[*pos..])?
        {
            *pos += n;
            return Ok(Some(header));
        }
        // Slow path: the header is split across reads. Copy what fits, parse, and give
        // back whatever part of the copied bytes belongs to the payload.
        let had = self.header_len;
        let take = (MAX_HEADER_LEN - had).min(input.len() - *pos);
        self.header_buf[had..had + take].copy_from_slice(&input[*pos..*pos + take]);
        self.header_len = had + take;
        match FrameHeader::parse(&self.header_buf[..self.header_len])? {
            Some((header, n)) => {
                *pos += n - had;
                self.header_len = 0;
                Ok(Some(header))
            }
            None => {
                *pos += take;
                Ok(None)
            }
        }
    }

    fn check_header(&mut self, h: &FrameHeader) -> Result<Opcode, ProtocolError> {
        match (self.role, h.mask.is_some()) {
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            _ => {}
        }
        let opcode = Opcode::from_u8(h.opcode).ok_or(ProtocolError::ReservedOpcode)?;
        if h.rsv & !RSV1 != 0 || (h.rsv & RSV1 != 0 && self.inflater.is_none()) {
            return Err(ProtocolError::ReservedBits);
        }
        let compressed = h.rsv & RSV1 != 0;
        if opcode.is_control() {
            if compressed {
                return Err(ProtocolError::MisplacedCompressionBit);
            }
            if h.payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(ProtocolError::ControlFrameTooLong);
            }
            if !h.fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            return Ok(opcode);
        }
        let so_far = match (opcode, self.message) {
            (Opcode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
            (Opcode::Continuation, Some(_)) if compressed => return Err(ProtocolError::MisplacedCompressionBit),
            (Opcode::Continuation, Some((_, c))) => {
                if c {
                    self.compressed_buf.len()
                } else {
                    self.message_buf.len()
                }
            }
            (_, Some(_)) => return Err(ProtocolError::ExpectedContinuation),
            (op, None) => {
                self.message = Some((op == Opcode::Text, compressed));
                self.message_buf.clear();
                self.compressed_buf.clear();
                self.utf8.reset();
                0
            }
        };
        // The limit is on the message after decompression (checked while inflating);
        // compressed bytes may exceed it only by deflate's worst-case expansion.
        // The message's flag decides, not this frame's: continuations carry no RSV1.
        let message_compressed = self.message.is_some_and(|(_, c)| c);
        let limit = if message_compressed { compressed_limit(self.max_message_size) } else { self.max_message_size };
        if h.payload_len > limit.saturating_sub(so_far) as u64 {
            return Err(ProtocolError::MessageTooBig);
        }
        Ok(opcode)
    }

    fn absorb(&mut self, h: &FrameHeader, opcode: Opcode, chunk: &[u8], offset: usize) -> Result<(), ProtocolError> {
        if opcode.is_control() {
            let dst = &mut self.control_buf[self.control_len..self.control_len + chunk.len()];
            dst.copy_from_slice(chunk);
            if let Some(key) = h.mask {
                apply_mask(dst, key, offset);
            }
            self.control_len += chunk.len();
            return Ok(());
        }
        let (text, compressed) = self.message.expect("data frame inside a message");
        let buf = if compressed { &mut self.compressed_buf } else { &mut self.message_buf };
        let start = buf.len();
        buf.extend_from_slice(chunk);
        if let Some(key) = h.mask {
            apply_mask(&mut buf[start..], key, offset);
        }
        if text && !compressed {
            self.utf8.feed(&buf[start..]).map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        Ok(())
    }

    fn finish_frame(&mut self, h: FrameHeader, opcode: Opcode) -> Result<Option<Ready>, ProtocolError> {
        self.state = State::Header;
        if opcode.is_control() {
            return Ok(Some(Ready::Control(opcode)));
        }
        if !h.fin {
            return Ok(None);
        }
        let (text, compressed) = self.message.take().expect("data frame inside a message");
        if compressed {
            self.message_buf.clear();
            let inflater = self.inflater.as_mut().expect("RSV1 checked against the inflater");
            inflater.decompress(&self.compressed_buf, &mut self.message_buf, self.max_message_size)?;
            if text && std::str::from_utf8(&self.message_buf).is_err() {
                return Err(ProtocolError::InvalidUtf8);
            }
        } else if text {
            self.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        Ok(Some(Ready::Message { text }))
    }
}

/// Largest compressed size accepted for a message of at most `max` bytes: deflate's
/// stored blocks add 5 bytes per 64 KiB, plus a few bytes of block headers.
fn compressed_limit(max: usize) -> usize {
    max.saturating_add(max / 8192).saturating_add(64)
}

fn parse_close(payload: &[u8]) -> Result<Decoded<'_>, ProtocolError> {
    match payload {
        [] => Ok(Decoded::Close { code: None, reason: "" }),
        [_] => Err(ProtocolError::InvalidClosePayload),
        [a, b, reason @ ..] => {
            let code = u16::from_be_bytes([*a, *b]);
            if !crate::close::is_valid_wire_code(code) {
                return Err(ProtocolError::InvalidCloseCode);
            }
            let reason = std::str::from_utf8(reason).map_err(|_| ProtocolError::InvalidUtf8)?;
            Ok(Decoded::Close { code: Some(code), reason })
        }
    }
}
