//! What a connection does with the bytes it receives: the upgrade request while
//! upgrading, then WebSocket frames according to the mode (echo each message back,
//! or read and count), pings answered with pongs, a client close echoed, a protocol
//! error answered with a close carrying the error's code. In raw TCP the bytes are the
//! application's stream: echo appends them to the output as they came, sink and push
//! drop them (the worker counts bytes). Replies are appended to the connection's
//! `pending` buffer; the worker sends them.
//!
//! The connection's server-side program (`driver::serve::ServeProgram`) decides what
//! the mode does with a message and what a valid upgrade request gets: two faults act
//! through it (see `faults`): the upgrade refused with a configured status or never
//! answered, and echoes dropped; both are counted here.
//!
//! What it does not do: submit operations, shut sockets down, apply backpressure,
//! or send pushes.

use loadgen_proto::{Decoded, Decoder, MessageKind, Opcode, Role};
use rand_core::RngCore;

use super::ServeProtocol;
use super::conn::{BufPool, CodecPool, Conn, Phase};
use super::summary::Counters;
use super::upgrade::{self, Parsed};
use super::worker::faults::Draws;
use crate::driver::serve::{MessageAction, Reply, ServeProgram, UpgradeAnswer};

/// The encoder wants an RNG for mask keys; the server role never masks, so it is
/// never called for output that matters.
pub(super) struct NoMask;

impl RngCore for NoMask {
    fn next_u32(&mut self) -> u32 {
        0
    }
    fn next_u64(&mut self) -> u64 {
        0
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        dest.fill(0);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        dest.fill(0);
        Ok(())
    }
}

/// What the handlers need besides the connection.
pub(super) struct Ctx<'a> {
    pub protocol: ServeProtocol,
    /// What every connection does (mode and faults).
    pub program: &'a ServeProgram,
    /// Random draws for the program (fault `drop-echo`).
    pub draws: &'a mut Draws,
    pub bufs: &'a mut BufPool,
    pub codecs: &'a mut CodecPool,
    pub counters: &'a mut Counters,
    pub max_message_size: usize,
    /// A decoder whose buffers grew past this after a message is replaced by a fresh
    /// one, so a connection that once received a big message does not keep its memory.
    pub decoder_keep: usize,
}

/// Handles bytes received on `conn` (in phase Upgrading, Open or Closing).
pub(super) fn on_bytes(conn: &mut Conn, data: &[u8], ctx: &mut Ctx<'_>) {
    match (ctx.protocol, conn.phase) {
        (ServeProtocol::RawTcp, Phase::Open) => on_stream(conn, data, ctx),
        (ServeProtocol::WebSocket, Phase::Upgrading) => on_upgrade_bytes(conn, data, ctx),
        (ServeProtocol::WebSocket, Phase::Open | Phase::Closing) => on_frames(conn, data, ctx),
        _ => {}
    }
}

/// Raw TCP: echo queues exactly the bytes received, behind what is queued already
/// (order kept); sink and push only count them (the worker does).
fn on_stream(conn: &mut Conn, data: &[u8], ctx: &mut Ctx<'_>) {
    if ctx.program.reply == Reply::Echo {
        if conn.pending.capacity() == 0 {
            conn.pending = ctx.bufs.take();
        }
        conn.pending.extend_from_slice(data);
    }
}

fn on_upgrade_bytes(conn: &mut Conn, data: &[u8], ctx: &mut Ctx<'_>) {
    // Commonest case: the whole head in one read, parsed in place without a copy.
    let from_head = !conn.head.is_empty();
    let parsed = if from_head {
        conn.head.extend_from_slice(data);
        upgrade::parse(&conn.head)
    } else {
        upgrade::parse(data)
    };
    match parsed {
        Parsed::Partial => {
            if !from_head {
                conn.head = ctx.bufs.take();
                conn.head.extend_from_slice(data);
            }
        }
        Parsed::Accept { .. } if ctx.program.upgrade != UpgradeAnswer::Accept => {
            if let UpgradeAnswer::Refuse { status, retry_after_s } = ctx.program.upgrade {
                if conn.pending.capacity() == 0 {
                    conn.pending = ctx.bufs.take();
                }
                upgrade::write_fault_refusal(&mut conn.pending, status, retry_after_s);
                conn.phase = Phase::Draining;
                ctx.counters.refused_by_fault += 1;
                *ctx.counters.refused.entry(status).or_default() += 1;
            } else {
                conn.phase = Phase::Unanswered;
                ctx.counters.upgrades_unanswered += 1;
            }
            ctx.bufs.put(std::mem::take(&mut conn.head));
        }
        Parsed::Accept { consumed, accept } => {
            if conn.pending.capacity() == 0 {
                conn.pending = ctx.bufs.take();
            }
            upgrade::write_accept(&mut conn.pending, &accept);
            conn.ws = Some(ctx.codecs.take());
            conn.phase = Phase::Open;
            ctx.counters.upgraded += 1;
            let head = std::mem::take(&mut conn.head);
            let rest = if from_head { &head[consumed..] } else { &data[consumed..] };
            if !rest.is_empty() {
                on_frames(conn, rest, ctx);
            }
            ctx.bufs.put(head);
        }
        Parsed::Refuse(r) => {
            if conn.pending.capacity() == 0 {
                conn.pending = ctx.bufs.take();
            }
            upgrade::write_refusal(&mut conn.pending, r);
            conn.phase = Phase::Draining;
            *ctx.counters.refused.entry(r.status).or_default() += 1;
            ctx.bufs.put(std::mem::take(&mut conn.head));
        }
    }
}

