//! `loadgen-conformance`: runs [`loadgen_proto`] against a real server over blocking
//! sockets. It checks RFC 6455 behaviour end to end (echo of every length form,
//! fragmentation, ping/pong, both close handshakes, permessage-deflate), measures echo
//! latency over a handful of connections, and writes a JSON report.
//!
//! It is the driver of `loadgen check`, of the interop tests against independent
//! servers, and of the demo until the io_uring engine lands. It is not a load engine:
//! one OS thread per connection, bounded counts, no scheduling of intended send times.

mod checks;
mod connection;
mod report;
mod target;

pub use checks::{CheckOptions, run};
pub use connection::{ConnectOptions, Connection, OwnedEvent};
pub use report::{CheckResult, EchoSummary, Percentiles, Report};
pub use target::Target;

use loadgen_proto::{HandshakeError, ProtocolError, RequestError, SendError};

/// Why a connection or check could not proceed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The target URL is malformed or does not resolve.
    #[error("bad target: {0}")]
    BadUrl(String),
    /// TCP connect failed.
    #[error("cannot connect to {target}: {source} (is the server running and listening there?)")]
    Connect {
        /// host:port.
        target: String,
        /// OS error.
        source: std::io::Error,
    },
    /// Socket error after connecting.
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    /// The request could not be built.
    #[error("invalid request: {0}")]
    Request(#[from] RequestError),
    /// The handshake failed (refused, malformed, timed out).
    #[error("handshake failed: {0}")]
    Handshake(HandshakeError),
    /// The server violated the protocol; we sent a close frame with `close_code`.
    #[error("server violated the protocol ({error}); closed with {close_code}")]
    Protocol {
        /// What the server did.
        error: ProtocolError,
        /// Close code we sent.
        close_code: u16,
    },
    /// A send was refused by the state machine.
    #[error("send refused: {0}")]
    Send(#[from] SendError),
    /// The server did not answer our close frame in time.
    #[error("server did not answer the close handshake in time")]
    CloseTimedOut,
    /// The server closed TCP.
    #[error("server closed the TCP connection")]
    PeerClosedTcp,
    /// Nothing arrived in time.
    #[error("no event within {0:?}")]
    NoEventWithin(std::time::Duration),
    /// The server did something the check did not expect.
    #[error("unexpected: {0}")]
    Unexpected(String),
}

impl DriverError {
    /// Stable snake_case name for reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BadUrl(_) => "bad_url",
            Self::Connect { .. } => "connect",
            Self::Io(_) => "io",
            Self::Request(_) => "request",
            Self::Handshake(h) => h.name(),
            Self::Protocol { error, .. } => error.name(),
            Self::Send(_) => "send",
            Self::CloseTimedOut => "close_timeout",
            Self::PeerClosedTcp => "peer_closed_tcp",
            Self::NoEventWithin(_) => "no_event",
            Self::Unexpected(_) => "unexpected",
        }
    }
}
