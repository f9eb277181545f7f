//! The server side of the opening handshake: parses an HTTP/1.1 upgrade request with
//! `httparse` (head bounded by the caller) and writes the answer: `101` with
//! `Sec-WebSocket-Accept`, or a refusal (`400` malformed, `405` not GET, `426` not a
//! WebSocket upgrade or not version 13, `431` head too large).
//!
//! What it does not do: extensions and subprotocols. A `permessage-deflate` offer is
//! ignored (the answer carries no `Sec-WebSocket-Extensions`, so the client must not
//! compress). No I/O, no buffering: the caller accumulates bytes and calls [`parse`]
//! again.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use loadgen_proto::handshake::accept_key;

/// Largest request head accepted, in bytes.
pub(super) const MAX_HEAD: usize = 8 << 10;
const MAX_HEADERS: usize = 64;

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Refusal {
    /// HTTP status sent.
    pub status: u16,
    /// One-line explanation sent as the body.
    pub reason: &'static str,
}

/// What a request head parsed into.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Parsed {
    /// The head is not complete yet.
    Partial,
    /// A valid upgrade: the head is `consumed` bytes long; answer with `accept`.
    Accept {
        /// Bytes of the head (anything after them is WebSocket frames).
        consumed: usize,
        /// `Sec-WebSocket-Accept` value.
        accept: String,
    },
    /// Refuse with this status.
    Refuse(Refusal),
}

const fn refuse(status: u16, reason: &'static str) -> Parsed {
    Parsed::Refuse(Refusal { status, reason })
}

/// Parses the bytes of a request head received so far.
pub(super) fn parse(head: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let consumed = match req.parse(head) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if head.len() >= MAX_HEAD => {
            return refuse(431, "request head larger than 8 KiB");
        }
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => return refuse(431, "too many request headers"),
        Err(_) => return refuse(400, "malformed HTTP request"),
    };
    if consumed > MAX_HEAD {
        return refuse(431, "request head larger than 8 KiB");
    }
    if req.version != Some(1) {
        return refuse(400, "WebSocket upgrades need HTTP/1.1");
    }
    if req.method != Some("GET") {
        return refuse(405, "WebSocket upgrades use GET");
    }
    let mut upgrade = false;
    let mut connection = false;
    let mut version = None;
    let mut key = None;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade |= has_token(h.value, "websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            connection |= has_token(h.value, "upgrade");
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            version = Some(h.value);
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            if key.is_some() {
                return refuse(400, "more than one Sec-WebSocket-Key");
            }
            key = Some(h.value);
        }
    }
    if !upgrade {
        return refuse(426, "this endpoint only speaks WebSocket (Upgrade: websocket)");
    }
    if version.map(trim) != Some(b"13".as_slice()) {
        return refuse(426, "unsupported Sec-WebSocket-Version (13 is supported)");
    }
    if !connection {
        return refuse(400, "missing Connection: Upgrade");
    }
    let Some(key) = key.map(trim) else { return refuse(400, "missing Sec-WebSocket-Key") };
    let Ok(key) = std::str::from_utf8(key) else { return refuse(400, "invalid Sec-WebSocket-Key") };
    if !matches!(BASE64.decode(key), Ok(nonce) if nonce.len() == 16) {
        return refuse(400, "Sec-WebSocket-Key is not 16 bytes of base64");
    }
    Parsed::Accept { consumed, accept: accept_key(key) }
}

fn trim(v: &[u8]) -> &[u8] {
    v.trim_ascii()
}

/// Whether a comma-separated header value contains `token` (case-insensitive).
fn has_token(value: &[u8], token: &str) -> bool {
    value.split(|&b| b == b',').any(|t| trim(t).eq_ignore_ascii_case(token.as_bytes()))
}

/// Appends the `101 Switching Protocols` answer.
pub(super) fn write_accept(out: &mut Vec<u8>, accept: &str) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    out.extend_from_slice(accept.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
}

/// Appends a refusal; the caller closes the connection once it is sent.
pub(super) fn write_refusal(out: &mut Vec<u8>, r: Refusal) {
    let text = match r.status {
        400 => "Bad Request",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    };
    let extra = match r.status {
        426 => "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n",
        405 => "Allow: GET\r\n",
        _ => "",
    };
    let body_len = r.reason.len() + 1;
    let head = format!(
        "HTTP/1.1 {} {text}\r\n{extra}Connection: close\r\nContent-Type: text/plain\r\nContent-Length: {body_len}\r\n\r\n",
        r.status
    );
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(r.reason.as_bytes());
    out.push(b'\n');
}

/// Appends the answer of the fault `refuse`: `status` (with `Retry-After` when given),
/// a one-line body, `Connection: close`; the caller closes once it is sent.
pub(super) fn write_fault_refusal(out: &mut Vec<u8>, status: u16, retry_after_s: Option<u32>) {
    use std::io::Write as _;
    let text = match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Refused",
    };
    const BODY: &str = "refused by loadgen serve --fault refuse\n";
    let _ = write!(out, "HTTP/1.1 {status} {text}\r\n");
    if let Some(s) = retry_after_s {
        let _ = write!(out, "Retry-After: {s}\r\n");
    }
    let _ =
        write!(out, "Connection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{BODY}", BODY.len());
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &[u8] = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Extensions: permessage-deflate\r\nSec-WebSocket-Version: 13\r\n\r\n";

    #[test]
    fn rfc_example_is_accepted_at_any_split() {
        for split in 0..GOOD.len() {
            assert_eq!(parse(&GOOD[..split]), Parsed::Partial, "split {split}");
        }
        let mut with_frame = GOOD.to_vec();
        with_frame.extend_from_slice(&[0x81, 0x80, 1, 2, 3, 4]);
        let Parsed::Accept { consumed, accept } = parse(&with_frame) else { panic!("accepted") };
        assert_eq!(consumed, GOOD.len(), "frames after the head are left to the decoder");
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "RFC 6455 §1.3");
        let mut out = Vec::new();
        write_accept(&mut out, &accept);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 101 "));
        assert!(!text.to_ascii_lowercase().contains("extensions"), "deflate offers are ignored");
    }

    #[test]
    fn refusals() {
        let status = |req: &[u8]| match parse(req) {
            Parsed::Refuse(r) => r.status,
            other => panic!("{other:?}"),
        };
        assert_eq!(status(b"GARBAGE\x01\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 426);
        let v8 = String::from_utf8(GOOD.to_vec()).unwrap().replace("Version: 13", "Version: 8");
        assert_eq!(status(v8.as_bytes()), 426);
        let post = String::from_utf8(GOOD.to_vec()).unwrap().replace("GET", "POST");
        assert_eq!(status(post.as_bytes()), 405);
        let nokey = String::from_utf8(GOOD.to_vec()).unwrap().replace("Sec-WebSocket-Key", "X-Key");
        assert_eq!(status(nokey.as_bytes()), 400);
        let short = String::from_utf8(GOOD.to_vec()).unwrap().replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ=");
        assert_eq!(status(short.as_bytes()), 400);
        let noconn = String::from_utf8(GOOD.to_vec()).unwrap().replace("keep-alive, Upgrade", "keep-alive");
        assert_eq!(status(noconn.as_bytes()), 400);
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD + 10, b'a');
        assert_eq!(status(&big), 431);
        let mut out = Vec::new();
        write_refusal(&mut out, Refusal { status: 426, reason: "no" });
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n") && text.contains("Sec-WebSocket-Version: 13"));
        assert!(text.ends_with("\r\n\r\nno\n") && text.contains("Content-Length: 3\r\n"));
    }
}
