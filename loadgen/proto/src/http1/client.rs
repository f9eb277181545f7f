//! The connection state machine, `Idle → AwaitingResponse → Idle | Closed`, in the
//! sans-IO style of [`crate::client`]: the caller writes what
//! [`Http1Client::send_request`] appended to its buffer, feeds what it reads to
//! [`Http1Client::receive`], says when the server closed ([`Http1Client::peer_closed`])
//! and passes the time. Nothing here blocks, reads a clock or touches a socket.

use super::body::{BodyDecoder, Sink, Step};
use super::cookies::CookieJar;
use super::error::{Http1Error, Http1RequestError};
use super::request::{BodyMode, KeepHeaders, Request};
use super::response::{HeadContext, HeadInfo, HeadScan, Headers, Parsed, ResponseHead, Span, parse_head};

/// No deadline.
const NEVER: u64 = u64::MAX;
/// Largest [`Http1Config::max_head_bytes`] honoured: the head buffer (at most twice
/// this, with bytes that arrived early) stays within `u32` offsets.
const MAX_HEAD_LIMIT: u32 = 1 << 30;

/// Limits and timeouts of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Http1Config {
    /// Largest response head (status line, fields, final blank line); also bounds the
    /// trailer section and the bytes accepted with no request in flight. At most 1 GiB
    /// (larger values are clamped, so offsets into the head buffer fit 32 bits).
    pub max_head_bytes: u32,
    /// Largest body, whatever its framing (a smaller limit can come with
    /// [`BodyMode::Collect`]).
    pub max_body_bytes: u64,
    /// Give up a response after this long (µs, from the request), `None`: never.
    pub response_timeout_us: Option<u64>,
    /// Most cookies in the jar (oldest evicted first).
    pub max_cookies: u16,
    /// Most bytes of cookie names, values and paths in the jar.
    pub max_cookie_bytes: u32,
    /// The connection is TLS: `Secure` cookies may be sent.
    pub secure_transport: bool,
}

impl Default for Http1Config {
    fn default() -> Self {
        Self {
            max_head_bytes: 16 << 10,
            max_body_bytes: 16 << 20,
            response_timeout_us: Some(30_000_000),
            max_cookies: 32,
            max_cookie_bytes: 8 << 10,
            secure_transport: false,
        }
    }
}

/// Where the connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Http1State {
    /// Ready for a request.
    Idle,
    /// A request was sent; its response has not ended.
    AwaitingResponse,
    /// No further request: the caller should close the socket (the server asked for it,
    /// the body ended with the connection, an error, a timeout, or the peer closed).
    Closed,
}

/// What a timeout did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Http1Timeout {
    /// The response did not end in time; the connection is closed.
    Response,
}

impl Http1Timeout {
    /// Stable snake_case name for counters and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Response => "http_response_timeout",
        }
    }
}

