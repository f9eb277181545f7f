//! The HTTP/1.1 client end to end on virtual time: worked examples of every framing,
//! interim answers, `Retry-After`, cookies across requests, keep-alive and close,
//! HTTP/1.0, early bytes, timeouts, hostile answers (each a typed error, never a
//! panic), and buffer reuse.

use super::*;

pub(super) const NOW: u64 = 1_700_000_000;

/// An owned event, with consecutive body pieces merged by [`normalize`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Ev {
    Info(u16),
    Head { status: u16, reason: String, version: HttpVersion, framing: Framing, retry: Option<u64>, keep_alive: bool },
    Header(String, Vec<u8>),
    Body(Vec<u8>),
    End { body: Vec<u8>, keep_alive: bool },
}

/// Owns `event` (a head is followed by its kept headers).
pub(super) fn own(event: Http1Event<'_>, out: &mut Vec<Ev>) {
    match event {
        Http1Event::Informational { status } => out.push(Ev::Info(status)),
        Http1Event::ResponseHead(h) => {
            out.push(Ev::Head {
                status: h.status,
                reason: h.reason.into(),
                version: h.version,
                framing: h.framing,
                retry: h.retry_after_s,
                keep_alive: h.keep_alive,
            });
            out.extend(h.headers.iter().map(|(n, v)| Ev::Header(n.into(), v.into())));
        }
        Http1Event::Body(b) => {
            assert!(!b.is_empty(), "no empty body events");
            out.push(Ev::Body(b.into()));
        }
        Http1Event::ResponseEnd { body, keep_alive } => out.push(Ev::End { body: body.into(), keep_alive }),
    }
}

/// Merges consecutive body pieces (how the body is cut depends on the reads).
pub(super) fn normalize(events: Vec<Ev>) -> Vec<Ev> {
    let mut out: Vec<Ev> = Vec::with_capacity(events.len());
    for e in events {
        match (out.last_mut(), e) {
            (Some(Ev::Body(prev)), Ev::Body(more)) => prev.extend_from_slice(&more),
            (_, e) => out.push(e),
        }
    }
    out
}

/// Feeds `input` until it is consumed and nothing is pending; checks the `None` contract.
pub(super) fn pump(c: &mut Http1Client, input: &[u8], out: &mut Vec<Ev>) -> Result<(), Http1Error> {
    let mut rest = input;
    loop {
        let (n, event) = c.receive(rest, NOW)?;
        assert!(n <= rest.len());
        let done = event.is_none();
        if let Some(e) = event {
            own(e, out);
        }
        rest = &rest[n..];
        if done {
            assert!(rest.is_empty(), "None only once all input is consumed");
            return Ok(());
        }
    }
}

/// Feeds `bytes` in reads of `chunk` bytes.
fn feed(c: &mut Http1Client, bytes: &[u8], chunk: usize) -> Result<Vec<Ev>, Http1Error> {
    let mut out = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        pump(c, piece, &mut out)?;
    }
    pump(c, &[], &mut out)?;
    Ok(normalize(out))
}

