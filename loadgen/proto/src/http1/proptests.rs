//! Property tests: any sequence of responses on one connection (every framing, interim
//! answers, chunk extensions and trailers, cookies, `Retry-After`, HEAD), cut into
//! reads anywhere, with the next request sent at once or only after the early bytes
//! were fed, gives the events the model predicts, whatever the body mode. Any bytes at
//! all give the same events and error however they are cut, and never a panic.
//!
//! Case counts are modest; set `PROPTEST_CASES` to run deeper. No failure files.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use super::tests::{Ev, NOW, normalize, own, pump};
use super::*;

fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    ProptestConfig { cases, failure_persistence: None, max_shrink_iters: 2048, ..ProptestConfig::default() }
}

#[derive(Clone, Debug)]
enum Frame {
    Length,
    /// Chunk sizes (the body is cut into them, the rest in a last chunk), with
    /// extensions, upper-case hex and leading zeros, and trailer lines.
    Chunked {
        cuts: Vec<usize>,
        ext: bool,
        upper: bool,
        zeros: usize,
        trailers: usize,
    },
    /// Only for the last response.
    UntilClose,
}

#[derive(Clone, Debug)]
struct Resp {
    interim: Vec<u16>,
    status: u16,
    head_request: bool,
    http10: bool,
    frame: Frame,
    body: Vec<u8>,
    retry: Option<u32>,
    cookie: Option<(u8, u16)>,
    extra: Vec<(String, String)>,
}

impl Resp {
    fn bodiless(&self) -> bool {
        self.head_request || self.status == 204 || self.status == 304
    }

    fn framing(&self) -> Framing {
        match self.frame {
            _ if self.bodiless() => Framing::None,
            Frame::Length => Framing::Length(self.body.len() as u64),
            Frame::Chunked { .. } => Framing::Chunked,
            Frame::UntilClose => Framing::UntilClose,
        }
    }

