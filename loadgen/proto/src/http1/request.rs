//! Requests: what to send and how to read the answer, validated against header
//! injection and written into the caller's buffer without allocating.

use super::cookies::CookieJar;
use super::error::Http1RequestError;
use super::{is_field_value, is_host_byte, is_token_byte};

/// How the body of the response is delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BodyMode {
    /// As [`super::Http1Event::Body`] slices, borrowed from the input (no copy) except
    /// for bytes that arrived before the request was sent.
    #[default]
    Stream,
    /// Collected (into a buffer the client reuses) and delivered whole in
    /// [`super::Http1Event::ResponseEnd`]; a body larger than this many bytes (or than
    /// [`super::Http1Config::max_body_bytes`]) fails with [`super::Http1Error::BodyTooLarge`].
    Collect(u32),
    /// Read, counted against [`super::Http1Config::max_body_bytes`], and dropped.
    Discard,
}

/// Which response headers [`super::ResponseHead::headers`] exposes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KeepHeaders {
    /// None (status, reason, framing, `Retry-After` and cookies are still handled).
    #[default]
    None,
    /// Every header field, in order.
    All,
    /// Those with these names (case-insensitive). `'static` so that the request needs no
    /// copy of them while its answer is awaited: constants, or names leaked once at
    /// start-up.
    Named(&'static [&'static str]),
}

impl KeepHeaders {
    pub(crate) fn keeps(self, name: &str) -> bool {
        match self {
            Self::None => false,
            Self::All => true,
            Self::Named(names) => names.iter().any(|n| n.eq_ignore_ascii_case(name)),
        }
    }
}

/// One request, borrowed from the caller for the time of
/// [`super::Http1Client::send_request`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// Method, an HTTP token (case-sensitive: `GET`, `HEAD`, `POST` ...). `HEAD`
    /// answers have no body; `CONNECT` is refused.
    pub method: &'a str,
    /// `Host` header value (host, or host:port when the port is not the default).
    pub host: &'a str,
    /// Request target in origin form: path and query, starting with `/`.
    pub path: &'a str,
    /// Extra header fields, sent in order after `Host` and `Connection`.
    pub headers: &'a [(&'a str, &'a str)],
    /// Body, sent with `Content-Length`. `None` sends no body (and `Content-Length: 0`
    /// for POST, PUT and PATCH, as RFC 9110 §8.6 asks).
    pub body: Option<&'a [u8]>,
    /// `Connection: keep-alive` (the default) or `Connection: close`.
    pub keep_alive: bool,
    /// How to deliver the response body.
    pub body_mode: BodyMode,
    /// Which response headers to expose.
    pub keep_headers: KeepHeaders,
}

impl<'a> Request<'a> {
    /// A request with no extra headers, no body, keep-alive, streamed body.
    pub fn new(method: &'a str, host: &'a str, path: &'a str) -> Self {
        Self {
            method,
            host,
            path,
            headers: &[],
            body: None,
            keep_alive: true,
            body_mode: BodyMode::Stream,
            keep_headers: KeepHeaders::None,
        }
    }

    /// `GET path`.
    pub fn get(host: &'a str, path: &'a str) -> Self {
        Self::new("GET", host, path)
    }

    /// `HEAD path`.
    pub fn head(host: &'a str, path: &'a str) -> Self {
        Self::new("HEAD", host, path)
    }

    /// `POST path` with `body`.
    pub fn post(host: &'a str, path: &'a str, body: &'a [u8]) -> Self {
        Self { body: Some(body), ..Self::new("POST", host, path) }
    }

    /// With these extra headers.
    pub fn with_headers(self, headers: &'a [(&'a str, &'a str)]) -> Self {
        Self { headers, ..self }
    }

    /// With this body.
    pub fn with_body(self, body: &'a [u8]) -> Self {
        Self { body: Some(body), ..self }
    }

    /// Delivering the response body this way.
    pub fn body_mode(self, body_mode: BodyMode) -> Self {
        Self { body_mode, ..self }
    }

    /// Exposing these response headers.
    pub fn keep_headers(self, keep_headers: KeepHeaders) -> Self {
        Self { keep_headers, ..self }
    }

    /// Asking the server to close the connection after its answer.
    pub fn connection_close(self) -> Self {
        Self { keep_alive: false, ..self }
    }

    /// Whether the answer has no body whatever its headers say.
    pub(crate) fn is_head(&self) -> bool {
        self.method == "HEAD"
    }