fn send(c: &mut Http1Client, req: &Request<'_>) -> String {
    let mut out = Vec::new();
    c.send_request(req, 0, NOW, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// A client that sent `req` and got `bytes` fed whole, then byte by byte; both must agree.
fn exchange(req: &Request<'_>, bytes: &[u8]) -> Result<(Vec<Ev>, Http1Client), Http1Error> {
    let mut results = Vec::new();
    for chunk in [bytes.len().max(1), 1] {
        let mut c = Http1Client::new(Http1Config::default());
        send(&mut c, req);
        results.push((feed(&mut c, bytes, chunk), c));
    }
    let (one_byte, _) = results.pop().unwrap();
    let (whole, c) = results.pop().unwrap();
    assert_eq!(whole, one_byte, "whole and byte-by-byte reads agree");
    whole.map(|events| (events, c))
}

fn head(status: u16, reason: &str, framing: Framing, keep_alive: bool) -> Ev {
    Ev::Head { status, reason: reason.into(), version: HttpVersion::Http11, framing, retry: None, keep_alive }
}

fn end(body: &[u8], keep_alive: bool) -> Ev {
    Ev::End { body: body.into(), keep_alive }
}

#[test]
fn content_length_on_a_kept_alive_connection() {
    let mut c = Http1Client::new(Http1Config::default());
    let req = Request::get("queue.example", "/status");
    assert_eq!(send(&mut c, &req), "GET /status HTTP/1.1\r\nHost: queue.example\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(c.state(), Http1State::AwaitingResponse);
    assert_eq!(send_err(&mut c, &req), Http1RequestError::Busy);
    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    let events = feed(&mut c, answer, 7).unwrap();
    let expected = [head(200, "OK", Framing::Length(5), true), Ev::Body(b"hello".to_vec()), end(b"", true)];
    assert_eq!(events, expected);
    assert_eq!(c.state(), Http1State::Idle);
    // The same connection carries the next request.
    send(&mut c, &req.body_mode(BodyMode::Collect(100)));
    let events = feed(&mut c, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbye", 3).unwrap();
    assert_eq!(events, [head(200, "OK", Framing::Length(3), true), end(b"bye", true)]);
}

fn send_err(c: &mut Http1Client, req: &Request<'_>) -> Http1RequestError {
    let mut out = Vec::new();
    let e = c.send_request(req, 0, NOW, &mut out).unwrap_err();
    assert!(out.is_empty(), "nothing written on error");
    e
}

#[test]
fn chunked_with_extensions_and_trailers() {
    let answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
        4;ext=1\r\nWiki\r\n5 ; a=\"b c\"\r\npedia\r\n000E\r\n in\r\n\r\nchunks.\r\n0\r\nX-Checksum: 1\r\n\r\n";
    let body = b"Wikipedia in\r\n\r\nchunks.";
    let (events, c) = exchange(&Request::get("h", "/"), answer).unwrap();
    assert_eq!(events, [head(200, "OK", Framing::Chunked, true), Ev::Body(body.to_vec()), end(b"", true)]);
    assert_eq!(c.state(), Http1State::Idle);
    let (events, _) = exchange(&Request::get("h", "/").body_mode(BodyMode::Collect(1024)), answer).unwrap();
    assert_eq!(events, [head(200, "OK", Framing::Chunked, true), end(body, true)]);
    let (events, _) = exchange(&Request::get("h", "/").body_mode(BodyMode::Discard), answer).unwrap();
    assert_eq!(events, [head(200, "OK", Framing::Chunked, true), end(b"", true)]);
}

#[test]
fn close_delimited_body_ends_with_the_connection() {
    let mut c = Http1Client::new(Http1Config::default());
    send(&mut c, &Request::get("h", "/").body_mode(BodyMode::Collect(100)));
    let events = feed(&mut c, b"HTTP/1.1 200 OK\r\n\r\nuntil the end", 4).unwrap();
    assert_eq!(events, [head(200, "OK", Framing::UntilClose, false)]);
    assert_eq!(c.state(), Http1State::AwaitingResponse);
    let mut out = Vec::new();
    own(c.peer_closed().unwrap().unwrap(), &mut out);
    assert_eq!(out, [end(b"until the end", false)]);
    assert_eq!(c.state(), Http1State::Closed);
    assert_eq!(send_err(&mut c, &Request::get("h", "/")), Http1RequestError::Closed);
    assert_eq!(c.receive(b"more", NOW), Ok((4, None)), "a closed connection swallows input");
}

#[test]
fn responses_without_body() {
    // 204 and 304 have no body whatever Content-Length says; the next bytes are the
    // next response's, not consumed.
    for (status, reason) in [(204, "No Content"), (304, "Not Modified")] {
        let text = format!("HTTP/1.1 {status} {reason}\r\nContent-Length: 100\r\n\r\n");
        let mut c = Http1Client::new(Http1Config::default());
        send(&mut c, &Request::get("h", "/"));
        let bytes = [text.as_bytes(), b"HTTP/1.1 200 OK\r\n"].concat();
        let (n, ev) = c.receive(&bytes, NOW).unwrap();
        assert_eq!(n, text.len());
        assert!(matches!(ev, Some(Http1Event::ResponseHead(h)) if h.framing == Framing::None && h.status == status));
        let (n, ev) = c.receive(&bytes[text.len()..], NOW).unwrap();
        assert_eq!((n, ev), (0, Some(Http1Event::ResponseEnd { body: b"", keep_alive: true })));
    }
    // HEAD: the headers describe a body that is not sent.
    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(exchange(&Request::head("h", "/"), answer).unwrap_err(), Http1Error::ContentLengthWithTransferEncoding);
    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
    let (events, c) = exchange(&Request::head("h", "/"), answer).unwrap();
    assert_eq!(events, [head(200, "OK", Framing::None, true), end(b"", true)]);
    assert_eq!(c.state(), Http1State::Idle);
    let (events, _) = exchange(&Request::get("h", "/"), b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").unwrap();
    assert_eq!(events, [head(200, "OK", Framing::Length(0), true), end(b"", true)]);
}

#[test]
fn interim_answers_come_before_the_final_one() {
    let answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\nSet-Cookie: no=1\r\n\r\n\
                   HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
    let req = Request::post("h", "/join", b"{}").body_mode(BodyMode::Collect(10));
    let (events, c) = exchange(&req, answer).unwrap();
    assert_eq!(
        events,
        [Ev::Info(100), Ev::Info(103), head(201, "Created", Framing::Length(2), true), end(b"ok", true)]
    );
    assert!(c.jar().is_empty(), "cookies of interim answers are ignored");
    let upgrade = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
    assert_eq!(exchange(&Request::get("h", "/"), upgrade).unwrap_err(), Http1Error::UnexpectedUpgrade);
}

#[test]
fn retry_after_in_both_forms() {
    let cases = [
        ("Retry-After: 7", Some(7)),
        ("Retry-After: Tue, 14 Nov 2023 22:13:40 GMT", Some(20)), // NOW + 20 s
        ("Retry-After: Tue, 14 Nov 2023 22:13:00 GMT", Some(0)),  // already past
        ("Retry-After: later", None),
        ("Retry-After: 3\r\nRetry-After: 9", Some(3)),
    ];
    for (line, expected) in cases {
        let text = format!("HTTP/1.1 503 Service Unavailable\r\n{line}\r\nContent-Length: 0\r\n\r\n");
        let (events, _) = exchange(&Request::get("h", "/"), text.as_bytes()).unwrap();
        let Ev::Head { retry, status: 503, .. } = &events[0] else { panic!("{events:?}") };
        assert_eq!(*retry, expected, "{line}");
    }
}

#[test]
fn cookies_are_set_sent_replaced_and_deleted() {
    let mut c = Http1Client::new(Http1Config::default());
    let req = Request::get("h", "/queue/status").body_mode(BodyMode::Discard);
    assert!(!send(&mut c, &req).contains("Cookie"));
    let set = b"HTTP/1.1 200 OK\r\nSet-Cookie: sid=abc; Path=/; HttpOnly\r\n\
                Set-Cookie: pos=17; Max-Age=60\r\nSet-Cookie: other=1; Path=/elsewhere\r\nContent-Length: 0\r\n\r\n";
    feed(&mut c, set, 5).unwrap();
    assert!(send(&mut c, &req).contains("\r\nCookie: sid=abc; pos=17\r\n"));
    let change = b"HTTP/1.1 200 OK\r\nSet-Cookie: pos=16; Max-Age=60\r\nSet-Cookie: sid=; Max-Age=0\r\n\
                   Content-Length: 0\r\n\r\n";
    feed(&mut c, change, 1000).unwrap();
    assert!(send(&mut c, &req).contains("\r\nCookie: pos=16\r\n"));
    feed(&mut c, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 1).unwrap();
    // Expired by time: Max-Age=60 from NOW.
    let mut out = Vec::new();
    c.send_request(&req, 0, NOW + 60, &mut out).unwrap();
    assert!(!String::from_utf8(out).unwrap().contains("Cookie"));
}

#[test]
fn keep_alive_versus_close() {
    let close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx";
    let (events, c) = exchange(&Request::get("h", "/"), close).unwrap();
    assert_eq!(events, [head(200, "OK", Framing::Length(1), false), Ev::Body(b"x".to_vec()), end(b"", false)]);
    assert_eq!(c.state(), Http1State::Closed);
    // Tokens are case-insensitive and list-aware.
    let listed = b"HTTP/1.1 200 OK\r\nConnection: Upgrade, CLOSE\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(exchange(&Request::get("h", "/"), listed).unwrap().1.state(), Http1State::Closed);
    // We asked to close: the connection is done whatever the server says.
    let req = Request::get("h", "/").connection_close();
    let (events, c) = exchange(&req, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").unwrap();
    assert_eq!(events, [head(200, "OK", Framing::Length(0), false), end(b"", false)]);
    assert_eq!(c.state(), Http1State::Closed);
}

#[test]
fn http_1_0_answers() {
    let v10 = |framing, keep_alive| Ev::Head {
        status: 200,
        reason: "OK".into(),
        version: HttpVersion::Http10,
        framing,
        retry: None,
        keep_alive,
    };
    let plain = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi";
    let (events, c) = exchange(&Request::get("h", "/").body_mode(BodyMode::Collect(9)), plain).unwrap();
    assert_eq!(events, [v10(Framing::Length(2), false), end(b"hi", false)]);
    assert_eq!(c.state(), Http1State::Closed);
    let kept = b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nhi";
    let (events, c) = exchange(&Request::get("h", "/").body_mode(BodyMode::Collect(9)), kept).unwrap();
    assert_eq!(events, [v10(Framing::Length(2), true), end(b"hi", true)]);
    assert_eq!(c.state(), Http1State::Idle);
    let (events, _) = exchange(&Request::get("h", "/"), b"HTTP/1.0 200 OK\r\n\r\nold").unwrap();
    assert_eq!(events, [v10(Framing::UntilClose, false), Ev::Body(b"old".to_vec())]);
    let te = b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(exchange(&Request::get("h", "/"), te).unwrap_err(), Http1Error::UnsupportedTransferEncoding);
}

#[test]
fn only_the_headers_asked_for_are_kept() {
    let answer =
        b"HTTP/1.1 200 OK\r\nX-Queue-Position: 42\r\nServer: test\r\nx-queue-eta:  90 \r\nContent-Length: 0\r\n\r\n";
    let named = Request::get("h", "/").keep_headers(KeepHeaders::Named(&["x-queue-position", "X-QUEUE-ETA"]));
    let (events, _) = exchange(&named, answer).unwrap();
    let headers: Vec<_> = events.iter().filter(|e| matches!(e, Ev::Header(..))).cloned().collect();
    let expected =
        [Ev::Header("X-Queue-Position".into(), b"42".to_vec()), Ev::Header("x-queue-eta".into(), b"90".to_vec())];
    assert_eq!(headers, expected);
    let (events, _) = exchange(&Request::get("h", "/").keep_headers(KeepHeaders::All), answer).unwrap();
    assert_eq!(events.iter().filter(|e| matches!(e, Ev::Header(..))).count(), 4);
    let (events, _) = exchange(&Request::get("h", "/"), answer).unwrap();
    assert!(!events.iter().any(|e| matches!(e, Ev::Header(..))));
    // The borrowed view answers lookups.
    let mut c = Http1Client::new(Http1Config::default());
    send(&mut c, &named);
    let Ok((_, Some(Http1Event::ResponseHead(h)))) = c.receive(answer, NOW) else { panic!() };
    assert_eq!(h.headers.get_str("X-QUEUE-POSITION"), Some("42"));
    assert_eq!(h.headers.get("server"), None);
    assert_eq!(h.headers.len(), 2);
}

#[test]
fn hostile_answers_are_typed_errors() {
    let big = format!("HTTP/1.1 200 OK\r\nX-Pad: {}\r\n\r\n", "a".repeat(20_000));
    let many: String = (0..MAX_HEADERS + 1).map(|i| format!("X-{i}: v\r\n")).collect();
    let many = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
    let cases: Vec<(String, Http1Error)> = vec![
        (big, Http1Error::HeadTooLarge { limit: 16 << 10 }),
        (many, Http1Error::TooManyHeaders),
        ("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n".into(), Http1Error::InvalidContentLength),
        ("HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n".into(), Http1Error::InvalidContentLength),
        ("HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n".into(), Http1Error::InvalidContentLength),
        ("HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n".into(), Http1Error::InvalidContentLength),
        ("HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n".into(), Http1Error::ConflictingContentLength),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 50\r\n\r\n".into(),
            Http1Error::ConflictingContentLength,
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n".into(),
            Http1Error::ContentLengthWithTransferEncoding,
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n".into(),
            Http1Error::UnsupportedTransferEncoding,
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n".into(),
            Http1Error::UnsupportedTransferEncoding,
        ),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n".into(), Http1Error::UnsupportedTransferEncoding),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n".into(),
            Http1Error::BadChunk("chunk size is not hexadecimal"),
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n".into(),
            Http1Error::BadChunk("chunk size overflows 64 bits"),
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc".into(),
            Http1Error::BadChunk("chunk data longer than its size"),
        ),
        ("HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n".into(), Http1Error::BodyTooLarge { limit: 16 << 20 }),
        ("HTTP/1.1 600 Odd\r\n\r\n".into(), Http1Error::MalformedHead("status code outside 100..=599")),
        ("HTTP/1.1 099 Odd\r\n\r\n".into(), Http1Error::MalformedHead("status code outside 100..=599")),
        ("HTTP/1.1 2000 OK\r\n\r\n".into(), Http1Error::MalformedHead("invalid status line")),
        ("HTTP/1.2 200 OK\r\n\r\n".into(), Http1Error::MalformedHead("not HTTP/1.0 or HTTP/1.1")),
        ("HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n".into(), Http1Error::MalformedHead("invalid header name")),
        ("HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n".into(), Http1Error::MalformedHead("invalid header name")),
        ("HTTP/1.1 200 OK\r\nX: 1\r\n folded\r\n\r\n".into(), Http1Error::MalformedHead("invalid header name")),
        ("HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n".into(), Http1Error::MalformedHead("invalid header value")),
        ("SSH-2.0-OpenSSH_9.2\r\n\r\n".into(), Http1Error::MalformedHead("not an HTTP/1.x response")),
    ];
    for (text, expected) in cases {
        let shown = &text[..text.len().min(80)];
        let err = exchange(&Request::get("h", "/"), text.as_bytes()).unwrap_err();
        assert_eq!(err, expected, "{shown:?}");
        assert_eq!(err.name(), err.kind().name());
        let mut c = Http1Client::new(Http1Config::default());
        send(&mut c, &Request::get("h", "/"));
        assert!(feed(&mut c, text.as_bytes(), 13).is_err());
        assert_eq!(c.state(), Http1State::Closed, "{shown:?}");
        assert_eq!(c.poll_timeout(), None);
    }
    // Identical duplicates are merged, as RFC 9112 §6.3 allows.
    let dup = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2, 2\r\n\r\nok";
    assert_eq!(exchange(&Request::get("h", "/"), dup).unwrap().0[0], head(200, "OK", Framing::Length(2), true));
}

#[test]
fn body_limits_per_request() {
    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world";
    let req = Request::get("h", "/").body_mode(BodyMode::Collect(10));
    assert_eq!(exchange(&req, answer).unwrap_err(), Http1Error::BodyTooLarge { limit: 10 });
    let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n";
    assert_eq!(exchange(&req, chunked).unwrap_err(), Http1Error::BodyTooLarge { limit: 10 });
    let config = Http1Config { max_body_bytes: 4, ..Http1Config::default() };
    let mut c = Http1Client::new(config);
    send(&mut c, &Request::get("h", "/").body_mode(BodyMode::Discard));
    assert_eq!(feed(&mut c, b"HTTP/1.1 200 OK\r\n\r\n12345", 2).unwrap_err(), Http1Error::BodyTooLarge { limit: 4 });
}

#[test]
fn bytes_after_a_response_are_kept_for_the_next() {
    let two = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nb\r\n0\r\n\r\n";
    for mode in [BodyMode::Stream, BodyMode::Collect(10)] {
        let req = Request::get("h", "/").body_mode(mode);
        let mut c = Http1Client::new(Http1Config::default());
        send(&mut c, &req);
        // The whole read arrives before the second request is sent: the rest is kept.
        let first = feed(&mut c, two, two.len()).unwrap();
        assert_eq!(first.len(), if mode == BodyMode::Stream { 3 } else { 2 });
        assert_eq!(c.state(), Http1State::Idle);
        assert_eq!(c.buffered(), two.len() - 39);
        send(&mut c, &req);
        let second = feed(&mut c, &[], 1).unwrap();
        let body = if mode == BodyMode::Stream {
            vec![Ev::Body(b"b".to_vec()), end(b"", true)]
        } else {
            vec![end(b"b", true)]
        };
        assert_eq!(second, [vec![head(200, "OK", Framing::Chunked, true)], body].concat());
        assert_eq!(c.buffered(), 0);
    }
    // Unsolicited bytes are bounded.
    let mut c = Http1Client::new(Http1Config { max_head_bytes: 64, ..Http1Config::default() });
    assert_eq!(c.receive(&[b'x'; 64], NOW), Ok((64, None)));
    assert_eq!(c.receive(b"y", NOW), Err(Http1Error::UnsolicitedData { limit: 64 }));
    assert_eq!(c.state(), Http1State::Closed);
}

#[test]
fn peer_close_at_every_stage() {
    let mut c = Http1Client::new(Http1Config::default());
    assert_eq!(c.peer_closed(), Ok(None), "an idle connection closed by the server");
    assert_eq!(c.state(), Http1State::Closed);
    let stages: [(&[u8], Http1Error); 4] = [
        (b"", Http1Error::ClosedBeforeResponse),
        (b"HTTP/1.1 200", Http1Error::TruncatedResponse),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc", Http1Error::TruncatedResponse),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n", Http1Error::TruncatedResponse),
    ];
    for (bytes, expected) in stages {
        let mut c = Http1Client::new(Http1Config::default());
        send(&mut c, &Request::get("h", "/"));
        feed(&mut c, bytes, 3).unwrap();
        assert_eq!(c.peer_closed(), Err(expected));
        assert_eq!(c.state(), Http1State::Closed);
    }
    // The end of a body whose end event is still due.
    let mut c = Http1Client::new(Http1Config::default());
    send(&mut c, &Request::get("h", "/"));
    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx";
    let (n, _) = c.receive(answer, NOW).unwrap();
    assert!(matches!(c.receive(&answer[n..], NOW), Ok((1, Some(Http1Event::Body(b"x"))))));
    assert_eq!(c.peer_closed(), Ok(Some(Http1Event::ResponseEnd { body: b"", keep_alive: false })));
}

#[test]
fn response_timeout_on_virtual_time() {
    let config = Http1Config { response_timeout_us: Some(1_000), ..Http1Config::default() };
    let mut c = Http1Client::new(config);
    assert_eq!(c.poll_timeout(), None);
    let mut out = Vec::new();
    c.send_request(&Request::get("h", "/"), 5_000, NOW, &mut out).unwrap();
    assert_eq!(c.poll_timeout(), Some(6_000));
    assert_eq!(c.handle_timeout(5_999), None);
    feed(&mut c, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 4).unwrap();
    assert_eq!(c.poll_timeout(), None, "a complete response clears the deadline");
    c.send_request(&Request::get("h", "/"), 10_000, NOW, &mut out).unwrap();
    feed(&mut c, b"HTTP/1.1 200 OK\r\n", 4).unwrap();
    assert_eq!(c.handle_timeout(11_000), Some(Http1Timeout::Response));
    assert_eq!(Http1Timeout::Response.name(), "http_response_timeout");
    assert_eq!(c.state(), Http1State::Closed);
    assert_eq!(c.poll_timeout(), None);
    let mut never = Http1Client::new(Http1Config { response_timeout_us: None, ..config });
    never.send_request(&Request::get("h", "/"), 0, NOW, &mut out).unwrap();
    assert_eq!(never.poll_timeout(), None);
}

#[test]
fn steady_state_reuses_buffers() {
    let mut c = Http1Client::new(Http1Config::default());
    let extra = [("User-Agent", "loadgen")];
    let req = Request::get("h", "/status").with_headers(&extra).body_mode(BodyMode::Collect(1024));
    let mut out = Vec::new();
    let mut capacities = Vec::new();
    for i in 0..200u64 {
        out.clear();
        c.send_request(&req, i, NOW + i, &mut out).unwrap();
        let answer = format!(
            "HTTP/1.1 200 OK\r\nSet-Cookie: token={:08}; Max-Age=30\r\nRetry-After: 2\r\n\
             Transfer-Encoding: chunked\r\n\r\nf\r\n{{\"position\":{:02}}}\r\n0\r\n\r\n",
            i,
            i % 100
        );
        let events = feed(&mut c, answer.as_bytes(), 9).unwrap();
        assert_eq!(events.last(), Some(&end(format!("{{\"position\":{:02}}}", i % 100).as_bytes(), true)));
        capacities.push((c.buffer_capacity(), out.capacity()));
    }
    assert!(capacities[10..].iter().all(|&c| c == capacities[10]), "{capacities:?}");
    assert_eq!(c.jar().len(), 1);
}

#[test]
fn per_connection_state_is_small() {
    let size = std::mem::size_of::<Http1Client>();
    assert!(size <= 256, "Http1Client is {size} bytes");
    assert_eq!(Http1Client::new(Http1Config::default()).buffer_capacity(), 0, "no heap until used");
}

#[test]
fn error_kinds_are_distinct_counters() {
    let names: std::collections::HashSet<_> = Http1ErrorKind::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(names.len(), Http1ErrorKind::COUNT);
    for (i, kind) in Http1ErrorKind::ALL.iter().enumerate() {
        assert_eq!(*kind as usize, i);
    }
    assert_eq!(Http1Error::BadChunk("x").kind(), Http1ErrorKind::BadChunk);
    assert_eq!(Http1Error::HeadTooLarge { limit: 1 }.to_string(), "response head larger than 1 bytes");
}
