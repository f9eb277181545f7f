//! `loadgen-proto`: a sans-IO RFC 6455 WebSocket client with RFC 7692
//! permessage-deflate.
//!
//! What it does: builds the upgrade request and validates the answer (classifying
//! refusals), encodes frames (masked with a fresh key each, optionally compressed and
//! fragmented), decodes frames from bytes split anywhere (with every check of RFC 6455
//! §5 and incremental UTF-8 validation), runs the ping/pong and close handshakes, and
//! can write deliberately invalid frames for defence tests ([`violation`]).
//!
//! What it does not do: sockets, TLS, clocks, threads, randomness of its own. Time
//! comes in as microseconds on the caller's clock; randomness from the caller's RNG
//! (a per-core CSPRNG seeded by the OS in the engine). Steady state reuses buffers.
//!
//! ```
//! use loadgen_proto::{Client, ClientConfig, Event, HandshakeRequest};
//! # use rand_core::{RngCore, impls};
//! # struct Rng(u64);
//! # impl RngCore for Rng {
//! #     fn next_u32(&mut self) -> u32 { self.next_u64() as u32 }
//! #     fn next_u64(&mut self) -> u64 { self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1); self.0 }
//! #     fn fill_bytes(&mut self, d: &mut [u8]) { impls::fill_bytes_via_next(self, d) }
//! #     fn try_fill_bytes(&mut self, d: &mut [u8]) -> Result<(), rand_core::Error> { self.fill_bytes(d); Ok(()) }
//! # }
//! let mut rng = Rng(1);
//! let request = HandshakeRequest::new("127.0.0.1:8080", "/ws");
//! let mut client = Client::new(ClientConfig::default(), &request, 0, &mut rng).unwrap();
//! let upgrade = client.pending_transmit().to_vec(); // write this to the socket
//! assert!(upgrade.starts_with(b"GET /ws HTTP/1.1\r\n"));
//! client.advance_transmit(upgrade.len());
//! ```

#![warn(missing_docs)]

pub mod client;
pub mod close;
pub mod decoder;
pub mod deflate;
pub mod encoder;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod http1;
pub mod mask;
pub mod utf8;
pub mod violation;

#[doc(hidden)]
pub mod fuzzing;

pub use client::{Client, ClientConfig, Event, Initiator, Parked, PingStamp, State, Timeout};
pub use decoder::{Decoded, Decoder, Role};
pub use deflate::{DeflateConfig, DeflateParams};
pub use encoder::{Encoder, MessageKind};
pub use error::{Error, HandshakeError, ProtocolError, RequestError, SendError};
pub use frame::{FrameHeader, Opcode};
pub use handshake::{Accepted, HandshakeRequest, Rejection, RejectionKind};
pub use http1::{Http1Client, Http1Config, Http1Error, Http1ErrorKind, Http1Event};
pub use violation::Violation;
#[cfg(test)]
mod tests;
