//! The receive side of the worker loop: bytes from the provided-buffer ring into the
//! connection's protocol state machine, and what each event means for measurement.

use io_uring::cqueue;
use loadgen_proto::{Error as ProtoError, Event, Initiator};

use rand_chacha::ChaCha20Rng;

use super::super::conn::{Conn, Phase, Proto};
use super::streams::{Streams, probe_arrived};
use super::{Worker, WorkerSetup};
use crate::clock::Clock;
use crate::driver::{Action, Driver, Program};
use crate::payload::Probe;
use crate::server_id::Landing;
use crate::stats::{Metric, Recorder};

/// What the events of one read asked the worker to do.
#[derive(Default)]
pub(super) struct Outcome {
    pub(super) opened: bool,
    /// Echoes (WebSocket, raw) or responses (HTTP) received.
    pub(super) echoes: u32,
    pub(super) closed: bool,
    /// The connection ends by the server's doing (a close frame, `Connection: close`):
    /// dropped, for this cause.
    pub(super) drop_cause: Option<&'static str>,
    /// Closed loop: the echo of the message in flight arrived (late echoes of earlier
    /// messages do not start the next send).
    pub(super) current_echo: bool,
    pub(super) error: Option<&'static str>,
    /// HTTP: the server asked to wait this long (429/503 `Retry-After`).
    pub(super) retry_after_s: Option<u64>,
    /// The server instance a text message of this read named (`RunConfig::server_id`),
    /// when the attempt had not learned it yet.
    pub(super) server: Option<u32>,
}

