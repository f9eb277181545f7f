//! Parking: a connection at rest shrinks to a few bytes ([`Parked`]), and the
//! [`Client`] that served it (with its warm buffers and compression contexts) can serve
//! another connection. This is how a load generator holds a million connections with a
//! handful of `Client`s: each connection keeps its `Parked` form and borrows a `Client`
//! from a per-core pool only while bytes flow.
//!
//! A connection is at rest when it is open (or closing, waiting for the peer's close),
//! nothing is queued for transmission, no frame or fragmented message is half-received
//! or half-sent, and any permessage-deflate context is reset after every message (both
//! `no_context_takeover` parameters). A connection that compresses with context
//! takeover carries history and cannot be parked: it keeps its own `Client`.
//!
//! What is not kept: [`Client::accepted`] (read the subprotocol and headers on
//! [`crate::Event::Open`]).

use super::{Client, ClientConfig, State};
use crate::decoder::{Decoder, Role};
use crate::deflate::{DeflateParams, Deflater, Inflater};
use crate::encoder::Encoder;

/// A connection at rest: everything needed to resume it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parked {
    closing_deadline_us: Option<u64>,
    deflate: Option<DeflateParams>,
    deflate_level: u8,
}

impl Parked {
    /// Whether the close handshake was started (we wait for the server's close).
    pub fn is_closing(&self) -> bool {
        self.closing_deadline_us.is_some()
    }

    /// When the close handshake gives up, if it was started (µs, caller's clock).
    pub fn poll_timeout(&self) -> Option<u64> {
        self.closing_deadline_us
    }
}

impl Client {
    /// Compression contexts this client holds (compressor and decompressor counted
    /// apart) and their estimated bytes ([`Deflater::memory_estimate`],
    /// [`Inflater::memory_estimate`]); `(0, 0)` without permessage-deflate.
    pub fn deflate_memory(&self) -> (u32, usize) {
        let d = self.encoder.deflater().map(Deflater::memory_estimate);
        let i = self.decoder.inflater().map(Inflater::memory_estimate);
        (u32::from(d.is_some()) + u32::from(i.is_some()), d.unwrap_or(0) + i.unwrap_or(0))
    }

    /// Whether [`Client::park`] would succeed now.
    pub fn is_at_rest(&self) -> bool {
        let state_ok = match self.state {
            State::Open => self.deadline_us.is_none(),
            State::Closing => self.deadline_us.is_some(),
            State::Handshaking | State::Closed => false,
        };
        state_ok
            && self.out_pos >= self.out.len()
            && self.decoder.at_message_boundary()
            && self.encoder.at_message_boundary()
            && self.parser.is_none()
            && self.decoder.inflater().is_none_or(Inflater::no_context_takeover)
            && self.encoder.deflater().is_none_or(Deflater::no_context_takeover)
    }

    /// If the connection is at rest (see the module docs), returns its compact form.
    /// `self` then no longer stands for that connection: give it to another with
    /// [`Client::resume`]. Returns `None`, changing nothing, when not at rest.
    pub fn park(&mut self) -> Option<Parked> {
        if !self.is_at_rest() {
            return None;
        }
        let parked = Parked {
            closing_deadline_us: if self.state == State::Closing { self.deadline_us } else { None },
            deflate: self.accepted.as_ref().and_then(|a| a.deflate),
            deflate_level: self.deflate_level.min(9) as u8,
        };
        self.accepted = None;
        Some(parked)
    }

    /// Makes `self` stand for the parked connection, whatever it served before.
    /// Buffers are kept; compression contexts are reused when their parameters match.
    pub fn resume(&mut self, parked: Parked) {
        self.state = if parked.closing_deadline_us.is_some() { State::Closing } else { State::Open };
        self.deadline_us = parked.closing_deadline_us;
        self.out.clear();
        self.out_pos = 0;
        self.parser = None;
        self.accepted = None;
        self.decoder.reset();
        self.encoder.reset();
        self.deflate_level = u32::from(parked.deflate_level);
        match parked.deflate {
            None => {
                self.decoder.set_inflater(None);
                self.encoder.set_deflater(None);
            }
            Some(d) => {
                let level = u32::from(parked.deflate_level);
                match self.encoder.deflater_mut() {
                    Some(c) if c.matches(d.client_max_window_bits, d.client_no_context_takeover, level) => c.reset(),
                    _ => self.encoder.set_deflater(Some(Deflater::new(
                        d.client_max_window_bits,
                        d.client_no_context_takeover,
                        level,
                    ))),
                }
                match self.decoder.inflater_mut() {
                    Some(i) => i.reset(d.server_no_context_takeover),
                    None => self.decoder.set_inflater(Some(Inflater::new(d.server_no_context_takeover))),
                }
            }
        }
        self.accepted = parked.deflate.map(|d| crate::handshake::Accepted { deflate: Some(d), ..Default::default() });
    }

    /// A `Client` standing for a parked connection (for when no spare one is at hand).
    pub fn from_parked(config: ClientConfig, parked: Parked) -> Self {
        let mut client = Self {
            decoder: Decoder::new(Role::Client, config.max_message_size),
            encoder: Encoder::new(Role::Client, config.fragment_size),
            config,
            state: State::Open,
            out: Vec::new(),
            out_pos: 0,
            parser: None,
            accepted: None,
            deadline_us: None,
            deflate_level: 1,
        };
        client.resume(parked);
        client
    }
}
