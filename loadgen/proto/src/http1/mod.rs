//! A sans-IO HTTP/1.1 keep-alive client, for clients that poll a URL over one
//! persistent connection (the status endpoint of a virtual waiting room: send the
//! cookies, read the answer, wait for `Retry-After`, ask again).
//!
//! What it does:
//! - writes requests ([`Request`]): any token method, origin-form path, `Host`,
//!   `Connection: keep-alive` (or `close`), extra headers refused when they could break
//!   or smuggle HTTP (CR, LF, NUL, non-token names, framing headers), a body framed by
//!   `Content-Length`, and the connection's cookies in one `Cookie` header;
//! - parses responses incrementally from reads split anywhere (one byte at a time
//!   included) in linear time: the head with `httparse`, bodies framed by
//!   `Content-Length`, `Transfer-Encoding: chunked` (extensions and trailers skipped) or
//!   the end of the connection, by the rules of RFC 9112 §6.3 (1xx, 204, 304 and answers
//!   to HEAD have no body; `Content-Length` with `Transfer-Encoding`, differing
//!   `Content-Length`s and unknown transfer codings are refused); interim 1xx answers
//!   are reported and skipped;
//! - reports the status, reason, `Retry-After` as a delay (delta-seconds or an
//!   HTTP-date, converted with the caller's `now_unix_s`), the headers the request
//!   asked to keep ([`KeepHeaders`]), and whether the connection may be reused;
//! - applies `Set-Cookie` to a small per-connection [`CookieJar`] (see its docs for what
//!   is and is not supported);
//! - delivers the body streamed (slices of the input, no copy), collected up to a
//!   limit, or discarded (counted against the limit only), chosen per request
//!   ([`BodyMode`]);
//! - bounds everything: head size, header count, body size, chunk lines, trailers and
//!   bytes arriving with no request in flight, each with a typed [`Http1Error`] and a
//!   `Copy` [`Http1ErrorKind`] for counters;
//! - times out a response on the caller's clock ([`Http1Client::poll_timeout`]).
//!
//! What it does not do: sockets, TLS, clocks, pipelining (one request in flight; bytes
//! that arrive early are kept for the next response, never lost), redirects, content
//! codings (no `Accept-Encoding` is sent, so none should come back), request bodies
//! sent chunked, `Expect: 100-continue` (a 100 is skipped, the body is sent at once),
//! upgrades and CONNECT, exposing trailer fields, HTTP/0.9 or HTTP/2.
//!
//! Steady state allocates nothing: the request goes into the caller's buffer, and the
//! head, header spans, collected body and cookies live in per-connection buffers that
//! keep their capacity ([`Http1Client::buffer_capacity`]).
//!
//! ```
//! use loadgen_proto::http1::{BodyMode, Http1Client, Http1Config, Http1Event, Request};
//!
//! let mut client = Http1Client::new(Http1Config::default());
//! let mut out = Vec::new();
//! let request = Request::get("queue.example", "/status").body_mode(BodyMode::Collect(4096));
//! client.send_request(&request, 0, 1_700_000_000, &mut out).unwrap();
//! assert!(out.starts_with(b"GET /status HTTP/1.1\r\nHost: queue.example\r\n"));
//!
//! let answer = b"HTTP/1.1 200 OK\r\nRetry-After: 5\r\nSet-Cookie: pos=42\r\nContent-Length: 2\r\n\r\nok";
//! let mut rest = &answer[..];
//! let mut body = Vec::new();
//! loop {
//!     let (n, event) = client.receive(rest, 1_700_000_000).unwrap();
//!     rest = &rest[n..];
//!     match event {
//!         Some(Http1Event::ResponseHead(head)) => assert_eq!((head.status, head.retry_after_s), (200, Some(5))),
//!         Some(Http1Event::ResponseEnd { body: b, keep_alive }) => {
//!             body.extend_from_slice(b);
//!             assert!(keep_alive);
//!         }
//!         Some(_) => {}
//!         None => break, // all input consumed, nothing pending
//!     }
//! }
//! assert_eq!(body, b"ok");
//! assert_eq!(client.jar().get("pos"), Some(&b"42"[..]));
//! ```

mod body;
mod client;
mod cookies;
mod date;
mod error;
mod request;
mod response;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use client::{Http1Client, Http1Config, Http1Event, Http1State, Http1Timeout};
pub use cookies::{Cookie, CookieJar, CookieOutcome};
pub use date::{parse_http_date, retry_after_delay};
pub use error::{Http1Error, Http1ErrorKind, Http1RequestError};
pub use request::{BodyMode, KeepHeaders, Request};
pub use response::{Framing, Headers, HttpVersion, MAX_HEADERS, ResponseHead};

/// An HTTP token byte (RFC 9110 §5.6.2): what header names and methods are made of.
///
/// The same rule as the WebSocket handshake request's (`handshake.rs`), whose helpers
/// are private to that module.
pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A byte allowed in a URI authority (the `Host` header).
pub(crate) fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~:[]%!$&'()*+,;=".contains(&b)
}

/// A field value without CR, LF, NUL or other controls (HTAB allowed).
pub(crate) fn is_field_value(v: &[u8]) -> bool {
    v.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// `s` without leading and trailing spaces and tabs (optional whitespace, RFC 9110 §5.6.3).
pub(crate) fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(s.len());
    let end = s.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(start, |i| i + 1);
    &s[start..end]
}
