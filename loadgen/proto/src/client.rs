//! The client connection state machine: handshake, open, closing, closed.
//!
//! Sans-IO in the quinn-proto style: the caller reads bytes from its socket into
//! [`Client::receive`], writes [`Client::pending_transmit`] to it, and passes the time
//! (microseconds on any monotonic clock of its choosing) and an RNG where they are
//! needed. Pongs and close replies are queued automatically. Nothing here blocks,
//! reads a clock or touches a socket.

use rand_core::RngCore;

use crate::decoder::{Decoded, Decoder, Role};
use crate::deflate::{Deflater, Inflater};
use crate::encoder::{Encoder, MessageKind};
use crate::error::{Error, RequestError, SendError};
use crate::frame::Opcode;
use crate::handshake::{Accepted, HandshakeRequest, ResponseParser, ResponseProgress, encode_key};
use crate::violation::Violation;

#[path = "client_park.rs"]
mod park;
pub use park::Parked;

/// Limits and timeouts of a client connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// Largest message accepted, after decompression (larger: fail with 1009).
    pub max_message_size: usize,
    /// Split outgoing messages into frames of at most this many bytes.
    pub fragment_size: Option<usize>,
    /// Largest HTTP response head accepted during the handshake.
    pub max_handshake_response: usize,
    /// Give up the handshake after this long (µs); `None`: wait forever.
    pub handshake_timeout_us: Option<u64>,
    /// Give up waiting for the server's close reply after this long (µs).
    pub close_timeout_us: u64,
    /// Keep every response header in [`Client::accepted`] (cookies for sticky
    /// sessions ...). Off by default: a load generator holding many connections keeps
    /// only the negotiated subprotocol and extension.
    pub keep_response_headers: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            max_message_size: 64 << 20,
            fragment_size: None,
            max_handshake_response: 16 << 10,
            handshake_timeout_us: Some(10_000_000),
            close_timeout_us: 5_000_000,
            keep_response_headers: false,
        }
    }
}

/// Where the connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Upgrade request sent (or queued); waiting for the 101.
    Handshaking,
    /// Messages flow both ways.
    Open,
    /// We sent a close frame and wait for the server's.
    Closing,
    /// No more frames either way; the caller should close the socket once
    /// [`Client::pending_transmit`] is drained.
    Closed,
}

/// Who started the close handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Initiator {
    /// We did ([`Client::close`] or a protocol failure).
    Client,
    /// The server did.
    Server,
}

/// Something that happened on the connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// The handshake succeeded.
    Open,
    /// A text message.
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
    /// A ping (a pong has already been queued).
    Ping(&'a [u8]),
    /// A pong; see [`PingStamp::parse`] for pings sent by [`Client::ping`].
    Pong(&'a [u8]),
    /// The close handshake completed (or the server closed and we replied).
    Closed {
        /// Code the server sent, if any.
        code: Option<u16>,
        /// Reason the server sent.
        reason: &'a str,
        /// Who started it.
        initiator: Initiator,
    },
}

/// What a timeout did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeout {
    /// The server did not complete the handshake in time; the connection is closed.
    Handshake,
    /// The server did not answer our close in time; the connection is closed.
    Close,
}

/// The payload of a ping sent by [`Client::ping`]: an id and the send time, so the
/// round trip is measured without per-ping state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PingStamp {
    /// Caller's id for the ping.
    pub id: u64,
    /// When it was sent (µs, caller's clock).
    pub sent_us: u64,
}

impl PingStamp {
    const MAGIC: [u8; 2] = *b"lg";
    /// Encoded size.
    pub const LEN: usize = 18;

    /// Encodes as `"lg" id(be64) sent_us(be64)`.
    pub fn encode(self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..2].copy_from_slice(&Self::MAGIC);
        out[2..10].copy_from_slice(&self.id.to_be_bytes());
        out[10..].copy_from_slice(&self.sent_us.to_be_bytes());
        out
    }

    /// Decodes a pong payload; `None` if it was not one of ours.
    pub fn parse(payload: &[u8]) -> Option<Self> {
        if payload.len() != Self::LEN || payload[..2] != Self::MAGIC {
            return None;
        }
        let id = u64::from_be_bytes(payload[2..10].try_into().ok()?);
        let sent_us = u64::from_be_bytes(payload[10..].try_into().ok()?);
        Some(Self { id, sent_us })
    }
}

/// A client WebSocket connection.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    state: State,
    out: Vec<u8>,
    out_pos: usize,
    /// Boxed: only needed until the 101, then freed.
    parser: Option<Box<ResponseParser>>,
    accepted: Option<Accepted>,
    decoder: Decoder,
    encoder: Encoder,
    deadline_us: Option<u64>,
    /// Compression level to use if the server accepts permessage-deflate.
    deflate_level: u32,
}