impl Worker<'_> {
    pub(super) fn on_recv(&mut self, index: u32, result: i32, flags: u32, now: u64) {
        let more = cqueue::more(flags);
        let conn = &mut self.conns[index as usize];
        if !more {
            conn.recv_armed = false;
        }
        if result == -libc::ECANCELED && conn.cancel_pending {
            // The program stopped reading; it may have resumed (or loadgen is closing)
            // while the cancel was in flight.
            conn.cancel_pending = false;
            if !self.reading_paused(index) {
                self.resume_reading(index);
            }
            self.maybe_free(index);
            return;
        }
        if result == -libc::ENOBUFS {
            // The ring ran dry: the generator, not the target, is short of buffers.
            self.rec.buffer_ring_exhausted(1);
            if !more && !self.reading_paused(index) {
                self.resume_reading(index);
            }
            return;
        }
        if result == 0 && conn.phase == Phase::Open && matches!(conn.proto, Proto::Http(_)) {
            // The server closed: it may end a close-delimited response.
            self.http_eof(index, now);
            self.maybe_free(index);
            return;
        }
        if result == 0 && conn.draining {
            // The server's FIN after our half-close: the drain is complete.
            self.shutdown(index);
            self.maybe_free(index);
            return;
        }
        if (result == 0 || result == -libc::ECONNRESET || result == -libc::EPIPE) && self.upgrade_attack(index) {
            // What a stalled or slow upgrade waits for: the server gave up on it.
            self.handshake_closed_by_server(index, now);
            self.maybe_free(index);
            return;
        }
        let conn = &mut self.conns[index as usize];
        if result <= 0 {
            if conn.phase != Phase::Closing {
                let kind = if result == 0 {
                    if conn.phase == Phase::Handshaking { "closed_during_handshake" } else { "server_closed_tcp" }
                } else {
                    match -result {
                        libc::ECONNRESET => "connection_reset",
                        libc::ETIMEDOUT => "recv_timeout",
                        libc::ENOTCONN => "recv_not_connected",
                        libc::ECANCELED => "recv_canceled",
                        libc::EBADF => "recv_bad_descriptor",
                        libc::EPIPE => "recv_broken_pipe",
                        _ => "recv_error",
                    }
                };
                self.rec.error(kind);
                if conn.phase == Phase::Handshaking {
                    self.rec.connection_failed();
                }
                let cause = match kind {
                    "server_closed_tcp" => "eof",
                    "connection_reset" => "reset",
                    "recv_timeout" => "timeout",
                    other => other,
                };
                self.drop_conn(index, cause);
            }
            self.maybe_free(index);
            return;
        }
        let Some(bid) = cqueue::buffer_select(flags) else { return };
        let outcome = self.feed(index, bid, result as usize, now);
        self.io.buffers_mut(index).recycle(bid);
        self.apply(index, outcome, now);
        if !more && !self.reading_paused(index) {
            // (A program that stopped reading is re-armed when it resumes.)
            self.resume_reading(index);
        }
        self.maybe_free(index);
    }

    /// Feeds one received buffer to the connection (through its TLS session on wss://);
    /// measures what it can on the way.
    fn feed(&mut self, index: u32, bid: u16, len: usize, now: u64) -> Outcome {
        let mut outcome = Outcome::default();
        let bufs = self.io.buffers_mut(index);
        let conn = &mut self.conns[index as usize];
        // Resume a parked WebSocket client (raw streams are never parked).
        let _ = conn.client(&mut self.clients);
        let program = &self.programs[usize::from(conn.driver.program())];
        let mut ctx = FeedCtx::new(&mut self.rec, &mut self.rng, &self.setup, self.message.len(), conn, index, now);
        ctx.shape = self.shape.as_mut();
        let mut driven = Driven { driver: conn.driver, program, actions: &mut self.actions };
        let Some(tls) = conn.tls.as_mut() else {
            ctx.plaintext(&mut conn.proto, bufs.buffer(bid, len), &mut driven, &mut outcome);
            ctx.streams.store(conn);
            conn.driver = driven.driver;
            return outcome;
        };
        if tls.session.failed().is_some() {
            // Counted when it failed; what was already in flight is ignored.
            return outcome;
        }
        let proto = &mut conn.proto;
        let ciphertext = bufs.buffer_mut(bid, len);
        let result = tls
            .session
            .receive_with(ciphertext, &mut tls.out, |plain| ctx.plaintext(proto, plain, &mut driven, &mut outcome));
        if !tls.handshake_seen && tls.session.is_handshake_complete() {
            tls.handshake_seen = true;
            // https://: the connection is open once TLS is (WebSocket waits for its 101).
            outcome.opened |= matches!(conn.proto, Proto::Http(_));
            ctx.rec.record_since(Metric::TlsHandshake, ctx.intended_ns, now);
            ctx.rec.tls_handshake_done(tls.session.is_resumed());
        }
        if let Err(e) = result
            && outcome.error.is_none()
        {
            outcome.error = Some(e.kind().name());
            // (Opened by this very read: established first, then the error ends it.)
            if conn.phase == Phase::Handshaking && !outcome.opened {
                ctx.rec.connection_failed();
            }
        }
        ctx.streams.store(conn);
        conn.driver = driven.driver;
        outcome
    }

    /// Feeds an HTTP client the bytes it buffered while idle (see `Http1Client::buffered`).
    pub(super) fn feed_http_buffered(&mut self, index: u32) {
        let now = self.setup.clock.now_ns();
        let mut outcome = Outcome::default();
        let conn = &mut self.conns[index as usize];
        let mut ctx = FeedCtx::new(&mut self.rec, &mut self.rng, &self.setup, self.message.len(), conn, index, now);
        if let Proto::Http(http) = &mut conn.proto {
            ctx.http(http, &[], &mut outcome);
        }
        ctx.streams.store(conn);
        self.apply(index, outcome, now);
    }

    /// End of stream on an open HTTP connection: ends a close-delimited response (timed
    /// and counted like any other), or counts a truncated one; then the connection ends.
    fn http_eof(&mut self, index: u32, now: u64) {
        let conn = &mut self.conns[index as usize];
        let Proto::Http(http) = &mut conn.proto else { return };
        match http.client.peer_closed() {
            Ok(Some(loadgen_proto::Http1Event::ResponseEnd { .. })) => {
                self.rec.message_received(http.body_bytes);
                self.rec.record_since(Metric::MessageRtt, http.request_ns, now);
                let timeout = self.setup.config.reply_timeout.as_nanos() as u64;
                self.rec.echo_received(now.saturating_sub(http.request_ns) > timeout);
                conn.awaiting_echo = false;
                self.rec.error("http_connection_close");
                self.drop_conn(index, "http_connection_close");
            }
            Ok(_) => {
                self.rec.error("server_closed_tcp");
                self.drop_conn(index, "eof");
            }
            Err(e) => {
                self.rec.error(e.name());
                self.drop_conn(index, e.name());
            }
        }
    }

    fn apply(&mut self, index: u32, outcome: Outcome, now: u64) {
        if let Some(kind) = outcome.error {
            self.rec.error(kind);
        }
        let conn = &mut self.conns[index as usize];
        if let Some(server) = outcome.server {
            conn.server_learned = true;
            match crate::server_id::landed(&mut conn.server, server) {
                Landing::First => {}
                Landing::Same => self.rec.reconnected_same_server(),
                Landing::Other => self.rec.reconnected_other_server(),
            }
        }
        if outcome.opened && conn.phase == Phase::Handshaking {
            conn.phase = Phase::Open;
            // The handshake deadline is met: drop its timer rather than let it wait.
            if let Some(timer) = conn.deadline_timer.take() {
                self.timers.cancel(timer);
            }
            self.rec.connection_established();
            // The 101 just read, so the client is live: did it pick a subprotocol?
            if let Proto::Live(client) = &conn.proto
                && client.accepted().is_some_and(|a| a.subprotocol.is_some())
            {
                self.rec.subprotocol_negotiated();
            }
            if self.closing_all {
                // Opened after the end was called: close it right away.
                match conn.client(&mut self.clients) {
                    Some(client) => {
                        let _ = client.close(1000, "", now / 1_000, &mut self.rng);
                    }
                    None => self.shutdown(index),
                }
            } else if matches!(conn.proto, Proto::Http(_)) {
                // https://: open once TLS is (a WebSocket's program started at its 101,
                // while the read was fed).
                self.drive(index, now, |d, p, out| d.opened(p, now, out));
            }
        }
        // What the program did with this read (its start, texts it waited for).
        let mut actions = std::mem::take(&mut self.actions);
        self.carry_out(index, &mut actions, now);
        self.actions = actions;
        let conn = &mut self.conns[index as usize];
        if outcome.echoes > 0 && matches!(conn.proto, Proto::Http(_)) {
            self.http_response_done(index, &outcome, now);
        } else if outcome.current_echo {
            // Closed loop: the next message is due now, or after the think time.
            self.drive(index, now, |d, p, out| d.answered(p, now, out));
        }
        self.send_more(index);
        if let Some(cause) = outcome.drop_cause.or(outcome.error) {
            self.drop_conn(index, cause);
        } else if outcome.closed {
            self.shutdown(index);
        }
    }
}

