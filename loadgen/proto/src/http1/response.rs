//! Response heads: finding the end of a head in linear time whatever the reads, parsing
//! it with `httparse`, and deciding the body's framing by RFC 9112 §6.3 with the
//! refusals that keep a client from being desynchronised (request smuggling signatures).

use super::cookies::CookieJar;
use super::date::retry_after_delay;
use super::error::Http1Error;
use super::request::KeepHeaders;
use super::trim_ows;

/// Most header fields a response head may carry.
pub const MAX_HEADERS: usize = 96;

/// The protocol version of a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HttpVersion {
    /// HTTP/1.0: the connection persists only with `Connection: keep-alive`.
    Http10,
    /// HTTP/1.1: the connection persists unless `Connection: close`.
    Http11,
}

/// How the body of a response is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Framing {
    /// No body: an answer to HEAD, a 204 or a 304.
    None,
    /// Exactly this many bytes (`Content-Length`).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the server closes the connection (neither header).
    UntilClose,
}

/// Where a kept header field is in the client's head buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    name: u32,
    name_len: u32,
    value: u32,
    value_len: u32,
}

/// The header fields a request asked to keep ([`KeepHeaders`]), borrowed from the
/// client's head buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Headers<'a> {
    buf: &'a [u8],
    spans: &'a [Span],
}

impl<'a> Headers<'a> {
    pub(crate) fn new(buf: &'a [u8], spans: &'a [Span]) -> Self {
        Self { buf, spans }
    }

    /// Number of fields kept.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether none were kept.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The fields in order: name (as sent) and value (without surrounding whitespace).
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        let buf = self.buf;
        self.spans.iter().map(move |s| {
            let name = buf.get(s.name as usize..s.name as usize + s.name_len as usize).unwrap_or_default();
            let value = buf.get(s.value as usize..s.value as usize + s.value_len as usize).unwrap_or_default();
            (std::str::from_utf8(name).unwrap_or_default(), value)
        })
    }

    /// The value of the first field named `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    /// [`Headers::get`] as text, when it is UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&'a str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }
}

/// The head of a final (non-1xx) response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseHead<'a> {
    /// HTTP/1.0 or HTTP/1.1.
    pub version: HttpVersion,
    /// Status code, 200..=599.
    pub status: u16,
    /// Reason phrase (empty when absent or not ASCII).
    pub reason: &'a str,
    /// How the body is delimited.
    pub framing: Framing,
    /// `Retry-After` as a delay in seconds (an HTTP-date is converted with the
    /// `now_unix_s` given to [`super::Http1Client::receive`]).
    pub retry_after_s: Option<u64>,
    /// Whether the connection may carry another request once this response ends (HTTP
    /// version, `Connection`, the request's own `Connection: close`, close-delimited
    /// body).
    pub keep_alive: bool,
    /// The header fields the request asked to keep.
    pub headers: Headers<'a>,
}

/// Looks for the blank line that ends a head, one state per byte carried across reads,
/// so a head fed byte by byte costs linear time. Accepts what `httparse` accepts (bare
/// LF line ends, empty lines before the status line) and refuses at once a stream that
/// does not start with `HTTP/1.`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum HeadScan {
    /// Before the status line (empty lines are skipped).
    #[default]
    Leading,
    /// A CR before the status line.
    LeadingCr,
    /// This many bytes of `HTTP/1.` matched.
    Prefix(u8),
    /// Inside a line.
    Line,
    /// Just after a LF.
    Lf,
    /// A CR just after a LF.
    LfCr,
}

const PREFIX: &[u8; 7] = b"HTTP/1.";