impl Client {
    /// Starts a connection: validates `request` and queues the upgrade request.
    pub fn new(
        config: ClientConfig,
        request: &HandshakeRequest,
        now_us: u64,
        rng: &mut impl RngCore,
    ) -> Result<Self, RequestError> {
        request.validate()?;
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        let key = encode_key(nonce);
        let mut out = Vec::with_capacity(256);
        request.write(&key, &mut out);
        Ok(Self {
            parser: Some(Box::new(ResponseParser::new(request, &key, config.max_handshake_response))),
            deadline_us: config.handshake_timeout_us.map(|t| now_us.saturating_add(t)),
            decoder: Decoder::new(Role::Client, config.max_message_size),
            encoder: Encoder::new(Role::Client, config.fragment_size),
            deflate_level: request.deflate.as_ref().map_or(1, |d| d.level),
            config,
            state: State::Handshaking,
            out,
            out_pos: 0,
            accepted: None,
        })
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// What the server agreed to (after [`Event::Open`]).
    pub fn accepted(&self) -> Option<&Accepted> {
        self.accepted.as_ref()
    }

    /// Bytes waiting to be written to the socket.
    pub fn pending_transmit(&self) -> &[u8] {
        &self.out[self.out_pos..]
    }

    /// Marks `n` bytes of [`Client::pending_transmit`] as written.
    pub fn advance_transmit(&mut self, n: usize) {
        self.out_pos = (self.out_pos + n).min(self.out.len());
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
    }

    /// Heap bytes held by this connection's buffers, for memory accounting.
    pub fn buffer_capacity(&self) -> usize {
        self.out.capacity() + self.decoder.buffer_capacity() + self.encoder.buffer_capacity()
    }

    /// Feeds bytes read from the socket. Returns how many were consumed and, if one
    /// completed, an event; call again with the rest. On `Err` the connection is
    /// `Closed` and, for a protocol error, a close frame with the right code is queued.
    pub fn receive<'a>(
        &'a mut self,
        input: &'a [u8],
        rng: &mut impl RngCore,
    ) -> Result<(usize, Option<Event<'a>>), Error> {
        match self.state {
            State::Handshaking => self.receive_handshake(input),
            State::Closed => Ok((input.len(), None)),
            State::Open | State::Closing => self.receive_frames(input, rng),
        }
    }

    fn receive_handshake(&mut self, input: &[u8]) -> Result<(usize, Option<Event<'static>>), Error> {
        let parser = self.parser.as_mut().expect("parser lives until the handshake ends");
        match parser.feed(input) {
            Ok(ResponseProgress::Partial) => Ok((input.len(), None)),
            Ok(ResponseProgress::Done { consumed, mut accepted }) => {
                self.parser = None;
                if !self.config.keep_response_headers {
                    accepted.headers = Vec::new();
                }
                if let Some(d) = accepted.deflate {
                    self.decoder.set_inflater(Some(Inflater::new(d.server_no_context_takeover)));
                    self.encoder.set_deflater(Some(Deflater::new(
                        d.client_max_window_bits,
                        d.client_no_context_takeover,
                        self.deflate_level,
                    )));
                }
                self.accepted = Some(accepted);
                self.state = State::Open;
                self.deadline_us = None;
                Ok((consumed, Some(Event::Open)))
            }
            Err(e) => {
                self.parser = None;
                self.state = State::Closed;
                self.deadline_us = None;
                Err(e.into())
            }
        }
    }