/// What feeding plaintext to a connection's protocol needs from the worker (borrowed
/// apart from the connection, so the TLS session can hand plaintext over piece by piece).
pub(super) struct FeedCtx<'a> {
    pub(super) rec: &'a mut Recorder,
    rng: &'a mut ChaCha20Rng,
    pub(super) clock: &'a Clock,
    message_len: u64,
    pub(super) now: u64,
    intended_ns: u64,
    /// Sequence state of the connection's streams, written back after the read.
    pub(super) streams: Streams,
    /// This connection's probe sender id.
    sender: u64,
    /// Messages this connection has sent (its next sequence number).
    sent: u64,
    /// Echoes later than this are `late`, ns.
    pub(super) reply_timeout_ns: u64,
    /// The worker's reader of the server's own message shape, if the run gave one
    /// (set by the caller: it is the worker's, borrowed apart from the rest).
    shape: Option<&'a mut crate::payload_shape::ShapeReader>,
    /// Where the server names its instance, while this attempt has not learned it.
    server_id: Option<&'a crate::server_id::ServerIdPath>,
}

/// A copy of a connection's driver while its read is fed, its program, and the
/// actions it asks for (carried out once the read is fed).
pub(super) struct Driven<'a> {
    pub(super) driver: Driver,
    pub(super) program: &'a Program,
    pub(super) actions: &'a mut Vec<Action>,
}

impl<'a> FeedCtx<'a> {
    /// What feeding `conn` (connection `index`) needs, at `now`.
    fn new(
        rec: &'a mut Recorder,
        rng: &'a mut ChaCha20Rng,
        setup: &'a WorkerSetup<'_>,
        message_len: usize,
        conn: &mut Conn,
        index: u32,
        now: u64,
    ) -> Self {
        Self {
            rec,
            rng,
            clock: &setup.clock,
            message_len: message_len as u64,
            now,
            intended_ns: conn.intended_ns,
            streams: Streams::load(conn),
            sender: setup.sender_base | (u64::from(index) * setup.config.workers as u64 + setup.index as u64),
            sent: conn.seq,
            reply_timeout_ns: setup.config.reply_timeout.as_nanos() as u64,
            shape: None,
            server_id: setup.config.server_id.as_ref().filter(|_| !conn.server_learned),
        }
    }

