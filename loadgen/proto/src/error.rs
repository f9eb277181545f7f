//! Error types. Frame-level violations are small `Copy` values that a load generator
//! counts by kind; handshake errors carry the server's answer for the report.

use crate::close;
use crate::handshake::Rejection;

/// A violation of RFC 6455 / RFC 7692 by the peer; fails the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ProtocolError {
    /// A server frame had the mask bit set (clients must receive unmasked frames).
    #[error("server sent a masked frame")]
    MaskedFrame,
    /// A client frame had no mask (server role only).
    #[error("client sent an unmasked frame")]
    UnmaskedFrame,
    /// RSV2/RSV3 set, or RSV1 set without permessage-deflate.
    #[error("reserved bits set without a negotiated extension")]
    ReservedBits,
    /// RSV1 on a control frame or a continuation frame.
    #[error("compression bit on a control or continuation frame")]
    MisplacedCompressionBit,
    /// Opcode 3-7 or 0xB-0xF.
    #[error("reserved opcode")]
    ReservedOpcode,
    /// Control frame payload over 125 bytes.
    #[error("control frame longer than 125 bytes")]
    ControlFrameTooLong,
    /// Control frame without FIN.
    #[error("fragmented control frame")]
    FragmentedControlFrame,
    /// Continuation frame with no message in progress.
    #[error("continuation frame without a message in progress")]
    UnexpectedContinuation,
    /// New data frame while a fragmented message is in progress.
    #[error("data frame interrupts a fragmented message")]
    ExpectedContinuation,
    /// 64-bit length with the most significant bit set.
    #[error("invalid 64-bit payload length")]
    InvalidLength,
    /// Message (or frame) larger than the configured maximum.
    #[error("message larger than the configured maximum")]
    MessageTooBig,
    /// Text message or close reason is not valid UTF-8.
    #[error("invalid UTF-8 in a text message or close reason")]
    InvalidUtf8,
    /// Close frame with a code that may not appear on the wire.
    #[error("invalid close code")]
    InvalidCloseCode,
    /// Close frame with a one-byte payload.
    #[error("close frame payload of one byte")]
    InvalidClosePayload,
    /// permessage-deflate data that does not inflate.
    #[error("compressed message does not inflate")]
    DecompressionFailed,
}

impl ProtocolError {
    /// The close code the client must send when failing the connection for this error.
    pub fn close_code(self) -> u16 {
        match self {
            Self::InvalidUtf8 | Self::DecompressionFailed => close::INVALID_PAYLOAD,
            Self::MessageTooBig => close::MESSAGE_TOO_BIG,
            _ => close::PROTOCOL_ERROR,
        }
    }

    /// Stable snake_case name for counters and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::MaskedFrame => "masked_frame",
            Self::UnmaskedFrame => "unmasked_frame",
            Self::ReservedBits => "reserved_bits",
            Self::MisplacedCompressionBit => "misplaced_compression_bit",
            Self::ReservedOpcode => "reserved_opcode",
            Self::ControlFrameTooLong => "control_frame_too_long",
            Self::FragmentedControlFrame => "fragmented_control_frame",
            Self::UnexpectedContinuation => "unexpected_continuation",
            Self::ExpectedContinuation => "expected_continuation",
            Self::InvalidLength => "invalid_length",
            Self::MessageTooBig => "message_too_big",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::InvalidCloseCode => "invalid_close_code",
            Self::InvalidClosePayload => "invalid_close_payload",
            Self::DecompressionFailed => "decompression_failed",
        }
    }
}

/// Why the opening handshake failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The server answered with something other than 101 (401, 403, 429, 503 ...).
    #[error("server refused the upgrade: HTTP {}", .0.status)]
    Rejected(Box<Rejection>),
    /// The response is not parseable HTTP/1.1.
    #[error("malformed HTTP response: {0}")]
    MalformedResponse(&'static str),
    /// The response head exceeded the configured limit.
    #[error("response head larger than the limit")]
    ResponseTooLarge,
    /// 101 without `Upgrade: websocket`.
    #[error("101 response without Upgrade: websocket")]
    MissingUpgrade,
    /// 101 without `Connection: upgrade`.
    #[error("101 response without Connection: upgrade")]
    MissingConnection,
    /// Sec-WebSocket-Accept absent or wrong.
    #[error("Sec-WebSocket-Accept missing or wrong")]
    BadAccept,
    /// The server picked a subprotocol that was not offered.
    #[error("server selected a subprotocol that was not offered")]
    UnrequestedSubprotocol,
    /// The server accepted an extension that was not offered.
    #[error("server accepted an extension that was not offered")]
    UnrequestedExtension,
    /// permessage-deflate parameters the RFC forbids or that were not offered.
    #[error("invalid permessage-deflate parameters: {0}")]
    InvalidExtensionParams(&'static str),
    /// The server did not complete the handshake in time.
    #[error("handshake timed out")]
    TimedOut,
}

impl HandshakeError {
    /// Stable snake_case name for counters and reports.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Rejected(_) => "rejected",
            Self::MalformedResponse(_) => "malformed_response",
            Self::ResponseTooLarge => "response_too_large",
            Self::MissingUpgrade => "missing_upgrade",
            Self::MissingConnection => "missing_connection",
            Self::BadAccept => "bad_accept",
            Self::UnrequestedSubprotocol => "unrequested_subprotocol",
            Self::UnrequestedExtension => "unrequested_extension",
            Self::InvalidExtensionParams(_) => "invalid_extension_params",
            Self::TimedOut => "handshake_timeout",
        }
    }
}

/// Any failure reported by [`crate::Client::receive`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The opening handshake failed.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// The peer violated the framing protocol; a close frame with
    /// [`ProtocolError::close_code`] has been queued.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
}

/// Why a send was refused. Nothing was queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum SendError {
    /// The connection is not open (handshake pending, closing or closed).
    #[error("connection is not open")]
    NotOpen,
    /// Control frame payloads are limited to 125 bytes.
    #[error("control frame payload over 125 bytes")]
    ControlTooLong,
    /// Close code that may not be sent.
    #[error("close code may not be sent")]
    InvalidCloseCode,
    /// `send_fragment` without `begin_fragmented`, or a new message while one is open.
    #[error("fragmented message sequence misused")]
    FragmentSequence,
}

/// Why a handshake request could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// A header name or value contains CR, LF or other forbidden bytes.
    #[error("header {0:?} contains forbidden characters (CR, LF, NUL or non-token name)")]
    InvalidHeader(String),
    /// The host or path is empty or contains forbidden characters.
    #[error("invalid request target: {0}")]
    InvalidTarget(&'static str),
    /// A subprotocol is not an HTTP token.
    #[error("subprotocol {0:?} is not an HTTP token")]
    InvalidSubprotocol(String),
    /// permessage-deflate window bits outside 8..=15.
    #[error("permessage-deflate window bits must be within 8..=15")]
    InvalidWindowBits,
}