fn on_frames(conn: &mut Conn, mut input: &[u8], ctx: &mut Ctx<'_>) {
    let Conn { ws, pending, phase, .. } = conn;
    let Some(ws) = ws.as_deref_mut() else { return };
    // Server-initiated close in progress: data is dropped, only the client's close
    // matters (RFC 6455 §5.5.1: nothing is sent after our close frame).
    let closing = *phase == Phase::Closing;
    let echo = ctx.program.reply == Reply::Echo && !closing;
    let (program, draws) = (ctx.program, &mut *ctx.draws);
    // What the program does with the next message (one draw per message, and only
    // when the program asks for draws).
    let mut next_action = || {
        if !echo {
            MessageAction::Keep
        } else if program.draws() {
            program.message(draws.next_draw())
        } else {
            program.message(0)
        }
    };
    if pending.capacity() == 0 {
        *pending = ctx.bufs.take();
    }
    let c = &mut *ctx.counters;
    while !input.is_empty() {
        let (n, event) = match ws.decoder.decode(input) {
            Ok(ok) => ok,
            Err(e) => {
                *c.protocol_errors.entry(e.name()).or_default() += 1;
                if !closing {
                    let _ = ws.encoder.close(pending, Some(e.close_code()), "", &mut NoMask);
                }
                *phase = Phase::Draining;
                break;
            }
        };
        input = &input[n..];
        let Some(event) = event else { continue };
        let message = match event {
            Decoded::Text(_) | Decoded::Binary(_) => {
                let (kind, payload) = match event {
                    Decoded::Text(t) => (MessageKind::Text, t.as_bytes()),
                    Decoded::Binary(b) => (MessageKind::Binary, b),
                    _ => unreachable!("matched above"),
                };
                match next_action() {
                    MessageAction::Echo => {
                        let _ = ws.encoder.message(pending, kind, payload, &mut NoMask);
                        c.messages_out += 1;
                    }
                    MessageAction::Drop => c.echoes_dropped += 1,
                    MessageAction::Keep => {}
                }
                true
            }
            Decoded::Ping(p) => {
                c.pings += 1;
                if !closing {
                    ws.encoder.control(pending, Opcode::Pong, p, &mut NoMask).expect("a ping payload fits a pong");
                }
                false
            }
            Decoded::Pong(_) => false,
            Decoded::Close { code, .. } => {
                c.closes_in += 1;
                if !closing {
                    // Echo the client's code (§5.5.1); an empty close gets an empty one.
                    let _ = ws.encoder.close(pending, code, "", &mut NoMask);
                }
                *phase = Phase::Draining;
                break;
            }
        };
        if message {
            c.messages_in += 1;
            if ws.decoder.buffer_capacity() > ctx.decoder_keep && ws.decoder.at_frame_boundary() {
                // Between messages (one just ended): nothing in progress is lost.
                ws.decoder = Decoder::new(Role::Server, ctx.max_message_size);
            }
        }
    }
    if pending.is_empty() {
        ctx.bufs.put(std::mem::take(pending));
    }
}

#[cfg(test)]
mod tests {
    use loadgen_proto::violation::Violation;
    use loadgen_proto::{Client, ClientConfig, Event, HandshakeRequest};

    use super::*;
    use crate::serve::Mode;