    fn receive_frames<'a>(
        &'a mut self,
        input: &'a [u8],
        rng: &mut impl RngCore,
    ) -> Result<(usize, Option<Event<'a>>), Error> {
        let (consumed, decoded) = match self.decoder.decode(input) {
            Ok(ok) => ok,
            Err(e) => {
                // Fail the connection (§7.1.7): send close with the code, stop reading.
                if self.state == State::Open {
                    let _ = self.encoder.close(&mut self.out, Some(e.close_code()), "", rng);
                }
                self.state = State::Closed;
                self.deadline_us = None;
                return Err(e.into());
            }
        };
        let Some(decoded) = decoded else { return Ok((consumed, None)) };
        let event = match decoded {
            Decoded::Text(t) => Event::Text(t),
            Decoded::Binary(b) => Event::Binary(b),
            Decoded::Ping(p) => {
                if self.state == State::Open {
                    self.encoder.control(&mut self.out, Opcode::Pong, p, rng).expect("ping payload fits a pong");
                }
                Event::Ping(p)
            }
            Decoded::Pong(p) => Event::Pong(p),
            Decoded::Close { code, reason } => {
                let initiator = if self.state == State::Closing {
                    Initiator::Client
                } else {
                    // Echo the server's code (§5.5.1); an empty close gets an empty one.
                    let _ = self.encoder.close(&mut self.out, code, "", rng);
                    Initiator::Server
                };
                self.state = State::Closed;
                self.deadline_us = None;
                Event::Closed { code, reason, initiator }
            }
        };
        Ok((consumed, Some(event)))
    }

    /// Queues a whole message.
    pub fn send(&mut self, kind: MessageKind, payload: &[u8], rng: &mut impl RngCore) -> Result<(), SendError> {
        self.require_open()?;
        self.encoder.message(&mut self.out, kind, payload, rng)
    }

    /// Queues a text message.
    pub fn send_text(&mut self, text: &str, rng: &mut impl RngCore) -> Result<(), SendError> {
        self.send(MessageKind::Text, text.as_bytes(), rng)
    }

    /// Queues a binary message.
    pub fn send_binary(&mut self, data: &[u8], rng: &mut impl RngCore) -> Result<(), SendError> {
        self.send(MessageKind::Binary, data, rng)
    }

    /// Starts a message sent in pieces (pings may go between them).
    pub fn begin_fragmented(
        &mut self,
        kind: MessageKind,
        first: &[u8],
        rng: &mut impl RngCore,
    ) -> Result<(), SendError> {
        self.require_open()?;
        self.encoder.begin_fragmented(&mut self.out, kind, first, rng)
    }

    /// Queues the next piece; `fin` ends the message.
    pub fn send_fragment(&mut self, piece: &[u8], fin: bool, rng: &mut impl RngCore) -> Result<(), SendError> {
        self.require_open()?;
        self.encoder.continue_fragmented(&mut self.out, piece, fin, rng)
    }

    /// Queues a ping carrying `id` and `now_us`; its pong yields them back through
    /// [`PingStamp::parse`].
    pub fn ping(&mut self, id: u64, now_us: u64, rng: &mut impl RngCore) -> Result<(), SendError> {
        self.require_open()?;
        let stamp = PingStamp { id, sent_us: now_us }.encode();
        self.encoder.control(&mut self.out, Opcode::Ping, &stamp, rng)
    }

    /// Queues a deliberate protocol violation ([`Violation::write`]) between messages,
    /// for testing a server's defences. The client's own state is unchanged: it goes
    /// on reading, so the server's answer (usually a close frame with
    /// [`Violation::expected_close_code`]) arrives as events.
    pub fn send_violation(&mut self, violation: Violation, rng: &mut impl RngCore) -> Result<(), SendError> {
        self.require_open()?;
        if !self.encoder.at_message_boundary() {
            return Err(SendError::FragmentSequence);
        }
        violation.write(&mut self.out, rng);
        Ok(())
    }

    /// Queues one valid text message of `len` ASCII bytes as a single uncompressed
    /// frame ([`crate::violation::filled_text`]): no payload buffer is needed.
    pub fn send_filled_text(&mut self, len: usize, rng: &mut impl RngCore) -> Result<(), SendError> {
        self.require_open()?;
        if !self.encoder.at_message_boundary() {
            return Err(SendError::FragmentSequence);
        }
        crate::violation::filled_text(&mut self.out, len, rng);
        Ok(())
    }

    /// Frees the output buffer's memory beyond `keep` bytes when nothing is queued (after
    /// an unusually large message, so a pooled client does not keep it).
    pub fn trim_output(&mut self, keep: usize) {
        if self.out_pos >= self.out.len() && self.out.capacity() > keep {
            self.out = Vec::with_capacity(keep.min(256));
            self.out_pos = 0;
        }
    }

    /// Queues a ping or pong with an arbitrary payload (≤ 125 bytes).
    pub fn send_control(&mut self, opcode: Opcode, payload: &[u8], rng: &mut impl RngCore) -> Result<(), SendError> {
        self.require_open()?;
        if !matches!(opcode, Opcode::Ping | Opcode::Pong) {
            return Err(SendError::NotOpen);
        }
        self.encoder.control(&mut self.out, opcode, payload, rng)
    }

    /// Starts the close handshake; the server's reply completes it, or
    /// [`Client::handle_timeout`] gives up after the configured close timeout.
    pub fn close(&mut self, code: u16, reason: &str, now_us: u64, rng: &mut impl RngCore) -> Result<(), SendError> {
        self.require_open()?;
        self.encoder.close(&mut self.out, Some(code), reason, rng)?;
        self.state = State::Closing;
        self.deadline_us = Some(now_us.saturating_add(self.config.close_timeout_us));
        Ok(())
    }

    /// When [`Client::handle_timeout`] must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.deadline_us
    }

    /// Applies the passage of time: a handshake or close that has waited too long ends
    /// the connection.
    pub fn handle_timeout(&mut self, now_us: u64) -> Option<Timeout> {
        let deadline = self.deadline_us?;
        if now_us < deadline {
            return None;
        }
        self.deadline_us = None;
        let what = match self.state {
            State::Handshaking => Timeout::Handshake,
            State::Closing => Timeout::Close,
            State::Open | State::Closed => return None,
        };
        self.state = State::Closed;
        Some(what)
    }

    fn require_open(&self) -> Result<(), SendError> {
        if self.state == State::Open { Ok(()) } else { Err(SendError::NotOpen) }
    }
}
