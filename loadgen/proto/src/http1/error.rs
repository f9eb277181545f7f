//! Errors of the HTTP/1.1 client: [`Http1Error`] for what the server sent (every one
//! ends the connection), [`Http1ErrorKind`] to count them, [`Http1RequestError`] for a
//! request that could not be written (nothing was queued, the connection is unchanged).

use super::response::MAX_HEADERS;

/// Why a response could not be read. The connection is closed after any of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Http1Error {
    /// The head is not an HTTP/1.x response head.
    #[error("malformed response head: {0}")]
    MalformedHead(&'static str),
    /// The head (or the bytes of a head still incomplete) exceeded the limit.
    #[error("response head larger than {limit} bytes")]
    HeadTooLarge {
        /// The configured limit ([`super::Http1Config::max_head_bytes`]).
        limit: u32,
    },
    /// More header fields than [`MAX_HEADERS`].
    #[error("more than {MAX_HEADERS} header fields")]
    TooManyHeaders,
    /// 101 Switching Protocols, but this client never asks for an upgrade.
    #[error("101 Switching Protocols without an upgrade request")]
    UnexpectedUpgrade,
    /// A `Content-Length` that is not a non-negative decimal number that fits 64 bits.
    #[error("invalid Content-Length")]
    InvalidContentLength,
    /// Several `Content-Length` values that differ (a request smuggling signature).
    #[error("several different Content-Length values")]
    ConflictingContentLength,
    /// Both `Content-Length` and `Transfer-Encoding` (a request smuggling signature).
    #[error("both Content-Length and Transfer-Encoding")]
    ContentLengthWithTransferEncoding,
    /// A `Transfer-Encoding` other than a single `chunked`, or any in an HTTP/1.0 answer.
    #[error("unsupported Transfer-Encoding (only a single `chunked`, and never in HTTP/1.0)")]
    UnsupportedTransferEncoding,
    /// A chunked body that breaks the grammar of RFC 9112 §7.1.
    #[error("malformed chunked body: {0}")]
    BadChunk(&'static str),
    /// The trailer section of a chunked body exceeded the head limit.
    #[error("trailer section larger than {limit} bytes")]
    TrailersTooLarge {
        /// The configured limit ([`super::Http1Config::max_head_bytes`]).
        limit: u32,
    },
    /// The body exceeds the configured or requested limit.
    #[error("body larger than {limit} bytes")]
    BodyTooLarge {
        /// The limit in force (the smaller of the configured and the requested one).
        limit: u64,
    },
    /// The server closed the connection before sending any byte of the response (on a
    /// reused connection: it closed it as idle while the request was on its way).
    #[error("connection closed before the response")]
    ClosedBeforeResponse,
    /// The server closed the connection in the middle of a response.
    #[error("connection closed in the middle of the response")]
    TruncatedResponse,
    /// More bytes than [`super::Http1Config::max_head_bytes`] arrived with no request
    /// in flight.
    #[error("more than {limit} bytes arrived with no request in flight")]
    UnsolicitedData {
        /// The configured limit.
        limit: u32,
    },
}

impl Http1Error {
    /// The kind, for counters.
    pub fn kind(self) -> Http1ErrorKind {
        match self {
            Self::MalformedHead(_) => Http1ErrorKind::MalformedHead,
            Self::HeadTooLarge { .. } => Http1ErrorKind::HeadTooLarge,
            Self::TooManyHeaders => Http1ErrorKind::TooManyHeaders,
            Self::UnexpectedUpgrade => Http1ErrorKind::UnexpectedUpgrade,
            Self::InvalidContentLength => Http1ErrorKind::InvalidContentLength,
            Self::ConflictingContentLength => Http1ErrorKind::ConflictingContentLength,
            Self::ContentLengthWithTransferEncoding => Http1ErrorKind::ContentLengthWithTransferEncoding,
            Self::UnsupportedTransferEncoding => Http1ErrorKind::UnsupportedTransferEncoding,
            Self::BadChunk(_) => Http1ErrorKind::BadChunk,
            Self::TrailersTooLarge { .. } => Http1ErrorKind::TrailersTooLarge,
            Self::BodyTooLarge { .. } => Http1ErrorKind::BodyTooLarge,
            Self::ClosedBeforeResponse => Http1ErrorKind::ClosedBeforeResponse,
            Self::TruncatedResponse => Http1ErrorKind::TruncatedResponse,
            Self::UnsolicitedData { .. } => Http1ErrorKind::UnsolicitedData,
        }
    }

    /// Stable snake_case name for counters and reports (that of the kind).
    pub fn name(self) -> &'static str {
        self.kind().name()
    }
}