impl HeadScan {
    /// Feeds `data`: `Some(n)` when the head ends with `data[n - 1]`, `None` when all of
    /// `data` belongs to the head so far.
    pub(crate) fn scan(&mut self, data: &[u8]) -> Result<Option<usize>, Http1Error> {
        let mut i = 0;
        while i < data.len() {
            if *self == Self::Line {
                let Some(p) = data[i..].iter().position(|&b| b == b'\n') else { return Ok(None) };
                i += p + 1;
                *self = Self::Lf;
                continue;
            }
            let b = data[i];
            i += 1;
            *self = match (*self, b) {
                (Self::Leading | Self::LeadingCr, b'\n') => Self::Leading,
                (Self::Leading, b'\r') => Self::LeadingCr,
                (Self::LeadingCr, _) => return Err(Http1Error::MalformedHead("CR without LF before the status line")),
                (Self::Leading, _) | (Self::Prefix(_), _) => {
                    let matched = if let Self::Prefix(p) = *self { usize::from(p) } else { 0 };
                    if b != PREFIX[matched] {
                        return Err(Http1Error::MalformedHead("not an HTTP/1.x response"));
                    }
                    if matched + 1 == PREFIX.len() { Self::Line } else { Self::Prefix(matched as u8 + 1) }
                }
                (Self::Lf | Self::LfCr, b'\n') => {
                    *self = Self::default();
                    return Ok(Some(i));
                }
                (Self::Lf, b'\r') => Self::LfCr,
                (Self::Lf | Self::LfCr | Self::Line, _) => Self::Line,
            };
        }
        Ok(None)
    }
}

/// What the request said that the framing of its answer depends on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HeadContext {
    pub head_request: bool,
    pub request_keep_alive: bool,
    pub keep: KeepHeaders,
    pub now_unix_s: u64,
    pub max_body: u64,
}

/// A parsed final head, with the reason as a range of the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HeadInfo {
    pub version: HttpVersion,
    pub status: u16,
    pub reason: (u32, u32),
    pub framing: Framing,
    pub retry_after_s: Option<u64>,
    pub keep_alive: bool,
}

/// A parsed head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// 1xx other than 101: skipped.
    Informational(u16),
    /// The response.
    Final(HeadInfo),
}

/// Parses the complete head `buf[start..end]`: fills `spans` (offsets into `buf`) with
/// the headers to keep and, for a final answer, applies its `Set-Cookie`s to `jar`.
pub(crate) fn parse_head(
    buf: &[u8],
    start: usize,
    end: usize,
    ctx: HeadContext,
    spans: &mut Vec<Span>,
    jar: &mut CookieJar,
) -> Result<Parsed, Http1Error> {
    spans.clear();
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut storage);
    let head = buf.get(start..end).ok_or(Http1Error::MalformedHead("head out of bounds"))?;
    match response.parse(head) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        Ok(_) => return Err(Http1Error::MalformedHead("head does not end at its blank line")),
        Err(e) => {
            return Err(match e {
                httparse::Error::TooManyHeaders => Http1Error::TooManyHeaders,
                httparse::Error::HeaderName => Http1Error::MalformedHead("invalid header name"),
                httparse::Error::HeaderValue => Http1Error::MalformedHead("invalid header value"),
                httparse::Error::NewLine => Http1Error::MalformedHead("invalid line ending"),
                httparse::Error::Status => Http1Error::MalformedHead("invalid status line"),
                httparse::Error::Token => Http1Error::MalformedHead("invalid token"),
                httparse::Error::Version => Http1Error::MalformedHead("not HTTP/1.0 or HTTP/1.1"),
            });
        }
    }
    let version = if response.version == Some(0) { HttpVersion::Http10 } else { HttpVersion::Http11 };
    let status = response.code.unwrap_or(0);
    match status {
        101 => return Err(Http1Error::UnexpectedUpgrade),
        100..=199 => return Ok(Parsed::Informational(status)),
        200..=599 => {}
        _ => return Err(Http1Error::MalformedHead("status code outside 100..=599")),
    }
    let offset = |part: &[u8]| (part.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize) as u32;
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut chunked = false;
    let mut other_coding = false;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut retry_after_s = None;
    let mut retry_after_seen = false;
    for h in response.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            for element in h.value.split(|&b| b == b',') {
                let n = parse_length(trim_ows(element)).ok_or(Http1Error::InvalidContentLength)?;
                if content_length.is_some_and(|seen| seen != n) {
                    return Err(Http1Error::ConflictingContentLength);
                }
                content_length = Some(n);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            for coding in h.value.split(|&b| b == b',').map(trim_ows).filter(|c| !c.is_empty()) {
                if coding.eq_ignore_ascii_case(b"chunked") && !chunked && !other_coding {
                    chunked = true;
                } else {
                    other_coding = true;
                }
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',').map(trim_ows) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("retry-after") && !retry_after_seen {
            retry_after_seen = true;
            retry_after_s = retry_after_delay(h.value, ctx.now_unix_s);
        }
        if ctx.keep.keeps(name) {
            let value = trim_ows(h.value);
            spans.push(Span {
                name: offset(name.as_bytes()),
                name_len: name.len() as u32,
                value: offset(value),
                value_len: value.len() as u32,
            });
        }
    }
    if transfer_encoding {
        if content_length.is_some() {
            return Err(Http1Error::ContentLengthWithTransferEncoding);
        }
        if version == HttpVersion::Http10 || other_coding || !chunked {
            return Err(Http1Error::UnsupportedTransferEncoding);
        }
    }
    let framing = if ctx.head_request || status == 204 || status == 304 {
        Framing::None
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = content_length {
        if n > ctx.max_body {
            return Err(Http1Error::BodyTooLarge { limit: ctx.max_body });
        }
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    let persistent = match version {
        HttpVersion::Http11 => !close,
        HttpVersion::Http10 => keep_alive_token && !close,
    };
    let keep_alive = persistent && ctx.request_keep_alive && framing != Framing::UntilClose;
    for h in response.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("set-cookie")) {
        jar.set_cookie(h.value, ctx.now_unix_s);
    }
    let reason = response.reason.unwrap_or("");
    let reason = if reason.is_empty() { (0, 0) } else { (offset(reason.as_bytes()), reason.len() as u32) };
    Ok(Parsed::Final(HeadInfo { version, status, reason, framing, retry_after_s, keep_alive }))
}