    /// Plaintext bytes in order into the WebSocket client or the raw stream. Ignores
    /// bytes after the connection closed or failed.
    fn plaintext(&mut self, proto: &mut Proto, data: &[u8], driven: &mut Driven<'_>, outcome: &mut Outcome) {
        if outcome.closed || outcome.error.is_some() {
            return;
        }
        let now = self.now;
        let client = match proto {
            Proto::Live(client) => client,
            Proto::Raw(raw) => {
                let (rec, clock, size, streams) = (&mut *self.rec, self.clock, self.message_len, &mut self.streams);
                let (own, sent, timeout) = (self.sender, self.sent, self.reply_timeout_ns);
                raw.receive(data, |probe| {
                    rec.message_received(size);
                    if let Some(p) = probe {
                        probe_arrived(p, streams, rec, clock, own, sent, timeout, now, false, outcome);
                    }
                });
                return;
            }
            Proto::Http(http) => return self.http(http, data, outcome),
            Proto::None | Proto::Parked(_) => return,
        };
        let mut rest = data;
        while !rest.is_empty() {
            match client.receive(rest, &mut *self.rng) {
                Ok((n, event)) => {
                    rest = &rest[n..];
                    match event {
                        None => {}
                        Some(Event::Open) => {
                            outcome.opened = true;
                            self.rec.record_since(Metric::Handshake, self.intended_ns, now);
                            // The program starts here, so texts later in this read are
                            // seen by the steps waiting for them.
                            driven.driver.opened(driven.program, now, driven.actions);
                        }
                        Some(Event::Binary(payload)) => {
                            self.rec.message_received(payload.len() as u64);
                            let (own, sent, timeout) = (self.sender, self.sent, self.reply_timeout_ns);
                            let (rec, clock, streams) = (&mut *self.rec, self.clock, &mut self.streams);
                            if let Some(p) = Probe::decode(payload) {
                                probe_arrived(p, streams, rec, clock, own, sent, timeout, now, false, outcome);
                            } else if let Some(reader) = self.shape.as_deref_mut() {
                                // loadgen's markers in a binary message of the system's.
                                reader.binary(payload, |p| {
                                    probe_arrived(p, streams, rec, clock, own, sent, timeout, now, false, outcome);
                                });
                            }
                        }
                        Some(Event::Text(text)) => {
                            self.rec.message_received(text.len() as u64);
                            driven.driver.text(driven.program, text, now, driven.actions);
                            if let Some(path) = self.server_id
                                && let Some(server) = path.read(text)
                            {
                                // The first text naming the instance (per attempt).
                                outcome.server = Some(server);
                                self.server_id = None;
                            }
                            // A server's notification: the probes in the server's own shape
                            // when the run gave one, else in the reference envelope.
                            let (own, sent, timeout) = (self.sender, self.sent, self.reply_timeout_ns);
                            let (rec, clock, streams) = (&mut *self.rec, self.clock, &mut self.streams);
                            let mut shaped = false;
                            if let Some(reader) = self.shape.as_deref_mut() {
                                reader.text(text, |p| {
                                    shaped = true;
                                    probe_arrived(p, streams, rec, clock, own, sent, timeout, now, false, outcome);
                                });
                            }
                            if !shaped && let Some((p, critical)) = crate::payload_json::decode_json_envelope(text) {
                                probe_arrived(p, streams, rec, clock, own, sent, timeout, now, critical, outcome);
                            }
                        }
                        Some(Event::Pong(p)) => {
                            if let Some(stamp) = loadgen_proto::PingStamp::parse(p) {
                                self.rec.record_since(Metric::PingRtt, stamp.sent_us * 1_000, now);
                                // It answers its ping and every older one.
                                driven.driver.pong(driven.program, stamp.sent_us, now, driven.actions);
                            }
                        }
                        Some(Event::Ping(_)) => {}
                        Some(Event::Closed { initiator, code, .. }) => {
                            if initiator == Initiator::Server {
                                self.rec.error("server_closed");
                                // 1005: the close frame carried no code (RFC 6455 §7.1.5).
                                self.rec.close_code(code.unwrap_or(1005));
                                outcome.drop_cause = Some("server_close");
                            }
                            outcome.closed = true;
                            return;
                        }
                    }
                }
                Err(ProtoError::Handshake(h)) => {
                    outcome.error = Some(match &h {
                        loadgen_proto::HandshakeError::Rejected(r) => {
                            self.rec.refused(r.status, r.retry_after_secs());
                            r.kind().name()
                        }
                        other => other.name(),
                    });
                    self.rec.connection_failed();
                    return;
                }
                Err(ProtoError::Protocol(p)) => {
                    outcome.error = Some(p.name());
                    return;
                }
            }
        }
    }
}