/// Something that happened on the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Http1Event<'a> {
    /// An interim 1xx answer (100 Continue, 103 Early Hints ...), skipped.
    Informational {
        /// Its status code.
        status: u16,
    },
    /// The head of the final answer.
    ResponseHead(ResponseHead<'a>),
    /// Body bytes ([`BodyMode::Stream`] only), in order.
    Body(&'a [u8]),
    /// The response is complete.
    ResponseEnd {
        /// The whole body with [`BodyMode::Collect`]; empty otherwise.
        body: &'a [u8],
        /// Whether the connection can carry the next request (else it is now closed).
        keep_alive: bool,
    },
}

/// What [`Http1Client::step`] found, before it is turned into a borrowed event.
enum Out {
    Informational(u16),
    Head(HeadInfo),
    Body { buffered: bool, start: usize, end: usize },
    End { keep_alive: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    Head,
    Body,
    Closed,
}

/// One HTTP/1.1 connection: one request in flight at a time.
///
/// `buf` holds, while a head is awaited, `[consumed 1xx heads | head so far | bytes not
/// yet scanned]` (bytes are only left unscanned when they arrived before the request
/// was sent); once the head is complete, the bytes after `stash` are not yet decoded.
#[derive(Clone, Debug)]
pub struct Http1Client {
    max_body_bytes: u64,
    response_timeout_us: u64,
    deadline_us: u64,
    buf: Vec<u8>,
    spans: Vec<Span>,
    body: Vec<u8>,
    jar: CookieJar,
    decoder: BodyDecoder,
    keep: KeepHeaders,
    mode: BodyMode,
    max_head_bytes: u32,
    head_start: u32,
    scan_pos: u32,
    stash: u32,
    scan: HeadScan,
    phase: Phase,
    secure_transport: bool,
    head_request: bool,
    request_keep_alive: bool,
    keep_alive: bool,
    response_started: bool,
}

impl Http1Client {
    /// A connection ready for its first request (the caller has connected the socket).
    pub fn new(config: Http1Config) -> Self {
        Self {
            max_body_bytes: config.max_body_bytes,
            response_timeout_us: config.response_timeout_us.unwrap_or(NEVER),
            deadline_us: NEVER,
            buf: Vec::new(),
            spans: Vec::new(),
            body: Vec::new(),
            jar: CookieJar::new(config.max_cookies, config.max_cookie_bytes),
            decoder: BodyDecoder::default(),
            keep: KeepHeaders::None,
            mode: BodyMode::Stream,
            max_head_bytes: config.max_head_bytes.min(MAX_HEAD_LIMIT),
            head_start: 0,
            scan_pos: 0,
            stash: 0,
            scan: HeadScan::default(),
            phase: Phase::Idle,
            secure_transport: config.secure_transport,
            head_request: false,
            request_keep_alive: true,
            keep_alive: false,
            response_started: false,
        }
    }

    /// Current state.
    pub fn state(&self) -> Http1State {
        match self.phase {
            Phase::Idle => Http1State::Idle,
            Phase::Head | Phase::Body => Http1State::AwaitingResponse,
            Phase::Closed => Http1State::Closed,
        }
    }

    /// The connection's cookies.
    pub fn jar(&self) -> &CookieJar {
        &self.jar
    }

    /// The connection's cookies, to seed or clear.
    pub fn jar_mut(&mut self) -> &mut CookieJar {
        &mut self.jar
    }

    /// Bytes received but not yet processed: those that arrived with no request in
    /// flight. After [`Http1Client::send_request`], when this is not zero, call
    /// [`Http1Client::receive`] (an empty input will do) to process them.
    pub fn buffered(&self) -> usize {
        let from = match self.phase {
            Phase::Idle | Phase::Closed => 0,
            Phase::Head => self.scan_pos,
            Phase::Body => self.stash,
        };
        self.buf.len().saturating_sub(from as usize)
    }

    /// Heap bytes held by this connection's buffers, for memory accounting.
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
            + self.spans.capacity() * std::mem::size_of::<Span>()
            + self.body.capacity()
            + self.jar.buffer_capacity()
    }

    /// Validates `request` and appends it to `out` (with the jar's cookies at
    /// `now_unix_s`); the response is awaited from now, and times out
    /// [`Http1Config::response_timeout_us`] after `now_us`. On error nothing is written.
    /// If bytes arrived while idle ([`Http1Client::buffered`] is not zero), call
    /// [`Http1Client::receive`] next even with nothing new to read.
    pub fn send_request(
        &mut self,
        request: &Request<'_>,
        now_us: u64,
        now_unix_s: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), Http1RequestError> {
        match self.phase {
            Phase::Idle => {}
            Phase::Head | Phase::Body => return Err(Http1RequestError::Busy),
            Phase::Closed => return Err(Http1RequestError::Closed),
        }
        request.validate()?;
        self.jar.remove_expired(now_unix_s);
        request.write(&self.jar, now_unix_s, self.secure_transport, out);
        self.head_request = request.is_head();
        self.request_keep_alive = request.keep_alive;
        self.mode = request.body_mode;
        self.keep = request.keep_headers;
        self.phase = Phase::Head;
        self.scan = HeadScan::default();
        (self.head_start, self.scan_pos, self.stash) = (0, 0, 0);
        self.response_started = !self.buf.is_empty();
        self.spans.clear();
        self.body.clear();
        self.deadline_us = now_us.saturating_add(self.response_timeout_us);
        Ok(())
    }

    /// Feeds bytes read from the socket; `now_unix_s` converts a `Retry-After` date and
    /// cookie expiry. Returns how many bytes were consumed and at most one event.
    ///
    /// `None` means all of `input` was consumed and nothing is pending; after an event,
    /// call again with the rest (possibly empty: the end of a response follows its last
    /// body bytes in a call of its own). Bytes after the end of a response are not
    /// consumed by the call that ends it; fed while no request is in flight, they are
    /// kept for the next response. On `Err` the connection is closed.
    pub fn receive<'a>(
        &'a mut self,
        input: &'a [u8],
        now_unix_s: u64,
    ) -> Result<(usize, Option<Http1Event<'a>>), Http1Error> {
        let (consumed, out) = match self.step(input, now_unix_s) {
            Ok(ok) => ok,
            Err(e) => {
                self.fail();
                return Err(e);
            }
        };
        let event = out.map(|out| match out {
            Out::Informational(status) => Http1Event::Informational { status },
            Out::Head(info) => {
                let (start, len) = (info.reason.0 as usize, info.reason.1 as usize);
                let reason = self.buf.get(start..start + len).and_then(|r| std::str::from_utf8(r).ok());
                Http1Event::ResponseHead(ResponseHead {
                    version: info.version,
                    status: info.status,
                    reason: reason.unwrap_or_default(),
                    framing: info.framing,
                    retry_after_s: info.retry_after_s,
                    keep_alive: info.keep_alive,
                    headers: Headers::new(&self.buf, &self.spans),
                })
            }
            Out::Body { buffered: true, start, end } => Http1Event::Body(&self.buf[start..end]),
            Out::Body { buffered: false, start, end } => Http1Event::Body(&input[start..end]),
            Out::End { keep_alive } => Http1Event::ResponseEnd { body: &self.body, keep_alive },
        });
        Ok((consumed, event))
    }

    /// The server closed its side (a read returned 0). Call after
    /// [`Http1Client::receive`] returned `None`. Ends a close-delimited body (and one
    /// whose end event is still due) with [`Http1Event::ResponseEnd`]; in the middle
    /// of any other response it is an error. The connection is closed afterwards.
    pub fn peer_closed(&mut self) -> Result<Option<Http1Event<'_>>, Http1Error> {
        let phase = self.phase;
        let undecoded = self.buffered() > 0;
        let complete = !undecoded && (self.decoder.until_close() || self.decoder.is_done());
        self.fail();
        match phase {
            Phase::Closed | Phase::Idle => Ok(None),
            Phase::Head if self.response_started => Err(Http1Error::TruncatedResponse),
            Phase::Head => Err(Http1Error::ClosedBeforeResponse),
            Phase::Body if complete => Ok(Some(Http1Event::ResponseEnd { body: &self.body, keep_alive: false })),
            Phase::Body => Err(Http1Error::TruncatedResponse),
        }
    }

    /// When [`Http1Client::handle_timeout`] must next be called (µs), if ever.
    pub fn poll_timeout(&self) -> Option<u64> {
        (self.deadline_us != NEVER).then_some(self.deadline_us)
    }

    /// Applies the passage of time: a response that has taken too long closes the
    /// connection.
    pub fn handle_timeout(&mut self, now_us: u64) -> Option<Http1Timeout> {
        if self.deadline_us == NEVER || now_us < self.deadline_us {
            return None;
        }
        self.fail();
        Some(Http1Timeout::Response)
    }

    /// Closes the connection; the collected body stays readable until the next request.
    fn fail(&mut self) {
        self.phase = Phase::Closed;
        self.deadline_us = NEVER;
        self.buf.clear();
        self.spans.clear();
        (self.head_start, self.scan_pos, self.stash) = (0, 0, 0);
    }

    fn step(&mut self, input: &[u8], now_unix_s: u64) -> Result<(usize, Option<Out>), Http1Error> {
        match self.phase {
            Phase::Closed => Ok((input.len(), None)),
            Phase::Idle => {
                let limit = self.max_head_bytes;
                if self.buf.len() + input.len() > limit as usize {
                    return Err(Http1Error::UnsolicitedData { limit });
                }
                self.buf.extend_from_slice(input);
                Ok((input.len(), None))
            }
            Phase::Head => self.step_head(input, now_unix_s),
            Phase::Body => self.step_body(input),
        }
    }

    fn step_head(&mut self, input: &[u8], now_unix_s: u64) -> Result<(usize, Option<Out>), Http1Error> {
        let limit = self.max_head_bytes as usize;
        let too_large = Http1Error::HeadTooLarge { limit: self.max_head_bytes };
        // Bytes that arrived before the request was sent come first.
        if (self.scan_pos as usize) < self.buf.len() {
            let from = self.scan_pos as usize;
            let found = self.scan.scan(&self.buf[from..])?;
            let end = found.map_or(self.buf.len(), |n| from + n);
            self.scan_pos = end as u32;
            if end - self.head_start as usize > limit {
                return Err(too_large);
            }
            if found.is_some() {
                return Ok((0, Some(self.finish_head(end, now_unix_s)?)));
            }
        }
        self.response_started |= !input.is_empty();
        let room = limit.saturating_sub(self.buf.len() - self.head_start as usize);
        let window = &input[..input.len().min(room)];
        match self.scan.scan(window)? {
            Some(n) => {
                self.buf.extend_from_slice(&input[..n]);
                self.scan_pos = self.buf.len() as u32;
                Ok((n, Some(self.finish_head(self.buf.len(), now_unix_s)?)))
            }
            None if window.len() < input.len() => Err(too_large),
            None => {
                self.buf.extend_from_slice(input);
                self.scan_pos = self.buf.len() as u32;
                Ok((input.len(), None))
            }
        }
    }

    /// The head `buf[head_start..end]` is complete.
    fn finish_head(&mut self, end: usize, now_unix_s: u64) -> Result<Out, Http1Error> {
        let ctx = HeadContext {
            head_request: self.head_request,
            request_keep_alive: self.request_keep_alive,
            keep: self.keep,
            now_unix_s,
            max_body: self.body_limit(),
        };
        match parse_head(&self.buf, self.head_start as usize, end, ctx, &mut self.spans, &mut self.jar)? {
            Parsed::Informational(status) => {
                if end == self.buf.len() {
                    self.buf.clear();
                    (self.head_start, self.scan_pos) = (0, 0);
                } else {
                    self.head_start = end as u32;
                }
                Ok(Out::Informational(status))
            }
            Parsed::Final(info) => {
                self.decoder = BodyDecoder::new(info.framing);
                self.keep_alive = info.keep_alive;
                self.stash = end as u32;
                self.phase = Phase::Body;
                Ok(Out::Head(info))
            }
        }
    }

    fn step_body(&mut self, input: &[u8]) -> Result<(usize, Option<Out>), Http1Error> {
        let limit = self.body_limit();
        let max_trailers = self.max_head_bytes;
        let mut sink = match self.mode {
            BodyMode::Stream => Sink::Stream,
            BodyMode::Collect(_) => Sink::Collect(&mut self.body),
            BodyMode::Discard => Sink::Discard,
        };
        // Bytes that arrived with the head or before the request come first.
        if (self.stash as usize) < self.buf.len() {
            let from = self.stash as usize;
            let (n, step) = self.decoder.step(&self.buf[from..], &mut sink, limit, max_trailers)?;
            self.stash += n as u32;
            match step {
                Step::Data(start, end) => {
                    return Ok((0, Some(Out::Body { buffered: true, start: from + start, end: from + end })));
                }
                Step::Done => return Ok((0, Some(self.end_response()))),
                Step::More => {}
            }
        }
        let (n, step) = self.decoder.step(input, &mut sink, limit, max_trailers)?;
        Ok(match step {
            Step::Data(start, end) => (n, Some(Out::Body { buffered: false, start, end })),
            Step::Done => (n, Some(self.end_response())),
            Step::More => (n, None),
        })
    }

    fn end_response(&mut self) -> Out {
        self.deadline_us = NEVER;
        if self.keep_alive {
            // Bytes not yet decoded belong to the next response.
            let stash = (self.stash as usize).min(self.buf.len());
            self.buf.drain(..stash);
            (self.head_start, self.scan_pos, self.stash) = (0, 0, 0);
            self.phase = Phase::Idle;
        } else {
            self.fail();
        }
        Out::End { keep_alive: self.keep_alive }
    }

    fn body_limit(&self) -> u64 {
        match self.mode {
            BodyMode::Collect(n) => self.max_body_bytes.min(u64::from(n)),
            BodyMode::Stream | BodyMode::Discard => self.max_body_bytes,
        }
    }
}