/// A `Content-Length` element: decimal digits only (no sign, no spaces inside), fitting
/// 64 bits.
fn parse_length(text: &[u8]) -> Option<u64> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    text.iter().try_fold(0u64, |acc, &b| acc.checked_mul(10)?.checked_add(u64::from(b - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(data: &[u8]) -> Result<Option<usize>, Http1Error> {
        HeadScan::default().scan(data)
    }

    #[test]
    fn scan_finds_the_blank_line_however_the_bytes_come() {
        let head = b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nBODY";
        assert_eq!(scan_all(head), Ok(Some(head.len() - 4)));
        assert_eq!(scan_all(b"\r\n\nHTTP/1.0 204 No\nA: b\n\nrest"), Ok(Some(25)));
        assert_eq!(scan_all(b"HTTP/1.1 200 OK\n\r\n"), Ok(Some(18)));
        let head_len = head.len() - 4;
        for cut in 0..head.len() {
            let mut s = HeadScan::default();
            let first = s.scan(&head[..cut]).unwrap();
            if cut < head_len {
                assert_eq!(first, None, "cut {cut}");
                assert_eq!(s.scan(&head[cut..]).unwrap().map(|n| n + cut), Some(head_len));
            } else {
                assert_eq!(first, Some(head_len), "cut {cut}");
            }
        }
        let mut s = HeadScan::default();
        let ends: Vec<_> =
            head[..head_len].iter().enumerate().filter_map(|(i, b)| s.scan(&[*b]).unwrap().map(|_| i)).collect();
        assert_eq!(ends, [head.len() - 5]);
    }

    #[test]
    fn scan_refuses_garbage_at_once() {
        assert!(matches!(scan_all(b"SSH-2.0-OpenSSH"), Err(Http1Error::MalformedHead(_))));
        assert!(matches!(scan_all(b"HTTP/2 200"), Err(Http1Error::MalformedHead(_))));
        assert!(matches!(scan_all(b"\rX"), Err(Http1Error::MalformedHead(_))));
        assert!(matches!(scan_all(b"<html>"), Err(Http1Error::MalformedHead(_))));
        assert_eq!(scan_all(b"HTTP/1."), Ok(None));
    }

    #[test]
    fn content_length_syntax() {
        assert_eq!(parse_length(b"0"), Some(0));
        assert_eq!(parse_length(b"18446744073709551615"), Some(u64::MAX));
        for bad in [&b""[..], b"-1", b"+1", b"1 2", b"0x10", b"18446744073709551616", b"1e3", b" 1"] {
            assert_eq!(parse_length(bad), None, "{bad:?}");
        }
    }
}