    struct Rng(u64);
    impl RngCore for Rng {
        fn next_u32(&mut self) -> u32 {
            self.next_u64() as u32
        }
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            self.0 >> 11
        }
        fn fill_bytes(&mut self, d: &mut [u8]) {
            rand_core::impls::fill_bytes_via_next(self, d)
        }
        fn try_fill_bytes(&mut self, d: &mut [u8]) -> Result<(), rand_core::Error> {
            self.fill_bytes(d);
            Ok(())
        }
    }

    struct Harness {
        conn: Conn,
        bufs: BufPool,
        codecs: CodecPool,
        counters: Counters,
        draws: Draws,
    }

    impl Harness {
        fn new() -> Self {
            let mut slab = super::super::conn::Slab::default();
            let i = slab.alloc(0, Phase::Upgrading);
            let conn = slab.conns.swap_remove(i as usize);
            Self {
                conn,
                bufs: BufPool::new(1 << 16, 64),
                codecs: CodecPool::new(1 << 20, 1 << 16),
                counters: Counters::default(),
                draws: Draws::new(0),
            }
        }
        fn feed(&mut self, mode: Mode, data: &[u8]) -> Vec<u8> {
            self.feed_as(ServeProtocol::WebSocket, mode, data)
        }
        fn feed_as(&mut self, protocol: ServeProtocol, mode: Mode, data: &[u8]) -> Vec<u8> {
            let (program, _) = crate::serve::worker::faults::compile(mode, &[]);
            let mut ctx = Ctx {
                protocol,
                program: &program,
                draws: &mut self.draws,
                bufs: &mut self.bufs,
                codecs: &mut self.codecs,
                counters: &mut self.counters,
                max_message_size: 1 << 20,
                decoder_keep: 1 << 16,
            };
            on_bytes(&mut self.conn, data, &mut ctx);
            std::mem::take(&mut self.conn.pending)
        }
    }

    /// Drives a proto `Client` against the handlers, byte slices split at `split`.
    #[test]
    fn echo_ping_close_through_the_handlers() {
        let mut rng = Rng(3);
        let mut h = Harness::new();
        let req = HandshakeRequest::new("localhost", "/");
        let mut client = Client::new(ClientConfig::default(), &req, 0, &mut rng).unwrap();
        let mut wire = client.pending_transmit().to_vec();
        client.advance_transmit(wire.len());
        // Frames piggy-backed on the upgrade request (the client is not open yet, so
        // they come from a client-role encoder).
        let mut enc = loadgen_proto::Encoder::new(Role::Client, None);
        enc.message(&mut wire, MessageKind::Text, b"hello", &mut rng).unwrap();
        enc.control(&mut wire, Opcode::Ping, b"p", &mut rng).unwrap();
        // Upgrade head split in two, frames piggy-backed on the second part.
        let mut out = h.feed(Mode::Echo, &wire[..10]);
        assert!(out.is_empty());
        out = h.feed(Mode::Echo, &wire[10..]);
        assert_eq!(h.conn.phase, Phase::Open);
        let mut events = Vec::new();
        let mut input = &out[..];
        while !input.is_empty() {
            let (n, ev) = client.receive(input, &mut rng).unwrap();
            input = &input[n..];
            if let Some(ev) = ev {
                events.push(format!("{ev:?}"));
            }
        }
        assert_eq!(events, ["Open", "Text(\"hello\")", "Pong([112])"]);
        assert_eq!((h.counters.messages_in, h.counters.messages_out, h.counters.pings), (1, 1, 1));
        client.close(1000, "", 0, &mut rng).unwrap();
        let wire = client.pending_transmit().to_vec();
        let out = h.feed(Mode::Echo, &wire);
        assert_eq!(h.conn.phase, Phase::Draining);
        let (_, ev) = client.receive(&out, &mut rng).unwrap();
        assert!(matches!(ev, Some(Event::Closed { code: Some(1000), .. })), "{ev:?}");
    }

    #[test]
    fn sink_counts_without_answering_and_violations_close_with_their_code() {
        let mut h = Harness::new();
        let mut rng = Rng(5);
        let req = HandshakeRequest::new("localhost", "/");
        let mut client = Client::new(ClientConfig::default(), &req, 0, &mut rng).unwrap();
        let wire = client.pending_transmit().to_vec();
        client.advance_transmit(wire.len());
        let out = h.feed(Mode::Sink, &wire);
        client.receive(&out, &mut rng).unwrap();
        for _ in 0..3 {
            client.send_binary(&[1, 2, 3], &mut rng).unwrap();
        }
        let wire = client.pending_transmit().to_vec();
        client.advance_transmit(wire.len());
        assert!(h.feed(Mode::Sink, &wire).is_empty(), "sink sends nothing back");
        assert_eq!(h.counters.messages_in, 3);
        let mut bad = Vec::new();
        Violation::Unmasked.write(&mut bad, &mut rng);
        let out = h.feed(Mode::Sink, &bad);
        assert_eq!(out, [0x88, 0x02, 0x03, 0xEA], "close 1002");
        assert_eq!(h.conn.phase, Phase::Draining);
        assert_eq!(h.counters.protocol_errors.get("unmasked_frame"), Some(&1));
    }

    #[test]
    fn raw_stream_echoes_bytes_as_they_came_and_sink_keeps_nothing() {
        let mut h = Harness::new();
        h.conn.phase = Phase::Open;
        let raw = ServeProtocol::RawTcp;
        // Not an upgrade request, and not frames: just bytes, queued behind each other.
        h.conn.pending = b"GET ".to_vec();
        assert_eq!(h.feed_as(raw, Mode::Echo, b"/ HTTP/1.1\r\n\x88\x00"), b"GET / HTTP/1.1\r\n\x88\x00");
        assert_eq!(h.conn.phase, Phase::Open, "nothing is parsed");
        assert!(h.feed_as(raw, Mode::Sink, b"dropped").is_empty());
        let push = Mode::Push { rate: 1.0, message_size: 64 };
        assert!(h.feed_as(raw, push, b"dropped").is_empty());
        assert!(h.conn.ws.is_none() && h.conn.head.capacity() == 0, "no codec, no head buffer");
        assert_eq!(h.counters.messages_in + h.counters.upgraded, 0, "the worker counts raw bytes");
    }
}
