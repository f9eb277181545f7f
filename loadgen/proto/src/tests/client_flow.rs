//! The client state machine end to end against an in-test server made of the crate's
//! server-role decoder and encoder: handshake, echo, ping/pong, both close handshakes,
//! timeouts on virtual time, failure close codes, refusals, deflate, and buffer reuse.

use super::support::{decode, rng};
use crate::client::{Client, ClientConfig, Event, Initiator, PingStamp, State, Timeout};
use crate::decoder::{Decoder, Role};
use crate::deflate::{DeflateConfig, Deflater, Inflater};
use crate::encoder::{Encoder, MessageKind};
use crate::error::{Error, HandshakeError, ProtocolError, SendError};
use crate::frame::Opcode;
use crate::fuzzing::Outcome;
use crate::handshake::{HandshakeRequest, RejectionKind, accept_key};
use rand_chacha::ChaCha8Rng;

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Ev {
    Open,
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Closed(Option<u16>, String, Initiator),
}

pub(super) fn own(e: Event<'_>) -> Ev {
    match e {
        Event::Open => Ev::Open,
        Event::Text(t) => Ev::Text(t.into()),
        Event::Binary(b) => Ev::Binary(b.into()),
        Event::Ping(p) => Ev::Ping(p.into()),
        Event::Pong(p) => Ev::Pong(p.into()),
        Event::Closed { code, reason, initiator } => Ev::Closed(code, reason.into(), initiator),
    }
}

/// Feeds `bytes` to the client in reads of `chunk` bytes; collects events or the error.
pub(super) fn feed(c: &mut Client, bytes: &[u8], chunk: usize, r: &mut ChaCha8Rng) -> Result<Vec<Ev>, Error> {
    let mut events = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        let mut rest = piece;
        while !rest.is_empty() {
            let (n, ev) = c.receive(rest, r)?;
            events.extend(ev.map(own));
            rest = &rest[n..];
        }
    }
    Ok(events)
}

pub(super) struct Server {
    pub(super) dec: Decoder,
    pub(super) enc: Encoder,
    pub(super) rng: ChaCha8Rng,
}

impl Server {
    pub(super) fn new() -> Self {
        Self { dec: Decoder::new(Role::Server, 1 << 20), enc: Encoder::new(Role::Server, None), rng: rng(99) }
    }

    /// Reads the client's upgrade request and returns a 101 with `extra` headers.
    pub(super) fn accept(&mut self, c: &mut Client, extra: &str) -> Vec<u8> {
        let request = String::from_utf8(c.pending_transmit().to_vec()).unwrap();
        c.advance_transmit(request.len());
        let key = request.lines().find_map(|l| l.strip_prefix("Sec-WebSocket-Key: ")).expect("request carries a key");
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n{extra}\r\n",
            accept_key(key)
        )
        .into_bytes()
    }

    /// Decodes everything the client has queued.
    pub(super) fn read(&mut self, c: &mut Client) -> Vec<Outcome> {
        let bytes = c.pending_transmit().to_vec();
        c.advance_transmit(bytes.len());
        decode(&mut self.dec, &bytes, 4096)
    }

    pub(super) fn send(&mut self, kind: MessageKind, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.enc.message(&mut out, kind, payload, &mut self.rng).unwrap();
        out
    }

    pub(super) fn control(&mut self, op: Opcode, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.enc.control(&mut out, op, payload, &mut self.rng).unwrap();
        out
    }
}

fn open_client(config: ClientConfig, request: HandshakeRequest) -> (Client, Server, ChaCha8Rng) {
    let mut r = rng(1);
    let mut c = Client::new(config, &request, 0, &mut r).unwrap();
    let mut s = Server::new();
    let answer = s.accept(&mut c, "");
    assert_eq!(feed(&mut c, &answer, 7, &mut r).unwrap(), [Ev::Open]);
    (c, s, r)
}

fn open_default() -> (Client, Server, ChaCha8Rng) {
    open_client(ClientConfig::default(), HandshakeRequest::new("127.0.0.1:9", "/"))
}

