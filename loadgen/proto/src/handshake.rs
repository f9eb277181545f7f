//! The opening handshake (RFC 6455 §4): building the client's upgrade request and
//! validating the server's answer incrementally. Non-101 answers are classified
//! (401, 403, 404, 429 with Retry-After, 503 ...) and kept whole for the report.
//!
//! No I/O and no randomness of its own: the caller supplies the 16-byte key.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::deflate::{self, DeflateConfig, DeflateParams};
use crate::error::{HandshakeError, RequestError};
use crate::http1::{is_host_byte, is_token_byte};

/// The GUID of RFC 6455 §1.3.
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Most headers a response may carry.
const MAX_RESPONSE_HEADERS: usize = 64;

/// What a client asks for in its upgrade request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HandshakeRequest {
    /// `Host` header value (host, or host:port when the port is not the default).
    pub host: String,
    /// Request target: path and query, starting with `/`.
    pub path: String,
    /// `Origin` header, as a browser would send it.
    pub origin: Option<String>,
    /// Subprotocols offered, in order of preference.
    pub subprotocols: Vec<String>,
    /// Extra headers (Authorization, Cookie, User-Agent ...), sent as given.
    pub headers: Vec<(String, String)>,
    /// permessage-deflate offer, if any.
    pub deflate: Option<DeflateConfig>,
}

impl HandshakeRequest {
    /// A request for `path` on `host` with no options.
    pub fn new(host: impl Into<String>, path: impl Into<String>) -> Self {
        Self { host: host.into(), path: path.into(), ..Self::default() }
    }

    /// Checks every field for characters that would break or smuggle HTTP.
    pub fn validate(&self) -> Result<(), RequestError> {
        if self.host.is_empty() || !self.host.bytes().all(is_host_byte) {
            return Err(RequestError::InvalidTarget("host is empty or has characters outside a URI authority"));
        }
        if !self.path.starts_with('/') || !self.path.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(RequestError::InvalidTarget("path must start with '/' and hold only visible ASCII"));
        }
        if let Some(origin) = &self.origin
            && !is_field_value(origin)
        {
            return Err(RequestError::InvalidHeader("Origin".into()));
        }
        for p in &self.subprotocols {
            if p.is_empty() || !p.bytes().all(is_token_byte) {
                return Err(RequestError::InvalidSubprotocol(p.clone()));
            }
        }
        for (name, value) in &self.headers {
            if name.is_empty() || !name.bytes().all(is_token_byte) || !is_field_value(value) {
                return Err(RequestError::InvalidHeader(name.clone()));
            }
        }
        if let Some(d) = &self.deflate {
            d.validate()?;
        }
        Ok(())
    }

    /// Appends the upgrade request to `out`. `key` is the base64 of 16 random bytes.
    pub fn write(&self, key: &str, out: &mut Vec<u8>) {
        use std::io::Write as _;
        let _ = write!(
            out,
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n",
            self.path, self.host, key
        );
        if let Some(origin) = &self.origin {
            let _ = write!(out, "Origin: {origin}\r\n");
        }
        if !self.subprotocols.is_empty() {
            let _ = write!(out, "Sec-WebSocket-Protocol: {}\r\n", self.subprotocols.join(", "));
        }
        if let Some(d) = &self.deflate {
            let _ = write!(out, "Sec-WebSocket-Extensions: {}\r\n", d.offer());
        }
        for (name, value) in &self.headers {
            let _ = write!(out, "{name}: {value}\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
}

fn is_field_value(v: &str) -> bool {
    crate::http1::is_field_value(v.as_bytes())
}

/// Base64 of 16 random bytes, the `Sec-WebSocket-Key`.
pub fn encode_key(nonce: [u8; 16]) -> String {
    BASE64.encode(nonce)
}

/// The `Sec-WebSocket-Accept` a server must answer to `key`.
pub fn accept_key(key: &str) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(WEBSOCKET_GUID.as_bytes());
    BASE64.encode(sha.digest().bytes())
}

/// What the server answered with 101.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Accepted {
    /// The subprotocol the server selected, if any.
    pub subprotocol: Option<String>,
    /// permessage-deflate parameters, if negotiated.
    pub deflate: Option<DeflateParams>,
    /// Every response header, for on-open checks (cookies for sticky sessions ...).
    pub headers: Vec<(String, String)>,
}

/// Classification of a refused upgrade.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectionKind {
    /// 3xx with a Location.
    Redirect,
    /// 401: missing or bad credentials.
    Unauthorized,
    /// 403: forbidden (origin, wrong unit ...).
    Forbidden,
    /// 404.
    NotFound,
    /// 429: rate limited (see [`Rejection::retry_after_secs`]).
    TooManyRequests,
    /// 503: overloaded or draining (see [`Rejection::retry_after_secs`]).
    ServiceUnavailable,
    /// Another 4xx.
    OtherClientError,
    /// Another 5xx.
    OtherServerError,
    /// A 1xx or 2xx that is not 101.
    NotUpgraded,
}