    /// Checks every field for bytes that would break or smuggle HTTP.
    pub fn validate(&self) -> Result<(), Http1RequestError> {
        if self.method.is_empty() || !self.method.bytes().all(is_token_byte) {
            return Err(Http1RequestError::InvalidMethod);
        }
        if self.method == "CONNECT" {
            return Err(Http1RequestError::UnsupportedMethod);
        }
        if self.host.is_empty() || !self.host.bytes().all(is_host_byte) {
            return Err(Http1RequestError::InvalidHost);
        }
        if !self.path.starts_with('/') || !self.path.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Http1RequestError::InvalidPath);
        }
        for (index, (name, value)) in self.headers.iter().enumerate() {
            if name.is_empty() || !name.bytes().all(is_token_byte) || !is_field_value(value.as_bytes()) {
                return Err(Http1RequestError::InvalidHeader { index });
            }
            if ["host", "content-length", "transfer-encoding", "connection", "cookie"]
                .iter()
                .any(|r| name.eq_ignore_ascii_case(r))
            {
                return Err(Http1RequestError::ReservedHeader { index });
            }
        }
        Ok(())
    }

    /// Appends the request to `out`, with the cookies of `jar` that apply to the path at
    /// `now_unix_s` (`Secure` ones only when `secure_transport`). Call
    /// [`Request::validate`] first: this writes whatever it is given.
    pub fn write(&self, jar: &CookieJar, now_unix_s: u64, secure_transport: bool, out: &mut Vec<u8>) {
        let parts: [&[u8]; 7] = [
            self.method.as_bytes(),
            b" ",
            self.path.as_bytes(),
            b" HTTP/1.1\r\nHost: ",
            self.host.as_bytes(),
            b"\r\n",
            if self.keep_alive { b"Connection: keep-alive\r\n" } else { b"Connection: close\r\n" },
        ];
        out.reserve(parts.iter().map(|p| p.len()).sum::<usize>() + 64 + self.body.map_or(0, <[u8]>::len));
        for part in parts {
            out.extend_from_slice(part);
        }
        for (name, value) in self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        jar.write_header(self.path, now_unix_s, secure_transport, out);
        let length = match self.body {
            Some(body) => Some(body.len()),
            None if matches!(self.method, "POST" | "PUT" | "PATCH") => Some(0),
            None => None,
        };
        if let Some(length) = length {
            out.extend_from_slice(b"Content-Length: ");
            write_decimal(length as u64, out);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if let Some(body) = self.body {
            out.extend_from_slice(body);
        }
    }
}

fn write_decimal(mut n: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(req: &Request<'_>, jar: &CookieJar) -> String {
        req.validate().unwrap();
        let mut out = Vec::new();
        req.write(jar, 0, false, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn get_with_headers_and_cookies() {
        let mut jar = CookieJar::default();
        jar.insert("sid", "abc");
        jar.set_cookie(b"q=7; Path=/queue", 0);
        let headers = [("User-Agent", "loadgen"), ("Accept", "application/json")];
        let req = Request::get("room.example:8080", "/queue/status?id=3").with_headers(&headers);
        assert_eq!(
            written(&req, &jar),
            "GET /queue/status?id=3 HTTP/1.1\r\nHost: room.example:8080\r\nConnection: keep-alive\r\n\
             User-Agent: loadgen\r\nAccept: application/json\r\nCookie: sid=abc; q=7\r\n\r\n"
        );
        let other = Request::get("h", "/other").connection_close();
        assert_eq!(
            written(&other, &jar),
            "GET /other HTTP/1.1\r\nHost: h\r\nConnection: close\r\nCookie: sid=abc\r\n\r\n"
        );
    }

    #[test]
    fn bodies_are_framed_by_content_length() {
        let jar = CookieJar::default();
        let post = Request::post("h", "/join", b"{\"a\":1}");
        assert_eq!(
            written(&post, &jar),
            "POST /join HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nContent-Length: 7\r\n\r\n{\"a\":1}"
        );
        let empty_post = Request::new("POST", "h", "/");
        assert!(written(&empty_post, &jar).ends_with("Content-Length: 0\r\n\r\n"));
        let get = Request::get("h", "/");
        assert!(!written(&get, &jar).contains("Content-Length"));
        let big = vec![b'x'; 123_456];
        assert!(written(&Request::new("PUT", "h", "/").with_body(&big), &jar).contains("Content-Length: 123456\r\n"));
        let mut out = Vec::new();
        write_decimal(u64::MAX, &mut out);
        assert_eq!(out, u64::MAX.to_string().as_bytes());
    }

    #[test]
    fn injection_and_reserved_headers_are_refused() {
        let bad = |r: Request<'_>| r.validate().unwrap_err();
        assert_eq!(bad(Request::new("GE T", "h", "/")), Http1RequestError::InvalidMethod);
        assert_eq!(bad(Request::new("", "h", "/")), Http1RequestError::InvalidMethod);
        assert_eq!(bad(Request::new("CONNECT", "h", "/")), Http1RequestError::UnsupportedMethod);
        assert_eq!(bad(Request::get("h\r\nX: 1", "/")), Http1RequestError::InvalidHost);
        assert_eq!(bad(Request::get("", "/")), Http1RequestError::InvalidHost);
        assert_eq!(bad(Request::get("h", "/ HTTP/1.0\r\n")), Http1RequestError::InvalidPath);
        assert_eq!(bad(Request::get("h", "status")), Http1RequestError::InvalidPath);
        let split = [("X-Ok", "1"), ("X-A", "v\r\nX-Evil: 1")];
        assert_eq!(bad(Request::get("h", "/").with_headers(&split)), Http1RequestError::InvalidHeader { index: 1 });
        let nul = [("X-A", "a\0b")];
        assert_eq!(bad(Request::get("h", "/").with_headers(&nul)), Http1RequestError::InvalidHeader { index: 0 });
        let name = [("X A", "1")];
        assert_eq!(bad(Request::get("h", "/").with_headers(&name)), Http1RequestError::InvalidHeader { index: 0 });
        for reserved in ["Host", "content-length", "Transfer-Encoding", "CONNECTION", "Cookie"] {
            let h = [("X-Fine", "\tok"), (reserved, "x")];
            assert_eq!(
                bad(Request::get("h", "/").with_headers(&h)),
                Http1RequestError::ReservedHeader { index: 1 },
                "{reserved}"
            );
        }
    }
}