#[test]
fn echo_then_client_initiated_close() {
    let (mut c, mut s, mut r) = open_default();
    assert_eq!(c.state(), State::Open);
    c.send_text("hello", &mut r).unwrap();
    c.send_binary(&[0, 1, 2], &mut r).unwrap();
    assert_eq!(
        s.read(&mut c),
        [Outcome::Item("text", b"hello".to_vec(), None), Outcome::Item("binary", vec![0, 1, 2], None)]
    );
    let reply = s.send(MessageKind::Text, "κόσμε".as_bytes());
    assert_eq!(feed(&mut c, &reply, 1, &mut r).unwrap(), [Ev::Text("κόσμε".into())]);

    c.close(1000, "bye", 50, &mut r).unwrap();
    assert_eq!(c.state(), State::Closing);
    assert_eq!(c.poll_timeout(), Some(50 + ClientConfig::default().close_timeout_us));
    assert_eq!(s.read(&mut c), [Outcome::Item("close", b"bye".to_vec(), Some(1000))]);
    assert_eq!(c.send_text("late", &mut r), Err(SendError::NotOpen));
    let mut close = Vec::new();
    s.enc.close(&mut close, Some(1000), "", &mut s.rng).unwrap();
    assert_eq!(feed(&mut c, &close, 1, &mut r).unwrap(), [Ev::Closed(Some(1000), String::new(), Initiator::Client)]);
    assert_eq!(c.state(), State::Closed);
    assert_eq!(c.poll_timeout(), None);
    assert!(c.pending_transmit().is_empty(), "no reply to the reply");
}

#[test]
fn frames_in_the_same_read_as_the_101_are_delivered() {
    let mut r = rng(3);
    let mut c = Client::new(ClientConfig::default(), &HandshakeRequest::new("h", "/"), 0, &mut r).unwrap();
    let mut s = Server::new();
    let mut bytes = s.accept(&mut c, "");
    bytes.extend(s.send(MessageKind::Text, b"welcome"));
    bytes.extend(s.control(Opcode::Ping, b"hb"));
    assert_eq!(
        feed(&mut c, &bytes, usize::MAX, &mut r).unwrap(),
        [Ev::Open, Ev::Text("welcome".into()), Ev::Ping(b"hb".to_vec())]
    );
}

#[test]
fn pings_are_answered_and_client_pings_measure_round_trips() {
    let (mut c, mut s, mut r) = open_default();
    let ping = s.control(Opcode::Ping, b"abc");
    assert_eq!(feed(&mut c, &ping, 2, &mut r).unwrap(), [Ev::Ping(b"abc".to_vec())]);
    assert_eq!(s.read(&mut c), [Outcome::Item("pong", b"abc".to_vec(), None)]);

    c.ping(7, 1_000, &mut r).unwrap();
    let sent = s.read(&mut c);
    let [Outcome::Item("ping", payload, None)] = &sent[..] else { panic!("{sent:?}") };
    let pong = s.control(Opcode::Pong, payload);
    let events = feed(&mut c, &pong, 1, &mut r).unwrap();
    let [Ev::Pong(p)] = &events[..] else { panic!("{events:?}") };
    assert_eq!(PingStamp::parse(p), Some(PingStamp { id: 7, sent_us: 1_000 }));
    assert_eq!(PingStamp::parse(b"abc"), None);
}

#[test]
fn server_initiated_close_is_echoed() {
    let (mut c, mut s, mut r) = open_default();
    let mut close = Vec::new();
    s.enc.close(&mut close, Some(1001), "restarting", &mut s.rng).unwrap();
    assert_eq!(
        feed(&mut c, &close, 3, &mut r).unwrap(),
        [Ev::Closed(Some(1001), "restarting".into(), Initiator::Server)]
    );
    assert_eq!(c.state(), State::Closed);
    assert_eq!(s.read(&mut c), [Outcome::Item("close", vec![], Some(1001))]);
    // Bytes after the close are ignored.
    let more = s.send(MessageKind::Text, b"after");
    assert_eq!(feed(&mut c, &more, 64, &mut r).unwrap(), []);
}

#[test]
fn close_and_handshake_time_out_on_virtual_time() {
    let (mut c, _s, mut r) = open_default();
    c.close(1000, "", 1_000, &mut r).unwrap();
    let deadline = 1_000 + ClientConfig::default().close_timeout_us;
    assert_eq!(c.handle_timeout(deadline - 1), None);
    assert_eq!(c.state(), State::Closing);
    assert_eq!(c.handle_timeout(deadline), Some(Timeout::Close));
    assert_eq!(c.state(), State::Closed);

    let config = ClientConfig { handshake_timeout_us: Some(2_000_000), ..ClientConfig::default() };
    let mut c = Client::new(config, &HandshakeRequest::new("h", "/"), 500, &mut r).unwrap();
    assert_eq!(c.poll_timeout(), Some(2_000_500));
    assert_eq!(c.handle_timeout(2_000_499), None);
    assert_eq!(c.handle_timeout(2_000_500), Some(Timeout::Handshake));
    assert_eq!(c.state(), State::Closed);
}