impl RejectionKind {
    /// Stable snake_case name for counters and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Redirect => "redirect",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::TooManyRequests => "too_many_requests",
            Self::ServiceUnavailable => "service_unavailable",
            Self::OtherClientError => "client_error",
            Self::OtherServerError => "server_error",
            Self::NotUpgraded => "not_upgraded",
        }
    }
}

/// A non-101 answer, kept whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// HTTP status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Response headers in order.
    pub headers: Vec<(String, String)>,
}

impl Rejection {
    /// What kind of refusal this is.
    pub fn kind(&self) -> RejectionKind {
        match self.status {
            300..=399 => RejectionKind::Redirect,
            401 => RejectionKind::Unauthorized,
            403 => RejectionKind::Forbidden,
            404 => RejectionKind::NotFound,
            429 => RejectionKind::TooManyRequests,
            503 => RejectionKind::ServiceUnavailable,
            400..=499 => RejectionKind::OtherClientError,
            500..=599 => RejectionKind::OtherServerError,
            _ => RejectionKind::NotUpgraded,
        }
    }

    /// First header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// `Retry-After` in seconds, when given as delta-seconds. (An HTTP-date needs a wall
    /// clock, which this crate does not have; read it with [`Rejection::header`].)
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.header("retry-after")?.trim().parse().ok()
    }
}

fn find_header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// Outcome of feeding bytes to a [`ResponseParser`].
#[derive(Debug)]
pub enum ResponseProgress {
    /// The response head is incomplete.
    Partial,
    /// Complete; `consumed` bytes of the last input belonged to the head, the rest are
    /// the first WebSocket frames.
    Done {
        /// Bytes of the last input that belonged to the head.
        consumed: usize,
        /// The negotiated connection.
        accepted: Accepted,
    },
}

/// Incremental parser for the server's answer.
#[derive(Debug)]
pub struct ResponseParser {
    buf: Vec<u8>,
    max_len: usize,
    expected_accept: String,
    offered_protocols: Vec<String>,
    offered_deflate: Option<DeflateConfig>,
}

impl ResponseParser {
    /// A parser expecting the answer to `request` sent with `key`.
    pub fn new(request: &HandshakeRequest, key: &str, max_len: usize) -> Self {
        Self {
            buf: Vec::new(),
            max_len,
            expected_accept: accept_key(key),
            offered_protocols: request.subprotocols.clone(),
            offered_deflate: request.deflate.clone(),
        }
    }

    /// Feeds the next bytes read from the socket.
    pub fn feed(&mut self, input: &[u8]) -> Result<ResponseProgress, HandshakeError> {
        let already = self.buf.len();
        // Only look for the end of the head within the limit.
        let room = (self.max_len + 1).saturating_sub(already).min(input.len());
        self.buf.extend_from_slice(&input[..room]);
        // Parse only once the blank line that ends the head may have arrived (looking at
        // the new bytes and the three before them), so a head fed byte by byte costs
        // linear, not quadratic, time. Garbage is still refused at once: it cannot start
        // with "HTTP/".
        // httparse also accepts bare LF line ends, so look for "\n\n" or "\n\r\n".
        let scan_from = already.saturating_sub(2);
        let tail = &self.buf[scan_from..];
        let head_may_be_complete = tail.windows(2).any(|w| w == b"\n\n") || tail.windows(3).any(|w| w == b"\n\r\n");
        let prefix_ok = b"HTTP/1.1 ".iter().zip(&self.buf).all(|(a, b)| a == b);
        if !head_may_be_complete && prefix_ok && self.buf.len() <= self.max_len {
            return Ok(ResponseProgress::Partial);
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let head_len = match response.parse(&self.buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if self.buf.len() > self.max_len => {
                return Err(HandshakeError::ResponseTooLarge);
            }
            Ok(httparse::Status::Partial) => return Ok(ResponseProgress::Partial),
            Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::ResponseTooLarge),
            Err(_) => return Err(HandshakeError::MalformedResponse("not an HTTP/1.1 response head")),
        };
        if response.version != Some(1) {
            return Err(HandshakeError::MalformedResponse("not HTTP/1.1"));
        }
        let status = response.code.unwrap_or(0);
        let headers: Vec<(String, String)> = response
            .headers
            .iter()
            .map(|h| (h.name.to_owned(), String::from_utf8_lossy(h.value).into_owned()))
            .collect();
        if status != 101 {
            return Err(HandshakeError::Rejected(Box::new(Rejection {
                status,
                reason: response.reason.unwrap_or("").to_owned(),
                headers,
            })));
        }
        let accepted = self.validate(headers)?;
        // The head cannot end inside bytes an earlier call already saw incomplete.
        let consumed = head_len.checked_sub(already).ok_or(HandshakeError::MalformedResponse("head ended early"))?;
        self.buf = Vec::new();
        Ok(ResponseProgress::Done { consumed, accepted })
    }

