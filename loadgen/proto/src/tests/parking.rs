//! Parking: a connection at rest shrinks to `Parked` and resumes in any `Client`
//! (here: one shell shared by several connections), with the same events and bytes as
//! a connection that kept its own `Client`.

use super::client_flow::{Ev, Server, feed};
use super::support::rng;
use crate::client::{Client, ClientConfig, Parked, State, Timeout};
use crate::deflate::{DeflateConfig, Deflater, Inflater};
use crate::encoder::MessageKind;
use crate::frame::Opcode;
use crate::fuzzing::Outcome;
use crate::handshake::HandshakeRequest;
use rand_chacha::ChaCha8Rng;

const BOTH_NO_TAKEOVER: &str =
    "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover\r\n";

fn open(deflate: Option<&str>, seed: u64) -> (Client, Server, ChaCha8Rng) {
    let mut request = HandshakeRequest::new("h", "/");
    request.deflate = deflate.map(|_| DeflateConfig {
        client_no_context_takeover: true,
        server_no_context_takeover: true,
        ..DeflateConfig::default()
    });
    let mut r = rng(seed);
    let mut c = Client::new(ClientConfig::default(), &request, 0, &mut r).unwrap();
    let mut s = Server::new();
    assert!(c.park().is_none(), "handshaking connections are not at rest");
    let answer = s.accept(&mut c, deflate.unwrap_or(""));
    assert_eq!(feed(&mut c, &answer, 5, &mut r).unwrap(), [Ev::Open]);
    if deflate.is_some() {
        s.dec.set_inflater(Some(Inflater::new(true)));
        s.enc.set_deflater(Some(Deflater::new(15, true, 6)));
    }
    (c, s, r)
}

#[test]
fn only_a_connection_at_rest_parks() {
    let (mut c, mut s, mut r) = open(None, 1);
    c.send_text("queued", &mut r).unwrap();
    assert!(c.park().is_none(), "bytes queued for transmission");
    s.read(&mut c);
    // Half a message: the first fragment of a fragmented text.
    let mut first = Vec::new();
    s.enc.begin_fragmented(&mut first, MessageKind::Text, b"par", &mut s.rng).unwrap();
    feed(&mut c, &first, 64, &mut r).unwrap();
    assert!(c.park().is_none(), "a message is half received");
    let mut rest = Vec::new();
    s.enc.continue_fragmented(&mut rest, b"ked", true, &mut s.rng).unwrap();
    assert_eq!(feed(&mut c, &rest, 64, &mut r).unwrap(), [Ev::Text("parked".into())]);
    // Half a frame header.
    let frame = s.send(MessageKind::Binary, &[7; 300]);
    feed(&mut c, &frame[..1], 64, &mut r).unwrap();
    assert!(c.park().is_none(), "a frame header is half received");
    feed(&mut c, &frame[1..], 64, &mut r).unwrap();
    // Streaming a fragmented message of our own.
    c.begin_fragmented(MessageKind::Binary, b"a", &mut r).unwrap();
    s.read(&mut c);
    assert!(c.park().is_none(), "our own fragmented message is open");
    c.send_fragment(b"b", true, &mut r).unwrap();
    s.read(&mut c);
    assert!(c.park().is_some());
}

#[test]
fn context_takeover_keeps_its_own_client() {
    let mut request = HandshakeRequest::new("h", "/");
    request.deflate = Some(DeflateConfig::default());
    let mut r = rng(2);
    let mut c = Client::new(ClientConfig::default(), &request, 0, &mut r).unwrap();
    let mut s = Server::new();
    let answer = s.accept(&mut c, "Sec-WebSocket-Extensions: permessage-deflate\r\n");
    feed(&mut c, &answer, 64, &mut r).unwrap();
    assert!(!c.is_at_rest(), "compression history must stay with the connection");
    assert!(c.park().is_none());
    assert_eq!(c.state(), State::Open, "a refused park changes nothing");
    // A compressor (window 15: 128 KiB + 128 KiB of hash chains) and a decompressor
    // (32 KiB window), as zlib documents them.
    let (contexts, bytes) = c.deflate_memory();
    assert_eq!(contexts, 2);
    assert_eq!(bytes, (1 << 17) + (1 << 17) + 6 * 1024 + (1 << 15) + 7 * 1024);
    let plain = Client::new(ClientConfig::default(), &HandshakeRequest::new("h", "/"), 0, &mut r).unwrap();
    assert_eq!(plain.deflate_memory(), (0, 0), "no compression, no contexts");
}