#[test]
fn protocol_failures_queue_the_right_close_code() {
    let cases: [(Vec<u8>, ProtocolError, u16); 4] = [
        (vec![0x81, 0x82, 1, 2, 3, 4, 0, 0], ProtocolError::MaskedFrame, 1002),
        (vec![0x81, 0x03, 0xed, 0xa0, 0x80], ProtocolError::InvalidUtf8, 1007),
        (vec![0x82, 0x7E, 0x10, 0x00], ProtocolError::MessageTooBig, 1009),
        (vec![0x83, 0x00], ProtocolError::ReservedOpcode, 1002),
    ];
    for (bytes, error, code) in cases {
        let config = ClientConfig { max_message_size: 1024, ..ClientConfig::default() };
        let (mut c, mut s, mut r) = open_client(config, HandshakeRequest::new("h", "/"));
        assert_eq!(feed(&mut c, &bytes, 1, &mut r), Err(Error::Protocol(error)));
        assert_eq!(c.state(), State::Closed);
        assert_eq!(s.read(&mut c), [Outcome::Item("close", vec![], Some(code))], "{error:?}");
    }
}

#[test]
fn refusals_keep_status_and_retry_after() {
    let mut r = rng(4);
    let mut c = Client::new(ClientConfig::default(), &HandshakeRequest::new("h", "/"), 0, &mut r).unwrap();
    let answer = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 30\r\nContent-Length: 0\r\n\r\n";
    let Err(Error::Handshake(HandshakeError::Rejected(rej))) = feed(&mut c, answer, 5, &mut r) else {
        panic!("expected a rejection")
    };
    assert_eq!((rej.status, rej.kind(), rej.retry_after_secs()), (429, RejectionKind::TooManyRequests, Some(30)));
    assert_eq!(c.state(), State::Closed);
    assert_eq!(c.send_text("x", &mut r), Err(SendError::NotOpen));
}

#[test]
fn configured_fragment_size_splits_messages() {
    let config = ClientConfig { fragment_size: Some(4), ..ClientConfig::default() };
    let (mut c, mut s, mut r) = open_client(config, HandshakeRequest::new("h", "/"));
    c.send_text("0123456789", &mut r).unwrap();
    let raw = c.pending_transmit().to_vec();
    assert_eq!(raw[0], 0x01, "first frame: text without FIN");
    assert_eq!(raw.len(), 3 * (2 + 4) + 10, "three masked frames");
    assert_eq!(s.read(&mut c), [Outcome::Item("text", b"0123456789".to_vec(), None)]);
}

#[test]
fn pong_goes_between_fragments_of_a_streamed_message() {
    let (mut c, mut s, mut r) = open_default();
    c.begin_fragmented(MessageKind::Text, b"Hel", &mut r).unwrap();
    assert_eq!(c.send_text("other", &mut r), Err(SendError::FragmentSequence));
    let ping = s.control(Opcode::Ping, b"x");
    feed(&mut c, &ping, 1, &mut r).unwrap();
    c.send_fragment(b"lo", true, &mut r).unwrap();
    assert_eq!(
        s.read(&mut c),
        [Outcome::Item("pong", b"x".to_vec(), None), Outcome::Item("text", b"Hello".to_vec(), None)]
    );
    assert_eq!(c.send_fragment(b"!", true, &mut r), Err(SendError::FragmentSequence));
}

#[test]
fn deflate_negotiated_both_ways() {
    let mut request = HandshakeRequest::new("h", "/");
    request.deflate = Some(DeflateConfig { client_no_context_takeover: true, ..DeflateConfig::default() });
    let mut r = rng(5);
    let mut c = Client::new(ClientConfig::default(), &request, 0, &mut r).unwrap();
    let mut s = Server::new();
    let answer = s.accept(&mut c, "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n");
    assert_eq!(feed(&mut c, &answer, 11, &mut r).unwrap(), [Ev::Open]);
    assert!(c.accepted().unwrap().deflate.unwrap().client_no_context_takeover);
    s.dec.set_inflater(Some(Inflater::new(true)));
    s.enc.set_deflater(Some(Deflater::new(15, false, 6)));

    let text = "notification for unit 7: shift starts in 40 minutes ".repeat(20);
    c.send_text(&text, &mut r).unwrap();
    let raw = c.pending_transmit().to_vec();
    assert_eq!(raw[0], 0xC1, "FIN + RSV1 + text");
    assert!(raw.len() < text.len() / 4, "compressed: {} of {}", raw.len(), text.len());
    assert_eq!(s.read(&mut c), [Outcome::Item("text", text.clone().into_bytes(), None)]);
    for _ in 0..3 {
        let reply = s.send(MessageKind::Text, text.as_bytes());
        assert_eq!(feed(&mut c, &reply, 13, &mut r).unwrap(), [Ev::Text(text.clone())]);
    }
}