    fn validate(&self, headers: Vec<(String, String)>) -> Result<Accepted, HandshakeError> {
        let has_token = |name: &str, token: &str| {
            headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .flat_map(|(_, v)| v.split(','))
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        };
        if !has_token("upgrade", "websocket") {
            return Err(HandshakeError::MissingUpgrade);
        }
        if !has_token("connection", "upgrade") {
            return Err(HandshakeError::MissingConnection);
        }
        let accepts: Vec<&str> = headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-accept"))
            .map(|(_, v)| v.trim())
            .collect();
        if accepts != [self.expected_accept.as_str()] {
            return Err(HandshakeError::BadAccept);
        }
        let subprotocol = match find_header(&headers, "sec-websocket-protocol").map(str::trim) {
            None => None,
            Some(p) if self.offered_protocols.iter().any(|o| o == p) => Some(p.to_owned()),
            Some(_) => return Err(HandshakeError::UnrequestedSubprotocol),
        };
        let mut deflate = None;
        for ext in headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-extensions"))
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let (name, params) = ext.split_once(';').unwrap_or((ext, ""));
            let offer = match &self.offered_deflate {
                Some(offer) if name.trim().eq_ignore_ascii_case("permessage-deflate") && deflate.is_none() => offer,
                _ => return Err(HandshakeError::UnrequestedExtension),
            };
            deflate = Some(deflate::parse_response(params, offer)?);
        }
        Ok(Accepted { subprotocol, deflate, headers })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn response(extra: &str) -> String {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\n{extra}\r\n"
        )
    }

    fn parse(req: &HandshakeRequest, text: &str) -> Result<ResponseProgress, HandshakeError> {
        ResponseParser::new(req, KEY, 8192).feed(text.as_bytes())
    }

    #[test]
    fn rfc6455_sample_key() {
        assert_eq!(accept_key(KEY), ACCEPT);
        assert_eq!(encode_key(*b"the sample nonce"), KEY);
    }

    #[test]
    fn request_has_every_required_header() {
        let mut req = HandshakeRequest::new("server.example.com", "/chat?room=1");
        req.origin = Some("http://example.com".into());
        req.subprotocols = vec!["chat".into(), "superchat".into()];
        req.headers = vec![("Authorization".into(), "Bearer abc".into()), ("Cookie".into(), "sid=1".into())];
        req.deflate = Some(DeflateConfig::default());
        req.validate().unwrap();
        let mut out = Vec::new();
        req.write(KEY, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("GET /chat?room=1 HTTP/1.1\r\nHost: server.example.com\r\n"));
        for line in [
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 13",
            "Origin: http://example.com",
            "Sec-WebSocket-Protocol: chat, superchat",
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
            "Authorization: Bearer abc",
            "Cookie: sid=1",
        ] {
            assert!(text.contains(&format!("\r\n{line}\r\n")), "missing {line}");
        }
        assert!(text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn header_injection_is_refused() {
        let mut req = HandshakeRequest::new("h", "/");
        req.headers = vec![("X-A".into(), "v\r\nX-Evil: 1".into())];
        assert!(matches!(req.validate(), Err(RequestError::InvalidHeader(_))));
        let req = HandshakeRequest::new("h", "/ HTTP/1.0\r\n");
        assert!(matches!(req.validate(), Err(RequestError::InvalidTarget(_))));
        let mut req = HandshakeRequest::new("h", "/");
        req.subprotocols = vec!["a b".into()];
        assert!(matches!(req.validate(), Err(RequestError::InvalidSubprotocol(_))));
    }

    #[test]
    fn accepts_valid_response_split_anywhere() {
        let mut req = HandshakeRequest::new("h", "/");
        req.subprotocols = vec!["chat".into()];
        let mut bytes = response("Sec-WebSocket-Protocol: chat\r\n").into_bytes();
        bytes.extend_from_slice(&[0x81, 0x00]);
        let bytes = &bytes[..];
        for cut in 0..bytes.len() {
            let mut p = ResponseParser::new(&req, KEY, 8192);
            let mut done = None;
            for chunk in [&bytes[..cut], &bytes[cut..]] {
                match p.feed(chunk).unwrap() {
                    ResponseProgress::Partial => {}
                    ResponseProgress::Done { consumed, accepted } => {
                        done = Some((chunk.len() - consumed, accepted));
                        break;
                    }
                }
            }
            let (left, accepted) = done.unwrap_or_else(|| panic!("cut {cut}"));
            assert_eq!(accepted.subprotocol.as_deref(), Some("chat"));
            assert!(left <= 2, "frame bytes after the head stay unconsumed");
        }
    }

    #[test]
    fn bare_lf_heads_are_accepted_whole_or_byte_by_byte() {
        let req = HandshakeRequest::new("h", "/");
        let text =
            format!("HTTP/1.1 101 OK\nUpgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Accept: {ACCEPT}\n\n");
        assert!(matches!(parse(&req, &text), Ok(ResponseProgress::Done { .. })));
        let mut p = ResponseParser::new(&req, KEY, 8192);
        let mut done = false;
        for b in text.as_bytes() {
            if let ResponseProgress::Done { consumed, .. } = p.feed(std::slice::from_ref(b)).unwrap() {
                assert_eq!(consumed, 1);
                done = true;
            }
        }
        assert!(done);
    }

    #[test]
    fn token_matching_is_case_insensitive_and_list_aware() {
        let req = HandshakeRequest::new("h", "/");
        let text = format!(
            "HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nconnection: keep-alive, UPGRADE\r\nsec-websocket-accept: {ACCEPT}\r\n\r\n"
        );
        assert!(matches!(parse(&req, &text), Ok(ResponseProgress::Done { .. })));
    }

    #[test]
    fn bad_responses_are_typed() {
        let req = HandshakeRequest::new("h", "/");
        let wrong_accept = response("").replace(ACCEPT, "x3JJHMbDL1EzLkh9GBhXDw==");
        assert_eq!(parse(&req, &wrong_accept).unwrap_err(), HandshakeError::BadAccept);
        let no_upgrade = response("").replace("Upgrade: websocket\r\n", "");
        assert_eq!(parse(&req, &no_upgrade).unwrap_err(), HandshakeError::MissingUpgrade);
        let no_conn = response("").replace("Connection: Upgrade\r\n", "");
        assert_eq!(parse(&req, &no_conn).unwrap_err(), HandshakeError::MissingConnection);
        let proto = response("Sec-WebSocket-Protocol: chat\r\n");
        assert_eq!(parse(&req, &proto).unwrap_err(), HandshakeError::UnrequestedSubprotocol);
        let ext = response("Sec-WebSocket-Extensions: permessage-deflate\r\n");
        assert_eq!(parse(&req, &ext).unwrap_err(), HandshakeError::UnrequestedExtension);
        let garbage = "SSH-2.0-OpenSSH_9.2\r\n\r\n";
        assert!(matches!(parse(&req, garbage), Err(HandshakeError::MalformedResponse(_))));
        let huge = format!("HTTP/1.1 101 OK\r\nX-Pad: {}\r\n", "a".repeat(9000));
        assert_eq!(parse(&req, &huge).unwrap_err(), HandshakeError::ResponseTooLarge);
    }

    #[test]
    fn deflate_is_negotiated_only_when_offered_and_valid() {
        let mut req = HandshakeRequest::new("h", "/");
        req.deflate = Some(DeflateConfig::default());
        let ok = response(
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_max_window_bits=11\r\n",
        );
        let ResponseProgress::Done { accepted, .. } = parse(&req, &ok).unwrap() else { panic!() };
        let d = accepted.deflate.unwrap();
        assert!(d.server_no_context_takeover);
        assert_eq!(d.client_max_window_bits, 11);
        let twice = response("Sec-WebSocket-Extensions: permessage-deflate, permessage-deflate\r\n");
        assert_eq!(parse(&req, &twice).unwrap_err(), HandshakeError::UnrequestedExtension);
        let other = response("Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n");
        assert_eq!(parse(&req, &other).unwrap_err(), HandshakeError::UnrequestedExtension);
        let bad = response("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=99\r\n");
        assert!(matches!(parse(&req, &bad), Err(HandshakeError::InvalidExtensionParams(_))));
    }

    #[test]
    fn refusals_are_classified_with_retry_after() {
        let req = HandshakeRequest::new("h", "/");
        let cases = [
            (401, RejectionKind::Unauthorized),
            (403, RejectionKind::Forbidden),
            (404, RejectionKind::NotFound),
            (429, RejectionKind::TooManyRequests),
            (503, RejectionKind::ServiceUnavailable),
            (302, RejectionKind::Redirect),
            (400, RejectionKind::OtherClientError),
            (502, RejectionKind::OtherServerError),
            (200, RejectionKind::NotUpgraded),
        ];
        for (status, kind) in cases {
            let text = format!("HTTP/1.1 {status} Nope\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n");
            match parse(&req, &text) {
                Err(HandshakeError::Rejected(r)) => {
                    assert_eq!(r.status, status);
                    assert_eq!(r.kind(), kind);
                    assert_eq!(r.retry_after_secs(), Some(7));
                    assert_eq!(r.header("content-length"), Some("0"));
                }
                other => panic!("{status}: {other:?}"),
            }
        }
    }
}