    /// Whether the connection survives (an HTTP/1.0 answer says keep-alive unless it is
    /// close-delimited; a close-delimited answer without body keeps HTTP/1.1 alive).
    fn keep_alive(&self) -> bool {
        match self.frame {
            Frame::UntilClose => self.bodiless() && !self.http10,
            _ => true,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for status in &self.interim {
            out.extend_from_slice(format!("HTTP/1.1 {status} Interim\r\nX-Hint: 1\r\n\r\n").as_bytes());
        }
        let version = if self.http10 { "1.0" } else { "1.1" };
        out.extend_from_slice(format!("HTTP/{version} {} Some Reason\r\n", self.status).as_bytes());
        if self.http10 && !matches!(self.frame, Frame::UntilClose) {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        for (name, value) in &self.extra {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        if let Some(r) = self.retry {
            out.extend_from_slice(format!("Retry-After: {r}\r\n").as_bytes());
        }
        if let Some((name, value)) = self.cookie {
            out.extend_from_slice(format!("Set-Cookie: c{name}={value}; Path=/\r\n").as_bytes());
        }
        match &self.frame {
            Frame::Length => out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes()),
            Frame::Chunked { .. } => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
            Frame::UntilClose => {}
        }
        out.extend_from_slice(b"\r\n");
        if self.bodiless() {
            return out;
        }
        match &self.frame {
            Frame::Length | Frame::UntilClose => out.extend_from_slice(&self.body),
            Frame::Chunked { cuts, ext, upper, zeros, trailers } => {
                let mut rest = &self.body[..];
                let mut sizes: Vec<usize> = cuts.iter().map(|&c| c.min(rest.len())).collect();
                sizes.push(usize::MAX);
                for size in sizes {
                    let size = size.min(rest.len());
                    if size == 0 {
                        continue;
                    }
                    let hex = if *upper { format!("{size:X}") } else { format!("{size:x}") };
                    out.extend_from_slice(format!("{}{hex}", "0".repeat(*zeros)).as_bytes());
                    if *ext {
                        out.extend_from_slice(b" ; name=\"v;al\" ;flag");
                    }
                    out.extend_from_slice(b"\r\n");
                    out.extend_from_slice(&rest[..size]);
                    out.extend_from_slice(b"\r\n");
                    rest = &rest[size..];
                }
                out.extend_from_slice(b"0\r\n");
                for i in 0..*trailers {
                    out.extend_from_slice(format!("X-Trailer-{i}: value {i}\r\n").as_bytes());
                }
                out.extend_from_slice(b"\r\n");
            }
        }
        out
    }

    /// The events a client reading this answer in `mode` reports.
    fn expected(&self, mode: BodyMode) -> Vec<Ev> {
        let mut events: Vec<Ev> = self.interim.iter().map(|&s| Ev::Info(s)).collect();
        let version = if self.http10 { HttpVersion::Http10 } else { HttpVersion::Http11 };
        let framing = self.framing();
        let keep_alive = self.keep_alive();
        let retry = self.retry.map(u64::from);
        events.push(Ev::Head {
            status: self.status,
            reason: "Some Reason".into(),
            version,
            framing,
            retry,
            keep_alive,
        });
        let body = if self.bodiless() { &[][..] } else { &self.body[..] };
        match mode {
            BodyMode::Stream if !body.is_empty() => events.push(Ev::Body(body.to_vec())),
            _ => {}
        }
        let collected = if matches!(mode, BodyMode::Collect(_)) { body.to_vec() } else { Vec::new() };
        events.push(Ev::End { body: collected, keep_alive });
        events
    }
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        Just(Frame::Length),
        (vec(0..40usize, 0..5), any::<bool>(), any::<bool>(), 0..3usize, 0..3usize)
            .prop_map(|(cuts, ext, upper, zeros, trailers)| Frame::Chunked { cuts, ext, upper, zeros, trailers }),
    ]
}

fn resp(last: bool) -> impl Strategy<Value = Resp> {
    let status = prop_oneof![Just(200u16), Just(201), Just(204), Just(304), Just(404), Just(429), Just(503)];
    let frame = if last { prop_oneof![3 => frame(), 1 => Just(Frame::UntilClose)].boxed() } else { frame().boxed() };
    let extra = vec(("[A-Z][a-z]{0,6}-[a-z]{1,5}", "[ -~]{0,12}"), 0..3);
    (
        vec(prop_oneof![Just(100u16), Just(102), Just(103)], 0..2),
        status,
        any::<bool>(),
        any::<bool>(),
        frame,
        vec(any::<u8>(), 0..120),
        proptest::option::of(0..100_000u32),
        proptest::option::of((0..3u8, any::<u16>())),
        extra,
    )
        .prop_map(|(interim, status, head_request, http10, frame, body, retry, cookie, extra)| {
            // Trimmed values (httparse drops surrounding whitespace); no header the
            // client reads for framing.
            const READ: [&str; 5] = ["retry-after", "set-cookie", "content-length", "transfer-encoding", "connection"];
            let extra = extra
                .into_iter()
                .filter(|(n, _)| !READ.iter().any(|r| n.eq_ignore_ascii_case(r)))
                .map(|(n, v)| (n, v.trim().to_owned()))
                .collect();
            // Chunked is refused in HTTP/1.0 (tested elsewhere).
            let frame = match frame {
                Frame::Chunked { .. } if http10 => Frame::Length,
                f => f,
            };
            Resp { interim, status, head_request, http10, frame, body, retry, cookie, extra }
        })
}

fn responses() -> impl Strategy<Value = Vec<Resp>> {
    (vec(resp(false), 0..3), resp(true)).prop_map(|(mut v, last)| {
        v.push(last);
        v
    })
}

fn mode() -> impl Strategy<Value = BodyMode> {
    prop_oneof![Just(BodyMode::Stream), Just(BodyMode::Collect(1000)), Just(BodyMode::Discard)]
}

/// Runs the conversation: a request per response, the answers' bytes cut at `cuts`.
/// `late`: send the next request only once a read is fully fed (early bytes wait in the
/// client); otherwise at once on `ResponseEnd`.
fn converse(resps: &[Resp], mode: BodyMode, cuts: &[usize], late: bool) -> (Vec<Ev>, Vec<String>) {
    let bytes: Vec<u8> = resps.iter().flat_map(Resp::encode).collect();
    let mut points: Vec<usize> = cuts.iter().map(|&c| c % (bytes.len() + 1)).collect();
    points.extend([0, bytes.len()]);
    points.sort_unstable();
    let mut client = Http1Client::new(Http1Config::default());
    let mut sent = 0;
    let mut requests = Vec::new();
    let mut events = Vec::new();
    let send = |client: &mut Http1Client, sent: &mut usize, requests: &mut Vec<String>| {
        if client.state() != Http1State::Idle || *sent == resps.len() {
            return;
        }
        let method = if resps[*sent].head_request { "HEAD" } else { "GET" };
        let mut out = Vec::new();
        client.send_request(&Request::new(method, "h", "/poll").body_mode(mode), 0, NOW, &mut out).unwrap();
        requests.push(String::from_utf8(out).unwrap());
        *sent += 1;
    };
    send(&mut client, &mut sent, &mut requests);
    for w in points.windows(2) {
        let mut rest = &bytes[w[0]..w[1]];
        loop {
            let (n, event) = client.receive(rest, NOW).unwrap();
            rest = &rest[n..];
            let Some(event) = event else { break };
            let ended = matches!(event, Http1Event::ResponseEnd { .. });
            own(event, &mut events);
            if ended && !late {
                send(&mut client, &mut sent, &mut requests);
            }
        }
        assert!(rest.is_empty());
        while client.state() == Http1State::Idle && sent < resps.len() {
            send(&mut client, &mut sent, &mut requests);
            pump(&mut client, &[], &mut events).unwrap();
        }
    }
    pump(&mut client, &[], &mut events).unwrap();
    if let Some(e) = client.peer_closed().unwrap() {
        own(e, &mut events);
    }
    (normalize(events), requests)
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_responses_any_split_any_mode(
        resps in responses(),
        mode in mode(),
        cuts in vec(any::<usize>(), 0..12),
        late in any::<bool>(),
    ) {
        let expected: Vec<Ev> = resps.iter().flat_map(|r| r.expected(mode)).collect();
        let (whole, requests) = converse(&resps, mode, &[], false);
        prop_assert_eq!(&whole, &expected);
        let (split, split_requests) = converse(&resps, mode, &cuts, late);
        prop_assert_eq!(&split, &expected);
        prop_assert_eq!(&requests, &split_requests);
        let (bytewise, _) = converse(&resps, mode, &(0..4096).collect::<Vec<_>>(), late);
        prop_assert_eq!(&bytewise, &expected);
        // Each request carries the cookies set by the answers before it.
        let mut jar = CookieJar::default();
        for (r, text) in resps.iter().zip(&requests) {
            let mut cookie = Vec::new();
            jar.write_header("/poll", NOW, false, &mut cookie);
            prop_assert_eq!(text.contains("Cookie"), !cookie.is_empty());
            prop_assert!(text.contains(std::str::from_utf8(&cookie).unwrap()));
            if let Some((name, value)) = r.cookie {
                jar.set_cookie(format!("c{name}={value}; Path=/").as_bytes(), NOW);
            }
        }
    }

    #[test]
    fn any_bytes_give_the_same_outcome_however_cut(
        bytes in prop_oneof![
            vec(any::<u8>(), 0..200),
            (resp(true), vec((any::<Index>(), any::<u8>()), 0..4)).prop_map(|(r, edits)| {
                let mut b = r.encode();
                for (i, v) in edits {
                    if !b.is_empty() {
                        let at = i.index(b.len());
                        b[at] = v;
                    }
                }
                b
            }),
        ],
        cuts in vec(any::<usize>(), 0..8),
        head_request in any::<bool>(),
        mode in mode(),
    ) {
        let run = |cuts: &[usize]| {
            let mut c = Http1Client::new(Http1Config { max_head_bytes: 512, max_body_bytes: 300, ..Http1Config::default() });
            let method = if head_request { "HEAD" } else { "GET" };
            let mut out = Vec::new();
            c.send_request(&Request::new(method, "h", "/").body_mode(mode), 0, NOW, &mut out).unwrap();
            let mut points: Vec<usize> = cuts.iter().map(|&p| p % (bytes.len() + 1)).collect();
            points.extend([0, bytes.len()]);
            points.sort_unstable();
            let mut events = Vec::new();
            for w in points.windows(2) {
                if let Err(e) = pump(&mut c, &bytes[w[0]..w[1]], &mut events) {
                    return (events, Some(e), c.state());
                }
            }
            let closed = c.peer_closed();
            if let Ok(Some(e)) = closed {
                own(e, &mut events);
            }
            (events, closed.err(), c.state())
        };
        // Before an error, how much of a streamed body was delivered depends on the cuts
        // (a read that crosses the body limit delivers none of itself).
        let run = |cuts: &[usize]| {
            let (mut events, error, state) = run(cuts);
            if error.is_some() {
                events.retain(|e| !matches!(e, Ev::Body(_)));
            }
            (normalize(events), error, state)
        };
        let whole = run(&[]);
        prop_assert_eq!(&run(&cuts), &whole);
        prop_assert_eq!(&run(&(0..bytes.len()).collect::<Vec<_>>()), &whole);
        prop_assert_eq!(whole.2, Http1State::Closed);
    }
}