#[test]
fn steady_state_reuses_buffers() {
    for deflate in [false, true] {
        let mut request = HandshakeRequest::new("h", "/");
        let mut r = rng(6);
        request.deflate = deflate.then(DeflateConfig::default);
        let mut c = Client::new(ClientConfig::default(), &request, 0, &mut r).unwrap();
        let mut s = Server::new();
        let ext = if deflate { "Sec-WebSocket-Extensions: permessage-deflate\r\n" } else { "" };
        let answer = s.accept(&mut c, ext);
        feed(&mut c, &answer, usize::MAX, &mut r).unwrap();
        if deflate {
            s.dec.set_inflater(Some(Inflater::new(false)));
            s.enc.set_deflater(Some(Deflater::new(15, false, 1)));
        }
        let payload = vec![b'a'; 3000];
        let round = |c: &mut Client, s: &mut Server, r: &mut ChaCha8Rng| {
            c.send_binary(&payload, r).unwrap();
            c.ping(1, 2, r).unwrap();
            assert_eq!(s.read(c).len(), 2);
            let mut reply = s.send(MessageKind::Binary, &payload);
            reply.extend(s.control(Opcode::Ping, b"hb"));
            // Split so the message is assembled in the decoder's buffer, not borrowed.
            assert_eq!(feed(c, &reply, 1000, r).unwrap().len(), 2);
            c.advance_transmit(c.pending_transmit().len());
        };
        for _ in 0..50 {
            round(&mut c, &mut s, &mut r);
        }
        let warm = c.buffer_capacity();
        for _ in 0..2000 {
            round(&mut c, &mut s, &mut r);
        }
        assert_eq!(c.buffer_capacity(), warm, "deflate={deflate}: buffers grew after warm-up");
    }
}

#[test]
fn request_errors_are_reported_before_anything_is_sent() {
    let mut r = rng(8);
    let mut request = HandshakeRequest::new("h", "/");
    request.headers.push(("Cookie".into(), "a=1\r\nInjected: yes".into()));
    assert!(Client::new(ClientConfig::default(), &request, 0, &mut r).is_err());
    let mut request = HandshakeRequest::new("h", "/");
    request.deflate = Some(DeflateConfig { client_max_window_bits: Some(16), ..DeflateConfig::default() });
    assert!(Client::new(ClientConfig::default(), &request, 0, &mut r).is_err());
}

#[test]
fn violations_and_filled_texts_go_out_between_messages_and_the_client_keeps_reading() {
    let (mut c, mut s, mut r) = open_default();
    c.send_filled_text(70_000, &mut r).unwrap();
    assert_eq!(s.read(&mut c), [Outcome::Item("text", vec![b'x'; 70_000], None)], "one valid text frame");
    c.send_filled_text(0, &mut r).unwrap();
    assert_eq!(s.read(&mut c), [Outcome::Item("text", Vec::new(), None)]);
    c.send_violation(crate::violation::Violation::InvalidUtf8, &mut r).unwrap();
    let bytes = c.pending_transmit().to_vec();
    c.advance_transmit(bytes.len());
    assert!(s.dec.decode(&bytes).is_err(), "the server's decoder refuses it");
    assert_eq!(c.state(), State::Open, "the client does not know it misbehaved");
    // The server's answer is read as usual.
    let mut close = Vec::new();
    s.enc.close(&mut close, Some(1007), "", &mut s.rng).unwrap();
    assert_eq!(feed(&mut c, &close, 3, &mut r).unwrap(), [Ev::Closed(Some(1007), String::new(), Initiator::Server)]);
    assert_eq!(c.send_violation(crate::violation::Violation::Unmasked, &mut r), Err(SendError::NotOpen));
    // A large output buffer is given back once drained.
    let (mut c, mut s, mut r) = open_default();
    c.send_filled_text(1 << 20, &mut r).unwrap();
    let _ = s.read(&mut c);
    c.trim_output(64 << 10);
    assert!(c.buffer_capacity() < 1 << 20, "{}", c.buffer_capacity());
}