/// What went wrong, without details: one byte, usable as an array index
/// (`kind as usize < Http1ErrorKind::COUNT`) for lock-free per-core counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Http1ErrorKind {
    /// See [`Http1Error::MalformedHead`].
    MalformedHead,
    /// See [`Http1Error::HeadTooLarge`].
    HeadTooLarge,
    /// See [`Http1Error::TooManyHeaders`].
    TooManyHeaders,
    /// See [`Http1Error::UnexpectedUpgrade`].
    UnexpectedUpgrade,
    /// See [`Http1Error::InvalidContentLength`].
    InvalidContentLength,
    /// See [`Http1Error::ConflictingContentLength`].
    ConflictingContentLength,
    /// See [`Http1Error::ContentLengthWithTransferEncoding`].
    ContentLengthWithTransferEncoding,
    /// See [`Http1Error::UnsupportedTransferEncoding`].
    UnsupportedTransferEncoding,
    /// See [`Http1Error::BadChunk`].
    BadChunk,
    /// See [`Http1Error::TrailersTooLarge`].
    TrailersTooLarge,
    /// See [`Http1Error::BodyTooLarge`].
    BodyTooLarge,
    /// See [`Http1Error::ClosedBeforeResponse`].
    ClosedBeforeResponse,
    /// See [`Http1Error::TruncatedResponse`].
    TruncatedResponse,
    /// See [`Http1Error::UnsolicitedData`].
    UnsolicitedData,
}

impl Http1ErrorKind {
    /// Number of kinds (the size of a counter array indexed by `kind as usize`).
    pub const COUNT: usize = Self::ALL.len();

    /// Every kind, in discriminant order.
    pub const ALL: [Self; 14] = [
        Self::MalformedHead,
        Self::HeadTooLarge,
        Self::TooManyHeaders,
        Self::UnexpectedUpgrade,
        Self::InvalidContentLength,
        Self::ConflictingContentLength,
        Self::ContentLengthWithTransferEncoding,
        Self::UnsupportedTransferEncoding,
        Self::BadChunk,
        Self::TrailersTooLarge,
        Self::BodyTooLarge,
        Self::ClosedBeforeResponse,
        Self::TruncatedResponse,
        Self::UnsolicitedData,
    ];

    /// Stable snake_case name for counters and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::MalformedHead => "http_malformed_head",
            Self::HeadTooLarge => "http_head_too_large",
            Self::TooManyHeaders => "http_too_many_headers",
            Self::UnexpectedUpgrade => "http_unexpected_upgrade",
            Self::InvalidContentLength => "http_invalid_content_length",
            Self::ConflictingContentLength => "http_conflicting_content_length",
            Self::ContentLengthWithTransferEncoding => "http_content_length_with_transfer_encoding",
            Self::UnsupportedTransferEncoding => "http_unsupported_transfer_encoding",
            Self::BadChunk => "http_bad_chunk",
            Self::TrailersTooLarge => "http_trailers_too_large",
            Self::BodyTooLarge => "http_body_too_large",
            Self::ClosedBeforeResponse => "http_closed_before_response",
            Self::TruncatedResponse => "http_truncated_response",
            Self::UnsolicitedData => "http_unsolicited_data",
        }
    }
}

/// Why [`super::Http1Client::send_request`] refused a request. Nothing was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Http1RequestError {
    /// The method is empty or not an HTTP token.
    #[error("method is empty or not an HTTP token")]
    InvalidMethod,
    /// CONNECT (tunnels are not supported).
    #[error("CONNECT is not supported")]
    UnsupportedMethod,
    /// The host is empty or has characters outside a URI authority.
    #[error("host is empty or has characters outside a URI authority")]
    InvalidHost,
    /// The path does not start with '/' or holds characters other than visible ASCII.
    #[error("path must start with '/' and hold only visible ASCII")]
    InvalidPath,
    /// Extra header number `index` has a non-token name or CR, LF, NUL or another
    /// control character in its value.
    #[error("extra header #{index} has a non-token name or a forbidden character in its value")]
    InvalidHeader {
        /// Position in [`super::Request::headers`].
        index: usize,
    },
    /// Extra header number `index` is one the client writes itself (`Host`,
    /// `Content-Length`, `Transfer-Encoding`, `Connection`, `Cookie`: framing and the
    /// cookie jar stay in one place).
    #[error("extra header #{index} is written by the client itself")]
    ReservedHeader {
        /// Position in [`super::Request::headers`].
        index: usize,
    },
    /// A request is already in flight (no pipelining).
    #[error("a request is already in flight")]
    Busy,
    /// The connection cannot carry another request (closed, failed or not reusable).
    #[error("the connection is closed")]
    Closed,
}