/// Several connections share one `Client`, each parked between reads; a connection
/// with its own `Client` sees the same events and sends the same frames.
#[test]
fn connections_share_one_client_between_messages() {
    for deflate in [None, Some(BOTH_NO_TAKEOVER)] {
        for chunk in [1, 3, 17, 4096] {
            let conns: Vec<_> = (0..3).map(|i| open(deflate, 10 + i)).collect();
            let mut parked: Vec<(Parked, Server, ChaCha8Rng)> = Vec::new();
            let mut shell = None::<Client>;
            for (mut c, s, r) in conns {
                parked.push((c.park().expect("open and idle"), s, r));
                shell = Some(c);
            }
            let mut shell = shell.unwrap();
            let (mut own, mut own_server, mut own_rng) = open(deflate, 10);
            for round in 0..20u8 {
                let text = format!("round {round}: ").repeat(usize::from(round) * 9 + 1);
                for (i, (p, s, r)) in parked.iter_mut().enumerate() {
                    shell.resume(*p);
                    shell.send_text(&text, r).unwrap();
                    assert_eq!(s.read(&mut shell), [Outcome::Item("text", text.clone().into_bytes(), None)]);
                    let mut reply = s.send(MessageKind::Binary, text.as_bytes());
                    reply.extend(s.control(Opcode::Ping, &[round]));
                    let events = feed(&mut shell, &reply, chunk, r).unwrap();
                    assert_eq!(events, [Ev::Binary(text.clone().into_bytes()), Ev::Ping(vec![round])]);
                    assert_eq!(s.read(&mut shell), [Outcome::Item("pong", vec![round], None)]);
                    *p = shell.park().unwrap_or_else(|| panic!("conn {i} at rest after round {round}"));
                    if i == 0 {
                        // The same conversation on a dedicated client, byte for byte.
                        own.send_text(&text, &mut own_rng).unwrap();
                        own_server.read(&mut own);
                        let reply = own_server.send(MessageKind::Binary, text.as_bytes());
                        assert_eq!(
                            feed(&mut own, &reply, chunk, &mut own_rng).unwrap(),
                            [Ev::Binary(text.clone().into_bytes())]
                        );
                    }
                }
            }
            assert!(!parked[0].0.is_closing());
        }
    }
}

#[test]
fn closing_connections_park_with_their_deadline() {
    let (mut c, mut s, mut r) = open(None, 4);
    c.close(1000, "bye", 100, &mut r).unwrap();
    assert!(c.park().is_none(), "the close frame is still queued");
    assert_eq!(s.read(&mut c), [Outcome::Item("close", b"bye".to_vec(), Some(1000))]);
    let parked = c.park().expect("closing, nothing queued");
    let deadline = 100 + ClientConfig::default().close_timeout_us;
    assert!(parked.is_closing());
    assert_eq!(parked.poll_timeout(), Some(deadline));

    // Resumed in a fresh client: the server's close completes the handshake.
    let mut other = Client::from_parked(ClientConfig::default(), parked);
    assert_eq!(other.state(), State::Closing);
    let mut close = Vec::new();
    s.enc.close(&mut close, Some(1000), "", &mut s.rng).unwrap();
    let events = feed(&mut other, &close, 2, &mut r).unwrap();
    assert!(matches!(events[..], [Ev::Closed(Some(1000), _, crate::client::Initiator::Client)]), "{events:?}");

    // Or the deadline passes.
    let mut late = Client::from_parked(ClientConfig::default(), parked);
    assert_eq!(late.handle_timeout(deadline - 1), None);
    assert_eq!(late.handle_timeout(deadline), Some(Timeout::Close));
    assert_eq!(late.state(), State::Closed);
}

#[test]
fn resume_clears_whatever_the_client_served_before() {
    let (mut a, mut sa, mut ra) = open(None, 5);
    let parked = a.park().unwrap();
    // The shell is left mid-message by another connection that then failed.
    let (mut shell, mut sb, mut rb) = open(None, 6);
    let frame = sb.send(MessageKind::Text, b"half a message");
    feed(&mut shell, &frame[..5], 64, &mut rb).unwrap();
    shell.send_text("unsent", &mut rb).unwrap();
    shell.resume(parked);
    assert!(shell.pending_transmit().is_empty());
    let reply = sa.send(MessageKind::Text, b"clean");
    assert_eq!(feed(&mut shell, &reply, 64, &mut ra).unwrap(), [Ev::Text("clean".into())]);
    assert!(shell.park().is_some());
    let _ = &mut a;
}
